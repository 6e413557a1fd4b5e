"""Who may act on the desk: only configured agents (supervisors are agents too). Anyone else's desk
button or command changes nothing, gets a short answer and is recorded (`uow.desk.audit(allowed=False)`).
An item another agent owns can be released or decided only by that agent or a supervisor. An approval
above `desk.confirm_above` waits until a supervisor other than the agent who approved confirms it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from dialogs.domain import DeskItem
from dialogs.settings import DeskSettings

# Actions that act on someone else's takeover: only the owner or a supervisor.
OWNER_ACTIONS = frozenset({"release", "approve", "reject", "ask", "close"})


@dataclass(frozen=True, slots=True)
class Refusal:
    text_key: str
    params: dict[str, str] = field(default_factory=dict)
    permission: bool = True  # a rule said no (recorded as a refused attempt), not just "nothing to do"


def refusal(settings: DeskSettings, actor_id: int, action: str, item: DeskItem | None,
            pending: tuple[Decimal, int] | None = None) -> Refusal | None:
    """Whether `actor_id` may do `action` on `item` (None: yes). The rules, in order:
    only agents act; only supervisors confirm, and never their own approval; an item someone else
    has taken over is released or decided only by its owner or a supervisor."""
    if not settings.is_agent(actor_id):
        return Refusal("desk.refused")
    if action == "confirm":
        if not settings.is_supervisor(actor_id):
            return Refusal("desk.refused_not_supervisor")
        if pending is not None and pending[1] == actor_id:
            return Refusal("desk.refused_same_person")
        return None
    kind = "reject" if action.startswith("rj.") else action
    if (item is not None and kind in OWNER_ACTIONS and item.owner_id is not None and item.owner_id != actor_id
            and not settings.is_supervisor(actor_id)):
        return Refusal("desk.refused_owned", {"case": item.key})
    return None
