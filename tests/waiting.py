"""Waiting in tests for something to happen, with a deadline generous enough for a loaded machine.

A test never sleeps a fixed time to let something happen: it waits for the condition itself, and
on failure names what it waited for and for how long. The deadline is for a machine running the
suite beside other work (two CPUs at load 20: a server's start, or a round trip, can take many
seconds), not a timing goal: timing goals are measured in bench/.

``wait_for(predicate, what=..., timeout=WAIT_SECONDS, interval=0.02)`` -> the predicate's first
truthy value; raises AssertionError("gave up after 60 s waiting for <what>") otherwise.
``await until(predicate, ...)`` is the same on the event loop (the predicate may be async), so the
app's tasks run while it waits.
"""

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

WAIT_SECONDS = 60.0  # generous: a loaded 2-CPU CI machine, not how long it should take


def _gave_up(what: str, timeout: float, last) -> AssertionError:
    detail = f" (last seen: {last!r})" if last not in (None, False) else ""
    return AssertionError(f"gave up after {timeout:g} s waiting for {what}{detail}")


def wait_for(predicate: Callable[[], T], *, what: str, timeout: float = WAIT_SECONDS, interval: float = 0.02) -> T:
    """Call ``predicate`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise _gave_up(what, timeout, value)
        time.sleep(interval)


async def until(predicate: Callable[[], T | Awaitable[T]], *, what: str, timeout: float = WAIT_SECONDS,
                interval: float = 0.02) -> T:
    """``wait_for`` on the event loop: other tasks run between looks."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise _gave_up(what, timeout, value)
        await asyncio.sleep(interval)
