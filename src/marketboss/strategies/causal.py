"""A strategy's causality, checked where its code runs: what it computes from a symbol's bars, computed again
from their first part only, must be the same there. A value that changes when later bars are added looked
ahead (exposure[t], or an event strategy's indicator at t, may use bars up to t only)."""

from __future__ import annotations

import numpy as np

from marketboss.data.market import SymbolBars

#: The symbols a per-symbol computation (an exposure, an event strategy's indicators) is checked on: the first
#: two. The same code runs for every symbol; a peek a bar ahead shows at a cut where that bar moves the value, so
#: two symbols at two cuts make it near certain, for 4 computations more per run (not one per symbol).
CHECKED_SYMBOLS = 2


def cuts(n_bars: int) -> list[int]:
    """Where a computation over n_bars bars is cut to be checked: at the first half and three quarters."""
    return sorted({n_bars // 2, n_bars * 3 // 4} - {0})


def head(bars: SymbolBars, n: int) -> SymbolBars:
    """The symbol's first n bars, as the strategy would have seen them then."""
    return SymbolBars(bars.symbol, *(a[:n] for a in (bars.rows, bars.times, bars.open, bars.high, bars.low,
                                                     bars.close, bars.volume)))  # fmt: skip


def same_values(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal values, NaN where NaN; bit for bit first (what a deterministic computation gives, and cheap)."""
    if a.shape != b.shape:
        return False
    return bool(np.array_equal(a.view(np.int64), b.view(np.int64)) or np.array_equal(a, b, equal_nan=True))
