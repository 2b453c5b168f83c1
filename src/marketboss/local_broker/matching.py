"""When an order trades on a bar, and at what price before costs: marketboss.orders' rules (the backtest's), applied
to the broker's orders. Costs and the limit cap are fills.py's.

An order is tested on every complete bar that starts at or after its `live_from` (when it was placed, whatever its
fill latency: an order placed at a bar's open works on that bar, one placed later inside it from the next; but a
trailing stop placed after an entry of its symbol filled at the open of the bar in progress, the exit the executor
places once its entry filled, works on that whole bar, as the backtest's exit does, however late it comes:
engine.Engine._trailing_mark), with the bar's open, high and low; when it starts
working inside a session it is also tested once against the price of that moment (a bar of one price), so that a
marketable order trades at once, as at Alpaca. At a bar's start that moment is the open, and the two tests give
what the one test on the whole bar gives. Bracket legs are tested on whole bars only, the
two together: when one bar reaches both, the stop wins (bracket_exit).
"""

from __future__ import annotations

import math
from decimal import Decimal

from marketboss.local_broker.marketdata import Bar
from marketboss.local_broker.records import Order
from marketboss.orders import (
    STOP_LOSS,
    TAKE_PROFIT,
    bracket_exit,
    limit_fill,
    stop_fill,
    stop_limit_fill,
    trailing_fill,
)

NAN = math.nan


def _f(d: Decimal | None) -> float:
    return NAN if d is None else float(d)


def rule_price(o: Order, bar: Bar, moves: bool) -> float:
    """The price o trades at on a bar (a moment is a bar of one price), NaN when it does not trade there.

    A stop-limit that triggers without trading becomes a limit order from the next bar (live_from moves past this
    bar's start); a trailing stop's mark moves with the bar when `moves` (whole bars, not moments)."""
    open_, high, low = bar.open, bar.high, bar.low
    buy = o.side == "buy"
    if o.at_market:
        return open_
    if o.type == "limit" or (o.type == "stop_limit" and o.triggered):
        return float(limit_fill(buy, open_, high, low, _f(o.limit_price)))
    if o.type == "stop":
        return float(stop_fill(buy, open_, high, low, _f(o.stop_price)))
    if o.type == "stop_limit":
        triggered, price = stop_limit_fill(buy, open_, high, low, _f(o.stop_price), _f(o.limit_price))
        if triggered:
            o.triggered = True
            if math.isnan(price):
                o.live_from = bar.start + 1
        return float(price)
    assert o.hwm is not None, "a trailing stop has its mark from placement"
    price, mark = trailing_fill(buy, open_, high, low, o.hwm, _f(o.trail_percent), _f(o.trail_price))
    if moves:
        o.hwm = float(mark)
    return float(price)


def leg_to_fill(legs: list[Order], bar: Bar, stop_only: bool = False) -> tuple[Order, float] | None:
    """Which of a parent's working legs trades on the bar, and at what price: the stop when the bar reaches both.
    `stop_only`: the take-profit is left for later (at a bar's open, which cannot tell what the bar does next)."""
    take = None if stop_only else next((x for x in legs if x.leg == "take_profit"), None)
    stop = next((x for x in legs if x.leg == "stop_loss"), None)
    if stop is not None and stop.type != "stop":  # a stop-limit stop-loss: its own rule, still before the take-profit
        price = rule_price(stop, bar, moves=True)
        if not math.isnan(price):
            return stop, price
        stop = None
    long = legs[0].side == "sell"
    take_level = _f(take.limit_price) if take is not None else NAN
    stop_level = _f(stop.stop_price) if stop is not None else NAN
    which, price = bracket_exit(long, bar.open, bar.high, bar.low, take_level, stop_level)
    if which == STOP_LOSS and stop is not None:
        return stop, float(price)
    if which == TAKE_PROFIT and take is not None:
        return take, float(price)
    return None
