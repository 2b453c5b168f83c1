"""The compiled per-bar portfolio simulation (numba), on dense (time x symbol) arrays.

engine.py prepares the arrays and reads the results; everything that walks bars or orders one by one is here:
schedule places the orders on their fill bars, simulate fills them, mark values every bar from the fills and
round_trips matches them into trades. The kernels take and return named tuples of arrays (Prices, Orders,
Rules, Fills, RoundTrips, Equity), each column in its final form for the result tables.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numba import njit

from marketboss.backtest.costs import BacktestConfig, FillMode

# Order status codes (engine.py names them).
PENDING = 0
FILLED = 1
REJECTED_CASH = 2
SKIPPED = 3
EXPIRED = 4
NO_BAR = 5

DAY_US = 86_400e6


class Prices(NamedTuple):
    """The market as the kernels read it: bar times (epoch microseconds) and (time x symbol) opens and
    closes, NaN where a symbol has no bar."""

    times: np.ndarray
    open: np.ndarray
    close: np.ndarray


class Rules(NamedTuple):
    """A backtest's settings (BacktestConfig) as the kernels read them: the engine's and the sweep's."""

    cash: float
    rate: float  # commission, a fraction of notional
    per_share: float  # commission per share
    minimum: float  # commission per fill, at least
    slip: float  # adverse price move per side, a fraction (slippage + half the spread)
    at_close: bool  # fill at the signal bar's close, not the next bar's open
    fractional: bool  # target-weight orders may trade fractional shares

    @classmethod
    def of(cls, config: BacktestConfig) -> Rules:
        c = config.costs
        return cls(config.cash, c.commission, c.commission_per_share, c.commission_min, c.slip,
                   config.fill == FillMode.CLOSE, config.fractional)  # fmt: skip


class Orders(NamedTuple):
    """Per signal, in signal time order: its fill bar (-1: none, see schedule), symbol, side, quantity (NaN:
    a target-weight order), target weight and status (simulate updates it); `live` lists the fillable ones
    in execution order."""

    bar: np.ndarray
    symbol: np.ndarray
    buy: np.ndarray
    qty: np.ndarray
    weight: np.ndarray
    status: np.ndarray
    live: np.ndarray


class Fills(NamedTuple):
    """simulate's fills, in fill order: the order's row (signal index), bar time, symbol, side, shares,
    price and commission."""

    row: np.ndarray
    time: np.ndarray
    symbol: np.ndarray
    buy: np.ndarray
    qty: np.ndarray
    price: np.ndarray
    commission: np.ndarray


class RoundTrips(NamedTuple):
    """round_trips' trades, in the order they close (those still open at the end last, exit row -1)."""

    symbol: np.ndarray
    long: np.ndarray
    qty: np.ndarray
    entry_time: np.ndarray
    entry_price: np.ndarray
    exit_time: np.ndarray
    exit_price: np.ndarray
    pnl: np.ndarray
    return_pct: np.ndarray
    entry_row: np.ndarray
    exit_row: np.ndarray
    days: np.ndarray
    bars: np.ndarray
    closed: np.ndarray


class Equity(NamedTuple):
    """Per bar, marked at its close."""

    cash: np.ndarray
    positions_value: np.ndarray
    equity: np.ndarray


@njit(cache=True, inline="always")
def fmin(a: float, b: float) -> float:  # pragma: no cover - compiled
    """min(a, b) as Python computes it (a unless b < a). numba 0.68's builtin min/max are overloads that
    LLVM left as function calls inside a large kernel (four per bar in a marking loop), each one spilling
    the loop's values to the stack."""
    return b if b < a else a


@njit(cache=True, inline="always")
def fmax(a: float, b: float) -> float:  # pragma: no cover - compiled
    """max(a, b) as Python computes it (a unless b > a); see fmin."""
    return b if b > a else a


@njit(cache=True)
def fill_price(ref: float, side: float, slip: float) -> float:  # pragma: no cover - compiled
    """Reference price moved against the trader by `slip` (slippage + half-spread, as a fraction)."""
    return ref * (1.0 + side * slip)


