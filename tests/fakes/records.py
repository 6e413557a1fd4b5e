"""Fake repositories of what the dialog records: orders, failed lookups, cases, conversations,
evidence, the update ledger and /agent requests. Same answers, same errors as the Sqla* repositories in storage/."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta

from dialogs.clock import Clock
from dialogs.domain import (
    OPEN_STATUSES,
    AgentRequest,
    Case,
    CaseStatus,
    Conversation,
    EvidenceItem,
    Order,
    Reason,
)
from dialogs.io import Reply
from dialogs.order_facts import FactsLocked, changed_facts, keep_facts
from dialogs.ports import BulkUpsert, ConcurrentUpdate, FactsMode, LookupTally
from tests.fakes.tables import CaseEventRow, EvidenceRow, Tables


class Work:
    """The tables a unit of work sees (its private copy) and its clock; repositories read through it,
    so a rollback that swaps the copy reaches every repository."""

    def __init__(self, tables: Tables, clock: Clock) -> None:
        self.tables = tables
        self.clock = clock


class FakeRepository:
    def __init__(self, work: Work) -> None:
        self._work = work

    @property
    def _t(self) -> Tables:
        return self._work.tables


class FakeOrderStore(FakeRepository):
    async def get(self, order_no: str) -> Order | None:
        return self._t.orders.get(order_no)

    async def lock(self, order_no: str) -> Order | None:
        return self._t.orders.get(order_no)  # one unit of work at a time: already ours

    async def upsert(self, order: Order, *, facts: FactsMode = "refuse") -> bool:
        stored = self._t.orders.get(order.order_no)
        if stored is not None and facts != "correct" and self._has_cases(order.order_no):
            changed = changed_facts(stored, order)
            if changed and facts == "refuse":
                raise FactsLocked(order.order_no, changed)
            order = keep_facts(stored, order)
        self._t.orders[order.order_no] = order
        return stored is None

    async def upsert_many(self, orders: Sequence[Order]) -> BulkUpsert:
        inserted = updated = 0
        refused: list[tuple[int, tuple[str, ...]]] = []
        for index, order in enumerate(orders):
            try:
                if await self.upsert(order):
                    inserted += 1
                else:
                    updated += 1
            except FactsLocked as exc:
                refused.append((index, exc.fields))
        return BulkUpsert(inserted, updated, tuple(refused))

    def _has_cases(self, order_no: str) -> bool:
        return any(case.order_no == order_no for case in self._t.cases.values())


_TALLY_KEY_LENGTH = 64


class FakeLookupFailures(FakeRepository):
    async def get(self, order_no: str) -> LookupTally | None:
        found = self._t.lookups.get(order_no[:_TALLY_KEY_LENGTH])
        return found[0] if found else None

    async def lock(self, order_no: str, *, now: datetime) -> LookupTally:
        key = order_no[:_TALLY_KEY_LENGTH]
        if key not in self._t.lookups:
            self._t.lookups[key] = (LookupTally(order_no=key, window_start=now, failures=0, last_failed_at=None), now)
        return self._t.lookups[key][0]

    async def record(self, order_no: str, *, at: datetime, window: timedelta, forget_before: datetime) -> LookupTally:
        before = await self.lock(order_no, now=at)
        if before.failures == 0 or at - before.window_start >= window:
            tally = LookupTally(order_no=before.order_no, window_start=at, failures=1, last_failed_at=at)
        else:
            tally = replace(before, failures=before.failures + 1, last_failed_at=at)
        self._t.lookups[tally.order_no] = (tally, at)
        stale = [k for k, (_, updated) in self._t.lookups.items() if updated < forget_before][:100]
        for key in stale:
            del self._t.lookups[key]
        return tally


_DAY = re.compile(r"\d{8}")


class FakeCaseRepository(FakeRepository):
    async def next_case_no(self, day: str) -> str:
        if not _DAY.fullmatch(day):
            raise ValueError(f"day must be YYYYMMDD, got {day!r}")
        number = self._t.counters.get(day, 0) + 1
        self._t.counters[day] = number
        return f"R{day}-{number:04d}"

    def _open_elsewhere(self, case: Case) -> bool:
        return case.status in OPEN_STATUSES and any(
            other.case_no != case.case_no and other.status in OPEN_STATUSES
            and (other.order_no, other.reason) == (case.order_no, case.reason) for other in self._t.cases.values())

    def _event(self, case_no: str, at: datetime, actor: str, from_status: str | None, to_status: str,
               note: str) -> None:
        self._t.case_events.append(CaseEventRow(self._t.new_id(), case_no, at, actor, from_status, to_status, note))

    async def add(self, case: Case) -> None:
        if case.order_no not in self._t.orders:  # the foreign key: a bug, not a race
            raise LookupError(f"no order {case.order_no}")
        if self._open_elsewhere(case):
            raise ConcurrentUpdate(f"an open case for {case.order_no}/{case.reason.value} was filed concurrently")
        if case.case_no in self._t.cases:
            raise ConcurrentUpdate(f"case number {case.case_no} is taken")
        paid = case.order_paid if case.order_paid is not None else self._t.orders[case.order_no].amount
        self._t.cases[case.case_no] = replace(case, evidence=(), version=1, status_message_id=None, rating=None,
                                              rating_comment=None, order_paid=paid)
        self._event(case.case_no, case.created_at, "customer", None, case.status.value, "")

    def _with_evidence(self, case: Case) -> Case:
        return replace(case, evidence=tuple(r.item for r in self._t.evidence if r.case_no == case.case_no))

    async def get(self, case_no: str, *, for_update: bool = False) -> Case | None:
        case = self._t.cases.get(case_no)
        return self._with_evidence(case) if case is not None else None

    async def find_open(self, order_no: str, reason: Reason) -> Case | None:
        for case in self._t.cases.values():
            if case.status in OPEN_STATUSES and (case.order_no, case.reason) == (order_no, Reason(reason)):
                return self._with_evidence(case)
        return None

    async def for_order(self, order_no: str) -> list[Case]:
        return sorted((c for c in self._t.cases.values() if c.order_no == order_no), key=lambda c: c.created_at)

    async def list_for_user(self, user_id: int, limit: int = 20) -> list[Case]:
        newest = sorted((c for c in reversed(self._t.cases.values()) if c.user_id == user_id),
                        key=lambda c: c.created_at, reverse=True)  # stable: ties stay newest id first
        return [self._with_evidence(c) for c in newest[:limit]]

    def _stored(self, case_no: str) -> Case:
        try:
            return self._t.cases[case_no]
        except KeyError:
            raise KeyError(case_no) from None

    async def set_status(self, case_no: str, status: CaseStatus, *, actor: str, at: datetime | None = None,
                         note: str = "") -> Case:
        at = at or self._work.clock()
        case = self._stored(case_no)
        moved = replace(case, status=status, version=case.version + 1)
        if self._open_elsewhere(moved):
            raise ConcurrentUpdate(f"another open case exists for {case.order_no}/{case.reason.value}")
        self._t.cases[case_no] = moved
        self._event(case_no, at, actor, case.status.value, status.value, note)
        return self._with_evidence(moved)

    async def log(self, case_no: str, *, actor: str, at: datetime, note: str) -> None:
        case = self._stored(case_no)
        self._event(case_no, at, actor, case.status.value, case.status.value, note[:2000])

    async def set_due(self, case_no: str, *, review_due: date | None = None, credit_due: date | None = None) -> None:
        case = self._stored(case_no)
        self._t.cases[case_no] = replace(case, review_due=review_due or case.review_due,
                                         credit_due=credit_due or case.credit_due)

    async def set_status_message(self, case_no: str, message_id: int | None) -> None:
        self._t.cases[case_no] = replace(self._stored(case_no), status_message_id=message_id)

    async def rate(self, case_no: str, rating: int, comment: str | None) -> None:
        self._t.cases[case_no] = replace(self._stored(case_no), rating=rating, rating_comment=comment)

    async def search(self, *, statuses: Iterable[CaseStatus] = (), since: datetime | None = None,
                     until: datetime | None = None, limit: int | None = None) -> list[Case]:
        wanted = {CaseStatus(s) for s in statuses}
        found = sorted((c for c in self._t.cases.values()
                        if (not wanted or c.status in wanted) and (since is None or c.created_at >= since)
                        and (until is None or c.created_at < until)), key=lambda c: c.created_at)
        return [self._with_evidence(c) for c in found[:limit]]

    async def count_by_status(self) -> dict[CaseStatus, int]:
        counts: dict[CaseStatus, int] = {}
        for case in self._t.cases.values():
            counts[case.status] = counts.get(case.status, 0) + 1
        return counts

    async def events(self, case_no: str) -> list[tuple[str | None, str, str]]:
        """(from_status, to_status, actor), oldest first: as SqlaCaseRepository.events, for tests."""
        return [(e.from_status, e.to_status, e.actor) for e in self._t.case_events if e.case_no == case_no]


def _stored_conversation(conversation: Conversation) -> Conversation:
    """What a row keeps: plain strings and `data` as JSON (a value JSON cannot hold fails here as it
    would in SQL; an enum member comes back as its value)."""
    return replace(conversation, step=str(conversation.step), locale=str(conversation.locale),
                   data=json.loads(json.dumps(conversation.data)))


class FakeConversationRepository(FakeRepository):
    async def load(self, chat_id: int) -> Conversation | None:
        stored = self._t.conversations.get(chat_id)
        return _stored_conversation(stored) if stored is not None else None

    async def save(self, conversation: Conversation) -> None:
        stored = self._t.conversations.get(conversation.chat_id)
        if conversation.version == 0:
            if stored is not None:
                raise ConcurrentUpdate(f"conversation {conversation.chat_id} created concurrently")
        elif stored is None or stored.version != conversation.version:
            raise ConcurrentUpdate(f"conversation {conversation.chat_id} moved past version {conversation.version}")
        kept = _stored_conversation(replace(conversation, version=conversation.version + 1))
        if not kept.unconfirmed:
            kept.unconfirmed_update = kept.unconfirmed_since = kept.unconfirmed_by = None
        self._t.conversations[conversation.chat_id] = kept
        conversation.version += 1

    async def settle_replies(self, chat_id: int, update_id: int, left: Sequence[Reply]) -> None:
        stored = self._t.conversations.get(chat_id)
        if stored is None or stored.unconfirmed_update != update_id:
            return
        stored.unconfirmed = tuple(left)
        stored.unconfirmed_update = update_id if left else None
        stored.unconfirmed_since = stored.unconfirmed_by = None


class FakeEvidenceRepository(FakeRepository):
    async def add_draft(self, draft_id: str, chat_id: int, item: EvidenceItem) -> bool:
        if any(r.draft_id == draft_id and r.item.file_unique_id == item.file_unique_id for r in self._t.evidence):
            return False
        self._t.evidence.append(EvidenceRow(self._t.new_id(), draft_id, None, chat_id, item, self._work.clock()))
        return True

    async def list_draft(self, draft_id: str) -> list[EvidenceItem]:
        return [r.item for r in self._t.evidence if r.draft_id == draft_id]

    async def attach(self, draft_id: str, case_no: str) -> int:
        rows = [r for r in self._t.evidence if r.draft_id == draft_id and r.case_no is None]
        for row in rows:  # only unbound rows: evidence already bound to a case stays with it
            row.case_no = case_no
        return len(rows)

    async def prune_drafts(self, before: datetime) -> int:
        last: dict[str, datetime] = {}
        for row in self._t.evidence:
            if row.case_no is None:
                last[row.draft_id] = max(last.get(row.draft_id, row.created_at), row.created_at)
        stale = {draft for draft, at in last.items() if at < before}
        kept = [r for r in self._t.evidence if r.case_no is not None or r.draft_id not in stale]
        pruned = len(self._t.evidence) - len(kept)
        self._t.evidence[:] = kept
        return pruned

    async def stored_digests(self) -> set[str]:
        return {r.item.sha256 for r in self._t.evidence}


class FakeUpdateLedger(FakeRepository):
    async def claim(self, update_id: int, chat_id: int, at: datetime) -> bool:
        if update_id in self._t.updates:
            return False
        self._t.updates[update_id] = at
        return True

    async def prune(self, before: datetime) -> int:
        old = [u for u, at in self._t.updates.items() if at < before]
        for update_id in old:
            del self._t.updates[update_id]
        return len(old)


class FakeAgentRequests(FakeRepository):
    async def add(self, request: AgentRequest) -> None:
        self._t.agent_requests.append(request)

    async def count_for_chat(self, chat_id: int) -> int:
        return sum(1 for r in self._t.agent_requests if r.chat_id == chat_id)
