"""User-facing text: gettext catalogs (zh_CN default, en) read with Babel, keyed by message id."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.messages.pofile import read_po

LOCALES = ("zh_CN", "en")
_DIR = Path(__file__).parent / "locale"


@cache
def catalog(locale: str) -> dict[str, str]:
    """Every catalog file of the locale (refundbot.po: the customer's side; desk.po: the agents'),
    merged; a message id may live in one file only."""
    messages: dict[str, str] = {}
    for path in sorted((_DIR / locale / "LC_MESSAGES").glob("*.po")):
        with open(path, "rb") as fh:
            cat = read_po(fh, locale=locale)
        for m in cat:
            if m.id and m.string:
                if str(m.id) in messages:
                    raise ValueError(f"message {m.id!r} is in two {locale} catalogs")
                messages[str(m.id)] = str(m.string)
    return messages


def pick_locale(language_code: str | None, default: str) -> str:
    """Telegram's language_code (e.g. 'en-US', 'zh-hans') to one of our catalogs."""
    code = (language_code or "").lower()
    if code.startswith("zh"):
        return "zh_CN"
    if code.startswith("en"):
        return "en"
    return default


class Texts:
    def __init__(self, locale: str) -> None:
        self.locale = locale if locale in LOCALES else LOCALES[0]
        self._messages = catalog(self.locale)

    def __call__(self, key: str, default: str | None = None, **kw: Any) -> str:
        template = self._messages.get(key)
        if template is None:
            if default is not None:
                return default
            raise KeyError(f"no text {key!r} in the {self.locale} catalog")
        return template.format(**kw) if kw else template


def money(amount: Decimal) -> str:
    return f"¥{amount:.2f}"


def when(moment: datetime, timezone: str) -> str:
    return moment.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")
