"""Moving-average crossover, the guide's default: long while the fast average is above the slow one."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from marketboss import buffers, worker
from marketboss.data.market import SymbolBars
from marketboss.strategies.base import Strategy, StrategyParams, held_changes
from marketboss.strategies.nb import RESTART, fill_steps, ma_cross


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
        """(bars where the averages cross, the side each crosses to: +1 above, -1 below). A long series of
        simple averages is split at a restart point near its middle, its later half on the second core."""
        p = self.params
        x, n, ema = bars.close, len(bars), p.ma == "ema"
        idx = buffers.take((n,), np.int64)  # room for a cross at every bar
        mid = (n // 2 + RESTART // 2) // RESTART * RESTART if n >= 2 * RESTART else 0  # the nearest to n / 2
        if ema or mid < p.slow:
            k, _, first, _ = ma_cross(x, p.fast, p.slow, ema, 0, n, RESTART, idx)
            crosses = idx[:k]
        else:
            later_idx = buffers.take((n - mid,), np.int64)
            later = worker.start(ma_cross, x, p.fast, p.slow, False, mid, n, RESTART, later_idx)
            k, _, first, last = ma_cross(x, p.fast, p.slow, False, 0, mid, RESTART, idx)
            k_b, bar_b, first_b, _ = later()
            crosses = join_crosses(idx[:k], last, later_idx[:k_b], bar_b, first_b)
            first = first if first >= 0 else first_b
        side = np.empty(crosses.shape[0])
        away = -1.0 if first == 1 else 1.0  # crosses alternate, starting away from the side first taken
        side[0::2] = away
        side[1::2] = -away
        return crosses, side


def join_crosses(
    early: np.ndarray, early_last: int, later: np.ndarray, later_bar: int, later_first: int
) -> np.ndarray:
    """The crosses of [0, m) from those of [0, mid) and [mid, m) computed apart: the later part took its
    side at later_bar without knowing the side before it, which is a cross when the sides differ."""
    parts = [early]
    if early_last >= 0 and later_first >= 0 and later_first != early_last:
        parts.append(np.array([later_bar], dtype=np.int64))
    return np.concatenate([*parts, later])
