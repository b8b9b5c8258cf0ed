"""People's text is text (issue #14) and limits are checked on what is sent (issue #13 item 6).

Every ``build_*`` in the features' ``blocks`` modules gets hostile, long, markup-heavy and multi-byte text in every field a
person or a tracker wrote; each payload must pass Slack's limits (slack_sdk's models plus
tests/blockkit.py) and contain no live mention, ping or link but the bot's own."""

import inspect
import re
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bot.changelog.blocks as changelog
import bot.closing.blocks as closing
import bot.focus.blocks as focus
import bot.help_channel.blocks as help_channel
import bot.home.blocks as home
import bot.insight.blocks as insight
import bot.intake.blocks as intake
import bot.office_hours.blocks as office_hours
import bot.surveys.blocks as surveys
import bot.targets.blocks as targets
import bot.triage.blocks as triage
from bot.insight import service as ops
from bot.policy import Policy
from bot.runtime.listening import try_again
from bot.surveys.results import compute_results, run_survey
from bot.targets.compliance import Compliance
from bot.targets.service import ClockKind, ClockState, Threshold
from bot.text import mrkdwn, to_mrkdwn
from bot.triage.ids import TriageCallback
from bot.triage.service import Change, Headline
from storage.models import ClosureNotice, FrictionPoint, FrictionTag, Reporter, Source, Status, TrackerLink
from storage.surveys import ResponseRow
from storage.targets import Rate
from tests.blockkit import check_message, check_view
from tests.surveys.test_surveys_logic import answers, run_row, survey

UTC = timezone.utc
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
SAFE_URL = "https://safe.example/issue/1"
PERMALINK = "https://acme.slack.com/archives/C0TRIAGE01/p1700000000000100"
# What the bot itself may put in a message: its own mentions (ids from Slack, never from text),
# Slack dates, and links to addresses it stored.
OWN_TOKEN = re.compile(
    r"<(?:@U0SAFE\w*|#C0SAFE\w*|!date\^\d+\^[^<>|]*\|[^<>]*"
    rf"|{re.escape(SAFE_URL)}\|[^<>]*|{re.escape(PERMALINK)}\|[^<>]*)>"
)
PING = re.compile(r"@(?:channel|here|everyone)\b", re.IGNORECASE)

HOSTILE = [
    "<!channel>", "<!here>", "<!everyone>", "@channel", "@Here", "@everyone", "<!subteam^S0TEAM|@ops>", "<!subteam^S0TEAM>",
    "<@U0VICTIM1>", "<@U0VICTIM1|boss>", "<#C0GENERAL|general>", "<https://evil.example|https://sso.corp.example>",
    "<https://evil.example>", "<mailto:x@evil.example|help>", "&lt;!channel&gt;", "<", ">", "&", "|", "*", "_", "`", "~",
    "\n", "> ", "é", "🚀", "ß", "\u200b", "<?xml version='1.0'?><a b=\"c\">&amp;</a>", "<!date^1^{x}|soon>", "x" * 50,
]
hostile_text = st.one_of(
    st.lists(st.sampled_from(HOSTILE), min_size=1, max_size=120).map("".join),
    st.text(min_size=1, max_size=600),
    st.tuples(st.sampled_from(HOSTILE), st.integers(1, 3000)).map(lambda t: (t[0] * t[1])[:6000] or "x"),
)
PROPERTY = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _strings(node, key=None):
    """Every string Slack parses as mrkdwn: mrkdwn objects and the message's top-level text."""
    if isinstance(node, dict):
        if node.get("type") == "mrkdwn" and isinstance(node.get("text"), str):
            yield node["text"]
        for k, v in node.items():
            yield from _strings(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v, key)


def assert_inert(payload) -> None:
    shown = list(_strings(payload))
    if isinstance(payload, dict) and isinstance(payload.get("text"), str):
        shown.append(payload["text"])
    for s in shown:
        for token in re.findall(r"<[^<>]*>", s):
            assert OWN_TOKEN.fullmatch(token), f"live token {token!r} in {s[:300]!r}"
        assert not PING.search(s), s[:300]


def check(payload) -> None:
    if isinstance(payload, list):
        payload = {"text": "list", "blocks": payload}
    if payload.get("type") in ("modal", "home"):
        check_view(payload)
    elif payload:
        check_message(payload)
    assert_inert(payload)


def point(text: str, note: str, key: str, i: int = 1, status: Status = Status.linked) -> FrictionPoint:
    p = FrictionPoint(id=i, team_id="T0SAFE", filed_by="U0SAFE1", text=text, source=Source.modal, intake_key=f"k{i}",
                      status=status, permalink=PERMALINK, resolution_note=note, assignee="U0SAFE2", channel_id="C0SAFE1",
                      created_at=NOW - timedelta(days=3), reporters=[Reporter(user_id=f"U0SAFE{n}", team_id="T0SAFE") for n in range(12)],
                      tags=[FrictionTag(category="ci", automatic=True)],
                      links=[TrackerLink(friction_point_id=i, tracker="github", key=key, url=SAFE_URL)])
    return p


