"""The agents' desk: who may do what, and what each decision does to the case, on the in-memory unit
of work (tests.fakes). The desk is driven through `RefundService.handle` with the events the adapter
builds, so routing is covered too; tests/e2e/test_desk_actions.py adds Telegram and the relay, and
tests/storage/test_desk_races.py the races that only a real database's locks decide."""

from __future__ import annotations

import itertools
import re
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dialogs.cases import CaseWorkflow
from dialogs.desk import (
    TAKEOVER,
    DeskService,
    desk_token,
    parse_amount,
    parse_token,
    refusal,
)
from dialogs.domain import CaseStatus, DeskItem, Reason, RefundStatus
from dialogs.io import Event, EventKind, Outcome
from dialogs.ledger import ExceedsRefundable
from dialogs.service import RefundService
from dialogs.settings import CoreSettings, DeskSettings
from dialogs.texts import Texts, catalog
from dialogs.workdays import WorkingCalendar
from tests.fakes import FakeDatabase
from tests.storage.factories import T0, make_case, make_order

WORKFLOW = CaseWorkflow(CoreSettings(), WorkingCalendar())
ZH = Texts("zh_CN")

DESK = -1001000000001
TOPIC = 77
AGENT, AGENT2, SUPER, SUPER2, STRANGER = 501, 502, 601, 602, 999
CUSTOMER = 424242  # make_case's chat and user
CASE = "R20261124-0001"
DESK_SETTINGS = DeskSettings(chat_id=DESK, agents=(AGENT, AGENT2), supervisors=(SUPER, SUPER2),
                             confirm_above=Decimal(80), aliases={AGENT: "小王"})
SETTINGS = CoreSettings(desk=DESK_SETTINGS)
_updates = itertools.count(1000)


# -- the pure rules --------------------------------------------------------------------------------
def test_desk_tokens_round_trip_and_anything_else_is_not_one() -> None:
    assert parse_token(desk_token(CASE, "take")) == (CASE, "take")
    assert parse_token(desk_token("chat:-100123", "release")) == ("chat:-100123", "release")
    assert parse_token(desk_token(CASE, "rj.no_proof")) == (CASE, "rj.no_proof")
    for token in ("c.R1.withdraw", "dk.R1.explode", "dk..take", "dk.R1.rj.", "abc.go", "dk.R1"):
        assert parse_token(token) is None, token
    assert len(desk_token("chat:-1001234567890", "rj.credited").encode()) <= 64


def test_only_agents_act_supervisors_confirm_and_never_their_own_approval() -> None:
    item = DeskItem(key=CASE, chat_id=1, user_id=1, opened_at=T0, case_no=CASE)
    assert refusal(DESK_SETTINGS, STRANGER, "take", item) is not None
    assert refusal(DESK_SETTINGS, STRANGER, "note", None) is not None
    assert refusal(DESK_SETTINGS, AGENT, "take", item) is None
    assert refusal(DESK_SETTINGS, SUPER, "approve", item) is None  # supervisors are agents
    no = refusal(DESK_SETTINGS, AGENT, "confirm", item, (Decimal(100), AGENT2))
    assert no is not None and no.text_key == "desk.refused_not_supervisor"
    no = refusal(DESK_SETTINGS, SUPER, "confirm", item, (Decimal(100), SUPER))
    assert no is not None and no.text_key == "desk.refused_same_person"
    assert refusal(DESK_SETTINGS, SUPER2, "confirm", item, (Decimal(100), SUPER)) is None


def test_someone_elses_takeover_is_released_or_decided_by_its_owner_or_a_supervisor() -> None:
    item = DeskItem(key=CASE, chat_id=1, user_id=1, opened_at=T0, case_no=CASE, owner_id=AGENT)
    for action in ("release", "approve", "reject", "rj.no_proof", "ask", "close"):
        no = refusal(DESK_SETTINGS, AGENT2, action, item)
        assert no is not None and no.text_key == "desk.refused_owned", action
        assert refusal(DESK_SETTINGS, AGENT, action, item) is None
        assert refusal(DESK_SETTINGS, SUPER, action, item) is None
    assert refusal(DESK_SETTINGS, AGENT2, "note", item) is None  # notes are for everyone on the desk


