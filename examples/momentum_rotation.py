"""Monthly cross-sectional momentum rotation: on the first bar of each month hold the `top_k` symbols with
the best return over the last `lookback` bars, in equal weight (1 / top_k of equity each), and nothing else;
the symbols it keeps are brought back to equal weight then too (`rebalance`).

A whole-market model: it overrides `exposures(market)` (time x symbol) instead of `exposure(bars)`.

    marketboss backtest --strategy examples/momentum_rotation.py:MomentumRotation --param top_k=2
"""

from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from marketboss import Market, Strategy, StrategyParams


class RotationParams(StrategyParams):
    lookback: int = Field(63, ge=1, description="bars in the momentum return")
    top_k: int = Field(2, ge=1, description="symbols held after each monthly rebalance")
    sizing: Literal["quantity", "weight"] = Field("weight", description="weight: equal weight, 1 / top_k each")
    rebalance: Literal["weekly", "monthly"] | int | None = Field("monthly", description="restore equal weights")

    @model_validator(mode="before")
    @classmethod
    def _equal_weight(cls, values: Any) -> Any:
        if isinstance(values, dict) and "weight" not in values:  # equal weight unless a weight is given
            k = str(values.get("top_k", 2))
            if k.isdigit() and int(k) >= 1:  # else top_k's own check reports it
                values = {**values, "weight": 1.0 / int(k)}
        return values


class MomentumRotation(Strategy[RotationParams]):
    """Each month, the top_k symbols by lookback return, equal weight."""

    name = "momentum_rotation"
    params_model = RotationParams

    def exposures(self, market: Market) -> np.ndarray:
        p = self.params
        close = market.close
        out = np.full(close.shape, np.nan)  # NaN: no change between rebalances
        month = market.timestamps().dt.month().to_numpy()
        for t in range(p.lookback, market.n_times):
            if month[t] == month[t - 1]:
                continue  # rebalance on the first bar of a month only
            ret = close[t] / close[t - p.lookback] - 1.0  # known at t's close: no look-ahead
            ranked = np.argsort(np.where(np.isnan(ret), -np.inf, -ret), kind="stable")
            out[t] = 0.0
            out[t, ranked[: p.top_k]] = 1.0
        return out
