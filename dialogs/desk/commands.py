"""The desk's vocabulary: the commands agents type, the actions its card buttons carry, and how both
are read.

Commands (in an item's topic they act on that item; elsewhere name it: `/take R20261124-0001`):
/queue, /take, /release, /approve [amount], /reject reason, /ask what, /note text, /confirm, /close,
/codes, /help. Card buttons carry `dk.<key>.<action>` (see `desk_token`): take, release, approve, reject,
ask, note, confirm, close, codes (the delivered 卡密, dialogs.desk.codes) and `rj.<canned key>` (reject
with a canned reason).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

TOKEN_PREFIX = "dk."
# Button actions and the command each one is.
ACTIONS = ("take", "release", "approve", "reject", "ask", "note", "confirm", "close", "codes")
COMMANDS = frozenset({"queue", "help", "m", *ACTIONS})  # m: macros (dialogs.desk.macros)
# Desk commands an agent may also send in a private chat with the bot (their answers come there).
PRIVATE_COMMANDS = frozenset({"queue", "take", "release", "approve", "reject", "ask", "note", "confirm", "close"})
_KEY = re.compile(r"^(R\d{8}-\d{4,}|chat:-?\d+)$", re.IGNORECASE)


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


def named_key(word: str) -> str | None:
    """The item a command's first word names (a case number or chat:<id>), spelled as stored; None when
    it names none."""
    if not word or not _KEY.match(word):
        return None
    return word.upper() if word[0] in "rR" else word.lower()


def parse_amount(text: str) -> Decimal | None:
    """A positive amount with at most 2 decimals ("30", "30.5", "¥30.00"); None otherwise."""
    cleaned = text.strip().lstrip("¥￥").replace(",", "")
    if not re.fullmatch(r"\d+(\.\d{1,2})?", cleaned):
        return None
    try:
        return Decimal(cleaned)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        return None
