"""What a Markdown body shows as text, found in time linear in its length (issue #26 item 4).

GitHub links no reference in HTML comments, fenced code blocks or code spans, so a closing
keyword there closes nothing. ``blank_code`` replaces each of those with one space:

- an HTML comment: ``<!--`` to the first ``-->`` after it, or to the end;
- a fenced code block: a line starting with at most three spaces and a run of three or more
  backticks or tildes, to the first later line that starts with at most three spaces, the same
  run, any further backticks or tildes, and only spaces or tabs after them; or to the end;
- a code span: a run of N backticks to the first later run of exactly N backticks; when no later
  run has N, the longest shorter length that has one (the run's first backticks are then text of
  the span); a run with no later run of any length it could use is text.

These are the rules the bot's earlier regular expression applied (tests/backtracking_parsers.py),
which backtracked: ``"a" + 900 backticks + "x"`` took 2 s. Here each character is looked at a
bounded number of times, and the runs of backticks are indexed by length once: O(n log n).
"""

import bisect
import re

_FENCE = re.compile(r"^ {0,3}(?:```|~~~)", re.MULTILINE)  # at most three spaces: never backtracks far
_TICKS = re.compile(r"`+")


def blank_code(body: str) -> str:
    """``body`` with every comment, fenced block and code span replaced by one space."""
    spans = code_spans(body)
    if not spans:
        return body
    out, last = [], 0
    for start, end in spans:
        out.append(body[last:start])
        out.append(" ")
        last = end
    out.append(body[last:])
    return "".join(out)


def code_spans(body: str) -> list[tuple[int, int]]:
    """The (start, end) offsets of what is not text, in order and not overlapping. The next
    comment and the next fence are searched for only once the position has passed the last one
    found (the search start only moves forward), and runs of backticks are walked in order, so
    the whole body is scanned a bounded number of times."""
    runs = _Runs(body)
    spans: list[tuple[int, int]] = []
    n, pos, r = len(body), 0, 0
    comment = fence = -1  # the next one at or after pos (n: none), or -1: not searched yet
    starts = [start for start, _ in runs.spans]
    while pos < n:
        if comment < pos:
            found = body.find("<!--", pos)
            comment = n if found < 0 else found
        if fence < pos:
            m = _FENCE.search(body, pos)
            fence = m.start() if m else n
        while r < len(starts) and starts[r] < pos:
            r += 1
        tick = starts[r] if r < len(starts) else n
        start = min(comment, fence, tick)
        if start >= n:
            break
        if start == comment:
            close = body.find("-->", start + 4)
            end = n if close < 0 else close + 3
        elif start == fence:  # a fence at a line start wins over the backticks it starts with
            end = _fence_end(body, start)
        else:
            span_end = runs.span_end(start)
            if span_end is None:  # no closing run of any usable length: the run is text
                pos = runs.run_end(start)
                continue
            end = span_end
        spans.append((start, end))
        pos = end
    return spans


def _line_start(body: str, at: int) -> bool:
    return at == 0 or body[at - 1] == "\n"


def _fence_end(body: str, start: int) -> int:
    """Where the fenced block opening at the line starting at ``start`` ends (exclusive)."""
    n = len(body)
    i = start
    while body[i] == " ":
        i += 1
    char, j = body[i], i
    while j < n and body[j] == char:
        j += 1
    fence = body[i:j]
    line = body.find("\n", j)
    while line >= 0:
        k = line + 1
        spaces = 0
        while k < n and body[k] == " " and spaces < 3:
            k, spaces = k + 1, spaces + 1
        if body.startswith(fence, k):
            e = k + len(fence)
            while e < n and body[e] in "`~":
                e += 1
            while e < n and body[e] in " \t":
                e += 1
            if e == n or body[e] == "\n":
                return e
        line = body.find("\n", line + 1)
    return n


class _Runs:
    """The maximal runs of backticks in a body: for the run at an offset, its end and where the
    first later run of a given length starts. The usual case (a later run of the same length) is
    one lookup; a shorter length is a binary search per length present."""

    def __init__(self, body: str):
        self.body = body
        spans = [m.span() for m in _TICKS.finditer(body)]
        self.index = {start: i for i, (start, _) in enumerate(spans)}
        self.spans = spans
        self.by_length: dict[int, list[int]] = {}
        for start, end in spans:
            self.by_length.setdefault(end - start, []).append(start)
        self.lengths = sorted(self.by_length)
        # next_same[i]: the start of the first run after run i with the same length, or -1.
        self.next_same = [-1] * len(spans)
        seen: dict[int, int] = {}
        for i in range(len(spans) - 1, -1, -1):
            start, end = spans[i]
            self.next_same[i] = seen.get(end - start, -1)
            seen[end - start] = start

    def run_end(self, start: int) -> int:
        i = self.index.get(start)
        return self.spans[i][1] if i is not None else _TICKS.match(self.body, start).end()  # type: ignore[union-attr]

    def span_end(self, start: int) -> int | None:
        """The end of the code span opened by the run at ``start``, or None (no usable closing run)."""
        i = self.index.get(start)
        end = self.run_end(start)
        length = end - start
        if i is not None and self.next_same[i] >= 0:
            return self.next_same[i] + length
        top = bisect.bisect_right(self.lengths, length)
        for shorter in reversed(self.lengths[:top]):
            starts = self.by_length[shorter]
            k = bisect.bisect_right(starts, end)
            if k < len(starts):
                return starts[k] + shorter
        return None
