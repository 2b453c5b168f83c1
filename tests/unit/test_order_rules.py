"""The fill and trigger rules on bars (marketboss.orders): every fill lies within its bar's [low, high], an order
never fills on a bar that does not reach it, gaps fill at the open, trailing stops only move in the position's
favour, a bar that reaches both legs of a bracket takes the stop, and a buy stop is collared as Alpaca collars it
(a stop-limit just above the stop: a gap beyond the collar waits, in the backtest as at the broker)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from marketboss.backtest import BacktestConfig, run_backtest
from marketboss.orders import (
    NO_EXIT,
    STOP_LOSS,
    TAKE_PROFIT,
    bracket_exit,
    buy_stop_limit,
    limit_fill,
    stop_fill,
    stop_limit_fill,
    trailing_fill,
    trailing_level,
)
from marketboss.signals import ORDER_SCHEMA, SIGNAL_SCHEMA

price = st.floats(1.0, 200.0, allow_nan=False)


@st.composite
def bars(draw: st.DrawFn) -> tuple[float, float, float]:
    """(open, high, low) of a consistent bar."""
    o = draw(price)
    return o, o + draw(st.floats(0.0, 20.0)), o - draw(st.floats(0.0, min(20.0, o - 0.5)))


@settings(max_examples=300, deadline=None)
@given(bars(), price, st.booleans())
def test_limits_fill_only_where_the_bar_reaches_them_at_the_better_price(bar: tuple, level: float, buy: bool) -> None:
    o, h, lo = bar
    p = limit_fill(buy, o, h, lo, level)
    reached = lo <= level if buy else h >= level
    assert math.isnan(p) != reached
    if reached:
        assert lo <= p <= h
        assert (p <= level and p == min(o, level)) if buy else (p >= level and p == max(o, level))


@settings(max_examples=300, deadline=None)
@given(bars(), price, st.booleans())
def test_stops_trigger_where_the_bar_reaches_them_gaps_fill_at_the_open(bar: tuple, level: float, buy: bool) -> None:
    o, h, lo = bar
    p = stop_fill(buy, o, h, lo, level)
    reached = h >= level if buy else lo <= level
    assert math.isnan(p) != reached
    if reached:
        assert lo <= p <= h
        gapped = o > level if buy else o < level
        assert p == (o if gapped else level)


@settings(max_examples=300, deadline=None)
@given(bars(), price, st.floats(-10.0, 10.0), st.booleans())
def test_a_stop_limit_fills_on_its_trigger_bar_only_within_its_limit(bar: tuple, stop: float, off: float,
                                                                     buy: bool) -> None:  # fmt: skip
    o, h, lo = bar
    limit = stop + off
    triggered, p = stop_limit_fill(buy, o, h, lo, stop, limit)
    touch = stop_fill(buy, o, h, lo, stop)
    assert triggered == (not math.isnan(touch))
    if not math.isnan(p):
        assert triggered and p == touch and lo <= p <= h and (p <= limit if buy else p >= limit)
    elif triggered:
        assert (touch > limit) if buy else (touch < limit)


@settings(max_examples=200, deadline=None)
@given(st.lists(bars(), min_size=1, max_size=30), st.floats(0.5, 20.0))
def test_a_trailing_stop_only_moves_in_the_positions_favour_and_fills_within_the_bar(path: list, pct: float) -> None:
    mark = path[0][0]
    level = trailing_level(False, mark, pct, math.nan)  # a sell stop under a long
    for o, h, lo in path:
        p, new_mark = trailing_fill(False, o, h, lo, mark, pct, math.nan)
        if not math.isnan(p):
            assert lo <= p <= h and lo <= level and p == min(o, level)  # tested against the level from before
            break
        assert new_mark >= mark  # a high-water mark never falls
        new_level = trailing_level(False, new_mark, pct, math.nan)
        assert new_level >= level
        mark, level = new_mark, new_level
    # a buy stop covering a short trails above the low-water mark, by a price distance here
    assert trailing_level(True, 100.0, math.nan, 2.5) == 102.5 and trailing_level(True, 100.0, 5.0, math.nan) == 105.0


def test_a_bar_reaching_both_legs_of_a_bracket_takes_the_stop() -> None:
    # a long with a stop at 95 and a target at 110; the bar's range covers both
    assert bracket_exit(True, 100.0, 111.0, 94.0, 110.0, 95.0) == (STOP_LOSS, 95.0)
    assert bracket_exit(True, 100.0, 111.0, 96.0, 110.0, 95.0) == (TAKE_PROFIT, 110.0)
    assert bracket_exit(True, 112.0, 113.0, 111.0, 110.0, 95.0) == (TAKE_PROFIT, 112.0)  # gap above the target
    assert bracket_exit(True, 90.0, 91.0, 89.0, 110.0, 95.0) == (STOP_LOSS, 90.0)  # gap through the stop
    # opened through the target, then down through the stop: the path starts at the open, where the limit fills
    assert bracket_exit(True, 112.0, 113.0, 94.0, 110.0, 95.0) == (TAKE_PROFIT, 112.0)
    assert bracket_exit(False, 88.0, 106.0, 87.0, 90.0, 105.0) == (TAKE_PROFIT, 88.0)  # a short's, mirrored
    assert bracket_exit(False, 100.0, 106.0, 89.0, 90.0, 105.0) == (STOP_LOSS, 105.0)  # a short's legs mirrored
    code, p = bracket_exit(True, 100.0, 101.0, 99.0, 110.0, 95.0)
    assert code == NO_EXIT and math.isnan(p)
    assert bracket_exit(True, 100.0, 111.0, 94.0, 110.0, math.nan) == (TAKE_PROFIT, 110.0)  # one leg absent


@settings(max_examples=500, deadline=None)
@given(st.floats(0.01, 10_000.0))
def test_a_buy_stops_collar_is_4_percent_above_it_under_50_dollars_and_2_5_percent_from_50(stop: float) -> None:
    limit = buy_stop_limit(stop)
    exact = stop * (1.04 if stop < 50 else 1.025)
    grid = 0.01 if exact >= 1 else 0.0001
    assert abs(limit - exact) <= grid / 2 + 1e-9  # the nearest price on the grid
    assert abs(limit / grid - round(limit / grid)) < 1e-6
    assert limit >= stop


T0 = datetime(2024, 1, 2, 5, tzinfo=UTC)  # midnight New York: daily bars


def _buy_stop_fills(stop: float, gap: float, later_open: float, later_low: float, collar: bool) -> list[tuple]:
    """A gtc buy stop placed after bar 0; bar 1 opens `gap` above the stop, bar 2 at `later_open` with its low at
    `later_low`: the backtest's fills as (bar, price)."""
    o1 = round(stop * (1 + gap), 2)
    ohlc = [(stop - 1, stop - 0.5, stop - 2, stop - 1), (o1, o1 + 1, o1, o1 + 0.5),
            (later_open, later_open + 1, min(later_low, later_open), later_open)]  # fmt: skip
    bars = pl.DataFrame({
        "timestamp": [T0 + timedelta(days=i) for i in range(3)], "symbol": ["AAA"] * 3,
        "open": [b[0] for b in ohlc], "high": [b[1] for b in ohlc], "low": [b[2] for b in ohlc],
        "close": [b[3] for b in ohlc], "volume": [1000] * 3,
    })  # fmt: skip
    signals = pl.DataFrame([{
        "id": "s1", "timestamp": T0, "symbol": "AAA", "action": "BUY", "quantity": 10.0, "strategy": "t",
        "price": stop - 1, "target_weight": None, "order_type": "stop", "time_in_force": "gtc", "limit_price": None,
        "stop_price": stop, "trail_percent": None, "take_profit": None, "stop_loss": None,
    }], schema={**SIGNAL_SCHEMA, **ORDER_SCHEMA})  # fmt: skip
    res = run_backtest(bars, signals, BacktestConfig(cash=1e7, buy_stop_collar=collar))
    days = {T0 + timedelta(days=i): i for i in range(3)}
    return [(days[r["timestamp"]], r["price"]) for r in res.fills.iter_rows(named=True)]


@settings(max_examples=150, deadline=None)
@given(st.integers(500, 20_000).map(lambda c: c / 100), st.floats(0.0, 0.1), st.floats(-0.1, 0.1),
       st.floats(-0.1, 0.1), st.booleans())  # fmt: skip
def test_a_buy_stop_gapping_past_its_collar_does_not_fill_and_waits_as_a_limit(
    stop: float, gap: float, later: float, dip: float, collar: bool
) -> None:
    limit = buy_stop_limit(stop)
    later_open = round(limit * (1 + later), 2)
    later_low = round(limit * (1 + dip), 2)
    fills = _buy_stop_fills(stop, gap, later_open, later_low, collar)
    o1 = round(stop * (1 + gap), 2)
    if not collar or o1 <= limit:  # a plain stop, or a gap within the collar: bought at bar 1's open
        assert fills == [(1, o1)]
    elif min(later_low, later_open) <= limit:  # beyond the collar: no fill there; a limit order from bar 2 on
        assert fills == [(2, min(later_open, limit))]
    else:
        assert fills == []
