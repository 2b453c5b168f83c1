"""Move the stop: buy a breakout with a bracket (a stop-loss and a take-profit); once the position is up
`arm_pct`, cancel the bracket and protect it with a stop at the entry price instead (breakeven).

    marketboss backtest --strategy examples/breakeven_stop.py:BreakevenStop --param arm_pct=3

`ctx.cancel(entry)` of an order that has filled cancels its exits still working (its bracket legs: at the
broker too, in paper and live) and keeps the position; the new stop is an order of its own. `compiled()` gives
the same logic as a numba function, where a CANCEL_EXITS row does what ctx.cancel of the entry does (the tests
check that both trade alike).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit
from pydantic import Field

from marketboss import Context, EventParams, EventStrategy, PlacedOrder
from marketboss.data.market import SymbolBars
from marketboss.indicators import rolling_max
from marketboss.signals.nb import exit_price, tick
from marketboss.strategies.events import (
    CANCEL_EXITS,
    OUT_GTC,
    OUT_KIND,
    OUT_QTY,
    OUT_SIDE,
    OUT_SL,
    OUT_STOP,
    OUT_SYMBOL,
    OUT_TP,
    OUT_TRAIL,
    OUT_WEIGHT,
    CompiledOnBar,
    entry_args,
)  # fmt: skip


class BreakevenParams(EventParams):
    lookback: int = Field(20, ge=2, description="breakout: the close above the highest close of this many bars")
    stop_loss_pct: float | None = Field(5.0, ge=0.1, le=50, description="exit: the bracket's stop-loss, percent "
                                        "below the entry close")  # fmt: skip
    take_profit_pct: float | None = Field(10.0, ge=0.1, le=50, description="exit: the bracket's take-profit, "
                                          "percent above it")  # fmt: skip
    arm_pct: float = Field(3.0, gt=0, le=100, description="up this much from the entry close: stop to breakeven")


@dataclass
class Entry:
    order: PlacedOrder
    price: float  # the close it was decided at: the breakeven stop's price
    moved: bool = False


class BreakevenStop(EventStrategy[BreakevenParams]):
    """Breakout entries with a bracket, whose stop moves to the entry price once the trade is up arm_pct."""

    name = "breakeven_stop"
    summary = "breakout with a bracket; the stop moves to breakeven (event-driven)"
    params_model = BreakevenParams

    def indicators(self, bars: SymbolBars) -> dict[str, np.ndarray]:
        return {"prior_high": rolling_max(bars.close, self.params.lookback, exclude_current=True)}

    def start(self, ctx: Context) -> None:
        self.entries: dict[int, Entry] = {}

    def on_bar(self, ctx: Context) -> None:
        p = self.params
        for s in range(len(ctx.symbols)):
            price, held, entry = ctx.price(s), ctx.position(s), self.entries.get(s)
            if not held:
                waiting = any(o.symbol == s for o in ctx.open_orders)
                if entry is not None and not waiting:
                    del self.entries[s]  # left by an exit: flat again
                if not waiting and price > ctx.value("prior_high", s):
                    order = ctx.buy(symbol=s)  # sized by the parameters, bracketed by their exits
                    if order is not None:
                        self.entries[s] = Entry(order, price)
            elif entry is not None and not entry.moved and price >= entry.price * (1 + p.arm_pct / 100):
                ctx.cancel(entry.order)  # its bracket's legs end; the position stays
                ctx.sell(held, s, stop_price=tick(entry.price), time_in_force="gtc")
                entry.moved = True

    def compiled(self) -> CompiledOnBar:
        p = self.params
        return CompiledOnBar(_on_bar, np.array([*entry_args(p), p.arm_pct]), ("prior_high",), memory=2,
                             per_symbol=True)  # fmt: skip


@njit(cache=True)
def _on_bar(t, open_, high, low, close, ind, position, cash, equity, args, mem, out, open_orders):  # type: ignore[no-untyped-def]
    """The same logic compiled. mem[0, s]: the entry's close (0: no entry); mem[1, s]: 1 once its stop moved.
    open_orders (its 13th parameter): per symbol, as ctx.open_orders. args: entry_args (the size and exits
    ctx.buy takes from the parameters), then arm_pct."""
    arm_pct = args[5]
    n = 0
    for s in range(close.shape[1]):
        price = close[t, s]
        if position[s] == 0.0:
            if open_orders[s] == 0.0:
                mem[0, s] = 0.0  # left by an exit: flat again
                if price > ind[0, t, s]:
                    out[n, :] = np.nan
                    out[n, OUT_SYMBOL], out[n, OUT_SIDE], out[n, OUT_KIND], out[n, OUT_GTC] = s, 1.0, 0.0, 0.0
                    out[n, OUT_QTY], out[n, OUT_WEIGHT] = args[0], args[1]
                    out[n, OUT_TP] = exit_price(price, 1.0, args[2])
                    out[n, OUT_SL] = exit_price(price, -1.0, args[3])
                    out[n, OUT_TRAIL] = args[4]
                    mem[0, s], mem[1, s] = price, 0.0
                    n += 1
        elif mem[0, s] > 0.0 and mem[1, s] == 0.0 and price >= mem[0, s] * (1 + arm_pct / 100):
            out[n, :] = np.nan
            out[n, OUT_SYMBOL], out[n, OUT_KIND] = s, CANCEL_EXITS  # the entry's bracket legs end
            out[n + 1, :] = np.nan
            out[n + 1, OUT_SYMBOL], out[n + 1, OUT_SIDE], out[n + 1, OUT_QTY] = s, -1.0, position[s]
            out[n + 1, OUT_KIND], out[n + 1, OUT_STOP], out[n + 1, OUT_GTC] = 2.0, tick(mem[0, s]), 1.0
            mem[1, s] = 1.0
            n += 2
    return n
