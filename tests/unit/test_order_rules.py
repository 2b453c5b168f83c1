"""The fill and trigger rules on bars (marketboss.orders): every fill lies within its bar's [low, high], an order
never fills on a bar that does not reach it, gaps fill at the open, trailing stops only move in the position's
favour, and a bar that reaches both legs of a bracket takes the stop."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from marketboss.orders import (
    NO_EXIT,
    STOP_LOSS,
    TAKE_PROFIT,
    bracket_exit,
    limit_fill,
    stop_fill,
    stop_limit_fill,
    trailing_fill,
    trailing_level,
)

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
    assert bracket_exit(False, 100.0, 106.0, 89.0, 90.0, 105.0) == (STOP_LOSS, 105.0)  # a short's legs mirrored
    code, p = bracket_exit(True, 100.0, 101.0, 99.0, 110.0, 95.0)
    assert code == NO_EXIT and math.isnan(p)
    assert bracket_exit(True, 100.0, 111.0, 94.0, 110.0, math.nan) == (TAKE_PROFIT, 110.0)  # one leg absent
