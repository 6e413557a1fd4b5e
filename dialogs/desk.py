"""The agents' desk, the action side: what agents do in their forum supergroup (and, for /queue and
/take, in a private chat with the bot) and what a taken-over customer chat does meanwhile.

Who may act: only configured agents (supervisors are agents too). Anyone else's desk button or
command changes nothing, gets a short answer and is recorded (`uow.desk.audit(allowed=False)`).
An item another agent owns can be released or decided only by that agent or a supervisor. An approval
above `desk.confirm_above` waits until a supervisor other than the agent who approved confirms it.

Commands (in an item's topic they act on that item; elsewhere name it: `/take R20261124-0001`):
/queue, /take, /release, /approve [amount], /reject reason, /ask what, /note text, /confirm, /close,
/help. Card buttons carry `dk.<key>.<action>` (see `desk_token`): take, release, approve, reject, ask,
note, confirm, close and `rj.<canned key>` (reject with a canned reason).

Takeover: the agent who takes an item owns it. The customer is told a person joined (by alias); from
then on everything the customer sends is copied into the topic (`desk_copy` to_desk) and the bot
answers only /status and /cancel — /cancel ends the takeover (the item stays in the queue, unowned).
What the owner writes in the topic (text, photos, documents, anything but commands) is copied to the
customer (`desk_copy` to_customer); other agents' messages there stay among agents. /release, a
decision, /ask (the bot's needs_info flow collects the material) and the idle sweeper end it.
The customer's conversation carries the owned item's key (`TAKEOVER`), so an ordinary update costs no
desk query; the flag is checked against the item when set, and dropped when stale.

What reaches Telegram leaves through the outbox (kinds below, rendered and sent by the relay); only
answers where no topic is involved (General, a private chat, a button's toast) are direct replies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from dialogs import ledger
from dialogs.cases import CaseWorkflow
from dialogs.domain import (
    OPEN_STATUSES,
    Case,
    CaseStatus,
    Conversation,
    DeskItem,
    MessageLink,
    OutboxMessage,
)
from dialogs.io import Button, Event, EventKind, Outcome, Reply
from dialogs.ledger import AttemptInFlight, NothingToRefund
from dialogs.ports import UnitOfWork
from dialogs.settings import CoreSettings, DeskSettings
from dialogs.texts import Texts, money

C = CaseStatus

# Outbox kinds this module queues (the delivery side renders and sends them).
DESK_CARD = "desk_card"  # payload {"key"}: (re)render the item's card in its topic
DESK_COPY = "desk_copy"  # payload {"key", "direction", "from_chat_id", "message_id", "text" (plain text)}
DESK_EDIT = "desk_edit"  # payload {"key", "direction", "from_chat_id", "message_id", "text"}
DESK_TEXT = "desk_text"  # payload {"key", "text_key", "params", "buttons"?}: a bot message in the item's topic
CUSTOMER_TEXT = "customer_text"  # payload {"text_key", "params", "locale"}: a bot message to the customer
TO_DESK, TO_CUSTOMER = "to_desk", "to_customer"

# Conversation.data key: the desk item that owns this customer chat (set at take, dropped at release).
TAKEOVER = "desk_item"

TOKEN_PREFIX = "dk."
# Button actions and the command each one is.
ACTIONS = ("take", "release", "approve", "reject", "ask", "note", "confirm", "close")
COMMANDS = frozenset({"queue", "help", *ACTIONS})
# Desk commands an agent may also send in a private chat with the bot (their answers come there).
PRIVATE_COMMANDS = frozenset({"queue", "take", "release", "approve", "reject", "ask", "note", "confirm", "close"})
# Actions that act on someone else's takeover: only the owner or a supervisor.
OWNER_ACTIONS = frozenset({"release", "approve", "reject", "ask", "close"})
DECIDABLE = frozenset({C.SUBMITTED, C.IN_REVIEW, C.APPEALED})
_KEY = re.compile(r"^(R\d{8}-\d{4,}|chat:-?\d+)$", re.IGNORECASE)
_QUEUE_SHOWN = 30
_QUEUE_BUTTONS = 8
_TOAST_MAX = 190
_LABEL_MAX = 40  # characters of a canned reason on its button


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def desk_token(key: str, action: str) -> str:
    """Callback data of a desk button: `dk.<key>.<action>` (keys hold no dot; <= 64 bytes)."""
    return f"{TOKEN_PREFIX}{key}.{action}"


def parse_token(token: str) -> tuple[str, str] | None:
    """(key, action) of a desk button, or None when the token is not one of ours."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    key, _, action = token[len(TOKEN_PREFIX):].partition(".")
    if not key or not (action in ACTIONS or (action.startswith("rj.") and len(action) > 3)):
        return None
    return key, action