def test_amounts_are_positive_with_at_most_two_decimals_and_never_above_what_was_paid() -> None:
    assert parse_amount("30") == Decimal(30)
    assert parse_amount("¥30.50") == Decimal("30.50")
    assert parse_amount("1,000.5") == Decimal("1000.5")
    for bad in ("abc", "-5", "30.123", "", "1e3"):
        assert parse_amount(bad) is None, bad


def test_every_desk_text_exists_in_both_catalogs_with_the_same_placeholders() -> None:
    source = "".join(path.read_text() for path in sorted(Path("dialogs/desk").glob("*.py")))
    used = set(re.findall(r'"(desk\.[a-z_]+)"', source))
    assert len(used) > 40
    for locale in ("zh_CN", "en"):
        assert not used - set(catalog(locale)), locale
    for key in used:
        zh, en = catalog("zh_CN")[key], catalog("en")[key]
        assert set(re.findall(r"{(\w+)", zh)) == set(re.findall(r"{(\w+)", en)), key
        # Texts(locale)(key, **params) takes its own `key` and `default`: never placeholders.
        assert not {"key", "default"} & set(re.findall(r"{(\w+)", en)), key


# -- the desk on the fake database -----------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def ev(user: int, kind: EventKind = EventKind.TEXT, text: str = "", args: str = "", *, chat: int = DESK,
       thread: int | None = TOPIC, message_id: int | None = None, **more: Any) -> Event:
    update_id = next(_updates)
    return Event(update_id=update_id, chat_id=chat, user_id=user, kind=kind, at=T0, text=text, args=args,
                 user_name=f"user{user}", message_id=message_id or update_id, private=chat > 0,
                 thread_id=None if chat > 0 else thread, **more)


def cmd(user: int, name: str, args: str = "", **kw: Any) -> Event:
    return ev(user, EventKind.COMMAND, name, args, **kw)


def press(user: int, action: str, key: str = CASE, **kw: Any) -> Event:
    return ev(user, EventKind.BUTTON, desk_token(key, action), **kw)


def customer(kind: EventKind = EventKind.TEXT, text: str = "", **kw: Any) -> Event:
    return ev(CUSTOMER, kind, text, chat=CUSTOMER, **kw)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(database: FakeDatabase, clock: Clock) -> RefundService:
    return RefundService(database.uow, SETTINGS, clock=clock)


async def put_case(database: FakeDatabase, status: CaseStatus = CaseStatus.IN_REVIEW, case_no: str = CASE,
                   order_no: str = "A1001", **changes: Any) -> None:
    async with database.uow() as uow:
        if await uow.orders.get(order_no) is None:
            await uow.orders.upsert(make_order(order_no))
        await uow.cases.add(make_case(case_no, order_no, status=status, locale="zh_CN", **changes))
        await uow.desk.open(DeskItem(key=case_no, chat_id=CUSTOMER, user_id=CUSTOMER, opened_at=T0, case_no=case_no))
        await uow.desk.set_topic(case_no, thread_id=TOPIC, card_message_id=TOPIC + 1)
        await uow.commit()


@pytest.fixture
async def case(database: FakeDatabase) -> str:
    await put_case(database)
    return CASE


async def outbox(database: FakeDatabase, *kinds: str) -> list[tuple[str, int | None, dict[str, Any]]]:
    return [(r.kind, r.chat_id, r.payload) for r in database.outbox_rows(*kinds)]


async def texts_queued(database: FakeDatabase, kind: str = "desk_text") -> list[str]:
    return [p["text_key"] for k, _, p in await outbox(database, kind)]


async def audit(database: FakeDatabase) -> list[tuple[int, str, bool]]:
    return [(r.actor_id, r.action, r.allowed) for r in database.tables.audit]


async def item_of(database: FakeDatabase, key: str = CASE) -> DeskItem:
    async with database.uow() as uow:
        item = await uow.desk.get(key)
    assert item is not None
    return item