def every_builder(text: str, note: str, key: str, policy: Policy | None = None, survey_fields: dict | None = None) -> dict:
    """Each build_* with ``text`` (a person's), ``note`` (a host's) and ``key`` (a tracker's) in every field;
    ``policy`` and ``survey_fields`` (a survey's definition) give the policy's own strings (default: the example's)."""
    policy = policy or Policy()
    survey_fields = survey_fields or {}
    tax = policy.taxonomy
    p, q = point(text, note, key), point(note, text, key, i=2, status=Status.resolved)
    notice = ClosureNotice(id=5, friction_point_id=1, user_id="U0SAFE1", tracker="github", key=key, closure=1, outcome="fixed")
    gone = ClosureNotice(id=6, friction_point_id=1, user_id="U0SAFE1", tracker="github", key=key, closure=1, outcome="not_planned")
    window = ops.Window(NOW - timedelta(days=30), NOW)
    numbers = ops.LoopNumbers(window, 3, 0.7, 2, timedelta(hours=3), None, 1, 1, 1.0)
    health = ops.LoopHealth(numbers, numbers, [ops.WeekActivity(NOW, 2, 1)], [])
    scores = ops.FrictionScores(window, [ops.CategoryScore("ci", 4.0, 1.0, 2, 3, 1.5)],
                                [ops.PointScore(i, 3.0, 1.0, 2, "high", "new", ("ci",), text) for i in range(10)])
    run = run_row(**{"anonymous": False} | survey_fields)
    s = survey(**survey_fields)
    choice = next((q.options[-1] for q in s.questions if q.kind == "choice"), "Docs")
    rows = [ResponseRow(f"r{i:02d}", "channel:C0SAFE1", f"U0SAFE{i}", text, answers(i % 11, 1 + i % 5, choice, note))
            for i in range(25)]
    results = compute_results(run, run_survey(run), rows, {"channel:C0SAFE1": (25, 25)})
    start = NOW.astimezone(timezone(timedelta(hours=1)))
    return {
        "build_card": triage.build_card("FB-1", p, tax, "FB", ops.DuplicateSuggestion(2, 80, text)),
        "build_triage_modal": triage.build_triage_modal(TriageCallback.resolve, "FB-1", 1),
        "build_reporter_notice": [triage.build_reporter_notice("FB-1", pt, c, "U0SAFE3", picked_up=True)
                                  for c in Change for pt in (p, q)],
        "build_queue_list": triage.build_queue_list("FB", [p, q] * 20, limit=20),
        "build_host_home": triage.build_host_home("FB", tax, Headline(3, None, None, 1), [p, q] * 25, category=None, status=None),
        "build_closure_notice": [closing.build_closure_notice("FB-1", p, n, SAFE_URL, key, not_planned_message=policy.closing.not_planned_message)
                                 for n in (notice, gone)],
        "build_feedback_thanks": closing.build_feedback_thanks(True, "FB-1"),
        "build_still_broken_modal": closing.build_still_broken_modal(5, "FB-1"),
        "build_still_broken_alert": closing.build_still_broken_alert("FB-1", p, "U0SAFE1", text),
        "build_issue_deleted_alert": closing.build_issue_deleted_alert("FB-1", p, "github", key, back=True),
        "build_announcement": [closing.build_announcement("FB", key, SAFE_URL, t, [p, q], 2) for t in (text, None)],
        "build_help_reply": help_channel.build_help_reply("FB-1", 1, "white_check_mark"),
        "build_resolved_reply": help_channel.build_resolved_reply("FB-1", "U0SAFE1"),
        "build_home": home.build_home("FB", "ticket", [p, q] * 10),
        "build_top": insight.build_top("FB", tax, scores, health, show_points=True),
        "build_digest": insight.build_digest(tax, scores, health),
        "build_report_modal": intake.build_report_modal(tax, intake.ReportMetadata(), text=text[:3000], link_url=SAFE_URL),
        "build_filed_message": intake.build_filed_message("FB-1", p, with_details_button=True),
        "build_added_to_report": intake.build_added_to_report("FB-1"),
        "build_addition_alert": intake.build_addition_alert("FB-1", "U0SAFE1", text),
        "build_thread_reply": intake.build_thread_reply("FB-1", "U0SAFE1"),
        "build_reports_list": intake.build_reports_list("FB", [p, q] * 10, heading="Your reports"),
        "build_usage": intake.build_usage("ticket", unknown=text, prefix="FB"),
        "try_again": try_again("your report", text),
        "build_agenda": office_hours.build_agenda("FB", start, 30, "U0SAFE1", [p, q] * 20, [q, p] * 20),
        "build_host_dm": office_hours.build_host_dm("FB", start, "C0SAFE1", [p] * 40, [q] * 40),
        "build_summary": office_hours.build_summary("FB", start, "U0SAFE1", [p, q] * 20, [q] * 30),
        "build_survey_dm": surveys.build_survey_dm(run_id=3, survey=s, closes_at=NOW, results_channel="C0SAFE1", chosen={},
                                                   texts={"fix": text}, comment=note, saved=True),
        "build_closed_notice": surveys.build_closed_notice(),
        "build_comment_modal": surveys.build_comment_modal(3, s, texts={"fix": text}, comment=note),
        "build_saved_view": surveys.build_saved_view(),
        "build_results": surveys.build_results(results, command="/platform-feedback survey results pulse"),
        "build_surveys_list": surveys.build_surveys_list([s], live={}, next_runs={}, opted_out=False),
        "build_opt_out_answer": surveys.build_opt_out_answer(True),
        "build_csat_dm": surveys.build_csat_dm("FB-1", text, policy.csat_followup.question, 4, chosen=3, note=note),
        **_targets(text, note, tax),
        **_focus(text, note, key, p, q, scores, tax),
    }


