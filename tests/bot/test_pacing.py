"""Telegram's windows (bot.pacing.windows) and what a 429 means (bot.pacing.throttling), without Telegram."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.pacing import Window, answer_retry_after, inline_wait, poll_wait, retry_after_seconds
from bot.sending import RetryAfter, Transient


def test_a_window_allows_its_limit_per_widened_span_and_no_more() -> None:
    window = Window.per_second(30, headroom=0.03)
    for _ in range(30):
        window.book(window.free_at(100.0))
    assert window.free_at(100.0) == pytest.approx(101.03)


def test_a_smoothed_window_spreads_its_sends() -> None:
    window = Window.per_second(30, headroom=0.0, smooth=1.0)
    window.book(window.free_at(0.0))
    assert window.free_at(0.0) == pytest.approx(1 / 30)


def test_a_group_window_counts_a_minute() -> None:
    window = Window.per_second(20 / 60, headroom=0.0, per=60)
    assert (window.limit, window.span) == (20, pytest.approx(60.0))


def test_retry_after_is_read_in_seconds_from_either_librarys_form() -> None:
    assert retry_after_seconds(7) == 7.0
    assert retry_after_seconds(timedelta(seconds=7)) == 7.0


def test_a_bot_api_error_answer_gives_its_retry_after() -> None:
    assert answer_retry_after({"ok": False, "error_code": 429, "parameters": {"retry_after": 5}}) == 5.0
    assert answer_retry_after({"ok": False, "error_code": 502, "description": "Bad Gateway"}) is None


def test_a_reply_waits_out_a_short_429_only() -> None:
    assert inline_wait(RetryAfter(30)) == 30
    assert inline_wait(RetryAfter(31)) is None


def test_get_updates_waits_out_a_429_in_full_and_backs_off_otherwise() -> None:
    assert poll_wait(RetryAfter(120)) == 120.0
    assert poll_wait(RetryAfter(0)) is None
    assert poll_wait(Transient("Bad Gateway")) is None
