"""Arrows in one direction (issue #24): the import graph of ``bot/``, ``handlers/`` and ``storage/``
(every module, packages included, read with ``ast`` so nothing is imported) has no circles, and no
module imports one of a higher layer. Imports inside functions count: a deferred import is still an
arrow, only hidden.

The layers, lowest first (docs/architecture.md draws them):

0. ``storage``: tables, queries, the outbox's rows, migrations.
1. the domain's single homes: ``bot.ids``, ``bot.text``, ``bot.references``, ``bot.messages``,
   ``bot.emoji_names``, ``bot.slack_ids``, ``bot.cron``, ``bot.commands``, and each feature's ``ids``.
2. shared mechanisms: ``bot.trackers``, ``bot.charts`` (chart images for digests, survey results and
   the dashboard) and the runtime a feature uses (``bot.runtime.*`` but the top below: settings,
   ``Deps``, the scheduler, the outbox sender, workspaces, metrics).
   The team policy's model (``bot.policy``) and a feature's section of it (``bot.<feature>.policy``:
   ``usage``, ``issues``) sit here too, below every feature that reads them and above no runtime.
3. a feature's operations and Block Kit: ``bot.<feature>.*`` but its surfaces. Within a feature
   the arrows between operations and Block Kit run one way per pair of modules (no circles): the
   operations that queue a message import its builders, the builders import the data types of
   the operations they render and never the reverse.
4. a feature's surfaces: ``listeners``, ``jobs``, ``polling``, ``webhooks``, ``endpoint``, ``dashboard``, ``slack_reads``.
5. ``bot.web``: the dashboard's shell.
6. ``handlers``: the wiring table.
7. the runtime's top: the app factory, serving, workers, the CLI and what only it runs.
"""

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROOTS = ("bot", "handlers", "storage")
SINGLE_HOMES = {"bot.ids", "bot.text", "bot.references", "bot.messages", "bot.emoji_names", "bot.slack_ids", "bot.commands", "bot.cron"}
SURFACES = {"listeners", "jobs", "polling", "webhooks", "endpoint", "dashboard", "slack_reads"}
RUNTIME_TOP = {"app", "serving", "workers", "cli", "usage_command", "check", "demo", "demo_focus", "report", "report_targets", "init_command", "name_lookup"}


def modules() -> dict[str, Path]:
    """Dotted module name -> its file, for every module under ROOTS (migrations' scripts left out:
    Alembic loads them by path)."""
    found = {}
    for root in ROOTS:
        for path in (REPO / root).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> dict[str, int]:
    """The project modules ``name`` imports -> the line of the first import. ``from a import b``
    is an arrow to ``a.b`` when that is a module, else to ``a``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.setdefault(target, node.lineno)
    return found


def graph() -> dict[str, dict[str, int]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def layer(name: str) -> int:
    """The layer of a module (the docstring's list)."""
    parts = name.split(".")
    if parts[0] == "storage":
        return 0
    if parts[0] == "handlers":
        return 6
    if name in SINGLE_HOMES or name == "bot" or (len(parts) > 2 and parts[2] == "ids"):
        return 1
    if name == "bot.policy" or (len(parts) > 2 and parts[2] == "policy"):  # the team policy's model and its sections
        return 2
    if parts[1] == "runtime":
        return 7 if len(parts) > 2 and parts[2] in RUNTIME_TOP else 2
    if parts[1] in ("trackers", "charts"):
        return 2
    if parts[1] == "web":
        return 5
    if parts[1] == "examples":
        return 1
    return 4 if len(parts) > 2 and parts[2] in SURFACES else 3


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def upward(edges: dict[str, dict[str, int]]) -> list[str]:
    """Each import of a higher layer, as ``a (layer) -> b (layer), line n``. A feature's module
    importing another feature's module of the same or a lower layer is fine (closing tells the
    reporters through triage's flows); a package importing its own modules is too."""
    found = []
    for a, targets in sorted(edges.items()):
        for b, line in sorted(targets.items()):
            if b.startswith(a + "."):
                continue
            if layer(b) > layer(a):
                found.append(f"{a} (layer {layer(a)}) -> {b} (layer {layer(b)}), line {line}")
    return found


def test_the_graph_reads_every_package():
    edges = graph()
    for name in ("bot.surveys.runs", "bot.surveys", "bot.triage.listeners", "handlers", "storage.models", "bot.runtime.outbox.sender"):
        assert name in edges
    assert "bot.surveys.timing" in edges["bot.surveys.runs"]


def test_no_circles():
    edges = graph()
    found = cycles(edges)
    detail = [f"{c}: " + "; ".join(f"{a} -> {b} line {edges[a][b]}" for a in c for b in edges[a] if b in c) for c in found]
    assert not found, "import circles:\n" + "\n".join(detail)


def test_no_arrow_runs_up():
    found = upward(graph())
    assert not found, "imports of a higher layer:\n" + "\n".join(found)


def test_the_checks_catch_what_they_are_for():
    assert cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b": 1}, "b": {}}) == []
    assert upward({"bot.triage.service": {"bot.triage.listeners": 3}}) == [
        "bot.triage.service (layer 3) -> bot.triage.listeners (layer 4), line 3"]
    assert upward({"bot.triage.blocks": {"bot.triage.service": 3}}) == []
    assert upward({"bot.insight.digest": {"bot.web.dashboard": 9}})
    assert upward({"storage.models": {"bot.runtime.config": 1}})
    assert upward({"bot.intake.listeners": {"handlers": 1}})
    assert upward({"bot.runtime.scheduler": {"bot.runtime.app": 1}})


def test_the_team_policy_is_domain_not_runtime():
    """The policy's model and its sections import nothing of the runtime (issue #24: 18 domain modules
    imported the runtime because the model lived in bot/runtime/config.py)."""
    edges = graph()
    policy = [name for name in edges if name == "bot.policy" or name.endswith(".policy")]
    assert "bot.policy" in policy and len(policy) >= 3
    assert [f"{name} -> {target}" for name in policy for target in edges[name] if target.startswith("bot.runtime")] == []
