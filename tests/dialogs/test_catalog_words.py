"""The customer's catalog read as the customer reads it: 您 (never 你), 退款单 (never 工单), rules by their
title and never by their id. Customer-facing: every .po whose name does not start with "desk", plus the
desk.customer_* ids of desk.po (what the bot says to a customer during a takeover)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

import dialogs.texts
from dialogs.policy import RULE_IDS
from dialogs.settings import PolicySettings
from dialogs.texts import LOCALES, Texts
from dialogs.words import rule_title

LOCALE_DIR = Path(dialogs.texts.__file__).parent / "locale"
RULE_ID_SHAPE = re.compile(r"[A-Z]+_[A-Z_]+")


def customer_messages(locale: str) -> dict[str, str]:
    """id -> template of every customer-facing message of the locale."""
    found: dict[str, str] = {}
    for path in sorted((LOCALE_DIR / locale / "LC_MESSAGES").glob("*.po")):
        with open(path, "rb") as fh:
            cat = read_po(fh, locale=locale)
        for m in cat:
            key = str(m.id)
            if m.id and m.string and (not path.name.startswith("desk") or key.startswith("desk.customer_")):
                found[key] = str(m.string)
    return found


def test_the_customer_catalog_is_read_whole() -> None:
    zh = customer_messages("zh_CN")
    # refundbot.po, words.po and the takeover texts of desk.po; none of the agents' own texts.
    assert {"ask_order", "rule_title.CARD_DEFECT_IN_WINDOW", "desk.customer_joined"} <= set(zh)
    assert not any(k.startswith(("dk.", "desk.help")) for k in zh)


def test_no_chinese_customer_message_says_你() -> None:
    said = {k: v for k, v in customer_messages("zh_CN").items() if "你" in v}
    assert not said, f"say 您 to customers: {said}"


def test_no_chinese_customer_message_says_工单() -> None:
    said = {k: v for k, v in customer_messages("zh_CN").items() if "工单" in v}
    assert not said, f"customers have 退款单: {said}"


@pytest.mark.parametrize("locale", LOCALES)
def test_no_customer_message_shows_a_rule_id(locale: str) -> None:
    for key, template in customer_messages(locale).items():
        assert not [r for r in RULE_IDS if r in template], key
        assert not RULE_ID_SHAPE.search(template), (key, template)


@pytest.mark.parametrize("locale", LOCALES)
def test_no_customer_template_takes_a_rule_id_placeholder(locale: str) -> None:
    for key, template in customer_messages(locale).items():
        assert not re.search(r"{rule(_id)?[}!:]", template), key


@pytest.mark.parametrize("locale", LOCALES)
def test_every_rule_has_a_plain_title_naming_the_configured_window(locale: str) -> None:
    t = Texts(locale)
    for rule in RULE_IDS:
        title = rule_title(t, rule, PolicySettings(card_claim_window_hours=48))
        assert title and rule not in title and "{" not in title
    assert "48" in rule_title(t, "CARD_DEFECT_IN_WINDOW", PolicySettings(card_claim_window_hours=48))
    assert "24" in rule_title(t, "CARD_DEFECT_IN_WINDOW", PolicySettings())