def _targets(text: str, note: str, tax) -> dict:
    clock = ClockState(ClockKind.first_response, timedelta(hours=4), timedelta(hours=5), NOW, NOW, False, False)
    return {
        "build_target_alert": [targets.build_target_alert("FB-1", text, clock, t, NOW, owner="U0SAFE1") for t in Threshold],
        "build_breach_dm": targets.build_breach_dm("FB-1", text, clock, NOW, permalink=PERMALINK),
        "build_question_dm": targets.build_question_dm("FB-1", 1, "U0SAFE1", text),
        "build_reply_modal": targets.build_reply_modal("FB-1", 1),
        "build_reporter_answer": targets.build_reporter_answer("FB-1", "U0SAFE1", note),
        "build_ask_modal": targets.build_ask_modal("FB-1", 1),
        "build_answer_received": targets.build_answer_received("FB-1"),
        # An area label is the policy's, but a stored tag outlives a taxonomy edit: shown as text.
        "build_compliance_blocks": {"text": "compliance", "blocks": targets.build_compliance_blocks(
            Compliance(NOW, NOW, Rate(3, 2), Rate(2, 1), Rate(0, 0), Rate(1, 1), {"medium": 2}, {text: 1, None: 1}), lambda c: c)},
        "build_compliance_blocks (areas)": {"text": "compliance", "blocks": targets.build_compliance_blocks(
            Compliance(NOW, NOW, Rate(3, 2), Rate(2, 1), Rate(0, 0), Rate(1, 1), {"medium": 2}, {c.id: 1 for c in tax.categories}), tax.label)},
    }


def _focus(text: str, note: str, key: str, p: FrictionPoint, q: FrictionPoint, scores, tax) -> dict:
    from bot.changelog.service import Fix
    from bot.focus.service import FocusReport, FocusState, ItemReport, ItemView, Measure, Pulse, Subject
    from storage.focus import FocusItem

    base = Measure(at=NOW.isoformat(), score=3.5, reports_per_week=1.5, reporters=4, hours_lost_per_week=2.0, pulse=Pulse(nps=10, nps_answers=6))
    views = [ItemView(FocusItem(period_id=1, subject=f"report:{i}", picked_by="U0SAFE1", baseline="{}"), Subject("report", str(i)),
                      t, 3, list(pt.links), i == 2, base) for i, t, pt in ((1, text, p), (2, note, q))]
    views.append(ItemView(FocusItem(period_id=1, subject="area:ci", picked_by="U0SAFE1", baseline="{}"), Subject("area", "ci"), text, 5, [], False, base))
    state = FocusState(None, "2026-Q1", views)
    report = FocusReport("2026-Q1", [ItemReport(v, base) for v in views], Pulse(nps=10, nps_answers=6), Pulse(nps=30, nps_answers=7), ended=True)
    fixes = [Fix("github", key, url, ((1, text), (2, note)), 3, NOW, focus=True) for url in (SAFE_URL, None, text)]
    return {
        "build_focus_picker": focus.build_focus_picker(state, scores, prefix="FB", taxonomy=tax, size=3),
        "build_focus_post": focus.build_focus_post(state, prefix="FB"),
        "build_focus_dm": [focus.build_focus_dm("2026-Q1", t, "FB", s) for t in (text, note) for s in ("report:1", "area:ci")],
        "build_focus_dm_for": [focus.build_focus_dm_for("2026-Q1", [(text, "report:1"), (note, "area:ci"), (text, "report:2")], "FB")],
        "build_focus_report": focus.build_focus_report(report, prefix="FB"),
        "build_changelog": changelog.build_changelog("FB", fixes * 20, start=NOW - timedelta(days=7), end=NOW),
    }


