"""Issue #30: every stored instant is unambiguous on both databases. Each datetime column of the
models (found by introspecting SQLModel's metadata, so a column added later is walked too) gets a
value with a non-UTC offset, one row per table, on SQLite and PostgreSQL; the same instant must
come back, aware and in UTC, and compare right in a query. SQLite keeps no offset: without the
conversion to UTC on write, a value written at -07:00 came back seven hours early."""

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Boolean, DateTime, Float, Integer, String, Text, insert, select
from sqlmodel import SQLModel

import storage.focus  # noqa: F401  (their tables join the metadata)
import storage.targets  # noqa: F401
from storage.models import UtcDateTime

LOS_ANGELES, AUCKLAND = ZoneInfo("America/Los_Angeles"), ZoneInfo("Pacific/Auckland")
INSTANT = datetime(2026, 6, 30, 17, 15, 30, 250000, tzinfo=LOS_ANGELES)  # 2026-07-01 00:15:30.25 UTC


def _tables():
    return [t for t in SQLModel.metadata.sorted_tables if any(isinstance(c.type, (DateTime, UtcDateTime)) for c in t.columns)]


def _row(table, parents: dict) -> dict:
    """A value for every column of ``table``: a foreign key the parent row's id, a datetime
    ``INSTANT`` (each column a minute apart, so a swapped column shows), others by type."""
    values = {}
    for n, column in enumerate(table.columns):
        kind = column.type if isinstance(column.type, UtcDateTime) else getattr(column.type, "impl", column.type)
        fk = next(iter(column.foreign_keys), None)
        if fk is not None and fk.column.table.name not in parents and column.nullable:  # its own table
            values[column.name] = None
        elif fk is not None:
            values[column.name] = parents[fk.column.table.name][fk.column.name]
        elif column.primary_key and isinstance(kind, Integer):
            continue
        elif isinstance(kind, (DateTime, UtcDateTime)):
            values[column.name] = (INSTANT + timedelta(minutes=n)).astimezone(AUCKLAND if n % 2 else LOS_ANGELES)
        elif isinstance(kind, Boolean):
            values[column.name] = False
        elif isinstance(kind, Integer):
            values[column.name] = 1
        elif isinstance(kind, Float):
            values[column.name] = 1.5
        elif isinstance(kind, (String, Text)):
            values[column.name] = "x"
        else:
            pytest.fail(f"{table.name}.{column.name}: no sample value for {column.type!r}")
    return values


def test_every_datetime_column_is_an_instant():
    """A plain DateTime column would be the hole this test walks around: each must be UtcDateTime."""
    plain = [f"{t.name}.{c.name}" for t in SQLModel.metadata.sorted_tables for c in t.columns
             if isinstance(c.type, DateTime) and not isinstance(c.type, UtcDateTime)]
    assert plain == []
    assert len([c for t in _tables() for c in t.columns if isinstance(c.type, UtcDateTime)]) >= 30


def test_every_datetime_column_keeps_the_instant(db):
    parents: dict[str, dict] = {}
    written: dict[tuple[str, str], datetime] = {}
    with db.engine.begin() as conn:
        for table in SQLModel.metadata.sorted_tables:  # parents before children
            values = _row(table, parents)
            result = conn.execute(insert(table).values(**values))
            key = dict(values)
            for column, value in zip(table.primary_key.columns, result.inserted_primary_key, strict=False):
                key[column.name] = value
            parents[table.name] = key
            written.update({(table.name, c): v for c, v in values.items() if isinstance(table.c[c].type, (DateTime, UtcDateTime))})
    assert written, "no datetime column found"
    with db.engine.connect() as conn:
        for (table_name, column_name), value in written.items():
            column = SQLModel.metadata.tables[table_name].c[column_name]
            back = conn.execute(select(column)).scalar_one()
            where = f"{db.engine.dialect.name}: {table_name}.{column_name}"
            assert back == value, f"{where} wrote {value.isoformat()}, read {back.isoformat()}"
            assert back.utcoffset() == timedelta(0), f"{where} came back as {back.isoformat()}"
            # Compared in SQL against the same instant given in another zone.
            same = value.astimezone(ZoneInfo("Asia/Kolkata"))
            assert conn.execute(select(column).where(column >= same, column <= same)).scalar_one_or_none() is not None, where
            assert conn.execute(select(column).where(column > same - timedelta(seconds=1), column < same + timedelta(seconds=1))).all(), where


def test_a_naive_datetime_is_refused(db):
    from storage.models import ScheduledRun

    with db.session() as s:
        s.add(ScheduledRun(job="x", occurrence=datetime(2026, 7, 1, 0, 0)))
        with pytest.raises(Exception, match="naive datetime is not an instant"):
            s.flush()
    assert UtcDateTime().process_result_value(datetime(2026, 7, 1), None) == datetime(2026, 7, 1, tzinfo=timezone.utc)
