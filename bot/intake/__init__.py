"""Filing a report: the command, the modal, the shortcut, the reaction, and the duplicate check."""
