"""RSI with a bracket, event-driven: buy when RSI(14) drops below 30, with a stop-loss 5% below and a
take-profit 10% above the close it decided on; nothing else until the position is gone. backtesting.py's
`self.buy(sl=..., tp=...)` strategy, for MarketBoss's on_bar (and its compiled path: benchmarks/bench_events.py).

    marketboss backtest --strategy examples/rsi_bracket_events.py:RsiBracketEvents
"""

from __future__ import annotations

import numpy as np
from numba import njit
from pydantic import Field

from marketboss.data.market import SymbolBars
from marketboss.indicators import rsi
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
)  # fmt: skip


class RsiBracketParams(EventParams):
    n: int = Field(14, ge=2, description="RSI length (bars)")
    oversold: float = Field(30.0, gt=0, lt=100, description="buy below this RSI")
    stop_loss_pct: float | None = Field(5.0, ge=0.1, le=50, description="stop-loss, percent below the entry close")
    take_profit_pct: float | None = Field(10.0, ge=0.1, le=50, description="take-profit, percent above it")


class RsiBracketEvents(EventStrategy[RsiBracketParams]):
    """Oversold entries with a 5% stop and a 10% target (the parameters' exits bracket every buy)."""

    name = "rsi_bracket_events"
    summary = "RSI oversold entries with a stop-loss/take-profit bracket (event-driven)"
    params_model = RsiBracketParams

    def indicators(self, bars: SymbolBars) -> dict[str, np.ndarray]:
        return {"rsi": rsi(bars.close, self.params.n)}

    def on_bar(self, ctx: Context) -> None:
        for s in range(len(ctx.symbols)):
            if ctx.position(s) == 0 and ctx.value("rsi", s) < self.params.oversold:
                ctx.buy(symbol=s)  # sized by the parameters, bracketed by their exit percents

    def compiled(self) -> CompiledOnBar:
        p = self.params
        return CompiledOnBar(_on_bar, np.array([*entry_args(p), p.oversold]), ("rsi",))


@njit(cache=True)
def _on_bar(t, open_, high, low, close, ind, position, cash, equity, args, mem, out):  # type: ignore[no-untyped-def]
    """args: entry_args (the size and exits ctx.buy takes from the parameters), then the oversold level."""
    n = 0
    for s in range(close.shape[1]):
        if position[s] == 0.0 and ind[0, t, s] < args[5]:
            out[n, :] = np.nan
            out[n, OUT_SYMBOL], out[n, OUT_SIDE], out[n, OUT_KIND], out[n, OUT_GTC] = s, 1.0, 0.0, 0.0  # day
            out[n, OUT_QTY], out[n, OUT_WEIGHT] = args[0], args[1]
            out[n, OUT_TP] = exit_price(close[t, s], 1.0, args[2])
            out[n, OUT_SL] = exit_price(close[t, s], -1.0, args[3])
            out[n, OUT_TRAIL] = args[4]
            n += 1
    return n
