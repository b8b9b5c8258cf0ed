"""Slack requests refused for their signature, made visible: a wrong ``SLACK_SIGNING_SECRET`` makes
every request 401, and the access log alone does not say why.

Each refusal is counted on ``/metrics`` as ``pf_slack_signature_refused_total{reason}`` (``missing``:
no timestamp or signature header; ``stale``: a timestamp outside Slack's 5-minute window, a clock
off or a replay; ``mismatch``: a fresh request whose HMAC is not ours, the wrong secret or a
forgery), and a warning naming ``SLACK_SIGNING_SECRET`` is logged at most once a minute per reason,
with how many were refused since the last one. Slack's v0 signing:
https://api.slack.com/authentication/verifying-requests-from-slack.
"""

import logging
import time

from bot.runtime.guard import SIGNATURE_WINDOW

log = logging.getLogger("platform_feedback")
EVERY_SECONDS = 60.0

ADVICE = {
    "mismatch": "its signature does not match SLACK_SIGNING_SECRET: if Slack's own requests are refused, copy the "
                "Signing Secret from your app's Basic Information > App Credentials into SLACK_SIGNING_SECRET and restart",
    "stale": f"its timestamp is more than {SIGNATURE_WINDOW} s from this machine's clock: check the clock (NTP), "
             "or it is a replayed request",
    "missing": "it has no X-Slack-Request-Timestamp / X-Slack-Signature headers: it did not come from Slack "
               "(or a proxy in front of the bot drops them)",
}


def reason(headers) -> str:
    """Why a request that failed ``guard.signed_by_slack`` failed: missing, stale or mismatch."""
    ts, signature = headers.get("x-slack-request-timestamp", ""), headers.get("x-slack-signature", "")
    if not ts or not signature or not (ts.isascii() and ts.isdigit()) or len(ts) > 12:
        return "missing"
    if abs(time.time() - int(ts)) > SIGNATURE_WINDOW:
        return "stale"
    return "mismatch"


class SignatureWatch:
    def __init__(self, metrics, *, every: float = EVERY_SECONDS):
        self.counter = metrics.signature_refused
        self.every = every
        self._last: dict[str, float] = {}  # reason -> monotonic time of its last warning
        self._since: dict[str, int] = {}  # reason -> refusals not yet told

    def refused(self, path: str, headers) -> None:
        why = reason(headers)
        self.counter.labels(why).inc()
        self._since[why] = self._since.get(why, 0) + 1
        now = time.monotonic()
        if now - self._last.get(why, -self.every) >= self.every:
            count, self._since[why] = self._since[why], 0
            self._last[why] = now
            log.warning("Slack request to %s refused (401): %s (%d refused for this reason since the last warning)",
                        path, ADVICE[why], count)