async def status_of(database: FakeDatabase, case_no: str = CASE) -> CaseStatus:
    async with database.uow() as uow:
        case = await uow.cases.get(case_no)
    assert case is not None
    return case.status


async def flag_of(database: FakeDatabase, chat_id: int = CUSTOMER) -> Any:
    async with database.uow() as uow:
        conv = await uow.conversations.load(chat_id)
    return conv.data.get(TAKEOVER) if conv else None


async def take(service: RefundService, user: int = AGENT, key: str = CASE) -> Outcome:
    return await service.handle(press(user, "take", key))


async def test_a_strangers_buttons_and_commands_change_nothing_and_are_recorded(
        service: RefundService, database: FakeDatabase, case: str) -> None:
    shown = await service.handle(press(STRANGER, "take"))
    assert shown.toast == ZH("desk.refused")
    await service.handle(cmd(STRANGER, "approve"))
    await service.handle(cmd(STRANGER, "approve", "1"))  # a second refusal in the topic: no second message
    await service.handle(cmd(STRANGER, "queue", thread=None))
    assert (await item_of(database)).owner_id is None
    assert await status_of(database) is CaseStatus.IN_REVIEW
    assert await audit(database) == [(STRANGER, "take", False), (STRANGER, "approve", False),
                                     (STRANGER, "approve", False), (STRANGER, "queue", False)]
    async with database.uow() as uow:
        assert await uow.desk.refused_attempts(STRANGER) == 4
    assert await texts_queued(database) == ["desk.refused"]
    assert not await outbox(database, "desk_card", "customer_text", "case_news")


async def test_a_stranger_learns_nothing_about_items_that_do_not_exist(service: RefundService, database: FakeDatabase
                                                                       ) -> None:
    shown = await service.handle(press(STRANGER, "take", "R20990101-0001"))
    assert shown.toast == ZH("desk.refused")
    shown = await service.handle(press(AGENT, "take", "R20990101-0001"))
    assert shown.toast == ZH("desk.unknown_item", case="R20990101-0001")


async def test_take_owns_the_item_starts_the_review_and_tells_the_customer_by_alias(
        service: RefundService, database: FakeDatabase) -> None:
    await put_case(database, CaseStatus.SUBMITTED)
    shown = await take(service)
    assert shown.toast == ZH("desk.you_took", case=CASE)
    item = await item_of(database)
    assert item.owner_id == AGENT and item.owner_since == T0
    assert await status_of(database) is CaseStatus.IN_REVIEW
    assert await flag_of(database) == CASE
    [(_, chat, joined)] = await outbox(database, "customer_text")
    assert chat == CUSTOMER
    assert joined == {"text_key": "desk.customer_joined", "params": {"alias": "小王"}, "locale": "zh_CN"}
    [(_, chat, took)] = await outbox(database, "desk_text")
    assert chat == DESK and took["key"] == CASE and took["params"]["agent"] == "小王 (user501)"
    assert (DESK, {"key": CASE}) in [(c, p) for _, c, p in await outbox(database, "desk_card")]
    assert (AGENT, "take", True) in await audit(database)


async def test_a_second_take_is_told_who_has_it(service: RefundService, database: FakeDatabase, case: str) -> None:
    await service.handle(cmd(AGENT, "take"))  # typed in the topic: "小王 took over" there says it all
    assert await texts_queued(database) == ["desk.took"]
    shown = await take(service, AGENT2)
    assert shown.toast == ZH("desk.taken_by", case=CASE, owner="小王")
    assert (await item_of(database)).owner_id == AGENT
    assert (await take(service, AGENT)).toast == ZH("desk.already_yours", case=CASE)


async def test_take_by_command_names_the_case_anywhere_or_takes_the_topics_own(
        service: RefundService, database: FakeDatabase, case: str) -> None:
    shown = await service.handle(cmd(AGENT, "take", CASE, chat=AGENT))  # a private chat with the bot
    assert shown.replies[0].text == ZH("desk.you_took", case=CASE)
    await service.handle(cmd(AGENT, "release", CASE, chat=AGENT))
    await service.handle(cmd(AGENT2, "take"))  # in the case's topic
    assert (await item_of(database)).owner_id == AGENT2
    shown = await service.handle(cmd(AGENT, "take", thread=None))  # General, no case named
    assert shown.replies[0].text == ZH("desk.need_item", command="take")


