"""The delivered 卡密 of a case: what the case keeps of them when it is filed, and how a customer sees
them (masked, so they can tell which card is meant while nobody can read a usable code off a screen).
Agents see them whole only through the desk's "查看卡密" button (dialogs.desk.codes), which is audited.
"""

from __future__ import annotations

from dialogs.domain import Order, ProductKind
from dialogs.proof import mask_code
from dialogs.texts import Texts

# How many codes a customer-facing line lists before "… N in all" (an order of 50 cards stays readable).
SHOWN_MAX = 5


def snapshot(order: Order | None) -> tuple[str, ...]:
    """The codes a new case keeps: the card-code order's delivered codes, as they are now."""
    if order is None or order.product_kind is not ProductKind.CARD_CODE:
        return ()
    return tuple(code.strip() for code in order.delivered_codes if code.strip())


def masked(codes: tuple[str, ...]) -> str:
    """'AB****CD、EF****GH' (at most SHOWN_MAX, then '…')."""
    shown = [mask_code(code) for code in codes[:SHOWN_MAX]]
    return "、".join(shown) + ("…" if len(codes) > SHOWN_MAX else "")


def masked_line(t: Texts, codes: tuple[str, ...]) -> str:
    """The customer's line about the codes ('' without codes)."""
    if not codes:
        return ""
    return t("codes.masked", codes=masked(codes), count=len(codes))


def with_masked_codes(product: str, t: Texts, codes: tuple[str, ...]) -> str:
    """A product name followed by its masked codes on the next line: the customer's summary and status
    card name the product, and the codes belong right under it."""
    line = masked_line(t, codes)
    return f"{product}\n{line}" if line else product
