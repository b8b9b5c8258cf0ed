"""Tracker webhooks on the serve app, one route per tracker module (``/webhooks/<tracker>``):
verify, read, record, answer; the delivery is applied after the answer
(``bot.closing.deliveries``). Every answer is a clear status: 401 bad signature, 400 a body
that is not the tracker's format at all, 404 tracker not configured, 200 otherwise. A correctly
signed delivery the bot does not act on (an event or action it does not read, a pull request closed
unmerged, an issue we do not track) is a 200 with the reason in the body, counted in
``pf_tracker_ignored_total`` by tracker and reason, and logged once per tracker and reason per
process: GitLab disables a hook after repeated 4xx/5xx answers. Nothing is written before a body is
verified and read.

The database unavailable: the verified delivery is kept in the local spool (fsynced, with its
parsed events and a mark under the tracker's secret, ``spool.delivery_mac``) and answered 202;
the spool's replay records and applies it once the database answers (``EventGate.appliers``).
GitHub does not redeliver a failed delivery by itself, and GitLab disables a hook that keeps
failing (https://docs.gitlab.com/user/project/integrations/webhooks/#auto-disabled-webhooks), so a
503 would lose the closure. Only a spool that cannot keep it (full, disk full) answers 503.

A body larger than ``READ_ON_LOOP`` bytes is read in a worker process (``READER``): the readers
are linear (``bot.trackers.markdown``), but a 64 KiB body costs 1–5 ms in single C calls (a regular
expression's scan, ``json.loads``) that keep the interpreter lock whole, and a worker thread would
make the acks wait that long behind it (bench/adversarial_bodies.py). A reader process that cannot
be started or keeps dying: read in a worker thread, logged once. A body not read within
``READ_SECONDS``: the reader is ended (later deliveries get a fresh one), the body is answered 400
and logged with its size and digest; none is known to take more than milliseconds.
"""

import asyncio
import hashlib
import hmac
import json
import logging
from concurrent.futures.process import BrokenProcessPool

from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.closing import deliveries
from bot.closing import service as closing
from bot.runtime.context import Deps
from bot.runtime.event_gate import NotKept
from bot.runtime.spool import Spooled, delivery_mac
from bot.runtime.worker_process import WorkerProcess
from bot.trackers import MODULES, Events, IssueEvent, Malformed, read_delivery
from storage.database import DatabaseUnavailable

log = logging.getLogger(__name__)

MAX_BODY = 5_000_000
READ_ON_LOOP = 4096  # bytes: at most ~0.3 ms of reading (64 KiB naming 5,554 issues: 5 ms)
READ_SECONDS = 10.0  # a body the reader has not read by then is refused (GitHub gives up on us at 10 s)
READER = WorkerProcess("tracker-reader")
_said_broken = False  # this process logged that its reader process is unavailable


def warm_up() -> None:
    """Start the reader process now (the serving process's start), not on the first large delivery."""
    READER.warm_up("bot.trackers")


async def read(tracker: str, body: bytes, headers, policy) -> Events:
    """The delivery's events (``bot.trackers.read_delivery``), read off the event loop when large."""
    if len(body) <= READ_ON_LOOP:
        return read_delivery(tracker, body, headers, policy)
    plain = dict(headers)  # Starlette's names are lower case already; a plain dict pickles
    try:
        return await asyncio.to_thread(READER.call, read_delivery, tracker, body, plain, policy, timeout=READ_SECONDS)
    except BrokenProcessPool as exc:
        global _said_broken
        if not _said_broken:
            _said_broken = True
            log.warning("tracker reader process unavailable (%s): reading large deliveries in a thread", exc)
        return await asyncio.to_thread(read_delivery, tracker, body, plain, policy)


def _answer(status: int, message: str) -> JSONResponse:
    return JSONResponse({"ok": status < 400, "message": message}, status_code=status)


