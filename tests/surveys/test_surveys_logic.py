"""Pulse surveys without Slack: policy validation, delivery and reminder times across time zones
and DST, scores, which segments may be shown, and the Block Kit the surveys send."""

import json
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from bot.policy import Policy, Survey
from bot.runtime.config import load_policy
from bot.runtime.settings import ConfigError
from bot.surveys.answers import read_button, selected
from bot.surveys.blocks import build_comment_modal, build_csat_dm, build_results, build_survey_dm, build_surveys_list
from bot.surveys.results import compute_results, nps, question_result, run_survey, segment_map, shown_segments
from bot.surveys.timing import delivery_time, due_reminder, latest_fire, reminder_times, trigger_for
from storage.surveys import ResponseRow, SurveyRun
from tests.blockkit import check_message, check_view

UTC = timezone.utc
QUESTIONS = [
    {"id": "nps", "kind": "nps", "text": "How likely are you to recommend the platform to a colleague?"},
    {"id": "ci", "kind": "csat", "text": "How satisfied are you with CI?"},
    {"id": "slow", "kind": "choice", "text": "What slows you down most?", "options": ["CI", "Deploys", "Docs"]},
    {"id": "fix", "kind": "text", "text": "One thing we should fix next?"},
]


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def survey(**kw) -> Survey:
    return Survey.model_validate({"name": "pulse", "questions": QUESTIONS, "audience": {"channels": ["C0ENG00001"]}} | kw)


# ------------------------------------------------------------------ the policy


@pytest.mark.parametrize(
    "entry, where, what",
    [
        ({"schedule": "0 9 1 */3"}, "surveys[pulse].schedule", "invalid cron expression"),
        ({"schedule": "0 25 * * *"}, "surveys[pulse].schedule", "invalid cron expression"),
        ({"timezone": "Europe/Springfield"}, "surveys[pulse].timezone", "unknown time zone"),
        ({"questions": [{"id": "a", "kind": "choice", "text": "Pick", "options": ["only one"]}]}, "surveys[pulse].questions.0", "2 to 10 options"),
        ({"questions": [{"id": "a", "kind": "nps", "text": "x", "options": ["a", "b"]}]}, "surveys[pulse].questions.0", "only a choice question"),
        ({"questions": [{"id": "a", "kind": "stars", "text": "x"}]}, "surveys[pulse].questions.0.kind", "nps"),
        ({"questions": [{"id": "a", "kind": "nps", "text": "x"}, {"id": "a", "kind": "csat", "text": "y"}]}, "surveys[pulse]", "question ids must be unique"),
        ({"questions": []}, "surveys[pulse].questions", "at least 1"),
        ({"audience": {}}, "surveys[pulse].audience", "at least one of"),
        ({"schedule": "0 9 * * *"}, "surveys[pulse]", "more often than the survey stays open"),
        ({"min_group": 2}, "surveys[pulse].min_group", "greater than or equal to 3"),
        ({"delivery_hour": 24}, "surveys[pulse].delivery_hour", "less than or equal to 23"),
    ],
)
def test_a_bad_survey_stops_start_up_with_one_line_naming_survey_and_field(tmp_path, entry, where, what):
    path = tmp_path / "policy.yml"
    base = {"name": "pulse", "questions": QUESTIONS, "audience": {"channels": ["C0ENG00001"]}}
    path.write_text(json.dumps({"surveys": [{"name": "ok", "questions": QUESTIONS[:1], "audience": {"active_days": 30}}, base | entry]}))
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    message = str(info.value)
    assert "\n" not in message and f"{where}:" in message and what in message, message


def test_survey_names_are_unique_and_a_good_policy_loads(tmp_path):
    path = tmp_path / "policy.yml"
    entry = {"name": "pulse", "questions": QUESTIONS, "audience": {"usergroups": ["S0DEVS0001"], "active_days": 90},
             "schedule": "0 0 1 1,4,7,10 *", "timezone": "Europe/Berlin", "csat": None}
    entry.pop("csat")
    path.write_text(json.dumps({"surveys": [entry], "csat_followup": {"enabled": True}}))
    policy = load_policy(path)
    assert policy.surveys[0].schedule == "0 0 1 1,4,7,10 *" and policy.csat_followup.enabled
    path.write_text(json.dumps({"surveys": [entry, entry]}))
    with pytest.raises(ConfigError, match="surveys: survey names must be unique"):
        load_policy(path)


def test_the_commented_example_in_the_policy_file_is_valid():
    """The example survey in platform-feedback.example.yml, uncommented, is a valid policy."""
    text = (Path(__file__).resolve().parents[2] / "platform-feedback.example.yml").read_text(encoding="utf-8")
    start = text.index("# surveys:")
    lines = []
    for line in text[start:].splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[2:] if line.startswith("# ") else line[1:])
    import yaml

    policy = Policy.model_validate(yaml.safe_load("\n".join(lines)))
    assert policy.surveys and policy.surveys[0].schedule


# ------------------------------------------------------------------ times


