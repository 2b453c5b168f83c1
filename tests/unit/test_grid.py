"""Bars put on the grid (data.grid): the regular session's, intraday ones starting at the open, as the live loop
aggregates its stream and as synth makes them."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest

from marketboss.data.calendar import Timeframe
from marketboss.data.grid import fetch_timeframe, on_grid
from marketboss.data.schema import BAR_DTYPES
from marketboss.data.synth import synth_bars

NY = ZoneInfo("America/New_York")


def extended_bars(day: str, start: time, minutes: int, symbol: str, seed: int) -> pl.DataFrame:
    """Minute bars outside the session, as Alpaca's include them (pre-market from 4:00, after-hours to 20:00)."""
    first = datetime.combine(datetime.fromisoformat(day).date(), start, NY)
    rng = np.random.default_rng(seed)
    px = 100 + rng.normal(0, 1, minutes)
    return pl.DataFrame({
        "timestamp": [first + timedelta(minutes=i) for i in range(minutes)], "symbol": symbol, "open": px,
        "high": px + 1, "low": px - 1, "close": px, "volume": rng.integers(1, 100, minutes),
    }).with_columns(pl.col("timestamp").dt.convert_time_zone("UTC")).cast(BAR_DTYPES)  # fmt: skip


@pytest.fixture(scope="module")
def minutes() -> pl.DataFrame:
    """Two sessions of minute bars (11-29: an early close, 13:00) with pre-market and after-hours ones."""
    regular = synth_bars(["AAA", "BBB"], "2024-11-27", "2024-11-29", "1Min", seed=2)
    extra = [extended_bars("2024-11-27", time(8, 0), 90, "AAA", 1),
             extended_bars("2024-11-27", time(16, 0), 120, "BBB", 2),
             extended_bars("2024-11-29", time(13, 0), 60, "AAA", 3)]  # fmt: skip
    return pl.concat([regular, *extra]).sort("timestamp", "symbol")


def _by_hand(bars: pl.DataFrame, start: datetime, end: datetime, symbol: str) -> tuple[float, ...]:
    b = bars.filter((pl.col("symbol") == symbol) & pl.col("timestamp").is_between(start, end, closed="left"))
    b = b.sort("timestamp")
    return b["open"][0], b["high"].max(), b["low"].min(), b["close"][-1], b["volume"].sum()  # type: ignore[return-value]


def test_hourly_bars_start_at_the_open_and_leave_the_extended_hours_out(minutes: pl.DataFrame) -> None:
    got = on_grid(minutes, Timeframe.parse("1Hour"))
    assert got.outside == 90 + 120 + 60
    local = [t.astimezone(NY) for t in got.bars["timestamp"].unique().sort()]
    assert [f"{t:%m-%d %H:%M}" for t in local] == [
        *(f"11-27 {h:02d}:30" for h in range(9, 16)), *(f"11-29 {h:02d}:30" for h in range(9, 13))]  # fmt: skip
    for row in got.bars.iter_rows(named=True):  # each from its minutes, the last of a day cut at the close
        start = row["timestamp"]
        close = 13 if start.astimezone(NY).day == 29 else 16
        end = min(start + timedelta(hours=1), datetime.combine(start.astimezone(NY).date(), time(close), NY))
        end = end.astimezone(start.tzinfo)
        want = _by_hand(minutes, start, end, row["symbol"])
        assert (row["open"], row["high"], row["low"], row["close"], row["volume"]) == pytest.approx(want)


def test_the_same_hours_from_clock_half_hours_and_the_session_bars_as_they_are(minutes: pl.DataFrame) -> None:
    """Alpaca's 30-minute bars (clock half hours, 9:30 one of them) make the same hours as its minutes; bars on the
    grid already (synth's hourly bars, the local broker's hourly data) are kept as they are."""
    half = minutes.group_by("symbol", pl.col("timestamp").dt.truncate("30m")).agg(
        pl.col("open").sort_by("timestamp").first(), pl.col("high").max(), pl.col("low").min(),
        pl.col("close").sort_by("timestamp").last(), pl.col("volume").sum()).select(BAR_DTYPES.names())  # fmt: skip
    hour = Timeframe.parse("1Hour")
    assert on_grid(half, hour).bars.equals(on_grid(minutes, hour).bars)
    hourly = synth_bars(["AAA"], "2024-03-04", "2024-03-08", "1Hour", seed=4)
    same = on_grid(hourly, hour)
    assert same.bars.equals(hourly.sort("timestamp", "symbol")) and same.outside == 0
    daily = synth_bars(["AAA"], "2024-03-04", "2024-03-08", "1Day", seed=4)
    assert on_grid(daily, Timeframe.parse("1Day")).bars is daily


@pytest.mark.parametrize(("timeframe", "native", "asked"), [
    ("1Min", None, "1Min"), ("5Min", None, "5Min"), ("15Min", None, "15Min"), ("1Day", None, "1Day"),
    ("1Hour", None, "30Min"),  # Alpaca's hours are clock hours
    ("1Hour", "1Min", "30Min"), ("1Hour", "15Min", "30Min"),  # the local broker makes 30Min of its minutes
    ("1Hour", "1Hour", "1Hour"),  # its hourly data: on the grid already, and no finer bars to make them of
])  # fmt: skip
def test_the_bars_to_ask_for(timeframe: str, native: str | None, asked: str) -> None:
    tf = Timeframe.parse(timeframe)
    assert str(fetch_timeframe(tf, Timeframe.parse(native) if native else None)) == asked
