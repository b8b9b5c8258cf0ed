"""A fake Slack Socket Mode endpoint on 127.0.0.1: ``apps.connections.open`` hands out a WebSocket
URL on the same server, which says ``hello`` and then sends the envelopes a test pushes, keeping
every acknowledgement the client sends back. Envelope shape as Slack documents it (and as
slack_sdk's ``SocketModeRequest.from_dict`` reads it): ``type``, ``envelope_id``, ``payload``,
``accepts_response_payload``, ``retry_attempt``, ``retry_reason``."""

import asyncio
import json
import uuid

from aiohttp import WSMsgType, web

from tests.waiting import WAIT_SECONDS, until


class FakeSocketMode:
    def __init__(self):
        self.acks: list[str] = []  # envelope ids acknowledged, in order
        self.answers: dict[str, dict | None] = {}  # envelope id -> the payload its ack carried
        self.url = ""
        self._outgoing: asyncio.Queue = asyncio.Queue()
        self._runner: web.AppRunner | None = None
        self.connected = asyncio.Event()

    async def __aenter__(self) -> "FakeSocketMode":
        app = web.Application()
        app.router.add_post("/api/apps.connections.open", self._open)
        app.router.add_get("/link", self._link)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc) -> None:
        await self._runner.cleanup()

    def push(self, payload: dict, *, retry_attempt: int = 0, kind: str = "events_api") -> str:
        """Send an envelope of ``kind`` carrying ``payload`` (an event_callback body; a slash command's
        fields for ``slash_commands``); its id."""
        envelope_id = str(uuid.uuid4())
        self._outgoing.put_nowait({"envelope_id": envelope_id, "payload": payload, "type": kind,
                                   "accepts_response_payload": kind != "events_api", "retry_attempt": retry_attempt,
                                   "retry_reason": "timeout" if retry_attempt else ""})
        return envelope_id

    async def wait_for_acks(self, n: int, timeout: float = WAIT_SECONDS) -> None:
        await until(lambda: len(self.acks) >= n, what=f"{n} envelopes acked", timeout=timeout)

    async def _open(self, _request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "url": self.url.replace("http://", "ws://") + "/link"})

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(json.dumps({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0APP0001"}}))
        self.connected.set()

        async def send():
            while True:
                await ws.send_str(json.dumps(await self._outgoing.get()))

        sender = asyncio.get_running_loop().create_task(send())
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    data = json.loads(msg.data)
                    if "envelope_id" in data:
                        self.acks.append(data["envelope_id"])
                        self.answers[data["envelope_id"]] = data.get("payload")
        finally:
            sender.cancel()
        return ws
