"""The desk's working hours (dialogs/hours.py): open or not, the next opening across Chinese holidays
and make-up working days, and the words customers read."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from dialogs.hours import is_open, next_opening, off_hours_notice, reply_promise
from dialogs.settings import CoreSettings, DeskSettings, HoursSettings
from dialogs.texts import Texts
from dialogs.workdays import WorkingCalendar

TZ = "Asia/Shanghai"
SHANGHAI = ZoneInfo(TZ)
CALENDAR = WorkingCalendar()
OFFICE = HoursSettings(start="09:00", end="21:00", days="workdays", typical_reply_minutes=15)


def local(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=SHANGHAI)  # type: ignore[misc]


def settings(hours: HoursSettings = OFFICE) -> CoreSettings:
    return CoreSettings(desk=DeskSettings(hours=hours))


def test_the_default_hours_are_always_open() -> None:
    assert is_open(local(2026, 10, 1, 3, 0), HoursSettings(), TZ, CALENDAR)
    assert reply_promise(local(2026, 10, 1, 3, 0), CoreSettings(), CALENDAR, Texts("zh_CN")) is None


def test_a_working_day_is_open_between_start_and_end_only() -> None:
    assert is_open(local(2026, 9, 30, 9, 0), OFFICE, TZ, CALENDAR)
    assert is_open(local(2026, 9, 30, 20, 59), OFFICE, TZ, CALENDAR)
    assert not is_open(local(2026, 9, 30, 21, 0), OFFICE, TZ, CALENDAR)
    assert not is_open(local(2026, 9, 30, 8, 59), OFFICE, TZ, CALENDAR)


def test_national_day_is_closed_and_the_next_opening_is_after_the_holiday() -> None:
    assert not is_open(local(2026, 10, 1, 10, 0), OFFICE, TZ, CALENDAR)  # a Thursday, but a holiday
    assert next_opening(local(2026, 9, 30, 22, 0), OFFICE, TZ, CALENDAR) == local(2026, 10, 8, 9, 0)


def test_a_make_up_working_day_on_a_saturday_is_open() -> None:
    assert is_open(local(2026, 10, 10, 10, 0), OFFICE, TZ, CALENDAR)  # Saturday, 调休
    assert next_opening(local(2026, 10, 9, 22, 0), OFFICE, TZ, CALENDAR) == local(2026, 10, 10, 9, 0)
    assert next_opening(local(2026, 10, 10, 22, 0), OFFICE, TZ, CALENDAR) == local(2026, 10, 12, 9, 0)


def test_every_day_opens_on_holidays_too() -> None:
    every_day = OFFICE.model_copy(update={"days": "every_day"})
    assert is_open(local(2026, 10, 1, 10, 0), every_day, TZ, CALENDAR)
    assert next_opening(local(2026, 10, 1, 22, 0), every_day, TZ, CALENDAR) == local(2026, 10, 2, 9, 0)


def test_a_window_past_midnight_belongs_to_the_day_it_starts_on() -> None:
    night = HoursSettings(start="20:00", end="02:00", days="workdays")
    assert is_open(local(2026, 9, 30, 1, 30), night, TZ, CALENDAR)  # Tuesday's shift, on Wednesday
    assert is_open(local(2026, 10, 1, 1, 30), night, TZ, CALENDAR)  # Wednesday's shift runs into the holiday
    assert not is_open(local(2026, 10, 2, 1, 30), night, TZ, CALENDAR)  # 10-01 is a holiday: no shift


def test_the_clock_in_utc_is_read_in_the_platform_time_zone() -> None:
    saturday_night = datetime(2026, 12, 5, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai
    assert next_opening(saturday_night, OFFICE, TZ, CALENDAR) == local(2026, 12, 7, 9, 0)


def test_off_hours_the_customer_reads_the_hours_and_the_next_opening_in_both_languages() -> None:
    saturday_night = local(2026, 12, 5, 23, 0)
    assert off_hours_notice(saturday_night, settings(), CALENDAR, Texts("zh_CN")) == (
        "人工客服工作时间为工作日 09:00–21:00。现在是休息时间，客服将于 12月7日（周一）09:00 起为您处理；"
        "您可以先留言，我们会按顺序回复。")
    english = off_hours_notice(saturday_night, settings(), CALENDAR, Texts("en"))
    assert english is not None and "on working days, 09:00–21:00" in english and "Mon 7 Dec, 09:00" in english


def test_in_hours_the_promise_is_the_typical_reply_time() -> None:
    promise = reply_promise(local(2026, 12, 7, 10, 0), settings(), CALENDAR, Texts("zh_CN"))
    assert promise == "客服通常会在 15 分钟内回复您。"
    assert off_hours_notice(local(2026, 12, 7, 10, 0), settings(), CALENDAR, Texts("zh_CN")) is None


@pytest.mark.parametrize("bad", [{"start": "9:00"}, {"start": "24:00"}, {"end": "21:60"},
                                 {"start": "09:00", "end": "09:00"}, {"days": "weekends"}])
def test_bad_hours_are_refused_when_the_configuration_is_read(bad: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        HoursSettings(**bad)