def test_delivery_hour_is_each_persons_own_and_follows_dst():
    start = at(2025, 3, 28, 0, 0)  # a Friday, 00:00 UTC; Berlin changes to summer time on Sunday 30 March
    assert delivery_time(start, "Europe/Berlin", 10) == at(2025, 3, 28, 9)  # 10:00 CET
    assert delivery_time(start, "America/Los_Angeles", 10) == at(2025, 3, 28, 17)  # 10:00 PDT, same day
    assert delivery_time(start, "Asia/Tokyo", 10) == at(2025, 3, 28, 1)  # it is 09:00 there: within the hour
    assert delivery_time(start, "Pacific/Auckland", 10) == at(2025, 3, 28, 21)  # 13:00 there: tomorrow 10:00 NZDT
    assert delivery_time(start, "Not/AZone", 10, fallback="Europe/Berlin") == at(2025, 3, 28, 9)
    assert delivery_time(start, None, 10) == at(2025, 3, 28, 10)
    sunday = at(2025, 3, 30, 0, 30)
    assert delivery_time(sunday, "Europe/Berlin", 10) == at(2025, 3, 30, 8)  # 10:00 CEST
    assert delivery_time(sunday, "Europe/Berlin", 2) == at(2025, 3, 30, 1)  # 02:00 does not exist: 03:00 CEST


def test_reminders_never_more_than_two_and_never_too_close():
    dm, close = at(2025, 1, 6, 9), at(2025, 1, 13, 0)
    assert reminder_times(dm, close, remind_after_days=1, remind_before_close=True) == [at(2025, 1, 7, 9), at(2025, 1, 12, 9)]
    assert reminder_times(dm, close, remind_after_days=0, remind_before_close=True) == [at(2025, 1, 12, 9)]
    assert reminder_times(dm, close, remind_after_days=3, remind_before_close=False) == [at(2025, 1, 9, 9)]
    short = at(2025, 1, 8, 0)  # a two-day survey: the day-1 reminder is also the last one
    assert reminder_times(dm, short, remind_after_days=1, remind_before_close=True) == [at(2025, 1, 7, 9)]
    late = at(2025, 1, 6, 20)  # DM delivered late: no reminder fits before the close
    assert reminder_times(late, short, remind_after_days=1, remind_before_close=True) == []
    times = [at(2025, 1, 7, 9), at(2025, 1, 12, 9)]
    assert due_reminder(times, 0, at(2025, 1, 7, 8)) is None
    assert due_reminder(times, 0, at(2025, 1, 7, 10)) == 1
    assert due_reminder(times, 1, at(2025, 1, 8)) is None
    assert due_reminder(times, 0, at(2025, 1, 12, 10)) == 2  # after an outage: only the latest
    assert due_reminder(times, 2, at(2025, 1, 12, 23)) is None


def test_the_latest_cron_firing_is_the_occurrence():
    trigger = trigger_for(survey(schedule="0 0 1 1,4,7,10 *", timezone="Europe/Berlin"))
    assert latest_fire(trigger, at(2025, 4, 1, 10)) == at(2025, 3, 31, 22)  # 1 April 00:00 CEST
    assert latest_fire(trigger, at(2025, 3, 31, 21, 59, 30)) == at(2025, 3, 31, 22)  # a few seconds early
    assert latest_fire(trigger, at(2025, 3, 20)) == at(2024, 12, 31, 23)


# ------------------------------------------------------------------ scores, segments


def test_nps_and_csat():
    assert nps([10, 9, 8, 7, 6, 0]) == round(100 * (2 - 2) / 6, 1) == 0
    assert nps([10, 10, 10, 3]) == 50.0
    assert nps([]) is None
    s = survey()
    answers = [SimpleNamespace(score=v, choice=None, text=None) for v in (5, 4, 4, 2)]
    result = question_result(s.questions[1], answers)
    assert result.score == 3.75 and result.satisfied == 75.0 and result.distribution == {"1": 0, "2": 1, "3": 0, "4": 2, "5": 1}
    nps_result = question_result(s.questions[0], [SimpleNamespace(score=v) for v in (10, 9, 7, 3)])
    assert (nps_result.score, nps_result.promoters, nps_result.passives, nps_result.detractors) == (25.0, 50.0, 25.0, 25.0)


def test_buttons_map_to_answers_and_back():
    s = survey()
    assert read_button(s.questions[0], "10") == {"score": 10}
    assert read_button(s.questions[0], "11") is None
    assert read_button(s.questions[1], "0") is None
    assert read_button(s.questions[2], "1") == {"choice": "Deploys"}
    assert read_button(s.questions[2], "3") is None
    assert read_button(s.questions[3], "x") is None
    assert selected(s.questions[2], SimpleNamespace(score=None, choice="Deploys")) == "1"


