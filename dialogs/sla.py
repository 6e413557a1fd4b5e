"""Working-day service levels: the review and credit deadlines of a case and the timers that keep
them (reminders, silence closing, overdue alerts). Dates are Chinese working days (dialogs.workdays);
a deadline day ends at midnight in the configured time zone.

The deadlines live on the case row, the timers in the timers table: both survive restarts. A case
has, at any time, only the timers of the clocks its status runs (`CLOCKS`); `on_enter` drops the
others and sets the ones it needs. A due timer is `fire`d by the sweeper (bot/workers/timers.py) and does
something only if it still applies: the case may have moved on since it was set.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from dialogs.domain import Case, CaseStatus, Order, OutboxMessage, Timer, TimerKind
from dialogs.outbox import DEADLINE_MOVED, INFO_REMINDER, SUPERVISOR_ALERT
from dialogs.ports import ConcurrentUpdate, UnitOfWork
from dialogs.settings import CoreSettings
from dialogs.texts import Texts
from dialogs.workdays import WorkingCalendar

C = CaseStatus
K = TimerKind

# Statuses whose next promise is the review deadline (the case waits on us, not on the customer).
AWAITING_REVIEW = frozenset({C.SUBMITTED, C.IN_REVIEW, C.APPEALED})
# Statuses whose next promise is the credit deadline.
AWAITING_CREDIT = frozenset({C.REFUNDING, C.REFUND_FAILED})
INFO_TIMERS = frozenset({K.INFO_REMINDER, K.INFO_CLOSE})


class CaseMover(Protocol):
    """What a due timer needs of the case lifecycle: dialogs.cases.CaseWorkflow, which runs this
    module's clocks on every move (so this module names the role, not the class)."""

    @property
    def settings(self) -> CoreSettings: ...

    @property
    def calendar(self) -> WorkingCalendar: ...

    async def move(self, uow: UnitOfWork, case_no: str, trigger: str, *, actor: str, at: datetime,
                   note: str = "") -> Case: ...


def clocks(status: CaseStatus) -> frozenset[TimerKind]:
    """The timers a case of this status may have."""
    if status in AWAITING_REVIEW:
        return frozenset({K.REVIEW_DUE})
    if status in AWAITING_CREDIT:
        return frozenset({K.CREDIT_DUE})
    if status is C.NEEDS_INFO:
        return INFO_TIMERS
    return frozenset()


def next_deadline(case: Case) -> tuple[str, date] | None:
    """("review" | "credit", the day) of the promise the case waits on now; None when it waits on nobody
    (or on the customer). The customer's card and the desk card both show it."""
    if case.status in AWAITING_REVIEW:
        return "review", case.review_due
    if case.status in AWAITING_CREDIT and case.credit_due is not None:
        return "credit", case.credit_due
    return None


def deadline_line(case: Case, t: Texts, review: str = "card.review_due", credit: str = "card.credit_due") -> str:
    """The next promised date, as an ISO date, in the words of the desk card (the caller names its keys);
    the customer's card and /status say it with the weekday (dialogs.words.deadline_line)."""
    deadline = next_deadline(case)
    if deadline is None:
        return ""
    return t(review if deadline[0] == "review" else credit, due=deadline[1].isoformat())


def local_day(moment: datetime, settings: CoreSettings) -> date:
    return moment.astimezone(ZoneInfo(settings.i18n.timezone)).date()


def end_of_day(day: date, settings: CoreSettings) -> datetime:
    """The instant a deadline day is over: the next midnight in the configured time zone."""
    return datetime.combine(day + timedelta(days=1), time(0), ZoneInfo(settings.i18n.timezone))


def review_due(filed_at: datetime, settings: CoreSettings, calendar: WorkingCalendar) -> date:
    return calendar.add_workdays(local_day(filed_at, settings), settings.policy.review_working_days)


def credit_due(started_at: datetime, order: Order | None, settings: CoreSettings, calendar: WorkingCalendar) -> date:
    days = settings.sla.credit_days(order.payment_channel) if order is not None else max(
        settings.sla.credit_working_days.values(), default=5)
    return calendar.add_workdays(local_day(started_at, settings), days)


def extended_due(missed: date, now: datetime, settings: CoreSettings, calendar: WorkingCalendar) -> date:
    """The new date of a missed deadline: `overdue_extension_working_days` after the missed day, or
    after yesterday when the overdue timer fired late (a sweeper was down), so it is never past."""
    base = max(missed, local_day(now, settings) - timedelta(days=1))
    return calendar.add_workdays(base, settings.sla.overdue_extension_working_days)


