"""The diagrams in docs/ are rendered from the state tables (dialogs.diagrams) and must match them."""

from pathlib import Path

import pytest

from dialogs.conversation import MACHINE, TRANSITIONS
from dialogs.diagrams import COMMAND, conversation_page, documents, lifecycle_page
from dialogs.domain import CaseStatus
from dialogs.lifecycle import CASE_TRANSITIONS
from dialogs.steps import Step

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize("name", sorted(documents()))
def test_a_committed_diagram_matches_its_table(name):
    path = DOCS / name
    committed = path.read_text(encoding="utf-8") if path.exists() else ""
    assert committed == documents()[name], f"docs/{name} differs from its table: run `{COMMAND}` and commit it"


def test_state_table_renders_as_mermaid():
    diagram = conversation_page()
    assert "```mermaid\n" in diagram
    for step in Step:
        assert f'state "{step.value}"' in diagram
    for row in TRANSITIONS:
        assert row["trigger"] in diagram
    assert "choosing_reason --> reviewing_verdict: choose_reason" in diagram


def test_the_lifecycle_renders_as_mermaid_with_its_ends():
    diagram = lifecycle_page()
    for status in CaseStatus:
        assert f'state "{status.value}"' in diagram
    for row in CASE_TRANSITIONS:
        assert row["trigger"] in diagram
    assert "[*] --> submitted" in diagram
    assert "in_review --> approved: approve" in diagram and "appealed --> approved: approve" in diagram
    for end in (CaseStatus.REFUNDED, CaseStatus.REJECTED_FINAL, CaseStatus.WITHDRAWN, CaseStatus.CLOSED):
        assert f"{end.value} --> [*]" in diagram


def test_the_machine_has_no_auto_transitions():
    assert not any(t.startswith("to_") for t in MACHINE.events)
