"""Compiled indicator loops and state machines for the built-in strategies (numba).

Every function is causal: output[t] reads input[0..t] only, which the no-look-ahead tests check.
Warm-up bars are NaN ("no opinion yet"). Outputs as long as the input are written into `out`, allocated by
the caller with numpy: numpy's large allocations get huge pages, numba's do not, and first-touch page
faults would otherwise cost more than the loops themselves.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from marketboss.nb import prefetch

#: Simple averages' running sums start again from a direct sum of the window at every bar index that is a
#: multiple of this: rounding cannot drift along a long series, and the bars on either side of such a point
#: can be computed apart (on two cores) with the very same result.
RESTART = 1 << 16


@njit(cache=True, inline="always")
def window_sum(x: np.ndarray, i: int, n: int) -> float:  # pragma: no cover - compiled
    """The sum of the n values ending at bar i, added from the oldest: a simple average's running sum where it
    restarts (here and in the research sweep's average table, which must match it bit for bit)."""
    s = 0.0
    for q in range(i + 1 - n, i + 1):
        s += x[q]
    return s


@njit(cache=True, nogil=True)
def ma_cross(
    x: np.ndarray, fast: int, slow: int, use_ema: bool, lo: int, hi: int, restart: int, idx: np.ndarray
) -> tuple[int, int, int, int]:  # pragma: no cover - compiled
    """The bars in [lo, hi) where the fast average crosses the slow one, written into the caller's buffer
    (room for one per bar; pages never written are never touched). Returns (how many, the bar where the side
    was first set or -1, that side, the side at the last bar), sides as 1 above and 0 below. The crossover's
    exposure is the side of the last cross, none before the first one, so a position is never entered
    mid-trend at the start; a strategy signals at crosses only, so the crosses are all it needs, without a
    per-bar array. A tie (or NaN) keeps the side; the first bar off a tie sets it, which is not a cross.

    Simple averages are running sums over the window, updated by the window's change (x[i] - x[i-n], formed
    first: one dependent addition per bar), and taken again directly at every multiple of `restart` past the
    first full window; `lo` is 0 or such a multiple, so that [0, m) in one call or in two is the same.
    Exponential ones use alpha 2/(n+1), seeded by the simple mean of the first n values, from lo = 0 only.
    The main loop reads the window's ends through slices (no negative-index handling) and compares the
    averages (fast < slow while above), which is exactly the sign of their difference (floating-point a - b
    is 0 only when a == b) in one operation instead of three."""
    if hi < slow or hi <= lo:
        return 0, -1, -1, -1
    af = 2.0 / (fast + 1.0)
    asl = 2.0 / (slow + 1.0)
    inv_f = 1.0 / fast
    inv_s = 1.0 / slow
    sf = 0.0
    ss = 0.0
    ef = 0.0
    es = 0.0
    if lo > 0:  # a restart point of simple averages
        i = lo
        sf, ss = window_sum(x, i, fast), window_sum(x, i, slow)
    else:
        i = slow - 1
        for q in range(slow):  # warm-up: fill the windows
            if q < fast:
                sf += x[q]
            elif q % restart == 0:
                sf = window_sum(x, q, fast)
            else:
                sf += x[q] - x[q - fast]
            ss += x[q]
        if use_ema:  # the fast average starts at bar fast - 1: catch it up to bar slow - 1
            for q in range(fast):
                ef += x[q]
            ef /= fast
            for q in range(fast, slow):
                ef += af * (x[q] - ef)
            es = ss / slow
    d = (ef - es) if use_ema else (sf * inv_f - ss * inv_s)
    while not (d > 0.0 or d < 0.0):  # no side yet
        i += 1
        if i >= hi:
            return 0, -1, -1, -1
        v = x[i]
        if use_ema:
            ef += af * (v - ef)
            es += asl * (v - es)
            d = ef - es
        else:
            if i % restart == 0:
                sf, ss = window_sum(x, i, fast), window_sum(x, i, slow)
            else:
                sf += v - x[i - fast]
                ss += v - x[i - slow]
            d = sf * inv_f - ss * inv_s
    above = 1 if d > 0.0 else 0
    first_bar, first = i, above
    k = 0
    i += 1
    # Branch-free: every bar writes its index at slot k, and k moves on only at a cross (a cross is rare
    # and unpredictable: as a branch, each one cost a misprediction). A tie (or NaN) keeps the side.
    if use_ema:
        new = x[i:hi]
        for j in range(new.shape[0]):
            v = new[j]
            ef += af * (v - ef)
            es += asl * (v - es)
            now = int(not (ef < es)) if above else int(ef > es)
            idx[k] = i + j
            k += now ^ above
            above = now
        return k, first_bar, first, above
    while i < hi:
        if i % restart == 0:
            sf, ss = window_sum(x, i, fast), window_sum(x, i, slow)
            now = int(not (sf * inv_f < ss * inv_s)) if above else int(sf * inv_f > ss * inv_s)
            idx[k] = i
            k += now ^ above
            above = now
            i += 1
        end = min(hi, (i + restart - 1) // restart * restart)  # up to the next restart
        new = x[i:end]
        out_f = x[i - fast : end - fast]
        out_s = x[i - slow : end - slow]
        for j in range(new.shape[0]):
            v = new[j]
            sf += v - out_f[j]
            ss += v - out_s[j]
            fast_mean = sf * inv_f
            slow_mean = ss * inv_s
            now = int(not (fast_mean < slow_mean)) if above else int(fast_mean > slow_mean)
            idx[k] = i + j
            k += now ^ above
            above = now
        i = end
    return k, first_bar, first, above


@njit(cache=True)
def fill_steps(idx: np.ndarray, values: np.ndarray, out: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """The per-bar array of a step function: values[j] from bar idx[j] until the next step, NaN before."""
    start = idx[0] if idx.shape[0] else out.shape[0]
    out[:start] = np.nan
    for j in range(idx.shape[0]):
        end = idx[j + 1] if j + 1 < idx.shape[0] else out.shape[0]
        out[idx[j] : end] = values[j]
    return out


@njit(cache=True)
def band_state(
    x: np.ndarray, long_in: float, long_out: float, short_in: float, short_out: float, out: np.ndarray
) -> np.ndarray:  # pragma: no cover - compiled
    """Hysteresis: long when x < long_in until x >= long_out; short when x > short_in until x <= short_out."""
    m = x.shape[0]
    state = 0.0
    for i in range(m):
        v = x[i]
        out[i] = np.nan
        if np.isnan(v):
            continue
        if (state > 0 and v >= long_out) or (state < 0 and v <= short_out):
            state = 0.0
        if state == 0.0:
            if v < long_in:
                state = 1.0
            elif v > short_in:
                state = -1.0
        out[i] = state
    return out


@njit(cache=True)
def breakout_state(
    close: np.ndarray, entry_hi: np.ndarray, entry_lo: np.ndarray, exit_hi: np.ndarray, exit_lo: np.ndarray,
    out: np.ndarray,
) -> np.ndarray:  # pragma: no cover - compiled
    """Donchian breakout: long above the prior entry-window high until below the prior exit-window low;
    short below the prior entry-window low until above the prior exit-window high."""
    m = close.shape[0]
    state = 0.0
    for i in range(m):
        out[i] = np.nan
        if np.isnan(entry_hi[i]) or np.isnan(exit_lo[i]):
            continue
        c = close[i]
        if (state > 0 and c < exit_lo[i]) or (state < 0 and c > exit_hi[i]):
            state = 0.0
        if state == 0.0:
            if c > entry_hi[i]:
                state = 1.0
            elif c < entry_lo[i]:
                state = -1.0
        out[i] = state
    return out


@njit(cache=True)
def state_changes(
    exposure: np.ndarray, lo: float, hi: float, idx: np.ndarray, before: np.ndarray, after: np.ndarray
) -> int:  # pragma: no cover - compiled
    """Bars where the held state changes: NaN keeps the previous state (start flat), clipped to [lo, hi].
    Writes (bar index, previous state, new state) of each change into the caller's buffers (as long as
    `exposure`; pages never written are never touched) and returns how many there are."""
    k = 0
    state = 0.0
    for i in range(exposure.shape[0]):
        v = exposure[i]
        if not np.isnan(v):
            v = min(max(v, lo), hi)
            if v != state:
                idx[k] = i
                before[k] = state
                after[k] = v
                k += 1
                state = v
    return k


@njit(cache=True)
def signal_sides(
    before: np.ndarray, after: np.ndarray, buy_code: int, sell_code: int, buy: np.ndarray, codes: np.ndarray,
    change: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """For signals changing the held state from `before` to `after`: the side (and its action code) and the
    size of the change, into the caller's arrays."""
    for k in range(before.shape[0]):
        up = after[k] > before[k]
        buy[k] = up
        codes[k] = buy_code if up else sell_code
        change[k] = abs(after[k] - before[k])


@njit(cache=True, nogil=True)
def bar_points(
    times: np.ndarray, close: np.ndarray, t: np.ndarray, s: np.ndarray, ts: np.ndarray, price: np.ndarray
) -> None:  # pragma: no cover - compiled
    """The time and close of bars t of symbols s, into the caller's arrays. One loop, so that the two
    gathers from the market's large arrays (a cache miss each) overlap, and prefetched ahead. Without the
    GIL: a backtest runs it while its orders are being filled on the worker thread, which needs the GIL for a
    moment to start."""
    n = t.shape[0]
    for k in range(n):
        if k + 24 < n:
            prefetch(times, t[k + 24])
            prefetch(close, (t[k + 24], s[k + 24]))
        b = t[k]
        ts[k] = times[b]
        price[k] = close[b, s[k]]
