"""Is a description concrete enough to act on? Vague complaints get coached, not filed."""

from __future__ import annotations

import re
import unicodedata

from dialogs.settings import PolicySettings

_NOISE = re.compile(r"[\s\W_]+", re.UNICODE)


def _weight(text: str) -> int:
    # A CJK character carries about as much meaning as two Latin letters.
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def is_concrete(text: str, policy: PolicySettings) -> bool:
    """True when, with the vague phrases taken out, enough specific text remains."""
    rest = text.lower()
    # Longest phrases first, so "我要退款" goes before "退款".
    for phrase in sorted(policy.vague_phrases, key=len, reverse=True):
        rest = rest.replace(phrase.lower(), " ")
    rest = _NOISE.sub("", rest)
    return _weight(rest) >= policy.min_description_weight
