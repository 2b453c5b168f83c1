"""Compiled indicator loops and state machines for the built-in strategies (numba).

Every function is causal: output[t] reads input[0..t] only, which the no-look-ahead tests check.
Warm-up bars are NaN ("no opinion yet"). Outputs as long as the input are written into `out`, allocated by
the caller with numpy: numpy's large allocations get huge pages, numba's do not, and first-touch page
faults would otherwise cost more than the loops themselves.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def ma_cross(x: np.ndarray, fast: int, slow: int, use_ema: bool, idx: np.ndarray) -> tuple[int, int]:
    # pragma: no cover - compiled
    """The bars where the fast average crosses the slow one, written into the caller's buffer (room for one
    per bar). Returns (how many, the side first taken: 1 above, 0 below, -1 never). The crossover's exposure
    is the side of the last cross, none before the first one, so a position is never entered mid-trend at
    the start; a strategy signals at crosses only, so the crosses are all it needs, without a per-bar array.
    A tie (or NaN) keeps the side; the first bar off a tie sets it, which is not a cross.

    Simple averages are running sums over the window, updated by the window's change (x[i] - x[i-n]); the
    research sweep's average table (research.nb.average_table) takes the very same operations, so that both
    find the same crosses bit for bit. Exponential ones use alpha 2/(n+1), seeded by the simple mean of the
    first n values."""
    n = x.shape[0]
    if n < slow:
        return 0, -1
    af = 2.0 / (fast + 1.0)
    asl = 2.0 / (slow + 1.0)
    inv_f = 1.0 / fast
    inv_s = 1.0 / slow
    sf = 0.0
    ss = 0.0
    ef = 0.0
    es = 0.0
    for q in range(slow):  # warm-up: fill the windows
        sf += x[q] if q < fast else x[q] - x[q - fast]
        ss += x[q]
    if use_ema:  # the fast average starts at bar fast - 1: catch it up to bar slow - 1
        for q in range(fast):
            ef += x[q]
        ef /= fast
        for q in range(fast, slow):
            ef += af * (x[q] - ef)
        es = ss / slow
    above = -1
    first = -1
    k = 0
    for i in range(slow - 1, n):
        if i >= slow:
            v = x[i]
            if use_ema:
                ef += af * (v - ef)
                es += asl * (v - es)
            else:
                sf += v - x[i - fast]
                ss += v - x[i - slow]
        fa, sa = (ef, es) if use_ema else (sf * inv_f, ss * inv_s)
        now = 1 if fa > sa else 0 if fa < sa else above  # a tie (or NaN) keeps the side
        if now != above:
            if above >= 0:
                idx[k] = i
                k += 1
            else:
                first = now
            above = now
    return k, first


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


@njit(cache=True)
def rebalance_points(close: np.ndarray, target: np.ndarray, changed: np.ndarray, due: np.ndarray,
                     out_t: np.ndarray, out_s: np.ndarray, out_buy: np.ndarray) -> int:  # pragma: no cover
    """The rebalancing signals of target weights (time x symbol, decided at each bar's close; `changed`: a
    signal of its own there): on each bar `due`, every symbol held at a target weight whose weight has drifted
    from it, buying when it fell below and selling when it rose above. The drift is that of a portfolio that
    holds the targets since they were last set or rebalanced (values move with each symbol's close, the rest
    sits in cash): what the strategy's own weights become, known at the bar's close. Returns how many."""
    n_t, n_s = close.shape
    value = np.zeros(n_s)
    last = np.full(n_s, np.nan)
    cash = 1.0
    k = 0
    for t in range(n_t):
        total = cash
        for s in range(n_s):
            c = close[t, s]
            if not np.isnan(c):
                if not np.isnan(last[s]) and value[s] != 0.0:
                    value[s] *= c / last[s]
                last[s] = c
            total += value[s]
        if due[t]:
            for s in range(n_s):
                w = target[t, s]
                if w == 0.0 or changed[t, s] or np.isnan(close[t, s]):
                    continue
                drift = value[s] / total - w
                if abs(drift) > 1e-9 * abs(w):
                    out_t[k] = t
                    out_s[k] = s
                    out_buy[k] = drift < 0.0
                    k += 1
        for s in range(n_s):  # set or rebalanced here: the targets again
            if due[t] or changed[t, s]:
                cash += value[s] - target[t, s] * total
                value[s] = target[t, s] * total
    return k
