"""Tracker webhooks on the serve app, one route per tracker module (``/webhooks/<tracker>``):
verify, read, record, answer; the delivery is applied after the answer
(``bot.operations.deliveries``). Every answer is a clear status: 401 bad signature, 400 malformed
body, 404 tracker not configured, 200 otherwise (also for an issue we do not track, so the
tracker does not retry it). Nothing is written before a body is verified and read.

The database unavailable: the verified delivery is kept in the local spool (fsynced, with its
parsed events and a mark under the tracker's secret, ``spool.delivery_mac``) and answered 202;
the spool's replay records and applies it once the database answers (``EventGate.appliers``).
GitHub does not redeliver a failed delivery by itself, and GitLab disables a hook that keeps
failing (https://docs.gitlab.com/user/project/integrations/webhooks/#auto-disabled-webhooks), so a
503 would lose the closure. Only a spool that cannot keep it (full, disk full) answers 503."""

import hashlib
import hmac
import json

import logging

from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.operations import deliveries
from bot.runtime.context import Deps
from bot.runtime.event_gate import NotKept
from bot.runtime.spool import Spooled, delivery_mac
from bot.runtime.scheduler import Job, interval_slot, interval_trigger
from bot.trackers import MODULES, IssueEvent, Malformed
from storage.database import DatabaseUnavailable

log = logging.getLogger(__name__)

MAX_BODY = 5_000_000
RECOVERY_JOB = "closing.deliveries"


def _answer(status: int, message: str) -> JSONResponse:
    return JSONResponse({"ok": status < 400, "message": message}, status_code=status)


def routes(deps: Deps) -> list[Route]:
    events = Counter("pf_tracker_events", "Tracker webhook deliveries applied, by tracker and outcome "
                     "(applied, unchanged, unmatched: no linked report has any issue it names)",
                     ["tracker", "outcome"], registry=deps.metrics.registry)
    runner = deliveries.Deliveries(db=deps.db, policy=deps.policy, observe=lambda t, o: events.labels(t, o).inc(),
                                   wake=deps.sender.wake)
    if any(getattr(deps.settings, m.SECRET_SETTING) for m in MODULES.values()):  # no webhooks, nothing to recover
        deps.scheduler.add(Job(name=RECOVERY_JOB, db=deps.db, work=deliveries.prune, then=runner.recover,
                               occurrence_at=interval_slot(1)),
                           interval_trigger(1), misfire_grace_seconds=60)

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
                found = module.read(body, request.headers, deps.policy)
            except (Malformed, ValueError, LookupError, TypeError, AttributeError, RecursionError) as exc:
                return _answer(400, f"malformed {tracker} payload: {exc if isinstance(exc, Malformed) else type(exc).__name__}")
            if not found:
                return _answer(200, "nothing to do")
            try:
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
                await deps.events.keep_other(kind=tracker, key=key, body=body,
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

        deps.events.appliers[tracker] = apply_spooled
        return Route(f"/webhooks/{tracker}", receive, methods=["POST"])

    return [route(module) for module in MODULES.values()]
