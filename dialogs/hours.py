"""The desk's working hours ([desk.hours]): is a person there now, and when is one there next; and the
lines that tell a customer so (after /agent, and when a case goes to a person).

Times are local to [i18n] timezone. A window belongs to the day it starts on: with days = "workdays"
the start day must be a Chinese working day (dialogs.workdays: holidays and make-up days count), and
an end at or before the start (20:00-02:00) closes on the next day.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from dialogs.settings import CoreSettings, HoursSettings
from dialogs.texts import Texts
from dialogs.workdays import WorkingCalendar

# No configuration is closed this long: Chinese holidays last a week or so.
_SEARCH_DAYS = 60


def _minutes(clock_time: str) -> int:
    hours, minutes = clock_time.split(":")
    return int(hours) * 60 + int(minutes)


def _window(day: date, hours: HoursSettings, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The opening and closing instants of the window that starts on `day`."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
    start, end = _minutes(hours.start), _minutes(hours.end)
    if end <= start:
        end += 24 * 60
    return midnight + timedelta(minutes=start), midnight + timedelta(minutes=end)


def _opens_on(day: date, hours: HoursSettings, calendar: WorkingCalendar) -> bool:
    return hours.days == "every_day" or calendar.is_workday(day)


def is_open(now: datetime, hours: HoursSettings, timezone: str, calendar: WorkingCalendar) -> bool:
    """Whether a person is on the desk at `now` (timezone-aware)."""
    if hours.always_open:
        return True
    zone = ZoneInfo(timezone)
    today = now.astimezone(zone).date()
    for day in (today - timedelta(days=1), today):  # yesterday's window may run past midnight
        opens, closes = _window(day, hours, zone)
        if _opens_on(day, hours, calendar) and opens <= now < closes:
            return True
    return False


def next_opening(now: datetime, hours: HoursSettings, timezone: str, calendar: WorkingCalendar) -> datetime:
    """The first opening after `now`, in the local time zone."""
    zone = ZoneInfo(timezone)
    day = now.astimezone(zone).date()
    for offset in range(_SEARCH_DAYS):
        candidate = day + timedelta(days=offset)
        opens, _ = _window(candidate, hours, zone)
        if opens > now and _opens_on(candidate, hours, calendar):
            return opens
    raise ValueError(f"the desk does not open within {_SEARCH_DAYS} days")  # pragma: no cover - see _SEARCH_DAYS


def opening_text(moment: datetime, t: Texts) -> str:
    """12月7日（周一）09:00 / Mon 7 Dec, 09:00."""
    return t("hours.opening", month=t(f"hours.month.{moment.month}"), day=moment.day,
             weekday=t(f"hours.weekday.{moment.weekday()}"), time=moment.strftime("%H:%M"))


def off_hours_notice(now: datetime, settings: CoreSettings, calendar: WorkingCalendar, t: Texts) -> str | None:
    """The desk's hours and the exact next opening; None while a person is there."""
    hours, timezone = settings.desk.hours, settings.i18n.timezone
    if is_open(now, hours, timezone, calendar):
        return None
    return t("hours.off_hours", days=t(f"hours.days.{hours.days}"), start=hours.start, end=hours.end,
             opening=opening_text(next_opening(now, hours, timezone, calendar), t))


def reply_promise(now: datetime, settings: CoreSettings, calendar: WorkingCalendar, t: Texts) -> str | None:
    """When a person will answer /agent: off hours the notice, in hours the typical wait (if configured)."""
    notice = off_hours_notice(now, settings, calendar, t)
    if notice is not None:
        return notice
    minutes = settings.desk.hours.typical_reply_minutes
    return t("hours.typical_reply", minutes=minutes) if minutes else None
