"""Mean reversion: buy stretches below the rolling mean (z-score) or oversold RSI, exit near the middle."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from marketboss.data.market import SymbolBars
from marketboss.indicators import rsi, zscore
from marketboss.strategies.base import Strategy, StrategyParams
from marketboss.strategies.kernels import band_state


class MeanReversionParams(StrategyParams):
    mode: Literal["zscore", "rsi"] = Field("zscore", description="zscore of close vs its rolling mean, or RSI")
    window: int = Field(20, ge=2, description="zscore: rolling window (bars)")
    entry_z: float = Field(2.0, gt=0, allow_inf_nan=False, description="zscore: enter beyond +/- this")
    exit_z: float = Field(0.5, ge=0, allow_inf_nan=False, description="zscore: exit inside +/- this")
    rsi_period: int = Field(14, ge=2, description="rsi: Wilder period (bars)")
    rsi_lower: float = Field(30, gt=0, lt=100, description="rsi: long below this")
    rsi_upper: float = Field(70, gt=0, lt=100, description="rsi: short above this")
    rsi_exit: float = Field(50, gt=0, lt=100, description="rsi: exit when crossing this")
    sizing: Literal["quantity", "weight"] = Field("weight", description="quantity or weight (of equity)")
    weight: float = Field(0.15, gt=0, le=1, allow_inf_nan=False, description="equity fraction per unit")

    @model_validator(mode="after")
    def _bands(self) -> MeanReversionParams:
        if self.exit_z >= self.entry_z:
            raise ValueError(f"exit_z ({self.exit_z}) must be below entry_z ({self.entry_z})")
        if not self.rsi_lower <= self.rsi_exit <= self.rsi_upper or self.rsi_lower >= self.rsi_upper:
            raise ValueError("need rsi_lower <= rsi_exit <= rsi_upper and rsi_lower < rsi_upper")
        return self


class MeanReversion(Strategy[MeanReversionParams]):
    name = "mean_reversion"
    summary = "z-score of close against its rolling mean, or RSI thresholds"
    params_model = MeanReversionParams

    def exposure(self, bars: SymbolBars) -> np.ndarray:
        p = self.params
        if p.mode == "zscore":
            z = zscore(bars.close, p.window)
            return band_state(z, -p.entry_z, -p.exit_z, p.entry_z, p.exit_z, z)
        r = rsi(bars.close, p.rsi_period)
        return band_state(r, p.rsi_lower, p.rsi_exit, p.rsi_upper, p.rsi_exit, r)
