"""Telegram's windows (bot.pacing.windows), without Telegram."""

from __future__ import annotations

import pytest

from bot.pacing import Window


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
