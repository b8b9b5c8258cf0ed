"""Adoption per capability and ISO week, beside moment-of-use CSAT and the friction of the
capability's area: what the dashboard's usage section, ``report`` and the weekly digest show.

Measures (each week is Monday 00:00 UTC to the next; the last one is the week under way):
- ``active``: distinct people who used the capability in the week; ``active_4w``: in that week and
  the three before;
- ``new``: people whose first use of it ever falls in the week; ``returning``: active in the week
  and used it before the week (``active - new``);
- ``share``: of the developer audience (``usage.audience``, refreshed from Slack by the minute's job
  at most hourly into ``usage_audience``), the part that used it in the week;
- ``time_to_first_use``: the median, over the week's new people, of the time from their first
  event of any capability to their first use of this one (0 when it was their first event);
- ``failure_rate``: failed uses / uses.
All counted in the database (``storage.usage``): Python sees a row per capability and week.
"""

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session

from bot.insight import service as insight
from bot.policy import Policy
from bot.usage.weeks import week_start
from storage import usage as store
from storage.models import utcnow

log = logging.getLogger(__name__)
AUDIENCE_REFRESH_SECONDS = 3600.0


@dataclass(frozen=True)
class Week:
    start: datetime
    active: int = 0
    active_4w: int = 0
    new: int = 0
    returning: int = 0
    uses: int = 0
    failed: int = 0
    share: float | None = None  # None without an audience
    time_to_first_use: timedelta | None = None

    @property
    def failure_rate(self) -> float | None:
        return self.failed / self.uses if self.uses else None


@dataclass(frozen=True)
class Csat:
    """Moment-of-use CSAT of the closed windows in the span: only windows with at least the minimum
    group count; the others give their number of answers, never a score."""

    answers: int  # in every closed window
    scored: tuple[int, ...]  # the scores of the windows that reached the minimum group
    hidden_windows: int  # closed windows under the minimum group

    @property
    def average(self) -> float | None:
        return sum(self.scored) / len(self.scored) if self.scored else None

    @property
    def satisfied(self) -> float | None:
        return sum(1 for s in self.scored if s >= 4) / len(self.scored) if self.scored else None


@dataclass(frozen=True)
class CapabilityAdoption:
    name: str
    label: str
    area: str | None
    area_label: str | None
    weeks: list[Week]
    csat: Csat
    friction_score: float | None  # the area's friction score over insight.window_days (None: no area)
    friction_points: int

    @property
    def latest(self) -> Week:
        return self.weeks[-1]


@dataclass(frozen=True)
class Adoption:
    weeks: list[datetime]
    capabilities: list[CapabilityAdoption]
    audience: int  # members known (0: no audience set or not resolved yet)
    comments: list[tuple[str, int, str]] = field(default_factory=list)  # (capability, score, text) of closed windows


def measure(*, session: Session, policy: Policy, now: datetime | None = None, weeks: int = 8) -> Adoption:
    """The last ``weeks`` weeks (the current one last) for every capability in the policy."""
    now = now or utcnow()
    first = week_start(now) - timedelta(weeks=weeks - 1)
    edges = [first + timedelta(weeks=i) for i in range(weeks + 1)]
    wide = [first + timedelta(weeks=i) for i in range(-3, weeks + 1)]  # three weeks more, for the 4-weekly count
    activity = {(c, b): (u, n, f) for c, b, u, n, f in store.weekly_activity(session=session, edges=edges)}
    rolling = {(c, b - 3): n for c, b, n in store.rolling_users(session=session, edges=wide)}
    new = {(c, b): n for c, b, n in store.new_users(session=session, edges=edges)}
    size = store.audience_size(session=session)
    members = {(c, b): n for c, b, n in store.audience_active(session=session, edges=edges)} if size else {}
    scores = store.closed_scores(session=session, since=edges[0])
    friction = {c.category: c for c in insight.friction_scores(session=session, days=policy.insight.window_days, now=now, limit=1).categories}
    found = []
    for cap in policy.usage.capabilities:
        rows = []
        for i, start in enumerate(edges[:-1]):
            active, uses, failed = activity.get((cap.name, i), (0, 0, 0))
            fresh = new.get((cap.name, i), 0)
            ttf = store.time_to_first_use(session=session, capability=cap.name, start=start, end=edges[i + 1]) if fresh else None
            rows.append(Week(start, active, rolling.get((cap.name, i), 0), fresh, active - fresh, uses, failed,
                             members.get((cap.name, i), 0) / size if size else None, ttf))
        mine = [w for w in scores if w.capability == cap.name]
        kept = tuple(s for w in mine for s in w.scores)
        area = friction.get(cap.area) if cap.area else None
        found.append(CapabilityAdoption(
            cap.name, cap.display, cap.area, policy.taxonomy.label(cap.area) if cap.area else None, rows,
            Csat(sum(w.answers for w in mine), kept, sum(1 for w in mine if not w.scores)),
            (area.score if area else 0.0) if cap.area else None, area.points if area else 0))
    return Adoption(edges[:-1], found, size, store.comments(session=session, since=edges[0]))