async def test_the_owners_messages_in_the_topic_go_to_the_customer_and_nobody_elses(
        service: RefundService, database: FakeDatabase, case: str) -> None:
    await take(service)
    await service.handle(ev(AGENT, text="您好，我来看一下", message_id=901))
    await service.handle(ev(AGENT, EventKind.PHOTO, message_id=902))
    await service.handle(ev(AGENT2, text="内部讨论：这单像是已兑换", message_id=903))
    await service.handle(cmd(AGENT, "note", "客户语气急"))
    copies = await outbox(database, "desk_copy")
    assert [(c, p["direction"], p["message_id"]) for _, c, p in copies] == [
        (CUSTOMER, "to_customer", 901), (CUSTOMER, "to_customer", 902)]
    async with database.uow() as uow:
        link = await uow.desk.find_link(DESK, 901, "to_customer")
        assert link is not None and link.copy_chat_id == CUSTOMER and link.key == CASE
        assert await uow.desk.find_link(DESK, 903, "to_customer") is None


async def test_a_repeated_update_copies_nothing_twice(service: RefundService, database: FakeDatabase, case: str) -> None:
    await take(service)
    said = ev(AGENT, text="hello", message_id=901)
    await service.handle(said)
    assert (await service.handle(said)).duplicate
    await service.handle(replace(said, update_id=next(_updates)))  # the same message under a new id
    assert len(await outbox(database, "desk_copy")) == 1


async def test_while_taken_over_the_customers_messages_go_to_the_topic_and_the_bot_is_quiet(
        service: RefundService, database: FakeDatabase, case: str) -> None:
    await take(service)
    for event in (customer(text="卡密输进去提示无效", message_id=11), customer(EventKind.PHOTO, message_id=12),
                  customer(EventKind.DOCUMENT, message_id=13), customer(EventKind.OTHER, message_id=14),
                  customer(EventKind.COMMAND, "refund", message_id=15)):
        shown = await service.handle(event)
        assert shown.replies == () and shown.toast is None
    copies = await outbox(database, "desk_copy")
    assert [(c, p["direction"], p["from_chat_id"], p["message_id"]) for _, c, p in copies] == [
        (DESK, "to_desk", CUSTOMER, m) for m in (11, 12, 13, 14, 15)]
    assert [p.get("text") for _, _, p in copies] == ["卡密输进去提示无效", None, None, None, None]
    status = await service.handle(customer(EventKind.COMMAND, "status"))
    assert status.replies and CASE in "".join(r.text for r in status.replies)
    pressed = await service.handle(customer(EventKind.BUTTON, "c.R20261124-0001.withdraw"))
    assert pressed.toast == ZH("desk.customer_with_agent", alias="小王")
    assert await status_of(database) is CaseStatus.IN_REVIEW


async def test_cancel_by_the_customer_ends_the_takeover_and_the_bot_answers_again(
        service: RefundService, database: FakeDatabase, case: str) -> None:
    await take(service)
    shown = await service.handle(customer(EventKind.COMMAND, "cancel"))
    assert [r.text for r in shown.replies] == [ZH("desk.customer_back", alias="小王")]
    item = await item_of(database)
    assert item.owner_id is None and item.closed_at is None  # still in the queue
    assert await flag_of(database) is None
    assert "desk.customer_ended" in await texts_queued(database)
    shown = await service.handle(customer(text="hello"))
    assert shown.replies  # the dialog's hint: the bot is back
    assert len(await outbox(database, "desk_copy")) == 0


async def test_release_hands_the_chat_back_to_the_bot_and_tells_the_customer(
        service: RefundService, database: FakeDatabase, case: str) -> None:
    await take(service)
    await service.handle(cmd(AGENT, "release"))
    assert (await item_of(database)).owner_id is None
    assert await flag_of(database) is None
    assert await texts_queued(database, "customer_text") == ["desk.customer_joined", "desk.customer_released"]
    assert "desk.released" in await texts_queued(database)
    assert (await service.handle(press(AGENT, "release"))).toast == ZH("desk.not_taken", case=CASE)


