"""Prometheus metrics for /metrics: one registry per app (so tests and several apps in one process
do not collide). Outbox depth and age are read from the database at scrape time."""

import time
from collections.abc import Callable
from enum import StrEnum
from functools import cache

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily


class Metrics:
    def __init__(self, outbox_stats: Callable[[], tuple[int, float]] | None = None):
        self.registry = CollectorRegistry()
        self.requests = Counter("pf_slack_requests", "Slack requests by listener and HTTP status",
                                ["listener", "status"], registry=self.registry)
        self.ack_seconds = Histogram("pf_slack_ack_seconds", "Time from request to Slack's answer (the ack), by listener",
                                     ["listener"], registry=self.registry,
                                     buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5))
        self.send_errors = Counter("pf_outbox_send_errors", "Outbox sends Slack refused, by error code",
                                   ["method", "error"], registry=self.registry)
        self.sent = Counter("pf_outbox_sent", "Outbox messages sent, by method", ["method"], registry=self.registry)
        self.scheduler_runs = Counter("pf_scheduler_runs", "Scheduled job runs by job and outcome (ran, skipped, failed)",
                                      ["job", "outcome"], registry=self.registry)
        # Slack's own word that it dropped events (app_rate_limited: over 30,000 events an hour from
        # one workspace, https://docs.slack.dev/reference/events/app_rate_limited/), by workspace.
        self.slack_dropped = Counter("pf_slack_rate_limited_notices", "app_rate_limited notices: Slack dropped events for the app, by workspace",
                                     ["team"], registry=self.registry)
        # Correctly signed requests no listener takes (an event type or id the bot does not handle):
        # answered 200 rather than Bolt's 404, which Slack retries and counts against the app.
        self.unhandled = Counter("pf_slack_unhandled", "Signed Slack requests the bot does not act on (answered 200), by kind",
                                 ["listener"], registry=self.registry)
        # bot.runtime.signature_watch: a wrong SLACK_SIGNING_SECRET shows here (reason "mismatch")
        self.signature_refused = Counter("pf_slack_signature_refused", "Slack requests refused (401) for their signature, "
                                         "by reason (missing, stale, mismatch)", ["reason"], registry=self.registry)
        self.webhooks = Counter("pf_webhooks", "Tracker webhook deliveries by tracker and status",
                                ["tracker", "status"], registry=self.registry)
        if outbox_stats is not None:
            self.registry.register(_OutboxCollector(outbox_stats))

    def watch_spool(self, status: Callable[[], dict]) -> None:
        """Gauges of the event spool read at scrape time (``EventSpool.status``)."""
        self.registry.register(_SpoolCollector(status))

    def observe_send(self, method: str, error: str | None) -> None:
        if error is None:
            self.sent.labels(method).inc()
        else:
            self.send_errors.labels(method, error[:40]).inc()

    def render(self) -> bytes:
        """The exposition text. Blocking (it may query the database): call it in a worker thread."""
        return generate_latest(self.registry)


# Where ArrivalTime keeps a request's arrival (time.perf_counter()) in its ASGI scope.
ARRIVED = "platform_feedback.arrived"


