"""marketboss.display: how values read to a person, in the terminal, the reports and the dashboard alike."""

from __future__ import annotations

from datetime import UTC, datetime

from marketboss import display


def test_daily_bars_read_as_dates_and_intraday_bars_as_utc_minutes() -> None:
    assert display.stamp("2020-01-02T05:00:00Z") == "2020-01-02"  # midnight New York in winter
    assert display.stamp("2020-07-01T04:00:00Z") == "2020-07-01"  # and in summer
    assert display.stamp(datetime(2024, 1, 2, 14, 30, tzinfo=UTC)) == "2024-01-02 14:30 UTC"
    assert display.stamp("2024-01-02T05:00:30Z") == "2024-01-02 05:00 UTC"  # not a session's midnight
    assert display.stamp(None) == display.NA
    # a time written with an offset, shown in UTC as labelled (12:17 -05:00 was "12:17 UTC")
    assert display.stamp("2024-01-02T09:30:00-05:00") == "2024-01-02 14:30 UTC"
    assert display.when("2026-12-07T12:17:40-05:00") == "2026-12-07 17:17:40 UTC"
    assert display.when("2026-12-07T17:17:40Z") == "2026-12-07 17:17:40 UTC"


def test_metrics_read_by_their_kind() -> None:
    assert display.metric("max_drawdown_duration_days", 1709.04) == "1,709"
    assert display.metric("avg_trade_duration_days", 40.5) == "40"  # round half to even
    assert display.metric("max_drawdown_duration_days", float("nan")) == display.NA
    assert display.metric("start", "2020-01-02T05:00:00Z") == "2020-01-02"
    assert display.metric("sharpe", 1.23456) == "1.2346" and display.metric("final_equity", 98917.8) == "98,917.80"
    assert display.value(float("inf")) == display.NA and display.value(None) == display.NA
    assert display.value(datetime(2024, 1, 2)) == "2024-01-02" and display.value(True) == "True"


def test_durations_read_in_the_largest_sensible_units() -> None:
    assert display.duration(0) == "0 s" and display.duration(119.9) == "119 s"
    assert display.duration(120) == "2 min" and display.duration(7199) == "119 min"
    assert display.duration(2 * 3600 + 5 * 60 + 59) == "2 h 5 min"
    assert display.duration(3 * 86400 + 4 * 3600 + 59) == "3 d 4 h"
    assert display.duration(-5) == "0 s" and display.duration(None) == display.NA
