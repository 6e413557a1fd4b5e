"""Both state machines drawn from their tables as Mermaid: docs/conversation.md and docs/lifecycle.md.

    python -m dialogs.diagrams      # writes them again after a table changed

The pages are pure functions of the tables; tests/dialogs/test_diagram.py fails when a committed page
differs from what its table renders, so a diagram cannot go stale.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dialogs.conversation import BUTTON_TRIGGERS, FILE, MESSAGE_ROUTES, TEXT, TRANSITIONS
from dialogs.domain import CaseStatus
from dialogs.lifecycle import CASE_TRANSITIONS
from dialogs.steps import Step

DOCS = Path(__file__).resolve().parents[1] / "docs"
COMMAND = "python -m dialogs.diagrams"
_ANY = "any_state"  # the pseudo-state that stands for a row's source "*"


def _names(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _label(row: Mapping[str, Any]) -> str:
    guards = _names(row.get("conditions")) + [f"!{u}" for u in _names(row.get("unless"))]
    return f"{row['trigger']} [{' & '.join(guards)}]" if guards else str(row["trigger"])


def mermaid(title: str, states: Sequence[str], transitions: Sequence[Mapping[str, Any]], initial: str) -> str:
    """A Mermaid state diagram of a `transitions` table (plain values): one arrow per source and
    destination, its triggers in the table's order; a row without a destination loops on its source."""
    edges: dict[tuple[str, str], list[str]] = {}
    for row in transitions:
        sources = [_ANY] if row["source"] == "*" else _names(row["source"])
        for source in sources:
            dest = row.get("dest") or source
            labels = edges.setdefault((source, dest), [])
            if _label(row) not in labels:
                labels.append(_label(row))
    lines = ["---", f"title: {title}", "---", "stateDiagram-v2", "  direction LR"]
    lines += [f'  state "{state}" as {state}' for state in states]
    if any(source == _ANY for source, _ in edges):
        lines.append(f'  state "any state" as {_ANY}')
    lines.append(f"  [*] --> {initial}")
    lines += [f"  {source} --> {dest}: {' | '.join(labels)}" for (source, dest), labels in edges.items()]
    if not any(source == _ANY for source, _ in edges):
        ends = [s for s in states if not any(source == s for source, _ in edges)]
        lines += [f"  {state} --> [*]" for state in ends]
    return "\n".join(lines)


def _page(heading: str, source: str, intro: str, diagram: str, tail: str = "") -> str:
    return (
        f"# {heading}\n\nGenerated from {source} by `{COMMAND}`; do not edit by hand "
        f"(tests/dialogs/test_diagram.py fails when this page and the table differ).\n\n{intro}\n\n"
        f"```mermaid\n{diagram}\n```\n{tail}"
    )


def conversation_page() -> str:
    diagram = mermaid("Refund conversation", [s.value for s in Step], TRANSITIONS, Step.IDLE.value)
    routes = "\n".join(
        f"| {step.value} | {_route(step, TEXT)} | {_route(step, FILE)} |" for step in Step
    )
    buttons = ", ".join(f"`{action}` → {trigger}" for action, trigger in BUTTON_TRIGGERS.items())
    tail = (
        "\n## What a message fires\n\nFrom `MESSAGE_ROUTES` in `dialogs/conversation.py`; any other "
        "message gets the step's hint (`hint.<step>`). Commands and buttons route by their name "
        "(`dialogs/router.py`).\n\n| step | text | photo or document |\n|---|---|---|\n"
        f"{routes}\n\nButtons of a prompt (`<nonce>.<action>`): `r.<reason>` → choose_reason, {buttons}.\n"
    )
    return _page(
        "The refund conversation", "the state table in `dialogs/conversation.py` (with "
        "`dialogs/case_actions.py`'s rows)",
        "A label reads `trigger [conditions]` (`!` for unless); rows of one trigger are tried in the "
        "table's order and the first whose conditions hold wins. `any state` stands for every step.",
        diagram, tail,
    )


def _route(step: Step, message: str) -> str:
    route = MESSAGE_ROUTES.get((step, message))
    if route is None:
        return "hint"
    return f"{route.trigger} (an order number only)" if route.opens_request else route.trigger


def lifecycle_page() -> str:
    diagram = mermaid("Case lifecycle", [s.value for s in CaseStatus], CASE_TRANSITIONS, CaseStatus.SUBMITTED.value)
    return _page(
        "The case lifecycle", "`CASE_TRANSITIONS` in `dialogs/lifecycle.py`",
        "Who may fire a trigger (the customer, an agent, the system) is the caller's business; a move "
        "the table does not allow raises and changes nothing.",
        diagram,
    )


def documents() -> dict[str, str]:
    """Each page's file name under docs/ and its text."""
    return {"conversation.md": conversation_page(), "lifecycle.md": lifecycle_page()}


def main(argv: Sequence[str] = ()) -> int:
    docs = Path(argv[0]) if argv else DOCS
    docs.mkdir(parents=True, exist_ok=True)
    for name, text in documents().items():
        path = docs / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