def as_data(adoption: Adoption) -> dict:
    """Plain data (``report --json``): per capability, its weeks and its CSAT and friction."""

    def hours(d: timedelta | None) -> float | None:
        return round(d.total_seconds() / 3600, 2) if d is not None else None

    return {
        "audience": adoption.audience,
        "capabilities": [{
            "name": c.name, "label": c.label, "area": c.area,
            "friction_score": round(c.friction_score, 1) if c.friction_score is not None else None, "friction_points": c.friction_points,
            "csat": {"answers": c.csat.answers, "average": round(c.csat.average, 2) if c.csat.average is not None else None,
                     "satisfied": round(c.csat.satisfied, 3) if c.csat.satisfied is not None else None,
                     "windows_under_min_group": c.csat.hidden_windows},
            "weeks": [{"week": w.start.strftime("%G-W%V"), "active": w.active, "active_4w": w.active_4w, "new": w.new,
                       "returning": w.returning, "uses": w.uses, "failed": w.failed,
                       "failure_rate": round(w.failure_rate, 3) if w.failure_rate is not None else None,
                       "audience_share": round(w.share, 3) if w.share is not None else None,
                       "time_to_first_use_hours": hours(w.time_to_first_use)} for w in c.weeks],
        } for c in adoption.capabilities],
    }


def ranked(adoption: Adoption) -> list[CapabilityAdoption]:
    """"Most used x least liked" first: by 4-weekly users times (5 - CSAT average), capabilities
    without a score by use alone after them."""
    def key(c: CapabilityAdoption):
        avg = c.csat.average
        return (avg is None, -(c.latest.active_4w * (5 - avg)) if avg is not None else -c.latest.active_4w, c.name)

    return sorted(adoption.capabilities, key=key)


# ------------------------------------------------------------------ the audience, from Slack


class AudienceRefresh:
    """Reads ``usage.audience`` from Slack (``usergroups.users.list``, Tier 2; ``conversations.members``,
    Tier 4, 1000 a page) at most every ``AUDIENCE_REFRESH_SECONDS`` and replaces ``usage_audience``.
    A read that fails leaves the last set in place (logged)."""

    def __init__(self, *, db, policy: Policy, read):
        self.db, self.audience, self.read = db, policy.usage.audience, read
        self._last = -AUDIENCE_REFRESH_SECONDS

    async def maybe(self) -> int | None:
        if not (self.audience.usergroups or self.audience.channels) or time.monotonic() - self._last < AUDIENCE_REFRESH_SECONDS:
            return None
        people: set[str] = set()
        try:
            for group in self.audience.usergroups:
                people |= set((await self.read("usergroups_users_list", usergroup=group)).get("users") or [])
            for channel in self.audience.channels:
                cursor = None
                for _ in range(1000):
                    page = await self.read("conversations_members", channel=channel, limit=1000, **({"cursor": cursor} if cursor else {}))
                    people |= set(page.get("members") or [])
                    cursor = (page.get("response_metadata") or {}).get("next_cursor")
                    if not cursor:
                        break
        except Exception as exc:  # noqa: BLE001 - any read failure keeps the last audience; said once per try
            log.warning("usage audience: could not read it from Slack (%s); the last one stays", " ".join(str(exc).split())[:200])
            return None
        self._last = time.monotonic()
        return await self.db.run(store.replace_audience, users=sorted(people))


