"""What an outbox row says: the relay hands a claimed `Delivery` to `compose` and sends the `Notice`.

Kinds (see dialogs.cases and dialogs.sla for who queues them):
- case_card: the customer's status card, rendered from the case as it is *now* and edited in place
  (a newer card row makes an older one redundant, never wrong);
- case_news: a new message when the customer must act or money moved;
- info_reminder, deadline_moved: reminders and apologies of the working-day SLAs;
- supervisor_alert: to the supervisors' group, when a promise was broken.
"""

from __future__ import annotations

from dataclasses import dataclass

from dialogs.domain import Case, CaseStatus, Delivery, Order
from dialogs.io import Button
from dialogs.ports import UnitOfWork
from dialogs.settings import CoreSettings
from dialogs.sla import AWAITING_CREDIT, AWAITING_REVIEW
from dialogs.texts import Texts, money

C = CaseStatus
Buttons = tuple[tuple[Button, ...], ...]

CASE_CARD = "case_card"  # queued by dialogs.cases on every status change
CASE_NEWS = "case_news"
INFO_REMINDER = "info_reminder"
DEADLINE_MOVED = "deadline_moved"
SUPERVISOR_ALERT = "supervisor_alert"

WITHDRAWABLE = frozenset({C.SUBMITTED, C.IN_REVIEW, C.NEEDS_INFO})
RATEABLE = frozenset({C.REFUNDED, C.REJECTED_FINAL})


@dataclass(frozen=True, slots=True)
class Notice:
    chat_id: int
    text: str
    buttons: Buttons = ()
    # Edit this message in place; when it is gone (deleted, too old) send a new one instead.
    edit_message_id: int | None = None
    # The message sent (or edited) becomes this case's status card.
    card_of: str | None = None


def card_token(case_no: str, action: str) -> str:
    """Callback data of a status-card button: `c.<case>.<action>` (<= 64 bytes; checked on press)."""
    return f"c.{case_no}.{action}"


def card_buttons(case: Case, t: Texts) -> Buttons:
    rows: list[tuple[Button, ...]] = []
    if case.status is C.NEEDS_INFO:
        rows.append((Button(t("btn_add_info"), card_token(case.case_no, "info")),))
    if case.status is C.REJECTED:
        rows.append((Button(t("btn_appeal"), card_token(case.case_no, "appeal")),))
    if case.status in WITHDRAWABLE:
        rows.append((Button(t("btn_withdraw"), card_token(case.case_no, "withdraw")),))
    if case.status in RATEABLE and case.rating is None:
        rows.append(tuple(Button(f"{n}⭐", card_token(case.case_no, f"rate{n}"))
                          for n in range(1, 6)))
    return tuple(rows)


def deadline_line(case: Case, t: Texts) -> str:
    if case.status in AWAITING_REVIEW:
        return t("card.review_due", due=case.review_due.isoformat())
    if case.status in AWAITING_CREDIT and case.credit_due is not None:
        return t("card.credit_due", due=case.credit_due.isoformat())
    return ""


def card_text(case: Case, order: Order | None, t: Texts) -> str:
    lines = [
        t("card.title", case_no=case.case_no),
        t("card.order", order_no=case.order_no, product=order.product_name if order else ""),
        t("card.reason", reason=t(f"reason.{case.reason.value}"), amount=money(case.amount)),
        t("card.status", status=t(f"status.{case.status.value}")),
    ]
    if deadline := deadline_line(case, t):
        lines.append(deadline)
    if case.rating is not None:
        lines.append(t("card.rated", stars="⭐" * case.rating))
    return "\n".join(lines)


async def compose(uow: UnitOfWork, delivery: Delivery, settings: CoreSettings) -> Notice | None:
    """The message for a claimed outbox row, or None when there is nothing (left) to say."""
    if delivery.chat_id is None:
        return None
    payload = delivery.payload
    case = await uow.cases.get(str(payload.get("case_no", "")))
    if case is None:
        return None
    t = Texts(case.locale)
    if delivery.kind == SUPERVISOR_ALERT:
        t = Texts(settings.i18n.default_locale)
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
        text = t(f"news.{status.value}", case_no=case.case_no, note=note or t("news.no_note"),
                 amount=money(case.amount),
                 channel=t(f"channel.{order.payment_channel.value}") if order else "",
                 due=case.credit_due.isoformat() if case.credit_due else "",
                 days=settings.sla.needs_info_close_days)
        return Notice(delivery.chat_id, text, card_buttons(case, t) if status is case.status else ())
    if delivery.kind == INFO_REMINDER:
        if case.status is not C.NEEDS_INFO:
            return None
        return Notice(delivery.chat_id, t("reminder.needs_info", case_no=case.case_no, close=payload["close"]),
                      card_buttons(case, t))
    if delivery.kind == DEADLINE_MOVED:
        return Notice(delivery.chat_id, t(f"apology.{payload['deadline']}", case_no=case.case_no,
                                          new_due=payload["new_due"]))
    return None
