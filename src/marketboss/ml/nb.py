"""Compiled loops for the ML package (numba).

Feature kernels are causal: row t reads inputs 0..t only (the no-look-ahead test changes later bars and
checks that nothing up to t moves). Running sums advance forward only, so that holds bit for bit.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from marketboss.ml.lookbacks import MA_FAST, MA_SLOW, RANGE_WINDOW, RETURN_LAGS, VOL_LONG, VOL_SHORT


@njit(cache=True)
def price_features(high: np.ndarray, low: np.ndarray, close: np.ndarray, out: np.ndarray) -> np.ndarray:
    # pragma: no cover - compiled
    """Columns: log returns over 1/5/10/20/60 bars, close/SMA10-1, close/SMA50-1, SMA10/SMA50-1, std of
    1-bar log returns over 20 and 60 bars (population), (high-low)/close and its 20-bar mean. NaN in warm-up."""
    n = close.shape[0]
    out[:, :] = np.nan
    s_fast = 0.0
    s_slow = 0.0
    v1s = 0.0  # running sums of log returns and their squares over the two volatility windows
    v2s = 0.0
    v1l = 0.0
    v2l = 0.0
    rng_sum = 0.0
    lc = np.log(close)  # one log per bar; returns are differences of logs
    lr = np.empty(n)
    rg = np.empty(n)
    lr[0] = np.nan
    for i in range(n):
        c = close[i]
        for k in range(5):
            h = RETURN_LAGS[k]
            if i >= h:
                out[i, k] = lc[i] - lc[i - h]
        s_fast += c
        s_slow += c
        if i >= MA_FAST:
            s_fast -= close[i - MA_FAST]
        if i >= MA_SLOW:
            s_slow -= close[i - MA_SLOW]
        if i >= MA_FAST - 1:
            out[i, 5] = c / (s_fast / MA_FAST) - 1.0
        if i >= MA_SLOW - 1:
            out[i, 6] = c / (s_slow / MA_SLOW) - 1.0
            out[i, 7] = (s_fast / MA_FAST) / (s_slow / MA_SLOW) - 1.0
        if i >= 1:
            r = lc[i] - lc[i - 1]
            lr[i] = r
            v1s += r
            v2s += r * r
            v1l += r
            v2l += r * r
            if i > VOL_SHORT:
                q = lr[i - VOL_SHORT]
                v1s -= q
                v2s -= q * q
            if i > VOL_LONG:
                q = lr[i - VOL_LONG]
                v1l -= q
                v2l -= q * q
            if i >= VOL_SHORT:
                m = v1s / VOL_SHORT
                out[i, 8] = np.sqrt(max(v2s / VOL_SHORT - m * m, 0.0))
            if i >= VOL_LONG:
                m = v1l / VOL_LONG
                out[i, 9] = np.sqrt(max(v2l / VOL_LONG - m * m, 0.0))
        rg[i] = (high[i] - low[i]) / c
        out[i, 10] = rg[i]
        rng_sum += rg[i]
        if i >= RANGE_WINDOW:
            rng_sum -= rg[i - RANGE_WINDOW]
        if i >= RANGE_WINDOW - 1:
            out[i, 11] = rng_sum / RANGE_WINDOW
    return out


@njit(cache=True)
def forward_returns(close: np.ndarray, horizon: int, out: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """close[t+h]/close[t]-1 on one symbol's own bars; NaN for the last h bars (label not known yet)."""
    n = close.shape[0]
    for i in range(n):
        out[i] = close[i + horizon] / close[i] - 1.0 if i + horizon < n else np.nan
    return out


@njit(cache=True)
def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:  # pragma: no cover - compiled
    """Two-sample Kolmogorov-Smirnov statistic sup|F_a - F_b| of two sorted samples, by one merge."""
    na = a.shape[0]
    nb_ = b.shape[0]
    i = 0
    j = 0
    d = 0.0
    while i < na and j < nb_:
        x = a[i] if a[i] <= b[j] else b[j]
        while i < na and a[i] == x:
            i += 1
        while j < nb_ and b[j] == x:
            j += 1
        gap = abs(i / na - j / nb_)
        if gap > d:
            d = gap
    return d
