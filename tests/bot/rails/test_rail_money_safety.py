"""Query before retry as a property: hypothesis interleaves approvals (full, partial, two cases of one
order, again after a failure), refund-worker passes and Alipay misbehaving — answers lost after paying,
requests lost before paying, system errors, 502s, forged and unsigned answers, queries that fail, a
merchant balance too low, a closed trade — against the local Alipay (tests/bot/rails/fake_alipay.py,
the real python-alipay-sdk verifying its signatures). After every step:

1. refundbot never asks Alipay to pay a request number Alipay already paid (it asks first);
2. per order, Alipay never paid back more than the purchase, and the books' succeeded and in-flight
   attempts never exceed it;
3. the books never call paid what Alipay did not pay, nor failed what it paid.

At the end the world is drained (Alipay behaves, the balance is topped up, the worker runs) and the
books' succeeded attempts are exactly Alipay's payouts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from bot.config import AlipayConfig, PlatformConfig
from bot.rails.alipay import AlipayGateway
from bot.workers.refunds import RefundWorker
from dialogs.cases import CaseWorkflow
from dialogs.domain import CaseStatus, PaymentChannel, Reason, RefundStatus
from dialogs.ledger import IN_FLIGHT
from storage.uow import Database
from tests.bot.rails.fake_alipay import FakeAlipay, new_key, pem, public_pem
from tests.bot.test_rail_worker import SETTINGS
from tests.storage.factories import T0, make_case, make_order

T = TypeVar("T")
APP_ID = "2021004100000009"
APP_KEY = new_key()
ORDER = "A1001"
CASES = ("R20261124-0001", "R20261124-0002")
REASONS = (Reason.CARD_INVALID, Reason.CARD_USED)
# Lost answers (the case query before retry is for) weigh most.
MISBEHAVIOUR = st.sampled_from(["hang_after_paying"] * 3 + ["hang_before_paying"] * 2
                               + ["system_error", "http_502", "forge", "unsigned"])
cents = st.integers(100, 20_000).map(lambda n: Decimal(n) / 100)


class RailWorld(RuleBasedStateMachine):
    new_database: Callable[[], str]

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.ready = False
        self.workflow = CaseWorkflow.for_settings(SETTINGS, "manual", {PaymentChannel.ALIPAY: "alipay"})
        self.now = T0 + timedelta(hours=1)
        self.lost_after_paying = False

    def run(self, work: Awaitable[T]) -> T:
        return self.loop.run_until_complete(work)

    @initialize(paid=cents, claims=st.tuples(cents, cents))
    def open_shop(self, paid: Decimal, claims: tuple[Decimal, Decimal]) -> None:
        self.paid = paid
        self.run(self._open(claims))
        self.ready = True

    async def _open(self, claims: tuple[Decimal, Decimal]) -> None:
        self.alipay = FakeAlipay(APP_ID, APP_KEY.public_key(), hang_seconds=0.6)
        trade = self.alipay.add_trade(ORDER, f"{self.paid:.2f}")
        self.server = TestServer(self.alipay.app())
        await self.server.start_server()
        self.alipay.url = str(self.server.make_url("/gateway.do"))
        self.gateway = AlipayGateway.from_config(PlatformConfig(
            rails={PaymentChannel.ALIPAY: "alipay"}, timeout_seconds=0.2,
            alipay=AlipayConfig(app_id=APP_ID, app_private_key=pem(APP_KEY),
                                alipay_public_key=public_pem(self.alipay.alipay_key), gateway_url=self.alipay.url)))
        self.database = Database.from_url(type(self).new_database())
        async with self.database.uow() as uow:
            await uow.orders.upsert(make_order(ORDER, amount=self.paid, payment_channel=PaymentChannel.ALIPAY,
                                               trade_no=trade.trade_no))
            for case_no, claim, reason in zip(CASES, claims, REASONS, strict=True):  # one open case per reason
                await uow.cases.add(make_case(case_no, ORDER, amount=claim, reason=reason,
                                              status=CaseStatus.IN_REVIEW))
            await uow.commit()

    def teardown(self) -> None:
        try:
            if self.ready:
                self.run(self._drain_and_compare())
        finally:
            if self.ready:
                self.alipay.release()
                self.run(self._close())
            self.loop.close()

    async def _close(self) -> None:
        await self.gateway.close()
        await self.server.close()
        await self.database.dispose()

    async def _drain_and_compare(self) -> None:
        self.alipay.release()
        self.alipay.refund_script.clear()
        self.alipay.query_script.clear()
        self.alipay.balance = None
        for _ in range(3):
            await self._pass()
        assert self.alipay.repeats == 0, "a request number Alipay had paid was sent again"
        event(f"Alipay payouts: {min(len(self.alipay.payouts), 2)}{'+' if len(self.alipay.payouts) >= 2 else ''}")
        event(f"answers lost after paying: {'yes' if self.lost_after_paying else 'no'}")
        attempts = await self._attempts()
        assert not [a for a in attempts if a.status in IN_FLIGHT], "in flight after draining"
        booked = {a.idempotency_key for a in attempts if a.status is RefundStatus.SUCCEEDED}
        assert booked == {key for _, key, _ in self.alipay.payouts}

    async def _attempts(self) -> list[Any]:
        async with self.database.uow() as uow:
            return await uow.refunds.for_order(ORDER)

    async def _pass(self) -> None:
        self.now += timedelta(hours=1)  # past any back-off and lease
        worker = RefundWorker(self.database.uow, self.workflow, self.gateway, clock=lambda: self.now,
                              retry_base_seconds=0, call_timeout=3)
        await worker.run_once()

    # -- the invariants ----------------------------------------------------------------------------
    @invariant()
    def money_is_safe(self) -> None:
        if not self.ready:
            return
        assert self.alipay.repeats == 0, "a request number Alipay had paid was sent again"
        assert self.alipay.paid_out(ORDER) <= self.paid
        attempts = self.run(self._attempts())
        paid_keys = {key for _, key, _ in self.alipay.payouts}
        assert sum(a.amount for a in attempts if a.status is RefundStatus.SUCCEEDED or a.status in IN_FLIGHT) \
            <= self.paid
        assert not [a for a in attempts if a.status is RefundStatus.SUCCEEDED and a.idempotency_key not in paid_keys]
        assert not [a for a in attempts if a.status is RefundStatus.FAILED and a.idempotency_key in paid_keys]
        for case_no in CASES:
            assert len([a for a in attempts if a.case_no == case_no and a.status in IN_FLIGHT]) <= 1

    # -- people ------------------------------------------------------------------------------------
    @rule(case=st.sampled_from(CASES), amount=st.none() | cents)
    def an_agent_approves(self, case: str, amount: Decimal | None) -> None:
        async def approve() -> None:
            async with self.database.uow() as uow:
                try:
                    await self.workflow.approve(uow, case, actor="agent:1", at=self.now, amount=amount)
                except Exception:  # noqa: BLE001 - refused by the lifecycle or the ledger: nothing written
                    return
                await uow.commit()
        self.run(approve())

    # -- Alipay ------------------------------------------------------------------------------------
    @rule(behaviour=MISBEHAVIOUR)
    def the_next_refund_call_misbehaves(self, behaviour: str) -> None:
        self.alipay.refund_script.append(behaviour)
        self.lost_after_paying = self.lost_after_paying or behaviour == "hang_after_paying"

    @rule(behaviour=MISBEHAVIOUR)
    def the_next_query_misbehaves(self, behaviour: str) -> None:
        self.alipay.query_script.append(behaviour)

    @rule(low=st.booleans())
    def the_merchant_balance(self, low: bool) -> None:
        self.alipay.balance = Decimal(0) if low else None

    @rule()
    def the_trade_closes(self) -> None:
        self.alipay.trades[ORDER].closed = True

    @rule(passes=st.integers(1, 2))
    def worker_passes(self, passes: int) -> None:
        for _ in range(passes):
            self.run(self._pass())


def _run(new_database: Callable[[], str], examples: int, steps: int) -> None:
    world = type("World", (RailWorld,), {"new_database": staticmethod(new_database)})
    run_state_machine_as_test(world, settings=settings(
        max_examples=examples, stateful_step_count=steps, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow]))


@pytest.mark.slow
def test_alipay_refunds_are_never_paid_twice_on_sqlite(fresh_sqlite_databases: Callable[[], str]) -> None:
    _run(fresh_sqlite_databases, examples=40, steps=20)


@pytest.mark.slow
@pytest.mark.postgres
def test_alipay_refunds_are_never_paid_twice_on_postgresql(fresh_postgres_database: Callable[[], str]) -> None:
    _run(fresh_postgres_database, examples=15, steps=20)
