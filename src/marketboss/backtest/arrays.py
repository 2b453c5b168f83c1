"""The named tuples of arrays the backtest kernels (nb.py) take and return, and the orders' status codes: kept
apart from the kernels so that a command reads them without numba (marketboss.backtest.kernels returns them
from the ahead-of-time compiled module)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from marketboss.backtest.costs import BacktestConfig, FillMode

# Order status codes (engine.py names them).
PENDING = 0
FILLED = 1
REJECTED_CASH = 2
SKIPPED = 3
EXPIRED = 4
NO_BAR = 5
DAY_ENDED = 6  # a day order whose session ended before its price was reached
OPEN = 7  # a gtc order still working when the data ends
CANCELED = 8  # canceled by an event-driven strategy before it traded
LONG_ONLY = 9  # a sale under Rules.long_only with no shares held at its fill: it does not trade (never a short)
FRACTIONAL_SHORT = 10  # a sale that would sell a fraction of a share short: brokers refuse it
#: The statuses the "unfilled orders" metric counts: orders sent that never traded (not those canceled by the
#: strategy or cut by long_only, nor those rejected for cash, counted apart).
UNFILLED_STATUSES = (EXPIRED, NO_BAR, DAY_ENDED, OPEN)

DAY_US = 86_400e6


class Prices(NamedTuple):
    """The market as the kernels read it: bar times (epoch microseconds), (time x symbol) opens, highs, lows
    and closes, NaN where a symbol has no bar, and per bar the index of its session's last bar."""

    times: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    session_end: np.ndarray


class Rules(NamedTuple):
    """A backtest's settings (BacktestConfig) as the kernels read them: the engine's and the sweep's."""

    cash: float
    rate: float  # commission, a fraction of notional
    per_share: float  # commission per share
    minimum: float  # commission per fill, at least
    slip: float  # adverse price move per side, a fraction (slippage + half the spread)
    at_close: bool  # fill at the signal bar's close, not the next bar's open
    fractional: bool  # target-weight orders may trade fractional shares
    buy_stop_collar: bool = True  # a buy stop is a stop-limit at orders.nb.buy_stop_limit, as Alpaca makes it
    long_only: bool = False  # a sale is cut to the shares held at its fill, never through zero (nb.held_sale)

    @classmethod
    def of(cls, config: BacktestConfig) -> Rules:
        c = config.costs
        return cls(config.cash, c.commission, c.commission_per_share, c.commission_min, c.slip,
                   config.fill == FillMode.CLOSE, config.fractional, config.buy_stop_collar,
                   config.long_only)  # fmt: skip


class Orders(NamedTuple):
    """Per signal, in signal time order: its first live bar (-1: none, see schedule), symbol, side, quantity
    (NaN: a target-weight order), target weight and status (simulate updates it); `live` lists the fillable
    ones in execution order. Then the order fields of marketboss.signals: the type (orders.nb's codes), limit
    and stop prices, trail percent, gtc (else day), and the bracket's take-profit and stop-loss (NaN: absent).
    With `plain` (every signal a market order for the day without exits) those arrays may be empty."""

    bar: np.ndarray
    symbol: np.ndarray
    buy: np.ndarray
    qty: np.ndarray
    weight: np.ndarray
    status: np.ndarray
    live: np.ndarray
    plain: bool
    kind: np.ndarray
    limit: np.ndarray
    stop: np.ndarray
    trail: np.ndarray
    gtc: np.ndarray
    take_profit: np.ndarray
    stop_loss: np.ndarray


class Fills(NamedTuple):
    """simulate's fills, in fill order: the order's row (signal index; a leg's: its entry's), bar index and
    time, symbol, side, shares, price, commission and leg (orders.nb's exit codes; NO_EXIT for the order
    itself)."""

    row: np.ndarray
    bar: np.ndarray
    time: np.ndarray
    symbol: np.ndarray
    buy: np.ndarray
    qty: np.ndarray
    price: np.ndarray
    commission: np.ndarray
    leg: np.ndarray


class RoundTrips(NamedTuple):
    """round_trips' trades, in the order they close (those still open at the end last, exit row -1)."""

    symbol: np.ndarray
    long: np.ndarray
    qty: np.ndarray
    entry_time: np.ndarray
    entry_price: np.ndarray
    exit_time: np.ndarray
    exit_price: np.ndarray
    pnl: np.ndarray
    return_pct: np.ndarray
    entry_row: np.ndarray
    exit_row: np.ndarray
    days: np.ndarray
    bars: np.ndarray
    closed: np.ndarray


class Equity(NamedTuple):
    """Per bar, marked at its close."""

    cash: np.ndarray
    positions_value: np.ndarray
    equity: np.ndarray


# Closed round trips summarised as they are recorded, the same in trade_stats and the sweep kernel: (count,
# winners, sum of winning P&L, sum of losing P&L (<= 0), sum of P&L, sum of returns %, best, worst, sum of
# durations in days).
TradeAcc = tuple[int, int, float, float, float, float, float, float, float]
