"""The quarter's loop: pick the top friction, say so, fix it, show what changed.

A host or lead picks up to ``focus.size`` items for the current period (the calendar quarter in the
team's time zone): a report, with its merged duplicates, or a whole area. Picking records a
baseline (``Measure``); publishing posts one announcement and tells every reporter of those items,
once each through the outbox; at the end of the period (or on demand) each item's baseline is set
against now, and the pulse NPS/CSAT before against after. No Slack in here.
"""

import json
from dataclasses import asdict
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import Session, col, select

from bot.focus.blocks import build_focus_dm, build_focus_dm_for
from bot.focus.models import FocusError, FocusReport, FocusState, ItemReport, ItemView, Measure, Pulse, Subject  # noqa: F401  (the operations' types, re-exported)
from bot.insight import service as insight
from bot.policy import Policy
from bot.references import format_ref
from storage import focus as store
from storage import outbox
from storage.focus import FocusItem, FocusPeriod
from storage.models import CLOSED, ClosureNotice, FrictionPoint, FrictionTag, Reporter, Status, as_utc, utcnow

POST_PURPOSE = "focus_post"  # the announcement, rendered when sent (bot.focus.blocks)


# ------------------------------------------------------------------ periods


def period_for(now: datetime, timezone: str) -> tuple[str, datetime, datetime]:
    """(key, start, end) of the calendar quarter holding ``now`` on the team's clock, e.g.
    ``("2026-Q4", 2026-10-01 00:00 local, 2027-01-01 00:00 local)`` as aware datetimes."""
    local = now.astimezone(ZoneInfo(timezone))
    quarter = (local.month - 1) // 3
    start = local.replace(month=quarter * 3 + 1, day=1, hour=0, minute=0, second=0, microsecond=0)
    end_year, end_month = (start.year + 1, 1) if quarter == 3 else (start.year, start.month + 3)
    end = start.replace(year=end_year, month=end_month)
    return f"{start.year}-Q{quarter + 1}", start, end


# ------------------------------------------------------------------ subjects and measures








def merged_into(session: Session, subject: Subject) -> int | None:
    """The report a picked report was merged into since it was picked (None: it was not, or an area)."""
    if subject.kind != "report":
        return None
    return session.exec(select(FrictionPoint.duplicate_of_id).where(FrictionPoint.id == int(subject.value))).first()


def _points(session: Session, subject: Subject) -> list[int]:
    """The reports an item stands for: a report with its merged duplicates, following a merge made
    after it was picked (the report it joined, and that one's duplicates: itself among them), or
    every report in an area."""
    if subject.kind == "report":
        pid = merged_into(session, subject) or int(subject.value)
        dups = session.exec(select(FrictionPoint.id).where(FrictionPoint.duplicate_of_id == pid).order_by(col(FrictionPoint.id))).all()
        return [pid, *dups]
    return list(session.exec(select(FrictionTag.friction_point_id).where(FrictionTag.category == subject.value)).all())


def pulse_at(*, session: Session, at: datetime) -> Pulse:
    """The pulse NPS and CSAT of the latest closed run (closed before ``at``) with such a question,
    and how many answered it. The score is None (not shown) when fewer than that survey's
    ``min_group`` answered: a thin run is not compared, nor replaced by an older one. No run: all None."""
    from bot.surveys.results import results_for_run
    from storage.surveys import RunStatus, SurveyRun

    found: dict[str, tuple[float | None, int, int]] = {}
    runs = session.exec(
        select(SurveyRun).where(SurveyRun.status == RunStatus.closed, col(SurveyRun.closed_at) < at).order_by(col(SurveyRun.closed_at).desc()).limit(50)
    ).all()
    for run in runs:
        results = results_for_run(session=session, run=run, with_previous=False)
        for q in results.questions:
            name = q.question.kind.upper()
            if name not in ("NPS", "CSAT") or name in found:
                continue
            answers = results.responses if results.withheld else q.count  # a thin anonymous run keeps only its count
            shown = not results.withheld and answers >= results.survey.min_group and q.score is not None
            found[name] = (q.score if shown else None, answers, run.id)
        if len(found) == 2:
            break
    nps, csat = found.get("NPS", (None, 0, None)), found.get("CSAT", (None, 0, None))
    return Pulse(nps[0], nps[1], csat[0], csat[1], nps[2], csat[2])