def test_small_segments_are_hidden_and_so_is_whatever_would_give_them_away():
    assert shown_segments({"a": 7, "b": 5, "c": 2}, 5) == {"a"}  # c alone (2) would be total - a - b: hide b too
    assert shown_segments({"a": 7, "b": 5, "c": 6}, 5) == {"a", "b", "c"}
    assert shown_segments({"a": 7, "b": 5, None: 1}, 5) == {"a"}  # people in no segment count as hidden
    assert shown_segments({"a": 7, "b": 6, "c": 2, "d": 3}, 5) == {"a", "b"}  # 2 + 3 hidden = 5: enough
    assert shown_segments({"a": 4}, 5) == set()
    assert shown_segments({"a": 3, "b": 3}, 3) == {"a", "b"}
    assert segment_map({"a": 7, "b": 5, "c": 2}, 5) == {"a": "a", "b": None, "c": None}


def run_row(**kw) -> SurveyRun:
    s = survey(**kw)
    base = dict(id=7, survey="pulse", occurrence=at(2025, 1, 6), definition=s.model_dump_json(), anonymous=s.anonymous,
                status="closed", started_at=at(2025, 1, 6), closes_at=at(2025, 1, 13), closed_at=at(2025, 1, 13))
    return SurveyRun(**base)


def answers(nps: int | None, ci: int | None = None, slow: str | None = None, fix: str | None = None) -> dict:
    out = {}
    for key, value in (("nps", nps), ("ci", ci)):
        if value is not None:
            out[key] = SimpleNamespace(score=value, choice=None, text=None)
    if slow:
        out["slow"] = SimpleNamespace(score=None, choice=slow, text=None)
    if fix:
        out["fix"] = SimpleNamespace(score=None, choice=None, text=fix)
    return out


def test_results_withhold_small_anonymous_runs_and_compare_with_the_previous_run():
    run = run_row()
    rows = [ResponseRow(f"r{i}", "usergroup:S0A" if i < 5 else "usergroup:S0B", None, "more docs" if i == 0 else None,
                        answers(10 if i < 3 else 5, 4, "CI", "faster builds" if i == 1 else None)) for i in range(7)]
    recipients = {"usergroup:S0A": (10, 9), "usergroup:S0B": (5, 5)}
    previous = compute_results(run, run_survey(run), rows[:5], recipients)
    results = compute_results(run, run_survey(run), rows, recipients, previous=previous)
    assert results.responses == 7 and results.delivered == 14 and round(results.rate) == 50
    assert results.score_name == "NPS" and results.score == nps([10, 10, 10, 5, 5, 5, 5])
    assert results.change == round(results.score - previous.score, 1)
    assert [s.segment for s in results.segments] == []  # S0B has 2: hiding it alone would leave it as total - S0A
    assert results.hidden_segments == 7
    assert {c.text for c in results.comments} == {"more docs", "faster builds"} and all(c.user_id is None for c in results.comments)
    few = compute_results(run, run_survey(run), rows[:4], recipients)
    assert few.withheld and few.score is None and few.comments == [] and few.segments == []


# ------------------------------------------------------------------ Block Kit


def test_the_dm_states_who_sees_answers_and_fits_slack():
    for anonymous in (True, False):
        s = survey(anonymous=anonymous, questions=QUESTIONS + [
            {"id": f"q{i}", "kind": "choice", "text": "x " * 140, "options": [f"option {j} " * 6 for j in range(10)]} for i in range(6)])
        dm = build_survey_dm(run_id=3, survey=s, closes_at=at(2025, 1, 13), results_channel="C0PLATFORM",
                             chosen={"nps": "9"}, texts={"fix": "a" * 3000}, comment="b" * 3000, saved=True)
        check_message(dm)
        shown = json.dumps(dm)
        assert ("Anonymous" in shown) is anonymous and ("Not anonymous" in shown) is not anonymous
        assert "<#C0PLATFORM>" in shown and "surveys off" in shown
        nps_buttons = next(b for b in dm["blocks"] if b.get("block_id") == "survey_q:nps")["elements"]
        assert [b["text"]["text"] for b in nps_buttons] == [str(v) for v in range(11)]
        assert [b.get("style") for b in nps_buttons].count("primary") == 1 and nps_buttons[9]["style"] == "primary"
    check_view(build_comment_modal(3, survey(), texts={"fix": "x" * 5000}, comment="y" * 5000))
    check_message(build_csat_dm("FB-1", "slow ci " * 200, "Did this solve your problem?", 4, chosen=3, note="n" * 900))
    check_message(build_surveys_list([survey(schedule="0 0 1 */3 *")], live={"pulse": at(2025, 1, 13)}, next_runs={}, opted_out=True))


def test_the_results_post_fits_slack_with_many_comments():
    run = run_row(anonymous=False)
    rows = [ResponseRow(f"r{i:02d}", f"channel:C0{i % 3}", f"U0DEV{i:05d}", "c & <d> " * 200, answers(i % 11, 1 + i % 5, "Docs", "f " * 500))
            for i in range(60)]
    results = compute_results(run, run_survey(run), rows, {"channel:C00": (30, 30), "channel:C01": (30, 30), "channel:C02": (30, 30)})
    post = build_results(results, command="/platform-feedback survey results pulse")
    check_message(post)
    text = json.dumps(post, ensure_ascii=False)
    assert len(post["blocks"]) <= 50 and "…and" in text and "File as friction" in text and "<@U0DEV00000>" in text
    assert "<#C00>" in text and "NPS" in post["text"]