def routes(deps: Deps) -> list[Route]:
    ignored = Counter("pf_tracker_ignored", "Correctly signed tracker deliveries answered 200 and not acted on, by "
                      "tracker and reason (event, action, not_merged, no_state_change)", ["tracker", "reason"],
                      registry=deps.metrics.registry)
    dropped = Counter("pf_tracker_references_dropped", "Closing references named in a pull or merge request beyond "
                      "the per-body cap, not applied", ["tracker"], registry=deps.metrics.registry)
    said: set[tuple[str, str]] = set()  # (tracker, reason) logged by this process
    runner = deps.once(deliveries.runner_for)  # the recovery job's too (bot.closing.jobs)
    gate = deps.events
    assert gate is not None  # the app factory makes the event gate before the routes

    def route(module) -> Route:
        tracker = str(module.TRACKER)

        async def receive(request: Request) -> JSONResponse:
            response = await _receive(request)
            deps.metrics.webhooks.labels(tracker, str(response.status_code)).inc()
            return response

        async def _receive(request: Request) -> JSONResponse:
            secret = getattr(deps.settings, module.SECRET_SETTING)  # read per request
            if not secret:
                return _answer(404, f"{tracker} webhooks are not configured")
            body = await request.body()
            if len(body) > MAX_BODY:
                return _answer(413, "payload too large")
            if not module.verify(secret, body, request.headers):
                return _answer(401, "invalid signature")
            try:
                found = await read(tracker, body, request.headers, deps.policy)
            except TimeoutError as exc:
                log.error("%s delivery of %d bytes (sha256 %s…) refused: %s", tracker, len(body), hashlib.sha256(body).hexdigest()[:12], exc)
                return _answer(400, f"{tracker} payload not read within {READ_SECONDS:g} s; refused")
            except (Malformed, ValueError, LookupError, TypeError, AttributeError, RecursionError) as exc:
                return _answer(400, f"malformed {tracker} payload: {exc if isinstance(exc, Malformed) else type(exc).__name__}")
            if excess := getattr(found, "dropped", 0):
                dropped.labels(tracker).inc(excess)
                log.warning("%s delivery names %d closing references beyond the first %d; those are not applied",
                            tracker, excess, getattr(module, "MAX_REFERENCES", 0))
            if not found:
                reason = getattr(found, "reason", None) or "no_state_change"
                ignored.labels(tracker, reason).inc()
                detail = getattr(found, "detail", "") or "no issue state changed"
                if (tracker, reason) not in said:
                    said.add((tracker, reason))
                    log.info("%s deliveries not acted on (%s), e.g. %s; counted in pf_tracker_ignored_total, logged once",
                             tracker, reason, detail)
                return _answer(200, f"nothing to do: {detail}")
            try:
                if not await deps.db.run_read(closing.names_a_link, events=found):
                    # Nothing it names is linked (an org-wide hook's ordinary PRs): one read, no write.
                    runner.unmatched(tracker, found)
                    return _answer(200, "nothing to do: no linked report has the issues it names")
                delivery = await deps.db.run(deliveries.record, tracker=tracker, body=body, events=found)
            except DatabaseUnavailable as exc:
                return await spool(secret, body, found, exc)
            if delivery is None:
                return _answer(200, "already received")
            runner.apply_soon(delivery)
            return _answer(200, f"accepted {len(found)} event(s)")

        async def spool(secret: str, body: bytes, found: list[IssueEvent], exc: Exception) -> JSONResponse:
            events = json.dumps([e.to_json() for e in found])
            key = f"{tracker}:{hashlib.sha256(body).hexdigest()}"  # a redelivery is the same row
            try:
                await gate.keep_other(kind=tracker, key=key, body=body,
                                      headers={"events": events, "mac": delivery_mac(secret, tracker, body + events.encode())})
            except NotKept as refused:
                log.warning("%s delivery refused for the tracker to retry: database unavailable (%s) and %s", tracker, exc, refused)
                return _answer(503, "database unavailable, retry later")
            log.warning("%s delivery kept in the spool, applied when the database is back: %s", tracker, exc)
            return _answer(202, f"accepted {len(found)} event(s); applied when our database is back")

        async def apply_spooled(entry: Spooled) -> bool:
            """The spool's replay, the database answering: record and apply a kept delivery. False:
            the database went away again (it stays). A mark that does not hold drops it."""
            secret = getattr(deps.settings, module.SECRET_SETTING)
            events = entry.headers.get("events", "")
            expected = delivery_mac(secret, tracker, entry.body + events.encode()) if secret else ""
            if not expected or not hmac.compare_digest(expected, entry.headers.get("mac", "")):
                log.error("spooled %s delivery dropped: its mark does not hold under the configured secret", tracker)
                return True
            found = [IssueEvent.from_json(e) for e in json.loads(events)]
            try:
                delivery = await deps.db.run(deliveries.record, tracker=tracker, body=entry.body, events=found)
            except DatabaseUnavailable:
                return False
            if delivery is not None:
                runner.apply_soon(delivery)
            return True

        gate.appliers[tracker] = apply_spooled
        return Route(f"/webhooks/{tracker}", receive, methods=["POST"])

    return [route(module) for module in MODULES.values()]
