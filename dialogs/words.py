"""How the customer's texts name things: a rule by its title (never its id), a promised day with its
weekday, the policy link, examples that fit the product. The words are in the catalogs (words.po);
this module only picks them. Desk cards, history and exports keep the rule id and ISO dates.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime

from dialogs.domain import Case, ProductKind, Reason
from dialogs.settings import OrderSettings, PolicySettings
from dialogs.sla import next_deadline
from dialogs.texts import Texts

# Words a customer uses when the message is meant as an order number (a digit run says it too).
_ORDER_WORDS = ("订单", "单号", "order")
_DIGIT_RUN = re.compile(r"\d{3,}")
_LETTERS = re.compile(r"[A-Za-z]+")


def rule_title(t: Texts, rule_id: str, policy: PolicySettings) -> str:
    """The rule's plain title, with the configured claim window where the title names one."""
    return t(f"rule_title.{rule_id}", hours=policy.card_claim_window_hours)


def day(t: Texts, when: date) -> str:
    """A promised day as people write it, with its weekday: 12月9日（周三） / Wed 9 Dec."""
    return str(format_date(when, t("fmt.day"), locale=t.locale))


def deadline_line(t: Texts, case: Case) -> str:
    """The next date promised to the customer on their card and in /status ("" when none); the desk
    card keeps ISO dates (dialogs.sla.deadline_line)."""
    deadline = next_deadline(case)
    if deadline is None:
        return ""
    kind, due = deadline
    return t("card.review_due" if kind == "review" else "card.credit_due", due=day(t, due))


def moment(t: Texts, when: datetime, timezone: str) -> str:
    """An instant in the platform's time zone, with the weekday: 12月9日（周三）14:05."""
    return str(format_datetime(when.astimezone(ZoneInfo(timezone)), t("fmt.moment"), locale=t.locale))


def policy_link(t: Texts, policy: PolicySettings) -> str:
    """The line pointing at the full refund policy (to append to a text), or "" when none is configured."""
    return "\n\n" + t("policy_link", url=policy.url) if policy.url else ""


def looks_like_order_number(text: str, orders: OrderSettings) -> bool:
    """Was this message meant as an order number, even a malformed one? It starts with the letters the
    platform's numbers start with, has a run of digits, or says "订单" / "order"."""
    stripped = text.strip()
    prefix = _LETTERS.match(orders.number_example)
    if prefix and stripped.upper().startswith(prefix.group(0).upper()):
        return True
    if _DIGIT_RUN.search(stripped):
        return True
    lowered = stripped.lower()
    return any(word in lowered for word in _ORDER_WORDS)


def examples(t: Texts, reason: Reason, kind: ProductKind | None) -> str:
    """Examples of a concrete description: the product kind's own for a reason any product may have."""
    generic = t(f"examples.{reason.value}")
    if kind is None:
        return generic
    return t(f"examples.{reason.value}.{kind.value}", default=generic)


def appeal_example(t: Texts, kind: ProductKind | None) -> str:
    """An appeal reason that fits the product: a top-up's talks about top-ups, not card codes."""
    return t(f"appeal_example.{(kind or ProductKind.OTHER).value}")
