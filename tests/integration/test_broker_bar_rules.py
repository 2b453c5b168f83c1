"""Property: on random bar paths, a random order of every type fills on the local broker (through alpaca-py) on the
bar and at the price that a plain walk over the bars with marketboss.orders' rules gives (the rules the backtest
applies, as written in /docs: an order placed after bar t's close works from bar t+1, market orders at the open,
stop-limits a limit from the bar after their trigger, buy stops collared into stop-limits as Alpaca does, trailing
marks from the placement close, bracket legs from the entry's bar when it filled at the open, the stop when a bar
reaches both, day orders for one session). Prices on a cent grid, no costs. Fills lie within their bar; a limit or
stop never fills on a bar that does not reach it."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketboss.orders import (
    NO_EXIT,
    STOP_LOSS,
    bracket_exit,
    buy_stop_limit,
    limit_fill,
    stop_fill,
    stop_limit_fill,
    trailing_fill,
)
from tests.integration.broker_replay import OrderSpec, daily_bars, replay_fills

OHLC = tuple[float, float, float, float]


@st.composite
def bar_paths(draw: st.DrawFn) -> list[OHLC]:
    """3-10 daily bars in cents from $100: gaps, ranges and moves of a few dollars, never below $5."""
    out: list[OHLC] = []
    close = 10_000
    for _ in range(draw(st.integers(3, 10))):
        o = max(500, close + draw(st.integers(-300, 300)))
        c = max(500, o + draw(st.integers(-400, 400)))
        h = max(o, c) + draw(st.integers(0, 300))
        lo = max(500, min(o, c) - draw(st.integers(0, 300)))
        out.append((o / 100, h / 100, lo / 100, c / 100))
        close = c
    return out


def cents(x: float) -> float:
    return max(1.0, round(x, 2))


@st.composite
def orders(draw: st.DrawFn, bars: list[OHLC]) -> OrderSpec:
    """One order of any type, placed after a bar that is not the last, priced around that bar's close."""
    t0 = draw(st.integers(0, len(bars) - 2))
    ref = bars[t0][3]
    side = draw(st.sampled_from(["buy", "sell"]))
    kind = draw(st.sampled_from(["market", "limit", "stop", "stop_limit", "trailing_stop", "bracket"]))
    tif = draw(st.sampled_from(["day", "gtc"]))
    offset = st.integers(-500, 500).map(lambda c: cents(ref + c / 100))
    spec = OrderSpec(bar=t0, symbol="AAPL", side=side, time_in_force=tif, client_order_id="o")
    if kind == "limit":
        return _with(spec, type="limit", limit_price=draw(offset))
    if kind == "stop":
        return _with(spec, type="stop", stop_price=draw(offset))
    if kind == "stop_limit":
        return _with(spec, type="stop_limit", stop_price=draw(offset), limit_price=draw(offset))
    if kind == "trailing_stop":
        if draw(st.booleans()):
            return _with(spec, type="trailing_stop", trail_percent=draw(st.integers(1, 20)) / 2)
        return _with(spec, type="trailing_stop", trail_price=draw(st.integers(10, 500)) / 100)
    if kind == "bracket":  # market or limit entry, legs a cent or more either side of its base price, gtc
        entry = draw(st.sampled_from(["market", "limit"]))
        limit = draw(offset) if entry == "limit" else None
        base = limit if limit is not None else ref
        up, down = draw(st.integers(1, 600)) / 100, draw(st.integers(1, 600)) / 100
        take, stop = (cents(base + up), cents(base - down)) if side == "buy" else (cents(base - up), cents(base + down))
        if (side == "buy" and not take > base > stop) or (side == "sell" and not take < base < stop):
            return _with(spec, type=entry, limit_price=limit)  # too near $1 for a valid bracket: the entry alone
        return _with(spec, type=entry, limit_price=limit, take_profit=take, stop_loss=stop, time_in_force="gtc")
    return spec


def _with(spec: OrderSpec, **changes: object) -> OrderSpec:
    return replace(spec, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Expected:
    leg: str | None
    bar: int
    price: float


def reference(bars: list[OHLC], o: OrderSpec) -> list[Expected]:
    """The rules walked over the bars by hand: where the order (and then its legs) fill, if anywhere."""
    buy = o.side == "buy"
    kind, limit_price = o.type, o.limit_price
    if kind == "stop" and buy:  # collared (the broker's default, as Alpaca's): a stop-limit
        assert o.stop_price is not None
        kind, limit_price = "stop_limit", buy_stop_limit(o.stop_price)
    nan = math.nan
    mark = bars[o.bar][3]
    triggered = False
    pct = nan if o.trail_percent is None else o.trail_percent
    gap = nan if o.trail_price is None else o.trail_price
    last = o.bar + 1 if o.time_in_force == "day" else len(bars) - 1
    entry: Expected | None = None
    for k in range(o.bar + 1, last + 1):
        op, hi, lo, _ = bars[k]
        if kind == "market":
            px = op
        elif kind == "limit" or (kind == "stop_limit" and triggered):
            px = limit_fill(buy, op, hi, lo, limit_price)
        elif kind == "stop":
            px = stop_fill(buy, op, hi, lo, o.stop_price)
        elif kind == "stop_limit":
            triggered, px = stop_limit_fill(buy, op, hi, lo, o.stop_price, limit_price)
        else:
            px, mark = trailing_fill(buy, op, hi, lo, mark, pct, gap)
        if not math.isnan(px):
            entry = Expected(None, k, float(px))
            break
    if entry is None:
        return []
    out = [entry]
    if o.take_profit is None or o.stop_loss is None:
        return out
    first = entry.bar if entry.price == bars[entry.bar][0] else entry.bar + 1
    for j in range(first, len(bars)):
        op, hi, lo, _ = bars[j]
        which, px = bracket_exit(buy, op, hi, lo, o.take_profit, o.stop_loss)
        if which != NO_EXIT:
            return [*out, Expected("stop_loss" if which == STOP_LOSS else "take_profit", j, float(px))]
    return out


def reaches(o: OrderSpec, leg: str | None, bar: OHLC) -> bool:
    """Whether a bar reaches the price that lets the order (or leg) trade: a limit or stop never fills elsewhere."""
    _, hi, lo, _ = bar
    buy = (o.side == "buy") == (leg is None)
    if leg == "take_profit" or (leg is None and o.type == "limit"):
        limit = o.take_profit if leg else o.limit_price
        assert limit is not None
        return lo <= limit if buy else hi >= limit
    if leg is None and o.type == "stop" and buy:  # collared: a limit once triggered
        assert o.stop_price is not None
        return lo <= buy_stop_limit(o.stop_price)
    if leg == "stop_loss" or (leg is None and o.type == "stop"):
        stop = o.stop_loss if leg else o.stop_price
        assert stop is not None
        return hi >= stop if buy else lo <= stop
    return True


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), bars=bar_paths())
def test_the_broker_fills_every_order_type_where_the_rules_say(data: st.DataObject, bars: list[OHLC]) -> None:
    order = data.draw(orders(bars))
    fills = replay_fills(daily_bars("AAPL", bars), [order])
    got = [Expected(f.leg, f.bar, f.price) for f in fills]
    assert got == reference(bars, order), (bars, order)
    for f in fills:
        _, hi, lo, _ = bars[f.bar]
        assert lo <= f.price <= hi
        assert reaches(order, f.leg, bars[f.bar])
        assert f.qty == order.qty