def request_key(chat_id: int) -> str:
    """The item of an /agent request without an open case."""
    return f"chat:{chat_id}"


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


def parse_amount(text: str) -> Decimal | None:
    """A positive amount with at most 2 decimals ("30", "30.5", "¥30.00"); None otherwise."""
    cleaned = text.strip().lstrip("¥￥").replace(",", "")
    if not re.fullmatch(r"\d+(\.\d{1,2})?", cleaned):
        return None
    try:
        return Decimal(cleaned)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        return None


@dataclass
class _Turn:
    """One desk update: the answer to give (a reply or toast) and where."""

    event: Event
    now: datetime
    t: Texts
    topic_item: DeskItem | None = None  # the item whose topic the event happened in
    replies: list[Reply] = field(default_factory=list)
    toast: str | None = None
    answers: int = 0


class DeskService:
    def __init__(self, settings: CoreSettings, workflow: CaseWorkflow) -> None:
        self.settings = settings
        self.desk = settings.desk
        self.workflow = workflow
        self.t = Texts(settings.i18n.default_locale)

    # -- routing --------------------------------------------------------------------------------
    def wants(self, event: Event) -> bool:
        """Whether the desk handles this event rather than the customer dialog: everything in the
        desk chat, desk buttons anywhere, and an agent's desk commands in a private chat."""
        if not self.desk.chat_id:
            return False
        if event.chat_id == self.desk.chat_id:
            return True
        if event.kind is EventKind.BUTTON:
            return event.text.startswith(TOKEN_PREFIX)
        return (event.private and event.kind is EventKind.COMMAND and event.text.lower() in PRIVATE_COMMANDS
                and self.desk.is_agent(event.user_id))

    async def handle(self, uow: UnitOfWork, event: Event, now: datetime) -> Outcome:
        """An event `wants` accepted, in the caller's unit of work (the update is claimed)."""
        turn = _Turn(event, now, self.t)
        if event.thread_id is not None and event.chat_id == self.desk.chat_id:
            turn.topic_item = await uow.desk.by_thread(event.thread_id)
        if event.kind is EventKind.SERVICE:
            pass
        elif event.edited:
            await self._agent_edit(uow, turn)
        elif event.kind is EventKind.BUTTON:
            parsed = parse_token(event.text)
            if parsed is None:
                turn.toast = self.t("desk.stale")
            else:
                await self._act(uow, turn, *parsed, args="")
        elif event.kind is EventKind.COMMAND and event.text.lower() in COMMANDS:
            await self._command(uow, turn, event.text.lower(), event.args.strip())
        elif event.kind is not EventKind.COMMAND and self.desk.is_agent(event.user_id):
            await self._agent_message(uow, turn)
        return Outcome(replies=tuple(turn.replies), toast=turn.toast, locale=self.t.locale)

    # -- answers --------------------------------------------------------------------------------
    async def _answer(self, uow: UnitOfWork, turn: _Turn, text_key: str, params: dict[str, str] | None = None,
                      *, dedupe: str | None = None) -> None:
        """A short answer to the agent: a toast for a button, a direct reply in a private chat or in
        General, a message in the topic (through the outbox) otherwise."""
        params = params or {}
        ev = turn.event
        if ev.kind is EventKind.BUTTON:
            turn.toast = self.t(text_key, **params)[:_TOAST_MAX]
        elif ev.private or turn.topic_item is None:
            turn.replies.append(Reply(self.t(text_key, **params)))
        else:
            turn.answers += 1
            await self._desk_text(uow, turn.topic_item.key, text_key, params, turn.now,
                                  dedupe or f"desk:answer:u{ev.update_id}:{turn.answers}")

    @staticmethod
    def _said_in_topic_of(turn: _Turn, item: DeskItem) -> bool:
        """A command typed in the item's own topic, where the desk's message about it says enough."""
        ev = turn.event
        return (ev.kind is EventKind.COMMAND and not ev.private and turn.topic_item is not None
                and turn.topic_item.key == item.key)

    async def _refuse(self, uow: UnitOfWork, turn: _Turn, action: str, key: str | None, why: Refusal) -> None:
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
        """How agents see one of themselves in the topic: the alias, and the name when known."""
        alias = self.desk.alias(agent_id, self.t.locale)
        return f"{alias} ({name})" if name else alias

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

    @staticmethod
    async def _record(uow: UnitOfWork, actor_id: int, item: DeskItem, action: str, at: datetime,
                      detail: str = "") -> None:
        """An agent's action that moves no case: the desk's audit row and, for a case, an event in its
        history (who, when, what). Decisions are case events through the workflow already."""
        await uow.desk.audit(actor_id=actor_id, key=item.key, action=action, allowed=True, at=at, detail=detail)
        if item.case_no is not None:
            await uow.cases.log(item.case_no, actor=f"agent:{actor_id}", at=at,
                                note=f"{action}: {detail}" if detail else action)

    # -- commands -------------------------------------------------------------------------------
    async def _command(self, uow: UnitOfWork, turn: _Turn, name: str, args: str) -> None:
        ev = turn.event
        if not self.desk.is_agent(ev.user_id):
            key = turn.topic_item.key if turn.topic_item else None
            await self._refuse(uow, turn, name, key, Refusal("desk.refused"))
            return
        if name == "queue":
            await self._show_queue(uow, turn)
            return
        if name == "help":
            await self._answer(uow, turn, "desk.help")
            return
        head, _, rest = args.partition(" ")
        if head and _KEY.match(head):
            key = head.upper() if head[0] in "rR" else head.lower()
            args = rest.strip()
        elif turn.topic_item is not None and not ev.private:
            key = turn.topic_item.key
        else:
            await self._answer(uow, turn, "desk.need_item", {"command": name})
            return
        await self._act(uow, turn, key, name, args)

    async def _show_queue(self, uow: UnitOfWork, turn: _Turn) -> None:
        t = self.t
        rows = await uow.desk.queue(limit=_QUEUE_SHOWN + 1)
        if not rows:
            await self._answer(uow, turn, "desk.queue_empty")
            return
        lines = [t("desk.queue_header", count=str(min(len(rows), _QUEUE_SHOWN)))]
        buttons: list[tuple[Button, ...]] = []
        for item, case in rows[:_QUEUE_SHOWN]:
            lines.append(t(
                "desk.queue_line", case=item.key,
                status=t(f"status.{case.status.value}") if case else t("desk.request"),
                due=case.review_due.isoformat() if case else t("desk.no_due"),
                age=self._age(turn.now - item.opened_at),
                owner=self.label(item.owner_id) if item.owner_id is not None else t("desk.unowned")))
            if item.owner_id is None and len(buttons) < _QUEUE_BUTTONS:
                buttons.append((Button(t("desk.queue_take", case=item.key), desk_token(item.key, "take")),))
        if len(rows) > _QUEUE_SHOWN:
            lines.append(t("desk.queue_more"))
        # A direct reply: in a private chat, or in General (asked in a topic, it goes to General too).
        turn.replies.append(Reply("\n".join(lines), tuple(buttons)))

    def _age(self, age: timedelta) -> str:
        minutes = max(0, int(age.total_seconds() // 60))
        if minutes < 60:
            return self.t("desk.age_minutes", n=str(minutes))
        if minutes < 48 * 60:
            return self.t("desk.age_hours", n=str(minutes // 60))
        return self.t("desk.age_days", n=str(minutes // (24 * 60)))

    # -- actions --------------------------------------------------------------------------------
    async def _act(self, uow: UnitOfWork, turn: _Turn, key: str, action: str, args: str) -> None:
        ev = turn.event
        if not self.desk.is_agent(ev.user_id):  # before anything is looked up: nothing leaks
            await self._refuse(uow, turn, action, key, Refusal("desk.refused"))
            return
        item = await uow.desk.get(key)
        if item is None:
            await self._answer(uow, turn, "desk.unknown_item", {"case": key})
            return
        if action != "note":
            # The owner and two-person rules are checked on the item as it is under the case's lock:
            # an agent taking the case at this moment is either seen here or waits for this action.
            await self._lock(uow, item)
            item = await uow.desk.get(key) or item
        pending = await uow.desk.pending_approval(item.case_no) if action == "confirm" and item.case_no else None
        why = refusal(self.desk, ev.user_id, action, item, pending)
        if why is not None:
            if why.text_key == "desk.refused_owned" and item.owner_id is not None:
                why = Refusal(why.text_key, {"case": key, "owner": self.label(item.owner_id)})
            await self._refuse(uow, turn, action, key, why)
            return
        if item.closed_at is not None and action != "note":
            await self._answer(uow, turn, "desk.item_closed", {"case": key})
            return
        if item.owner_id == ev.user_id:
            await uow.desk.touch(key, at=turn.now)
        if action == "take":
            await self._take(uow, turn, item)
        elif action == "release":
            await self._release(uow, turn, item)
        elif action == "close":
            await self._close(uow, turn, item)
        elif action == "note":
            await self._note(uow, turn, item, args)
        elif item.case_no is None:
            await self._answer(uow, turn, "desk.no_case", {"case": key})
        elif action == "approve":
            await self._approve_command(uow, turn, item, args)
        elif action == "confirm":
            await self._confirm(uow, turn, item, pending)
        elif action == "reject" and not args:
            await self._reason_picker(uow, turn, item)
        elif action == "reject" or action.startswith("rj."):
            await self._reject(uow, turn, item, action, args)
        elif action == "ask":
            await self._ask(uow, turn, item, args)

    @staticmethod
    async def _lock(uow: UnitOfWork, item: DeskItem) -> None:
        """Lock what an action may change in the order every writer takes it: the customer's
        conversation (the customer's own updates start there), then the case, then the item. Two
        writers never wait for each other crosswise (no deadlock on PostgreSQL)."""
        await uow.conversations.load(item.chat_id)
        if item.case_no is not None:
            await uow.cases.get(item.case_no, for_update=True)

    async def _take(self, uow: UnitOfWork, turn: _Turn, item: DeskItem) -> None:
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

    async def _release(self, uow: UnitOfWork, turn: _Turn, item: DeskItem) -> None:
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

    async def _close(self, uow: UnitOfWork, turn: _Turn, item: DeskItem) -> None:
        ev, now, stamp = turn.event, turn.now, f"u{turn.event.update_id}"
        await self._end_takeover(uow, item, now, "desk.customer_closed", stamp)
        await uow.desk.close(item.key, at=now)
        await self._record(uow, ev.user_id, item, "close", now)
        await self._desk_text(uow, item.key, "desk.closed", {"agent": self.label(ev.user_id, ev.user_name),
                                                              "case": item.key}, now, f"desk:{item.key}:closed:{stamp}")
        await self._card(uow, item.key, now, stamp)
        if not self._said_in_topic_of(turn, item):
            await self._answer(uow, turn, "desk.closed_answer", {"case": item.key})

    async def _note(self, uow: UnitOfWork, turn: _Turn, item: DeskItem, text: str) -> None:
        ev, now = turn.event, turn.now
        if not text:
            await self._answer(uow, turn, "desk.note_how")
            return
        # Private: in the audit log and the case's history (agents and auditors), never sent to the customer.
        await self._record(uow, ev.user_id, item, "note", now, text)
        await self._card(uow, item.key, now, f"u{ev.update_id}")
        if ev.private or turn.topic_item is None or turn.topic_item.key != item.key:
            await self._answer(uow, turn, "desk.noted", {"case": item.key})

    # -- decisions ------------------------------------------------------------------------------
    def actor(self, event: Event) -> str:
        return f"agent:{event.user_id}"

    async def _case(self, uow: UnitOfWork, turn: _Turn, item: DeskItem) -> Case | None:
        assert item.case_no is not None
        case = await uow.cases.get(item.case_no)
        if case is None:
            await self._answer(uow, turn, "desk.unknown_item", {"case": item.key})
        return case

    async def _cannot(self, uow: UnitOfWork, turn: _Turn, case: Case, command: str) -> None:
        await self._answer(uow, turn, "desk.cannot", {"case": case.case_no, "command": command,
                                                       "status": self.t(f"status.{case.status.value}")})

    async def _max_refund(self, uow: UnitOfWork, case: Case) -> Decimal:
        """What the order's ledger leaves this case, under the order's lock (after the case's)."""
        return await ledger.refundable(uow, case, lock=True)

    async def _approve_command(self, uow: UnitOfWork, turn: _Turn, item: DeskItem, args: str) -> None:
        ev, now = turn.event, turn.now
        case = await self._case(uow, turn, item)
        if case is None:
            return
        if case.status not in DECIDABLE:
            await self._cannot(uow, turn, case, "/approve")
            return
        most = await self._max_refund(uow, case)
        amount = most
        if args:
            parsed = parse_amount(args.split()[0])
            if parsed is None:
                await self._answer(uow, turn, "desk.bad_amount", {"text": args[:40], "max": money(most)})
                return
            amount = parsed
        if amount <= 0 or amount > most:
            await self._answer(uow, turn, "desk.amount_over", {"max": money(most)})
            return
        if amount > self.desk.confirm_above:
            if case.status is C.SUBMITTED:  # someone is on it: the customer sees "in review"
                await self.workflow.move(uow, case.case_no, "start_review", actor=self.actor(ev), at=now)
            await uow.desk.request_approval(case.case_no, amount=amount, agent_id=ev.user_id, at=now)
            await self._record(uow, ev.user_id, item, "approve_request", now, str(amount))
            stamp = f"u{ev.update_id}"
            agent = self.label(ev.user_id, ev.user_name)
            await self._desk_text(uow, item.key, "desk.approval_requested",
                                  {"agent": agent, "amount": money(amount), "case": item.key,
                                   "threshold": money(self.desk.confirm_above)}, now,
                                  f"desk:{item.key}:approval:{stamp}")
            await self._card(uow, item.key, now, stamp)
            if not self._said_in_topic_of(turn, item):
                await self._answer(uow, turn, "desk.approval_waiting", {"amount": money(amount)})
            return
        await self._approve(uow, turn, item, case, amount, requester=None)

    async def _confirm(self, uow: UnitOfWork, turn: _Turn, item: DeskItem, pending: tuple[Decimal, int] | None) -> None:
        case = await self._case(uow, turn, item)
        if case is None:
            return
        if pending is None:
            await self._answer(uow, turn, "desk.nothing_to_confirm", {"case": item.key})
            return
        if case.status not in DECIDABLE:
            await uow.desk.clear_approval(case.case_no)
            await self._cannot(uow, turn, case, "/confirm")
            return
        await self._approve(uow, turn, item, case, pending[0], requester=pending[1])

    async def _approve(self, uow: UnitOfWork, turn: _Turn, item: DeskItem, case: Case, amount: Decimal,
                       requester: int | None) -> None:
        ev, now, stamp = turn.event, turn.now, f"u{turn.event.update_id}"
        # The case's history (on the desk card) in the desk's language.
        note = (self.t("desk.note_approved", amount=money(amount)) if requester is None else
                self.t("desk.note_confirmed", amount=money(amount), requester=self.label(requester)))
        try:
            if case.status is C.SUBMITTED:
                await self.workflow.move(uow, case.case_no, "start_review", actor=self.actor(ev), at=now)
            await self.workflow.approve(uow, case.case_no, actor=self.actor(ev), at=now, note=note, amount=amount)
        except (NothingToRefund, AttemptInFlight):
            await self._answer(uow, turn, "desk.nothing_to_refund", {"case": item.key})
            return
        except ledger.ExceedsRefundable as exc:
            await self._answer(uow, turn, "desk.amount_over", {"max": money(exc.available)})
            return
        await uow.desk.clear_approval(case.case_no)
        await self._decided(uow, turn, item, "approve", str(amount))
        agent = self.label(ev.user_id, ev.user_name)
        if requester is None:
            await self._desk_text(uow, item.key, "desk.approved", {"agent": agent, "amount": money(amount),
                                                                    "case": item.key}, now,
                                  f"desk:{item.key}:approved:{stamp}")
        else:
            await self._desk_text(uow, item.key, "desk.approved_confirmed",
                                  {"agent": agent, "amount": money(amount), "case": item.key,
                                   "requester": self.label(requester)}, now, f"desk:{item.key}:approved:{stamp}")
        if not self._said_in_topic_of(turn, item):
            await self._answer(uow, turn, "desk.done", {"case": item.key})

    async def _decided(self, uow: UnitOfWork, turn: _Turn, item: DeskItem, action: str, detail: str) -> None:
        """After a verdict: the item leaves the queue (the case's next step reopens it if it needs a
        person again) and a takeover ends."""
        ev, now, stamp = turn.event, turn.now, f"u{turn.event.update_id}"
        await self._end_takeover(uow, item, now, "desk.customer_closed", stamp)
        await uow.desk.close(item.key, at=now)
        await uow.desk.audit(actor_id=ev.user_id, key=item.key, action=action, allowed=True, at=now, detail=detail)
        await self._card(uow, item.key, now, stamp)

    async def _reason_picker(self, uow: UnitOfWork, turn: _Turn, item: DeskItem) -> None:
        """Reject without a reason: the canned reasons as buttons (in the topic, or right here in a
        private chat or General), or type one."""
        ev = turn.event
        case = await self._case(uow, turn, item)
        if case is None:
            return
        if case.status not in DECIDABLE:
            await self._cannot(uow, turn, case, "/reject")
            return
        reasons = [(_clip(c.en if self.t.locale == "en" else c.zh_CN, _LABEL_MAX), desk_token(item.key, f"rj.{c.key}"))
                   for c in self.desk.canned if len(desk_token(item.key, f"rj.{c.key}").encode()) <= 64]
        rows = [[[label, token]] for label, token in reasons]  # one reason a row
        params = {"case": item.key}
        if not ev.private and (ev.kind is EventKind.BUTTON or turn.topic_item is not None):
            bucket = int(turn.now.timestamp() // 600)  # one picker per item in 10 minutes is enough
            await self._queue(uow, DESK_TEXT, self.desk.chat_id, f"desk:{item.key}:reasons:{bucket}",
                              {"key": item.key, "text_key": "desk.pick_reason", "params": params, "buttons": rows},
                              turn.now)
            if ev.kind is EventKind.BUTTON:
                turn.toast = self.t("desk.reject_how")[:_TOAST_MAX]
            return
        turn.replies.append(Reply(self.t("desk.pick_reason", **params),
                                  tuple((Button(label, token),) for label, token in reasons)))

    async def _reject(self, uow: UnitOfWork, turn: _Turn, item: DeskItem, action: str, args: str) -> None:
        ev, now, stamp = turn.event, turn.now, f"u{turn.event.update_id}"
        case = await self._case(uow, turn, item)
        if case is None:
            return
        shown = args  # what the agents see in the topic
        if action.startswith("rj."):
            canned = next((c for c in self.desk.canned if c.key == action[3:]), None)
            if canned is None:
                await self._answer(uow, turn, "desk.stale")
                return
            reason = canned.en if case.locale == "en" else canned.zh_CN
            shown = canned.en if self.t.locale == "en" else canned.zh_CN
        else:
            reason = args
        if case.status not in DECIDABLE:
            await self._cannot(uow, turn, case, "/reject")
            return
        if case.status is C.SUBMITTED:
            case = await self.workflow.move(uow, case.case_no, "start_review", actor=self.actor(ev), at=now)
        trigger = "reject_final" if case.status is C.APPEALED else "reject"
        await self.workflow.move(uow, case.case_no, trigger, actor=self.actor(ev), at=now, note=reason)
        await uow.desk.clear_approval(case.case_no)
        await self._decided(uow, turn, item, "reject", reason)
        await self._desk_text(uow, item.key, "desk.rejected", {"agent": self.label(ev.user_id, ev.user_name),
                                                                "case": item.key, "reason": shown}, now,
                              f"desk:{item.key}:rejected:{stamp}")
        if not self._said_in_topic_of(turn, item):
            await self._answer(uow, turn, "desk.done", {"case": item.key})

    async def _ask(self, uow: UnitOfWork, turn: _Turn, item: DeskItem, text: str) -> None:
        ev, now, stamp = turn.event, turn.now, f"u{turn.event.update_id}"
        if not text:
            await self._answer(uow, turn, "desk.ask_how")
            return
        case = await self._case(uow, turn, item)
        if case is None:
            return
        if case.status not in (C.SUBMITTED, C.IN_REVIEW):
            await self._cannot(uow, turn, case, "/ask")
            return
        if case.status is C.SUBMITTED:
            await self.workflow.move(uow, case.case_no, "start_review", actor=self.actor(ev), at=now)
        await self.workflow.move(uow, case.case_no, "ask_info", actor=self.actor(ev), at=now, note=text)
        # The bot's needs_info flow collects the material (the news the customer gets says how), so
        # a takeover ends here; the item stays open and is back in the queue once the material is in.
        await self._end_takeover(uow, item, now, None, stamp)
        await uow.desk.audit(actor_id=ev.user_id, key=item.key, action="ask", allowed=True, at=now, detail=text)
        await self._desk_text(uow, item.key, "desk.asked", {"agent": self.label(ev.user_id, ev.user_name),
                                                             "text": text}, now, f"desk:{item.key}:asked:{stamp}")
        await self._card(uow, item.key, now, stamp)
        if not self._said_in_topic_of(turn, item):
            await self._answer(uow, turn, "desk.done", {"case": item.key})

    # -- messages in the topics -----------------------------------------------------------------
    async def _agent_message(self, uow: UnitOfWork, turn: _Turn) -> None:
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

    async def _agent_edit(self, uow: UnitOfWork, turn: _Turn) -> None:
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
        alias = self.desk.alias(item.owner_id, conv.locale)
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
            return Outcome(toast=t("desk.customer_with_agent", alias=alias)[:_TOAST_MAX], locale=conv.locale)
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

    # -- the idle clock -------------------------------------------------------------------------
    async def idle_items(self, uow: UnitOfWork, now: datetime) -> list[DeskItem]:
        """Owned items whose owner has been quiet past the reminder (the sweeper nudges each)."""
        return await uow.desk.idle_owned(now - timedelta(minutes=self.desk.idle_remind_minutes))

    async def nudge(self, uow: UnitOfWork, key: str, now: datetime) -> str:
        """Remind a quiet owner once, hand the item back to the queue after idle_release_minutes.
        Returns "reminded", "released" or "" (nothing due: the owner spoke up meanwhile)."""
        seen = await uow.desk.get(key)
        if seen is None or seen.owner_id is None:
            return ""
        await uow.conversations.load(seen.chat_id)  # the lock order of DeskService._lock
        item = await uow.desk.get(key, for_update=True)
        if item is None or item.owner_id is None or item.closed_at is not None or item.owner_active_at is None:
            return ""
        quiet = now - item.owner_active_at
        stamp = f"{item.owner_id}:{item.owner_active_at.timestamp():.0f}"
        agent = self.label(item.owner_id)
        if quiet >= timedelta(minutes=self.desk.idle_release_minutes):
            await self._end_takeover(uow, item, now, "desk.customer_released", f"idle:{stamp}")
            await self._record(uow, item.owner_id, item, "idle_release", now,
                               f"quiet for {int(quiet.total_seconds() // 60)} min")
            await self._desk_text(uow, key, "desk.idle_released",
                                  {"agent": agent, "case": key, "minutes": str(self.desk.idle_release_minutes)},
                                  now, f"desk:{key}:idle-released:{stamp}")
            await self._card(uow, key, now, f"idle:{stamp}")
            return "released"
        if quiet >= timedelta(minutes=self.desk.idle_remind_minutes) and item.reminded_at is None:
            await uow.desk.mark_reminded(key, at=now)
            await self._desk_text(uow, key, "desk.idle_reminder",
                                  {"agent": agent, "case": key, "minutes": str(int(quiet.total_seconds() // 60)),
                                   "release": str(self.desk.idle_release_minutes)},
                                  now, f"desk:{key}:reminder:{stamp}")
            return "reminded"
        return ""