async def test_a_stale_takeover_flag_is_dropped_and_the_dialog_answers(
        service: RefundService, database: FakeDatabase, case: str) -> None:
    await take(service)
    async with database.uow() as uow:  # released behind the flag's back (e.g. by another part)
        await uow.desk.release(CASE, at=T0)
        await uow.commit()
    shown = await service.handle(customer(text="hello"))
    assert shown.replies and await flag_of(database) is None
    assert not await outbox(database, "desk_copy")


async def test_another_agent_cannot_release_or_decide_a_takeover_but_a_supervisor_can(
        service: RefundService, database: FakeDatabase, case: str) -> None:
    await take(service, AGENT)
    shown = await service.handle(press(AGENT2, "release"))
    assert shown.toast == ZH("desk.refused_owned", case=CASE, owner="小王")
    await service.handle(cmd(AGENT2, "approve", "10"))
    assert (await item_of(database)).owner_id == AGENT and await status_of(database) is CaseStatus.IN_REVIEW
    assert [(a, x, ok) for a, x, ok in await audit(database) if not ok] == [(AGENT2, "release", False),
                                                                           (AGENT2, "approve", False)]
    await service.handle(press(SUPER, "release"))
    assert (await item_of(database)).owner_id is None


async def test_approve_pays_the_full_refund_closes_the_item_and_ends_the_takeover(
        service: RefundService, database: FakeDatabase) -> None:
    await put_case(database, amount=Decimal(60))
    await take(service)
    await service.handle(cmd(AGENT, "approve"))
    assert await status_of(database) is CaseStatus.REFUNDING
    async with database.uow() as uow:
        [attempt] = await uow.refunds.for_case(CASE)
    assert attempt.amount == Decimal(60) and attempt.status is RefundStatus.PENDING
    item = await item_of(database)
    assert item.closed_at is not None and item.owner_id is None and await flag_of(database) is None
    assert "desk.approved" in await texts_queued(database)
    assert await texts_queued(database, "customer_text") == ["desk.customer_joined", "desk.customer_closed"]
    news = [p["to"] for _, _, p in await outbox(database, "case_news")]
    assert news == ["approved", "refunding"]


async def test_a_partial_approval_pays_that_amount_and_no_more_than_was_paid(
        service: RefundService, database: FakeDatabase, case: str) -> None:
    await service.handle(cmd(AGENT, "approve", "abc"))
    await service.handle(cmd(AGENT, "approve", "100.01"))
    assert await status_of(database) is CaseStatus.IN_REVIEW
    assert await texts_queued(database) == ["desk.bad_amount", "desk.amount_over"]
    shown = await service.handle(press(AGENT, "approve", thread=None))  # full: 100 > 80 needs a supervisor
    assert shown.toast == ZH("desk.approval_waiting", amount="¥100.00")
    await service.handle(cmd(AGENT, "approve", "30.00"))
    assert await status_of(database) is CaseStatus.REFUNDING
    async with database.uow() as uow:
        [attempt] = await uow.refunds.for_case(CASE)
        assert attempt.amount == Decimal("30.00")
        assert await uow.desk.pending_approval(CASE) is None  # the request above the line is void now


async def test_above_the_line_an_approval_needs_a_second_person_who_is_a_supervisor(
        service: RefundService, database: FakeDatabase, case: str) -> None:
    await service.handle(cmd(AGENT, "approve"))
    assert await status_of(database) is CaseStatus.IN_REVIEW
    async with database.uow() as uow:
        assert await uow.desk.pending_approval(CASE) == (Decimal(100), AGENT)
    assert "desk.approval_requested" in await texts_queued(database)
    assert (await service.handle(press(AGENT, "confirm"))).toast == ZH("desk.refused_not_supervisor")
    assert (await service.handle(press(AGENT2, "confirm"))).toast == ZH("desk.refused_not_supervisor")
    assert await status_of(database) is CaseStatus.IN_REVIEW
    await service.handle(cmd(SUPER, "confirm"))
    assert await status_of(database) is CaseStatus.REFUNDING
    assert "desk.approved_confirmed" in await texts_queued(database)
    async with database.uow() as uow:
        history = await uow.desk.history(CASE)
    assert (history[-2].to_status, history[-2].actor, history[-2].note) == (
        "approved", f"agent:{SUPER}", ZH("desk.note_confirmed", amount="¥100.00", requester="小王"))
    assert [(a, x, ok) for a, x, ok in await audit(database)] == [
        (AGENT, "approve_request", True), (AGENT, "confirm", False), (AGENT2, "confirm", False),
        (SUPER, "approve", True)]


