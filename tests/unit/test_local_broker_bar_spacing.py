"""The local broker infers the bars' timeframe from their spacing, whatever the time of day they are stamped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from marketboss.local_broker.marketdata import BarFrame, MarketData
from tests.unit.local_broker_world import DAYS, daily_bars, session_open, sessions

NY = ZoneInfo("America/New_York")


def restamped(hour_ny: int | None) -> pl.DataFrame:
    """Five daily AAPL bars stamped at `hour_ny` New York (None: at midnight UTC of the date)."""
    df = daily_bars({"AAPL": [100.0, 101.0, 102.0, 103.0, 104.0]})
    stamps = [
        datetime.fromisoformat(d).replace(tzinfo=UTC) if hour_ny is None
        else datetime.fromisoformat(d).replace(tzinfo=NY).astimezone(UTC) + timedelta(hours=hour_ny)
        for d in DAYS
    ]  # fmt: skip
    return df.with_columns(pl.Series("timestamp", stamps, dtype=df["timestamp"].dtype))


@pytest.mark.parametrize("hour_ny", [0, 16, None], ids=["midnight-ny", "close-16h-ny", "midnight-utc"])
def test_daily_bars_are_daily_whatever_their_stamp(hour_ny: int | None) -> None:
    m = MarketData(restamped(hour_ny), sessions(), 0.0)
    assert m.daily and m.native == BarFrame(1, "Day")
    s = m.series["AAPL"]
    assert s.starts == [session_open(i) for i in range(5)]  # each bar spans its own session, not the night after
    midnight = datetime.fromisoformat(DAYS[0]).replace(tzinfo=NY)
    assert m.bar_json("AAPL", 0)["t"] == midnight.astimezone(UTC).isoformat().replace("+00:00", "Z")


def test_minute_bars_stay_minute_bars() -> None:
    t0 = datetime.fromisoformat(DAYS[0]).replace(tzinfo=NY).astimezone(UTC) + timedelta(hours=9, minutes=30)
    df = pl.DataFrame({"timestamp": [t0 + timedelta(minutes=5 * i) for i in range(4)], "symbol": ["AAPL"] * 4,
                       "open": [1.0] * 4, "high": [1.0] * 4, "low": [1.0] * 4, "close": [1.0] * 4,
                       "volume": [1] * 4})  # fmt: skip
    m = MarketData(df.with_columns(pl.col("timestamp").dt.cast_time_unit("us")), sessions(), 0.0)
    assert not m.daily and m.native == BarFrame(5, "Min")
