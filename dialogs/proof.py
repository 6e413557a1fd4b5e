"""What proves an order is the customer's, the way a card shop knows its buyers, and how a delivered
卡密 is shown where it must not be read.

Card shops (dujiaoka, acg-faka, Dujiao-Next) do not collect phone numbers: a buyer is an e-mail or a
contact string typed at checkout, plus an optional 查询密码. refundbot keeps the contact as the shop has
it and only a digest of the password, so a copy of our database does not hand out the shop's passwords.
"""

from __future__ import annotations

import hashlib
import hmac


def normal_contact(text: str) -> str:
    """A contact as compared: trimmed and case-folded (e-mail addresses are typed in any case)."""
    return text.strip().casefold()


def secret_digest(order_no: str, password: str) -> str:
    """The stored form of an order's 查询密码: SHA-256 over the order number and the password (the order
    number salts it, so equal passwords of two orders differ)."""
    return hashlib.sha256(f"{order_no}\n{password}".encode()).hexdigest()


def contact_matches(expected: str | None, typed: str) -> bool:
    return bool(expected) and hmac.compare_digest(normal_contact(expected or "").encode(), normal_contact(typed).encode())


def password_matches(order_no: str, digest: str | None, typed: str) -> bool:
    return bool(digest) and hmac.compare_digest((digest or "").encode(), secret_digest(order_no, typed.strip()).encode())


def mask_code(code: str) -> str:
    """A 卡密 as a customer or a log may see it: the first and last two characters, the rest starred
    (short codes are starred whole), so a customer can tell which card is meant and nobody can use it."""
    code = code.strip()
    if len(code) <= 6:
        return "*" * len(code)
    return code[:2] + "*" * (len(code) - 4) + code[-2:]