async def test_a_supervisor_cannot_confirm_their_own_approval(service: RefundService, database: FakeDatabase, case: str
                                                              ) -> None:
    await service.handle(press(SUPER, "approve"))
    assert (await service.handle(press(SUPER, "confirm"))).toast == ZH("desk.refused_same_person")
    assert await status_of(database) is CaseStatus.IN_REVIEW
    assert (await service.handle(press(SUPER2, "confirm"))).toast == ZH("desk.done", case=CASE)
    assert await status_of(database) is CaseStatus.REFUNDING


async def test_confirm_without_a_waiting_approval_does_nothing(service: RefundService, database: FakeDatabase, case: str
                                                               ) -> None:
    assert (await service.handle(press(SUPER, "confirm"))).toast == ZH("desk.nothing_to_confirm", case=CASE)
    assert await status_of(database) is CaseStatus.IN_REVIEW


async def test_reject_with_a_canned_reason_tells_the_customer_in_their_language(
        service: RefundService, database: FakeDatabase, case: str) -> None:
    shown = await service.handle(press(AGENT, "reject"))
    assert shown.toast == ZH("desk.reject_how") and await status_of(database) is CaseStatus.IN_REVIEW
    [(_, _, picker)] = await outbox(database, "desk_text")
    assert picker["text_key"] == "desk.pick_reason"
    assert [row[0][1] for row in picker["buttons"]] == [desk_token(CASE, f"rj.{c.key}") for c in DESK_SETTINGS.canned]
    private = await service.handle(cmd(AGENT, "reject", CASE, chat=AGENT))  # the same choice, right there
    assert [b.token for row in private.replies[0].buttons for b in row] == [row[0][1] for row in picker["buttons"]]
    await service.handle(press(AGENT, "rj.redeemed"))
    assert await status_of(database) is CaseStatus.REJECTED
    [news] = [p for _, _, p in await outbox(database, "case_news")]
    canned = next(c for c in DESK_SETTINGS.canned if c.key == "redeemed")
    assert news["to"] == "rejected" and news["note"] == canned.zh_CN
    assert (await item_of(database)).closed_at is not None
    assert (await service.handle(press(AGENT, "rj.nonsense"))).toast == ZH("desk.item_closed", case=CASE)


async def test_a_typed_rejection_and_after_an_appeal_a_final_one(service: RefundService, database: FakeDatabase, case: str
                                                                ) -> None:
    await service.handle(cmd(AGENT, "reject", "截图显示的是另一个订单"))
    assert await status_of(database) is CaseStatus.REJECTED
    async with database.uow() as uow:
        await WORKFLOW.move(uow, CASE, "appeal", actor="customer:1", at=T0, note="new proof")
        await uow.desk.open(DeskItem(key=CASE, chat_id=CUSTOMER, user_id=CUSTOMER, opened_at=T0, case_no=CASE))
        await uow.commit()
    await service.handle(cmd(SUPER, "reject", "仲裁维持原判"))
    assert await status_of(database) is CaseStatus.REJECTED_FINAL
    notes = [(p["to"], p["note"]) for _, _, p in await outbox(database, "case_news")]
    assert notes == [("rejected", "截图显示的是另一个订单"), ("rejected_final", "仲裁维持原判")]


