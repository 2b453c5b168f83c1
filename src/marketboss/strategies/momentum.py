"""Momentum: time-series momentum (sign of the lookback return) or a Donchian channel breakout."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from marketboss.data.market import SymbolBars
from marketboss.indicators import rolling_max, rolling_min
from marketboss.strategies.base import Strategy, StrategyParams
from marketboss.strategies.kernels import breakout_state


class MomentumParams(StrategyParams):
    mode: Literal["tsmom", "breakout"] = Field("tsmom", description="tsmom: lookback return; breakout: channel")
    lookback: int = Field(60, ge=2, description="bars in the return / entry channel")
    threshold: float = Field(0.0, ge=0, allow_inf_nan=False, description="tsmom: dead zone for |return|")
    exit_lookback: int | None = Field(None, ge=1, description="breakout: exit channel bars (default lookback/2)")
    sizing: Literal["quantity", "weight"] = Field("weight", description="quantity or weight (of equity)")
    weight: float = Field(0.15, gt=0, le=1, allow_inf_nan=False, description="equity fraction per unit")

    @model_validator(mode="after")
    def _exit(self) -> MomentumParams:
        if self.exit_lookback is not None and self.exit_lookback > self.lookback:
            raise ValueError(f"exit_lookback ({self.exit_lookback}) must not exceed lookback ({self.lookback})")
        return self


class Momentum(Strategy[MomentumParams]):
    name = "momentum"
    summary = "time-series momentum over a lookback, or a channel breakout"
    params_model = MomentumParams

    def exposure(self, bars: SymbolBars) -> np.ndarray:
        p = self.params
        c = bars.close
        if p.mode == "tsmom":
            out = np.full(c.shape[0], np.nan)
            if c.shape[0] > p.lookback:
                ret = c[p.lookback :] / c[: -p.lookback] - 1.0
                out[p.lookback :] = np.where(ret > p.threshold, 1.0, np.where(ret < -p.threshold, -1.0, 0.0))
            return out
        exit_n = p.exit_lookback or max(1, p.lookback // 2)
        return breakout_state(
            c,
            rolling_max(bars.high, p.lookback, exclude_current=True),
            rolling_min(bars.low, p.lookback, exclude_current=True),
            rolling_max(bars.high, exit_n, exclude_current=True),
            rolling_min(bars.low, exit_n, exclude_current=True),
            np.empty(len(bars)),
        )
