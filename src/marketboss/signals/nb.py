"""The signals' compiled kernels (numba): ids (splitmix hashing of strategy-symbol key, bar time and action),
exit prices on the tick grid, and Signal's rules over many rows at once."""

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
def ticks(prices: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """tick of each price (NaN stays NaN)."""
    for i in range(prices.shape[0]):
        out[i] = tick(prices[i])


@njit(cache=True)
def exit_price(ref: float, up: float, pct: float) -> float:  # pragma: no cover - compiled
    """The exit `pct` percent from `ref`, above it (up = 1) or below it (up = -1), on the tick grid; NaN without
    a percent."""
    return tick(ref * (1.0 + up * pct / 100.0)) if not np.isnan(pct) else np.nan


@njit(cache=True)
def exit_prices(ref: np.ndarray, up: np.ndarray, pct: float, out: np.ndarray) -> None:  # pragma: no cover
    for i in range(ref.shape[0]):
        out[i] = exit_price(ref[i], up[i], pct)


@njit(cache=True)
def _in_range(v: float, low: float, high: float, low_open: float) -> bool:  # pragma: no cover - compiled
    """Absent (NaN) or in [low, high] ((low, high] when low_open); a present NaN reaches here as an infinity."""
    return np.isnan(v) or ((v > low if low_open else v >= low) and v <= high)


@njit(cache=True)
def _sides(buy: bool, lower: float, upper: float) -> bool:  # pragma: no cover - compiled
    """lower < upper for a buy, lower > upper for a sell."""
    return lower < upper if buy else lower > upper


@njit(cache=True)
def rules_pass(buy: np.ndarray, kind: np.ndarray, tif: np.ndarray, values: np.ndarray, ranges: np.ndarray,
               needs: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """Signal's size and order rules per BUY or SELL, as its validators check them: out[i] true where row i passes.
    kind: ORDER_TYPE_NAMES' index (-1 not one; an absent one is a market order); tif: 0 day, 1 gtc, -1 neither;
    values: the columns of kernels.RULE_FIELDS (NaN absent), ranges: per column (low, high, low open), needs:
    per kind, whether it needs a limit price, a stop price, a trail percent."""
    for i in range(buy.shape[0]):
        v, b, k = values[i], buy[i], kind[i]
        ok = (np.isnan(v[0]) != np.isnan(v[1])) and k >= 0 and tif[i] >= 0  # one size; known type and tif
        for c in range(v.shape[0]):
            ok = ok and _in_range(v[c], ranges[c, 0], ranges[c, 1], ranges[c, 2])
        if not ok:
            out[i] = False
            continue
        lim, stop, trail, tp, sl = v[3], v[4], v[5], v[6], v[7]
        for p in (lim, stop, tp, sl):  # order prices on the grid (Alpaca refuses a finer one)
            ok = ok and (np.isnan(p) or tick(p) == p)
        ok = ok and (not np.isnan(lim)) == needs[k, 0] and (not np.isnan(stop)) == needs[k, 1]
        ok = ok and (not needs[k, 2] or not np.isnan(trail))  # another type may carry a trail percent
        if needs[k, 0] and needs[k, 1]:  # stop_limit: the limit at or beyond the stop, on the side of the trade
            ok = ok and (lim >= stop if b else lim <= stop)
        if needs[k, 2]:  # a trailing stop has no bracket
            ok = ok and np.isnan(tp) and np.isnan(sl)
        ok = ok and (np.isnan(sl) or np.isnan(trail)) and (np.isnan(tp) or np.isnan(trail))  # one exit with a trail
        ref = lim if not np.isnan(lim) else (stop if not np.isnan(stop) else v[2])
        if not np.isnan(ref):
            ok = ok and (np.isnan(tp) or _sides(b, ref, tp)) and (np.isnan(sl) or _sides(b, sl, ref))
        out[i] = ok and (np.isnan(tp) or np.isnan(sl) or _sides(b, sl, tp))
