"""The agents' desk as Telegram shows it: a topic's name, the case card in it with its buttons, and a
batch of a customer's messages quoted in one message. Pure functions of the data, in the desk's
locale ([i18n] default_locale); the texts are the dk.* keys of desk_cards.po.

The card holds what an agent needs to decide without leaving the topic: the order's facts, the
customer, the reason and description, the policy's verdict and its rule, the evidence count (the
files follow the first card as an album), the deadline, who owns the item, an approval waiting for
a supervisor, and the case's history. Buttons carry `dk.<key>.<action>`; the desk's action side
checks each press against the item's state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from dialogs.codes import masked
from dialogs.desk.commands import desk_token
from dialogs.desk.history import event_words
from dialogs.domain import Case, CaseStatus, DeskItem, Order
from dialogs.io import Button
from dialogs.ledger import Balance
from dialogs.lifecycle import sources
from dialogs.ports import CaseEventRecord
from dialogs.settings import DeskSettings
from dialogs.sla import deadline_line
from dialogs.texts import Texts, money, when

C = CaseStatus
Buttons = tuple[tuple[Button, ...], ...]

# A case an agent can decide on (approve / reject), and ask for more material about.
# A submitted case is decided through start_review, which the desk fires first.
DECIDABLE = sources("approve") | sources("start_review")
ASKABLE = sources("ask_info") | sources("start_review")

TOPIC_NAME_MAX = 128  # Telegram's limit for a topic's name
TEXT_MAX = 4096  # ... for a message
NOTE_MAX = 80  # characters of an event's note on the card
DESCRIPTION_MAX = 600


@dataclass(frozen=True, slots=True)
class CardFacts:
    """Everything the card shows, read in one unit of work."""

    item: DeskItem
    case: Case | None = None
    order: Order | None = None
    history: Sequence[CaseEventRecord] = ()
    pending: tuple[Decimal, int] | None = None  # (amount, requesting agent) of an approval awaiting a confirm
    names: Mapping[int, str] | None = None  # display names by Telegram id, as far as known
    balance: Balance | None = None  # the order's refund ledger
    siblings: Sequence[tuple[Case, Decimal]] = ()  # the order's other cases, each with what it refunded


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def customer_label(item: DeskItem, names: Mapping[int, str] | None) -> str:
    name = (names or {}).get(item.chat_id) or ""
    return name or str(item.chat_id)


def short_money(amount: Decimal) -> str:
    """'¥648' for a whole amount, '¥648.50' otherwise: a topic's name is read at a glance."""
    return f"¥{amount:.0f}" if amount == amount.to_integral_value() else money(amount)


def short_case_no(case_no: str) -> str:
    """'R20261124-0006' -> 'R…0006': the day's running number tells cases apart in a topic list (the
    card in the topic has the whole number)."""
    head, dash, number = case_no.partition("-")
    return f"{head[:1]}…{number}" if dash and head and number else case_no


def topic_name(item: DeskItem, case: Case | None, names: Mapping[int, str] | None, t: Texts) -> str:
    """'¥648 卡密无效 · R…0006' (amount, reason, case number: what an agent scans a topic list for), or
    '客服请求 · 张三' for a request without a case. Within Telegram's 128 characters: a name too long loses
    the case number first, then the end of the reason; the amount always stays."""
    if case is None:
        return clip(t("dk.topic.request", customer=customer_label(item, names)), TOPIC_NAME_MAX)
    amount, reason = short_money(case.amount), t(f"reason.{case.reason.value}")
    name = t("dk.topic.case", amount=amount, reason=reason, case_no=short_case_no(case.case_no))
    if len(name) <= TOPIC_NAME_MAX:
        return name
    room = TOPIC_NAME_MAX - len(t("dk.topic.case_short", amount=amount, reason=""))
    return t("dk.topic.case_short", amount=amount, reason=clip(reason, room))


def same_name(name: str, alias: str) -> bool:
    """Whether a Telegram name says no more than the alias (then a person is named once)."""
    return " ".join(name.split()).casefold() == " ".join(alias.split()).casefold()