def measure(*, session: Session, subject: Subject, now: datetime, window_days: int, since: datetime | None = None) -> Measure:
    """``subject``'s friction over the ``window_days`` before ``now``; ``since``: also count the
    reporters told it was fixed from then on."""
    ids = _points(session, subject)
    start, weeks = now - timedelta(days=window_days), window_days / 7
    reports = minutes = reporters = 0
    score = 0.0
    if ids:
        filed = session.exec(
            select(func.count(), func.coalesce(func.sum(FrictionPoint.minutes_lost), 0))
            .where(col(FrictionPoint.id).in_(ids), col(FrictionPoint.created_at) >= start, col(FrictionPoint.created_at) < now)
        ).one()
        reports, minutes = int(filed[0]), int(filed[1] or 0)  # coalesced: never None
        reporters = session.exec(
            select(func.count(func.distinct(Reporter.user_id)))
            .where(col(Reporter.friction_point_id).in_(ids), col(Reporter.reported_at) >= start, col(Reporter.reported_at) < now)
        ).one()
        if subject.kind == "report":  # ids[0]: the report itself, or the one it was merged into
            severity = session.exec(select(FrictionPoint.severity).where(FrictionPoint.id == ids[0])).first()
            score = insight.point_score(reporters, str(severity or "medium"), minutes)
        else:
            scores = insight.friction_scores(session=session, days=window_days, now=now, limit=1)
            score = next((c.score for c in scores.categories if c.category == subject.value), 0.0)
    told = 0
    if since is not None and ids:
        told = session.exec(
            select(func.count(func.distinct(ClosureNotice.user_id)))
            .where(col(ClosureNotice.friction_point_id).in_(ids), ClosureNotice.outcome == "fixed", col(ClosureNotice.created_at) >= since,
                   col(ClosureNotice.created_at) < now)
        ).one()
    return Measure(now.isoformat(), round(score, 2), round(reports / weeks, 2), int(reporters), round(minutes / 60 / weeks, 2),
                   pulse_at(session=session, at=now), int(told))


def _measure_from(text: str) -> Measure:
    data = json.loads(text)
    return Measure(**{**data, "pulse": Pulse(**data["pulse"])})


# ------------------------------------------------------------------ what a person sees




def _item_view(session: Session, item: FocusItem, policy: Policy) -> ItemView:
    subject = Subject.parse(item.subject)
    ids = _points(session, subject)
    people = session.exec(select(func.count(func.distinct(Reporter.user_id))).where(col(Reporter.friction_point_id).in_(ids))).one() if ids else 0
    into = None
    if subject.kind == "report":
        point = session.get(FrictionPoint, int(subject.value))
        title = point.text if point else f"{format_ref(policy.reference_prefix, subject.value)} (deleted)"
        into = point.duplicate_of_id if point else None
        followed = session.get(FrictionPoint, into) if into else point  # merged since it was picked: its fate is the other's
        links = list(followed.links) if followed else []
        fixed = followed is not None and (followed.status == Status.resolved or (bool(links) and all(link.closed for link in links)))
    else:
        title, links = policy.taxonomy.label(subject.value), []
        fixed = False
    return ItemView(item, subject, title, int(people), links, fixed, _measure_from(item.baseline), into)




