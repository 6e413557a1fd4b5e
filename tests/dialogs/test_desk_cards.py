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
    actor_label,
    card_buttons,
    card_text,
    desk_token,
    names_wanted,
    person_label,
    quote_batch,
    topic_name,
)
from dialogs.desk.history import FILED, PHRASES, event_words
from dialogs.domain import Case, CaseStatus, DeskItem, Reason
from dialogs.ledger import Balance
from dialogs.lifecycle import TRIGGERS
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


def test_a_case_topic_leads_with_amount_and_reason_then_the_short_case_number() -> None:
    assert topic_name(item(), case(amount=Decimal("648.00")), {}, ZH) == "¥648 卡密无效 · R…0001"
    assert topic_name(item(), case(amount=Decimal("30.50")), {}, EN) == "¥30.50 Card code is invalid · R…0001"


class LongReasons(Texts):
    """The zh_CN catalog, with reason titles far longer than any real one."""

    def __call__(self, key: str, default: str | None = None, **kw: Any) -> str:
        return "很长的原因" * 40 if key.startswith("reason.") else super().__call__(key, default, **kw)


def test_a_topic_name_too_long_drops_the_case_number_then_shortens_the_reason_never_the_amount() -> None:
    name = topic_name(item(), case(amount=Decimal("99999999.99")), {}, LongReasons("zh_CN"))
    assert len(name) == 128 and name.startswith("¥99999999.99 很长的原因") and name.endswith("…")
    assert "R…0001" not in name


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
                     "· 11-24 10:30 客户 提交了退款单", "· 11-24 10:35 小周 开始审核：看一下兑换记录"):
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
    assert "⏳ 待主管确认：客服2号 申请退款 ¥800.00" in card_text(facts, DESK, ZH, TZ)
    rows = card_buttons(facts.item, facts.case, pending, ZH)
    assert rows[0][0].token == "dk.R20261124-0001.confirm"


def tokens(it: DeskItem, status: CaseStatus | None, pending: tuple[Decimal, int] | None = None) -> list[str]:
    c = case(status=status) if status else None
    return [b.token.rsplit(".", 1)[1] for row in card_buttons(it, c, pending, ZH) for b in row]


# What an unowned item's card offers in each status of its case (written out, not derived: the test of
# the derivation in cards.py).
BUTTONS_BY_STATUS = {
    C.SUBMITTED: ["take", "approve", "reject", "ask", "note"],
    C.IN_REVIEW: ["take", "approve", "reject", "ask", "note"],
    C.APPEALED: ["take", "approve", "reject", "note"],
    C.NEEDS_INFO: ["take", "note"],
    C.APPROVED: ["take", "note"],
    C.REFUNDING: ["take", "note"],
    C.REFUNDED: ["take", "note"],
    C.REFUND_FAILED: ["take", "note"],
    C.REJECTED: ["take", "note"],
    C.REJECTED_FINAL: ["take", "note"],
    C.WITHDRAWN: ["take", "note"],
    C.CLOSED: ["take", "note"],
}


def test_every_status_has_its_buttons_written_down() -> None:
    assert set(BUTTONS_BY_STATUS) == set(CaseStatus)


@pytest.mark.parametrize("status", list(CaseStatus))
def test_the_buttons_of_a_card_follow_its_cases_status(status: CaseStatus) -> None:
    assert tokens(item(), status) == BUTTONS_BY_STATUS[status]


@pytest.mark.parametrize("status", [C.SUBMITTED, C.IN_REVIEW, C.APPEALED])
def test_while_a_confirmation_is_pending_the_card_offers_confirm_and_no_decision(status: CaseStatus) -> None:
    pending = (Decimal("800.00"), 7001)
    assert tokens(item(), status, pending) == ["confirm", "take", "note"]
    assert tokens(item(owner_id=7001), status, pending) == ["confirm", "release", "note"]


def test_a_request_left_over_from_a_case_decided_since_offers_no_confirm() -> None:
    pending = (Decimal("800.00"), 7001)
    assert tokens(item(), C.WITHDRAWN, pending) == ["take", "note"]
    facts = CardFacts(item(), case(status=C.WITHDRAWN), make_order(), (), pending, {})
    assert "待主管确认" not in card_text(facts, DESK, ZH, TZ)


def test_an_owned_item_offers_release_instead_of_take() -> None:
    assert tokens(item(owner_id=7001), C.APPEALED) == ["release", "approve", "reject", "note"]


def test_a_request_without_a_case_offers_take_and_note_and_a_closed_item_nothing() -> None:
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
    source = "".join(Path(f).read_text() for f in ("dialogs/desk/cards.py", "dialogs/desk/history.py",
                                                      "dialogs/notify.py"))
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


# -- the history in words ------------------------------------------------------------------------------

def event(note: str = "", before: str | None = "in_review", after: str = "in_review",
          actor: str = "agent:7001") -> CaseEventRecord:
    return CaseEventRecord(at=AT, actor=actor, from_status=before, to_status=after, note=note)


