"""Chart drawing with matplotlib (Agg backend, off-screen): PNG for Slack posts and the CLI, inline SVG
for the dashboard. Imported only in the chart worker process (``bot.charts``), never by the
serving process: drawing a chart holds the interpreter lock for hundreds of ms (issue #15)."""

import html
import io
import re
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


# ------------------------------------------------------------------ SVG, inline in HTML (the dashboard)

_SVG_COLORS = ["#2f6fb0", "#c0504d", "#4f9a4f", "#8064a2", "#d68a1a", "#4bacc6", "#7f7f7f"]


def _plain(label: str) -> str:
    """Text as written: matplotlib would read ``$...$`` as mathtext."""
    return str(label).replace("$", r"\$")


def _svg(fig: Figure, title: str, id_prefix: str) -> str:
    """The figure as an ``<svg>`` element for inline use: text kept as text (escaped by matplotlib),
    no XML prolog or metadata, every id prefixed so several charts can share one page, sized by its
    viewBox (CSS sets the width)."""
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": id_prefix}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    svg = re.sub(r'(\bid="|href="#|url\(#)', lambda m: m.group(1) + id_prefix + "-", svg)
    head_end = svg.index(">")
    head = re.sub(r'\s(width|height)="[^"]*"', "", svg[:head_end])
    label = html.escape(title, quote=True)
    return f'{head} class="chart" role="img" aria-label="{label}"{svg[head_end:]}'.strip()


def svg_line_chart(
    title: str, labels: Sequence[str], series: dict[str, Sequence[float | None]], *, y_label: str = "", id_prefix: str = "chart"
) -> str:
    """``line_chart`` as inline SVG: one line per series over ``labels``; None leaves a gap."""
    fig = Figure(figsize=(7, 3.2))
    ax = fig.subplots()
    for i, (name, values) in enumerate(series.items()):
        ax.plot([_plain(x) for x in labels], [float("nan") if v is None else v for v in values], marker="o",
                label=_plain(name), color=_SVG_COLORS[i % len(_SVG_COLORS)])
    ax.set_title(_plain(title))
    ax.set_ylabel(_plain(y_label))
    ax.grid(alpha=0.3)
    ax.set_ylim(bottom=min(0, ax.get_ylim()[0]))
    if len(series) > 1:  # beside the plot, never over the lines
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    fig.autofmt_xdate()
    return _svg(fig, title, id_prefix)


def svg_bar_chart(
    title: str, labels: Sequence[str], series: dict[str, Sequence[float]], *, x_label: str = "", id_prefix: str = "chart"
) -> str:
    """Horizontal grouped bars as inline SVG: one group per label (the first at the top), one bar
    per series (e.g. this window and the one before)."""
    rows = max(len(labels), 1)
    fig = Figure(figsize=(7, 0.9 + 0.42 * rows))
    ax = fig.subplots()
    n = max(len(series), 1)
    height = 0.8 / n
    for i, (name, values) in enumerate(series.items()):
        y = [r - 0.4 + height * (i + 0.5) for r in range(len(labels))]
        ax.barh(y, list(values), height=height, label=_plain(name), color=_SVG_COLORS[i % len(_SVG_COLORS)])
    ax.set_yticks(range(len(labels)), [_plain(x) for x in labels])
    ax.invert_yaxis()
    ax.set_title(_plain(title))
    ax.set_xlabel(_plain(x_label))
    ax.grid(axis="x", alpha=0.3)
    if len(series) > 1:
        ax.legend(loc="lower right", fontsize="small", frameon=False)
    return _svg(fig, title, id_prefix)
