"""Chinese working days: holidays and make-up working days (调休) from chinese-calendar.

chinese-calendar only knows the years up to its release; past them we fall back to weekends plus
the holidays and make-up days listed in config, and say so once in the log.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

import chinese_calendar

log = logging.getLogger(__name__)


class WorkingCalendar:
    def __init__(self, extra_holidays: tuple[date, ...] = (), extra_workdays: tuple[date, ...] = ()) -> None:
        self._holidays = frozenset(extra_holidays)
        self._workdays = frozenset(extra_workdays)
        self._warned: set[int] = set()

    def is_workday(self, day: date) -> bool:
        if day in self._workdays:
            return True
        if day in self._holidays:
            return False
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            if day.year not in self._warned:
                self._warned.add(day.year)
                log.warning(
                    "chinese-calendar has no data for %s: counting weekends and [policy] extra_holidays only",
                    day.year,
                )
            return day.weekday() < 5

    def add_workdays(self, start: date, days: int) -> date:
        """The `days`-th working day after `start` (the start day itself does not count)."""
        current = start
        remaining = days
        while remaining > 0:
            current += timedelta(days=1)
            if self.is_workday(current):
                remaining -= 1
        return current
