"""Buy and hold: every symbol bought on its first bar and never sold; the benchmark a strategy must beat.

With --fill close --fractional and weight = 1 / (number of symbols) its equity is the reports' equal-weight
buy-and-hold line exactly (each symbol bought at its first close with an equal share of the cash):

    marketboss backtest --strategy examples/buy_and_hold.py:BuyAndHold --fill close --fractional \
        --param weight=0.3333333333333333 --data data/market_data.jsonl
"""

from typing import Literal

import numpy as np
from pydantic import Field

from marketboss import Strategy, StrategyParams, SymbolBars


class BuyAndHoldParams(StrategyParams):
    sizing: Literal["quantity", "weight"] = Field("weight", description="quantity or weight (of equity)")
    weight: float = Field(1.0, gt=0, le=1, allow_inf_nan=False, description="equity fraction per symbol")


class BuyAndHold(Strategy[BuyAndHoldParams]):
    """Long every symbol from its first bar to the end."""

    name = "buy_and_hold"
    params_model = BuyAndHoldParams

    def exposure(self, bars: SymbolBars) -> np.ndarray:
        return np.ones(len(bars))
