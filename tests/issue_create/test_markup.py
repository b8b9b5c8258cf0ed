"""People's words go into the tracker as text (issue #28): no fence, block or marker they write can
end the literal block the bot puts them in, and the facts around them are escaped."""

import re

from bot.issue_create import markup

FACTS = markup.Facts(ref="FB-12", area=["CI *bold* [x](y) @team"], severity="high", minutes_lost=30, people=3,
                     links=[("FB-12", "https://example.slack.com/archives/C1/p1"), ("FB-13", "javascript:alert(1)")],
                     duplicates=["FB-13"])


def test_a_fence_in_the_text_cannot_close_the_block():
    text = "before\n````\n@alice <img src=x onerror=alert(1)> [click](https://evil.example)\n```\nafter"
    body = markup.body("github", text, FACTS, "pf-0123456789abcdef")
    fence = re.search(r"^(`{3,})text$", body, re.M).group(1)
    assert len(fence) == 5  # longer than the longest run of backticks in the text
    start = body.index(fence + "text\n") + len(fence) + 5
    end = body.index("\n" + fence + "\n", start)
    assert body[start:end] == text  # the words, verbatim, inside the one block
    assert body.rstrip().endswith("<!-- platform-feedback pf-0123456789abcdef -->")


def test_jira_noformat_cannot_be_closed_by_the_reporter():
    text = "x {noformat} [~accountid:5b10] *bold* {NoFormat}"
    body = markup.body("jira", text, FACTS, "pf-0123456789abcdef")
    assert body.count("{noformat}") == 2 and "{ noformat}" in body
    inside = body.split("{noformat}")[1]
    assert "[~accountid:5b10]" in inside
    assert "{color:#97a0af}Filed from Slack by platform-feedback · pf-0123456789abcdef{color}" in body


def test_the_facts_are_escaped_and_only_web_links_kept():
    body = markup.body("gitlab", "words", FACTS, "pf-0123456789abcdef")
    assert r"CI \*bold\* \[x\]\(y\) @" + "\u2060team" in body
    assert "[FB-12](https://example.slack.com/archives/C1/p1)" in body and "javascript:" not in body
    assert "- **Time lost**: 30 min per occurrence" in body and "- **People who hit it**: 3" in body
    assert "**Merged duplicates**: FB-13" in body


def test_linear_marker_is_a_visible_last_line_and_titles_are_one_line():
    assert markup.body("linear", "w", FACTS, "pf-0123456789abcdef").endswith("_Filed from Slack by platform-feedback · pf-0123456789abcdef_")
    assert markup.title("  a\nb\tc  " + "x" * 300) == ("a b c " + "x" * 300)[:255]
