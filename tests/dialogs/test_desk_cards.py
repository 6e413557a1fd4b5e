"""The desk card, its topic name and buttons, and quoted batches: pure rendering, both locales."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dialogs.desk.cards import (
    CardFacts,
    card_buttons,
    card_text,
    desk_token,
    names_wanted,
    quote_batch,
    topic_name,
)
from dialogs.domain import Case, CaseStatus, DeskItem, Reason
from dialogs.ledger import Balance
from dialogs.ports import CaseEventRecord
from dialogs.settings import DeskSettings
from dialogs.texts import Texts, catalog
from tests.storage.factories import make_case, make_evidence, make_order

C = CaseStatus
AT = datetime(2026, 11, 24, 2, 30, tzinfo=UTC)  # 10:30 in Shanghai
DESK = DeskSettings(chat_id=-100500, agents=(7001, 7002), supervisors=(7009,), aliases={7001: "小周"})
ZH, EN = Texts("zh_CN"), Texts("en")
TZ = "Asia/Shanghai"


def item(**changes: Any) -> DeskItem:
    return replace(DeskItem(key="R20261124-0001", chat_id=424242, user_id=424242, opened_at=AT,
                            case_no="R20261124-0001"), **changes)


def case(**changes: Any) -> Case:
    base = make_case(locale="zh_CN", amount=Decimal("50.00"), rule_id="CARD_DEFECT_IN_WINDOW",
                     description="卡密输入后提示无效，截图已上传", review_due=date(2026, 11, 27),
                     evidence=(make_evidence("A1"), make_evidence("A2")))
    return replace(base, **changes)


HISTORY = (
    CaseEventRecord(at=AT, actor="customer:424242", from_status=None, to_status="submitted"),
    CaseEventRecord(at=AT + timedelta(minutes=5), actor="agent:7001", from_status="submitted",
                    to_status="in_review", note="看一下兑换记录"),
)


def test_a_case_topic_is_named_by_number_reason_and_amount() -> None:
    assert topic_name(item(), case(), {}, ZH) == "R20261124-0001 · 卡密无效 · ¥50.00"
    assert topic_name(item(), case(), {}, EN).startswith("R20261124-0001 · ")


def test_a_request_topic_names_the_customer_or_their_chat_id() -> None:
    request = item(key="chat:424242", case_no=None)
    assert topic_name(request, None, {424242: "张三"}, ZH) == "客服请求 · 张三"
    assert topic_name(request, None, {}, ZH) == "客服请求 · 424242"
    assert topic_name(request, None, {424242: "x" * 300}, ZH).endswith("…")
    assert len(topic_name(request, None, {424242: "x" * 300}, ZH)) == 128


def test_the_card_holds_what_an_agent_needs_to_decide() -> None:
    order = make_order(product_name="Steam 充值卡 50 元", amount=Decimal("50.00"), card_redeemed=False)
    facts = CardFacts(item(owner_id=7001), case(status=C.IN_REVIEW), order, HISTORY, None, {424242: "张三", 7001: "Zhou"})
    text = card_text(facts, DESK, ZH, TZ)
    for expected in ("R20261124-0001 · 审核中", "订单：A1001 · Steam 充值卡 50 元（卡密）", "支付：¥50.00 · 支付宝 · 2026-11-24 10:30",
                     "卡密未兑换", "客户：张三（ID 424242 · 中文）", "原因：卡密无效 · 申请退款 ¥50.00",
                     "描述：卡密输入后提示无效，截图已上传", "（规则 CARD_DEFECT_IN_WINDOW）", "证据：2 个文件",
                     "审核截止：2026-11-27", "处理人：小周（Zhou · 7001）", "历程：",
                     "· 11-24 10:30 已提交 · 客户", "· 11-24 10:35 已提交 → 审核中 · 小周：看一下兑换记录"):
        assert expected in text, expected


def test_the_card_in_english() -> None:
    facts = CardFacts(item(), case(status=C.IN_REVIEW, locale="en"), make_order(), HISTORY, None, {})
    text = card_text(facts, DESK, EN, TZ)
    assert "Customer: 424242 (ID 424242 · English)" in text and "Owner: nobody yet" in text
    assert "Policy: " in text and "(rule CARD_DEFECT_IN_WINDOW)" in text


def test_an_unknown_order_and_a_missing_description_still_make_a_card() -> None:
    text = card_text(CardFacts(item(), case(description="  ", evidence=()), None, (), None, None), DESK, ZH, TZ)
    assert "（无订单数据）" in text and "描述" not in text and "证据：无" in text


def test_a_waiting_approval_shows_with_a_confirm_button() -> None:
    pending = (Decimal("800.00"), 7002)
    facts = CardFacts(item(owner_id=7002), case(status=C.IN_REVIEW), make_order(), (), pending, {})
    assert "⏳ 待主管确认：批准 ¥800.00（客服2号 提出）" in card_text(facts, DESK, ZH, TZ)
    rows = card_buttons(facts.item, facts.case, pending, ZH)
    assert rows[0][0].token == "dk.R20261124-0001.confirm"


def test_buttons_follow_the_item_and_the_case() -> None:
    def tokens(it: DeskItem, status: CaseStatus | None) -> list[str]:
        c = case(status=status) if status else None
        return [b.token.rsplit(".", 1)[1] for row in card_buttons(it, c, None, ZH) for b in row]

    assert tokens(item(), C.IN_REVIEW) == ["take", "approve", "reject", "ask", "note"]
    assert tokens(item(owner_id=7001), C.APPEALED) == ["release", "approve", "reject", "note"]
    assert tokens(item(), C.NEEDS_INFO) == ["take", "note"]
    assert tokens(item(key="chat:424242", case_no=None), None) == ["take", "note"]
    assert tokens(item(closed_at=AT), C.REFUNDING) == []


def test_a_closed_item_shows_its_outcome_and_no_owner() -> None:
    facts = CardFacts(item(closed_at=AT + timedelta(hours=1), owner_id=None), case(status=C.REFUNDING),
                      make_order(), HISTORY, None, {})
    text = card_text(facts, DESK, ZH, TZ)
    assert "✅ 已移出工作台（2026-11-24 11:30），当前状态：退款处理中" in text
    assert "处理人" not in text and "审核截止" not in text


def test_a_long_history_loses_its_oldest_lines_and_the_card_fits_a_message() -> None:
    events = [CaseEventRecord(at=AT, actor="agent:7001", from_status="in_review", to_status="needs_info",
                              note="请补充截图" * 30)] * 200
    text = card_text(CardFacts(item(), case(description="长" * 600), make_order(), events, None, {}), DESK, ZH, TZ)
    assert len(text) <= 4096 and "历程：" in text


def test_callback_data_fits_telegrams_64_bytes() -> None:
    assert len(desk_token("chat:-1001234567890", "release").encode()) <= 64
    assert len(desk_token("R20261124-0001", "confirm").encode()) <= 64


def test_names_wanted_are_the_customer_and_the_owner_not_yet_known() -> None:
    assert names_wanted(item(owner_id=7001), {}) == (424242, 7001)
    assert names_wanted(item(owner_id=7001), {424242: "", 7001: "Zhou"}) == ()


def test_a_quoted_batch_keeps_order_and_marks_edits() -> None:
    text = quote_batch([("第一条", False), ("第二条\n两行", True)], ZH)
    assert text.splitlines() == ["💬 客户连续发来 2 条消息：", "▪ 第一条", "▪ 第二条", "   两行（已编辑）"]


@pytest.mark.parametrize("locale", ["zh_CN", "en"])
def test_every_desk_card_text_exists(locale: str) -> None:
    source = Path("dialogs/desk/cards.py").read_text() + Path("dialogs/notify.py").read_text()
    used = set(re.findall(r'"(dk\.[a-z_.]+)"', source))
    prefixes = set(re.findall(r'f"(dk\.[a-z_]+\.)\{', source))
    assert used and prefixes
    assert used <= set(catalog(locale))
    for prefix in prefixes:
        assert any(key.startswith(prefix) for key in catalog(locale)), prefix


def test_the_card_shows_the_orders_other_cases_and_what_is_left_to_refund() -> None:


    earlier = case(case_no="R20261120-0003", reason=Reason.CARD_USED, status=C.REFUNDED)
    facts = CardFacts(item(), case(amount=Decimal("30.00")), make_order(amount=Decimal("50.00")), HISTORY,
                      balance=Balance(Decimal("50.00"), Decimal("20.00"), Decimal("0.00")),
                      siblings=((earlier, Decimal("20.00")),))
    zh = card_text(facts, DESK, ZH, TZ)
    assert "本订单已退 ¥20.00 · 退款中 ¥0.00 · 可退余额 ¥30.00" in zh
    assert "R20261120-0003" in zh and "已退 ¥20.00" in zh
    assert "left ¥30.00" in card_text(facts, DESK, EN, TZ)


def test_a_card_of_an_untouched_order_adds_no_ledger_lines() -> None:


    facts = CardFacts(item(), case(), make_order(), HISTORY, balance=Balance(Decimal("50.00"), Decimal(0), Decimal(0)))
    assert "可退余额" not in card_text(facts, DESK, ZH, TZ)
