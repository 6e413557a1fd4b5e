"""`refundbot calendar` and doctor's calendar check: what the bot believes about working days, and where
each day comes from."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from typer.testing import CliRunner

from bot.calendar_check import calendar_findings, known_years
from bot.cli import app
from dialogs.settings import PolicySettings


def calendar(tmp_path, *args: str, policy: str = "") -> str:
    config = tmp_path / "config.toml"
    config.write_text(f"[policy]\n{policy}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["calendar", *args, "--config", str(config)])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_known_year_shows_its_holidays_and_make_up_days_from_chinese_calendar(tmp_path):
    output = calendar(tmp_path, "2026")
    assert output.startswith("2026: from chinese-calendar")
    assert "2026-10-01 Thu  National Day" in output and "2026-10-09" not in output
    make_up = output.split("Make-up working days")[1]
    assert "2026-10-10 Sat  National Day" in make_up and "chinese-calendar" in make_up


def test_a_year_past_chinese_calendar_shows_the_config_entries_as_the_source(tmp_path):
    output = calendar(tmp_path, "2027", policy="extra_holidays = [2027-02-08]\nextra_workdays = [2027-02-06]")
    first, last = known_years()
    assert f"knows {first}-{last} only" in output
    holidays, make_up = output.split("Make-up working days")
    assert "2027-02-08 Mon" in holidays and holidays.rstrip().endswith("config")
    assert "2027-02-06 Sat" in make_up


def test_the_next_working_days_skip_the_holidays_the_config_adds(tmp_path):
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    weekdays = [today + timedelta(days=n) for n in range(1, 15) if (today + timedelta(days=n)).weekday() < 5]
    off = weekdays[:2]
    output = calendar(tmp_path, "--days", "3",
                      policy=f"extra_holidays = [{off[0]}, {off[1]}]\nextra_workdays = []")
    upcoming = output.split("working days after")[1].splitlines()[1:]
    listed = [date.fromisoformat(line.split()[0]) for line in upcoming if line.strip()]
    assert len(listed) == 3 and listed == sorted(listed) and listed[0] > today
    assert not set(off) & set(listed)


def test_doctor_warns_about_next_year_when_nobody_knows_its_holidays():
    last = known_years()[1]
    lines = calendar_findings(PolicySettings(), date(last, 12, 5))
    assert [level for level, _ in lines] == ["ok", "warn"]
    assert lines[1][1].startswith(f"{last + 1}: neither chinese-calendar nor [policy] extra_holidays")
    assert "extra_holidays" in lines[1][1] and "extra_workdays" in lines[1][1]


def test_doctor_is_content_when_extra_holidays_cover_the_unknown_year():
    last = known_years()[1]
    policy = PolicySettings(extra_holidays=(date(last + 1, 1, 1), date(last + 1, 2, 8)))
    lines = calendar_findings(policy, date(last, 12, 5))
    assert [level for level, _ in lines] == ["ok", "ok"]
    assert "lists 2 holidays" in lines[1][1]


def test_doctor_says_nothing_more_while_both_years_are_known():
    last = known_years()[1]
    assert [level for level, _ in calendar_findings(PolicySettings(), date(last - 1, 6, 1))] == ["ok"]