def state(*, session: Session, policy: Policy, now: datetime | None = None, key: str | None = None) -> FocusState:
    """The focus of the period ``key`` (default: the current one)."""
    current = key or period_for(now or utcnow(), policy.insight.timezone)[0]
    period = store.get_period(session=session, key=current)
    views = [_item_view(session, item, policy) for item in store.items(session=session, period_id=period.id)] if period else []
    return FocusState(period, current, views)


def candidates(*, session: Session, policy: Policy, now: datetime | None = None, limit: int = 5) -> insight.FrictionScores:
    """The current ranking to pick from: the top open reports and the areas (``insight.friction_scores``)."""
    return insight.friction_scores(session=session, days=policy.insight.window_days, now=now, limit=limit)


# ------------------------------------------------------------------ changes


def _reporters(session: Session, subject: Subject) -> list[Reporter]:
    ids = _points(session, subject)
    if not ids:
        return []
    return list(session.exec(select(Reporter).where(col(Reporter.friction_point_id).in_(ids)).order_by(col(Reporter.id))).all())


def _tell_reporters(session: Session, period: FocusPeriod, item: FocusItem, title: str, policy: Policy) -> int:
    told = 0
    for reporter in _reporters(session, Subject.parse(item.subject)):
        told += outbox.enqueue(
            session=session, dedupe_key=f"focus:{period.key}:dm:{item.id}:{reporter.user_id}", method="chat.postMessage",
            payload={"channel": reporter.user_id, **build_focus_dm(period.key, title, policy.reference_prefix, item.subject)},
            workspace=reporter.workspace,
        )
    return told


def _tell_everyone(session: Session, period: FocusPeriod, views: list[ItemView], policy: Policy) -> int:
    """At publish: one DM per person, naming every item they reported (a person behind two items,
    or behind a report and its duplicate, hears once). Returns how many were queued."""
    theirs: dict[str, list[ItemView]] = {}
    where: dict[str, Reporter] = {}
    for view in views:
        for reporter in _reporters(session, view.subject):
            where.setdefault(reporter.user_id, reporter)
            if view not in theirs.setdefault(reporter.user_id, []):
                theirs[reporter.user_id].append(view)
    told = 0
    for user_id, items in theirs.items():
        told += outbox.enqueue(
            session=session, dedupe_key=f"focus:{period.key}:dm:{user_id}", method="chat.postMessage",
            payload={"channel": user_id, **build_focus_dm_for(period.key, [(v.title, v.item.subject) for v in items], policy.reference_prefix)},
            workspace=where[user_id].workspace,
        )
    return told


def sync_post(session: Session, period: FocusPeriod, why: str) -> None:
    """Queue the announcement's redraw (``why`` makes each distinct state one update)."""
    if period.published_at is not None:
        outbox.enqueue(session=session, dedupe_key=f"focus:{period.key}:sync:{why}", method="chat.update",
                       payload={"period": period.key}, purpose=POST_PURPOSE)


def pick(*, session: Session, policy: Policy, actor: str, subject: Subject, now: datetime | None = None) -> FocusItem:
    """Add ``subject`` to the current period's focus with its baseline. FocusError: merged, deleted
    or closed report, unknown area, already picked, or the focus is full."""
    now = now or utcnow()
    if subject.kind == "report":
        point = session.get(FrictionPoint, int(subject.value)) if subject.value.isdigit() else None
        ref = format_ref(policy.reference_prefix, subject.value)
        if point is None:
            raise FocusError(f"There is no {ref}.")
        if point.duplicate_of_id is not None:
            raise FocusError(f"{ref} was merged into {format_ref(policy.reference_prefix, point.duplicate_of_id)}: pick that one.")
        if point.status in CLOSED:
            raise FocusError(f"{ref} is already closed.")
    elif not policy.taxonomy.has(subject.value):
        raise FocusError(f"There is no area {subject.value!r}.")
    key, start, end = period_for(now, policy.insight.timezone)
    period = store.ensure_period(session=session, key=key, starts_at=start, ends_at=end)
    # Two hosts picking at the same moment (two instances on one PostgreSQL) take turns here, so
    # the second sees the first's pick: the focus never holds more than its size.
    period = session.exec(select(FocusPeriod).where(FocusPeriod.id == period.id).with_for_update()).one()
    picked = store.items(session=session, period_id=period.id)
    if any(i.subject == str(subject) for i in picked):
        raise FocusError("That is already in this quarter's focus.")
    if len(picked) >= policy.focus.size:
        raise FocusError(f"The focus holds {policy.focus.size} items; drop one first.")
    baseline = measure(session=session, subject=subject, now=now, window_days=policy.insight.window_days)
    item = FocusItem(period_id=period.id, subject=str(subject), picked_by=actor, baseline=json.dumps(asdict(baseline)))
    from storage.database import insert_unique

    if not insert_unique(session, item):
        raise FocusError("That is already in this quarter's focus.")
    if period.published_at is not None:  # late additions are announced too
        _tell_reporters(session, period, item, _item_view(session, item, policy).title, policy)
        sync_post(session, period, f"item:{item.id}")
    return item


