"""An event-driven strategy with path-dependent exits: buy a breakout, then leave on whichever comes first of a
trailing stop (a leg of the entry, traded by the broker) and a time stop (this strategy's own count of bars).

    marketboss backtest --strategy examples/time_trailing_stop.py:TimeTrailingStop --param hold_bars=10 \
        --param trail_percent=5

`on_bar` is plain Python; `compiled()` gives the same logic as a numba function, which runs the whole loop
compiled (the tests check that both trade alike).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from pydantic import Field

from marketboss.data.market import SymbolBars
from marketboss.indicators import rolling_max
from marketboss.signals.nb import exit_price
from marketboss.strategies.events import (
    OUT_GTC,
    OUT_KIND,
    OUT_QTY,
    OUT_SIDE,
    OUT_SL,
    OUT_SYMBOL,
    OUT_TP,
    OUT_TRAIL,
    OUT_WEIGHT,
    CompiledOnBar,
    Context,
    EventParams,
    EventStrategy,
    entry_args,
)


class TimeTrailingParams(EventParams):
    lookback: int = Field(20, ge=2, description="breakout: the close above the highest close of this many bars")
    hold_bars: int = Field(10, ge=1, description="time stop: close the position after this many bars")
    trail_percent: float | None = Field(5.0, ge=0.1, le=50, description="exit: trailing stop leg, percent below "
                                        "the best price since entry")  # fmt: skip


class TimeTrailingStop(EventStrategy[TimeTrailingParams]):
    """Breakout entries with a trailing stop leg and a time stop."""

    name = "time_trailing_stop"
    summary = "breakout entry, trailing stop plus time stop (event-driven)"
    params_model = TimeTrailingParams

    def indicators(self, bars: SymbolBars) -> dict[str, np.ndarray]:
        return {"prior_high": rolling_max(bars.close, self.params.lookback, exclude_current=True)}

    def start(self, ctx: Context) -> None:
        self.entered = [-1] * len(ctx.symbols)  # the bar each position was first seen, -1: flat

    def on_bar(self, ctx: Context) -> None:
        p = self.params
        for s in range(len(ctx.symbols)):
            held = ctx.position(s)
            if held == 0:
                self.entered[s] = -1
                if ctx.price(s) > ctx.value("prior_high", s) and not any(o.symbol == s for o in ctx.open_orders):
                    ctx.buy(symbol=s)  # sized by the parameters, its legs their exits (the trailing stop)
            elif self.entered[s] < 0:
                self.entered[s] = ctx.t
            elif ctx.t - self.entered[s] >= p.hold_bars:
                ctx.close(s)
                self.entered[s] = ctx.t + 1_000_000  # one close order is enough

    def compiled(self) -> CompiledOnBar:
        p = self.params
        return CompiledOnBar(_on_bar, np.array([*entry_args(p), p.hold_bars]), ("prior_high",), memory=1,
                             per_symbol=True)  # fmt: skip


@njit(cache=True)
def _on_bar(t, open_, high, low, close, ind, position, cash, equity, args, mem, out, open_orders):  # type: ignore[no-untyped-def]
    """The same logic compiled. mem[0, s]: the bar + 1 a position was first seen (0: flat); open_orders (its
    13th parameter): per symbol, as ctx.open_orders. args: entry_args (the size and exits ctx.buy takes from
    the parameters), then hold_bars."""
    hold = args[5]
    n = 0
    for s in range(close.shape[1]):
        if position[s] == 0.0:
            mem[0, s] = 0.0
            if open_orders[s] == 0.0 and close[t, s] > ind[0, t, s]:
                out[n, :] = np.nan
                out[n, OUT_SYMBOL], out[n, OUT_SIDE], out[n, OUT_KIND], out[n, OUT_GTC] = s, 1.0, 0.0, 0.0
                out[n, OUT_QTY], out[n, OUT_WEIGHT] = args[0], args[1]
                out[n, OUT_TP] = exit_price(close[t, s], 1.0, args[2])
                out[n, OUT_SL] = exit_price(close[t, s], -1.0, args[3])
                out[n, OUT_TRAIL] = args[4]
                n += 1
        elif mem[0, s] == 0.0:
            mem[0, s] = t + 1.0
        elif t + 1.0 - mem[0, s] >= hold:
            out[n, :] = np.nan
            out[n, OUT_SYMBOL], out[n, OUT_SIDE], out[n, OUT_WEIGHT], out[n, OUT_KIND] = s, -position[s], 0.0, 0.0
            out[n, OUT_GTC] = 0.0
            mem[0, s] = 1e12  # one close order is enough
            n += 1
    return n
