"""What an outbox row says: the relay hands a claimed `Delivery` to `compose` and sends the `Notice`.

Kinds (named in dialogs.outbox; see dialogs.cases, dialogs.sla and dialogs.desk for who queues them):
- case_card: the customer's status card, rendered from the case as it is *now* and edited in place
  (a newer card row makes an older one redundant, never wrong);
- case_news: a new message when the customer must act or money moved;
- info_reminder, deadline_moved: reminders and apologies of the working-day SLAs;
- supervisor_alert: to the supervisors' group, when a promise was broken;
- the agents' desk (chat_id = the desk's forum group unless said otherwise):
  - desk_card {"key"}: the item's card in its topic, edited in place; an item without a topic gets
    one first (named by dialogs.desk.cards.topic_name). Card rows a later card row of the same item
    makes redundant are confirmed with it, unsent;
  - desk_album {"key", "offset"}: up to 10 of the case's evidence files from `offset`, as an album in
    the topic (queued by dialogs.cases after the first card, and here when a topic is recreated);
  - desk_copy {"key", "direction", "from_chat_id", "message_id", "text"?}: copy a message (chat_id =
    its destination: the desk for "to_desk", the customer for "to_customer") and link the copy. A
    topic's waiting to_desk copies go together: quoted in one message when every one of them carries
    its "text" (plain text messages), else in one copyMessages call;
  - desk_edit {"key", "direction", "from_chat_id", "message_id", "text"}: edit the copy (its text, or
    its caption); a quoted batch is redrawn with the edit;
  - desk_text {"key", "text_key", "params", "buttons"?}: a bot message in the item's topic, in the desk's
    locale (buttons: rows of [label, callback data]);
  - customer_text {"text_key", "params", "locale"} (chat_id = the customer): a bot message to them.
  A row for a topic that is not there (never made, or deleted) first brings the card, in a new topic:
  the relay delivers that `prelude` notice, then composes the row again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from dialogs import codes, ledger, lifecycle
from dialogs.desk.cards import (
    CardFacts,
    album_caption,
    names_wanted,
    quote_batch,
    topic_name,
)
from dialogs.desk.cards import card_buttons as desk_card_buttons
from dialogs.desk.cards import card_text as desk_card_text
from dialogs.domain import Case, CaseStatus, Delivery, DeskItem, Order
from dialogs.io import Button
from dialogs.outbox import (
    ALBUM_SIZE,
    CASE_CARD,
    CASE_NEWS,
    CUSTOMER_TEXT,
    DEADLINE_MOVED,
    DESK_ALBUM,
    DESK_CARD,
    DESK_COPY,
    DESK_EDIT,
    DESK_TEXT,
    INFO_REMINDER,
    SUPERVISOR_ALERT,
    TO_CUSTOMER,
    TO_DESK,
    album_rows,
)
from dialogs.ports import UnitOfWork
from dialogs.roster import current_desk
from dialogs.settings import CoreSettings
from dialogs.sla import info_close_due
from dialogs.texts import Texts, money
from dialogs.words import day, deadline_line, moment, policy_link

C = CaseStatus
Buttons = tuple[tuple[Button, ...], ...]

BATCH_MAX = 100  # copies per batch (copyMessages' limit)
LOOK_AHEAD = 200  # waiting rows of the desk read to batch copies and skip redundant cards

WITHDRAWABLE = lifecycle.sources("withdraw")
RATEABLE = lifecycle.dests("confirm_refund", "reject_final")  # ended by a decision
INFO_ADDABLE = lifecycle.sources("provide_info")
APPEALABLE = lifecycle.sources("appeal")


@dataclass(frozen=True, slots=True)
class Copy:
    """A message to copy: where it is."""

    from_chat_id: int
    message_id: int


@dataclass(frozen=True, slots=True)
class AlbumItem:
    file_id: str
    path: str = ""  # the stored file, sent instead when the file id cannot be used
    mime_type: str = ""  # the stored file's sniffed type: a video goes as a video, a PDF as a document


@dataclass(frozen=True, slots=True)
class Notice:
    """One message to send (or edit, or copy) for an outbox row, as the relay needs it."""

    chat_id: int
    text: str  # the message; an album's caption; unused for copies
    buttons: Buttons = ()
    # Edit this message in place; a status card or desk card that is gone is sent anew, anything else
    # gone has nothing left to edit.
    edit_message_id: int | None = None
    # The message sent (or edited) becomes this case's status card.
    card_of: str | None = None
    # -- the agents' desk --
    desk_key: str | None = None  # the desk item whose topic this goes to
    thread_id: int | None = None  # the forum topic to send into
    topic_name: str | None = None  # no topic yet: create one with this name first, then send into it
    desk_card: bool = False  # the message is the item's card: remember it (with the topic)
    prelude: bool = False  # not the row's own message (the card of a new topic): compose the row again after
    copies: tuple[Copy, ...] = ()  # copy these (copyMessage; several: copyMessages) instead of sending text
    quoted: tuple[Copy, ...] = ()  # the messages `text` quotes (a batch of a customer's texts)
    link: str | None = None  # record each copy (or the quoting message) under this direction
    batch: tuple[int, ...] = ()  # further outbox rows this notice delivers: copies[1:] or quoted[1:], or cards
    album: tuple[AlbumItem, ...] = ()  # send these files as an album, `text` as the caption
    edit_copy: bool = False  # edit_message_id is a copy: its text, or its caption when it has none
    names_wanted: tuple[int, ...] = ()  # people the text names whose names compose was not given


@dataclass(frozen=True, slots=True)
class Sent:
    """What Telegram answered for a notice: the message sent or edited (the first of several) and every
    message sent, in order (copies, an album)."""

    message_id: int | None
    message_ids: tuple[int, ...] = ()
    edited: bool = False


def card_token(case_no: str, action: str) -> str:
    """Callback data of a status-card button: `c.<case>.<action>` (<= 64 bytes; checked on press)."""
    return f"c.{case_no}.{action}"


def card_buttons(case: Case, t: Texts) -> Buttons:
    rows: list[tuple[Button, ...]] = []
    if case.status in INFO_ADDABLE:
        rows.append((Button(t("btn_add_info"), card_token(case.case_no, "info")),))
    if case.status in APPEALABLE:
        rows.append((Button(t("btn_appeal"), card_token(case.case_no, "appeal")),))
    if case.status in WITHDRAWABLE:
        rows.append((Button(t("btn_withdraw"), card_token(case.case_no, "withdraw")),))
    if case.status in RATEABLE and case.rating is None:
        rows.append(tuple(Button(f"{n}⭐", card_token(case.case_no, f"rate{n}"))
                          for n in range(1, 6)))
    return tuple(rows)


def card_text(case: Case, order: Order | None, t: Texts) -> str:
    lines = [
        t("card.title", case_no=case.case_no),
        t("card.order", order_no=case.order_no,
          product=codes.with_masked_codes(order.product_name if order else "", t, case.delivered_codes)),
        t("card.reason", reason=t(f"reason.{case.reason.value}"), amount=money(case.amount)),
        t("card.status", status=t(f"status.{case.status.value}")),
    ]
    if deadline := deadline_line(t, case):
        lines.append(deadline)
    if case.rating is not None:
        lines.append(t("card.rated", stars="⭐" * case.rating))
    return "\n".join(lines)


async def compose(uow: UnitOfWork, delivery: Delivery, settings: CoreSettings,
                  names: Mapping[int, str] | None = None) -> Notice | None:
    """The message for a claimed outbox row, or None when there is nothing (left) to say. `names`:
    display names by Telegram id the relay knows (the desk card names the customer and the owner;
    a notice lists in `names_wanted` whom it could not name)."""
    if delivery.chat_id is None:
        return None
    payload = delivery.payload
    if delivery.kind in DESK_KINDS:
        return await DESK_KINDS[delivery.kind](uow, delivery, settings, names or {})
    if delivery.kind == CUSTOMER_TEXT:
        locale = str(payload.get("locale") or settings.i18n.default_locale)
        return Notice(delivery.chat_id, Texts(locale)(str(payload["text_key"]), **dict(payload.get("params") or {})))
    case = await uow.cases.get(str(payload.get("case_no", "")))
    if case is None:
        return None
    t = Texts(case.locale)
    if delivery.kind == SUPERVISOR_ALERT:
        t = Texts(settings.i18n.default_locale)
        if "text_key" in payload:  # an alert about the money (dialogs.refunds.rail_busy)
            params = dict(payload.get("params") or {})
            return Notice(delivery.chat_id, t(str(payload["text_key"]), case_no=case.case_no,
                                              **{**params, "amount": money(Decimal(str(params.get("amount", 0))))}))
        return Notice(delivery.chat_id, t(f"alert.{payload['deadline']}", case_no=case.case_no,
                                          due=payload["due"], new_due=payload["new_due"],
                                          status=t(f"status.{case.status.value}")))
    if delivery.kind == CASE_CARD:
        order = await uow.orders.get(case.order_no)
        return Notice(delivery.chat_id, card_text(case, order, t), card_buttons(case, t),
                      edit_message_id=case.status_message_id, card_of=case.case_no)
    if delivery.kind == CASE_NEWS:
        status = C(payload["to"])
        note = str(payload.get("note") or "")
        order = await uow.orders.get(case.order_no)
        amount = case.amount
        if status in (C.REFUNDING, C.REFUNDED, C.REFUND_FAILED):  # what is paid: a partial approval pays less
            attempts = await uow.refunds.for_case(case.case_no)
            amount = attempts[-1].amount if attempts else amount
            if status is C.REFUND_FAILED and attempts and attempts[-1].error is not None:
                note = t(f"rail_error.{attempts[-1].error.value}")  # the rail's refusal, in the customer's words
        # The silence close of a needs_info request: the timer's own instant, or (the case has moved on
        # since) the same sum the timer was set with, from when the request was made.
        close = (await info_close_due(uow, case.case_no) if status is C.NEEDS_INFO else None) or (
            delivery.created_at + timedelta(days=settings.sla.needs_info_close_days))
        text = t(f"news.{status.value}", case_no=case.case_no, note=note or t("news.no_note"),
                 amount=money(amount),
                 channel=t(f"channel.{order.payment_channel.value}") if order else "",
                 due=day(t, case.credit_due) if case.credit_due else "",
                 days=settings.sla.needs_info_close_days,
                 close=moment(t, close, settings.i18n.timezone))
        if status in (C.REJECTED, C.REJECTED_FINAL):
            text += policy_link(t, settings.policy)
        return Notice(delivery.chat_id, text, card_buttons(case, t) if status is case.status else ())
    if delivery.kind == INFO_REMINDER:
        if case.status is not C.NEEDS_INFO:
            return None
        # The close date as it stands now: a reminder held while the chat was blocked went out after the
        # clock restarted (dialogs.sla.restart_info_clock).
        closes = await info_close_due(uow, case.case_no)
        until = moment(t, closes, settings.i18n.timezone) if closes is not None else str(payload["close"])
        return Notice(delivery.chat_id, t("reminder.needs_info", case_no=case.case_no, close=until),
                      card_buttons(case, t))
    if delivery.kind == DEADLINE_MOVED:
        return Notice(delivery.chat_id, t(f"apology.{payload['deadline']}", case_no=case.case_no,
                                          new_due=day(t, date.fromisoformat(str(payload["new_due"])))))
    return None


# -- the agents' desk -------------------------------------------------------------------------------

async def _card_facts(uow: UnitOfWork, item: DeskItem, names: Mapping[int, str]) -> CardFacts:
    case = await uow.cases.get(item.case_no) if item.case_no else None
    if case is None:
        return CardFacts(item, names=names)
    attempts = await uow.refunds.for_order(case.order_no)
    order = await uow.orders.get(case.order_no)
    siblings = [(other, ledger.refunded(attempts, other.case_no))
                for other in await uow.cases.for_order(case.order_no) if other.case_no != case.case_no]
    return CardFacts(item, case, order, await uow.desk.history(case.case_no),
                     await uow.desk.pending_approval(case.case_no), names,
                     ledger.balance(order.amount if order else case.amount, attempts), siblings)


async def desk_card_notice(uow: UnitOfWork, item: DeskItem, chat_id: int, settings: CoreSettings,
                           names: Mapping[int, str], *, prelude: bool = False) -> Notice:
    """The item's card: an edit of the card in its topic, a new card in it, or (no topic) a new topic
    and the card in it."""
    t = Texts(settings.i18n.default_locale)
    facts = await _card_facts(uow, item, names)
    has_topic = item.thread_id is not None
    return Notice(
        chat_id, desk_card_text(facts, await current_desk(uow, settings.desk, item.opened_at), t,
                                settings.i18n.timezone),
        desk_card_buttons(item, facts.case, facts.pending, t),
        edit_message_id=item.card_message_id if has_topic else None, desk_key=item.key, thread_id=item.thread_id,
        topic_name=None if has_topic else topic_name(item, facts.case, names, t), desk_card=True, prelude=prelude,
        names_wanted=names_wanted(item, names))


async def _desk_item(uow: UnitOfWork, delivery: Delivery) -> DeskItem | None:
    return await uow.desk.get(str(delivery.payload.get("key", "")))


async def _compose_desk_card(uow: UnitOfWork, delivery: Delivery, settings: CoreSettings,
                             names: Mapping[int, str]) -> Notice | None:
    item = await _desk_item(uow, delivery)
    if item is None or delivery.chat_id is None:
        return None
    notice = await desk_card_notice(uow, item, delivery.chat_id, settings, names)
    # The card shows the item as it is now: the same item's card rows waiting behind this one would
    # only draw it again (each an edit out of the group's 20 a minute). They are confirmed with it.
    later = await uow.desk.queued_after(delivery.chat_id, delivery.id, LOOK_AHEAD)
    redundant = tuple(d.id for d in later if d.kind == DESK_CARD and d.payload.get("key") == item.key)
    return replace(notice, batch=redundant)


async def _compose_desk_album(uow: UnitOfWork, delivery: Delivery, settings: CoreSettings,
                              names: Mapping[int, str]) -> Notice | None:
    item = await _desk_item(uow, delivery)
    if item is None or item.case_no is None or delivery.chat_id is None:
        return None
    case = await uow.cases.get(item.case_no)
    offset = int(delivery.payload.get("offset") or 0)
    files = case.evidence[offset:offset + ALBUM_SIZE] if case is not None else ()
    if case is None or not files:
        return None
    if item.thread_id is None:
        return await desk_card_notice(uow, item, delivery.chat_id, settings, names, prelude=True)
    t = Texts(settings.i18n.default_locale)
    return Notice(delivery.chat_id, album_caption(case, len(case.evidence), t), desk_key=item.key,
                  thread_id=item.thread_id, album=tuple(AlbumItem(f.file_id, f.path, f.mime_type) for f in files))


async def _compose_desk_text(uow: UnitOfWork, delivery: Delivery, settings: CoreSettings,
                             names: Mapping[int, str]) -> Notice | None:
    item = await _desk_item(uow, delivery)
    if item is None or delivery.chat_id is None:
        return None
    if item.thread_id is None:
        return await desk_card_notice(uow, item, delivery.chat_id, settings, names, prelude=True)
    payload = delivery.payload
    text = Texts(settings.i18n.default_locale)(str(payload["text_key"]), **dict(payload.get("params") or {}))
    # Optional buttons: rows of [label, callback data] (e.g. the canned reasons of a rejection).
    buttons = tuple(tuple(Button(str(label), str(token)) for label, token in row) for row in payload.get("buttons") or ())
    return Notice(delivery.chat_id, text, buttons, desk_key=item.key, thread_id=item.thread_id)


def _source(payload: Mapping[str, Any]) -> Copy:
    return Copy(int(payload["from_chat_id"]), int(payload["message_id"]))


def _batchable(head: Delivery, later: list[Delivery]) -> list[Delivery]:
    """The to_desk copies of the head's item waiting behind it that may go with it: from the same chat,
    in message order, up to the first row of that item that is something else (a note, an edit, an
    album keep their place). Its card rows are passed over (an edit in place has no place)."""
    key, source = head.payload.get("key"), _source(head.payload)
    run = [head]
    for row in later:
        if row.payload.get("key") != key or row.kind == DESK_CARD:
            continue
        if row.kind != DESK_COPY or row.payload.get("direction") != TO_DESK:
            break
        nxt = _source(row.payload)
        if nxt.from_chat_id != source.from_chat_id or nxt.message_id <= _source(run[-1].payload).message_id:
            break
        run.append(row)
        if len(run) >= BATCH_MAX:
            break
    return run


async def _compose_desk_copy(uow: UnitOfWork, delivery: Delivery, settings: CoreSettings,
                             names: Mapping[int, str]) -> Notice | None:
    payload = delivery.payload
    direction = str(payload.get("direction"))
    if delivery.chat_id is None:
        return None
    if direction == TO_CUSTOMER:
        return Notice(delivery.chat_id, "", copies=(_source(payload),), link=TO_CUSTOMER)
    item = await _desk_item(uow, delivery)
    if item is None:
        return None
    if item.thread_id is None:
        return await desk_card_notice(uow, item, delivery.chat_id, settings, names, prelude=True)
    run = _batchable(delivery, await uow.desk.queued_after(delivery.chat_id, delivery.id, LOOK_AHEAD))
    t = Texts(settings.i18n.default_locale)
    texts = [str(row.payload.get("text") or "") for row in run]
    if len(run) > 1 and all(texts):
        # Plain texts: quoted in one message, as many as fit.
        count = len(run)
        while count > 1 and len(quote_batch([(x, False) for x in texts[:count]], t)) > 4096:
            count -= 1
        if count > 1:
            run = run[:count]
            return Notice(delivery.chat_id, quote_batch([(x, False) for x in texts[:count]], t), desk_key=item.key,
                          thread_id=item.thread_id, quoted=tuple(_source(r.payload) for r in run), link=TO_DESK,
                          batch=tuple(r.id for r in run[1:]))
        run = run[:1]
    return Notice(delivery.chat_id, "", desk_key=item.key, thread_id=item.thread_id,
                  copies=tuple(_source(r.payload) for r in run), link=TO_DESK, batch=tuple(r.id for r in run[1:]))


async def _compose_desk_edit(uow: UnitOfWork, delivery: Delivery, settings: CoreSettings,
                             names: Mapping[int, str]) -> Notice | None:
    payload = delivery.payload
    source, direction, text = _source(payload), str(payload.get("direction")), str(payload.get("text") or "")
    link = await uow.desk.find_link(source.from_chat_id, source.message_id, direction)
    if link is None or link.copy_message_id is None:
        return None  # never copied (or not yet known): nothing to edit
    rows = await uow.desk.delivered_as(link.copy_chat_id, link.copy_message_id, (DESK_COPY, DESK_EDIT))
    quoted = [r for r in rows if r.kind == DESK_COPY]
    if len(quoted) < 2:
        return Notice(link.copy_chat_id, text, edit_message_id=link.copy_message_id, edit_copy=True)
    # A quoted batch: drawn again with every edit made to its messages so far, this one last.
    latest: dict[Copy, str] = {}
    for row in rows:
        if row.kind == DESK_EDIT:
            latest[_source(row.payload)] = str(row.payload.get("text") or "")
    latest[source] = text
    texts = [(latest.get(_source(r.payload), str(r.payload.get("text") or "")), _source(r.payload) in latest)
             for r in quoted]
    t = Texts(settings.i18n.default_locale)
    return Notice(link.copy_chat_id, quote_batch(texts, t)[:4096], edit_message_id=link.copy_message_id)


DESK_KINDS = {DESK_CARD: _compose_desk_card, DESK_ALBUM: _compose_desk_album, DESK_COPY: _compose_desk_copy,
              DESK_EDIT: _compose_desk_edit, DESK_TEXT: _compose_desk_text}


# -- what the relay writes back once Telegram answered -----------------------------------------------

async def delivered(uow: UnitOfWork, delivery: Delivery | None, notice: Notice | None, sent: Sent | None,
                    at: datetime) -> None:
    """Book a delivered notice: the row (and the rows it batched) sent; the customer's status card, the
    desk card or the copies remembered. `delivery` None: a prelude (only the card is remembered);
    `notice` None: a row with nothing to say."""
    message_id = sent.message_id if sent is not None else None
    if delivery is not None:
        await uow.outbox.mark_sent(delivery.id, at=at, message_id=message_id)
    if notice is None or sent is None:
        return
    if notice.card_of is not None and message_id is not None:
        await uow.cases.set_status_message(notice.card_of, message_id)
    if notice.desk_card and notice.desk_key is not None and message_id is not None:
        await uow.desk.set_topic(notice.desk_key, thread_id=notice.thread_id, card_message_id=message_id)
    if delivery is None:
        return
    if notice.copies:
        # Telegram skips what it cannot copy: only a full answer says which copy is which.
        ids: tuple[int | None, ...] = sent.message_ids if len(sent.message_ids) == len(notice.copies) else (
            (None,) * len(notice.copies))
        for source, copy_id, row in zip(notice.copies, ids, (delivery.id, *notice.batch), strict=True):
            if row != delivery.id:
                await uow.outbox.mark_sent(row, at=at, message_id=copy_id)
            if notice.link is not None and copy_id is not None:
                await uow.desk.set_link_copy(source.from_chat_id, source.message_id, notice.link, copy_id)
        return
    for row in notice.batch:  # a quoted batch's other rows, or card rows made redundant
        await uow.outbox.mark_sent(row, at=at, message_id=message_id if notice.quoted else None)
    if notice.link is not None and message_id is not None:
        for source in notice.quoted:
            await uow.desk.set_link_copy(source.from_chat_id, source.message_id, notice.link, message_id)


async def topic_created(uow: UnitOfWork, key: str, thread_id: int, *, chat_id: int, recreated: bool,
                        at: datetime) -> None:
    """Remember a new topic (its card comes next). A topic made again after the old one was deleted
    gets the case's evidence again, as albums after the card."""
    await uow.desk.set_topic(key, thread_id=thread_id, card_message_id=None)
    item = await uow.desk.get(key)
    if not recreated or item is None or item.case_no is None:
        return
    case = await uow.cases.get(item.case_no)
    if case is not None:
        for row in album_rows(case, chat_id, at, f"t{thread_id}"):
            await uow.outbox.add(row)


async def topic_gone(uow: UnitOfWork, key: str, thread_id: int | None) -> None:
    """Telegram says the item's topic is gone (deleted, or closed to the bot): forget it, unless it was
    replaced meanwhile, so the next row makes a new one."""
    item = await uow.desk.get(key, for_update=True)
    if item is not None and item.thread_id == thread_id:
        await uow.desk.set_topic(key, thread_id=None, card_message_id=None)
