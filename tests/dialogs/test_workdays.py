import logging
from datetime import date

from dialogs.workdays import WorkingCalendar


def test_review_deadline_skips_national_day_and_counts_the_make_up_saturday():
    # 2026-10-01..07 are off; Saturday 2026-10-10 is a make-up working day (调休).
    assert WorkingCalendar().add_workdays(date(2026, 9, 30), 3) == date(2026, 10, 10)


def test_review_deadline_skips_spring_festival_and_counts_the_make_up_saturday():
    # Saturday 2026-02-14 is worked; 2026-02-15..23 are off.
    assert WorkingCalendar().add_workdays(date(2026, 2, 13), 3) == date(2026, 2, 25)


def test_filing_day_itself_does_not_count():
    assert WorkingCalendar().add_workdays(date(2026, 11, 23), 1) == date(2026, 11, 24)


def test_a_case_filed_on_28_december_gets_a_date_past_the_calendar_years(caplog):
    calendar = WorkingCalendar()
    with caplog.at_level(logging.WARNING):
        # 2026-12-29, 30, 31 are known working days; 2027 is past chinese-calendar 1.11.0.
        assert calendar.add_workdays(date(2026, 12, 28), 3) == date(2026, 12, 31)
        assert calendar.add_workdays(date(2026, 12, 30), 3) == date(2027, 1, 4)
        assert calendar.add_workdays(date(2026, 12, 30), 5) == date(2027, 1, 6)
    assert sum("2027" in r.message for r in caplog.records) == 1  # said once, not per day


def test_configured_holidays_and_make_up_days_apply_past_the_calendar_years():
    calendar = WorkingCalendar(extra_holidays=(date(2027, 1, 1),), extra_workdays=(date(2027, 1, 2),))
    # Dec 31 (1), Jan 1 is a holiday, Saturday Jan 2 is worked (2), Jan 4 (3).
    assert calendar.add_workdays(date(2026, 12, 30), 3) == date(2027, 1, 4)
    assert not calendar.is_workday(date(2027, 1, 1))
    assert calendar.is_workday(date(2027, 1, 2))
