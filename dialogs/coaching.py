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


# What a vague phrase says about the customer, so the coaching answers that (catalog: coach.<kind>).
# A configured phrase not listed here gets the general coaching (coach_description).
_PHRASE_KINDS = {
    "不满意": "unsatisfied", "not satisfied": "unsatisfied", "unhappy": "unsatisfied",
    "商品不好": "bad_product", "不好": "bad_product", "太差": "bad_product", "垃圾": "bad_product",
    "差评": "bad_product", "bad": "bad_product", "not good": "bad_product", "terrible": "bad_product",
    "useless": "bad_product",
    "不行": "not_working", "有问题": "not_working", "problem": "not_working", "doesn't work": "not_working",
    "does not work": "not_working", "not working": "not_working", "broken": "not_working",
    "退款": "refund", "我要退款": "refund", "refund": "refund", "i want a refund": "refund",
    "不想要了": "unwanted",
}


def coaching_key(text: str, policy: PolicySettings) -> str:
    """The catalog id of the coaching for a vague description: the one for its most specific (longest)
    vague phrase, or the general one."""
    lowered = text.lower()
    for phrase in sorted(policy.vague_phrases, key=len, reverse=True):
        if phrase.lower() in lowered:
            kind = _PHRASE_KINDS.get(phrase.lower())
            return f"coach.{kind}" if kind else "coach_description"
    return "coach_description"
