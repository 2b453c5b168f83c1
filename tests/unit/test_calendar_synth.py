"""Synthetic bars follow the real NYSE calendar and are consistent, seeded and causal per symbol."""

from __future__ import annotations

from datetime import date, time

import numpy as np
import polars as pl
import pytest

from marketboss.data.calendar import Timeframe, bar_grid, bar_times, start_of_last_bars
from marketboss.data.schema import LINE, validation_errors
from marketboss.data.synth import symbols_from, synth_bars
from marketboss.errors import MarketBossError


def _ny(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(pl.col("timestamp").dt.convert_time_zone("America/New_York").alias("ny"))


def test_no_bar_on_independence_day_and_daily_stamps_are_ny_midnight() -> None:
    df = _ny(synth_bars(["AAPL"], "2024-07-01", "2024-07-08", "1Day", seed=1))
    days = df["ny"].dt.date().to_list()
    assert date(2024, 7, 4) not in days
    assert days == [date(2024, 7, d) for d in (1, 2, 3, 5, 8)]
    assert set(df["ny"].dt.time().to_list()) == {time(0, 0)}


@pytest.mark.parametrize(("tf", "last", "count"), [("1Min", time(12, 59), 210), ("1Hour", time(12, 30), 4)])
def test_black_friday_half_day_ends_at_13_00(tf: str, last: time, count: int) -> None:
    df = _ny(synth_bars(["AAPL"], "2024-11-29", "2024-11-29", tf, seed=1))
    assert df["ny"].dt.time().min() == time(9, 30)
    assert df["ny"].dt.time().max() == last
    assert len(df) == count


@pytest.mark.parametrize(("tf", "n", "at", "first"), [
    ("1Day", 500, "2024-07-01T13:30", "2022-07-05"),  # 1 July in progress; the holidays between skipped
    ("1Min", 500, "2024-12-02T14:30", "2024-11-27T11:10"),  # Black Friday's 210 minutes, 290 of the 27th's 390
    ("1Hour", 10, "2024-12-02T14:30", "2024-11-27T10:30"),  # Friday's 4 hours (its last a half), 6 of Wednesday's 7
])  # fmt: skip
def test_start_of_last_bars_counts_n_bars_of_the_grid_back(tf: str, n: int, at: str, first: str) -> None:
    """Where the live loop's warm-up of n bars begins: n bars of the grid closed by then, holidays and early
    closes counted (a span of n x 7/5 calendar days fell short of 500 daily bars by the holidays in it: 483)."""
    t = np.datetime64(at, "us")
    timeframe = Timeframe.parse(tf)
    start = np.datetime64(start_of_last_bars(int(t.astype(np.int64)), n, timeframe), "us")
    starts, ends = bar_grid("2022-01-01", at[:10], timeframe)
    assert int(((starts >= start) & (ends <= t)).sum()) == n
    ny = pl.Series([start.astype(np.int64)]).cast(pl.Datetime("us", "UTC")).dt.convert_time_zone("America/New_York")
    assert ny.dt.strftime("%Y-%m-%dT%H:%M" if len(first) > 10 else "%Y-%m-%d")[0] == first


def test_intraday_bars_stay_inside_regular_hours() -> None:
    df = _ny(synth_bars(["AAPL", "MSFT"], "2024-03-01", "2024-03-15", "5Min", seed=3))
    t = df["ny"].dt.time()
    assert t.min() >= time(9, 30) and t.max() <= time(15, 55)
    assert len(df) == 2 * 11 * 78  # 11 sessions, across the DST change of 10 March


def test_bars_are_valid_and_deterministic_and_per_symbol_stable() -> None:
    a = synth_bars(["AAPL", "MSFT"], "2021-01-01", "2022-12-31", "1Day", seed=9)
    assert validation_errors(a.with_row_index(LINE)).is_empty()
    assert a.equals(synth_bars(["AAPL", "MSFT"], "2021-01-01", "2022-12-31", "1Day", seed=9))
    more = synth_bars(["AAPL", "MSFT", "JPM"], "2021-01-01", "2022-12-31", "1Day", seed=9)
    assert more.filter(pl.col("symbol") != "JPM").equals(a)
    other = synth_bars(["AAPL", "MSFT"], "2021-01-01", "2022-12-31", "1Day", seed=10)
    assert not other.equals(a)


@pytest.mark.parametrize(("tf", "end", "later"), [("1Day", "2022-12-30", "2026-12-04"),
                                                  ("1Min", "2024-03-05", "2024-03-08")])  # fmt: skip
def test_a_later_end_only_adds_bars(tf: str, end: str, later: str) -> None:
    """The same seed and start give the same bars on the same dates, whatever the end: the scheduler's refresh
    (`data synth --end <today>`) extends the history a paper account traded on. Before, every draw depended on
    the number of bars: in the demo's data (from 2020), AAPL closed 2021-04-01 at 311.33 to the end of 2024, at
    24.01 to 2026-12-06, and the refresh's paper job filled the demo account's stops there."""
    start = "2021-01-01" if tf == "1Day" else "2024-03-04"
    short = synth_bars(["AAPL", "MSFT"], start, end, tf, seed=7)
    long = synth_bars(["AAPL", "MSFT"], start, later, tf, seed=7)
    assert long.height > short.height and long.head(short.height).equals(short)


def test_prices_are_on_the_tick_grid_as_real_bars_are() -> None:
    """Cents from $1 up (a broker's quotes are on that grid: paper sizes a weight at the quote's mid, and so buys the
    backtest's shares), and high/low still hold open and close."""
    bars = synth_bars(symbols_from("8"), "2020-01-01", "2021-12-31", "1Day", seed=11)
    prices = bars.select("open", "high", "low", "close").to_numpy()
    dollars = prices[prices >= 1.0]  # below $1: 1/100 cent
    assert dollars.size > 0.9 * prices.size and np.allclose(np.round(dollars, 2), dollars, rtol=0, atol=1e-9)
    assert not np.allclose(np.round(prices, 1), prices, rtol=0, atol=1e-9)  # cents, not dimes
    assert not validation_errors(bars.with_row_index(LINE)).height


def test_regimes_make_both_trends_and_reversion() -> None:
    df = synth_bars(symbols_from("10"), "2015-01-01", "2024-12-31", "1Day", seed=7)
    rets = df.with_columns(pl.col("close").log().diff().over("symbol").alias("r")).drop_nulls("r")
    # Some symbol drifts strongly up and some strongly down over a year: the trending regimes exist.
    yearly = rets.group_by("symbol", pl.col("timestamp").dt.year()).agg(pl.col("r").sum())["r"]
    assert yearly.max() > 0.2 and yearly.min() < -0.2  # type: ignore[operator]
    assert symbols_from("3") == ["AAPL", "MSFT", "AMZN"] and symbols_from("aapl, spy") == ["AAPL", "SPY"]
    assert len(symbols_from("25")) == 25 and symbols_from("25")[-1] == "SYN024"


def test_timeframe_and_symbol_arguments_are_checked() -> None:
    with pytest.raises(MarketBossError, match="timeframe '2Days'"):
        Timeframe.parse("2Days")
    with pytest.raises(MarketBossError, match="distinct"):
        symbols_from("AAPL,AAPL")
    times, _ = bar_times("2024-12-25", "2024-12-25", Timeframe.parse("1Day"))
    assert len(times) == 0


def test_bars_per_year_is_252_sessions_of_the_median_bars_per_symbol_and_session() -> None:
    from marketboss.data.stats import bars_per_year

    for timeframe in ("1Day", "1Hour", "15Min"):
        bars = synth_bars(["AAA", "BBB"], "2024-03-01", "2024-03-31", timeframe, seed=3)
        local = bars["timestamp"].dt.convert_time_zone("America/New_York").dt.date()  # per row, independently
        per = bars.with_columns(local.alias("d")).group_by("symbol", "d").len()["len"].median()
        assert bars_per_year(bars) == 252.0 * float(per)  # type: ignore[arg-type]
    assert bars_per_year(synth_bars(["AAA"], "2024-03-01", "2024-03-31", "1Hour", seed=3)) == 252.0 * 7


@pytest.mark.parametrize(("every", "expected"), [("1w", 52.18), ("1mo", 12.0)])
def test_weekly_and_monthly_bars_are_annualised_by_their_number_a_year(every: str, expected: float) -> None:
    """252 before, whatever the bars: a weekly buy-and-hold's CAGR 207% where it made 26% a year."""
    from marketboss.data.market import Market
    from marketboss.data.stats import bars_per_year

    daily = synth_bars(["AAA", "BBB"], "2015-01-01", "2020-12-31", "1Day", seed=3)
    sparse = daily.group_by_dynamic("timestamp", every=every, group_by="symbol").agg(
        pl.col("open").first(), pl.col("high").max(), pl.col("low").min(), pl.col("close").last(),
        pl.col("volume").sum()).sort("timestamp", "symbol")  # fmt: skip
    assert bars_per_year(sparse) == pytest.approx(expected, abs=0.05)
    assert Market.from_bars(sparse).bars_per_year == bars_per_year(sparse)
    assert bars_per_year(daily) == 252.0