async def test_ask_for_more_sends_the_question_and_hands_the_chat_to_the_bots_flow(
        service: RefundService, database: FakeDatabase) -> None:
    await put_case(database, CaseStatus.SUBMITTED)
    await take(service)
    assert (await service.handle(press(AGENT, "ask"))).toast == ZH("desk.ask_how")
    await service.handle(cmd(AGENT, "ask", "请提供充值记录截图"))
    assert await status_of(database) is CaseStatus.NEEDS_INFO
    [news] = [p for _, _, p in await outbox(database, "case_news")]
    assert news["to"] == "needs_info" and news["note"] == "请提供充值记录截图"
    item = await item_of(database)
    assert item.owner_id is None and item.closed_at is None and await flag_of(database) is None


async def test_a_note_stays_among_agents(service: RefundService, database: FakeDatabase, case: str) -> None:
    assert (await service.handle(press(AGENT, "note"))).toast == ZH("desk.note_how")
    before = await outbox(database)
    await service.handle(cmd(AGENT2, "note", "客户上周也申请过一次"))
    new = (await outbox(database))[len(before):]
    assert [(k, c) for k, c, _ in new] == [("desk_card", DESK)]
    assert (AGENT2, "note", True) in await audit(database)


async def test_a_request_without_a_case_can_be_taken_and_closed_but_not_decided(
        service: RefundService, database: FakeDatabase) -> None:
    key = f"chat:{CUSTOMER}"
    await service.handle(customer(EventKind.COMMAND, "agent"))
    item = await item_of(database, key)
    assert item.case_no is None and item.chat_id == CUSTOMER
    assert ("desk_card", DESK, {"key": key}) in await outbox(database, "desk_card")
    await take(service, AGENT, key)
    assert (await service.handle(press(AGENT, "approve", key))).toast == ZH("desk.no_case", case=key)
    await service.handle(press(AGENT, "close", key))
    item = await item_of(database, key)
    assert item.closed_at is not None and await flag_of(database) is None


async def test_agent_from_a_customer_with_an_open_case_puts_that_case_on_the_desk(
        service: RefundService, database: FakeDatabase) -> None:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("A1001"))
        await uow.cases.add(make_case(CASE, "A1001", status=CaseStatus.SUBMITTED))
        await uow.commit()
    await service.handle(customer(EventKind.COMMAND, "agent"))
    item = await item_of(database, CASE)
    assert item.case_no == CASE and item.closed_at is None
    async with database.uow() as uow:
        assert await uow.desk.get(f"chat:{CUSTOMER}") is None


async def test_queue_lists_open_items_by_deadline_with_age_and_owner(
        service: RefundService, database: FakeDatabase, clock: Clock) -> None:
    await put_case(database)
    await put_case(database, case_no="R20261124-0002", review_due=T0.date() - timedelta(days=1),
                   reason=Reason.CARD_USED)
    await take(service, AGENT, "R20261124-0002")
    clock.now = T0 + timedelta(hours=3)
    shown = await service.handle(cmd(AGENT2, "queue", thread=None))
    [reply] = shown.replies
    lines = reply.text.splitlines()
    assert lines[0] == ZH("desk.queue_header", count="2")
    assert lines[1].startswith("R20261124-0002") and "小王" in lines[1] and ZH("desk.age_hours", n="3") in lines[1]
    assert lines[2].startswith(CASE) and ZH("desk.unowned") in lines[2]
    assert [b.token for row in reply.buttons for b in row] == [desk_token(CASE, "take")]
    private = await service.handle(cmd(AGENT2, "queue", chat=AGENT2))
    assert private.replies[0].text == reply.text
    stranger = await service.handle(ev(STRANGER, EventKind.COMMAND, "queue", chat=STRANGER))
    assert [r.text for r in stranger.replies] == [ZH("hint.idle", example="KM20261124000001")]  # the dialog's


