"""Move the stop: buy a breakout with a bracket (a stop-loss and a take-profit); once the position is up
`arm_pct`, cancel the bracket and protect it with a stop at the entry price instead (breakeven).

    marketboss backtest --strategy examples/breakeven_stop.py:BreakevenStop --param arm_pct=3

`ctx.cancel(entry)` of an order that has filled cancels its exits still working (its bracket legs: at the
broker too, in paper and live) and keeps the position; the new stop is an order of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from marketboss import Context, EventParams, EventStrategy, PlacedOrder


class BreakevenParams(EventParams):
    lookback: int = Field(20, ge=2, description="breakout: the close above the highest close of this many bars")
    stop_pct: float = Field(5.0, gt=0, lt=50, description="the bracket's stop-loss, percent below the entry close")
    target_pct: float = Field(10.0, gt=0, le=100, description="the bracket's take-profit, percent above it")
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

    def start(self, ctx: Context) -> None:
        self.entries: dict[int, Entry] = {}

    def on_bar(self, ctx: Context) -> None:
        p = self.params
        for s in range(len(ctx.symbols)):
            close = ctx.history(s).close
            held, entry = ctx.position(s), self.entries.get(s)
            if not held:
                waiting = any(o.symbol == s for o in ctx.open_orders)
                if entry is not None and not waiting:
                    del self.entries[s]  # left by an exit: flat again
                if not waiting and len(close) > p.lookback and close[-1] > close[-p.lookback - 1 : -1].max():
                    price = float(close[-1])
                    order = ctx.buy(p.quantity, s, stop_loss=round(price * (1 - p.stop_pct / 100), 2),
                                    take_profit=round(price * (1 + p.target_pct / 100), 2))  # fmt: skip
                    if order is not None:
                        self.entries[s] = Entry(order, price)
            elif entry is not None and not entry.moved and close[-1] >= entry.price * (1 + p.arm_pct / 100):
                ctx.cancel(entry.order)  # its bracket's legs end; the position stays
                ctx.sell(held, s, stop_price=round(entry.price, 2), time_in_force="gtc")
                entry.moved = True
