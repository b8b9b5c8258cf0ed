"""The migrations against the models, and their order (issue #24): the migrated schema is the
models' (ours and slack-sdk's tables), ``migrate`` creates every table, and the revision chain is
the one storage/migrations/README.md writes down."""

import re
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from storage.database import alembic_config
from tests.conftest import TABLES
from tests.runtime.test_config_cli import run_cli

README = Path(__file__).resolve().parents[2] / "storage" / "migrations" / "README.md"


def test_migrate_creates_the_tables(tmp_path):
    path = tmp_path / "x.db"
    result = run_cli(tmp_path, "migrate", DATABASE_URL=f"sqlite:///{path}")
    assert result.returncode == 0, result.stderr
    engine = create_engine(f"sqlite:///{path}")
    try:
        assert set(TABLES) | {"alembic_version"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrations_match_the_models(db):
    """Ours, and slack-sdk's installation and OAuth state tables: an upgrade of slack-sdk that adds
    a column fails here, not in production."""
    from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
    from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
    from sqlalchemy import MetaData

    metadata = MetaData()
    for table in SQLModel.metadata.tables.values():
        table.to_metadata(metadata)
    SQLAlchemyInstallationStore.build_installations_table(metadata, "slack_installations")
    SQLAlchemyInstallationStore.build_bots_table(metadata, "slack_bots")
    SQLAlchemyOAuthStateStore.build_oauth_states_table(metadata, "slack_oauth_states")
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == [], f"models and migrations differ ({db.engine.dialect.name}): {diff}"


def test_the_written_order_is_the_chain():
    # Alembic's chain, oldest first, against the README's table (its first column, in order).
    engine = create_engine("sqlite://")
    try:
        script = ScriptDirectory.from_config(alembic_config(engine))
        chain = [rev.revision for rev in reversed(list(script.walk_revisions()))]
    finally:
        engine.dispose()
    written = re.findall(r"^\| `([0-9a-z]+)` \|", README.read_text(encoding="utf-8"), re.M)
    assert len(script.get_heads()) == 1
    assert chain == written, f"storage/migrations/README.md lists {written}, the chain is {chain}"