async def test_an_edited_message_updates_its_copy_either_way(service: RefundService, database: FakeDatabase, case: str
                                                            ) -> None:
    await take(service)
    await service.handle(customer(text="卡密是 1234", message_id=21))
    await service.handle(ev(AGENT, text="收到", message_id=901))
    assert (await service.handle(customer(text="卡密是 12345", message_id=21, edited=True))).replies == ()
    await service.handle(ev(AGENT, text="收到，请稍等", message_id=901, edited=True))
    await service.handle(customer(text="edited but never copied", message_id=5, edited=True))
    edits = await outbox(database, "desk_edit")
    assert [(c, p["direction"], p["message_id"], p["text"]) for _, c, p in edits] == [
        (DESK, "to_desk", 21, "卡密是 12345"), (CUSTOMER, "to_customer", 901, "收到，请稍等")]


async def test_an_edit_outside_a_takeover_never_runs_the_dialog(service: RefundService, database: FakeDatabase) -> None:
    shown = await service.handle(customer(text="KM20261101000001", message_id=3, edited=True))
    assert shown.replies == ()
    async with database.uow() as uow:
        assert await uow.conversations.load(CUSTOMER) is None


async def test_a_quiet_owner_is_reminded_once_then_the_item_returns_to_the_queue(
        database: FakeDatabase, service: RefundService, case: str) -> None:
    desk = DeskService(SETTINGS, WORKFLOW)
    await take(service)

    async def sweep(at: datetime) -> list[str]:
        async with database.uow() as uow:
            done = [await desk.nudge(uow, i.key, at) for i in await desk.idle_items(uow, at)]
            await uow.commit()
        return done

    assert await sweep(T0 + timedelta(minutes=9)) == []
    assert await sweep(T0 + timedelta(minutes=10, seconds=1)) == ["reminded"]
    assert await sweep(T0 + timedelta(minutes=15)) == [""]  # reminded once
    assert await texts_queued(database) == ["desk.took", "desk.idle_reminder"]
    assert await sweep(T0 + timedelta(minutes=20)) == ["released"]
    item = await item_of(database)
    assert item.owner_id is None and item.closed_at is None and await flag_of(database) is None
    assert (await texts_queued(database))[-1] == "desk.idle_released"
    assert (await texts_queued(database, "customer_text"))[-1] == "desk.customer_released"
    assert (AGENT, "idle_release", True) in await audit(database)


async def test_an_owner_who_speaks_up_restarts_the_idle_clock(database: FakeDatabase, service: RefundService,
                                                              clock: Clock, case: str) -> None:
    desk = DeskService(SETTINGS, WORKFLOW)
    await take(service)
    clock.now = T0 + timedelta(minutes=15)
    await service.handle(ev(AGENT, text="还在查", message_id=901))
    async with database.uow() as uow:
        assert await desk.idle_items(uow, T0 + timedelta(minutes=24)) == []
        assert await desk.nudge(uow, CASE, T0 + timedelta(minutes=24)) == ""


async def test_a_partial_approval_pays_the_amount_and_its_retry_the_same(database: FakeDatabase) -> None:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("A1001"))
        await uow.cases.add(make_case(CASE, "A1001", status=CaseStatus.IN_REVIEW))
        await WORKFLOW.approve(uow, CASE, actor="agent:1", at=T0, amount=Decimal("30.00"))
        [first] = await uow.refunds.for_case(CASE)
        assert first.amount == Decimal("30.00")
        await uow.refunds.set_status(first.idempotency_key, RefundStatus.FAILED, at=T0)
        await WORKFLOW.move(uow, CASE, "fail_refund", actor="system", at=T0)
        await WORKFLOW.move(uow, CASE, "retry_refund", actor="system", at=T0)
        attempts = await uow.refunds.for_case(CASE)
        assert [a.amount for a in attempts] == [Decimal("30.00"), Decimal("30.00")]


async def test_an_approval_above_the_full_refund_is_refused_and_writes_nothing(database: FakeDatabase) -> None:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("A1001"))
        await uow.cases.add(make_case(CASE, "A1001", status=CaseStatus.IN_REVIEW))
        with pytest.raises(ExceedsRefundable) as refused:
            await WORKFLOW.approve(uow, CASE, actor="agent:1", at=T0, amount=Decimal(900))
        assert refused.value.available == Decimal(100)
        assert await uow.refunds.for_case(CASE) == []
        assert (await uow.cases.get(CASE)).status is CaseStatus.IN_REVIEW
