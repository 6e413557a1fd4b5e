"""What the bot believes about Chinese working days: which years chinese-calendar knows, what
[policy] extra_holidays / extra_workdays add, and the working days the deadlines are counted in.

Deadlines count working days through dialogs.workdays.WorkingCalendar; past the last year
chinese-calendar ships, it falls back to weekends plus the config's lists. `refundbot doctor` warns
about such a year while it is current or next, `refundbot calendar YEAR` shows a year day by day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from importlib.metadata import version

from chinese_calendar import constants

from dialogs.settings import PolicySettings
from dialogs.workdays import WorkingCalendar


def known_years() -> tuple[int, int]:
    """The first and last year chinese-calendar has holiday data for."""
    years = {day.year for day in constants.holidays}
    return min(years), max(years)


def library_version() -> str:
    return version("chinesecalendar")


def calendar_findings(policy: PolicySettings, today: date) -> list[tuple[str, str]]:
    """(level, text) lines for doctor: the years known, then this year and next when they are not."""
    first, last = known_years()
    lines = [("ok", f"chinese-calendar {library_version()} knows the holidays of {first}-{last}")]
    for year in (today.year, today.year + 1):
        if year <= last:
            continue
        listed = sum(1 for day in policy.extra_holidays if day.year == year)
        if listed:
            text = (f"{year}: chinese-calendar does not know it; [policy] extra_holidays lists {listed} "
                    f"holiday{'s' if listed > 1 else ''} for it")
            lines.append(("ok", text))
        else:
            text = (f"{year}: neither chinese-calendar nor [policy] extra_holidays knows its holidays, so deadlines "
                    "count weekends only: add the State Council's holidays to [policy] extra_holidays and the "
                    "make-up working days to extra_workdays (or upgrade chinesecalendar once it ships that year)")
            lines.append(("warn", text))
    return lines


@dataclass(frozen=True)
class Day:
    day: date
    name: str  # the holiday a day off or a make-up working day belongs to ("" when unknown)
    source: str  # "chinese-calendar" or "config"


@dataclass(frozen=True)
class YearView:
    year: int
    known: bool  # chinese-calendar has the year's data
    holidays: list[Day]  # weekday days off (weekends are off anyway and not listed)
    workdays: list[Day]  # make-up working days (调休) on weekends


def year_view(year: int, policy: PolicySettings) -> YearView:
    """The year as the bot counts it: config entries override chinese-calendar's, as in WorkingCalendar."""
    extra_off, extra_on = set(policy.extra_holidays), set(policy.extra_workdays)
    holidays: dict[date, Day] = {}
    workdays: dict[date, Day] = {}
    for day, name in constants.holidays.items():
        if day.year == year and day.weekday() < 5 and day not in extra_on:
            holidays[day] = Day(day, _name(name), "chinese-calendar")
    for day, name in constants.workdays.items():
        if day.year == year and day not in extra_off:
            workdays[day] = Day(day, _name(name), "chinese-calendar")
    for day in extra_off:
        if day.year == year:
            holidays[day] = Day(day, "", "config")
    for day in extra_on:
        if day.year == year:
            workdays[day] = Day(day, "", "config")
    first, last = known_years()
    return YearView(year, first <= year <= last, sorted(holidays.values(), key=lambda d: d.day),
                    sorted(workdays.values(), key=lambda d: d.day))


def next_working_days(policy: PolicySettings, today: date, count: int) -> list[date]:
    """The next `count` working days after today, counted exactly as the deadlines are."""
    calendar = WorkingCalendar(policy.extra_holidays, policy.extra_workdays)
    days: list[date] = []
    current = today
    while len(days) < count:
        current += timedelta(days=1)
        if calendar.is_workday(current):
            days.append(current)
    return days


def _name(value: object) -> str:
    # chinese-calendar names holidays by an enum whose value is "English,中文,days".
    raw = getattr(value, "value", value)
    return str(raw).split(",")[0] if raw else ""