def drop(*, session: Session, policy: Policy, subject: Subject, now: datetime | None = None) -> None:
    key = period_for(now or utcnow(), policy.insight.timezone)[0]
    period = store.get_period(session=session, key=key)
    item = next((i for i in store.items(session=session, period_id=period.id) if i.subject == str(subject)), None) if period else None
    if item is None or period is None:  # no period: no item either
        raise FocusError("That is not in this quarter's focus.")
    session.delete(item)
    sync_post(session, period, f"drop:{item.id}")


def publish(*, session: Session, policy: Policy, actor: str, now: datetime | None = None) -> FocusState:
    """Announce the current focus: one post in ``closing.announce_channel`` (kept up to date) and
    a DM to every reporter of each item, once each. FocusError: nothing picked, no channel, or
    already published."""
    if not policy.closing.announce_channel:
        raise FocusError("Set closing.announce_channel in the team policy: the focus is announced there.")
    now = now or utcnow()
    current = state(session=session, policy=policy, now=now)
    if current.period is None or not current.items:
        raise FocusError("Pick at least one item first.")
    period = session.exec(select(FocusPeriod).where(FocusPeriod.id == current.period.id).with_for_update()).one()
    if period.published_at is not None:
        raise FocusError("This quarter's focus is already published; its post is kept up to date.")
    period.published_at, period.published_by = now, actor
    session.add(period)
    outbox.enqueue(session=session, dedupe_key=f"focus:{period.key}:post", method="chat.postMessage",
                   payload={"channel": policy.closing.announce_channel, "period": period.key}, purpose=POST_PURPOSE)
    _tell_everyone(session, period, current.items, policy)
    return current


# ------------------------------------------------------------------ what changed






def report(*, session: Session, policy: Policy, key: str | None = None, now: datetime | None = None) -> FocusReport | None:
    """Baseline against now for each item of period ``key`` (default: the current one, or when
    nothing is picked for it, the last published period that ended), and the pulse before and
    after. None: nothing was picked for that period. The numbers behind the Slack report, the
    end-of-period post, ``platform-feedback report --focus`` and the dashboard."""
    now = now or utcnow()
    current = state(session=session, policy=policy, now=now, key=key)
    if key is None and not current.items:
        ended = store.last_ended(session=session, at=now)
        current = state(session=session, policy=policy, key=ended.key) if ended else current
    if current.period is None or not current.items:
        return None
    until = min(now, as_utc(current.period.ends_at))
    items = [ItemReport(v, measure(session=session, subject=v.subject, now=until, window_days=policy.insight.window_days,
                                   since=as_utc(current.period.starts_at))) for v in current.items]
    first = min(current.items, key=lambda v: v.baseline.at).baseline
    return FocusReport(current.key, items, first.pulse, pulse_at(session=session, at=until), ended=until < now)
