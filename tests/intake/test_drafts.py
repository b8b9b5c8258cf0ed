"""``FrictionDraft`` made in one place (issue #24): ``bot.intake.drafts.new_draft``. The shared fields
are filled one way, and no other module of the bot builds a draft by hand."""

from pathlib import Path

from bot.intake.drafts import new_draft
from bot.policy import Policy
from storage.models import Source

REPO = Path(__file__).resolve().parents[2]


def test_the_shared_fields_are_filled_one_way():
    taxonomy = Policy().taxonomy
    text = "the deploy pipeline times out " + "x" * 4000
    draft = new_draft(taxonomy=taxonomy, source=Source.command, intake_key="command:1", team_id="T1", filed_by="U1", text=text, channel_id="C1")
    assert (draft.reporter_id, draft.filed_by, draft.channel_id, draft.source) == ("U1", "U1", "C1", Source.command)
    assert draft.text == text[:3000] and len(draft.text) == 3000
    assert draft.auto_categories  # suggested from the text (the default taxonomy knows deploys)
    other = new_draft(taxonomy=taxonomy, source=Source.reaction, intake_key="message:C1:1", team_id="T1", filed_by="U1", reporter_id="U2",
                      text=text, max_text=None)
    assert other.reporter_id == "U2" and other.text == text


def test_no_other_module_builds_a_draft_by_hand():
    found = [f"{p.relative_to(REPO)}:{n}" for root in ("bot", "handlers") for p in sorted((REPO / root).rglob("*.py"))
             if p.name != "drafts.py" for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if "FrictionDraft(" in line]
    assert found == []
