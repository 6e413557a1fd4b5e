"""The rows a fake database holds: plain mutable records, copied whole at the start of a unit of work
and at its commit (so nothing uncommitted is ever seen, and a rollback just drops the copy)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from dialogs.domain import (
    AgentRequest,
    Case,
    Conversation,
    DeskItem,
    EvidenceItem,
    MessageLink,
    Order,
    RefundAttempt,
    TimerKind,
)
from dialogs.ports import LookupTally, Restriction, StaffChange, StaffMember

# A held outbox row: due at a time that never comes, until its chat is released (as storage.delivery).
HELD_UNTIL = datetime(9000, 1, 1, tzinfo=UTC)


@dataclass
class CaseEventRow:
    id: int
    case_no: str
    at: datetime
    actor: str
    from_status: str | None
    to_status: str
    note: str


@dataclass
class EvidenceRow:
    id: int
    draft_id: str
    case_no: str | None
    chat_id: int
    item: EvidenceItem
    created_at: datetime


@dataclass
class OutboxRow:
    id: int
    kind: str
    chat_id: int | None
    dedupe_key: str
    payload: dict[str, Any]
    created_at: datetime
    available_at: datetime
    attempts: int = 0
    sent_at: datetime | None = None
    dead_at: datetime | None = None
    last_error: str | None = None
    message_id: int | None = None
    claimed_by: str | None = None
    claim_until: datetime | None = None

    @property
    def open(self) -> bool:
        return self.sent_at is None and self.dead_at is None


@dataclass
class TimerRow:
    id: int
    case_no: str
    kind: TimerKind
    version: int
    due_at: datetime
    done_at: datetime | None = None
    claimed_by: str | None = None
    claim_until: datetime | None = None


@dataclass
class AttemptRow:
    id: int
    attempt: RefundAttempt
    updated_at: datetime
    claimed_by: str | None = None
    claim_until: datetime | None = None


@dataclass
class AuditRow:
    id: int
    at: datetime
    actor_id: int
    key: str | None
    action: str
    allowed: bool
    detail: str


@dataclass
class Tables:
    """Everything a fake database stores. Cases are kept without their evidence (the evidence rows
    say which case they belong to, as in SQL); ids come from one counter."""

    orders: dict[str, Order] = field(default_factory=dict)
    lookups: dict[str, tuple[LookupTally, datetime]] = field(default_factory=dict)  # tally, updated_at
    counters: dict[str, int] = field(default_factory=dict)
    cases: dict[str, Case] = field(default_factory=dict)  # in insertion (id) order
    case_events: list[CaseEventRow] = field(default_factory=list)
    conversations: dict[int, Conversation] = field(default_factory=dict)
    evidence: list[EvidenceRow] = field(default_factory=list)
    updates: dict[int, datetime] = field(default_factory=dict)
    agent_requests: list[AgentRequest] = field(default_factory=list)
    outbox: dict[int, OutboxRow] = field(default_factory=dict)
    blocked_chats: dict[int, tuple[datetime, str]] = field(default_factory=dict)
    timers: dict[int, TimerRow] = field(default_factory=dict)
    refunds: dict[int, AttemptRow] = field(default_factory=dict)
    nonces: dict[str, datetime] = field(default_factory=dict)
    desk: dict[str, DeskItem] = field(default_factory=dict)
    audit: list[AuditRow] = field(default_factory=list)
    links: list[MessageLink] = field(default_factory=list)
    approvals: dict[str, tuple[Decimal, int, datetime]] = field(default_factory=dict)
    staff: dict[int, StaffMember] = field(default_factory=dict)  # in first-added order
    staff_events: list[StaffChange] = field(default_factory=list)
    restrictions: dict[int, Restriction] = field(default_factory=dict)
    last_id: int = 0

    def new_id(self) -> int:
        self.last_id += 1
        return self.last_id
