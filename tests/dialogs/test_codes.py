"""The delivered 卡密 on a case: masked for the customer, whole for an agent who asks (and the history
says who), refused to anyone else. On the in-memory unit of work, through RefundService.handle like the
other desk tests (tests/dialogs/test_desk.py); tests/e2e/test_card_codes.py adds Telegram and the relay."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from dialogs import codes
from dialogs.desk import desk_token
from dialogs.desk.cards import CardFacts, card_buttons
from dialogs.desk.cards import card_text as desk_card_text
from dialogs.desk.history import event_words
from dialogs.domain import DeskItem, ProductKind
from dialogs.notify import card_text
from dialogs.ports import CaseEventRecord
from dialogs.proof import mask_code
from dialogs.service import RefundService
from dialogs.texts import Texts
from tests.dialogs.test_desk import (
    AGENT,
    CASE,
    DESK,
    DESK_SETTINGS,
    SETTINGS,
    STRANGER,
    SUPER,
    Clock,
    audit,
    cmd,
    outbox,
    press,
    put_case,
)
from tests.fakes import FakeDatabase
from tests.storage.factories import T0, make_case, make_order

CODES = ("STEAM-7H3K-9QX2-ABCD", "STEAM-1Z8Y-4PL0-WXYZ")
ZH, EN = Texts("zh_CN"), Texts("en")


@pytest.fixture
def service(database: FakeDatabase) -> RefundService:
    return RefundService(database.uow, SETTINGS, clock=Clock())


async def events_of(database: FakeDatabase) -> list[tuple[str, str]]:
    return [(e.actor, e.note) for e in database.tables.case_events if e.case_no == CASE]


# -- what the case keeps, and what a customer sees ---------------------------------------------------
def test_a_case_keeps_the_codes_of_card_orders_only() -> None:
    assert codes.snapshot(make_order(delivered_codes=(" AB12CD34 ", "", "EF56GH78"))) == ("AB12CD34", "EF56GH78")
    assert codes.snapshot(make_order(delivered_codes=CODES, product_kind=ProductKind.DIRECT_TOPUP)) == ()
    assert codes.snapshot(make_order()) == ()
    assert codes.snapshot(None) == ()


@pytest.mark.parametrize("t", [ZH, EN], ids=["zh_CN", "en"])
def test_the_customer_reads_masked_codes_and_never_a_whole_one(t: Texts) -> None:
    line = codes.masked_line(t, CODES)
    assert mask_code(CODES[0]) in line and mask_code(CODES[1]) in line
    assert not any(code in line for code in CODES)
    assert codes.masked_line(t, ()) == ""
    many = tuple(f"CODE-{n:04d}-XYZW" for n in range(12))
    assert "…" in codes.masked_line(t, many) and "12" in codes.masked_line(t, many)


def test_the_status_card_shows_the_cases_codes_masked() -> None:
    case = make_case(CASE, delivered_codes=CODES, locale="zh_CN")
    text = card_text(case, make_order(delivered_codes=("CHANGED-LATER-0000",)), ZH)
    assert mask_code(CODES[0]) in text and "卡密：" in text
    assert not any(code in text for code in CODES) and "CHANGED" not in text  # the snapshot, not today's order
    assert "卡密：" not in card_text(make_case(CASE, locale="zh_CN"), make_order(), ZH)


def test_neither_an_order_nor_a_case_prints_its_codes() -> None:
    # A logged Order or Case (an exception's message, a debug line) carries no code.
    assert not any(code in repr(make_order(delivered_codes=CODES)) for code in CODES)
    assert not any(code in repr(make_case(CASE, delivered_codes=CODES)) for code in CODES)


# -- the desk ---------------------------------------------------------------------------------------
def test_the_card_offers_show_codes_only_on_a_case_with_codes() -> None:
    item = DeskItem(key=CASE, chat_id=1, user_id=1, opened_at=T0, case_no=CASE)
    with_codes = [b.token for row in card_buttons(item, make_case(CASE, delivered_codes=CODES), None, ZH) for b in row]
    assert desk_token(CASE, "codes") in with_codes
    without = [b.token for row in card_buttons(item, make_case(CASE), None, ZH) for b in row]
    assert desk_token(CASE, "codes") not in without


def test_the_desk_card_shows_the_codes_masked_beside_its_button() -> None:
    item = DeskItem(key=CASE, chat_id=1, user_id=1, opened_at=T0, case_no=CASE)
    text = desk_card_text(CardFacts(item, make_case(CASE, delivered_codes=CODES), make_order()), DESK_SETTINGS, ZH,
                          "Asia/Shanghai")
    assert mask_code(CODES[0]) in text and not any(code in text for code in CODES)


async def test_show_codes_posts_them_in_the_topic_and_the_history_says_who_looked(
        service: RefundService, database: FakeDatabase) -> None:
    await put_case(database, delivered_codes=CODES)
    shown = await service.handle(press(AGENT, "codes"))
    assert shown.toast == ZH("dk.codes.posted")
    [(_, chat, posted)] = await outbox(database, "desk_text")
    assert chat == DESK and posted["key"] == CASE and posted["text_key"] == "dk.codes.shown"
    text = ZH("dk.codes.shown", **posted["params"])
    assert all(code in text for code in CODES) and "小王" in text
    assert (f"agent:{AGENT}", "codes") in await events_of(database)
    assert (AGENT, "codes", True) in await audit(database)
    assert (DESK, {"key": CASE}) in [(c, p) for _, c, p in await outbox(database, "desk_card")]
    assert not await outbox(database, "customer_text", "case_news")  # the customer is told nothing


async def test_a_supervisor_may_look_too_and_a_command_in_the_topic_works_like_the_button(
        service: RefundService, database: FakeDatabase) -> None:
    await put_case(database, delivered_codes=CODES)
    await service.handle(cmd(SUPER, "codes"))
    assert [p["text_key"] for _, _, p in await outbox(database, "desk_text")] == ["dk.codes.shown"]
    assert (f"agent:{SUPER}", "codes") in await events_of(database)


async def test_a_forged_show_codes_press_by_a_stranger_is_refused_and_changes_nothing(
        service: RefundService, database: FakeDatabase) -> None:
    await put_case(database, delivered_codes=CODES)
    before = await events_of(database)
    shown = await service.handle(press(STRANGER, "codes"))
    assert shown.toast == ZH("desk.refused")
    await service.handle(press(STRANGER, "codes", chat=STRANGER))  # from a private chat: the same
    assert await events_of(database) == before
    assert await audit(database) == [(STRANGER, "codes", False), (STRANGER, "codes", False)]
    queued: list[Any] = await outbox(database)
    assert not any(code in repr(row) for row in queued for code in CODES)
    assert not await outbox(database, "desk_card")


async def test_a_case_without_codes_says_so_and_records_nothing(
        service: RefundService, database: FakeDatabase) -> None:
    await put_case(database)
    shown = await service.handle(press(AGENT, "codes"))
    assert shown.toast == ZH("dk.codes.none", case=CASE)
    assert (f"agent:{AGENT}", "codes") not in await events_of(database)
    assert not await outbox(database, "desk_text")


@pytest.mark.parametrize("t", [ZH, EN], ids=["zh_CN", "en"])
def test_the_history_says_who_viewed_the_codes(t: Texts) -> None:
    event = CaseEventRecord(at=T0, actor=f"agent:{AGENT}", from_status="in_review", to_status="in_review",
                            note="codes")
    words = event_words(event, "小李", t, 80)
    assert words == ("小李 查看了卡密" if t.locale == "zh_CN" else "小李 viewed the card codes")
    cli = replace(event, note="codes_cli")
    assert event_words(cli, "小李", t, 80).startswith("小李 ")
