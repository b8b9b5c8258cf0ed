"""What a client may hold of the HTTP server (issue #26 item 7): time to send a request's headers,
time to send its body, time idle between requests, how many connections at once; and requests
whose length is ambiguous refused, their connection closed.

uvicorn's h11 protocol (uvicorn 0.55, h11 0.16; httptools is not installed) has a keep-alive
timeout (``timeout_keep_alive``, armed only after a response), but no deadline for a connection
that never finishes its headers (slowloris, or a connection that sends nothing), no cap on
connections (``limit_concurrency`` answers 503 to requests beyond it, and keeps every connection
open), and it accepts a request with both ``Content-Length`` and ``Transfer-Encoding: chunked``
(h11 frames it by the chunks and then reads what follows the last chunk as the next request).
RFC 9112 §6.3: such a message "ought to be handled as an error", and a server that handles it
"MUST close the connection after responding". h11 itself refuses two different Content-Lengths,
several Transfer-Encoding headers and any coding but chunked (checked: ``RemoteProtocolError``).

``LimitedH11Protocol`` is uvicorn's h11 protocol with those limits (``protocol(limits)`` makes the
class uvicorn is given as ``http=``):
- headers: from a connection's start, or from the first byte of its next request, the request line
  and headers must have arrived within ``header_seconds``, or the connection is closed (no answer:
  nothing was asked);
- idle: ``keep_alive_seconds`` after a response (uvicorn's own timer);
- connections: past ``max_connections`` open at once a new connection is closed at once, so the
  process keeps descriptors and memory for the requests it serves (one warning a minute says so);
- framing: ``Content-Length`` with ``Transfer-Encoding`` is answered 400 and the connection closed,
  so nothing after it on that connection is read;
- a response sent before the request's body was all read (413, 408 from ``guard.BodyLimit``) closes
  the connection: the rest of the body is never read.
The body's own deadline (``body_seconds``) is ``bot.runtime.guard.BodyLimit``'s, in the ASGI layer.
"""

import logging
import time
from dataclasses import dataclass

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("platform_feedback")
WARN_EVERY = 60.0  # seconds between two "connection cap reached" warnings


@dataclass(frozen=True)
class Limits:
    header_seconds: float = 10.0
    body_seconds: float = 30.0
    keep_alive_seconds: float = 5.0
    max_connections: int = 500

    @classmethod
    def from_settings(cls, settings) -> "Limits":
        return cls(settings.http_header_seconds, settings.http_body_seconds, settings.http_keep_alive_seconds,
                   settings.http_max_connections)


class AmbiguousFraming(h11.RemoteProtocolError):
    pass


class _FramingChecked(h11.Connection):
    """h11's server connection that refuses a request framed both by length and by chunks."""

    def next_event(self):
        event = super().next_event()
        if isinstance(event, h11.Request):
            names = {name.lower() for name, _value in event.headers}
            if b"content-length" in names and b"transfer-encoding" in names:
                raise AmbiguousFraming("both Content-Length and Transfer-Encoding (RFC 9112 section 6.3)")
        return event


class LimitedH11Protocol(H11Protocol):
    limits = Limits()
    _last_warning = 0.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        size = self.config.h11_max_incomplete_event_size or h11._connection.DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
        self.conn = _FramingChecked(h11.SERVER, max_incomplete_event_size=size)
        self._header_timer = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            now = time.monotonic()
            if now - LimitedH11Protocol._last_warning >= WARN_EVERY:
                LimitedH11Protocol._last_warning = now
                log.warning("HTTP: %d connections open, the most HTTP_MAX_CONNECTIONS allows: new ones are closed at once",
                            self.limits.max_connections)
            transport.abort()
            return
        self._arm_header_timer()

    def connection_lost(self, exc) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._awaiting_request():
            self._arm_header_timer()  # the first bytes of the next request on a kept-alive connection
        super().data_received(data)
        if not self._awaiting_request():
            self._cancel_header_timer()

    def on_response_complete(self) -> None:
        unread_body = self.conn.their_state is h11.SEND_BODY
        super().on_response_complete()
        if unread_body and not self.transport.is_closing():
            self._unset_keepalive_if_required()
            self.transport.close()

    def _awaiting_request(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.limits.header_seconds, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._awaiting_request() and not self.transport.is_closing():
            self.transport.close()


def protocol(limits: Limits) -> type[LimitedH11Protocol]:
    """The protocol class for uvicorn's ``http=`` with ``limits``."""
    return type("LimitedH11Protocol", (LimitedH11Protocol,), {"limits": limits})


def uvicorn_options(settings) -> dict:
    """uvicorn.run / uvicorn.Config keyword arguments for ``settings``' limits."""
    limits = Limits.from_settings(settings)
    return {"http": protocol(limits), "timeout_keep_alive": limits.keep_alive_seconds}
