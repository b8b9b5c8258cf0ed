"""tests/waiting.py: waiting for a condition returns its value, and giving up names what it waited for."""

import pytest

from tests.waiting import until, wait_for


def test_wait_for_returns_the_first_truthy_value_and_names_what_it_gave_up_on():
    seen = iter([0, None, "ready"])
    assert wait_for(lambda: next(seen), what="readiness", interval=0) == "ready"
    with pytest.raises(AssertionError, match=r"gave up after 0.05 s waiting for the answer \(last seen: \[\]\)"):
        wait_for(lambda: [], what="the answer", timeout=0.05, interval=0.01)


async def test_until_awaits_an_async_predicate_and_lets_other_tasks_run():
    import asyncio

    done = asyncio.Event()
    asyncio.get_running_loop().call_later(0.01, done.set)

    async def finished():
        return done.is_set()

    assert await until(finished, what="the timer") is True
    with pytest.raises(AssertionError, match="gave up after 0.05 s waiting for never"):
        await until(lambda: False, what="never", timeout=0.05)