@pytest.mark.parametrize(("record", "zh", "en"), [
    (event(before=None, after="submitted", actor="customer"), "客户 提交了退款单", "Customer filed the case"),
    (event("take"), "小周 接手", "小周 took it over"),
    (event("approve_request: 648.00"), "小周 申请通过 ¥648.00（待主管确认）",
     "小周 asked to approve ¥648.00 (awaiting a supervisor)"),
    (event("note: 客户很着急"), "小周 备注：客户很着急", "小周 noted: 客户很着急"),
    (event("release: owner was 7002"), "小周 交还，退款单回到队列", "小周 handed it back to the queue"),
    (event("idle_release: quiet for 21 min"), "小周 21 分钟未回复，退款单自动回到队列",
     "小周 was quiet for 21 min; back to the queue"),
    (event("macro: refund_eta"), "小周 发送快捷回复「refund_eta」", "小周 sent the macro “refund_eta”"),
    (event("退款 ¥30.00", after="approved"), "小周 审核通过：退款 ¥30.00", "小周 approved it: 退款 ¥30.00"),
    (event("auto-approved by rule CARD_DEFECT_IN_WINDOW", "submitted", "approved", "system"),
     "系统 按规则自动通过：CARD_DEFECT_IN_WINDOW", "System approved it by rule: CARD_DEFECT_IN_WINDOW"),
    (event("withdrawn by the customer", after="withdrawn", actor="customer"), "客户 撤回了退款申请",
     "Customer withdrew the request"),
    (event("no answer within 7 days", "needs_info", "closed", "system"), "系统 关闭退款单：客户逾期未补充材料",
     "System closed it: the customer sent nothing in time"),
    (event("", "refunding", "refunded", "gateway"), "退款通道 确认退款成功",
     "Refund gateway confirmed the refund went through"),
    (event("核实无误", after="approved", actor="cli:ops"), "ops（命令行） 审核通过：核实无误",
     "ops (CLI) approved it: 核实无误"),
])
def test_each_history_event_reads_as_who_did_what(record: CaseEventRecord, zh: str, en: str) -> None:
    assert event_words(record, actor_label(record.actor, DESK, ZH), ZH, 80) == zh
    assert event_words(record, actor_label(record.actor, DESK, EN), EN, 80) == en


def test_a_move_the_lifecycle_does_not_know_still_shows_its_statuses_and_note() -> None:
    record = event("手工修正", before="refunded", after="submitted", actor="system")
    assert event_words(record, "系统", ZH, 80) == "已退款 → 已提交 · 系统：手工修正"


def test_a_desk_action_without_words_shows_what_was_recorded() -> None:
    assert event_words(event("escalate: to finance"), "小周", ZH, 80) == "escalate: to finance · 小周"


def test_the_cards_history_names_no_raw_event() -> None:
    history = (event(before=None, after="submitted", actor="customer"), event("take"),
               event("approve_request: 648.00"))
    text = card_text(CardFacts(item(), case(status=C.IN_REVIEW), make_order(), history), DESK, ZH, TZ)
    assert text.endswith("历程：\n· 11-24 10:30 客户 提交了退款单\n· 11-24 10:30 小周 接手\n"
                         "· 11-24 10:30 小周 申请通过 ¥648.00（待主管确认）")
    assert "take" not in text and "approve_request" not in text


def recorded_desk_actions() -> set[str]:
    """Every action name the desk's code hands DeskBase._record (which writes it into a case's history)."""
    found: set[str] = set()
    for path in [*Path("dialogs").rglob("*.py"), *Path("bot").rglob("*.py")]:
        found |= set(re.findall(r'_record\(\s*uow,\s*[^,]+,\s*[^,]+,\s*"([a-z_]+)"', path.read_text()))
    return found


@pytest.mark.parametrize("locale", ["zh_CN", "en"])
def test_every_event_the_lifecycle_and_the_desk_can_record_has_words(locale: str) -> None:
    actions = recorded_desk_actions()
    assert {"take", "release", "note", "approve_request", "idle_release"} <= actions  # the scan finds them
    t = Texts(locale)
    for name in {FILED, *TRIGGERS, *actions}:
        assert name in PHRASES, f"{name} has no phrase in dialogs/desk/history.py PHRASES"
        words = t(PHRASES[name], actor="A", amount="¥1", text="x", minutes="5", macro="m")
        assert words.startswith("A ") and "{" not in words, (locale, name)


# -- one name per person -------------------------------------------------------------------------------

def test_an_agent_whose_telegram_name_is_their_alias_is_named_once() -> None:
    assert person_label("小周", "小周") == "小周"
    assert person_label("Agent Li", "agent  li") == "Agent Li"
    assert person_label("小周", "Zhou") == "小周 (Zhou)"
    assert person_label("小周", "") == "小周"


def test_the_cards_owner_line_names_an_agent_whose_name_is_their_alias_once() -> None:
    facts = CardFacts(item(owner_id=7001), case(status=C.IN_REVIEW), make_order(), (), None, {7001: "小周"})
    text = card_text(facts, DESK, ZH, TZ)
    assert "处理人：小周（7001）" in text and "小周 ·" not in text
