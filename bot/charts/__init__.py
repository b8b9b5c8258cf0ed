"""Charts drawn in a worker process: PNG (``line_chart``, ``bar_chart``) for Slack posts and the CLI,
inline SVG (``svg_line_chart``, ``svg_bar_chart``) for the dashboard. Same signatures and results as
``bot.charts.drawing``, which does the drawing with matplotlib.

Why a process: drawing holds the interpreter lock for hundreds of ms per chart; in the serving
process that stalled every ack waiting on the event loop (issue #15: worst ack 3.7 times idle while
the dashboard or the digest drew). The worker (``bot.runtime.worker_process``) never imports the
bot's app, its database or Slack, and the serving process never imports matplotlib.
"""

from collections.abc import Sequence
from concurrent.futures import Future

from bot.runtime.worker_process import WorkerProcess

WORKER = WorkerProcess("charts")


def _draw(name: str, args: tuple, kwargs: dict):
    """Runs in the worker: ``bot.charts.drawing.<name>(*args, **kwargs)``. Imported there, by name, so the
    caller never imports matplotlib to pickle a reference to the function."""
    from bot.charts import drawing

    return getattr(drawing, name)(*args, **kwargs)


def _call(name: str, *args, **kwargs):
    return WORKER.call(_draw, name, args, kwargs)


def warm_up() -> Future:
    """Start the worker and import matplotlib there now, so the first chart does not wait ~1 s for it."""
    return WORKER.warm_up("bot.charts.drawing")


def stop() -> None:
    """End this process's chart worker, if it started one (``WorkerProcess.stop``)."""
    WORKER.stop()


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
