"""Working-day service levels: the review and credit deadlines of a case and the timers that keep
them (reminders, silence closing, overdue alerts). Dates are Chinese working days (dialogs.workdays);
a deadline day ends at midnight in the configured time zone.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dialogs.domain import Case, CaseStatus, Order, TimerKind
from dialogs.ports import UnitOfWork
from dialogs.settings import CoreSettings
from dialogs.workdays import WorkingCalendar

C = CaseStatus

# Statuses whose next promise is the review deadline (the case waits on us, not on the customer).
AWAITING_REVIEW = frozenset({C.SUBMITTED, C.IN_REVIEW, C.APPEALED})
# Statuses whose next promise is the credit deadline.
AWAITING_CREDIT = frozenset({C.REFUNDING, C.REFUND_FAILED})


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


async def on_enter(uow: UnitOfWork, case: Case, at: datetime, settings: CoreSettings,
                   calendar: WorkingCalendar, order: Order | None) -> None:
    """Set the deadlines and timers a case needs now that it is `case.status` (at version
    `case.version`). Timers set for earlier versions go stale by themselves (see fire)."""
    if case.status is C.SUBMITTED or case.status is C.APPEALED:
        # An appeal is a new review: a new promise.
        due = case.review_due if case.status is C.SUBMITTED else review_due(at, settings, calendar)
        if due != case.review_due:
            await uow.cases.set_due(case.case_no, review_due=due)
        await uow.timers.schedule(case.case_no, TimerKind.REVIEW_DUE, end_of_day(due, settings), version=case.version)
    elif case.status is C.NEEDS_INFO:
        for hours in settings.sla.needs_info_reminder_hours:
            await uow.timers.schedule(case.case_no, TimerKind.INFO_REMINDER, at + timedelta(hours=hours),
                                      version=case.version)
        await uow.timers.schedule(case.case_no, TimerKind.INFO_CLOSE,
                                  at + timedelta(days=settings.sla.needs_info_close_days), version=case.version)
    elif case.status is C.REFUNDING and case.credit_due is None:
        due = credit_due(at, order, settings, calendar)
        await uow.cases.set_due(case.case_no, credit_due=due)
        await uow.timers.schedule(case.case_no, TimerKind.CREDIT_DUE, end_of_day(due, settings), version=case.version)