def person_label(alias: str, name: str) -> str:
    """How agents see one of themselves in the topic: the alias, and the Telegram name when it differs."""
    return f"{alias} ({name})" if name and not same_name(name, alias) else alias


def names_wanted(item: DeskItem, names: Mapping[int, str] | None) -> tuple[int, ...]:
    """The people the card names whose names are not known yet (the customer, the owner)."""
    known = names or {}
    wanted = [item.chat_id] + ([item.owner_id] if item.owner_id is not None else [])
    return tuple(dict.fromkeys(i for i in wanted if i not in known))


def actor_label(actor: str, desk: DeskSettings, t: Texts) -> str:
    """'agent:42' -> the agent's alias; 'customer', 'system', 'platform' -> their word."""
    kind, _, rest = actor.partition(":")
    if kind == "agent" and rest.lstrip("-").isdigit():
        return desk.alias(int(rest), t.locale)
    if kind == "cli" and rest:
        return t("dk.actor.cli", name=rest)
    return t(f"dk.actor.{kind}", default=actor)


def _order_lines(case: Case, order: Order | None, t: Texts, timezone: str) -> list[str]:
    if order is None:
        return [t("dk.card.order_unknown", order_no=case.order_no)]
    lines = [
        t("dk.card.order", order_no=order.order_no, product=order.product_name,
          kind=t(f"dk.kind.{order.product_kind.value}", default=order.product_kind.value)),
        t("dk.card.payment", amount=money(order.amount), channel=t(f"channel.{order.payment_channel.value}"),
          paid_at=when(order.paid_at, timezone)),
    ]
    delivered = when(order.delivered_at, timezone) if order.delivered_at else ""
    facts = [t(f"delivery.{order.delivery_status.value}") + (f" {delivered}" if delivered else "")]
    if order.card_redeemed is not None:
        facts.append(t("dk.card.redeemed_yes" if order.card_redeemed else "dk.card.redeemed_no"))
    if order.topup_credited is not None:
        facts.append(t("dk.card.credited_yes" if order.topup_credited else "dk.card.credited_no"))
    lines.append(t("dk.card.delivery", facts=" · ".join(facts)))
    if order.tags:
        lines.append(t("dk.card.tags", tags=", ".join(sorted(order.tags))))
    return lines


def _ledger_lines(facts: CardFacts, t: Texts) -> list[str]:
    """The order's money beyond this case: what went back or is on its way, what is left, and the
    order's other cases — so no agent approves twice what one order paid once."""
    balance = facts.balance
    if balance is None or (balance.remaining == balance.paid and not facts.siblings):
        return []
    lines = [t("dk.card.ledger", refunded=money(balance.refunded), in_flight=money(balance.in_flight),
               remaining=money(balance.remaining))]
    lines += [t("dk.card.sibling", case_no=other.case_no, reason=t(f"reason.{other.reason.value}"),
                status=t(f"status.{other.status.value}"), refunded=money(refunded))
              for other, refunded in facts.siblings[-5:]]
    return lines


def _history_lines(history: Sequence[CaseEventRecord], desk: DeskSettings, t: Texts, timezone: str) -> list[str]:
    lines = [t("dk.card.history")]
    for event in history:
        lines.append(t("dk.card.event_line", at=when(event.at, timezone)[5:],  # MM-DD HH:MM
                       what=event_words(event, actor_label(event.actor, desk, t), t, NOTE_MAX)))
    return lines


def _owner_line(item: DeskItem, names: Mapping[int, str] | None, desk: DeskSettings, t: Texts) -> str:
    if item.closed_at is not None:
        return ""
    if item.owner_id is None:
        return t("dk.card.unowned")
    alias = desk.alias(item.owner_id, t.locale)
    name = (names or {}).get(item.owner_id) or ""
    who = f"{name} · {item.owner_id}" if name and not same_name(name, alias) else str(item.owner_id)
    return t("dk.card.owner", alias=alias, who=who)


