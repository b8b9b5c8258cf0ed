"""CPU-heavy work that nobody waits on within the ack (the triage card's duplicate scoring) runs in
one thread of its own at the lowest scheduling priority, so the serving thread, which answers
Slack's acks, gets the CPU first; so do the helper processes (``lower_this_thread``).

Linux schedules each thread as a task with its own nice value: ``os.setpriority(PRIO_PROCESS,
native thread id, 19)`` lowers this thread alone (setpriority(2), "Linux notes"; elsewhere the
call fails and the thread keeps the process's priority). Only pure computation goes here, never a
database transaction: a low-priority thread holding SQLite's write lock would make the acks wait
for it (priority inversion). The work itself must release the GIL to leave the event loop free
(rapidfuzz's ``process.cdist`` does).
"""

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
NICE = 19
_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def lower_this_thread() -> None:
    """Put the calling thread, and every thread it starts from now on (they inherit it), at
    ``NICE``: the scoring pool's thread, and the main thread of a helper process of pure
    computation (``bot.runtime.worker_process``: charts, reading large tracker deliveries), called
    first thing in it. Such work holds no database lock and its caller waits for it in a thread,
    so at the lowest priority it costs the acks nothing when the machine's CPUs are all busy; idle
    CPUs still run it at full speed."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
    except (OSError, AttributeError):  # not Linux, or not allowed: the process's priority
        pass


def pool() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pf-low-cpu", initializer=lower_this_thread)
        return _pool


async def low_priority(fn: Callable[[], T]) -> T:
    """``fn()`` in the low-priority thread; one at a time, in order."""
    return await asyncio.get_running_loop().run_in_executor(pool(), fn)