class ArrivalTime:
    """The outermost ASGI layer: notes when each HTTP request arrived (its headers read, before any
    of its body) in ``scope[ARRIVED]``, so the ack histogram counts the time spent receiving the
    body and waiting for the event loop, as the client sees it (issue #15: measured after the body
    was read, it showed every ack under 1 s while clients saw p99 over 4 s)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            scope[ARRIVED] = time.perf_counter()
        await self.app(scope, receive, send)


def seconds_since_arrival(scope) -> float:
    """Seconds since ArrivalTime saw the request (since now, were it not installed)."""
    return time.perf_counter() - scope.get(ARRIVED, time.perf_counter())


class _OutboxCollector:
    def __init__(self, stats: Callable[[], tuple[int, float]]):
        self.stats = stats

    def collect(self):
        depth, age = self.stats()
        yield GaugeMetricFamily("pf_outbox_depth", "Outbox messages waiting to be sent", value=depth)
        yield GaugeMetricFamily("pf_outbox_oldest_age_seconds", "Age of the oldest message waiting", value=age)

    def describe(self):
        return []


class _SpoolCollector:
    def __init__(self, status: Callable[[], dict]):
        self.status = status

    def collect(self):
        state = self.status()
        events = GaugeMetricFamily("pf_event_spool_events", "Events and deliveries in the local spool, by state "
                                   "(held: a person's request before its ack; live: acked and being handled; "
                                   "waiting/replaying: for the database)", labels=["state"])
        for name in ("held", "live", "waiting", "replaying"):
            events.add_metric([name], state.get(name, 0))
        yield events
        yield GaugeMetricFamily("pf_event_spool_bytes", "Bytes of bodies held in the local spool", value=state.get("bytes", 0))
        yield GaugeMetricFamily("pf_event_spool_ok", "1 when the spool can keep new events (0: disk full or failing; "
                                "see /healthz and the log)", value=0 if state.get("problem") else 1)

    def describe(self):
        return []


@cache
def _known_ids() -> frozenset[str]:
    """Every action and callback id the bot registers listeners for: the only ids a label may name.
    Found by name in each feature's ids module (``bot/<feature>/ids.py``): its StrEnums named
    ``…Action`` or ``…Callback`` and its ``…_ACTION`` constants, so a new feature's ids are counted
    without a list here to forget."""
    import importlib
    import pkgutil

    import bot

    found: set[str] = set()
    for package in pkgutil.iter_modules(bot.__path__):
        if not package.ispkg:
            continue
        try:
            module = importlib.import_module(f"bot.{package.name}.ids")
        except ModuleNotFoundError as exc:
            if exc.name != f"bot.{package.name}.ids":
                raise
            continue
        for name, value in vars(module).items():
            if isinstance(value, type) and issubclass(value, StrEnum) and name.endswith(("Action", "Callback")):
                found.update(value)
            elif isinstance(value, str) and name.endswith(("_ACTION", "_CALLBACK")):
                found.add(value)
    return frozenset(found)


KNOWN_EVENTS = frozenset({"message", "reaction_added", "app_home_opened", "app_mention", "tokens_revoked", "app_uninstalled"})
# Answering an anonymous survey: not observed at all, so that /metrics does not change when
# someone answers (lined up with DM times, even a bare count could tell who did).
UNOBSERVED = frozenset({"action:survey_answer", "action:survey_comment", "view:survey_comment_modal",
                        "action:usage_csat_score", "action:usage_csat_comment", "view:usage_csat_comment_modal"})  # bot.usage.ids.UNOBSERVED


def listener_name(body: dict) -> str:
    """A low-cardinality label for what a Slack request asked for, from a fixed vocabulary: an
    action or view is named by its registered id without any value suffix (``survey_answer:3``
    -> ``action:survey_answer``), an event by its type if the bot handles it; anything else
    (an id or type the bot does not know, an odd shape) is ``<kind>:other`` or ``unknown``.
    Nothing a payload carries beyond a known id reaches a label."""
    try:
        return _listener_name(body)
    except (LookupError, TypeError, AttributeError):
        return "unknown"


def _id(value: object) -> str:
    stem = str(value).split(":", 1)[0]
    return stem if stem in _known_ids() else "other"


def _listener_name(body: dict) -> str:
    kind = body.get("type") or ("command" if "command" in body else "unknown")
    if kind == "event_callback":
        event = str((body.get("event") or {}).get("type", "?"))
        return f"event:{event if event in KNOWN_EVENTS else 'other'}"
    if "command" in body:
        return f"command:{'/platform-feedback' if body['command'] == '/platform-feedback' else 'other'}"
    if kind == "block_actions":
        actions = body.get("actions") or [{}]
        return f"action:{_id(actions[0].get('action_id', '?'))}"
    if kind in ("view_submission", "view_closed"):
        return f"view:{_id((body.get('view') or {}).get('callback_id', '?'))}"
    if kind in ("shortcut", "message_action"):
        return f"shortcut:{_id(body.get('callback_id', '?'))}"
    if kind in ("url_verification", "app_rate_limited", "interactive_message", "block_suggestion", "unknown"):
        return str(kind)
    return "other"
