"""Buy and hold: every symbol bought on its first bar and never sold; the benchmark a strategy must beat.

`weight` is the whole portfolio's, split equally among the symbols (1.0: all in, 1 / n of equity each). With
--fill close --fractional its equity is the reports' equal-weight buy-and-hold line exactly (each symbol bought at
its first close with an equal share of the cash):

    marketboss backtest --strategy examples/buy_and_hold.py:BuyAndHold --fill close --fractional \
        --data data/market_data.jsonl

A whole-market model: it overrides `exposures(market)`, as it needs the number of symbols.
"""

from typing import Literal

import numpy as np
from pydantic import Field

from marketboss import Market, Strategy, StrategyParams


class BuyAndHoldParams(StrategyParams):
    sizing: Literal["quantity", "weight"] = Field("weight", description="quantity or weight (of equity)")
    weight: float = Field(1.0, gt=0, le=1, allow_inf_nan=False, description="equity fraction of the whole "
                          "portfolio, split equally among the symbols")  # fmt: skip


class BuyAndHold(Strategy[BuyAndHoldParams]):
    """Long every symbol from its first bar to the end, in equal weight."""

    name = "buy_and_hold"
    params_model = BuyAndHoldParams

    def exposures(self, market: Market) -> np.ndarray:
        share = 1.0 / market.n_symbols if self.params.sizing == "weight" else 1.0  # a unit is `weight` of equity
        return np.where(np.isnan(market.close), np.nan, share)
