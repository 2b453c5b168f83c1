"""The signal ids' compiled kernel (numba): splitmix hashing of (strategy-symbol key, bar time, action)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def splitmix(x: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    """splitmix64's finaliser: a fixed bijection of 64-bit values that spreads every input bit."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def id_text(keys: np.ndarray, ts: np.ndarray, codes: np.ndarray, prefix: np.ndarray, out: np.ndarray) -> None:
    # pragma: no cover - compiled
    """Row i of `out` (n x 20 bytes): the 4-byte prefix, then the 16 lower-case hex digits of
    splitmix(key ^ splitmix(ts ^ splitmix(code))) of signal i, most significant first."""
    for i in range(keys.shape[0]):
        h = splitmix(keys[i] ^ splitmix(np.uint64(ts[i]) ^ splitmix(np.uint64(codes[i]))))
        out[i, :4] = prefix
        for j in range(16):
            d = (h >> np.uint64(60 - 4 * j)) & np.uint64(0xF)
            out[i, 4 + j] = d + (48 if d < 10 else 87)  # '0'..'9', 'a'..'f'


@njit(cache=True)
def tick(price: float) -> float:  # pragma: no cover - compiled
    """A price on the grid Alpaca accepts: cents from $1, hundredths of a cent below. The one rounding of exit
    prices, for signals/exits.py and the sweep kernel alike."""
    return np.round(price, 2) if price >= 1.0 else np.round(price, 4)


@njit(cache=True)
def exit_price(ref: float, up: float, pct: float) -> float:  # pragma: no cover - compiled
    """The exit `pct` percent from `ref`, above it (up = 1) or below it (up = -1), on the tick grid; NaN without
    a percent."""
    return tick(ref * (1.0 + up * pct / 100.0)) if not np.isnan(pct) else np.nan


@njit(cache=True)
def exit_prices(ref: np.ndarray, up: np.ndarray, pct: float, out: np.ndarray) -> None:  # pragma: no cover
    for i in range(ref.shape[0]):
        out[i] = exit_price(ref[i], up[i], pct)
