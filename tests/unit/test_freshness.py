"""A signal is fresh only while its bar is the latest completed bar at the broker's clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from marketboss.data.calendar import Timeframe, infer_timeframe
from marketboss.data.synth import synth_bars
from marketboss.errors import MarketBossError
from marketboss.execution.freshness import Age, Freshness, ages

DAY = Timeframe.parse("1Day")
FIVE = Timeframe.parse("5Min")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_a_daily_signal_is_fresh_from_its_sessions_close_until_the_next_one() -> None:
    july3 = [utc(2024, 7, 3, 4)]  # Alpaca's stamp: midnight New York; an early close at 13:00 New York
    assert ages(july3, utc(2024, 7, 3, 16, 59), DAY) == [Age(Freshness.FUTURE, 0)]
    assert ages(july3, utc(2024, 7, 3, 17, 0), DAY) == [Age(Freshness.FRESH, 0)]
    assert ages(july3, utc(2024, 7, 5, 19, 59), DAY) == [Age(Freshness.FRESH, 0)]  # 4 July closed, Friday not done
    assert ages(july3, utc(2024, 7, 5, 20, 0), DAY) == [Age(Freshness.STALE, 1)]
    assert ages(july3, utc(2024, 7, 9, 20, 0), DAY) == [Age(Freshness.STALE, 3)]
    # the guide's minimal form stamps the date at 00:00Z: the same session
    assert ages([utc(2024, 7, 3)], utc(2024, 7, 3, 17, 0), DAY) == [Age(Freshness.FRESH, 0)]
    assert ages([utc(2024, 7, 3)], utc(2024, 7, 3, 16, 0), DAY) == [Age(Freshness.FUTURE, 0)]


def test_intraday_signals_age_bar_by_bar_across_the_night() -> None:
    first = utc(2024, 7, 8, 13, 30)  # the 09:30 New York bar
    assert ages([first], utc(2024, 7, 8, 13, 34, 59), FIVE)[0].freshness is Freshness.FUTURE
    assert ages([first], utc(2024, 7, 8, 13, 35), FIVE) == [Age(Freshness.FRESH, 0)]
    assert ages([first], utc(2024, 7, 8, 13, 40), FIVE) == [Age(Freshness.STALE, 1)]
    last = utc(2024, 7, 8, 19, 55)  # the session's last bar stays the latest overnight
    assert ages([last], utc(2024, 7, 9, 13, 34), FIVE) == [Age(Freshness.FRESH, 0)]
    assert ages([last], utc(2024, 7, 9, 13, 35), FIVE) == [Age(Freshness.STALE, 1)]
    many = ages([first, last, utc(2024, 7, 8, 13, 32)], utc(2024, 7, 8, 13, 36), FIVE)
    assert [a.freshness for a in many] == [Freshness.FRESH, Freshness.FUTURE, Freshness.FRESH]
    assert ages([], utc(2024, 7, 8), FIVE) == []


def test_the_timeframe_is_read_from_the_bars_spacing() -> None:
    for tf in ("1Day", "1Min", "5Min", "15Min", "1Hour"):
        bars = synth_bars(["AAPL", "MSFT"], "2024-07-01", "2024-07-05", tf, seed=3)
        assert str(infer_timeframe(bars)) == tf
    with pytest.raises(MarketBossError, match="no bars"):
        infer_timeframe(synth_bars(["AAPL"], "2024-07-01", "2024-07-05", "1Day", seed=3).clear())