def card_text(facts: CardFacts, desk: DeskSettings, t: Texts, timezone: str) -> str:
    item, case, names = facts.item, facts.case, facts.names
    if case is None:
        lines = [t("dk.card.request_title", customer=customer_label(item, names)),
                 t("dk.card.customer_request", name=customer_label(item, names), user_id=item.user_id),
                 t("dk.card.opened", at=when(item.opened_at, timezone))]
    else:
        lines = [t("dk.card.title", case_no=case.case_no, status=t(f"status.{case.status.value}"))]
        lines += _order_lines(case, facts.order, t, timezone)
        if case.delivered_codes:  # masked here too: the whole codes only through the audited button
            lines.append(t("dk.card.codes", codes=masked(case.delivered_codes), count=len(case.delivered_codes)))
        lines.append(t("dk.card.customer", name=customer_label(item, names), user_id=case.user_id,
                       language=t(f"dk.language.{case.locale}", default=case.locale)))
        lines.append(t("dk.card.reason", reason=t(f"reason.{case.reason.value}"), amount=money(case.amount)))
        lines += _ledger_lines(facts, t)
        if case.description.strip():
            lines.append(t("dk.card.description", description=clip(case.description.strip(), DESCRIPTION_MAX)))
        lines.append(t("dk.card.verdict", verdict=t(f"verdict_short.{case.verdict.value}"), rule=case.rule_id))
        lines.append(t("dk.card.evidence", count=len(case.evidence)) if case.evidence
                     else t("dk.card.no_evidence"))
        if deadline := deadline_line(case, t, "dk.card.review_due", "dk.card.credit_due"):
            lines.append(deadline)
    if owner := _owner_line(item, names, desk, t):
        lines.append(owner)
    if facts.pending is not None and item.closed_at is None and case is not None and case.status in DECIDABLE:
        amount, agent = facts.pending
        lines.append(t("dk.card.pending", amount=money(amount), alias=desk.alias(agent, t.locale)))
    if item.closed_at is not None:
        status = t(f"status.{case.status.value}") if case is not None else t("dk.card.request_done")
        lines.append(t("dk.card.closed", outcome=status, at=when(item.closed_at, timezone)))
    head = "\n".join(lines)
    if case is None or not facts.history:
        return clip(head, TEXT_MAX)
    # The history goes last and loses its oldest lines first when the card would be too long.
    history = _history_lines(facts.history, desk, t, timezone)
    while len(history) > 1 and len(head) + 2 + sum(len(h) + 1 for h in history) > TEXT_MAX:
        history.pop(1)
    return clip(head + "\n\n" + "\n".join(history), TEXT_MAX)


def card_buttons(item: DeskItem, case: Case | None, pending: tuple[Decimal, int] | None, t: Texts) -> Buttons:
    """The card's main buttons: Take over (or Release when owned), Approve / Reject / Ask for more while
    the case can be decided, Note. While an approval waits for a supervisor the decision is theirs:
    Confirm instead of Approve / Reject / Ask. None once closed."""
    if item.closed_at is not None:
        return ()

    def desk_button(action: str) -> Button:
        return Button(t(f"dk.btn.{action}"), desk_token(item.key, action))

    decidable = case is not None and case.status in DECIDABLE
    rows: list[tuple[Button, ...]] = []
    if pending is not None and decidable:  # a request left over from a case decided since is not confirmable
        rows.append((desk_button("confirm"),))
    rows.append((desk_button("release" if item.owner_id is not None else "take"),))
    if pending is None and case is not None and decidable:
        decide = [desk_button("approve"), desk_button("reject")]
        if case.status in ASKABLE:
            decide.append(desk_button("ask"))
        rows.append(tuple(decide))
    rows.append((desk_button("note"),))
    if case is not None and case.delivered_codes:  # whole codes only on demand, and audited
        rows.append((desk_button("codes"),))
    return tuple(rows)


def quote_batch(texts: Sequence[tuple[str, bool]], t: Texts) -> str:
    """Several of a customer's messages as one message: a head line, then each message (marked when it
    was edited since), in order. `texts`: (text, edited)."""
    lines = [t("dk.batch.head", count=len(texts))]
    for text, edited in texts:
        body = text.replace("\n", "\n   ")
        lines.append(t("dk.batch.item", text=body) + (t("dk.batch.edited") if edited else ""))
    return "\n".join(lines)


def album_caption(case: Case, count: int, t: Texts) -> str:
    return t("dk.album.caption", case_no=case.case_no, count=count)
