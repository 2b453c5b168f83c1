"""Moving-average crossover, the guide's default: long while the fast average is above the slow one."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from marketboss.data.market import SymbolBars
from marketboss.strategies.base import Strategy, StrategyParams, held_changes
from marketboss.strategies.kernels import fill_steps, ma_cross


class MACrossoverParams(StrategyParams):
    fast: int = Field(10, ge=1, description="fast average length (bars)")
    slow: int = Field(30, ge=2, description="slow average length (bars)")
    ma: Literal["sma", "ema"] = Field("sma", description="simple or exponential averages")

    @model_validator(mode="after")
    def _ordered(self) -> MACrossoverParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be below slow ({self.slow})")
        return self


class MACrossover(Strategy[MACrossoverParams]):
    """Enters on a cross (never mid-trend at the start): long when fast crosses above slow, out (or short)
    when it crosses below."""

    name = "ma_crossover"
    summary = "fast/slow moving-average crossover (sma or ema)"
    params_model = MACrossoverParams

    def exposure(self, bars: SymbolBars) -> np.ndarray:
        idx, side = self._crosses(bars)
        return fill_steps(idx, side, np.empty(len(bars)))

    def changes(self, bars: SymbolBars, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Straight from the crosses: the exposure only ever changes there."""
        idx, side = self._crosses(bars)
        j, before, after = held_changes(side, lo, hi)
        return idx[j], before, after

    def _crosses(self, bars: SymbolBars) -> tuple[np.ndarray, np.ndarray]:
        """(bars where the averages cross, the side each crosses to: +1 above, -1 below)."""
        p = self.params
        idx = np.empty(len(bars), dtype=np.int64)  # room for a cross at every bar
        k, first = ma_cross(bars.close, p.fast, p.slow, p.ma == "ema", idx)
        side = np.empty(k)
        away = -1.0 if first == 1 else 1.0  # crosses alternate, starting away from the side first taken
        side[0::2] = away
        side[1::2] = -away
        return idx[:k], side