@njit(cache=True)
def commission(qty: float, price: float, rules: Rules) -> float:  # pragma: no cover - compiled
    """Fraction of notional plus per share, at least the minimum per fill."""
    c = rules.rate * abs(qty) * price + rules.per_share * abs(qty)
    return rules.minimum if c < rules.minimum else c


@njit(cache=True, inline="always")
def cash_after(cash: float, q: float, price: float, comm: float) -> float:  # pragma: no cover - compiled
    """Cash after a fill of q shares (negative: a sale) at `price`: the one expression simulate and mark
    use, so that the bars replayed from the fills see simulate's cash to the last bit."""
    return cash - q * price - comm


@njit(cache=True)
def schedule(
    times: np.ndarray, close: np.ndarray, full: np.ndarray, ts: np.ndarray, sig_bar: np.ndarray,
    o_s: np.ndarray, at_close: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:  # pragma: no cover - compiled
    """Where each order (in signal time order; `sig_bar`: the last bar at or before the signal) fills: its
    bar (-1 and a status when it cannot), the fillable orders in execution order (by fill bar, signal order
    within a bar), and whether that is signal order.

    Next-open fills on the symbol's first bar after the signal bar (the very next bar for a symbol with a
    bar at every time, `full`); close fills on the signal bar itself, which must be a bar of that symbol at
    exactly the signal time."""
    n = o_s.shape[0]
    t_max = times.shape[0]
    exec_t = np.full(n, -1, dtype=np.int64)
    status = np.zeros(n, dtype=np.int8)
    live = np.empty(n, dtype=np.int64)
    n_live = 0
    ordered = True
    for k in range(n):
        s = o_s[k]
        if at_close:
            t = sig_bar[k]
            if t < 0 or times[t] != ts[k] or np.isnan(close[t, s]):
                status[k] = NO_BAR
                continue
        else:
            t = sig_bar[k] + 1
            while t < t_max and not full[s] and np.isnan(close[t, s]):
                t += 1
            if t == t_max:
                status[k] = EXPIRED
                continue
        exec_t[k] = t
        if n_live > 0 and t < exec_t[live[n_live - 1]]:
            ordered = False
        live[n_live] = k
        n_live += 1
    live = live[:n_live]
    if not ordered:
        live = live[np.argsort(exec_t[live], kind="mergesort")]
    return exec_t, status, live, ordered


@njit(cache=True, error_model="numpy")
def simulate(prices: Prices, orders: Orders, rules: Rules) -> Fills:  # pragma: no cover - compiled
    """Fill the orders, in execution order (`live`); `mark` values the bars and `round_trips` matches the
    trades afterwards, both from the fills.

    An order's reference price is its fill bar's open (its close with `at_close`). A quantity order trades
    exactly its shares; a weight order moves the position to weight x equity, the held positions marked at
    the fill bar's prices (a symbol without one at its last close). Cash may never go below zero: an order
    that would need more cash is rejected whole. The orders of one fill bar are sequenced: those that reduce a
    position (|position| falls) first, then the rest, each pass in execution order, so a rotation's sales pay
    for its purchases on the same bar. The orders' status is updated in place; at most one fill per order."""
    times, close = prices.times, prices.close
    live, exec_t, o_s, o_buy, o_qty, o_weight, status = (orders.live, orders.bar, orders.symbol, orders.buy,
                                                         orders.qty, orders.weight, orders.status)  # fmt: skip
    n_s = close.shape[1]
    n = live.shape[0]
    cash = rules.cash
    pos = np.zeros(n_s)
    held = np.zeros(n_s, dtype=np.int64)  # held symbols (see _hold); slot[s] is s's index in it, -1 when flat
    slot = np.full(n_s, -1, dtype=np.int64)
    n_held = 0
    f_row, f_time, f_s = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    f_buy, f_qty, f_price, f_comm = np.empty(n, dtype=np.bool_), np.empty(n), np.empty(n), np.empty(n)
    n_f = 0
    refs = close if rules.at_close else prices.open
    k0 = 0
    while k0 < n:  # the orders of one fill bar: those that reduce a position first, so their sales pay for the rest
        t = exec_t[live[k0]]
        k1 = k0
        while k1 < n and exec_t[live[k1]] == t:
            k1 += 1
        for increases in (False, True):
            for k in range(k0, k1):
                r = live[k]
                if status[r] != PENDING:
                    continue
                s = o_s[r]
                side = 1.0 if o_buy[r] else -1.0
                ref = refs[t, s]
                if not np.isnan(o_qty[r]):
                    q = o_qty[r] * side
                else:
                    equity = cash
                    for h in range(n_held):
                        j = held[h]
                        px = refs[t, j]
                        if np.isnan(px):
                            px = last_close(close, t, j)
                        equity += pos[j] * px
                    target = o_weight[r] * equity / ref
                    if not rules.fractional:
                        target = np.trunc(target)
                    q = target - pos[s]
                    if q * side <= 0.0 or abs(q) <= 1e-12 * (abs(target) + 1.0):
                        status[r] = SKIPPED
                        continue
                if abs(pos[s] + q) >= abs(pos[s]) and not increases:
                    continue  # not a reduction: the second pass
                side = 1.0 if q > 0 else -1.0
                fp = fill_price(ref, side, rules.slip)
                comm = commission(q, fp, rules)
                new_cash = cash_after(cash, q, fp, comm)
                if new_cash < cash and new_cash < -1e-9 * abs(q) * fp:
                    status[r] = REJECTED_CASH
                    continue
                cash = new_cash
                status[r] = FILLED
                aq = abs(q)
                f_row[n_f] = r
                f_time[n_f] = times[t]
                f_s[n_f] = s
                f_buy[n_f] = q > 0
                f_qty[n_f] = aq
                f_price[n_f] = fp
                f_comm[n_f] = comm
                n_f += 1
                n_held = _hold(pos, held, slot, n_held, s, q, aq)
        k0 = k1
    return Fills(f_row[:n_f], f_time[:n_f], f_s[:n_f], f_buy[:n_f], f_qty[:n_f], f_price[:n_f], f_comm[:n_f])


@njit(cache=True, error_model="numpy")
def round_trips(prices: Prices, exec_t: np.ndarray, fills: Fills) -> RoundTrips:  # pragma: no cover - compiled
    """The round trips of simulate's fills (their bars are exec_t[row]), matched FIFO per symbol (a lot per
    opening fill), at most two per fill and one more: in the order they close; those still open at the end
    come last, marked at the last close without an exit commission."""
    times, close = prices.times, prices.close
    f_row, f_time, f_s, f_buy, f_qty, f_price, f_comm = fills
    n_t, n_s = close.shape
    n = f_row.shape[0]
    # FIFO lots: a singly linked list per symbol.
    lot_qty = np.empty(n)
    lot_price = np.empty(n)
    lot_comm = np.empty(n)
    lot_t = np.empty(n, dtype=np.int64)
    lot_time = np.empty(n, dtype=np.int64)
    lot_row = np.empty(n, dtype=np.int64)
    lot_next = np.empty(n, dtype=np.int64)
    head = np.full(n_s, -1, dtype=np.int64)
    tail = np.full(n_s, -1, dtype=np.int64)
    n_lots = 0
    free = -1  # closed lots' slots, linked through lot_next
    m = 2 * n + 1
    tr_s, tr_time0, tr_time1 = np.empty(m, dtype=np.int64), np.empty(m, dtype=np.int64), np.empty(m, dtype=np.int64)
    tr_row0, tr_row1, tr_bars = np.empty(m, dtype=np.int64), np.empty(m, dtype=np.int64), np.empty(m, dtype=np.int64)
    tr_qty, tr_p0, tr_p1, tr_pnl, tr_ret, tr_days = (np.empty(m), np.empty(m), np.empty(m), np.empty(m),
                                                     np.empty(m), np.empty(m))  # fmt: skip
    tr_long, tr_closed = np.empty(m, dtype=np.bool_), np.empty(m, dtype=np.bool_)
    n_tr = 0
    for k in range(n):
        r = f_row[k]
        t = exec_t[r]
        s = f_s[k]
        now = f_time[k]
        aq = f_qty[k]
        q = aq if f_buy[k] else -aq
        fp = f_price[k]
        comm = f_comm[k]
        rem = q
        eps = 1e-12 * aq
        # Close opposite lots first (FIFO), then open a lot with what is left.
        while abs(rem) > eps and head[s] >= 0 and lot_qty[head[s]] * rem < 0.0:
            lot = head[s]
            lq = lot_qty[lot]
            lsign, cq, entry_c, pnl, ret = close_part(rem, lq, lot_comm[lot], lot_price[lot], fp, comm, aq)
            tr_s[n_tr] = s
            tr_long[n_tr] = lq > 0
            tr_qty[n_tr] = cq
            tr_time0[n_tr] = lot_time[lot]
            tr_p0[n_tr] = lot_price[lot]
            tr_time1[n_tr] = now
            tr_p1[n_tr] = fp
            tr_pnl[n_tr] = pnl
            tr_ret[n_tr] = ret
            tr_row0[n_tr] = lot_row[lot]
            tr_row1[n_tr] = r
            tr_days[n_tr] = (now - lot_time[lot]) / DAY_US
            tr_bars[n_tr] = t - lot_t[lot]
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
            lot_time[lot] = now
            lot_row[lot] = r
            lot_next[lot] = -1
            if tail[s] >= 0:
                lot_next[tail[s]] = lot
            else:
                head[s] = lot
            tail[s] = lot
    # Lots still open at the end: marked at the last close, no exit commission.
    for s in range(n_s):
        lot = head[s]
        px = last_close(close, n_t, s) if lot >= 0 else np.nan
        while lot >= 0:
            lq = lot_qty[lot]
            pnl = (px - lot_price[lot]) * lq - lot_comm[lot]
            tr_s[n_tr] = s
            tr_long[n_tr] = lq > 0
            tr_qty[n_tr] = abs(lq)
            tr_time0[n_tr] = lot_time[lot]
            tr_p0[n_tr] = lot_price[lot]
            tr_time1[n_tr] = times[n_t - 1]
            tr_p1[n_tr] = px
            tr_pnl[n_tr] = pnl
            tr_ret[n_tr] = pnl / (abs(lq) * lot_price[lot]) * 100.0
            tr_row0[n_tr] = lot_row[lot]
            tr_row1[n_tr] = -1
            tr_days[n_tr] = (times[n_t - 1] - lot_time[lot]) / DAY_US
            tr_bars[n_tr] = n_t - 1 - lot_t[lot]
            tr_closed[n_tr] = False
            n_tr += 1
            lot = lot_next[lot]
    k = n_tr
    return RoundTrips(tr_s[:k], tr_long[:k], tr_qty[:k], tr_time0[:k], tr_p0[:k], tr_time1[:k], tr_p1[:k], tr_pnl[:k],
                      tr_ret[:k], tr_row0[:k], tr_row1[:k], tr_days[:k], tr_bars[:k], tr_closed[:k])


@njit(cache=True, inline="always")
def close_part(
    rem: float, lq: float, lot_comm: float, lot_price: float, fp: float, comm: float, aq: float
) -> tuple[float, float, float, float, float]:  # pragma: no cover - compiled
    """A fill of rem shares (aq in all, commission comm, at fp) against an opposite lot of lq shares bought or
    sold at lot_price with lot_comm of commission left: (the lot's sign, shares closed, the lot's commission
    they take, P&L net of both commissions' shares, return %). The same in round_trips and the sweep kernel."""
    lsign = 1.0 if lq > 0 else -1.0
    cq = fmin(abs(rem), abs(lq))
    entry_c = lot_comm * cq / abs(lq)
    exit_c = comm * cq / aq
    pnl = (fp - lot_price) * lsign * cq - entry_c - exit_c
    return lsign, cq, entry_c, pnl, pnl / (cq * lot_price) * 100.0


@njit(cache=True, inline="always")
def last_close(close: np.ndarray, t: int, j: int) -> float:  # pragma: no cover - compiled
    """Symbol j's last close before bar t (NaN if none): where a held symbol without a bar is marked."""
    for i in range(t - 1, -1, -1):
        if not np.isnan(close[i, j]):
            return close[i, j]
    return np.nan


@njit(cache=True, inline="always")
def _position(p: float, q: float, aq: float) -> float:  # pragma: no cover - compiled
    """Position p after trading q (of size aq): exactly 0 when within rounding of the trade."""
    p += q
    return 0.0 if abs(p) <= 1e-12 * aq else p


@njit(cache=True, inline="always")
def _hold(pos: np.ndarray, held: np.ndarray, slot: np.ndarray, n_held: int, s: int, q: float, aq: float) -> int:
    # pragma: no cover - compiled
    """Add q (of size aq) to symbol s's position, keeping the held set (a swap-remove set, so that wide
    universes cost what they hold): the same in simulate and in mark, so that both see the same set in the
    same order. Returns the new number held."""
    was = pos[s]
    pos[s] = _position(was, q, aq)
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
    return n_held


@njit(cache=True, error_model="numpy")
def mark(close: np.ndarray, exec_t: np.ndarray, fills: Fills, cash0: float, out: Equity) -> tuple[int, Any]:
    # pragma: no cover - compiled
    """Mark every bar at its close, replaying simulate's fills (their bars are exec_t[row]), into `out`
    (every element written). Returns (bars with a position, the return statistics of the equity curve:
    returns_finish).

    Between two fill bars the held set cannot change, so the bars are marked a stretch at a time: flat
    stretches are plain stores (their return statistics in O(1)), others walk the held set. A held symbol
    without a bar keeps its last close."""
    f_row, _, f_s, f_buy, f_qty, f_price, f_comm = fills
    n_t, n_s = close.shape
    n_f = f_row.shape[0]
    eq_cash, eq_value, eq_total = out
    cash = cash0
    pos = np.zeros(n_s)
    last = np.full(n_s, np.nan)
    held = np.zeros(n_s, dtype=np.int64)  # see _hold
    slot = np.full(n_s, -1, dtype=np.int64)
    n_held = 0
    exposed = 0
    acc = returns_start(cash0)
    k = 0
    t = 0
    while t < n_t:
        while k < n_f and exec_t[f_row[k]] == t:
            aq = f_qty[k]
            q = aq if f_buy[k] else -aq
            cash = cash_after(cash, q, f_price[k], f_comm[k])
            n_held = _hold(pos, held, slot, n_held, f_s[k], q, aq)
            k += 1
        end = exec_t[f_row[k]] if k < n_f else n_t  # the next fill bar: the held set is fixed until then
        if n_held == 0:
            total = cash + 0.0
            eq_cash[t:end] = cash
            eq_value[t:end] = 0.0
            eq_total[t:end] = total
            acc = returns_add(acc, total, t)  # a fill's commission may have moved it
            acc = returns_hold(acc, t + 1, end)
        else:
            for i in range(t, end):
                value = 0.0
                for h in range(n_held):
                    j = held[h]
                    c = close[i, j]
                    if not np.isnan(c):
                        last[j] = c
                    value += pos[j] * last[j]
                total = cash + value
                eq_cash[i] = cash
                eq_value[i] = value
                eq_total[i] = total
                acc = returns_add(acc, total, i)
            exposed += end - t
        t = end
    return exposed, returns_finish(acc, cash0, eq_total)


# Closed round trips summarised as they are recorded, the same in trade_stats and the sweep kernel: (count,
# winners, sum of winning P&L, sum of losing P&L (<= 0), sum of P&L, sum of returns %, best, worst, sum of
# durations in days).
TradeAcc = tuple[int, int, float, float, float, float, float, float, float]


@njit(cache=True, inline="always")
def trades_start() -> TradeAcc:  # pragma: no cover - compiled
    return 0, 0, 0.0, 0.0, 0.0, 0.0, -np.inf, np.inf, 0.0


@njit(cache=True, inline="always")
def trades_add(acc: TradeAcc, pnl: float, ret: float, days: float) -> TradeAcc:  # pragma: no cover - compiled
    n, n_win, wins, losses, total, total_ret, best, worst, total_days = acc
    if pnl > 0.0:
        n_win += 1
        wins += pnl
    elif pnl < 0.0:
        losses += pnl
    return (n + 1, n_win, wins, losses, total + pnl, total_ret + ret, fmax(best, ret), fmin(worst, ret),
            total_days + days)  # fmt: skip


@njit(cache=True)
def trade_stats(pnl: np.ndarray, ret: np.ndarray, days: np.ndarray, closed: np.ndarray) -> TradeAcc:
    # pragma: no cover - compiled
    """The TradeAcc of the closed round trips among these columns: one pass instead of a dozen masked copies."""
    acc = trades_start()
    for i in range(pnl.shape[0]):
        if closed[i]:
            acc = trades_add(acc, pnl[i], ret[i], days[i])
    return acc


@njit(cache=True, inline="always")
def _unchanged(v: float, prev: float) -> bool:  # pragma: no cover - compiled
    """v / prev - 1 is exactly 0: equal, finite and non-zero (0/0 and inf/inf are NaN)."""
    return v == prev and v != 0.0 and abs(v) < np.inf


# Return statistics are accumulated bar by bar in a tuple, threaded through inlined functions so that the
# simulation can gather them while it marks the bars (and skip flat stretches in O(1)), and equity_stats can
# do the same over a finished curve: one implementation of every number. The fields:
# (sum of returns, sum of squared returns, sum of squared negative returns, previous equity, running peak,
#  index of the peak, underwater, trough and crest of the current spell, max drawdown, longest spell start,
#  longest spell end); indices count `initial` as 0.
ReturnsAcc = tuple[float, float, float, float, float, int, bool, float, float, float, int, int]


@njit(cache=True, inline="always")
def returns_start(initial: float) -> ReturnsAcc:  # pragma: no cover - compiled
    return 0.0, 0.0, 0.0, initial, initial, 0, False, np.inf, -np.inf, 0.0, 0, 0


@njit(cache=True, inline="always")
def returns_add(acc: ReturnsAcc, v: float, i: int) -> ReturnsAcc:  # pragma: no cover - compiled
    """Equity v at bar i (0-based over the equity array). A spell's drawdown is (trough - peak) / peak, a
    monotone function of the equity, so it is computed once per spell from the trough (the crest when the
    peak is negative), not per bar."""
    total, sq, down, prev, peak, peak_i, under, trough, crest, mdd, long_start, long_end = acc
    r = v / prev - 1.0
    rn = r if r < 0.0 else 0.0
    high = v >= peak
    if high and under:  # a spell ends
        d = ((crest if peak < 0.0 else trough) - peak) / peak
        if d < mdd:
            mdd = d
        if i + 1 - peak_i > long_end - long_start:
            long_start, long_end = peak_i, i + 1
    starts = not (high or under)
    trough = v if starts else fmin(trough, v)  # also moved at a peak: harmless, a spell restarts it
    crest = v if starts else fmax(crest, v)
    peak = v if high else peak
    peak_i = i + 1 if high else peak_i
    return total + r, sq + r * r, down + rn * rn, v, peak, peak_i, not high, trough, crest, mdd, long_start, long_end


@njit(cache=True, inline="always")
def returns_hold(acc: ReturnsAcc, i0: int, i1: int) -> ReturnsAcc:  # pragma: no cover - compiled
    """Bars i0..i1-1 repeat the previous equity: what returns_add would make of them, in O(1). A return of
    exactly 0 adds nothing to the sums, leaves the drawdown as it is and keeps a peak at the peak."""
    prev = acc[3]
    if i1 <= i0:
        return acc
    if not _unchanged(prev, prev):  # 0 or not finite: every bar's return is NaN, bar by bar as usual
        for i in range(i0, i1):
            acc = returns_add(acc, prev, i)
        return acc
    total, sq, down, prev, peak, peak_i, under, trough, crest, mdd, long_start, long_end = acc
    return total, sq, down, prev, peak, peak_i if under else i1, under, trough, crest, mdd, long_start, long_end


@njit(cache=True, fastmath={"reassoc"}, error_model="numpy")
def _deviations(equity: np.ndarray, prev: float, mean: float) -> tuple[float, bool]:  # pragma: no cover - compiled
    """Sum of (r - mean)^2 over the returns of `equity` (the value before it is `prev`), and whether the
    returns are all equal. A sum of non-negative terms has no cancellation, so regrouping it changes it by at
    most n x 1e-16 relative (far below the 1e-9 to which the metrics agree with empyrical): the sum may be
    reassociated, which lets the compiler vectorise the loop, divisions included."""
    r = equity[0] / prev - 1.0
    d = r - mean
    sq = d * d
    lo = r
    hi = r
    for q in range(1, equity.shape[0]):
        r = equity[q] / equity[q - 1] - 1.0
        d = r - mean
        sq += d * d
        lo = fmin(lo, r)
        hi = fmax(hi, r)
    return sq, lo == hi


@njit(cache=True, error_model="numpy")
def returns_finish(
    acc: ReturnsAcc, initial: float, equity: np.ndarray
) -> tuple[float, float, float, float, float, int, int]:  # pragma: no cover - compiled
    """(mean, sample std, root mean square of the negative returns, growth = last / initial, max drawdown
    as a negative fraction, longest underwater spell as (peak index, end index)) from the accumulated
    returns of `equity`.

    The squared deviations from the mean are sum(r^2) - n mean^2, from the one pass, when that subtraction
    keeps at least half of sum(r^2) (mean^2 at most half the mean square: per-bar returns are centred near
    0, so nearly always); it then loses at most a bit to cancellation, well within the 1e-9 to which the
    std agrees with empyrical's two-pass kernels in the tests. Otherwise (a steady trend: returns all alike)
    a second pass sums (r - mean)^2, and returns that are all equal have std exactly 0, not a rounding
    residue."""
    n = equity.shape[0]
    if n == 0:
        return np.nan, np.nan, np.nan, 1.0, 0.0, 0, 0
    total, sq, down, _, peak, peak_i, under, trough, crest, mdd, long_start, long_end = acc
    if under:
        dd = ((crest if peak < 0.0 else trough) - peak) / peak
        if dd < mdd:
            mdd = dd
        if n - peak_i > long_end - long_start:
            long_start, long_end = peak_i, n
    mean = total / n
    std = np.nan
    if n >= 2:
        dev = sq - total * mean
        if not dev >= 0.5 * sq:
            dev, equal = _deviations(equity, initial, mean)
            if equal:
                dev = 0.0
        std = np.sqrt(dev / (n - 1))
    return mean, std, np.sqrt(down / n), equity[n - 1] / initial, mdd, long_start, long_end


@njit(cache=True, error_model="numpy")
def equity_stats(initial: float, equity: np.ndarray) -> tuple[float, float, float, float, float, int, int]:
    # pragma: no cover - compiled
    """Statistics of the per-bar simple returns of `initial` followed by `equity`, without materialising
    them (see returns_finish for the fields; index 0 is `initial`, the spell end is the recovery index or
    the last index when never recovered). The sums run in order; all-equal returns have std exactly 0, not
    a rounding residue."""
    acc = returns_start(initial)
    for i in range(equity.shape[0]):
        acc = returns_add(acc, equity[i], i)
    return returns_finish(acc, initial, equity)
