"""Races on the agents' desk that the database's locks decide (moved from tests/dialogs/test_desk.py,
which runs on the fakes, where units of work never overlap): on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from dialogs.desk import desk_token
from dialogs.domain import CaseStatus, DeskItem
from dialogs.io import Event, EventKind, Outcome
from dialogs.service import RefundService
from dialogs.settings import CoreSettings, DeskSettings
from dialogs.texts import Texts
from storage.models import DeskAuditRow, OutboxRow
from storage.uow import Database
from tests.storage.factories import T0, make_case, make_order

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


def ev(user: int, kind: EventKind = EventKind.TEXT, text: str = "", args: str = "", *, chat: int = DESK,
       thread: int | None = TOPIC, message_id: int | None = None, **more: Any) -> Event:
    update_id = next(_updates)
    return Event(update_id=update_id, chat_id=chat, user_id=user, kind=kind, at=T0, text=text, args=args,
                 user_name=f"user{user}", message_id=message_id or update_id, private=chat > 0,
                 thread_id=None if chat > 0 else thread, **more)


def press(user: int, action: str, key: str = CASE, **kw: Any) -> Event:
    return ev(user, EventKind.BUTTON, desk_token(key, action), **kw)


async def put_case(database: Database, status: CaseStatus = CaseStatus.IN_REVIEW, case_no: str = CASE,
                   order_no: str = "A1001", **changes: Any) -> None:
    async with database.uow() as uow:
        if await uow.orders.get(order_no) is None:
            await uow.orders.upsert(make_order(order_no))
        await uow.cases.add(make_case(case_no, order_no, status=status, locale="zh_CN", **changes))
        await uow.desk.open(DeskItem(key=case_no, chat_id=CUSTOMER, user_id=CUSTOMER, opened_at=T0, case_no=case_no))
        await uow.desk.set_topic(case_no, thread_id=TOPIC, card_message_id=TOPIC + 1)
        await uow.commit()


async def outbox(database: Database, *kinds: str) -> list[tuple[str, int | None, dict[str, Any]]]:
    async with database.uow() as uow:
        query = select(OutboxRow.kind, OutboxRow.chat_id, OutboxRow.payload).order_by(OutboxRow.id)
        if kinds:
            query = query.where(OutboxRow.kind.in_(kinds))
        rows = await uow.session.execute(query)
        return [(r.kind, r.chat_id, r.payload) for r in rows]


async def audit(database: Database) -> list[tuple[int, str, bool]]:
    async with database.uow() as uow:
        rows = await uow.session.execute(
            select(DeskAuditRow.actor_id, DeskAuditRow.action, DeskAuditRow.allowed).order_by(DeskAuditRow.id))
        return [(r.actor_id, r.action, r.allowed) for r in rows]


async def item_of(database: Database, key: str = CASE) -> DeskItem:
    async with database.uow() as uow:
        item = await uow.desk.get(key)
    assert item is not None
    return item


async def status_of(database: Database, case_no: str = CASE) -> CaseStatus:
    async with database.uow() as uow:
        case = await uow.cases.get(case_no)
    assert case is not None
    return case.status


async def take(service: RefundService, user: int = AGENT, key: str = CASE) -> Outcome:
    return await service.handle(press(user, "take", key))


@pytest.fixture
def service(database: Database) -> RefundService:
    return RefundService(database.uow, SETTINGS, clock=lambda: T0)


@pytest.fixture
async def case(database: Database) -> str:
    await put_case(database)
    return CASE


async def test_two_takes_at_once_leave_exactly_one_owner(service: RefundService, database: Database, case: str
                                                         ) -> None:
    other = RefundService(database.uow, SETTINGS)  # another bot process on the same database
    first, second = await asyncio.gather(take(service, AGENT), take(other, AGENT2))
    owner = (await item_of(database)).owner_id
    assert owner in (AGENT, AGENT2)
    toasts = sorted([first.toast or "", second.toast or ""])
    winner_label = "小王" if owner == AGENT else DESK_SETTINGS.alias(AGENT2, "zh_CN")
    assert toasts == sorted([ZH("desk.you_took", case=CASE), ZH("desk.taken_by", case=CASE, owner=winner_label)])
    assert len(await outbox(database, "customer_text")) == 1


async def test_an_approval_waiting_on_a_take_in_flight_is_refused_once_the_take_lands(
        service: RefundService, database: Database, case: str) -> None:
    """The owner rule is checked under the case's lock: an agent's take still in its transaction when
    another agent presses Approve (which read the item as unowned) is seen by the approval once it
    commits — the approval is refused, never carried out on a case someone else took."""
    async with database.uow() as taking:  # agent 2's take, caught mid-transaction
        await taking.conversations.load(CUSTOMER)
        await taking.cases.get(CASE, for_update=True)
        assert await taking.desk.take(CASE, AGENT2, at=T0) == AGENT2
        approving = asyncio.create_task(service.handle(press(AGENT, "approve")))
        await asyncio.sleep(0.3)  # the approval reads the item and waits for the case's lock
        assert not approving.done()
        await taking.commit()
    outcome = await approving
    assert outcome.toast == ZH("desk.refused_owned", case=CASE, owner=DESK_SETTINGS.alias(AGENT2, "zh_CN"))
    assert await status_of(database) is CaseStatus.IN_REVIEW
    assert (AGENT, "approve", False) in await audit(database)
