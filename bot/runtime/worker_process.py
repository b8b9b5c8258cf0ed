"""CPU work that must not hold the serving process's interpreter lock, done in a spawned process.

Why a process and not a thread: a worker thread still shares the interpreter lock with the event
loop that answers acks, and a single C call (a regular expression over 64 KiB, ``json.loads``, a
chart's rendering) keeps it for its whole length, whatever the switch interval
(``bot.runtime.interpreter``). In a process of its own it costs the loop nothing but the pickling.

One ``WorkerProcess`` per purpose (the charts; reading tracker deliveries), so one kind of work
never queues behind another. Each is one spawned process per calling process, started on first use
(``warm_up`` starts it early), that imports only what the function it runs needs (the function is
pickled by reference: it must be a module-level function of a light module). ``call`` blocks, so
the caller runs it in its own worker thread (``anyio.to_thread``), without the lock. A process that
died (killed, out of memory) is replaced once per call (``BrokenProcessPool`` after that reaches the
caller); errors raised by the function reach the caller as they are.
"""

import importlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Any


def _in_worker(owner: int) -> None:
    """In the worker: the lowest CPU priority (``bot.runtime.cpu``), so that on a busy machine a
    burst of large deliveries or charts waits for the CPU rather than the acks. Ctrl-C in a
    terminal signals the whole process group, this worker too; the process that owns it ends it (at
    its own shutdown), so SIGINT must not kill it mid-wait with a KeyboardInterrupt traceback (and
    leaked semaphores) in the log. An owner that ends without stopping it (killed) takes it along
    (``lifeline``)."""
    from bot.runtime import cpu, lifeline

    cpu.lower_this_thread()  # first: the threads started below inherit it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lifeline.follow(owner)


def _import(module: str) -> None:
    importlib.import_module(module)  # the module itself cannot be pickled back


class WorkerProcess:
    """A lazily spawned one-process pool, per calling process (a forked child makes its own)."""

    def __init__(self, name: str):
        self.name = name
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._pool_pid = 0

    def executor(self, *, replacing: ProcessPoolExecutor | None = None) -> ProcessPoolExecutor:
        """This process's pool, started if there is none; ``replacing``: a pool found broken, replaced
        unless another call replaced it already (calls that met the same death make one new pool
        between them, not one each, shutting each other's down)."""
        with self._lock:
            pool = self._pool if self._pool_pid == os.getpid() else None  # a forked child's is its parent's
            if pool is None or pool is replacing:
                if pool is not None:
                    pool.shutdown(wait=False, cancel_futures=True)
                pool = self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                                        initializer=_in_worker, initargs=(os.getpid(),))
                self._pool_pid = os.getpid()
            return pool

    def call(self, fn: Callable[..., Any], /, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in the process; blocks until it returns (or raises). ``timeout``
        seconds without an answer: the process is ended (the next call starts a fresh one, so one
        runaway call does not hold up every later one) and ``TimeoutError`` raised."""
        pool = self.executor()
        try:
            return self._run(pool, fn, args, kwargs, timeout)
        except BrokenProcessPool:  # the process died (killed, out of memory, another call's timeout): a fresh one, once
            return self._run(self.executor(replacing=pool), fn, args, kwargs, timeout)

    def _run(self, pool: ProcessPoolExecutor, fn: Callable[..., Any], args: tuple, kwargs: dict, timeout: float | None) -> Any:
        try:
            future = pool.submit(fn, *args, **kwargs)
        except RuntimeError as exc:  # broken, or shut down meanwhile (another call's timeout, stop)
            raise BrokenProcessPool(str(exc)) from exc
        try:
            return future.result(timeout)
        except FutureTimeout:
            self._end(pool, future)
            raise TimeoutError(f"{self.name} process gave no answer within {timeout:g} s; ended") from None
        except CancelledError as exc:  # the pool was shut down with this call still queued
            raise BrokenProcessPool(f"{self.name} process ended with the call queued") from exc

    def _end(self, pool: ProcessPoolExecutor, late: Future) -> None:
        """End ``pool``'s process, running ``late``, if it is still this process's pool: SIGKILL, as a
        runaway call may not listen; the next call starts a fresh one."""
        with self._lock:
            if self._pool is not pool or self._pool_pid != os.getpid() or late.done():
                return
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.kill()
            pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def warm_up(self, module: str) -> Future:
        """Start the process now and import ``module`` there, so the first call does not wait for either."""
        return self.executor().submit(_import, module)

    def pids(self) -> list[int]:
        """The process's pid, once started (tests)."""
        pool = self._pool
        return list(getattr(pool, "_processes", None) or {}) if pool is not None and self._pool_pid == os.getpid() else []

    def stop(self) -> None:
        """End this process's worker, if it started one (at the serving process's shutdown): it
        leaves when asked, its queues' semaphores released, rather than being ended by its lifeline."""
        with self._lock:
            if self._pool is not None and self._pool_pid == os.getpid():
                self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

