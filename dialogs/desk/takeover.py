"""Takeover: the agent who takes an item owns it. The customer is told a person joined (by alias); from
then on everything the customer sends is copied into the topic (`desk_copy` to_desk) and the bot
answers only /status and /cancel — /cancel ends the takeover (the item stays in the queue, unowned).
What the owner writes in the topic (text, photos, documents, anything but commands) is copied to the
customer (`desk_copy` to_customer); other agents' messages there stay among agents. /release, a
decision, /ask (the bot's needs_info flow collects the material) and the idle sweeper end it.
The customer's conversation carries the owned item's key (`TAKEOVER`), so an ordinary update costs no
desk query; the flag is checked against the item when set, and dropped when stale.

Also here: the item's other plain actions (close, a private note) and /agent, which puts a customer
on the desk.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dialogs.desk.base import TOAST_MAX, DeskBase, Turn
from dialogs.desk.commands import request_key
from dialogs.domain import OPEN_STATUSES, Case, CaseStatus, Conversation, DeskItem, MessageLink
from dialogs.io import Event, EventKind, Outcome, Reply
from dialogs.outbox import DESK_COPY, DESK_EDIT, TO_CUSTOMER, TO_DESK
from dialogs.ports import UnitOfWork
from dialogs.texts import Texts

C = CaseStatus

# Conversation.data key: the desk item that owns this customer chat (set at take, dropped at release).
TAKEOVER = "desk_item"


class Takeover(DeskBase):
    """Owning an item, the customer's chat meanwhile, and the messages copied both ways."""

    # -- the customer's conversation flag -------------------------------------------------------
    async def _flag(self, uow: UnitOfWork, item: DeskItem, key: str | None) -> str:
        """Set (key) or drop (None) the takeover flag on the customer's conversation; returns the
        customer's locale."""
        conv = await uow.conversations.load(item.chat_id)
        if conv is None:
            if key is None:
                return self.settings.i18n.default_locale
            conv = Conversation(chat_id=item.chat_id, user_id=item.user_id, locale=self.settings.i18n.default_locale)
        if key is not None:
            conv.data[TAKEOVER] = key
        elif conv.data.get(TAKEOVER) is not None:
            conv.data.pop(TAKEOVER)
        else:
            return conv.locale
        await uow.conversations.save(conv)
        return conv.locale

    # -- the item: take, release, close, note ---------------------------------------------------
    async def _take(self, uow: UnitOfWork, turn: Turn, item: DeskItem) -> None:
        ev, now = turn.event, turn.now
        if item.owner_id == ev.user_id:
            await self._answer(uow, turn, "desk.already_yours", {"case": item.key})
            return
        owner = await uow.desk.take(item.key, ev.user_id, at=now)
        if owner != ev.user_id:
            await uow.desk.audit(actor_id=ev.user_id, key=item.key, action="take_lost", allowed=True, at=now,
                                 detail=f"owned by {owner}")
            await self._answer(uow, turn, "desk.taken_by", {"case": item.key,
                                                            "owner": self.label(owner) if owner else "?"})
            return
        await self._record(uow, ev.user_id, item, "take", now)
        if item.case_no is not None:
            case = await uow.cases.get(item.case_no)
            if case is not None and case.status is C.SUBMITTED:
                await self.workflow.move(uow, case.case_no, "start_review", actor=self.actor(ev), at=now)
        locale = await self._flag(uow, item, item.key)
        stamp = f"u{ev.update_id}"
        await self._customer_text(uow, item, "desk.customer_joined", {"alias": self.desk.alias(ev.user_id, locale)},
                                  locale, now, f"desk:{item.key}:joined:{stamp}")
        await self._desk_text(uow, item.key, "desk.took", {"agent": self.label(ev.user_id, ev.user_name)}, now,
                              f"desk:{item.key}:took:{stamp}")
        await self._card(uow, item.key, now, stamp)
        if not self._said_in_topic_of(turn, item):  # there "X took over" says it already
            await self._answer(uow, turn, "desk.you_took", {"case": item.key})

    async def _end_takeover(self, uow: UnitOfWork, item: DeskItem, now: datetime, text_key: str | None,
                            stamp: str) -> None:
        """The owner leaves: the item is unowned, the customer's chat is the bot's again (and the
        customer told, with `text_key`)."""
        if item.owner_id is None:
            return
        await uow.desk.release(item.key, at=now)
        locale = await self._flag(uow, item, None)
        if text_key is not None:
            await self._customer_text(uow, item, text_key, {"alias": self.desk.alias(item.owner_id, locale)},
                                      locale, now, f"desk:{item.key}:left:{stamp}")

    async def _release(self, uow: UnitOfWork, turn: Turn, item: DeskItem) -> None:
        ev, now, stamp = turn.event, turn.now, f"u{turn.event.update_id}"
        if item.owner_id is None:
            await self._answer(uow, turn, "desk.not_taken", {"case": item.key})
            return
        await self._end_takeover(uow, item, now, "desk.customer_released", stamp)
        await self._record(uow, ev.user_id, item, "release", now, f"owner was {item.owner_id}")
        await self._desk_text(uow, item.key, "desk.released",
                              {"agent": self.label(ev.user_id, ev.user_name), "case": item.key}, now,
                              f"desk:{item.key}:released:{stamp}")
        await self._card(uow, item.key, now, stamp)
        if not self._said_in_topic_of(turn, item):
            await self._answer(uow, turn, "desk.you_released", {"case": item.key})

    async def _close(self, uow: UnitOfWork, turn: Turn, item: DeskItem) -> None:
        ev, now, stamp = turn.event, turn.now, f"u{turn.event.update_id}"
        await self._end_takeover(uow, item, now, "desk.customer_closed", stamp)
        await uow.desk.close(item.key, at=now)
        await self._record(uow, ev.user_id, item, "close", now)
        await self._desk_text(uow, item.key, "desk.closed", {"agent": self.label(ev.user_id, ev.user_name),
                                                              "case": item.key}, now, f"desk:{item.key}:closed:{stamp}")
        await self._card(uow, item.key, now, stamp)
        if not self._said_in_topic_of(turn, item):
            await self._answer(uow, turn, "desk.closed_answer", {"case": item.key})

    async def _note(self, uow: UnitOfWork, turn: Turn, item: DeskItem, text: str) -> None:
        ev, now = turn.event, turn.now
        if not text:
            await self._answer(uow, turn, "desk.note_how")
            return
        # Private: in the audit log and the case's history (agents and auditors), never sent to the customer.
        await self._record(uow, ev.user_id, item, "note", now, text)
        await self._card(uow, item.key, now, f"u{ev.update_id}")
        if ev.private or turn.topic_item is None or turn.topic_item.key != item.key:
            await self._answer(uow, turn, "desk.noted", {"case": item.key})

    # -- messages in the topics -----------------------------------------------------------------
    async def _agent_message(self, uow: UnitOfWork, turn: Turn) -> None:
        """The owner's message in the item's topic goes to the customer; anyone else's stays here."""
        ev, item = turn.event, turn.topic_item
        if (item is None or item.owner_id != ev.user_id or item.closed_at is not None or ev.message_id is None
                or ev.private):
            return
        await uow.desk.touch(item.key, at=turn.now)
        await self._copy(uow, item, TO_CUSTOMER, ev, item.chat_id, turn.now)

    async def _copy(self, uow: UnitOfWork, item: DeskItem, direction: str, event: Event, to_chat: int,
                    now: datetime) -> None:
        assert event.message_id is not None
        source_chat, message_id = event.chat_id, event.message_id
        if not await uow.desk.add_link(MessageLink(item.key, direction, source_chat, message_id, to_chat)):
            return  # copied before (a repeated update)
        payload: dict[str, Any] = {"key": item.key, "direction": direction, "from_chat_id": source_chat,
                                   "message_id": message_id}
        if event.kind is EventKind.TEXT:  # plain text: the relay may quote a burst of them in one message
            payload["text"] = event.text
        await self._queue(uow, DESK_COPY, to_chat, f"desk:copy:{direction}:{source_chat}:{message_id}", payload, now)

    async def _agent_edit(self, uow: UnitOfWork, turn: Turn) -> None:
        ev = turn.event
        if ev.message_id is not None:
            await self._edit(uow, ev, TO_CUSTOMER, turn.now)

    async def _edit(self, uow: UnitOfWork, ev: Event, direction: str, now: datetime) -> bool:
        """An edited message whose copy exists: the copy is edited too."""
        assert ev.message_id is not None
        link = await uow.desk.find_link(ev.chat_id, ev.message_id, direction)
        if link is None:
            return False
        await self._queue(uow, DESK_EDIT, link.copy_chat_id, f"desk:edit:{direction}:{ev.chat_id}:{ev.message_id}:"
                          f"u{ev.update_id}", {"key": link.key, "direction": direction, "from_chat_id": ev.chat_id,
                                               "message_id": ev.message_id, "text": ev.text}, now)
        return True

    # -- the customer's side --------------------------------------------------------------------
    async def customer_edit(self, uow: UnitOfWork, event: Event, now: datetime) -> None:
        """A customer edited a message: if it was copied to a topic, the copy follows."""
        if self.desk.chat_id and event.message_id is not None:
            await self._edit(uow, event, TO_DESK, now)

    async def customer_message(self, uow: UnitOfWork, conv: Conversation, event: Event,
                               now: datetime) -> Outcome | None:
        """A customer's update while their conversation carries the takeover flag: copied into the
        topic (None: the dialog handles it — /status, or a stale flag, which is dropped)."""
        key = conv.data.get(TAKEOVER)
        item = await uow.desk.get(str(key)) if key else None
        if (item is None or item.owner_id is None or item.closed_at is not None or item.chat_id != event.chat_id
                or not self.desk.chat_id):
            conv.data.pop(TAKEOVER, None)
            return None
        t = Texts(conv.locale)
        async with self.staffed(uow, now) as desk:
            alias = desk.alias(item.owner_id, conv.locale)
        if event.kind is EventKind.COMMAND and event.text.lower() == "status":
            return None
        if event.kind is EventKind.COMMAND and event.text.lower() == "cancel":
            # The customer ends the conversation with the agent; their case stays in the queue.
            stamp = f"u{event.update_id}"
            await uow.desk.release(item.key, at=now)
            conv.data.pop(TAKEOVER, None)
            await uow.desk.audit(actor_id=event.user_id, key=item.key, action="customer_cancel", allowed=True,
                                 at=now, detail=f"owner was {item.owner_id}")
            await self._desk_text(uow, item.key, "desk.customer_ended", {"case": item.key}, now,
                                  f"desk:{item.key}:customer-ended:{stamp}")
            await self._card(uow, item.key, now, stamp)
            return Outcome(replies=(Reply(t("desk.customer_back", alias=alias)),), locale=conv.locale)
        if event.kind is EventKind.BUTTON:
            return Outcome(toast=t("desk.customer_with_agent", alias=alias)[:TOAST_MAX], locale=conv.locale)
        if event.kind is not EventKind.SERVICE and event.message_id is not None:
            await self._copy(uow, item, TO_DESK, event, self.desk.chat_id, now)
        return Outcome(locale=conv.locale)

    async def agent_requested(self, uow: UnitOfWork, event: Event, now: datetime) -> str | None:
        """/agent: the customer's open case goes (back) on the desk, or a request item without one;
        returns the item's key (None without a desk)."""
        if not self.desk.chat_id:
            return None
        cases = [c for c in await uow.cases.list_for_user(event.user_id) if c.status in OPEN_STATUSES
                 and c.chat_id == event.chat_id]
        case: Case | None = None
        for candidate in cases:  # one already on the desk first, else the newest
            found = await uow.desk.get(candidate.case_no)
            if found is not None and found.closed_at is None:
                case = candidate
                break
        if case is None and cases:
            case = cases[0]
        key = case.case_no if case is not None else request_key(event.chat_id)
        await uow.desk.open(DeskItem(key=key, chat_id=event.chat_id, user_id=event.user_id, opened_at=now,
                                     case_no=case.case_no if case is not None else None))
        hour = now.strftime("%Y%m%d%H")
        await self._card(uow, key, now, f"agent:{hour}")
        await self._desk_text(uow, key, "desk.agent_requested", {}, now, f"desk:{key}:agent:{hour}")
        return key
