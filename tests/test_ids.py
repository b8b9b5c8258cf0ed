"""One definition of each Slack id (issue #24): every action, block and callback id is defined in an
ids module (``bot/ids.py`` for the ids features share, ``bot/<feature>/ids.py`` for a feature's
own), no id of a kind is defined twice there, and no other module defines one. Read with ``ast``:
StrEnum classes named ``*Action``/``*Callback``/``*Block``, and module-level string constants named
``*_ACTION``/``*_INPUT`` (an input's action id), ``*_BLOCK`` and ``*_CALLBACK``.

The kinds are Slack's namespaces: an action id, a block id and a view's callback id never meet, so
the same string may be a callback and an action (the triage modal's ``triage_link`` is both)."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SUFFIXES = {"_ACTION": "action", "_INPUT": "action", "_BLOCK": "block", "_CALLBACK": "callback"}
ENUMS = {"Action": "action", "Callback": "callback", "Block": "block"}


def ids_in(source: str) -> list[tuple[str, str, str]]:
    """``(kind, value, name)`` for each id ``source`` (a module's text) defines."""
    found = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and any(isinstance(b, ast.Name) and b.id == "StrEnum" for b in node.bases):
            kind = next((k for suffix, k in ENUMS.items() if node.name.endswith(suffix)), None)
            if kind:
                for item in node.body:
                    if isinstance(item, ast.Assign) and isinstance(item.value, ast.Constant) and isinstance(item.value.value, str):
                        found.append((kind, item.value.value, f"{node.name}.{item.targets[0].id}"))
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                pairs = []
                if isinstance(target, ast.Name):
                    pairs = [(target, node.value)]
                elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    pairs = list(zip(target.elts, node.value.elts, strict=True))
                for name, value in pairs:
                    if isinstance(name, ast.Name) and isinstance(value, ast.Constant) and isinstance(value.value, str):
                        kind = next((k for suffix, k in SUFFIXES.items() if name.id.endswith(suffix)), None)
                        if kind:
                            found.append((kind, value.value, name.id))
    return found


def ids_modules() -> list[Path]:
    return [REPO / "bot" / "ids.py", *sorted((REPO / "bot").glob("*/ids.py"))]


def duplicates(defined: dict[Path, list[tuple[str, str, str]]]) -> list[str]:
    seen: dict[tuple[str, str], str] = {}
    found = []
    for path, ids in defined.items():
        for kind, value, name in ids:
            where = f"{path.relative_to(REPO) if path.is_absolute() else path}:{name}"
            if (kind, value) in seen:
                found.append(f"{kind} id {value!r}: {seen[(kind, value)]} and {where}")
            seen.setdefault((kind, value), where)
    return found


def test_no_id_is_defined_twice():
    defined = {path: ids_in(path.read_text(encoding="utf-8")) for path in ids_modules()}
    assert sum(len(v) for v in defined.values()) > 40  # the checker reads them all
    assert duplicates(defined) == []


def test_ids_are_defined_only_in_ids_modules():
    homes = set(ids_modules())
    elsewhere = []
    for root in ("bot", "handlers"):
        for path in sorted((REPO / root).rglob("*.py")):
            if path not in homes:
                elsewhere += [f"{path.relative_to(REPO)}: {name} = {value!r}" for _, value, name in ids_in(path.read_text(encoding="utf-8"))]
    assert elsewhere == []


def test_the_checks_catch_what_they_are_for():
    a = ids_in('from enum import StrEnum\nclass FooAction(StrEnum):\n    go = "go"\nBAR_BLOCK, BAR_INPUT = "bar", "bar_in"\nMAX_BLOCKS = 50\n')
    assert a == [("action", "go", "FooAction.go"), ("block", "bar", "BAR_BLOCK"), ("action", "bar_in", "BAR_INPUT")]
    b = ids_in('GO_ACTION = "go"\nGO_CALLBACK = "go"\n')
    assert duplicates({Path("a.py"): a, Path("b.py"): b}) == ["action id 'go': a.py:FooAction.go and b.py:GO_ACTION"]


def test_metadata_is_one_model_written_and_read_one_way():
    # One base (bot.ids.Metadata) for every modal's private_metadata: JSON without the None fields,
    # read back by the same class; a bare number (what targets' and closing's modals carried before)
    # still reads as the one field; anything else is refused, and parse() says None.
    from bot.closing.ids import NoticeMetadata
    from bot.ids import Metadata, PointMetadata
    from bot.intake.ids import ReportMetadata
    from bot.surveys.ids import SurveyMetadata

    for kind in (NoticeMetadata, PointMetadata, ReportMetadata, SurveyMetadata):
        assert issubclass(kind, Metadata)
    assert PointMetadata(point_id=42).dump() == '{"point_id":42}'
    assert PointMetadata.load('{"point_id":42}').point_id == 42 == PointMetadata.load("42").point_id
    assert NoticeMetadata.load("7").notice_id == 7
    assert ReportMetadata.load(ReportMetadata(channel_id="C1").dump()) == ReportMetadata(channel_id="C1")
    assert ReportMetadata(channel_id="C1").dump() == '{"source":"modal","channel_id":"C1"}'
    assert PointMetadata.parse("FB-42") is None and PointMetadata.parse("") is None and SurveyMetadata.parse('{"run_id": "x"}') is None


def test_references_go_through_one_function():
    # No f"{prefix}-{id}" outside bot/references.py: a reference is format_ref(prefix, id).
    import re

    inline = re.compile(r"\{[\w.]*prefix\}-\{")
    found = [f"{p.relative_to(REPO)}:{n}" for root in ("bot", "handlers", "storage") for p in sorted((REPO / root).rglob("*.py"))
             if p != REPO / "bot" / "references.py" for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if inline.search(line)]
    assert found == []
