import re
from pathlib import Path

from dialogs.domain import CaseStatus, Reason
from dialogs.texts import LOCALES, Texts, catalog, pick_locale


def test_both_catalogs_have_the_same_messages_with_the_same_placeholders():
    zh, en = catalog("zh_CN"), catalog("en")
    assert set(zh) == set(en)
    for key in zh:
        assert set(re.findall(r"{(\w+)", zh[key])) == set(re.findall(r"{(\w+)", en[key])), key


def test_every_text_key_used_in_code_exists():
    source = "".join(p.read_text() for p in Path("dialogs").glob("*.py"))
    used = set(re.findall(r'(?:\bsay|\bself\.t|\bd\.t|\bbutton|\bTexts\(\w+\))\(\s*"([a-z_.]+)"', source))
    assert len(used) > 25
    dynamic_prefixes = {"reason.", "status.", "rule.", "verdict.", "verdict_short.", "hint.", "examples.",
                        "evidence_kinds.", "evidence_problem.", "next_steps.", "delivery.", "tag_note.", "cmd."}
    missing = {k for k in used if k not in catalog("en")}
    assert not missing
    for prefix in dynamic_prefixes:
        assert any(k.startswith(prefix) for k in catalog("en")), prefix
    for reason in Reason:
        for prefix in ("reason.", "examples.", "evidence_kinds."):
            assert prefix + reason.value in catalog("en")
    for status in CaseStatus:
        assert "status." + status.value in catalog("zh_CN")


def test_telegram_language_codes_pick_a_catalog():
    assert pick_locale("zh-hans", "en") == "zh_CN"
    assert pick_locale("en-US", "zh_CN") == "en"
    assert pick_locale("ru", "zh_CN") == "zh_CN"
    assert pick_locale(None, "en") == "en"
    assert set(LOCALES) == {"zh_CN", "en"}
    assert Texts("fr").locale == "zh_CN"


def test_money_words_say_exactly_what_happened() -> None:
    """approved → refund started → credited: no text claims the money is back before it is."""
    zh, en = Texts("zh_CN"), Texts("en")
    params = {"case_no": "R1", "amount": "¥50.00", "channel": "支付宝", "due": "2026-12-09"}
    for key in ("news.approved", "news.refunding"):
        assert not any(word in zh(key, **params) for word in ("已原路退回", "已退回", "已到账", "已退款")), key
        assert not any(word in en(key, **params) for word in ("has been refunded", "credited back", "is back")), key
    assert "发起退款" in zh("news.refunding", **params) and "started" in en("news.refunding", **params)
    assert "到账" in zh("news.refunded", **params) and "credited" in en("news.refunded", **params)


def test_every_product_kind_has_its_appeal_example_and_its_examples_for_the_shared_reasons():
    from dialogs.domain import ProductKind
    from dialogs.policy import RULE_IDS
    for locale in LOCALES:
        messages = catalog(locale)
        for kind in ProductKind:
            assert f"appeal_example.{kind.value}" in messages, (locale, kind)
            for reason in (Reason.NOT_AS_DESCRIBED, Reason.OTHER):
                assert f"examples.{reason.value}.{kind.value}" in messages, (locale, kind, reason)
        for rule in RULE_IDS:
            assert f"rule_title.{rule}" in messages, (locale, rule)
