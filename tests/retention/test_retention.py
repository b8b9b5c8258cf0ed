"""Retention's daily job (``bot.retention.jobs``) through the real app: closed reports older than
``retention.friction_days`` are purged, once per day however many instances run. SQLite and PostgreSQL."""

from datetime import timedelta

import pytest

from bot.policy import Policy, Retention
from bot.retention.jobs import JOB
from bot.triage import service as triage
from storage.models import FrictionPoint, utcnow
from tests.storage.test_privacy import file


@pytest.fixture
def policy():
    return Policy(retention=Retention(friction_days=30))


async def test_retention_job_purges_once_a_day(bot):
    old = file(bot.db, "old and closed", "U1")
    bot.db.transact(triage.resolve, point_id=old, actor="H", note=None, prefix="FB")

    def age(*, session):
        point = session.get(FrictionPoint, old)
        point.created_at = utcnow() - timedelta(days=40)
        session.add(point)
    bot.db.transact(age)
    today = utcnow().replace(hour=3, minute=0, second=0, microsecond=0)
    assert await bot.deps.scheduler.run(JOB, today) is True
    assert await bot.deps.scheduler.run(JOB, today) is False  # once per day, however many instances
    with bot.db.session() as s:
        assert s.get(FrictionPoint, old) is None
