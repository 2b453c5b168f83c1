"""The compiled sweep kernel (numba): many parameter combinations, every symbol, one account per symbol.

Per symbol, one pass over its bars fills a table of every distinct average the combinations need (windows x
bars, never combinations x bars). Each combination then finds the bars where its held exposure changes (for the
crossover: a sign byte per bar, then eight bars per 64-bit compare) and walks its account from event to event:
orders and fills at the events, only marking in between, flat stretches in one step and held ones bar by bar
with the return and drawdown statistics in registers. It writes a row of metrics and adds its equity into its
combination's sum over the symbols (the summary's curve). Memory follows the data, not the grid.

Exactness: the accounting is the engine's (backtest.nb.simulate) restricted to one symbol; averages and
crossings are strategies.nb.ma_cross's, operation for operation; the return statistics are
backtest.nb.equity_stats' except that the standard deviation always takes the one pass (equity_stats adds a
second one when a steady trend makes that ill-conditioned); metrics use backtest.metrics' formulas. Tests
compare every column of rows with run_backtest (equal to ~1e-15).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from marketboss.backtest.nb import (
    PENDING,
    REJECTED_CASH,
    Prices,
    Rules,
    cash_after,
    close_part,
    commission,
    equity_stats,
    fill_price,
    trades_add,  # fmt: skip
    trades_start,
    weight_trade,
)
from marketboss.strategies.nb import state_changes

# Columns of a row of metrics, in the order of sweep.ROW_METRICS.
(FINAL_EQUITY, PNL, TOTAL_RETURN, BUY_HOLD, CAGR, VOLATILITY, SHARPE, SORTINO, CALMAR, MAX_DD, MAX_DD_BARS,
 MAX_DD_DAYS, EXPOSURE, N_TRADES, WIN_RATE, PROFIT_FACTOR, EXPECTANCY, AVG_TRADE, BEST_TRADE, WORST_TRADE,
 AVG_DURATION, OPEN_TRADES, N_FILLS, COMMISSIONS, REJECTED, UNFILLED) = range(26)  # fmt: skip
N_METRICS = 26

DAY_US = 86_400e6


class Grid(NamedTuple):
    """The combinations as the kernel reads them: the distinct averages of the table (window lengths, and
    whether exponential), then per combination its fast and slow average (rows of the table), lowest held
    state (0 long-only, -1 long-short), sizing by quantity (else by target weight) and the unit (shares or
    weight)."""

    windows: np.ndarray
    emas: np.ndarray
    fast: np.ndarray
    slow: np.ndarray
    lo: np.ndarray
    qty_mode: np.ndarray
    unit: np.ndarray


class Layout(NamedTuple):
    """Where each symbol's bars are in the market: symbol s's rows are rows[offsets[s]:offsets[s+1]]; the
    window is the market's bars start..end-1."""

    offsets: np.ndarray
    rows: np.ndarray
    start: int
    end: int


class Scratch(NamedTuple):
    """One symbol's bars gathered (open, close, time), its events (bar, new held state) and open FIFO lots
    (shares, price, commission left, bar), and `sign`, a byte per bar (rounded up to 8): room for the
    longest symbol, reused from symbol to symbol."""

    open: np.ndarray
    close: np.ndarray
    time: np.ndarray
    ev_bar: np.ndarray
    ev_state: np.ndarray
    lot_qty: np.ndarray
    lot_price: np.ndarray
    lot_comm: np.ndarray
    lot_bar: np.ndarray
    sign: np.ndarray


