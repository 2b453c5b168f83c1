"""Pairs mean reversion, event-driven: when the spread of two symbols' log prices strays `entry_z` deviations from
its rolling mean, sell the rich one and buy the cheap one (each leg a target weight), and leave when the spread is
back within `exit_z` deviations, or after `hold_bars` bars (a time stop).

The spread compares two symbols: an indicator of the whole market (`market_indicators`), not of one symbol's
bars.

    marketboss backtest --strategy examples/pairs_events.py:PairsEvents --param a=AAPL --param b=MSFT
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from marketboss.data.market import Market
from marketboss.errors import MarketBossError
from marketboss.indicators import zscore
from marketboss.strategies.events import Context, EventParams, EventStrategy


class PairsParams(EventParams):
    a: str | None = Field(None, description="the pair's first symbol (default: the data's first)")
    b: str | None = Field(None, description="its second (default: the data's second)")
    window: int = Field(40, ge=10, description="bars in the spread's rolling mean and deviation (a z-score of n "
                        "values stays within sqrt(n - 1): 10 bars reach 3)")  # fmt: skip
    entry_z: float = Field(2.0, gt=0, description="enter when the spread's z-score is beyond this")
    exit_z: float = Field(0.5, ge=0, description="exit when it is back within this")
    hold_bars: int = Field(20, ge=1, description="time stop: close both legs after this many bars")
    weight: float = Field(0.4, gt=0, le=0.5, description="each leg's target weight of equity")
    long_only: bool = Field(False, description="a pair shorts one leg")


class PairsEvents(EventStrategy[PairsParams]):
    """Short the rich leg, buy the cheap one; out when the spread reverts or the time is up."""

    name = "pairs_events"
    summary = "pairs mean reversion on the log-price spread's z-score, with a time stop (event-driven)"
    params_model = PairsParams

    def _pair(self, symbols: tuple[str, ...]) -> tuple[int, int]:
        p = self.params
        names = (p.a or symbols[0], p.b or (symbols[1] if len(symbols) > 1 else symbols[0]))
        missing = [n for n in names if n not in symbols]
        if missing or names[0] == names[1]:
            raise MarketBossError(f"pairs_events trades two symbols of the data ({', '.join(symbols)}): "
                                  f"--param a=... --param b=..., not {', '.join(names)}")  # fmt: skip
        return symbols.index(names[0]), symbols.index(names[1])

    def market_indicators(self, market: Market) -> dict[str, np.ndarray]:
        i, j = self._pair(market.symbols)
        z = np.full(market.close.shape, np.nan)  # the spread's z-score, in the first leg's column
        z[:, i] = zscore(np.log(market.close[:, i]) - np.log(market.close[:, j]), self.params.window)
        return {"z": z}

    def start(self, ctx: Context) -> None:
        self.legs = self._pair(ctx.symbols)
        self.entered = -1  # the bar the pair was entered on (-1: flat)

    def on_bar(self, ctx: Context) -> None:
        p, (a, b) = self.params, self.legs
        z = ctx.value("z", a)
        if ctx.position(a) == 0 and ctx.position(b) == 0 and not ctx.open_orders:
            if abs(z) > p.entry_z:  # NaN (the window not full yet) is not
                rich, cheap = (a, b) if z > 0 else (b, a)
                ctx.target_weight(-p.weight, rich)
                ctx.target_weight(p.weight, cheap)
                self.entered = ctx.t
        elif self.entered >= 0 and (abs(z) < p.exit_z or ctx.t - self.entered >= p.hold_bars):
            ctx.close(a)
            ctx.close(b)
            self.entered = -1
