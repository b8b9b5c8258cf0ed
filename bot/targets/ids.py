"""Response targets' block and input ids: the reporter's answer and the host's question modals
(their buttons and callbacks are in ``bot.ids``)."""

REPLY_BLOCK, REPLY_INPUT = "target_reply", "target_reply_input"
ASK_BLOCK, ASK_INPUT = "target_ask", "target_ask_input"
