"""Working-day deadlines of a case: review and credit dates across 国庆 and the Spring Festival with
their make-up working days (调休), per payment channel, and past the years chinese-calendar knows."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from dialogs import sla
from dialogs.domain import CaseStatus, PaymentChannel, TimerKind
from dialogs.settings import CoreSettings, PolicySettings, SlaSettings
from dialogs.workdays import WorkingCalendar
from tests.storage.factories import make_order

CST = timezone(timedelta(hours=8))
SETTINGS = CoreSettings()


def at(y: int, m: int, d: int, hour: int = 10) -> datetime:
    return datetime(y, m, d, hour, tzinfo=CST)


def test_a_case_filed_the_day_before_national_day_2025_is_reviewed_on_the_make_up_saturday() -> None:
    # 2025-10-01..08 are off; Saturday 2025-10-11 is worked (调休): 9th, 10th, 11th.
    assert sla.review_due(at(2025, 9, 30), SETTINGS, WorkingCalendar()) == date(2025, 10, 11)


def test_a_case_filed_the_day_before_national_day_2026_is_reviewed_on_the_make_up_saturday() -> None:
    # 2026-10-01..07 are off; Saturday 2026-10-10 is worked: 8th, 9th, 10th.
    assert sla.review_due(at(2026, 9, 30), SETTINGS, WorkingCalendar()) == date(2026, 10, 10)


def test_a_case_filed_before_spring_festival_2026_counts_the_make_up_saturday_before_it() -> None:
    # Saturday 2026-02-14 is worked, 2026-02-15..23 are off: 14th, 24th, 25th.
    assert sla.review_due(at(2026, 2, 13), SETTINGS, WorkingCalendar()) == date(2026, 2, 25)


def test_the_filing_day_is_the_local_day_not_the_utc_day() -> None:
    # 16:30 UTC on Friday the 13th is 00:30 on the make-up Saturday the 14th in Shanghai.
    filed = datetime(2026, 2, 13, 16, 30, tzinfo=UTC)
    assert sla.local_day(filed, SETTINGS) == date(2026, 2, 14)
    assert sla.review_due(filed, SETTINGS, WorkingCalendar()) == date(2026, 2, 26)


@pytest.mark.parametrize(("channel", "due"), [
    (PaymentChannel.BALANCE, date(2026, 2, 14)),  # 1 working day: the make-up Saturday
    (PaymentChannel.ALIPAY, date(2026, 2, 25)),  # 3
    (PaymentChannel.WECHAT, date(2026, 2, 25)),  # 3
    (PaymentChannel.BANK_CARD, date(2026, 2, 27)),  # 5: 14th, 24th..27th
])
def test_the_credit_deadline_depends_on_the_payment_channel(channel: PaymentChannel, due: date) -> None:
    order = make_order(payment_channel=channel)
    assert sla.credit_due(at(2026, 2, 13), order, SETTINGS, WorkingCalendar()) == due


def test_credit_days_per_channel_come_from_config_and_an_unknown_order_gets_the_longest() -> None:
    settings = CoreSettings(sla=SlaSettings(credit_working_days={PaymentChannel.ALIPAY: 2,
                                                                 PaymentChannel.BANK_CARD: 7}))
    calendar = WorkingCalendar()
    # 国庆 2026: from 30 Sep, Alipay 2 days = 8th, 9th; bank card 7 = 8, 9, 10 (Sat), 12, 13, 14, 15.
    assert sla.credit_due(at(2026, 9, 30), make_order(payment_channel=PaymentChannel.ALIPAY),
                          settings, calendar) == date(2026, 10, 9)
    assert sla.credit_due(at(2026, 9, 30), None, settings, calendar) == date(2026, 10, 15)
    # A channel missing from the table also gets the longest.
    assert sla.credit_due(at(2026, 9, 30), make_order(payment_channel=PaymentChannel.WECHAT),
                          settings, calendar) == date(2026, 10, 15)


def test_a_deadline_day_ends_at_local_midnight() -> None:
    assert sla.end_of_day(date(2026, 10, 10), SETTINGS) == datetime(2026, 10, 10, 16, 0, tzinfo=UTC)


def test_a_deadline_running_into_an_unknown_year_uses_the_configured_holidays_and_says_so_once(
        caplog: pytest.LogCaptureFixture) -> None:
    settings = CoreSettings(policy=PolicySettings(extra_holidays=(date(2027, 1, 1),)))
    calendar = WorkingCalendar(settings.policy.extra_holidays, settings.policy.extra_workdays)
    bank_card = make_order(payment_channel=PaymentChannel.BANK_CARD)
    with caplog.at_level(logging.WARNING, logger="dialogs.workdays"):
        # 31 Dec (known), then 2027: Friday 1 Jan is a configured holiday, 2-3 a weekend.
        assert sla.review_due(at(2026, 12, 30), settings, calendar) == date(2027, 1, 5)
        assert sla.credit_due(at(2026, 12, 30), bank_card, settings, calendar) == date(2027, 1, 7)
        assert sla.extended_due(date(2027, 1, 7), at(2027, 1, 8, 0), settings, calendar) == date(2027, 1, 11)
    warnings = [r for r in caplog.records if "2027" in r.getMessage()]
    assert len(warnings) == 1


def test_without_configured_holidays_an_unknown_year_counts_weekdays() -> None:
    assert sla.review_due(at(2026, 12, 30), SETTINGS, WorkingCalendar()) == date(2027, 1, 4)


def test_an_overdue_deadline_moves_by_the_configured_working_days_past_the_holiday() -> None:
    # Missed on 30 Sep 2026: two working days later is 9 Oct (1..7 off).
    fired = datetime(2026, 10, 1, 0, 0, 5, tzinfo=CST)
    assert sla.extended_due(date(2026, 9, 30), fired, SETTINGS, WorkingCalendar()) == date(2026, 10, 9)


def test_an_overdue_deadline_found_late_never_moves_into_the_past() -> None:
    # The sweeper was down: found on Monday 12 Oct, the new date is counted from the day before.
    found = at(2026, 10, 12)
    assert sla.extended_due(date(2026, 9, 30), found, SETTINGS, WorkingCalendar()) == date(2026, 10, 13)


def test_each_status_runs_only_its_own_clocks() -> None:
    assert sla.clocks(CaseStatus.IN_REVIEW) == {TimerKind.REVIEW_DUE}
    assert sla.clocks(CaseStatus.APPEALED) == {TimerKind.REVIEW_DUE}
    assert sla.clocks(CaseStatus.NEEDS_INFO) == {TimerKind.INFO_REMINDER, TimerKind.INFO_CLOSE}
    assert sla.clocks(CaseStatus.REFUND_FAILED) == {TimerKind.CREDIT_DUE}
    for status in (CaseStatus.APPROVED, CaseStatus.REJECTED, CaseStatus.REFUNDED, CaseStatus.CLOSED):
        assert sla.clocks(status) == frozenset()
