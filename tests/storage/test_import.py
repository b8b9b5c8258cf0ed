"""Issue #25 item 6: `export --json` said "for a backup or a move" and nothing read it back.
`platform-feedback import --json` does: into an empty database or the one it came from (again:
nothing changes), refused in one line for a database holding other data, all or nothing. A round
trip through the real CLI gives back every table's every row, on SQLite and PostgreSQL, with the
demo's six months (every feature's tables)."""

import json
import uuid

import pytest
from sqlalchemy import create_engine, text

from bot.runtime.demo import generate
from storage.database import Database
from storage.transfer import all_tables
from tests.conftest import PG_ADMIN_URL
from tests.runtime.test_config_cli import run_cli


@pytest.fixture
def empty(db, tmp_path):
    """A second, migrated and empty database of the same kind as ``db``; its URL."""
    if db.url.startswith("sqlite"):
        target = Database(f"sqlite:///{tmp_path}/target.db")
        target.migrate()
        target.dispose()
        yield target.url
        return
    name = f"pf_import_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    target = Database(url)
    target.migrate()
    target.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def export(tmp_path, url: str) -> dict:
    result = run_cli(tmp_path, "export", "--json", "-", DATABASE_URL=url)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_export_then_import_gives_back_every_row_and_again_changes_nothing(db, empty, tmp_path):
    generate(db, points=120, days=90)
    exported = export(tmp_path, db.url)
    assert set(exported["tables"]) <= {t.name for t in all_tables()}
    assert all(exported["tables"].get(name) for name in ("friction_point", "reporter", "tracker_link", "closure_notice",
                                                     "survey_run", "focus_period", "focus_item"))  # focus too (export left it out)
    (tmp_path / "all.json").write_text(json.dumps(exported))

    first = run_cli(tmp_path, "import", "--json", "all.json", DATABASE_URL=empty)
    assert first.returncode == 0, first.stderr
    rows = sum(len(v) for v in exported["tables"].values())
    assert first.stdout.startswith(f"platform-feedback: imported {rows} rows into ") and first.stdout.endswith("; 0 were there already\n")
    assert export(tmp_path, empty)["tables"] == exported["tables"]

    again = run_cli(tmp_path, "import", "--json", "all.json", DATABASE_URL=empty)
    assert again.returncode == 0 and "imported 0 rows" in again.stdout and f"{rows} were there already" in again.stdout
    assert export(tmp_path, empty)["tables"] == exported["tables"]

    # New reports after the import take new ids (PostgreSQL: the sequences moved past the imported ones).
    from storage.friction import FrictionDraft, file_friction
    from storage.models import Source

    target = Database(empty)
    try:
        point = target.transact(file_friction, draft=FrictionDraft(team_id="T1", filed_by="U1", reporter_id="U1", text="after the move",
                                                                   source=Source.command, intake_key="after-the-move")).point
        assert point.id > max(r["id"] for r in exported["tables"]["friction_point"])
    finally:
        target.dispose()


def test_import_into_a_database_with_other_data_is_refused_and_writes_nothing(db, empty, tmp_path):
    generate(db, points=30, days=30)
    (tmp_path / "a.json").write_text(json.dumps(export(tmp_path, db.url)))
    other = Database(empty)
    try:
        generate(other, points=5, days=10, seed=99)
    finally:
        other.dispose()
    before = export(tmp_path, empty)["tables"]
    refused = run_cli(tmp_path, "import", "--json", "a.json", DATABASE_URL=empty)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    [line] = refused.stderr.splitlines()
    assert line.startswith("platform-feedback: nothing imported: the database already holds ") and "empty database" in line
    assert export(tmp_path, empty)["tables"] == before


@pytest.mark.parametrize("content, says", [
    ("{not json", "is not JSON"),
    ('{"exported_at": "x"}', 'no "tables" object'),
    ('{"tables": {"no_such_table": []}}', "table(s) no_such_table are not this version's"),
    ('{"tables": {"friction_point": [{"id": 1, "colour": "red"}]}}', "friction_point has column(s) colour"),
])
def test_a_file_that_is_not_an_export_is_one_line(tmp_path, content, says):
    target = Database(f"sqlite:///{tmp_path}/t.db")
    target.migrate()
    target.dispose()
    (tmp_path / "x.json").write_text(content)
    result = run_cli(tmp_path, "import", "--json", "x.json", DATABASE_URL=target.url)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert says in line, line
