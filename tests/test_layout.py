"""The layout holds (issues #16, #24): a listener module is a Slack surface only. It parses the
payload, calls a plain operation, renders with its feature's ``blocks`` and responds; it does not
import another feature's listeners or the wiring table (``handlers``), does not touch SQL (no
sqlmodel/sqlalchemy, no session), and stays small.

Every feature's ``listeners.py`` is checked, and the modules that were handlers before the features
got their folders (``bot/closing/webhooks.py``, ``bot/closing/polling.py``, ``bot/retention/jobs.py``)."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = {"runtime", "trackers", "web", "examples", "__pycache__"}
FEATURES = sorted(p.parent for p in (REPO / "bot").glob("*/__init__.py") if p.parent.name not in SHARED)
CHECKED = sorted(
    str(p.relative_to(REPO))
    for p in [*(f / "listeners.py" for f in FEATURES), REPO / "bot/closing/webhooks.py", REPO / "bot/closing/polling.py", REPO / "bot/retention/jobs.py"]
    if p.exists()
)
SURFACES = {"listeners", "webhooks", "polling", "jobs", "slack_reads", "__init__"}  # slack_reads: a feature's Web API reads, given to its operations
MAX_LINES = 400


def problems(source: str) -> list[str]:
    """What in ``source`` (a handler module's text) breaks the rule, one line each."""
    found = []
    for node in ast.walk(ast.parse(source)):
        modules = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""]
            if node.level:  # from . import x: another handler
                modules = ["handlers." + (node.module or "")]
        for module in modules:
            root = module.split(".")[0]
            if root == "handlers" or module.endswith(".listeners") or ".listeners." in module:
                found.append(f"line {node.lineno}: imports another handler ({module})")
            if root in ("sqlmodel", "sqlalchemy"):
                found.append(f"line {node.lineno}: imports {module}: queries belong in a feature's service or storage")
        if isinstance(node, ast.Name) and node.id in ("session", "Session", "select"):
            found.append(f"line {node.lineno}: uses {node.id}")
        if isinstance(node, ast.arg) and node.arg == "session":
            found.append(f"line {node.lineno}: a function taking a session (a transaction's body)")
        if isinstance(node, ast.keyword) and node.arg == "session":
            found.append(f"line {node.lineno}: passes a session")
        if isinstance(node, ast.Attribute) and node.attr in ("transact", "session", "exec", "execute"):
            found.append(f"line {node.lineno}: calls .{node.attr} (a transaction or a query)")
        if isinstance(node, ast.Lambda) and _calls_db(node):
            found.append(f"line {node.lineno}: a lambda doing database work")
    if len(source.splitlines()) > MAX_LINES:
        found.append(f"{len(source.splitlines())} lines (keep a module under {MAX_LINES})")
    return found


def _calls_db(node: ast.Lambda) -> bool:
    return any(isinstance(n, ast.Attribute) and n.attr in ("run", "transact") for n in ast.walk(node))


@pytest.mark.parametrize("name", CHECKED)
def test_a_handler_is_a_slack_surface_only(name):
    assert problems((REPO / name).read_text()) == []


def test_the_rule_catches_what_it_is_for():
    # The checker itself: each kind of breach is found, and a thin handler passes.
    assert problems("from bot.intake.listeners import file_report") == ["line 1: imports another handler (bot.intake.listeners)"]
    assert problems("from . import triage")[0].startswith("line 1: imports another handler")
    assert "imports sqlmodel" in problems("from sqlmodel import Session, select")[0]
    assert any("taking a session" in p for p in problems("def work(*, session, occurrence):\n    pass"))
    assert any(".transact" in p for p in problems("deps.db.transact(fn)"))
    assert any("lambda" in p for p in problems("x = lambda: deps.db.run(f)"))
    assert any("lines" in p for p in problems("x = 1\n" * (MAX_LINES + 1)))
    assert problems("async def on(ack):\n    await deps.db.run(filing.file_report, draft=d)\n") == []


def test_operations_have_no_slack_in_them():
    # Callable from a handler, a job, the CLI and a test alike: no Bolt, no Web API client.
    operations = sorted(p for f in FEATURES for p in f.glob("*.py") if p.stem not in SURFACES)
    assert operations
    for path in operations:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(m.split(".")[0] in ("slack_sdk", "slack_bolt") for m in modules), f"{path.name}:{node.lineno}"
