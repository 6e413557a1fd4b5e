"""What every part of the conversation's Dialog may rely on: the turn's fields and the few helpers
`dialogs.conversation.Dialog` provides. The parts (claims, evidence, case_actions) are mixed into
Dialog; declaring the shared surface once keeps each part's own declarations to what is its own."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from dialogs.domain import Conversation, OutboxMessage
from dialogs.io import Button, Event, Reply
from dialogs.ports import UnitOfWork
from dialogs.settings import CoreSettings
from dialogs.texts import Texts


class DialogPart:
    conv: Conversation
    event: Event
    uow: UnitOfWork
    settings: CoreSettings
    t: Texts
    now: datetime
    replies: list[Reply]
    outbox: list[OutboxMessage]
    evidence_count: int
    _evidence_problem: str | None

    if TYPE_CHECKING:  # provided by Dialog
        @property
        def data(self) -> dict[str, Any]: ...
        def say(self, key: str, buttons: tuple[tuple[Button, ...], ...] = (), **kw: Any) -> None: ...
        def new_nonce(self) -> str: ...
        def button(self, key: str, action: str, **kw: Any) -> Button: ...
        def clear_draft(self) -> None: ...
        def start_draft(self) -> None: ...
        def add_off_hours_notice(self) -> None: ...
