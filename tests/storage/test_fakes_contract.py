"""The fakes keep the ports' promises: the same scenarios on tests.fakes.FakeDatabase, SQLite and
PostgreSQL. The core's own tests (tests/dialogs) run on the fakes only, so a difference between a
fake and the SQL repositories must show here first."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from dialogs.clock import utcnow
from dialogs.domain import (
    CaseStatus,
    Conversation,
    DeskItem,
    MessageLink,
    OutboxMessage,
    RefundAttempt,
    RefundStatus,
    TimerKind,
)
from dialogs.io import Reply
from dialogs.ports import ConcurrentUpdate, UnitOfWork
from tests.fakes import FakeDatabase
from tests.storage.factories import T0, make_case, make_evidence, make_order

CASE = "R20261124-0001"


@pytest.fixture(params=["fake", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """Here 'fake' too: every scenario runs on the fakes and on both databases."""
    return str(request.param)


@pytest.fixture
def db(backend: str, request: pytest.FixtureRequest) -> Any:
    """A FakeDatabase or a storage.uow.Database: both hand out units of work with `uow()`."""
    return FakeDatabase() if backend == "fake" else request.getfixturevalue("database")


async def with_case(uow: UnitOfWork, case_no: str = CASE, **changes: Any) -> None:
    if await uow.orders.get(changes.get("order_no", "A1001")) is None:
        await uow.orders.upsert(make_order(changes.get("order_no", "A1001")))
    await uow.cases.add(make_case(case_no, **changes))


def message(n: int, chat_id: int | None = 7) -> OutboxMessage:
    return OutboxMessage(kind="case_news", chat_id=chat_id, dedupe_key=f"k{n}", payload={"n": n}, created_at=T0)


# -- the unit of work ------------------------------------------------------------------------------
async def test_only_committed_work_is_seen_by_the_next_unit_of_work(db: Any) -> None:
    async with db.uow() as uow:
        await uow.orders.upsert(make_order("A1"))
        await uow.commit()
        await uow.orders.upsert(make_order("A2"))  # after the commit: dropped at the end of the block
    async with db.uow() as uow:
        await uow.orders.upsert(make_order("A3"))
        await uow.rollback()
        assert await uow.orders.get("A3") is None
    async with db.uow() as uow:
        assert [await uow.orders.get(n) is not None for n in ("A1", "A2", "A3")] == [True, False, False]


async def test_an_update_id_is_claimed_once_and_forgotten_when_old(db: Any) -> None:
    async with db.uow() as uow:
        assert await uow.updates.claim(1, 7, T0) is True
        assert await uow.updates.claim(1, 7, T0) is False
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.updates.claim(1, 8, T0) is False
        assert await uow.updates.prune(T0 + timedelta(seconds=1)) == 1
        assert await uow.updates.claim(1, 8, T0) is True


# -- conversations ---------------------------------------------------------------------------------
async def test_a_conversation_saved_from_a_stale_version_raises_concurrent_update(db: Any) -> None:
    async with db.uow() as uow:
        conv = Conversation(chat_id=7, user_id=70, locale="en", data={"n": [1, 2]})
        await uow.conversations.save(conv)
        assert conv.version == 1
        await uow.commit()
    async with db.uow() as uow:
        stale = await uow.conversations.load(7)
        fresh = await uow.conversations.load(7)
        assert fresh is not None and stale is not None and fresh.data == {"n": [1, 2]}
        fresh.step = "moved"
        await uow.conversations.save(fresh)
        assert fresh.version == 2
        with pytest.raises(ConcurrentUpdate):
            await uow.conversations.save(stale)
        with pytest.raises(ConcurrentUpdate):
            await uow.conversations.save(Conversation(chat_id=7, user_id=70, locale="en"))


async def test_settling_replies_keeps_those_left_only_for_the_same_update(db: Any) -> None:
    async with db.uow() as uow:
        conv = Conversation(chat_id=7, user_id=70, locale="en", unconfirmed=(Reply("a"), Reply("b")),
                            unconfirmed_update=5, unconfirmed_since=T0, unconfirmed_by="me")
        await uow.conversations.save(conv)
        await uow.conversations.settle_replies(7, 4, ())
        kept = await uow.conversations.load(7)
        assert kept is not None and kept.unconfirmed == (Reply("a"), Reply("b"))
        await uow.conversations.settle_replies(7, 5, (Reply("b"),))
        left = await uow.conversations.load(7)
        assert left is not None and (left.unconfirmed, left.unconfirmed_update, left.unconfirmed_by) == (
            (Reply("b"),), 5, None)
        assert left.version == 1
        await uow.conversations.settle_replies(7, 5, ())
        done = await uow.conversations.load(7)
        assert done is not None and (done.unconfirmed, done.unconfirmed_update) == ((), None)


# -- cases -----------------------------------------------------------------------------------------
async def test_case_numbers_run_per_day_and_a_rolled_back_one_is_given_again(db: Any) -> None:
    async with db.uow() as uow:
        assert await uow.cases.next_case_no("20261124") == "R20261124-0001"
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.cases.next_case_no("20261124") == "R20261124-0002"
    async with db.uow() as uow:
        assert await uow.cases.next_case_no("20261124") == "R20261124-0002"
        assert await uow.cases.next_case_no("20261125") == "R20261125-0001"
        with pytest.raises(ValueError):
            await uow.cases.next_case_no("2026-11-24")


async def test_a_second_open_case_for_an_order_and_reason_raises_concurrent_update(db: Any) -> None:
    async with db.uow() as uow:
        await with_case(uow)
        with pytest.raises(ConcurrentUpdate):
            await with_case(uow, "R20261124-0002")
        await uow.commit()
    async with db.uow() as uow:
        await uow.cases.set_status(CASE, CaseStatus.CLOSED, actor="system", at=T0)
        await with_case(uow, "R20261124-0002")
        with pytest.raises(ConcurrentUpdate):
            await uow.cases.set_status(CASE, CaseStatus.APPEALED, actor="system", at=T0)


async def test_a_status_change_bumps_the_version_and_joins_the_history(db: Any) -> None:
    async with db.uow() as uow:
        await with_case(uow)
        moved = await uow.cases.set_status(CASE, CaseStatus.IN_REVIEW, actor="agent:1", at=T0, note="look")
        assert (moved.status, moved.version) == (CaseStatus.IN_REVIEW, 2)
        await uow.cases.log(CASE, actor="agent:2", at=T0, note="a note")
        history = await uow.desk.history(CASE)
        assert [(e.from_status, e.to_status, e.actor, e.note) for e in history] == [
            (None, "submitted", "customer", ""), ("submitted", "in_review", "agent:1", "look"),
            ("in_review", "in_review", "agent:2", "a note")]
        assert [e.actor for e in await uow.desk.history(CASE, limit=1)] == ["agent:2"]
        with pytest.raises(KeyError):
            await uow.cases.set_status("R0", CaseStatus.CLOSED, actor="x", at=T0)
        with pytest.raises(KeyError):
            await uow.cases.rate("R0", 5, None)


async def test_deadlines_status_message_and_rating_are_kept_on_the_case(db: Any) -> None:
    async with db.uow() as uow:
        await with_case(uow)
        due = make_case().review_due + timedelta(days=3)
        await uow.cases.set_due(CASE, credit_due=due)
        await uow.cases.set_due(CASE, review_due=due)
        await uow.cases.set_status_message(CASE, 55)
        await uow.cases.rate(CASE, 4, "ok")
        case = await uow.cases.get(CASE)
        assert case is not None
        assert (case.review_due, case.credit_due, case.status_message_id, case.rating, case.rating_comment) == (
            due, due, 55, 4, "ok")
        await uow.cases.set_status_message(CASE, None)
        assert (await uow.cases.get(CASE)).status_message_id is None
        with pytest.raises(KeyError):
            await uow.cases.set_due("R0", review_due=due)


async def test_cases_of_a_user_come_newest_first_and_of_an_order_oldest_first(db: Any) -> None:
    async with db.uow() as uow:
        await with_case(uow, "R1", created_at=T0)
        await with_case(uow, "R2", reason=make_case().reason.CARD_USED, created_at=T0 + timedelta(hours=1))
        await with_case(uow, "R3", order_no="A2", created_at=T0 + timedelta(hours=2), user_id=9)
        assert [c.case_no for c in await uow.cases.list_for_user(424242)] == ["R2", "R1"]
        assert [c.case_no for c in await uow.cases.list_for_user(424242, limit=1)] == ["R2"]
        assert [c.case_no for c in await uow.cases.for_order("A1001")] == ["R1", "R2"]
        assert [c.case_no for c in await uow.cases.search(since=T0 + timedelta(minutes=1))] == ["R2", "R3"]
        assert (await uow.cases.find_open("A1001", make_case().reason)).case_no == "R1"
        assert (await uow.cases.count_by_status()) == {CaseStatus.SUBMITTED: 3}


# -- evidence --------------------------------------------------------------------------------------
async def test_a_drafts_evidence_is_kept_once_and_goes_with_the_case_it_is_attached_to(db: Any) -> None:
    async with db.uow() as uow:
        assert await uow.evidence.add_draft("d1", 7, make_evidence("A")) is True
        assert await uow.evidence.add_draft("d1", 7, make_evidence("A")) is False
        assert await uow.evidence.add_draft("d1", 7, make_evidence("B", sha256="1" * 64)) is True
        assert await uow.evidence.add_draft("d2", 7, make_evidence("C", sha256="2" * 64)) is True
        await with_case(uow)
        assert await uow.evidence.attach("d1", CASE) == 2
        assert await uow.evidence.attach("d1", "R-other") == 0
        case = await uow.cases.get(CASE)
        assert case is not None and [e.file_unique_id for e in case.evidence] == ["A", "B"]
        assert await uow.evidence.stored_digests() == {"0" * 64, "1" * 64, "2" * 64}
        assert await uow.evidence.prune_drafts(utcnow() + timedelta(seconds=1)) == 1
        assert await uow.evidence.list_draft("d2") == []


# -- the outbox and blocked chats ------------------------------------------------------------------
async def test_the_outbox_queues_a_key_once_and_claims_only_the_head_of_each_chat(db: Any) -> None:
    async with db.uow() as uow:
        for n, chat in ((1, 7), (2, 7), (3, 8), (4, None)):
            assert await uow.outbox.add(message(n, chat))
        assert await uow.outbox.add(message(1, 9)) is False
        claimed = await uow.outbox.claim(owner="r1", now=T0, lease_seconds=60, limit=10)
        assert [d.payload["n"] for d in claimed] == [1, 3]
        assert await uow.outbox.claim(owner="r2", now=T0 + timedelta(seconds=30), lease_seconds=60, limit=10) == []
        again = await uow.outbox.claim(owner="r2", now=T0 + timedelta(seconds=61), lease_seconds=60, limit=1)
        assert [d.payload["n"] for d in again] == [1]
        await uow.outbox.mark_sent(claimed[0].id, at=T0, message_id=55)
        await uow.outbox.defer(claimed[1].id, until=T0 + timedelta(hours=1), error="429")
        later = await uow.outbox.claim(owner="r3", now=T0 + timedelta(minutes=5), lease_seconds=60, limit=10)
        assert [(d.payload["n"], d.attempts) for d in later] == [(2, 0)]
        assert [d.id for d in await uow.desk.delivered_as(7, 55, ["case_news"])] == [claimed[0].id]
        assert [d.payload["n"] for d in await uow.desk.queued_after(7, 0)] == [2]


async def test_held_rows_wait_for_their_chat_and_blocked_chats_leave_the_backlog(db: Any) -> None:
    async with db.uow() as uow:
        for n in (1, 2):
            await uow.outbox.add(message(n, 7))
        await uow.outbox.add(message(3, 8))
        [first, _] = await uow.outbox.claim(owner="r1", now=T0, lease_seconds=60, limit=10)
        await uow.outbox.hold(first.id, error="403")
        assert await uow.chats.mark_blocked(7, at=T0, reason="blocked") is True
        assert await uow.chats.mark_blocked(7, at=T0, reason="again") is False
        assert await uow.chats.blocked([7, 8]) == {7}
        assert await uow.outbox.backlog() == 1
        [other] = await uow.outbox.claim(owner="r1", now=T0 + timedelta(days=1), lease_seconds=60, limit=10)
        assert other.payload["n"] == 3  # the other chat's row, whose lease ran out; chat 7 waits
        await uow.outbox.mark_sent(other.id, at=T0, message_id=None)
        assert await uow.chats.unblock(7) is True and await uow.chats.unblock(7) is False
        assert await uow.outbox.release_held(7, at=T0) == 1
        again = await uow.outbox.claim(owner="r1", now=T0 + timedelta(days=1), lease_seconds=60, limit=10)
        assert [(d.payload["n"], d.attempts) for d in again] == [(1, 0)]
        await uow.outbox.give_up(again[0].id, at=T0, error="400")
        assert await uow.outbox.backlog() == 1


# -- timers, refunds, nonces, failed lookups -------------------------------------------------------
async def test_timers_are_set_once_claimed_under_a_lease_and_done_once(db: Any) -> None:
    async with db.uow() as uow:
        assert await uow.timers.schedule("R1", TimerKind.INFO_CLOSE, T0 + timedelta(minutes=2), version=1)
        assert not await uow.timers.schedule("R1", TimerKind.INFO_CLOSE, T0 + timedelta(minutes=2), version=1)
        assert await uow.timers.schedule("R1", TimerKind.INFO_REMINDER, T0 + timedelta(minutes=1), version=1)
        assert await uow.timers.schedule("R1", TimerKind.REVIEW_DUE, T0 + timedelta(days=1), version=1)
        due = await uow.timers.claim_due(owner="s1", now=T0 + timedelta(minutes=5), lease_seconds=60, limit=10)
        assert [t.kind for t in due] == [TimerKind.INFO_REMINDER, TimerKind.INFO_CLOSE]
        assert await uow.timers.claim_due(owner="s2", now=T0 + timedelta(minutes=5), lease_seconds=60, limit=10) == []
        await uow.timers.done(due[0].id, at=T0)
        assert [k for k, _ in await uow.timers.pending("R1")] == [TimerKind.INFO_CLOSE, TimerKind.REVIEW_DUE]
        assert await uow.timers.cancel("R1", [TimerKind.REVIEW_DUE]) == 1
        assert await uow.timers.cancel("R1") == 1
        assert await uow.timers.pending("R1") == []


async def test_refund_attempts_are_recorded_once_and_held_by_one_worker(db: Any) -> None:
    def attempt(n: int, gateway: str = "http") -> RefundAttempt:
        return RefundAttempt(case_no=CASE, idempotency_key=f"key{n}", gateway=gateway, amount=Decimal(10),
                             status=RefundStatus.PENDING, created_at=T0)

    async with db.uow() as uow:
        await with_case(uow)
        assert await uow.refunds.add(attempt(1)) and await uow.refunds.add(attempt(2))
        assert not await uow.refunds.add(attempt(1))
        assert await uow.refunds.add(attempt(3, "manual"))
        held = await uow.refunds.claim_pending(gateway="http", owner="w1", now=T0, lease_seconds=60, limit=1)
        assert [a.idempotency_key for a in held] == ["key1"]
        assert await uow.refunds.release("key1", owner="w2") is False
        assert await uow.refunds.release("key1", owner="w1", until=T0 + timedelta(minutes=5)) is True
        soon = await uow.refunds.claim_pending(gateway="http", owner="w2", now=T0, lease_seconds=60, limit=10)
        assert [a.idempotency_key for a in soon] == ["key2"]
        await uow.refunds.set_status("key2", RefundStatus.REQUESTED, at=T0, external_ref="ext", note="asked")
        await uow.refunds.set_status("key2", RefundStatus.SUCCEEDED, at=T0)
        assert await uow.refunds.release("key2", owner="w2") is False
        [_, paid, _] = await uow.refunds.for_order("A1001")
        assert (paid.status, paid.external_ref, paid.note) == (RefundStatus.SUCCEEDED, "ext", "")
        assert [a.idempotency_key for a in await uow.refunds.pending()] == ["key1", "key3"]
        with pytest.raises(KeyError):
            await uow.refunds.set_status("nope", RefundStatus.FAILED, at=T0)


async def test_a_nonce_is_remembered_once_and_pruned_when_old(db: Any) -> None:
    async with db.uow() as uow:
        assert await uow.nonces.remember("sig", T0) and not await uow.nonces.remember("sig", T0)
        assert await uow.nonces.prune(T0) == 0 and await uow.nonces.prune(T0 + timedelta(seconds=1)) == 1


async def test_failed_lookups_count_in_a_window_that_starts_again_when_it_ends(db: Any) -> None:
    window = timedelta(minutes=10)
    async with db.uow() as uow:
        assert await uow.lookups.get("KM1") is None
        assert (await uow.lookups.lock("KM1", now=T0)).failures == 0
        for minutes in (0, 5):
            tally = await uow.lookups.record("KM1", at=T0 + timedelta(minutes=minutes), window=window,
                                             forget_before=T0 - window)
        assert (tally.failures, tally.window_start) == (2, T0)
        tally = await uow.lookups.record("KM1", at=T0 + window, window=window, forget_before=T0)
        assert (tally.failures, tally.window_start) == (1, T0 + window)


# -- the desk --------------------------------------------------------------------------------------
async def test_a_desk_item_opens_once_is_taken_by_the_first_agent_and_reopens_unowned(db: Any) -> None:
    item = DeskItem(key=CASE, chat_id=7, user_id=7, opened_at=T0, case_no=CASE)
    async with db.uow() as uow:
        await with_case(uow)
        assert await uow.desk.open(item) is True and await uow.desk.open(item) is False
        assert await uow.desk.take(CASE, 1, at=T0) == 1
        assert await uow.desk.take(CASE, 2, at=T0) == 1
        assert (await uow.desk.owned_in_chat(7)).key == CASE
        assert await uow.desk.idle_owned(T0) == [] and len(await uow.desk.idle_owned(T0 + timedelta(1))) == 1
        await uow.desk.set_topic(CASE, thread_id=77, card_message_id=78)
        assert (await uow.desk.by_thread(77)).key == CASE
        await uow.desk.close(CASE, at=T0)
        assert await uow.desk.take(CASE, 2, at=T0) is None and await uow.desk.queue() == []
        assert await uow.desk.open(replace(item, opened_at=T0 + timedelta(1))) is True
        reopened = await uow.desk.get(CASE)
        assert reopened is not None and (reopened.owner_id, reopened.closed_at, reopened.thread_id) == (None, None, 77)
        with pytest.raises(KeyError):
            await uow.desk.set_topic("nope", thread_id=1, card_message_id=None)


async def test_the_desk_queue_puts_the_soonest_deadline_first_and_requests_by_age(db: Any) -> None:
    async with db.uow() as uow:
        await with_case(uow, "R1")
        await with_case(uow, "R2", order_no="A2", review_due=make_case().review_due - timedelta(days=1))
        for key, case_no, minutes in (("chat:9", None, 1), ("R1", "R1", 2), ("chat:8", None, 0), ("R2", "R2", 3)):
            await uow.desk.open(DeskItem(key=key, chat_id=9, user_id=9, opened_at=T0 + timedelta(minutes=minutes),
                                         case_no=case_no))
        queue = await uow.desk.queue()
        assert [(i.key, c.case_no if c else None) for i, c in queue] == [
            ("R2", "R2"), ("R1", "R1"), ("chat:8", None), ("chat:9", None)]
        assert len(await uow.desk.queue(limit=2)) == 2


async def test_desk_audit_links_and_approvals(db: Any) -> None:
    async with db.uow() as uow:
        await uow.desk.audit(actor_id=5, key=None, action="take", allowed=False, at=T0)
        await uow.desk.audit(actor_id=5, key=CASE, action="note", allowed=True, at=T0)
        assert await uow.desk.refused_attempts(5) == 1
        link = MessageLink(key=CASE, direction="to_desk", source_chat_id=7, source_message_id=1, copy_chat_id=-100)
        assert await uow.desk.add_link(link) is True and await uow.desk.add_link(link) is False
        await uow.desk.set_link_copy(7, 1, "to_desk", 99)
        assert await uow.desk.find_link(7, 1, "to_desk") == replace(link, copy_message_id=99)
        assert await uow.desk.find_link(7, 1, "to_customer") is None
        await uow.desk.request_approval(CASE, amount=Decimal(90), agent_id=5, at=T0)
        await uow.desk.request_approval(CASE, amount=Decimal(80), agent_id=6, at=T0)
        assert await uow.desk.pending_approval(CASE) == (Decimal(80), 6)
        await uow.desk.clear_approval(CASE)
        assert await uow.desk.pending_approval(CASE) is None


async def test_agent_requests_are_counted_per_chat(db: Any) -> None:
    from dialogs.domain import AgentRequest

    async with db.uow() as uow:
        await uow.agent_requests.add(AgentRequest(chat_id=7, user_id=7, created_at=T0))
        await uow.agent_requests.add(AgentRequest(chat_id=7, user_id=7, created_at=T0, order_no="A1"))
        assert (await uow.agent_requests.count_for_chat(7), await uow.agent_requests.count_for_chat(8)) == (2, 0)
