"""Chart images (PNG) for Slack posts and the CLI. Rendered off-screen with matplotlib's Agg backend;
callers run these in a worker thread (they are CPU work, not for the event loop)."""

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
from matplotlib import pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def line_chart(title: str, labels: Sequence[str], series: dict[str, Sequence[float | None]], *, y_label: str = "") -> bytes:
    """One line per series over ``labels`` (e.g. weeks or survey runs). None leaves a gap."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for name, values in series.items():
        ax.plot(list(labels), [float("nan") if v is None else v for v in values], marker="o", label=name)
    ax.set_title(title)
    ax.set_ylabel(y_label)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend(loc="best", fontsize="small")
    fig.autofmt_xdate()
    return _png(fig)


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float], *, y_label: str = "") -> bytes:
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.bar(list(labels), list(values), color="#4a90d9")
    ax.set_title(title)
    ax.set_ylabel(y_label)
    ax.grid(axis="y", alpha=0.3)
    fig.autofmt_xdate()
    return _png(fig)
