"""Bolt's ``respond`` through the app's one aiohttp session.

Bolt's own ``AsyncRespond`` makes an ``AsyncWebhookClient`` with no session for every answer, so each
one opens an aiohttp session and a connection (with Slack, a TLS handshake with hooks.slack.com)
and closes them again. This one hands the client the session every Web API call already shares
(``bot.runtime.app``'s lifespan): the connection is kept alive between answers."""

from aiohttp import ClientSession
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.context.respond.internals import _build_message
from slack_sdk.webhook.async_client import AsyncWebhookClient, WebhookResponse


class KeptAliveRespond(AsyncRespond):
    """``AsyncRespond`` with the same arguments and answers, its calls through ``session``."""

    def __init__(self, *, response_url: str | None, session: ClientSession):
        super().__init__(response_url=response_url)
        self.session = session

    async def __call__(self, text: str | dict = "", blocks=None, attachments=None, response_type=None,
                       replace_original=None, delete_original=None, unfurl_links=None, unfurl_media=None,
                       thread_ts=None, metadata=None) -> WebhookResponse:
        if self.response_url is None:
            raise ValueError("respond is unsupported here as there is no response_url")
        if isinstance(text, dict):  # a whole response, as Bolt allows
            message = _build_message(**text)
        elif isinstance(text, str):
            message = _build_message(text=text, blocks=blocks, attachments=attachments, response_type=response_type,
                                     replace_original=replace_original, delete_original=delete_original,
                                     unfurl_links=unfurl_links, unfurl_media=unfurl_media, thread_ts=thread_ts,
                                     metadata=metadata)
        else:
            raise ValueError(f"The arg is unexpected type ({type(text)})")
        client = AsyncWebhookClient(url=self.response_url, proxy=self.proxy, ssl=self.ssl, session=self.session)
        return await client.send_dict(message)