@njit(cache=True)
def scratch(layout: Layout) -> Scratch:  # pragma: no cover - compiled
    longest = 0
    for s in range(layout.offsets.shape[0] - 1):
        longest = max(longest, layout.offsets[s + 1] - layout.offsets[s])
    return Scratch(np.empty(longest), np.empty(longest), np.empty(longest, dtype=np.int64),
                   np.empty(longest, dtype=np.int64), np.empty(longest), np.empty(longest), np.empty(longest),
                   np.empty(longest), np.empty(longest, dtype=np.int64),
                   np.zeros((longest + 7) // 8 * 8, dtype=np.int8))  # fmt: skip


@njit(cache=True)
def average_table(x: np.ndarray, n: int, windows: np.ndarray, emas: np.ndarray, out: np.ndarray) -> None:
    # pragma: no cover - compiled
    """Row w of `out`: the average of length windows[w] (exponential when emas[w]) over x[:n], with the very
    operations of strategies.nb.ma_cross (a running sum updated by the window's change x[i] - x[i-m]; the
    exponential seeded by the simple mean, alpha 2/(m+1)), so that crossings are bit-identical."""
    for w in range(windows.shape[0]):
        m = windows[w]
        inv = 1.0 / m
        alpha = 2.0 / (m + 1.0)
        row = out[w]
        s = 0.0
        head = min(m, n)
        for i in range(head):  # filling the window
            s += x[i]
            row[i] = s * inv
        if emas[w] and head == m:
            e = s / m
            row[m - 1] = e
            for i in range(m, n):
                e += alpha * (x[i] - e)
                row[i] = e
        else:
            for i in range(m, n):
                s += x[i] - x[i - m]
                row[i] = s * inv


@njit(cache=True)
def _next_change(sg: np.ndarray, words: np.ndarray, i: int, n: int, prev: int) -> int:
    # pragma: no cover - compiled
    """The first bar >= i whose sign is neither 0 (a tie keeps the previous sign) nor `prev`, or n. Eight
    unchanged bars are skipped per 64-bit compare: crossings are rare."""
    pattern = np.uint64(prev & 0xFF) * np.uint64(0x0101010101010101)
    while i < n:
        if i & 7 == 0 and i + 8 <= n and words[i >> 3] == pattern:
            i += 8
            continue
        v = sg[i]
        if v != 0 and v != prev:
            return i
        i += 1
    return n


@njit(cache=True)
def cross_events(
    fast: np.ndarray, slow: np.ndarray, slow_len: int, k0: int, n: int, lo: float, sg: np.ndarray,
    ev_k: np.ndarray, ev_x: np.ndarray,
) -> int:  # pragma: no cover - compiled
    """ma_cross's exposure from two rows of the average table (+1 above, -1 below, none until the first
    cross), fed through strategies.nb.state_changes from bar k0 on: the bars where the held state (clipped to
    [lo, 1]) changes, and the new state. Returns how many. `sg` is scratch of at least n bytes, rounded up to
    8. No opinion is carried into k0: once crossed, ma_cross has an opinion at every bar."""
    i0 = max(slow_len - 1, 0)
    fa, sa, out = fast[i0:n], slow[i0:n], sg[i0:n]
    for i in range(out.shape[0]):  # vectorised (indices from 0: no negative-index wraparound to check)
        out[i] = np.int8(fa[i] > sa[i]) - np.int8(fa[i] < sa[i])
    words = sg.view(np.uint64)
    prev = 0
    crossed = False
    state = 0.0
    count = 0
    start_done = k0 < i0  # before i0 nothing has crossed: the window's first bar needs no look
    i = i0
    while True:
        j = _next_change(sg, words, i, n, prev)
        if not start_done and j >= k0:
            start_done = True
            if j > k0 and crossed and k0 < n:  # the window starts holding what the strategy holds
                x = min(max(float(prev), lo), 1.0)
                if x != state:
                    ev_k[count] = k0
                    ev_x[count] = x
                    count += 1
                    state = x
        if j >= n:
            return count
        s = int(sg[j])
        if prev != 0:
            crossed = True
        prev = s
        if crossed and j >= k0:
            x = min(max(float(s), lo), 1.0)
            if x != state:
                ev_k[count] = j
                ev_x[count] = x
                count += 1
                state = x
        i = j + 1


@njit(cache=True)
def exposure_events(
    expo: np.ndarray, k0: int, n: int, lo: float, ev_k: np.ndarray, ev_x: np.ndarray, before: np.ndarray
) -> int:  # pragma: no cover - compiled
    """The same events from an exposure series, by strategies.nb.state_changes over bars k0..n-1, where a
    missing opinion at k0 is the last one before it. Overwrites expo[k0] in that case (a scratch copy)."""
    if np.isnan(expo[k0]):
        for k in range(k0 - 1, -1, -1):
            if not np.isnan(expo[k]):
                expo[k0] = expo[k]
                break
    count = state_changes(expo[k0:n], lo, 1.0, ev_k, before, ev_x)
    for i in range(count):
        ev_k[i] += k0
    return count


@njit(cache=True, error_model="numpy")
def equity_metrics(
    out: np.ndarray,
    m: int,
    mean: float,
    std: float,
    downside: float,
    final: float,
    initial: float,
    mdd: float,
    dd_start: int,
    dd_end: int,
    times: np.ndarray,
    ppy: float,
) -> None:  # pragma: no cover - compiled
    """The equity columns of a metrics row from the return statistics, by backtest.metrics' formulas
    (ReturnStats and equity_metrics) operation for operation. `times` are the window's bar times."""
    rppy = np.sqrt(ppy)
    out[FINAL_EQUITY] = final
    out[PNL] = final - initial
    out[TOTAL_RETURN] = (final / initial - 1.0) * 100.0
    cagr = (final / initial) ** (ppy / m) - 1.0
    out[CAGR] = cagr * 100.0
    if m >= 2:
        out[VOLATILITY] = std * rppy * 100.0
        out[SHARPE] = mean / std * rppy
        out[SORTINO] = mean * ppy / (downside * rppy)
    if mdd < 0:
        calmar = cagr / abs(mdd)
        if not np.isinf(calmar):
            out[CALMAR] = calmar
    out[MAX_DD] = mdd * 100.0
    out[MAX_DD_BARS] = dd_end - dd_start
    out[MAX_DD_DAYS] = (times[max(dd_end - 1, 0)] - times[max(dd_start - 1, 0)]) / DAY_US


@njit(cache=True)
def portfolio_metrics(eq_acc: np.ndarray, initial: float, times: np.ndarray, ppy: float, out: np.ndarray) -> None:
    # pragma: no cover - compiled
    """Equity columns of each row of `out` for the matching row of summed equity (combinations x bars), its
    statistics by backtest.nb.equity_stats itself."""
    m = eq_acc.shape[1]
    for j in range(eq_acc.shape[0]):
        for i in range(out.shape[1]):
            out[j, i] = np.nan
        mean, std, downside, _, mdd, dd_start, dd_end = equity_stats(initial, eq_acc[j])
        equity_metrics(out[j], m, mean, std, downside, eq_acc[j, m - 1], initial, mdd, dd_start, dd_end, times,
                       ppy)


@njit(cache=True, error_model="numpy")
def simulate_symbol(
    sc: Scratch, n_ev: int, k0: int, n: int, qty_mode: bool, unit: float, rules: Rules, ppy: float,
    rows: np.ndarray, start: int, eq_acc: np.ndarray, out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """One symbol's own account over its bars k0..n-1 (gathered in `sc`, with its market rows `rows`), flat
    at k0, driven by the events of its held exposure (bar ev_bar[i] decides a move to state ev_state[i];
    cross_events / exposure_events). Writes the metrics row `out` and adds the account's equity,
    forward-filled on the market's time axis from `start`, into `eq_acc` (when it is not empty). Between
    events nothing is decided: those bars are only marked. ppy: bars per year."""
    open_, close, times, ev_k, ev_x = sc.open, sc.close, sc.time, sc.ev_bar, sc.ev_state
    lot_q, lot_p, lot_c, lot_t = sc.lot_qty, sc.lot_price, sc.lot_comm, sc.lot_bar
    cash0, at_close = rules.cash, rules.at_close
    m_len = eq_acc.shape[0]
    for i in range(out.shape[0]):
        out[i] = np.nan
    m = n - k0
    if m <= 0:  # no bar of this symbol in the window: its cash just sits there
        for j in range(m_len):
            eq_acc[j] += cash0
        return
    if m_len > 0:
        for j in range(rows[k0] - start):
            eq_acc[j] += cash0

    cash = cash0
    pos = 0.0
    state = 0.0
    pend = False
    pend_val = 0.0
    pend_side = 0.0
    head = 0
    tail = 0
    # equity statistics, as backtest.nb.equity_stats
    prev = cash0
    total = 0.0
    sq = 0.0
    down = 0.0
    lo_r = np.inf
    hi_r = -np.inf
    peak = cash0
    peak_i = 0
    mdd = 0.0
    trough = cash0 * (1.0 + 1e-9)  # at or below this equity a bar may set a new maximum drawdown
    long_start = 0
    long_end = 0
    under = False
    dense = rows[n - 1] - rows[k0] == m - 1
    acc_dense = m_len > 0 and dense
    # trades and orders, as backtest.metrics.trade_metrics
    exposed = 0
    closed = trades_start()
    n_fills = 0
    commissions = 0.0
    rejected = 0
    unfilled = 0
    v = cash0
    ev = 0
    k = k0
    while k < n:
        # Bar k has an event: a fill due, or a change of held exposure (an order decided at its close).
        new_order = False
        o_val = 0.0
        o_side = 0.0
        if ev < n_ev and ev_k[ev] == k:
            x = ev_x[ev]
            ev += 1
            new_order = True
            o_side = 1.0 if x > state else -1.0
            o_val = abs(x - state) * unit * o_side if qty_mode else x * unit
            state = x
        do_fill = False
        f_val = 0.0
        f_side = 0.0
        ref = 0.0
        if at_close:
            if new_order:
                do_fill = True
                f_val = o_val
                f_side = o_side
                ref = close[k]
        else:
            if pend:
                do_fill = True
                f_val = pend_val
                f_side = pend_side
                ref = open_[k]
                pend = False
            if new_order:
                if k + 1 < n:
                    pend = True
                    pend_val = o_val
                    pend_side = o_side
                else:
                    unfilled += 1
        if do_fill:
            q = f_val
            skip = False
            if not qty_mode:
                equity = cash
                if pos != 0.0:
                    equity += pos * ref
                q, why = weight_trade(f_val, equity, cash, ref, f_side, pos, rules)
                skip = why != PENDING
                if why == REJECTED_CASH:
                    rejected += 1
            if not skip:
                fp = fill_price(ref, 1.0 if q > 0 else -1.0, rules.slip)
                comm = commission(q, fp, rules)
                new_cash = cash_after(cash, q, fp, comm)
                if new_cash < cash and new_cash < -1e-9 * abs(q) * fp:
                    rejected += 1
                else:
                    cash = new_cash
                    n_fills += 1
                    commissions += comm
                    aq = abs(q)
                    rem = q
                    eps = 1e-12 * aq
                    while abs(rem) > eps and head < tail and lot_q[head] * rem < 0.0:  # close FIFO lots
                        lq = lot_q[head]
                        lsign, cq, entry_c, pnl, ret = close_part(rem, lq, lot_c[head], lot_p[head], fp, comm, aq)
                        closed = trades_add(closed, pnl, ret, (times[k] - times[lot_t[head]]) / DAY_US)
                        lot_c[head] -= entry_c
                        lot_q[head] = lq - lsign * cq
                        rem += lsign * cq
                        if abs(lot_q[head]) <= 1e-12 * cq:
                            head += 1
                    if abs(rem) > eps:  # open a lot with what is left
                        lot_q[tail] = rem
                        lot_p[tail] = fp
                        lot_c[tail] = comm * abs(rem) / aq
                        lot_t[tail] = k
                        tail += 1
                    pos += q
                    if abs(pos) <= 1e-12 * aq:
                        pos = 0.0
        # Bars k..j-1 hold this position: j is the next bar with an event.
        j = k + 1 if pend else (ev_k[ev] if ev < n_ev else n)
        # Marked at each close; when flat, equity stands still after the first bar: returns exactly 0.
        held = pos != 0.0
        marked = j if held else k + 1
        if held:
            exposed += j - k
        # views indexed from 0, so that numba need not check for negative indices in the loop
        marks = close[k:marked]
        acc = eq_acc[k - k0 : marked - k0] if acc_dense else eq_acc[:0]
        for u in range(marks.shape[0]):
            v = cash + pos * marks[u]  # flat: cash + 0.0, as the engine marks no position
            r = v / prev - 1.0
            prev = v
            total += r
            sq += r * r
            rn = min(r, 0.0)  # branch-free: a return's sign is a coin flip to the branch predictor
            down += rn * rn
            lo_r = min(lo_r, r)
            hi_r = max(hi_r, r)
            i = k - k0 + u
            if v >= peak:  # drawdown, as equity_stats
                if under and i + 1 - peak_i > long_end - long_start:
                    long_start = peak_i
                    long_end = i + 1
                under = False
                peak = v
                peak_i = i + 1
                trough = peak * (1.0 + mdd) * (1.0 + 1e-9)
            else:
                under = True
                if v <= trough or peak <= 0.0:  # a possible new maximum drawdown: checked exactly
                    dd = (v - peak) / peak
                    if dd < mdd:
                        mdd = dd
                        trough = peak * (1.0 + mdd) * (1.0 + 1e-9)
            if acc_dense:
                acc[u] += v
        if marked < j:
            lo_r = min(lo_r, 0.0)
            hi_r = max(hi_r, 0.0)
            if not under:
                peak_i = j - k0
            if acc_dense:  # an explicit loop: numba runs `view += v` through a slow generic ufunc call
                flat = eq_acc[marked - k0 : j - k0]
                for u in range(flat.shape[0]):
                    flat[u] += v
        if m_len > 0 and not dense:
            for kk in range(k, j):
                j1 = rows[kk + 1] - start if kk + 1 < n else m_len
                for jj in range(rows[kk] - start, j1):
                    eq_acc[jj] += cash + pos * close[kk] if held else v
        k = j
    if under and m - peak_i > long_end - long_start:
        long_start = peak_i
        long_end = m
    mean = total / m
    std = np.nan
    if m >= 2 and lo_r == hi_r:
        std = 0.0
    elif m >= 2:  # sum of squared deviations from the mean, in one pass: returns are centred near 0
        std = np.sqrt(max(sq - total * mean, 0.0) / (m - 1))
    equity_metrics(out, m, mean, std, np.sqrt(down / m), v, cash0, mdd, long_start, long_end, times[k0:], ppy)
    out[BUY_HOLD] = (close[n - 1] / close[k0] - 1.0) * 100.0
    out[EXPOSURE] = exposed / m * 100.0
    n_closed, n_win, sum_win, sum_neg, sum_pnl, sum_ret, best, worst, sum_dur = closed
    out[N_TRADES] = n_closed
    out[OPEN_TRADES] = tail - head
    if n_closed > 0:
        out[WIN_RATE] = n_win / n_closed * 100.0
        losses = abs(sum_neg)  # as trade_metrics: +0.0 without losing trades, so winners alone give +inf
        if losses > 0 or sum_win > 0:
            out[PROFIT_FACTOR] = sum_win / losses
        out[EXPECTANCY] = sum_pnl / n_closed
        out[AVG_TRADE] = sum_ret / n_closed
        out[BEST_TRADE] = best
        out[WORST_TRADE] = worst
        out[AVG_DURATION] = sum_dur / n_closed
    out[N_FILLS] = n_fills
    out[COMMISSIONS] = commissions
    out[REJECTED] = rejected
    out[UNFILLED] = unfilled


@njit(cache=True)
def _symbol_bars(s: int, prices: Prices, layout: Layout, sc: Scratch) -> tuple[np.ndarray, int, int]:
    # pragma: no cover - compiled
    """Symbol s's bars before the window's end, gathered into `sc`: (its market rows, k0, n), k0 and n the
    numbers of its bars before the window's start and end."""
    r = layout.rows[layout.offsets[s] : layout.offsets[s + 1]]
    k0, n = int(np.searchsorted(r, layout.start)), int(np.searchsorted(r, layout.end))
    for k in range(n):
        sc.open[k] = prices.open[r[k], s]
        sc.close[k] = prices.close[r[k], s]
        sc.time[k] = prices.times[r[k]]
    return r, k0, n


@njit(cache=True)
def _ma_symbols(
    lane: int, lanes: int, prices: Prices, layout: Layout, grid: Grid, rules: Rules, ppy: float,
    eq_acc: np.ndarray, out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Combinations lane, lane + lanes, ... on every symbol, with scratch of their own: symbol by symbol, one
    pass fills the average table, then each combination walks the symbol."""
    sc = scratch(layout)
    table = np.empty((grid.windows.shape[0], sc.close.shape[0]))
    for s in range(layout.offsets.shape[0] - 1):
        r, k0, n = _symbol_bars(s, prices, layout, sc)
        average_table(sc.close, n, grid.windows, grid.emas, table)
        for j in range(lane, grid.fast.shape[0], lanes):
            n_ev = cross_events(table[grid.fast[j]], table[grid.slow[j]], grid.windows[grid.slow[j]], k0, n,
                                grid.lo[j], sc.sign, sc.ev_bar, sc.ev_state)  # fmt: skip
            simulate_symbol(sc, n_ev, k0, n, grid.qty_mode[j], grid.unit[j], rules, ppy, r, layout.start, eq_acc[j],
                            out[j, s])


@njit(cache=True)
def ma_sweep(
    prices: Prices, layout: Layout, grid: Grid, rules: Rules, ppy: float, eq_acc: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """Every MA-crossover combination on every symbol, on one thread (safe from any caller, dask's worker
    threads included). out is (combinations x symbols x N_METRICS); eq_acc is (combinations x window bars):
    the symbols' accounts' equity summed. ppy: bars per year."""
    _ma_symbols(0, 1, prices, layout, grid, rules, ppy, eq_acc, out)


@njit(cache=True, parallel=True)
def ma_sweep_threads(
    prices: Prices, layout: Layout, grid: Grid, rules: Rules, ppy: float, eq_acc: np.ndarray, out: np.ndarray,
    lanes: int,
) -> None:  # pragma: no cover - compiled
    """ma_sweep with the combinations in `lanes` interleaved groups, one per numba thread, each walking every
    symbol with its own bars and average table: one join at the end, so a thread the OS pauses delays only
    its own share (a join per symbol would make the others spin). Only from a process's main thread: numba's
    threading layer must not be entered from two threads at once. Each combination's row and equity are its
    own, so the results are ma_sweep's, bit for bit.

    Kept for what it saves: on 2 cores, bench_sweep's grid (174 combinations x 100 symbols x 2,520 bars)
    took 0.100 s against 0.135 s on one thread (26%; medians of 11 interleaved runs of
    benchmarks/bench_commands.py, sweep_s against sweep_1_thread_s), 0.088 s against 0.142 s (38%) in
    another set of 7; nothing when another process holds the second core."""
    for lane in prange(lanes):
        _ma_symbols(lane, lanes, prices, layout, grid, rules, ppy, eq_acc, out)


@njit(cache=True)
def exposure_sweep(
    prices: Prices, layout: Layout, exposures: np.ndarray, lo: float, qty_mode: bool, unit: float, rules: Rules,
    ppy: float, eq_acc: np.ndarray, out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """One combination of any strategy, from its (time x symbol) exposures, on every symbol: out is
    (symbols x N_METRICS)."""
    sc = scratch(layout)
    expo = np.empty(sc.close.shape[0])
    before = np.empty(sc.close.shape[0])
    for s in range(layout.offsets.shape[0] - 1):
        r, k0, n = _symbol_bars(s, prices, layout, sc)
        for k in range(n):
            expo[k] = exposures[r[k], s]
        n_ev = exposure_events(expo, k0, n, lo, sc.ev_bar, sc.ev_state, before) if n > k0 else 0
        simulate_symbol(sc, n_ev, k0, n, qty_mode, unit, rules, ppy, r, layout.start, eq_acc, out[s])