async def on_enter(uow: UnitOfWork, case: Case, at: datetime, settings: CoreSettings,
                   calendar: WorkingCalendar, order: Order | None) -> None:
    """Set the deadlines and timers a case needs now that it is `case.status` (at version
    `case.version`), and drop the timers of the clocks that stopped.

    - submitted: the review clock starts at the date the case was filed with.
    - in_review: from submitted, the review clock runs on (its timer is pending). Back from
      needs_info or refund_failed (no review timer pending) the promise stands unless it lapsed
      meanwhile; a lapsed one is replaced by a fresh review period from now — the wait was the
      customer's (or a failed payment's), not a broken promise of ours.
    - appealed: an appeal is a new review, a new promise from now.
    - needs_info: reminders and the silence close, tied to this version of the case.
    - refunding: a new transfer (first start, a re-approval after a hand-over, or a retry after a
      failure) gets the channel's credit period from now, never earlier than a date already
      promised; the refunding news tells the customer the date.
    - refund_failed: the credit clock runs on (the case still waits for the money).
    """
    # A case just filed has no timers yet (the common case: spare it the query).
    pending = {kind for kind, _ in await uow.timers.pending(case.case_no)} if case.version > 1 else set()
    stopped = pending - clocks(case.status)
    if stopped:
        await uow.timers.cancel(case.case_no, stopped)
    if case.status is C.SUBMITTED:
        await _set_review(uow, case, case.review_due, settings, pending)
    elif case.status is C.IN_REVIEW:
        if K.REVIEW_DUE not in pending:
            due = case.review_due
            if due < local_day(at, settings):
                due = review_due(at, settings, calendar)
            await _set_review(uow, case, due, settings, pending)
    elif case.status is C.APPEALED:
        await _set_review(uow, case, review_due(at, settings, calendar), settings, pending)
    elif case.status is C.NEEDS_INFO:
        await _set_info_clock(uow, case, at, settings)
    elif case.status is C.REFUNDING:
        due = credit_due(at, order, settings, calendar)
        if case.credit_due is not None and case.credit_due > due:
            due = case.credit_due
        if due != case.credit_due:
            await uow.cases.set_due(case.case_no, credit_due=due)
        if K.CREDIT_DUE in pending:
            await uow.timers.cancel(case.case_no, [K.CREDIT_DUE])
        await uow.timers.schedule(case.case_no, K.CREDIT_DUE, end_of_day(due, settings), version=case.version)


async def _set_info_clock(uow: UnitOfWork, case: Case, at: datetime, settings: CoreSettings) -> None:
    for hours in settings.sla.needs_info_reminder_hours:
        await uow.timers.schedule(case.case_no, K.INFO_REMINDER, at + timedelta(hours=hours), version=case.version)
    await uow.timers.schedule(case.case_no, K.INFO_CLOSE, at + timedelta(days=settings.sla.needs_info_close_days),
                              version=case.version)


async def restart_info_clock(uow: UnitOfWork, chat_id: int, at: datetime, settings: CoreSettings) -> None:
    """The customer's chat was reopened (see dialogs.reach): each of its needs_info cases gets its
    reminders and its silence close anew from `at`, as if the request had just been asked. While the
    chat was blocked the request could not reach them (see `fire`): the wait is not theirs."""
    for case in await uow.cases.list_for_user(chat_id):
        if case.status is C.NEEDS_INFO and case.chat_id == chat_id:
            await uow.timers.cancel(case.case_no, INFO_TIMERS)
            await _set_info_clock(uow, case, at, settings)


async def _set_review(uow: UnitOfWork, case: Case, due: date, settings: CoreSettings,
                      pending: set[TimerKind]) -> None:
    if due != case.review_due:
        await uow.cases.set_due(case.case_no, review_due=due)
    if K.REVIEW_DUE in pending:
        await uow.timers.cancel(case.case_no, [K.REVIEW_DUE])
    await uow.timers.schedule(case.case_no, K.REVIEW_DUE, end_of_day(due, settings), version=case.version)


