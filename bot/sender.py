"""Works through the outbox: one Slack call per message, honouring 429 Retry-After."""

import asyncio
import json
import logging
import random

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from typing import Protocol

from sqlmodel import Session

from storage import outbox
from storage.database import Database, DatabaseUnavailable
from storage.models import OutboxMessage

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
# Errors that will not get better by retrying: record them and move on.
PERMANENT = {
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "user_not_found",
    "user_disabled",
    "account_inactive",
    "cannot_dm_bot",
    "invalid_blocks",
    "invalid_arguments",
    "msg_too_long",
    "no_text",
    "invalid_auth",
    "not_authed",
    "missing_scope",
    "thread_not_found",
    "message_not_found",
}


class OutboxHook(Protocol):
    """For messages whose payload is rendered when sent (``OutboxMessage.purpose``)."""

    def prepare(self, session: Session, message: OutboxMessage, payload: dict) -> tuple[str, dict] | None:
        """The (method, payload) to send now, or None to drop the message."""

    def sent(self, session: Session, message: OutboxMessage, response: dict) -> None:
        """Record what Slack answered (e.g. where a card was posted)."""


class OutboxSender:
    def __init__(self, db: Database, client: AsyncWebClient, *, idle_seconds: float = 2.0):
        self.db = db
        self.client = client
        self.idle_seconds = idle_seconds
        self.hooks: dict[str, OutboxHook] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    def wake(self) -> None:
        """Something was queued: send it now rather than at the next poll."""
        self._wake.set()

    async def drain_once(self) -> int:
        """Send what is due now. Returns how many messages were attempted."""
        batch = await self.db.run(outbox.claim_due)
        for message in batch:
            await self._send(message)
        return len(batch)

    def _render(self, *, session: Session, message: OutboxMessage) -> tuple[str, dict] | None:
        payload = json.loads(message.payload)
        hook = self.hooks.get(message.purpose or "")
        return hook.prepare(session, message, payload) if hook else (message.method, payload)

    def _sent(self, *, session: Session, message: OutboxMessage, response: dict) -> None:
        outbox.mark_sent(session=session, message_id=message.id)
        hook = self.hooks.get(message.purpose or "")
        if hook:
            hook.sent(session, message, response)

    async def _send(self, message: OutboxMessage) -> None:
        try:
            rendered = await self.db.run(self._render, message=message)
            if rendered is None:
                await self.db.run(outbox.mark_failed, message_id=message.id, error="nothing to send")
                return
            method, payload = rendered
            response = await self.client.api_call(method, json=payload)
        except SlackApiError as exc:
            status = exc.response.status_code
            error = str(exc.response.get("error") or f"http_{status}")
            if status == 429:
                retry_after = float(exc.response.headers.get("Retry-After", exc.response.headers.get("retry-after", 1)))
                await self.db.run(outbox.mark_retry, message_id=message.id, delay_seconds=retry_after, error=error)
            elif error in PERMANENT or message.attempts >= MAX_ATTEMPTS:
                log.warning("outbox message %s failed for good: %s", message.id, error)
                await self.db.run(outbox.mark_failed, message_id=message.id, error=error)
            else:
                await self.db.run(outbox.mark_retry, message_id=message.id, delay_seconds=_backoff(message.attempts), error=error)
            return
        except (OSError, asyncio.TimeoutError) as exc:  # connection trouble: transient
            await self.db.run(
                outbox.mark_retry, message_id=message.id, delay_seconds=_backoff(message.attempts), error=type(exc).__name__
            )
            return
        await self.db.run(self._sent, message=message, response=response.data)

    async def run_forever(self) -> None:
        while True:
            try:
                sent = await self.drain_once()
            except DatabaseUnavailable as exc:
                log.warning("outbox: database unavailable: %s", exc)
                sent = 0
            if sent:
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.idle_seconds)
            except asyncio.TimeoutError:
                pass

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run_forever(), name="outbox-sender")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None


def _backoff(attempt: int) -> float:
    return min(300.0, 2.0**attempt) * (0.5 + random.random() / 2)
