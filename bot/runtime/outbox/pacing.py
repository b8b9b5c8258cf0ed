"""Pacing: each Slack method at its rate limit, one channel's posts at Slack's per-channel pace, and
a method paused as a whole when Slack answers 429 Retry-After or is failing it (an outage).

Slack limits calls "per API method per app per workspace" in per-minute windows
(api.slack.com/apis/rate-limits; SLACK_FACTS.md §5 for each method's tier):
  Tier 2 "20+ per minute", "occasional bursts"; Tier 3 "50+ per minute", "sporadic bursts are
  welcome"; Tier 4 "100+ per minute", "generous burst behavior".
  chat.postMessage (Special): "It will generally allow an app to post 1 message per second to a
  specific channel. There are limits governing your app's relationship with the entire workspace
  above that, limiting posting to several hundred messages per minute. Generous burst behavior is
  also granted." (docs.slack.dev/reference/methods/chat.postMessage, quoted in slackapi/java-slack-sdk
  MethodsRateLimitTier). And: "Posting messages: 1 per second. Short bursts >1 allowed. If you
  attempt bursts, there is no guarantee that messages will be stored or displayed".
So each method is paced workspace-wide at the floor of its tier, with a burst that keeps any minute
under the floor plus a little; chat.postMessage at 2/s (120 a minute, well under "several hundred")
and, per channel, at 1/s with bursts of 3. Override per workspace: OutboxSender(rates=..., bursts=...).
"""

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager

# Not a Web API method: slack_sdk's files_upload_v2 (getUploadURLExternal, the upload, then
# completeUploadExternal). Its outbox payload carries the file as ``content_b64``.
UPLOAD = "files.uploadV2"

DEFAULT_RATES: dict[str, float] = {  # calls per second, workspace-wide
    "chat.postMessage": 2.0,  # Special: "several hundred messages per minute"
    "chat.update": 50 / 60,  # Tier 3
    "chat.postEphemeral": 100 / 60,  # Tier 4
    "conversations.open": 50 / 60,  # Tier 3
    "views.publish": 100 / 60,  # Tier 4
    "views.update": 100 / 60,  # Tier 4
    UPLOAD: 100 / 60,  # files.getUploadURLExternal + files.completeUploadExternal, Tier 4 each
}
DEFAULT_BURSTS: dict[str, int] = {  # calls back to back after a quiet spell
    "chat.postMessage": 20,  # "generous burst behavior": a minute never sees more than 140
    "chat.update": 10,  # "sporadic bursts are welcome"
    "chat.postEphemeral": 20,
    "views.publish": 20,
    "views.update": 20,
}
DEFAULT_RATE, DEFAULT_BURST = 20 / 60, 3  # any other method: Tier 2, the lowest the bot could meet
CHANNEL_RATES: dict[str, float] = {"chat.postMessage": 1.0}  # per channel, on top of the above
CHANNEL_BURST = 3  # "short bursts >1 allowed", kept short: a burst may not be displayed
RATELIMITED_PAUSE = 1.0  # a 429 without Retry-After: what slack_sdk's own retry handler waits
# A turn woken this late (the event loop was busy) has passed and is not taken: going now would
# bunch it with the turns after it. At least one interval, and never less than this many seconds:
# at 100 calls a second one interval is 10 ms, less than a busy loop's ordinary jitter, and giving
# up every turn woken 10 ms late lost a tenth of the allowed rate (issue #15). Within this margin
# a late turn goes, so any one second still sees at most rate x 1 s + burst + rate x LATE_MARGIN calls.
LATE_MARGIN = 0.05


def backoff(attempt: int) -> float:
    """Seconds to wait after the ``attempt``-th failure: 2**attempt, at most 300, jittered down to half."""
    return min(300.0, 2.0**attempt) * (0.5 + random.random() / 2)


