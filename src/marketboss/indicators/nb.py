"""The indicators' compiled loops (numba). Each writes into `out`, an array as long as the input allocated by
the caller, and is causal: out[t] reads inputs [0..t] only; warm-up bars are NaN. Their inputs hold no NaN:
__init__.py gives them a series' present bars (a NaN marks a missing one)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def sma(x: np.ndarray, n: int, out: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Mean of the last n values: a running sum."""
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i]
        if i >= n:
            s -= x[i - n]
        out[i] = s / n if i >= n - 1 else np.nan
    return out


@njit(cache=True)
def ema(x: np.ndarray, n: int, out: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Exponential average with alpha 2/(n+1), seeded by the simple mean of the first n values (as charting tools
    do)."""
    alpha = 2.0 / (n + 1.0)
    e = 0.0
    for i in range(x.shape[0]):
        out[i] = np.nan
        if i < n - 1:
            e += x[i]
            continue
        if i == n - 1:
            e = (e + x[i]) / n
        else:
            e += alpha * (x[i] - e)
        out[i] = e
    return out


@njit(cache=True, inline="always")
def _mean_sd(x: np.ndarray, i: int, n: int) -> tuple[float, float]:  # pragma: no cover - compiled
    """Mean and population standard deviation of the n values ending at i, two-pass for accuracy; a flat window's
    exactly (value, 0): its mean's rounding would leave a deviation of ~1e-17, a z-score of +-1."""
    m = 0.0
    first = x[i - n + 1]
    flat = True
    for j in range(i - n + 1, i + 1):
        m += x[j]
        flat = flat and x[j] == first
    if flat:
        return first, 0.0
    m /= n
    v = 0.0
    for j in range(i - n + 1, i + 1):
        d = x[j] - m
        v += d * d
    return m, np.sqrt(v / n)


@njit(cache=True)
def rolling_zscore(x: np.ndarray, n: int, out: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """(x - mean) / std over the last n values (population std); 0 when the window is flat (all one value)."""
    out[: n - 1] = np.nan
    for i in range(n - 1, x.shape[0]):
        m, sd = _mean_sd(x, i, n)
        out[i] = (x[i] - m) / sd if sd > 0.0 else 0.0
    return out


@njit(cache=True)
def rolling_std(x: np.ndarray, n: int, out: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Population standard deviation of the last n values."""
    out[: n - 1] = np.nan
    for i in range(n - 1, x.shape[0]):
        out[i] = _mean_sd(x, i, n)[1]
    return out


@njit(cache=True)
def rolling_extreme(x: np.ndarray, n: int, highest: bool, lag: int, out: np.ndarray) -> np.ndarray:
    # pragma: no cover - compiled
    """Max (or min) of the n values ending `lag` bars before t (lag 0: including t; lag 1: the n bars before t),
    with a monotonic deque: O(len)."""
    m = x.shape[0]
    out[: min(n - 1 + lag, m)] = np.nan
    dq = np.empty(m, dtype=np.int64)
    head = 0
    tail = 0
    for i in range(m):
        # push x[i] for the windows of this and later bars
        while tail > head and ((x[dq[tail - 1]] <= x[i]) if highest else (x[dq[tail - 1]] >= x[i])):
            tail -= 1
        dq[tail] = i
        tail += 1
        while dq[head] < i - n + 1:  # the window ending at i, [i - n + 1, i], is that of bar i + lag
            head += 1
        if i >= n - 1 and i + lag < m:
            out[i + lag] = x[dq[head]]
    return out


@njit(cache=True)
def rsi(x: np.ndarray, n: int, out: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Wilder's RSI: averages of gains and losses seeded by their simple mean over the first n changes."""
    m = x.shape[0]
    out[: n + 1] = np.nan
    if m <= n:
        return out
    gain = 0.0
    loss = 0.0
    for i in range(1, n + 1):
        d = x[i] - x[i - 1]
        if d > 0:
            gain += d
        else:
            loss -= d
    gain /= n
    loss /= n
    out[n] = 100.0 if loss == 0.0 else 100.0 * gain / (gain + loss)  # 100 - 100 / (1 + gain / loss)
    keep, w = (n - 1) / n, 1.0 / n  # (a * (n - 1) + v) / n as a * keep + v * w: no division on the carried chain
    for i in range(n + 1, m):
        d = x[i] - x[i - 1]
        gain = gain * keep + (d if d > 0 else 0.0) * w
        loss = loss * keep + (-d if d < 0 else 0.0) * w
        out[i] = 100.0 if loss == 0.0 else 100.0 * gain / (gain + loss)
    return out


@njit(cache=True)
def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int, out: np.ndarray) -> np.ndarray:
    # pragma: no cover - compiled
    """Wilder's average true range: true range max(h - l, |h - previous close|, |l - previous close|) (h - l on
    the first bar), seeded by the mean of the first n, then (atr * (n - 1) + tr) / n."""
    m = close.shape[0]
    out[: min(n - 1, m)] = np.nan
    a = 0.0
    keep, w = (n - 1) / n, 1.0 / n  # as in rsi
    for i in range(m):
        tr = high[i] - low[i]
        if i > 0:
            tr = max(tr, abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1]))
        if i < n:
            a += tr
            if i == n - 1:
                a /= n
                out[i] = a
        else:
            a = a * keep + tr * w
            out[i] = a
    return out
