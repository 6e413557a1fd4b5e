"""Money safety as a property: hypothesis interleaves filings (any reason, any order, several cases on one
order, the same reason again after a refund), approvals (full and partial, two at once), rejections,
appeals, withdrawals, failures and retries, platform callbacks (credited, failed, duplicate, replayed,
late, bogus), CLI moves and finance's confirmations, refund-worker passes (two workers at once) and
worker crashes after the platform paid — and after every step checks what README "Money safety"
promises:

1. per order, the succeeded and in-flight refund attempts never exceed what was paid;
2. at most one attempt per case is in flight;
3. the books equal what the platform paid: a key it paid is never failed in the books, every
   succeeded attempt was paid exactly once, and no order got more back than it paid.

At the end of each example the world is drained (time passes, the workers run, the platform credits
what it accepted) and the books must match the platform's payouts exactly.

Everything is real but the platform (tests/storage/money_safety_world.py): the database (SQLite, and
PostgreSQL with two "processes" — two connection pools, two HTTP gateways, two workers with their own
owner ids — whose operations really run at once), HttpGateway over HTTP, PlatformApi behind HTTP and
`refundbot cases` through Typer's runner.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from typer.testing import CliRunner

from bot.api import PlatformApi
from bot.cli import app as cli
from bot.rails.http import HttpGateway
from bot.workers.refunds import RefundWorker
from dialogs.cases import CaseWorkflow
from dialogs.domain import Reason, RefundStatus, Verdict
from dialogs.ledger import IN_FLIGHT, open_attempt, order_balance
from dialogs.settings import AutoApproveSettings, CoreSettings
from dialogs.workdays import WorkingCalendar
from storage.uow import Database
from tests.storage.factories import make_case, make_order
from tests.storage.money_safety_world import (
    GATEWAY_TIMEOUT,
    LEASE,
    MODES,
    SECRET,
    Clock,
    all_attempts,
    check_books,
    refused_or_done,
    start_api,
    start_shop,
)

T = TypeVar("T")

ORDERS = ("A1001", "A1002")
# Moves a person or the customer makes by hand (approve has its own rules; confirm_refund and
# fail_refund without the attempt's outcome must be refused while money is in flight).
HAND_MOVES = ("start_review", "ask_info", "provide_info", "reject", "appeal", "reject_final", "withdraw",
              "close_silent", "hand_to_human", "retry_refund", "confirm_refund", "fail_refund")
CLI_MOVES = ("approve", "reject", "start_review", "retry_refund", "hand_to_human", "fail_refund")
ACTOR = {"withdraw": "customer", "appeal": "customer", "provide_info": "customer", "close_silent": "system"}

cents = st.integers(1, 20_000).map(lambda c: Decimal(c).scaleb(-2))
amounts = st.none() | cents
LEASE_PASSED = timedelta(seconds=LEASE + 1)
# order, reason, claim ("left": what the order has left, "paid": all of it, or any amount), eligible by
# rule, then (an agent approves it, in full or `amount`; reviews it; or nobody looks yet), amount.
Filing = tuple[str, Reason, "str | Decimal", bool, str, "Decimal | None"]
FILINGS = st.tuples(st.sampled_from(ORDERS), st.sampled_from(list(Reason)), st.sampled_from(["left", "paid"]) | cents,
                    st.booleans(), st.sampled_from(["approve", "review", "wait"]), amounts)


class MoneyWorld(RuleBasedStateMachine):
    """One example: a fresh database, a shop, the API, the gateways. Subclassed per backend."""

    new_database: Callable[[], str]  # a migrated, empty database's URL
    processes = 1  # PostgreSQL: 2 (connection pools, gateways and workers)

    cases = Bundle("cases")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.url = type(self).new_database()
        self.ready = False
        self.numbers = itertools.count(1)
        self.clock = Clock()
        self.tmp = Path(tempfile.mkdtemp(prefix="money-safety-"))

    def run(self, work: Awaitable[T]) -> T:
        return self.loop.run_until_complete(work)

    # -- the world -----------------------------------------------------------------------------
    @initialize(target=cases, paid=st.tuples(cents, cents), auto=st.booleans(),
                filings=st.lists(FILINGS, min_size=1, max_size=3))
    def open_shop(self, paid: tuple[Decimal, Decimal], auto: bool, filings: list[Filing]) -> Any:
        """The orders (what each paid), the auto-approval setting, and the first cases filed."""
        self.paid = dict(zip(ORDERS, paid, strict=True))
        core = CoreSettings(auto_approve=AutoApproveSettings(enabled=auto, max_amount=Decimal(1000)))
        self.workflow = CaseWorkflow(core, WorkingCalendar(), "http")
        self.run(self._open())
        self.config = self.tmp / "config.toml"
        self.config.write_text(f'[database]\nurl = "{self.url}"\n[platform]\ngateway = "http"\n'
                               f'refund_url = "{self.shop.refund_url}"\nsecret = "{SECRET}"\n', encoding="utf-8")
        self.ready = True
        return multiple(*map(self._filed, filings))

    async def _open(self) -> None:
        self.databases = [Database.from_url(self.url) for _ in range(self.processes)]
        async with self.databases[0].uow() as uow:
            for order_no, amount in self.paid.items():
                await uow.orders.upsert(make_order(order_no, amount=amount))
            await uow.commit()
        self.shop = await start_shop()
        self.api = await start_api(PlatformApi(self.databases[0].uow, self.workflow, secret=SECRET))
        self.shop.bot_url = str(self.api.make_url("")).rstrip("/")
        self.gateways = [HttpGateway(self.shop.refund_url, SECRET, timeout=GATEWAY_TIMEOUT)
                         for _ in range(self.processes)]

    def db(self, process: int) -> Database:
        return self.databases[process % self.processes]

    def worker(self, process: int, owner: str | None = None) -> RefundWorker:
        return RefundWorker(self.db(process).uow, self.workflow, self.gateways[process % self.processes],
                            clock=self.clock, retry_base_seconds=0, owner=owner or f"worker-{process}",
                            lease_seconds=LEASE, call_timeout=5, record_margin=1)

    def teardown(self) -> None:
        try:
            if self.ready:
                self.run(self._drain_and_compare())
        finally:
            try:
                if self.ready:
                    self.run(self._close())
            finally:
                self.loop.close()
                shutil.rmtree(self.tmp, ignore_errors=True)

    async def _close(self) -> None:
        for gateway in self.gateways:
            await gateway.close()
        await self.shop.close()
        await self.api.close()
        for database in self.databases:
            await database.dispose()

    async def _drain_and_compare(self) -> None:
        """Everything settles: then the books say exactly what the platform paid."""
        self.shop.mode, self.shop.crash_next = "succeed", False
        for _ in range(3):
            self.clock.now += LEASE_PASSED
            await self.worker(0).run_once()
            for key in self._accepted():
                assert await self.shop.callback(key, "credited") == 200
        attempts = await all_attempts(self.databases[0], list(ORDERS))
        check_books(attempts, self.paid, self.shop)
        books = [a for of_order in attempts.values() for a in of_order]
        assert not [a for a in books if a.status in IN_FLIGHT], "in flight after draining"
        succeeded = {a.idempotency_key for a in books if a.status is RefundStatus.SUCCEEDED}
        event(f"attempts booked: {min(len(books), 5)}{'+' if len(books) >= 5 else ''}")
        event(f"platform payouts: {min(len(self.shop.paid), 3)}{'+' if len(self.shop.paid) >= 3 else ''}")
        assert succeeded == set(self.shop.paid), (succeeded, self.shop.paid)

    def _accepted(self) -> list[str]:
        """Keys the platform accepted and has not settled yet."""
        return sorted(k for k, first in self.shop.first.items()
                      if first == "accepted" and k not in self.shop.paid and k not in self.shop.voided)

    # -- the invariants ------------------------------------------------------------------------
    @invariant()
    def money_is_safe(self) -> None:
        if self.ready:
            check_books(self.run(all_attempts(self.databases[0], list(ORDERS))), self.paid, self.shop)

    # -- customers file ------------------------------------------------------------------------
    @rule(target=cases, filing=FILINGS)
    def file(self, filing: Filing) -> Any:
        return self._filed(filing)

    def _filed(self, filing: Filing) -> str:
        """A customer files a case (auto-approved when the settings and the order allow); an agent then
        takes it into review and approves it (in full or in part), only reviews it, or leaves it."""
        order, reason, claim, eligible, then, amount = filing
        case_no = f"R20261124-{next(self.numbers):04d}"
        done = self.run(refused_or_done(self._file(case_no, order, reason, claim, eligible)))
        if isinstance(done, BaseException):
            return case_no  # never filed: every move of it is refused (KeyError)
        if then != "wait":
            self.run(refused_or_done(self._move(0, case_no, "start_review")))
        if then == "approve":
            self.run(refused_or_done(self._approve(0, case_no, amount)))
        return case_no

    async def _file(self, case_no: str, order_no: str, reason: Reason, claim: str | Decimal, eligible: bool) -> None:
        async with self.db(0).uow() as uow:
            order = await uow.orders.get(order_no)
            assert order is not None
            left = (await order_balance(uow, order_no)).remaining
            amount = claim if isinstance(claim, Decimal) else left if claim == "left" and left > 0 else order.amount
            case = make_case(case_no, order_no, reason=reason, amount=amount,
                             verdict=Verdict.ELIGIBLE if eligible else Verdict.REVIEW,
                             rule_id=f"{reason.value}.{'eligible' if eligible else 'review'}")
            await uow.cases.add(case)
            await self.workflow.filed(uow, case, order)
            await uow.commit()

    # -- people move cases ---------------------------------------------------------------------
    @rule(case=cases, trigger=st.sampled_from(HAND_MOVES))
    def move(self, case: str, trigger: str) -> None:
        self.run(refused_or_done(self._move(0, case, trigger)))

    async def _move(self, process: int, case_no: str, trigger: str) -> None:
        async with self.db(process).uow() as uow:
            await self.workflow.move(uow, case_no, trigger, actor=ACTOR.get(trigger, "agent:7"), at=self.clock())
            await uow.commit()

    @rule(case=cases, trigger=st.sampled_from(["confirm_refund", "fail_refund"]))
    def a_refund_ended_by_hand_without_its_outcome(self, case: str, trigger: str) -> None:
        """Only the attempt's outcome (settle) may end a refund while money is in flight: refused."""
        self.run(refused_or_done(self._move(1, case, trigger)))

    @rule(case=cases, amount=amounts)
    def approve(self, case: str, amount: Decimal | None) -> None:
        self.run(refused_or_done(self._approve(0, case, amount)))

    async def _approve(self, process: int, case_no: str, amount: Decimal | None) -> None:
        async with self.db(process).uow() as uow:
            await self.workflow.approve(uow, case_no, actor="agent:7", at=self.clock(), amount=amount)
            await uow.commit()

    @rule(first=cases, second=cases, first_amount=amounts, second_amount=amounts)
    def approve_two_at_once(self, first: str, second: str, first_amount: Decimal | None,
                            second_amount: Decimal | None) -> None:
        """Two agents (two processes on PostgreSQL) approve at the same moment: the order's lock weighs
        them one after the other."""
        self.run(together(refused_or_done(self._approve(0, first, first_amount)),
                          refused_or_done(self._approve(1, second, second_amount))))

    @rule(case=cases, action=st.sampled_from(CLI_MOVES), amount=amounts)
    def cli_move(self, case: str, action: str, amount: Decimal | None) -> None:
        args = ["cases", "move", case, action, "--by", "agent-7", "--config", str(self.config)]
        if action == "approve" and amount is not None:
            args += ["--amount", str(amount)]
        self._cli(args)

    def _cli(self, args: list[str]) -> None:
        result = CliRunner().invoke(cli, args)
        # 0 done, 3 no such case, 4 refused; anything else (1: a crash) is a failure.
        assert result.exit_code in (0, 3, 4), (args, result.exit_code, result.output, result.exception)

    @rule(case=cases)
    def finance_asks_the_rail_and_settles(self, case: str) -> None:
        """Finance asks the platform what became of the case's attempt in flight and says so with
        `cases mark-refunded` / `cases mark-failed` (a failed one is voided on the platform first)."""
        async def open_key() -> str | None:
            async with self.db(0).uow() as uow:
                attempt = open_attempt(await uow.refunds.for_case(case))
            return attempt.idempotency_key if attempt is not None else None

        key = self.run(open_key())
        if key is None or key in self.shop.paid:
            self._cli(["cases", "mark-refunded", case, "--config", str(self.config)])
        else:
            self.shop.voided.add(key)
            self._cli(["cases", "mark-failed", case, "--by", "finance", "--config", str(self.config)])

    # -- the platform --------------------------------------------------------------------------
    # What a rule draws must not depend on what happened (PostgreSQL's races decide some of it), or
    # hypothesis cannot replay an example: keys are picked by an index into what exists at the time.
    @staticmethod
    def _pick(keys: list[str], index: int) -> str | None:
        return keys[index % len(keys)] if keys else None

    @rule(index=st.integers(0, 7), event=st.sampled_from(["credited", "failed"]))
    def platform_settles_an_accepted_refund(self, index: int, event: str) -> None:
        key = self._pick(self._accepted(), index)
        if key is not None:
            assert self.run(self.shop.callback(key, event)) == 200

    @rule(index=st.integers(0, 7))
    def platform_says_it_again_late(self, index: int) -> None:
        """A late or re-sent (newly signed) callback for a key the platform settled long ago."""
        key = self._pick(sorted({*self.shop.paid, *self.shop.voided}), index)
        if key is not None:
            assert self.run(self.shop.callback(key, "credited" if key in self.shop.paid else "failed")) == 200

    @rule()
    def a_callback_is_replayed(self) -> None:
        if self.shop.last_callback is not None:
            assert self.run(self.shop.replay_last_callback()) == 409  # the same signature: refused

    @rule(index=st.integers(0, 7), unknown=st.booleans())
    def a_bogus_callback_changes_nothing(self, index: int, unknown: bool) -> None:
        """Credited with another amount than the attempt's, or for a key refundbot never made."""
        key = self._pick(sorted(self.shop.asked), index)
        if key is None:
            return
        body_key, amount = (f"{key}9", None) if unknown else (key, self.shop.asked[key][2] + Decimal("0.01"))
        status = self.run(self.shop.callback(body_key, "credited", amount=amount, honest=False))
        assert status in (404, 409), status  # unknown attempt / amount mismatch; the invariants: nothing moved

    # -- the refund workers --------------------------------------------------------------------
    # `platform`: how the platform answers the keys it has not seen yet, from this pass on (succeed;
    # accept and pay later by callback; fail; pay and lose the answer; pay and answer too late; be down).
    @rule(platform=st.sampled_from(MODES))
    def a_worker_pass(self, platform: str) -> None:
        self.shop.mode = platform
        self.run(self.worker(0).run_once())

    @rule(platform=st.sampled_from(MODES))
    def two_workers_at_once(self, platform: str) -> None:
        self.shop.mode = platform
        self.run(together(self.worker(0).run_once(), self.worker(1).run_once()))

    @rule(case=cases, amount=amounts, platform=st.sampled_from(MODES))
    def an_approval_during_a_worker_pass_and_a_callback(self, case: str, amount: Decimal | None,
                                                         platform: str) -> None:
        self.shop.mode = platform
        accepted = self._accepted()
        work = [refused_or_done(self._approve(1, case, amount)), self.worker(0).run_once()]
        if accepted:
            work.append(self.shop.callback(accepted[0], "credited"))
        self.run(together(*work))

    @rule()
    def a_worker_dies_after_the_platform_paid(self) -> None:
        """The platform pays the next new key; the worker is killed before it records the answer. Its
        lease keeps the attempt from the others until time passes; then another sends the same key."""
        self.run(self._crash(f"crashed-{next(self.numbers)}"))

    async def _crash(self, owner: str) -> None:
        self.shop.crashed.clear()
        self.shop.release.clear()
        self.shop.crash_next = True
        task = asyncio.ensure_future(self.worker(0, owner).run_once())
        crashed = asyncio.ensure_future(self.shop.crashed.wait())
        try:
            await asyncio.wait({task, crashed}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
            if crashed.done():
                task.cancel()
            [outcome] = await asyncio.gather(task, return_exceptions=True)
            if isinstance(outcome, Exception):  # CancelledError is not one: that is the crash
                raise outcome
        finally:
            crashed.cancel()
            self.shop.crash_next = False
            self.shop.release.set()

    @rule()
    def time_passes(self) -> None:
        self.clock.now += LEASE_PASSED


async def together(*works: Awaitable[Any]) -> list[Any]:
    return await asyncio.gather(*works)


# CI runs a bounded number of examples; REFUNDBOT_MONEY_EXAMPLES=10 runs ten times as many (a deeper search).
SCALE = int(os.environ.get("REFUNDBOT_MONEY_EXAMPLES", "1"))


def _run(machine: type[MoneyWorld], new_database: Callable[[], str], processes: int, examples: int,
         steps: int) -> None:
    world = type(machine.__name__, (machine,), {"new_database": staticmethod(new_database),
                                                "processes": processes})
    run_state_machine_as_test(world, settings=settings(
        max_examples=examples * SCALE, stateful_step_count=steps, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))


def test_money_stays_safe_on_sqlite(fresh_sqlite_databases: Callable[[], str]) -> None:
    _run(MoneyWorld, fresh_sqlite_databases, processes=1, examples=60, steps=30)


@pytest.mark.postgres
def test_money_stays_safe_on_postgresql_with_two_workers(fresh_postgres_database: Callable[[], str]) -> None:
    _run(MoneyWorld, fresh_postgres_database, processes=2, examples=20, steps=25)
