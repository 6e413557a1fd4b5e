"""What every part of the desk shares: the update being answered (`Turn`), the answers it gives, the
outbox rows it queues, its record of who did what, and the lock order of its writes.

What reaches Telegram leaves through the outbox (dialogs.outbox kinds, rendered and sent by the relay);
only answers where no topic is involved (General, a private chat, a button's toast) are direct replies.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dialogs.cases import CaseWorkflow
from dialogs.desk.auth import Refusal
from dialogs.desk.cards import person_label
from dialogs.domain import DeskItem, OutboxMessage
from dialogs.io import Event, EventKind, Reply
from dialogs.outbox import CUSTOMER_TEXT, DESK_CARD, DESK_TEXT
from dialogs.ports import UnitOfWork
from dialogs.roster import current_desk
from dialogs.settings import CoreSettings, DeskSettings
from dialogs.texts import Texts

TOAST_MAX = 190
# The desk settings with the staff as the unit of work read them (dialogs.roster), for the update being
# handled: a context variable, so updates handled concurrently each see their own.
_STAFFED: ContextVar[DeskSettings | None] = ContextVar("desk_staffed", default=None)


@dataclass
class Turn:
    """One desk update: the answer to give (a reply or toast) and where."""

    event: Event
    now: datetime
    t: Texts
    topic_item: DeskItem | None = None  # the item whose topic the event happened in
    replies: list[Reply] = field(default_factory=list)
    toast: str | None = None
    answers: int = 0


class DeskBase:
    """The state and helpers the desk's parts (takeover, decisions, queue, idle) build on."""

    def __init__(self, settings: CoreSettings, workflow: CaseWorkflow) -> None:
        self.settings = settings
        self.workflow = workflow
        self.t = Texts(settings.i18n.default_locale)

    @property
    def desk(self) -> DeskSettings:
        """The desk settings; inside `staffed`, with the staff (agents, supervisors, aliases) from the database."""
        return _STAFFED.get() or self.settings.desk

    @asynccontextmanager
    async def staffed(self, uow: UnitOfWork, now: datetime) -> AsyncIterator[DeskSettings]:
        """Within the block, `self.desk` names the staff as `uow` has them (nested blocks reuse it)."""
        outer = _STAFFED.get()
        token = _STAFFED.set(outer or await current_desk(uow, self.settings.desk, now))
        try:
            yield self.desk
        finally:
            _STAFFED.reset(token)

    # -- answers --------------------------------------------------------------------------------
    async def _answer(self, uow: UnitOfWork, turn: Turn, text_key: str, params: dict[str, str] | None = None,
                      *, dedupe: str | None = None) -> None:
        """A short answer to the agent: a toast for a button, a direct reply in a private chat or in
        General, a message in the topic (through the outbox) otherwise."""
        params = params or {}
        ev = turn.event
        if ev.kind is EventKind.BUTTON:
            turn.toast = self.t(text_key, **params)[:TOAST_MAX]
        elif ev.private or turn.topic_item is None:
            turn.replies.append(Reply(self.t(text_key, **params)))
        else:
            turn.answers += 1
            await self._desk_text(uow, turn.topic_item.key, text_key, params, turn.now,
                                  dedupe or f"desk:answer:u{ev.update_id}:{turn.answers}")

    @staticmethod
    def _said_in_topic_of(turn: Turn, item: DeskItem) -> bool:
        """A command typed in the item's own topic, where the desk's message about it says enough."""
        ev = turn.event
        return (ev.kind is EventKind.COMMAND and not ev.private and turn.topic_item is not None
                and turn.topic_item.key == item.key)

    async def _refuse(self, uow: UnitOfWork, turn: Turn, action: str, key: str | None, why: Refusal) -> None:
        ev = turn.event
        if why.permission:
            await uow.desk.audit(actor_id=ev.user_id, key=key, action=action, allowed=False, at=turn.now,
                                 detail=f"{why.text_key} {ev.kind.value}:{ev.text} {ev.args}".strip())
        # In a topic, a refusal is a group message: one per person and topic per 10 minutes is enough
        # (someone pressing away must not spend the group's 20 messages a minute).
        bucket = int(turn.now.timestamp() // 600)
        await self._answer(uow, turn, why.text_key, why.params,
                           dedupe=f"desk:refused:{ev.user_id}:{key}:{why.text_key}:{bucket}")

    # -- outbox ---------------------------------------------------------------------------------
    async def _queue(self, uow: UnitOfWork, kind: str, chat_id: int, dedupe: str, payload: dict[str, Any],
                     now: datetime) -> None:
        await uow.outbox.add(OutboxMessage(kind=kind, chat_id=chat_id, dedupe_key=dedupe, payload=payload,
                                           created_at=now))

    async def _card(self, uow: UnitOfWork, key: str, now: datetime, why: str) -> None:
        await self._queue(uow, DESK_CARD, self.desk.chat_id, f"desk:card:{key}:{why}", {"key": key}, now)

    async def _desk_text(self, uow: UnitOfWork, key: str, text_key: str, params: dict[str, str], now: datetime,
                         dedupe: str) -> None:
        await self._queue(uow, DESK_TEXT, self.desk.chat_id, dedupe,
                          {"key": key, "text_key": text_key, "params": params}, now)

    async def _customer_text(self, uow: UnitOfWork, item: DeskItem, text_key: str, params: dict[str, str],
                             locale: str, now: datetime, dedupe: str) -> None:
        await self._queue(uow, CUSTOMER_TEXT, item.chat_id, dedupe,
                          {"text_key": text_key, "params": params, "locale": locale}, now)

    def label(self, agent_id: int, name: str = "") -> str:
        """How agents see one of themselves in the topic: the alias, and their Telegram name when it differs."""
        return person_label(self.desk.alias(agent_id, self.t.locale), name)

    @staticmethod
    async def _record(uow: UnitOfWork, actor_id: int, item: DeskItem, action: str, at: datetime,
                      detail: str = "") -> None:
        """An agent's action that moves no case: the desk's audit row and, for a case, an event in its
        history (who, when, what). Decisions are case events through the workflow already."""
        await uow.desk.audit(actor_id=actor_id, key=item.key, action=action, allowed=True, at=at, detail=detail)
        if item.case_no is not None:
            await uow.cases.log(item.case_no, actor=f"agent:{actor_id}", at=at,
                                note=f"{action}: {detail}" if detail else action)

    @staticmethod
    async def _lock(uow: UnitOfWork, item: DeskItem) -> None:
        """Lock what an action may change in the order every writer takes it: the customer's
        conversation (the customer's own updates start there), then the case, then the item. Two
        writers never wait for each other crosswise (no deadlock on PostgreSQL)."""
        await uow.conversations.load(item.chat_id)
        if item.case_no is not None:
            await uow.cases.get(item.case_no, for_update=True)

    def actor(self, event: Event) -> str:
        return f"agent:{event.user_id}"
