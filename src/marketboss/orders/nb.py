"""The fill and trigger rules on a bar's prices, written once (numba) for the backtest, the sweep and the local
broker. Each takes the bar's open, high and low and returns the price the order trades at on that bar, NaN when
it does not trade there. The price is where the bar's path first touches the order, always within [low, high];
costs (slippage, spread, commission) are added by the caller.

- A limit buy fills when the low reaches the limit, at the better of the open and the limit (a sell: the high,
  at the better of the two for the seller).
- A stop buy triggers when the high reaches the stop, at the worse of the open and the stop: a gap through the
  stop fills at the open (a sell stop: the low, the lower of the two).
- A stop-limit triggers as a stop; on the trigger bar it fills only if the trigger price is within its limit
  (no guess at the bar's path after the trigger), and from the next bar on it is a limit order.
- A buy stop is collared as Alpaca collars it: a stop-limit whose limit is 4% above a stop under $50, 2.5% above
  one of $50 or more (buy_stop_limit), so a gap beyond the collar does not buy at any price: the order waits, as
  a limit order, for the price to come back. On by default in the backtest (BacktestConfig.buy_stop_collar) and
  the local broker (BrokerConfig.buy_stop_collar), switched off by the same flag in both; sell stops, trailing
  stops and a bracket's stop-loss leg stay stops.
- A trailing stop's level follows the best price since it was placed (the high-water mark for a sell protecting
  a long, the low-water mark for a buy covering a short) and only moves in the position's favour. Within a bar
  the level from the bars before is tested first, then the mark moves with the bar: a bar cannot both raise the
  stop and hit it.
- A bracket's two exits are one-cancels-other; when one bar reaches both, the stop is taken (the conservative
  choice: the bar's path is unknown), unless the bar opened at or through the take-profit (the path starts there:
  the limit fills at the open, as a broker fills an exit placed when the price is already through it). Its legs
  are live on the entry's own bar when the entry filled at the bar's open (the whole bar follows the fill), else
  from the next bar; backtesting.py's `buy(sl=..., tp=...)` gives the same fills
  (tests/unit/test_backtest_crosscheck.py) but on a bar opening through the target (it takes the stop).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from marketboss.orders.codes import NO_EXIT, STOP_LOSS, TAKE_PROFIT


@njit(cache=True)
def limit_fill(buy: bool, open_: float, high: float, low: float, limit: float) -> float:  # pragma: no cover
    if buy:
        return min(open_, limit) if low <= limit else np.nan
    return max(open_, limit) if high >= limit else np.nan


@njit(cache=True)
def stop_fill(buy: bool, open_: float, high: float, low: float, stop: float) -> float:  # pragma: no cover
    if buy:
        return max(open_, stop) if high >= stop else np.nan
    return min(open_, stop) if low <= stop else np.nan


@njit(cache=True)
def buy_stop_limit(stop: float) -> float:  # pragma: no cover - compiled
    """The limit Alpaca gives a buy stop order (it becomes a stop-limit): 4% above a stop under $50, 2.5% above
    one of $50 or more, rounded to the price grid (whole cents from $1, hundredths of a cent below)."""
    limit = stop * (1.04 if stop < 50.0 else 1.025)
    grid = 100.0 if limit >= 1.0 else 10_000.0
    return np.floor(limit * grid + 0.5) / grid


@njit(cache=True)
def stop_limit_fill(
    buy: bool, open_: float, high: float, low: float, stop: float, limit: float
) -> tuple[bool, float]:  # pragma: no cover - compiled
    """(triggered on this bar, fill price or NaN) for a stop-limit not yet triggered; once triggered the order is
    a limit order (limit_fill) from the next bar."""
    touch = stop_fill(buy, open_, high, low, stop)
    if np.isnan(touch):
        return False, np.nan
    within = touch <= limit if buy else touch >= limit
    return True, (touch if within else np.nan)


@njit(cache=True)
def trailing_level(buy: bool, mark: float, trail_percent: float, trail_price: float) -> float:  # pragma: no cover
    """The stop level from the mark (best price since placed): a sell trails below the high-water mark, a buy
    above the low-water mark, by a percentage of the mark or a price distance (whichever is given, not NaN). On
    the price grid (cents from $1, hundredths of a cent below), on the far side: the first trade price a sell's
    level lets through is the grid's price at or below it (a buy's: at or above), so a stop at 97.755 sells at
    97.75, where a fill at the level itself was at a price no trade has."""
    gap = mark * trail_percent / 100.0 if not np.isnan(trail_percent) else trail_price
    level = mark + gap if buy else mark - gap
    grid = 100.0 if level >= 1.0 else 10_000.0
    return np.ceil(level * grid - 1e-6) / grid if buy else np.floor(level * grid + 1e-6) / grid


@njit(cache=True)
def trailing_mark(buy: bool, mark: float, high: float, low: float) -> float:  # pragma: no cover - compiled
    """The mark after a bar: it only moves in the position's favour."""
    return min(mark, low) if buy else max(mark, high)


@njit(cache=True)
def trailing_fill(
    buy: bool, open_: float, high: float, low: float, mark: float, trail_percent: float, trail_price: float
) -> tuple[float, float]:  # pragma: no cover - compiled
    """(fill price or NaN, the mark after this bar) for a trailing stop whose mark is `mark` before the bar."""
    price = stop_fill(buy, open_, high, low, trailing_level(buy, mark, trail_percent, trail_price))
    return price, trailing_mark(buy, mark, high, low)


@njit(cache=True)
def bracket_exit(
    long: bool, open_: float, high: float, low: float, take_profit: float, stop_loss: float
) -> tuple[int, float]:  # pragma: no cover - compiled
    """(which exit, price) for a position's bracket on a bar: the stop-loss leg is a stop order closing the
    position, the take-profit leg a limit order; NaN levels are absent legs. Both reached: the stop, unless the bar
    opened at or through the take-profit: its path starts there, and the limit fills at the open."""
    buy = not long  # closing a long sells, closing a short buys
    if not np.isnan(take_profit) and (open_ >= take_profit if long else open_ <= take_profit):
        return TAKE_PROFIT, open_
    if not np.isnan(stop_loss):
        p = stop_fill(buy, open_, high, low, stop_loss)
        if not np.isnan(p):
            return STOP_LOSS, p
    if not np.isnan(take_profit):
        p = limit_fill(buy, open_, high, low, take_profit)
        if not np.isnan(p):
            return TAKE_PROFIT, p
    return NO_EXIT, np.nan