async def fire(uow: UnitOfWork, timer: Timer, now: datetime, workflow: CaseMover) -> None:
    """Apply a due timer if it still applies, else do nothing (the caller marks it done either way).

    - info_reminder / info_close: only while the case is needs_info at the timer's version, and not
      while the customer's chat is blocked (nothing asked reached them; reopening the chat restarts
      the clock: `restart_info_clock`).
    - review_due: only while the case awaits review and its review date is the one the timer
      was set for; credit_due likewise while the money is on its way.
    An overdue deadline moves by `overdue_extension_working_days`, the customer gets an apology
    with the new date, the supervisors an alert, and a timer watches the new date.

    Raises ConcurrentUpdate when the case moved while this ran: retry in a fresh unit of work.
    """
    case = await uow.cases.get(timer.case_no)
    if case is None:
        return
    if timer.kind in INFO_TIMERS:
        if case.status is not C.NEEDS_INFO or case.version != timer.version:
            return
        if await uow.chats.blocked([case.chat_id]):
            return
        if timer.kind is K.INFO_CLOSE:
            await workflow.move(uow, case.case_no, "close_silent", actor="system", at=now,
                                note=f"no answer within {workflow.settings.sla.needs_info_close_days} days")
        else:
            await _remind(uow, case, timer, now, workflow.settings)
        return
    due: date | None
    if timer.kind is K.REVIEW_DUE:
        deadline, awaiting, due = "review", AWAITING_REVIEW, case.review_due
    else:
        deadline, awaiting, due = "credit", AWAITING_CREDIT, case.credit_due
    if case.status in awaiting and due is not None and timer.due_at == end_of_day(due, workflow.settings):
        await _overdue(uow, case, deadline, due, now, workflow)


async def _remind(uow: UnitOfWork, case: Case, timer: Timer, now: datetime, settings: CoreSettings) -> None:
    close = await info_close_at(uow, case.case_no, settings)
    if close is None:  # nothing will close the case: a deadline we cannot name is no reminder
        return
    await uow.outbox.add(OutboxMessage(
        kind=INFO_REMINDER, chat_id=case.chat_id, dedupe_key=f"timer:{timer.id}:reminder",
        payload={"case_no": case.case_no, "close": close}, created_at=now))


async def info_close_at(uow: UnitOfWork, case_no: str, settings: CoreSettings) -> str | None:
    """When a needs_info case closes for silence, in local time ("YYYY-MM-DD HH:MM"); None: it does not."""
    close = await info_close_due(uow, case_no)
    if close is None:
        return None
    return close.astimezone(ZoneInfo(settings.i18n.timezone)).strftime("%Y-%m-%d %H:%M")


async def info_close_due(uow: UnitOfWork, case_no: str) -> datetime | None:
    """The instant the silence timer closes a needs_info case; None: nothing will close it."""
    closes = [due_at for kind, due_at in await uow.timers.pending(case_no) if kind is K.INFO_CLOSE]
    return max(closes) if closes else None


async def _overdue(uow: UnitOfWork, case: Case, deadline: str, missed: date, now: datetime,
                   workflow: CaseMover) -> None:
    settings = workflow.settings
    new_due = extended_due(missed, now, settings, workflow.calendar)
    if deadline == "review":
        await uow.cases.set_due(case.case_no, review_due=new_due)
    else:
        await uow.cases.set_due(case.case_no, credit_due=new_due)
    # The UPDATE above holds the case's row until commit: if the case moved between our read and
    # it, say so and let the caller retry on the fresh state (where this timer is stale).
    locked = await uow.cases.get(case.case_no)
    if locked is None or locked.version != case.version:
        raise ConcurrentUpdate(f"case {case.case_no} moved while its {deadline} deadline was extended")
    kind = K.REVIEW_DUE if deadline == "review" else K.CREDIT_DUE
    await uow.timers.schedule(case.case_no, kind, end_of_day(new_due, settings), version=case.version)
    # One apology and one alert per missed date of a case version, whichever timer got here.
    key = f"sla:{case.case_no}:v{case.version}:{deadline}:{missed.isoformat()}"
    await uow.outbox.add(OutboxMessage(
        kind=DEADLINE_MOVED, chat_id=case.chat_id, dedupe_key=f"{key}:customer",
        payload={"case_no": case.case_no, "deadline": deadline, "new_due": new_due.isoformat()}, created_at=now))
    if settings.sla.supervisors_chat_id:
        await uow.outbox.add(OutboxMessage(
            kind=SUPERVISOR_ALERT, chat_id=settings.sla.supervisors_chat_id, dedupe_key=f"{key}:supervisors",
            payload={"case_no": case.case_no, "deadline": deadline, "due": missed.isoformat(),
                     "new_due": new_due.isoformat()}, created_at=now))
