"""What proves an order is the customer's, the way a card shop knows its buyers, and how a delivered
卡密 is shown where it must not be read.

Card shops (dujiaoka, acg-faka, Dujiao-Next) do not collect phone numbers: a buyer is an e-mail or a
contact string typed at checkout, plus an optional 查询密码. refundbot keeps the contact as the shop has
it and only a digest of the password, so a copy of our database does not hand out the shop's passwords.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


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


# -- contacts as customers type them ---------------------------------------------------------------
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# What card shops take as a contact besides an e-mail: a QQ number, a phone, a WeChat id.
_CONTACT = re.compile(r"[\w.+\-]{3,64}")
MAX_CONTACT = 128
MAX_PASSWORD = 64


def plausible_contact(text: str) -> bool:
    """Whether the text could be a checkout contact at all (an e-mail, or a QQ / phone / WeChat id);
    anything else gets the format hint and counts as nothing."""
    text = text.strip()
    if len(text) > MAX_CONTACT:
        return False
    if "@" in text:
        return _EMAIL.fullmatch(text) is not None
    return _CONTACT.fullmatch(text) is not None


def plausible_password(text: str) -> bool:
    text = text.strip()
    return 0 < len(text) <= MAX_PASSWORD and "\n" not in text


# -- the signed deep link behind the shop's 申请退款 button ------------------------------------------
LINK_PREFIX = "rf_"
SIGNATURE_HEX = 24  # 96 bits: far beyond guessing, short enough for Telegram's 64-character start parameter
MAX_START_PARAMETER = 64
_START_PARAMETER = re.compile(r"[A-Za-z0-9_-]{1,64}")
_LINK = re.compile(r"rf_(?P<order>[A-Za-z0-9_-]+)_(?P<expires>\d{1,12})_(?P<sig>[0-9a-fA-F]{24})")


class LinkProblem(StrEnum):
    MALFORMED = "malformed"  # not our shape at all: no number to count against
    FORGED = "forged"  # the signature does not match (or no secret is configured)
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class LinkCheck:
    order_no: str  # as signed ("" when malformed)
    problem: LinkProblem | None  # None: valid


def link_signature(secret: str, order_no: str, expires: int) -> str:
    """SIG = the first 24 hex characters of HMAC-SHA256(secret, "<ORDER>_<EXPIRES>")."""
    mac = hmac.new(secret.encode(), f"{order_no}_{expires}".encode(), hashlib.sha256)
    return mac.hexdigest()[:SIGNATURE_HEX]


def link_parameter(secret: str, order_no: str, expires: int) -> str:
    """The start parameter the shop puts behind its 申请退款 button: rf_<ORDER>_<EXPIRES>_<SIG>."""
    if not secret:
        raise ValueError("no link secret configured ([orders] link_secret / REFUNDBOT_ORDER_LINK_SECRET)")
    parameter = f"{LINK_PREFIX}{order_no}_{expires}_{link_signature(secret, order_no, expires)}"
    if _START_PARAMETER.fullmatch(parameter) is None:
        raise ValueError(f"order number {order_no!r} does not fit a Telegram start parameter "
                         f"(at most {MAX_START_PARAMETER - 39} characters of A-Z a-z 0-9 _ -)")
    return parameter


def is_link(parameter: str) -> bool:
    return parameter.strip().lower().startswith(LINK_PREFIX)


def check_link(secret: str | None, parameter: str, now: datetime) -> LinkCheck:
    """Verify a start parameter: the signature in constant time first, then the expiry."""
    found = _LINK.fullmatch(parameter.strip())
    if found is None or len(parameter.strip()) > MAX_START_PARAMETER:
        return LinkCheck("", LinkProblem.MALFORMED)
    order_no, expires = found["order"], int(found["expires"])
    if not secret:
        return LinkCheck(order_no, LinkProblem.FORGED)
    expected = link_signature(secret, order_no, expires)
    if not hmac.compare_digest(expected.encode(), found["sig"].lower().encode()):
        return LinkCheck(order_no, LinkProblem.FORGED)
    if expires <= now.timestamp():
        return LinkCheck(order_no, LinkProblem.EXPIRED)
    return LinkCheck(order_no, None)