def test_every_builder_is_under_test():
    modules = (changelog, closing, focus, help_channel, home, insight, intake, office_hours, surveys, targets, triage)
    builders = {name for m in modules for name, f in inspect.getmembers(m, inspect.isfunction)
                if name.startswith("build_") and f.__module__ == m.__name__}
    assert builders == {n for n in (name.split(" (")[0] for name in every_builder("a", "b", "GH-1")) if n.startswith("build_")}


@PROPERTY
@given(text=hostile_text, note=hostile_text, key=hostile_text)
def test_no_builder_lets_text_ping_mention_or_disguise_a_link_and_every_payload_fits(text, note, key):
    for name, payload in every_builder(text, note, key[:255]).items():
        for one in payload if isinstance(payload, list) and payload and "type" not in payload[0] else [payload]:
            if one is not None:
                try:
                    check(one)
                except AssertionError as exc:
                    raise AssertionError(f"{name}: {exc}") from exc


def test_the_reported_pings_are_shown_as_text():
    shown = to_mrkdwn("<!channel> <!here> <!everyone> @channel <!subteam^S1|@ops> <@U1> <https://evil.example|https://sso.corp.example>")
    assert "<" not in shown and not PING.search(shown)
    assert "https://sso.corp.example (https://evil.example)" in shown  # a link shows where it goes
    assert "@ops" in shown and "@U1" in shown


def test_a_2400_character_xml_report_echoed_back_fits_3000():
    """Issue #13 item 6: shortened before escaping, the echo was 3,257 characters and Slack refused it."""
    xml = ("<item><name>a&b</name></item>" * 100)[:2400]
    reply = try_again("your report", xml)
    check_message(reply)
    section = reply["blocks"][0]["text"]["text"]
    assert len(section) <= 3000 and "&lt;item&gt;&lt;name&gt;a&amp;b" in section
    assert not re.search(r"&[a-z]*…", section)  # never cut inside an entity
    assert len(mrkdwn(xml, 2500)) <= 2500


# Issue #26 item 12: the policy's own words (area labels, survey titles, questions and options, the
# CSAT question, the not-planned message) are text too: a YAML file is edited by many hands.
LIVE = "<!channel> <https://evil.example|https://ci.corp.example> <@U0VICTIM1> @here"  # 75 characters at most


def hostile_policy() -> tuple[Policy, dict]:
    labels = {c: f"{c.upper()} {LIVE}"[:75] for c in ("ci", "docs", "deploys")}
    policy = Policy.model_validate({
        "taxonomy": {"categories": [{"id": c, "label": label} for c, label in labels.items()]},
        "closing": {"not_planned_message": f"Closed as not planned {LIVE} <!subteam^S0TEAM|@ops>"},
        "csat_followup": {"enabled": True, "question": f"Solved? {LIVE}"},
    })
    survey_fields = {"title": f"Pulse {LIVE}", "questions": [
        {"id": "nps", "kind": "nps", "text": f"Recommend us? {LIVE}"},
        {"id": "ci", "kind": "csat", "text": f"CI? {LIVE}"},
        {"id": "slow", "kind": "choice", "text": f"What slows you? {LIVE}", "options": [f"{o} {LIVE}"[:75] for o in ("CI", "Deploys", "Docs")]},
        {"id": "fix", "kind": "text", "text": f"Fix next? {LIVE}"},
    ]}
    return policy, survey_fields


def test_policy_text_is_shown_as_text_on_every_surface():
    policy, survey_fields = hostile_policy()
    assert "<!channel>" in policy.taxonomy.label("ci")  # the policy took it as written
    for name, payload in every_builder("plain words", "a note", "GH-1", policy, survey_fields).items():
        for one in payload if isinstance(payload, list) and payload and "type" not in payload[0] else [payload]:
            if one is not None:
                try:
                    check(one)
                except AssertionError as exc:
                    raise AssertionError(f"{name}: {exc}") from exc


def test_the_survey_chart_comment_is_text():
    policy, survey_fields = hostile_policy()
    run = run_row(**survey_fields)
    results = compute_results(run, run_survey(run), [], {})
    comment = surveys.chart_comment(results)  # files.uploadV2's initial_comment is mrkdwn
    assert not re.findall(r"<[^<>]*>", comment) and not PING.search(comment), comment