class MethodLimiter:
    """Paces one method: ``rate`` calls a second, ``burst`` of them back to back after a quiet
    spell, and none at all until a pause (429 Retry-After) is over. Turns are handed out in the
    order asked for (a virtual schedule, GCRA), so waiting callers never crowd one instant."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.interval = 1.0 / rate
        self.burst = burst
        self.clock = clock
        self.paused_until = -math.inf
        self._tat = -math.inf  # when the schedule is next free, were there no burst allowance

    def next_start(self) -> float:
        """The earliest time the next turn could start."""
        now = self.clock()
        return max(now, self._tat - (self.burst - 1) * self.interval, self.paused_until)

    def reserve(self, latest: float = math.inf) -> float | None:
        """Take the next turn and return when it starts, or None (nothing taken) if after ``latest``."""
        start = self.next_start()
        if start > latest:
            return None
        self._tat = max(self._tat, self.clock(), start) + self.interval
        return start

    def pause(self, seconds: float) -> None:
        """Slack said wait: nothing starts before ``seconds`` from now, then at the plain rate."""
        until = self.clock() + seconds
        self.paused_until = max(self.paused_until, until)
        self._tat = max(self._tat, self.paused_until + (self.burst - 1) * self.interval)

    def paused(self) -> bool:
        return self.clock() < self.paused_until

    def idle(self) -> bool:
        """Nothing reserved ahead and no pause: forgetting it changes nothing."""
        return self._tat <= self.clock() and not self.paused()


class Pacing:
    """Every method's and channel's limiter, and which methods Slack is failing (an outage)."""

    def __init__(
        self,
        *,
        rates: dict[str, float] | None,
        bursts: dict[str, int] | None,
        channel_rates: dict[str, float] | None,
        channel_burst: int,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ):
        self.rates = DEFAULT_RATES | (rates or {})
        self.bursts = DEFAULT_BURSTS | (bursts or {})
        self.channel_rates = CHANNEL_RATES if channel_rates is None else channel_rates
        self.channel_burst = channel_burst
        self.clock = clock
        self.sleep = sleep
        self._limiters: dict[str, MethodLimiter] = {}
        self._channel_limiters: dict[tuple[str, str], MethodLimiter] = {}
        self._outages: dict[str, int] = {}  # method -> failures in a row while Slack is failing it
        self._outage_gates: dict[str, asyncio.Lock] = {}

    def limiter(self, method: str) -> MethodLimiter:
        """The method's workspace-wide pace (and pause)."""
        if method not in self._limiters:
            rate, burst = self.rates.get(method, DEFAULT_RATE), self.bursts.get(method, DEFAULT_BURST)
            self._limiters[method] = MethodLimiter(rate, burst, self.clock)
        return self._limiters[method]

    def channel_limiter(self, method: str, channel: str | None) -> MethodLimiter | None:
        """One channel's pace for ``method`` (None: the method has no per-channel limit)."""
        if not channel or method not in self.channel_rates:
            return None
        key = (method, channel)
        if key not in self._channel_limiters:
            if len(self._channel_limiters) > 10_000:  # forget channels that have been quiet
                self._channel_limiters = {k: v for k, v in self._channel_limiters.items() if not v.idle()}
            self._channel_limiters[key] = MethodLimiter(self.channel_rates[method], self.channel_burst, self.clock)
        return self._channel_limiters[key]

    def claim_limit(self, method: str, seconds: float) -> int:
        """How many of ``method`` can go in ``seconds`` (a burst, then the rate), at most 500."""
        rate, burst = self.rates.get(method, DEFAULT_RATE), self.bursts.get(method, DEFAULT_BURST)
        return min(500, burst + int(rate * seconds))

    def paused_methods(self) -> set[str]:
        return {method for method, limiter in self._limiters.items() if limiter.paused()}

    async def turn(self, limiter: MethodLimiter, latest: float) -> bool:
        """Wait for the next turn. False (nothing taken) if it would start after ``latest``."""
        while True:
            start = limiter.reserve(latest)
            if start is None:
                return False
            delay = start - self.clock()
            if delay > 0:
                await self.sleep(delay)
                if self.clock() - start > max(limiter.interval, LATE_MARGIN):
                    continue  # woken too late: this turn has passed (LATE_MARGIN says why)
            if not limiter.paused():
                return True
            # A 429 paused the method while we waited: take a turn after the pause.

    @asynccontextmanager
    async def outage_gate(self, method: str):
        """While Slack is failing ``method``, one request of it at a time: each waits for the one
        before it to find out whether Slack is back (and, if not, for the longer pause it brought)."""
        if method not in self._outages:
            yield
            return
        async with self._outage_gates.setdefault(method, asyncio.Lock()):
            yield

    def failing(self, method: str) -> float | None:
        """Slack failed ``method`` again: pause it, longer after each failure in a row, and return
        the pause (seconds). None if it was already paused: a failure arriving during a pause was in
        flight before it, and does not escalate."""
        limiter = self.limiter(method)
        if limiter.paused():
            return None
        failures = self._outages[method] = self._outages.get(method, 0) + 1
        pause = backoff(failures)
        limiter.pause(pause)
        return pause

    def failures(self, method: str) -> int:
        return self._outages.get(method, 0)

    def answered(self, method: str) -> None:
        """Slack answered ``method``: whatever outage there was is over."""
        self._outages.pop(method, None)
