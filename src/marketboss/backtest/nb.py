"""The compiled per-bar portfolio simulation (numba), on dense (time x symbol) arrays.

engine.py prepares the arrays and reads the results; everything that walks bars or orders one by one is here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

# Order status codes (engine.py names them).
PENDING = 0
FILLED = 1
REJECTED_CASH = 2
SKIPPED = 3
EXPIRED = 4
NO_BAR = 5

KIND_QTY = 0
KIND_WEIGHT = 1


@njit(cache=True)
def fill_price(ref: float, side: float, slip: float) -> float:  # pragma: no cover - compiled
    """Reference price moved against the trader by `slip` (slippage + half-spread, as a fraction)."""
    return ref * (1.0 + side * slip)


@njit(cache=True)
def commission(qty: float, price: float, rate: float, per_share: float, minimum: float) -> float:
    # pragma: no cover - compiled
    """Fraction of notional plus per share, at least `minimum` per fill."""
    c = rate * abs(qty) * price + per_share * abs(qty)
    return minimum if c < minimum else c


@njit(cache=True)
def exec_bars(
    close: np.ndarray, o_sig_t: np.ndarray, o_exact: np.ndarray, o_s: np.ndarray, at_close: bool
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """The bar each order fills on, and its status when it cannot (-1).

    Next-open: the symbol's first bar after the signal time (o_sig_t = last time index <= signal time).
    Close: the signal bar itself, which must be a bar of that symbol at exactly the signal time."""
    n = o_s.shape[0]
    t_max = close.shape[0]
    out = np.full(n, -1, dtype=np.int64)
    status = np.zeros(n, dtype=np.int8)
    for k in range(n):
        s = o_s[k]
        if at_close:
            t = o_sig_t[k]
            if t >= 0 and o_exact[k] and not np.isnan(close[t, s]):
                out[k] = t
            else:
                status[k] = NO_BAR
            continue
        t = o_sig_t[k] + 1
        while t < t_max and np.isnan(close[t, s]):
            t += 1
        if t < t_max:
            out[k] = t
        else:
            status[k] = EXPIRED
    return out, status


@njit(cache=True)
def simulate(
    open_: np.ndarray,
    close: np.ndarray,
    o_t: np.ndarray,
    o_s: np.ndarray,
    o_kind: np.ndarray,
    o_val: np.ndarray,
    o_side: np.ndarray,
    cash0: float,
    at_close: bool,
    fractional: bool,
    rate: float,
    per_share: float,
    minimum: float,
    slip: float,
    eq_cash: np.ndarray,
    eq_value: np.ndarray,
    eq_total: np.ndarray,
) -> tuple[Any, ...]:  # pragma: no cover - compiled
    """Walk the bars once: fill the orders due at each bar, then mark every held position at its last close.

    Orders arrive sorted by fill bar (o_t), in signal order within a bar. o_val is signed shares for
    KIND_QTY and a target weight for KIND_WEIGHT. Cash may never go below zero: an order that would need
    more cash is rejected whole. Round trips are matched FIFO per symbol (a lot per opening fill).
    Per-bar cash, positions value and equity go into the caller's (numpy-allocated) arrays. Only held
    symbols are visited per bar (a swap-remove set), so flat periods and wide universes cost little.
    Returns (bars with a position, per-order status and fill qty/price/commission, round trips)."""
    n_t, n_s = close.shape
    n = o_t.shape[0]
    cash = cash0
    pos = np.zeros(n_s)
    last = np.full(n_s, np.nan)
    held = np.empty(n_s, dtype=np.int64)  # held symbols; slot[s] is s's index in it, -1 when flat
    slot = np.full(n_s, -1, dtype=np.int64)
    n_held = 0
    exposed = 0
    status = np.zeros(n, dtype=np.int8)
    # np.empty: only the entries written are ever touched (no page faults for unused capacity).
    f_qty = np.empty(n)
    f_price = np.empty(n)
    f_comm = np.empty(n)
    # FIFO lots: a singly linked list per symbol.
    lot_qty = np.empty(n)
    lot_price = np.empty(n)
    lot_comm = np.empty(n)
    lot_t = np.empty(n, dtype=np.int64)
    lot_order = np.empty(n, dtype=np.int64)
    lot_next = np.empty(n, dtype=np.int64)
    head = np.full(n_s, -1, dtype=np.int64)
    tail = np.full(n_s, -1, dtype=np.int64)
    n_lots = 0
    free = -1  # closed lots' slots, linked through lot_next
    m = 2 * n + 1
    tr_s = np.empty(m, dtype=np.int64)
    tr_t0 = np.empty(m, dtype=np.int64)
    tr_t1 = np.empty(m, dtype=np.int64)
    tr_p0 = np.empty(m)
    tr_p1 = np.empty(m)
    tr_q = np.empty(m)
    tr_pnl = np.empty(m)
    tr_o0 = np.empty(m, dtype=np.int64)
    tr_o1 = np.empty(m, dtype=np.int64)
    tr_closed = np.empty(m, dtype=np.bool_)
    n_tr = 0
    k = 0
    for t in range(n_t):
        while k < n and o_t[k] == t:
            s = o_s[k]
            ref = close[t, s] if at_close else open_[t, s]
            if o_kind[k] == KIND_QTY:
                q = o_val[k]
            else:
                equity = cash
                for h in range(n_held):
                    j = held[h]
                    px = close[t, j] if at_close else open_[t, j]
                    if np.isnan(px):
                        px = last[j]
                    equity += pos[j] * px
                target = o_val[k] * equity / ref
                if not fractional:
                    target = np.trunc(target)
                q = target - pos[s]
                if q * o_side[k] <= 0.0 or abs(q) <= 1e-12 * (abs(target) + 1.0):
                    status[k] = SKIPPED
                    k += 1
                    continue
            side = 1.0 if q > 0 else -1.0
            fp = fill_price(ref, side, slip)
            comm = commission(q, fp, rate, per_share, minimum)
            new_cash = cash - q * fp - comm
            if new_cash < cash and new_cash < -1e-9 * abs(q) * fp:
                status[k] = REJECTED_CASH
                k += 1
                continue
            cash = new_cash
            status[k] = FILLED
            f_qty[k] = q
            f_price[k] = fp
            f_comm[k] = comm
            aq = abs(q)
            rem = q
            eps = 1e-12 * aq
            # Close opposite lots first (FIFO), then open a lot with what is left.
            while abs(rem) > eps and head[s] >= 0 and lot_qty[head[s]] * rem < 0.0:
                lot = head[s]
                lq = lot_qty[lot]
                lsign = 1.0 if lq > 0 else -1.0
                cq = min(abs(rem), abs(lq))
                entry_c = lot_comm[lot] * cq / abs(lq)
                exit_c = comm * cq / aq
                tr_s[n_tr] = s
                tr_t0[n_tr] = lot_t[lot]
                tr_t1[n_tr] = t
                tr_p0[n_tr] = lot_price[lot]
                tr_p1[n_tr] = fp
                tr_q[n_tr] = lsign * cq
                tr_pnl[n_tr] = (fp - lot_price[lot]) * lsign * cq - entry_c - exit_c
                tr_o0[n_tr] = lot_order[lot]
                tr_o1[n_tr] = k
                tr_closed[n_tr] = True
                n_tr += 1
                lot_comm[lot] -= entry_c
                lot_qty[lot] = lq - lsign * cq
                rem += lsign * cq
                if abs(lot_qty[lot]) <= 1e-12 * cq:
                    head[s] = lot_next[lot]
                    if head[s] < 0:
                        tail[s] = -1
                    lot_next[lot] = free
                    free = lot
            if abs(rem) > eps:
                if free >= 0:  # reuse a closed lot's slot: memory follows open lots, not all lots
                    lot = free
                    free = lot_next[lot]
                else:
                    lot = n_lots
                    n_lots += 1
                lot_qty[lot] = rem
                lot_price[lot] = fp
                lot_comm[lot] = comm * abs(rem) / aq
                lot_t[lot] = t
                lot_order[lot] = k
                lot_next[lot] = -1
                if tail[s] >= 0:
                    lot_next[tail[s]] = lot
                else:
                    head[s] = lot
                tail[s] = lot
            was = pos[s]
            pos[s] += q
            if abs(pos[s]) <= 1e-12 * aq:
                pos[s] = 0.0
            if was == 0.0 and pos[s] != 0.0:
                held[n_held] = s
                slot[s] = n_held
                n_held += 1
            elif was != 0.0 and pos[s] == 0.0:
                n_held -= 1
                moved = held[n_held]
                held[slot[s]] = moved
                slot[moved] = slot[s]
                slot[s] = -1
            k += 1
        value = 0.0
        for h in range(n_held):
            j = held[h]
            c = close[t, j]
            if not np.isnan(c):
                last[j] = c
            value += pos[j] * last[j]
        eq_cash[t] = cash
        eq_value[t] = value
        eq_total[t] = cash + value
        if n_held > 0:
            exposed += 1
    # Lots still open at the end: marked at the last close, no exit commission.
    for s in range(n_s):
        lot = head[s]
        while lot >= 0:
            lq = lot_qty[lot]
            tr_s[n_tr] = s
            tr_t0[n_tr] = lot_t[lot]
            tr_t1[n_tr] = n_t - 1
            tr_p0[n_tr] = lot_price[lot]
            tr_p1[n_tr] = last[s]
            tr_q[n_tr] = lq
            tr_pnl[n_tr] = (last[s] - lot_price[lot]) * lq - lot_comm[lot]
            tr_o0[n_tr] = lot_order[lot]
            tr_o1[n_tr] = -1
            tr_closed[n_tr] = False
            n_tr += 1
            lot = lot_next[lot]
    return (
        exposed, status, f_qty, f_price, f_comm,
        tr_s[:n_tr], tr_t0[:n_tr], tr_t1[:n_tr], tr_p0[:n_tr], tr_p1[:n_tr], tr_q[:n_tr], tr_pnl[:n_tr],
        tr_o0[:n_tr], tr_o1[:n_tr], tr_closed[:n_tr],
    )


@njit(cache=True)
def locate(times: np.ndarray, ts: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """For sorted `ts`: index of the last time <= each (-1 before the first), by galloping forward from the
    previous answer: linear in len(ts) + log of the gaps, instead of a full binary search per signal."""
    n = times.shape[0]
    out = np.empty(ts.shape[0], dtype=np.int64)
    lo = 0  # invariant: every index < lo has times[index] <= the current ts
    for k in range(ts.shape[0]):
        x = ts[k]
        step = 1
        hi = lo
        while hi < n and times[hi] <= x:
            lo = hi + 1
            hi += step
            step *= 2
        hi = min(hi, n)
        while lo < hi:  # first index in [lo, hi) with times > x
            mid = (lo + hi) // 2
            if times[mid] <= x:
                lo = mid + 1
            else:
                hi = mid
        out[k] = lo - 1
    return out


@njit(cache=True)
def equity_stats(initial: float, equity: np.ndarray) -> tuple[float, float, float, float, float, int, int]:
    # pragma: no cover - compiled
    """Statistics of the per-bar simple returns of `initial` followed by `equity`, without materialising
    them: (mean, sample std, root mean square of the negative returns, growth = last / initial (the product
    of (1 + r)), max drawdown as a negative fraction, and the longest underwater spell as (peak index, end
    index) in the sequence where index 0 is `initial`; the end is the recovery index, or the last index when
    never recovered). Sums run in order and the std takes two passes (mean, then squared deviations), as
    empyrical's bottleneck kernels do; all-equal returns have std exactly 0, not a rounding residue."""
    n = equity.shape[0]
    if n == 0:
        return np.nan, np.nan, np.nan, 1.0, 0.0, 0, 0
    total = 0.0
    down = 0.0
    lo = np.inf
    hi = -np.inf
    prev = initial
    peak = initial
    peak_i = 0
    mdd = 0.0
    long_start = 0
    long_end = 0
    under = False
    for i in range(n):
        v = equity[i]
        r = v / prev - 1.0
        prev = v
        total += r
        if r < 0.0:
            down += r * r
        lo = min(lo, r)
        hi = max(hi, r)
        if v >= peak:
            if under and i + 1 - peak_i > long_end - long_start:
                long_start, long_end = peak_i, i + 1
            under = False
            peak = v
            peak_i = i + 1
        else:
            under = True
            dd = (v - peak) / peak
            if dd < mdd:
                mdd = dd
    if under and n - peak_i > long_end - long_start:
        long_start, long_end = peak_i, n
    mean = total / n
    std = np.nan
    if n >= 2 and lo == hi:
        std = 0.0
    elif n >= 2:
        sq = 0.0
        prev = initial
        for i in range(n):
            d = equity[i] / prev - 1.0 - mean
            prev = equity[i]
            sq += d * d
        std = np.sqrt(sq / (n - 1))
    return mean, std, np.sqrt(down / n), equity[n - 1] / initial, mdd, long_start, long_end
