"""Triage rules without Slack: issue links, priority, the headline numbers, merge chains."""

from datetime import datetime, timedelta, timezone

import pytest

from bot.trackers import parse_issue_url
from bot.triage import service as triage
from storage.friction import FrictionDraft, file_friction
from storage.models import FrictionPoint, Source


@pytest.mark.parametrize("url,tracker,key", [
    ("https://github.com/acme/ci/issues/12", "github", "acme/ci#12"),
    ("https://github.com/acme/ci/pull/7/files", "github", "acme/ci#7"),  # a pull request tab is the pull request
    ("https://github.com/acme/ci/pull/7", "github", "acme/ci#7"),
    ("https://ghe.acme.corp/platform/runner/issues/3", "github", "platform/runner#3"),
    ("https://gitlab.com/acme/infra/tools/-/issues/9", "gitlab", "acme/infra/tools#9"),
    ("https://gitlab.acme.io/g/p/-/merge_requests/4", "gitlab", "g/p!4"),
    ("https://acme.atlassian.net/browse/PLAT-123", "jira", "PLAT-123"),
    ("https://jira.acme.com/jira/browse/OPS-1", "jira", "OPS-1"),
    ("https://linear.app/acme/issue/ENG-42/fix-the-thing", "linear", "ENG-42"),
    ("https://example.com/whatever", None, None),
    ("javascript:alert(1)", None, None),
    ("github.com/acme/ci/issues/1", None, None),
])
def test_issue_urls_get_canonical_keys(url, tracker, key):
    issue = parse_issue_url(url)
    assert (issue.tracker if issue else None, issue.key if issue else None) == (tracker, key)


def _file(db, text: str, user: str = "U1", key: str | None = None) -> int:
    draft = FrictionDraft(team_id="T1", filed_by=user, reporter_id=user, text=text, source=Source.command, intake_key=key or text)
    return db.transact(file_friction, draft=draft).point.id


def _set(db, point_id: int, **values) -> None:
    def apply(*, session):
        point = session.get(FrictionPoint, point_id)
        for k, v in values.items():
            setattr(point, k, v)
        session.add(point)
    db.transact(apply)


def test_headline_medians_this_month(db):
    now = datetime(2026, 11, 20, 12, tzinfo=timezone.utc)
    a, b, c = (_file(db, t) for t in ("a report", "b report", "c report"))
    created = now - timedelta(hours=10)
    _set(db, a, created_at=created, first_response_at=created + timedelta(hours=1), resolved_at=created + timedelta(hours=4), status="resolved")
    _set(db, b, created_at=created, first_response_at=created + timedelta(hours=3))
    _set(db, c, created_at=datetime(2026, 9, 1, tzinfo=timezone.utc), first_response_at=datetime(2026, 9, 2, tzinfo=timezone.utc))
    numbers = db.transact(triage.headline, now=now)
    assert numbers.open_count == 2
    assert numbers.median_first_response == timedelta(hours=2)  # c responded in September: not this month
    assert numbers.median_resolution == timedelta(hours=4)
    assert numbers.closed_this_week == 1


def test_queue_priority_weighs_severity_reporters_and_age(db):
    old_low = _file(db, "old low")
    new_high = _file(db, "new high")
    crowded = _file(db, "crowded medium")
    _set(db, old_low, severity="low", created_at=datetime.now(timezone.utc) - timedelta(days=70))  # 1 + 10 weeks
    _set(db, new_high, severity="high")  # 4
    for user in ("U2", "U3"):  # 2 x 3 reporters = 6
        db.transact(file_friction, draft=FrictionDraft(team_id="T1", filed_by=user, reporter_id=user, text="x",
                                                       source=Source.command, intake_key="crowded medium"))
    assert [p.id for p in db.transact(triage.open_queue)] == [old_low, crowded, new_high]


def test_merge_chains_stay_one_hop_and_reporters_follow(db):
    first = _file(db, "first", user="U1")
    second = _file(db, "second", user="U2")
    third = _file(db, "third", user="U3")
    db.transact(triage.merge, point_id=third, into_id=second, actor="H", prefix="FB")
    db.transact(triage.merge, point_id=second, into_id=first, actor="H", prefix="FB")
    with db.session() as s:
        assert s.get(FrictionPoint, third).duplicate_of_id == first
        assert {r.user_id for r in s.get(FrictionPoint, first).reporters} == {"U1", "U2", "U3"}
    with pytest.raises(triage.TriageError, match="already merged"):
        db.transact(triage.merge, point_id=second, into_id=first, actor="H", prefix="FB")
    with pytest.raises(triage.TriageError, match="itself"):
        db.transact(triage.merge, point_id=first, into_id=first, actor="H", prefix="FB")


def test_reopen_returns_to_where_it_was(db):
    point_id = _file(db, "reopen me")
    db.transact(triage.assign, point_id=point_id, actor="H", assignee="H", prefix="FB")
    db.transact(triage.decline, point_id=point_id, actor="H", reason="not now", prefix="FB")
    assert db.transact(triage.reopen, point_id=point_id, actor="H", prefix="FB").point.status == "acknowledged"
    with pytest.raises(triage.TriageError, match="still open"):
        db.transact(triage.reopen, point_id=point_id, actor="H", prefix="FB")
