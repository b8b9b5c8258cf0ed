"""``platform-feedback import --json``: what ``export --json`` wrote, read back into a database.

The document is ``{"exported_at": ISO time, "tables": {table name: [row, ...]}}`` (``storage.privacy
.export_json``): every row of every table as plain JSON, times as ISO 8601 strings. It never holds
slack-sdk's OAuth installation tables (they hold bot tokens): after a move, install again.

Into an empty database, or the one it came from (idempotent): a row whose primary key is there
already is left as it is, and the database may hold no row the document lacks, or the import is
refused, so two bots' data are never mixed. All in one transaction: refused or failed, nothing is
written. On PostgreSQL each table's id sequence is moved past the imported ids afterwards, so the
next report does not collide with an imported one. The database must be at this version's schema
(``platform-feedback migrate``), and so must the document: a table or column this version does not
have is refused, by name.
"""

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import DateTime, Integer, Table, func, select, text
from sqlmodel import Session, SQLModel

BATCH = 1000  # rows per INSERT


class ImportRefused(Exception):
    """The document does not fit this database. ``str()``: one line saying why and what to do."""


def _plain(value):
    """A column's value in the JSON form ``export --json`` writes (instants and dates as ISO text,
    decimals as text) and ``import --json`` reads back."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def all_tables() -> list[Table]:
    """Every table of ours, parents before children (each model module imported, so none is missed)."""
    import storage.focus  # noqa: F401
    import storage.models  # noqa: F401
    import storage.targets  # noqa: F401

    return list(SQLModel.metadata.sorted_tables)


def _key(table: Table, row: Mapping) -> tuple:
    return tuple(row.get(c.name) for c in table.primary_key.columns)


def _typed(table: Table, row: dict) -> dict:
    """A row as the database takes it: ISO strings back to datetimes where the column is a time."""
    typed = dict(row)
    for column in table.columns:
        value = typed.get(column.name)
        if isinstance(value, str) and isinstance(getattr(column.type, "impl", column.type), DateTime):  # UtcDateTime too
            typed[column.name] = datetime.fromisoformat(value)
    return typed


def import_json(*, session: Session, document: dict) -> dict[str, tuple[int, int]]:
    """Import ``document`` -> {table: (rows added, rows already there)}. ImportRefused when it does not fit."""
    if not isinstance(document, dict) or not isinstance(document.get("tables"), dict):
        raise ImportRefused('this is not what `platform-feedback export --json` writes (no "tables" object)')
    tables = {t.name: t for t in all_tables()}
    unknown = sorted(set(document["tables"]) - set(tables))
    if unknown:
        raise ImportRefused(f"table(s) {', '.join(unknown)} are not this version's: import with the version that "
                            "exported it, or migrate that bot to this version and export again")
    done: dict[str, tuple[int, int]] = {}
    for table in tables.values():
        rows = document["tables"].get(table.name, [])
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ImportRefused(f"tables.{table.name} is not a list of rows")
        extra = sorted({k for r in rows for k in r} - set(table.columns.keys()))
        if extra:
            raise ImportRefused(f"{table.name} has column(s) {', '.join(extra)} this version does not: import with "
                                "the version that exported it, or migrate that bot and export again")
        incoming = {_key(table, r): r for r in rows}
        # The rows there, as export wrote them: the same database gives the same dicts, row for row.
        present = {_key(table, r): {k: _plain(v) for k, v in r.items()}
                   for r in session.execute(select(table)).mappings()}
        strangers = [k for k, row in present.items() if incoming.get(k) != row]
        if strangers:
            raise ImportRefused(f"the database already holds {len(strangers)} {table.name} row(s) that are not in the "
                                "file as they are there: import into an empty database, or into the one it was exported from")
        new = [_typed(table, r) for k, r in incoming.items() if k not in present]
        for start in range(0, len(new), BATCH):
            session.execute(table.insert(), new[start : start + BATCH])
        done[table.name] = (len(new), len(incoming) - len(new))
    if session.get_bind().dialect.name == "postgresql":
        _move_sequences(session, tables.values())
    return done


def _move_sequences(session: Session, tables: Iterable[Table]) -> None:
    """Each serial id's sequence past the largest id, so new rows do not take imported ids."""
    for table in tables:
        for column in table.primary_key.columns:
            if not column.autoincrement or not isinstance(column.type, Integer):
                continue
            sequence = session.execute(text("SELECT pg_get_serial_sequence(:t, :c)"),
                                       {"t": table.name, "c": column.name}).scalar()
            if sequence is None:
                continue
            highest = session.execute(select(func.max(column))).scalar()
            if highest is not None:
                session.execute(text("SELECT setval(CAST(:s AS regclass), :v)"), {"s": sequence, "v": highest})