def csv_rows(data: dict | None) -> list[list]:
    """``report --csv`` rows (section, name, label, value, previous): per capability and week each measure."""
    rows: list[list] = []
    for c in (data or {}).get("capabilities", []):
        for w in c["weeks"]:
            rows += [["usage", c["name"], f"{w['week']} {key}", w[key], ""] for key in
                     ("active", "active_4w", "new", "returning", "uses", "failed", "failure_rate", "audience_share", "time_to_first_use_hours")]
        rows.append(["usage_csat", c["name"], "average", c["csat"]["average"], ""])
        rows.append(["usage_csat", c["name"], "answers", c["csat"]["answers"], ""])
        rows.append(["usage_friction", c["name"], c["area"] or "", c["friction_score"], ""])
    return rows


def table(data: dict | None) -> str:
    """``report``'s plain-text part: one line per capability, its latest week."""
    if not data or not data.get("capabilities"):
        return ""
    lines = ["", "Adoption (this week; CSAT of closed weeks at the minimum group; the area's friction):"]
    for c in data["capabilities"]:
        w = c["weeks"][-1]
        share = f", {w['audience_share'] * 100:.0f} % of the audience" if w["audience_share"] is not None else ""
        csat = f"CSAT {c['csat']['average']:.1f}" if c["csat"]["average"] is not None else "CSAT –"
        friction = f"friction {c['friction_score']:.1f} ({c['friction_points']} points)" if c["friction_score"] is not None else "no area"
        lines.append(f"  {c['label']}: {w['active']} active ({w['active_4w']} in 4 weeks{share}), {w['new']} new, "
                     f"{w['returning']} returning; {csat}; {friction}")
    return "\n".join(lines)


# ------------------------------------------------------------------ the focus report, before and after


def side_at(*, session: Session, capability: str, when: datetime | str) -> dict:
    """A capability's adoption and CSAT as they stood at ``when``: people who used it in the four
    weeks before, and the moment-of-use CSAT of the windows of those weeks closed by now that
    reached the minimum group (a window still open, or under the group, gives no score). ``when``:
    an aware datetime or its ISO text (the focus report's ``at``)."""
    when = datetime.fromisoformat(when) if isinstance(when, str) else when
    start = when - timedelta(weeks=4)
    windows = [w for w in store.closed_scores(session=session, since=week_start(start)) if w.capability == capability and w.week_start < when]
    scores = [s for w in windows for s in w.scores]
    return {"active_4w": store.active_between(session=session, capability=capability, start=start, end=when),
            "csat": round(sum(scores) / len(scores), 2) if scores else None, "csat_answers": len(scores)}


def focus_usage(*, session: Session, policy: Policy, data: dict | None) -> dict | None:
    """``bot.focus.data``'s report with, for each area item, the capabilities of that area
    before (at the baseline) and after (now, or the period's end): ``item["usage"]``."""
    for item in (data or {}).get("items", []):
        caps = [c for c in policy.usage.capabilities if item.get("area") and c.area == item["area"]]
        item["usage"] = [{"capability": c.name, "label": c.display,
                          "before": side_at(session=session, capability=c.name, when=item["baseline"]["at"]),
                          "after": side_at(session=session, capability=c.name, when=item["now"]["at"])} for c in caps]
    return data


def focus_words(usage: dict) -> str:
    """``deploy: 12 people in 4 weeks, CSAT 3.1 → 18, CSAT 3.9`` for the focus report's table."""
    def side(s: dict) -> str:
        return f"{s['active_4w']} people in 4 weeks, CSAT " + (f"{s['csat']:g}" if s["csat"] is not None else "–")

    return f"{usage['label']}: {side(usage['before'])} → {side(usage['after'])}"
