"""Charts drawn in a worker process: PNG (``line_chart``, ``bar_chart``) for Slack posts and the CLI,
inline SVG (``svg_line_chart``, ``svg_bar_chart``) for the dashboard. Same signatures and results as
``bot.charts.drawing``, which does the drawing with matplotlib.

Why a process: drawing holds the interpreter lock for hundreds of ms per chart; in the serving
process that stalled every ack waiting on the event loop (issue #15: worst ack 3.7 times idle while
the dashboard or the digest drew). The worker is one spawned process per calling process, started on
first use (``warm_up`` starts it early), that never imports the bot's app, its database or Slack;
the caller blocks in its own worker thread on the result, without the lock. The serving process
never imports matplotlib. A worker that died is replaced once per call (``BrokenProcessPool``);
errors raised while drawing reach the caller as they are.
"""

import multiprocessing
import os
import signal
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_pool_pid = 0  # the process that made _pool: a forked child makes its own


def _draw(name: str, args: tuple, kwargs: dict):
    """Runs in the worker: ``bot.charts.drawing.<name>(*args, **kwargs)``. Imported there, by name, so the
    caller never imports matplotlib to pickle a reference to the function."""
    from bot.charts import drawing

    return getattr(drawing, name)(*args, **kwargs)


def _executor(*, fresh: bool = False) -> ProcessPoolExecutor:
    global _pool, _pool_pid
    with _lock:
        if fresh or _pool is None or _pool_pid != os.getpid():
            if _pool is not None and _pool_pid == os.getpid():
                _pool.shutdown(wait=False, cancel_futures=True)
            _pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_in_worker, initargs=(os.getpid(),))
            _pool_pid = os.getpid()
        return _pool


def _in_worker(owner: int) -> None:
    """In the worker: Ctrl-C in a terminal signals the whole process group, this worker too; the
    process that owns it ends it (at its own shutdown), so SIGINT must not kill it mid-wait with a
    KeyboardInterrupt traceback (and leaked semaphores) in the log. An owner that ends without
    stopping it (killed) takes it along (``lifeline``)."""
    from bot.runtime import lifeline

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lifeline.follow(owner)


def _call(name: str, *args, **kwargs):
    try:
        return _executor().submit(_draw, name, args, kwargs).result()
    except BrokenProcessPool:  # the worker was killed (e.g. out of memory): one fresh one, once
        return _executor(fresh=True).submit(_draw, name, args, kwargs).result()


def warm_up() -> Future:
    """Start the worker and import matplotlib there now, so the first chart does not wait ~1 s for it."""
    return _executor().submit(_import_drawing)


def stop() -> None:
    """End this process's chart worker, if it started one (at the serving process's shutdown): it
    leaves when asked, its queues' semaphores released, rather than being ended by its lifeline."""
    global _pool
    with _lock:
        if _pool is not None and _pool_pid == os.getpid():
            _pool.shutdown(wait=True, cancel_futures=True)
        _pool = None


def _import_drawing() -> None:
    from bot.charts import drawing  # noqa: F401


def line_chart(title: str, labels: Sequence[str], series: dict[str, Sequence[float | None]], *, y_label: str = "") -> bytes:
    """PNG: one line per series over ``labels`` (e.g. weeks or survey runs). None leaves a gap."""
    return _call("line_chart", title, list(labels), {k: list(v) for k, v in series.items()}, y_label=y_label)


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float], *, y_label: str = "") -> bytes:
    """PNG: one bar per label."""
    return _call("bar_chart", title, list(labels), list(values), y_label=y_label)


def svg_line_chart(
    title: str, labels: Sequence[str], series: dict[str, Sequence[float | None]], *, y_label: str = "", id_prefix: str = "chart"
) -> str:
    """Inline ``<svg>``: one line per series over ``labels``; None leaves a gap."""
    return _call("svg_line_chart", title, list(labels), {k: list(v) for k, v in series.items()}, y_label=y_label,
                 id_prefix=id_prefix)


def svg_bar_chart(
    title: str, labels: Sequence[str], series: dict[str, Sequence[float]], *, x_label: str = "", id_prefix: str = "chart"
) -> str:
    """Inline ``<svg>``: horizontal grouped bars, one group per label (the first at the top), one bar per series."""
    return _call("svg_bar_chart", title, list(labels), {k: list(v) for k, v in series.items()}, x_label=x_label,
                 id_prefix=id_prefix)
