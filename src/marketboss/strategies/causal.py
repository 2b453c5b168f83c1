"""A strategy's causality, checked where its code runs: what it computes from a symbol's bars, computed again
from their first part only, must be the same there. A value that changes when later bars are added looked
ahead (exposure[t], or an event strategy's indicator at t, may use bars up to t only)."""

from __future__ import annotations

import numpy as np

from marketboss.data.market import SymbolBars


def head(bars: SymbolBars, n: int) -> SymbolBars:
    """The symbol's first n bars, as the strategy would have seen them then."""
    return SymbolBars(bars.symbol, *(a[:n] for a in (bars.rows, bars.times, bars.open, bars.high, bars.low,
                                                     bars.close, bars.volume)))  # fmt: skip


def same_values(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal values, NaN where NaN; bit for bit first (what a deterministic computation gives, and cheap)."""
    if a.shape != b.shape:
        return False
    return bool(np.array_equal(a.view(np.int64), b.view(np.int64)) or np.array_equal(a, b, equal_nan=True))
