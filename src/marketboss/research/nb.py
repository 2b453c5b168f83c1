"""The compiled sweep kernel (numba): many parameter combinations on every symbol, one cash account each.

Per symbol, one pass over its bars fills a table of every distinct average the combinations need (windows x
bars, never combinations x bars); each combination then finds the bars where its held exposure changes (for
the crossover: a sign byte per bar, then eight bars per 64-bit compare), kept as its events. Per combination,
the events of every symbol become its orders, in signal order, and the backtest's own kernels trade them in one
account: backtest.nb.schedule, simulate (the order step: sizing, the fill rules, costs), mark and round_trips.
So a combination's metrics are the backtest's, to the bit, and the sweep keeps no accounting of its own.

Exactness: averages and crossings are strategies.nb.ma_cross's, operation for operation; exits are priced by
signals.nb.exit_price as signals/exits.py prices them; metrics use backtest.metrics' formulas. Tests compare
every combination with research.windows.evaluate (run_backtest on the window).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from marketboss.backtest.arrays import UNFILLED_STATUSES
from marketboss.backtest.nb import (
    REJECTED_CASH,
    Equity,
    Orders,
    Prices,
    Rules,
    mark,
    round_trips,
    schedule,
    simulate,
    trade_stats,
    trades_add,
    trades_start,
)
from marketboss.signals.nb import exit_price
from marketboss.strategies.nb import state_changes

# Columns of a combination's metrics (a backtest's), in the order of sweep.METRICS.
(FINAL_EQUITY, PNL, TOTAL_RETURN, BUY_HOLD, CAGR, VOLATILITY, SHARPE, SORTINO, CALMAR, MAX_DD, MAX_DD_BARS,
 MAX_DD_DAYS, EXPOSURE, N_TRADES, WIN_RATE, PROFIT_FACTOR, EXPECTANCY, AVG_TRADE, BEST_TRADE, WORST_TRADE,
 AVG_DURATION, OPEN_TRADES, N_FILLS, COMMISSIONS, REJECTED, UNFILLED) = range(26)  # fmt: skip
N_METRICS = 26

DAY_US = 86_400e6


class Grid(NamedTuple):
    """The combinations as the kernel reads them: the distinct averages of the table (window lengths, and
    whether exponential), then per combination its fast and slow average (rows of the table), lowest held
    state (0 long-only, -1 long-short), sizing by quantity (else by target weight), the unit (shares or
    weight), and its exits in percent (NaN: none): take-profit, stop-loss, trailing stop."""

    windows: np.ndarray
    emas: np.ndarray
    fast: np.ndarray
    slow: np.ndarray
    lo: np.ndarray
    qty_mode: np.ndarray
    unit: np.ndarray
    take_profit: np.ndarray
    stop_loss: np.ndarray
    trail: np.ndarray


class Layout(NamedTuple):
    """Where each symbol's bars are in the market: symbol s's rows are rows[offsets[s]:offsets[s+1]]; the
    window is the market's bars start..end-1."""

    offsets: np.ndarray
    rows: np.ndarray
    start: int
    end: int


class Scratch(NamedTuple):
    """One symbol's bars gathered (open, close, time), its events (bar, new held state) and `sign`, a byte per
    bar (rounded up to 8): room for the longest symbol, reused from symbol to symbol."""

    open: np.ndarray
    close: np.ndarray
    time: np.ndarray
    ev_bar: np.ndarray
    ev_state: np.ndarray
    sign: np.ndarray


class Events(NamedTuple):
    """Every combination's events, symbol by symbol: those of symbol s under combination j are
    row[at[s, j] : at[s, j] + n[s, j]] (window rows, in time order) with their new held state."""

    row: np.ndarray
    state: np.ndarray
    at: np.ndarray
    n: np.ndarray


class Window(NamedTuple):
    """The window's market as the backtest kernels read it (its bars only), which symbols have a bar at every
    one of its times, and its buy-and-hold return (the whole account's, then per symbol)."""

    prices: Prices
    full: np.ndarray
    buy_hold: float
    symbol_buy_hold: np.ndarray


@njit(cache=True)
def scratch(layout: Layout) -> Scratch:  # pragma: no cover - compiled
    longest = 0
    for s in range(layout.offsets.shape[0] - 1):
        longest = max(longest, layout.offsets[s + 1] - layout.offsets[s])
    return Scratch(np.empty(longest), np.empty(longest), np.empty(longest, dtype=np.int64),
                   np.empty(longest, dtype=np.int64), np.empty(longest),
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
def symbol_exposure_events(
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


@njit(cache=True)
def _store(ev: Events, used: int, s: int, j: int, sc: Scratch, n_ev: int, r: np.ndarray, start: int) -> Events:
    # pragma: no cover - compiled
    """Symbol s's n_ev events under combination j (symbol bars in sc.ev_bar) appended at `used`, as window rows;
    the buffers grow by doubling."""
    row, state = ev.row, ev.state
    if used + n_ev > row.shape[0]:
        cap = max(2 * row.shape[0], used + n_ev)
        row2, state2 = np.empty(cap, dtype=np.int64), np.empty(cap)
        row2[:used] = row[:used]
        state2[:used] = state[:used]
        row, state = row2, state2
    for i in range(n_ev):
        row[used + i] = r[sc.ev_bar[i]] - start
        state[used + i] = sc.ev_state[i]
    ev.at[s, j] = used
    ev.n[s, j] = n_ev
    return Events(row, state, ev.at, ev.n)


@njit(cache=True)
def _new_events(n_s: int, n_comb: int) -> Events:  # pragma: no cover - compiled
    return Events(np.empty(16 * n_s * n_comb, dtype=np.int64), np.empty(16 * n_s * n_comb),
                  np.zeros((n_s, n_comb), dtype=np.int64), np.zeros((n_s, n_comb), dtype=np.int64))  # fmt: skip


@njit(cache=True)
def ma_events(prices: Prices, layout: Layout, grid: Grid, lane: int, lanes: int) -> Events:
    # pragma: no cover - compiled
    """The events of MA-crossover combinations lane, lane + lanes, ... on every symbol: symbol by symbol, one
    pass fills the average table, then each combination finds its changes."""
    n_s, n_comb = layout.offsets.shape[0] - 1, grid.fast.shape[0]
    sc = scratch(layout)
    table = np.empty((grid.windows.shape[0], sc.close.shape[0]))
    ev = _new_events(n_s, n_comb)
    used = 0
    for s in range(n_s):
        r, k0, n = _symbol_bars(s, prices, layout, sc)
        average_table(sc.close, n, grid.windows, grid.emas, table)
        for j in range(lane, n_comb, lanes):
            n_ev = cross_events(table[grid.fast[j]], table[grid.slow[j]], grid.windows[grid.slow[j]], k0, n,
                                grid.lo[j], sc.sign, sc.ev_bar, sc.ev_state)  # fmt: skip
            ev = _store(ev, used, s, j, sc, n_ev, r, layout.start)
            used += n_ev
    return ev


@njit(cache=True)
def exposure_events(prices: Prices, layout: Layout, exposures: np.ndarray, lo: float) -> Events:
    # pragma: no cover - compiled
    """One combination's events on every symbol from its (time x symbol) exposures (symbol_exposure_events)."""
    n_s = layout.offsets.shape[0] - 1
    sc = scratch(layout)
    expo = np.empty(sc.close.shape[0])
    before = np.empty(sc.close.shape[0])
    ev = _new_events(n_s, 1)
    used = 0
    for s in range(n_s):
        r, k0, n = _symbol_bars(s, prices, layout, sc)
        n_ev = 0
        if n > k0:
            for k in range(n):
                expo[k] = exposures[r[k], s]
            n_ev = symbol_exposure_events(expo, k0, n, lo, sc.ev_bar, sc.ev_state, before)
        ev = _store(ev, used, s, 0, sc, n_ev, r, layout.start)
        used += n_ev
    return ev


@njit(cache=True)
def _orders(win: Window, ev: Events, j: int, lo: float, qty_mode: bool, unit: float, take_profit: float,
            stop_loss: float, trail: float, at_close: bool) -> tuple[Orders, np.ndarray]:  # pragma: no cover
    """Combination j's events on every symbol as the backtest's orders, in signal order (time, then symbol), each
    sized as strategies.base sizes a change of held state (`unit` shares per unit of change, or `unit` x the new
    state as a target weight) with its exits on entries (signals.exits' prices, from the signal bar's close);
    and the signal times."""
    times, close = win.prices.times, win.prices.close
    n_s = ev.at.shape[0]
    n = 0
    for s in range(n_s):
        n += ev.n[s, j]
    o_row, o_s, before, after = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64), np.empty(n), np.empty(n)
    # a counting sort by bar, stable in symbol order: events come symbol by symbol, each in time order
    start = np.zeros(times.shape[0] + 1, dtype=np.int64)
    for s in range(n_s):
        for e in range(ev.at[s, j], ev.at[s, j] + ev.n[s, j]):
            start[ev.row[e] + 1] += 1
    for t in range(times.shape[0]):
        start[t + 1] += start[t]
    order = np.empty(n, dtype=np.int64)
    i = 0
    for s in range(n_s):
        prev = 0.0
        for e in range(ev.at[s, j], ev.at[s, j] + ev.n[s, j]):
            o_row[i] = ev.row[e]
            o_s[i] = s
            before[i] = prev
            after[i] = ev.state[e]
            prev = ev.state[e]
            order[start[ev.row[e]]] = i
            start[ev.row[e]] += 1
            i += 1
    plain = np.isnan(take_profit) and np.isnan(stop_loss) and np.isnan(trail)
    m = 0 if plain else n
    kind, limit, stop, gtc = np.zeros(m, dtype=np.int8), np.full(m, np.nan), np.full(m, np.nan), np.zeros(m, np.bool_)
    tp, sl, tr = np.full(m, np.nan), np.full(m, np.nan), np.full(m, np.nan)
    ts, bar, sym = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    buy, qty, weight = np.empty(n, dtype=np.bool_), np.empty(n), np.empty(n)
    for k in range(n):
        i = order[k]
        b, a = before[i], after[i]
        bar[k] = o_row[i]
        ts[k] = times[o_row[i]]
        sym[k] = o_s[i]
        buy[k] = a > b
        qty[k] = abs(a - b) * unit if qty_mode else np.nan
        weight[k] = qty[k] if qty_mode else a * unit
        if not plain and (abs(a) > abs(b) or a * b < 0.0):  # an entry: it opens, adds to or flips a position
            ref = close[o_row[i], o_s[i]]
            up = 1.0 if buy[k] else -1.0
            tp[k] = exit_price(ref, up, take_profit)
            if np.isnan(trail):
                sl[k] = exit_price(ref, -up, stop_loss)
            tr[k] = trail
    exec_t, status, live, _ = schedule(times, close, win.full, ts, bar, sym, at_close, kind)
    return Orders(exec_t, sym, buy, qty, weight, status, live, plain, kind, limit, stop, tr, gtc, tp, sl), ts


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


@njit(cache=True, error_model="numpy")
def trade_columns(out: np.ndarray, acc: tuple, n_trades: int) -> None:  # pragma: no cover - compiled
    """The trade columns of a metrics row from a TradeAcc of the closed round trips (n_trades round trips in
    all, open ones included), by backtest.metrics.trade_metrics' formulas."""
    n_closed, n_win, sum_win, sum_neg, sum_pnl, sum_ret, best, worst, sum_dur = acc
    out[N_TRADES] = n_closed
    out[OPEN_TRADES] = n_trades - n_closed
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


@njit(cache=True, inline="always")
def combo_rules(rules: Rules, lo: float) -> Rules:  # pragma: no cover - compiled
    """The backtest's rules for a combination whose lowest held state is `lo`: a long-only one (lo 0) trades in a
    long-only account (Rules.long_only, as engine.strategy_config makes a long-only strategy's backtest)."""
    return Rules(rules.cash, rules.rate, rules.per_share, rules.minimum, rules.slip, rules.at_close, rules.fractional,
                 rules.buy_stop_collar, rules.long_only or lo >= 0.0)  # fmt: skip


@njit(cache=True, error_model="numpy")
def trade_combo(win: Window, ev: Events, j: int, grid: Grid, rules: Rules, ppy: float, eq: Equity,
                out: np.ndarray, rows: np.ndarray) -> None:  # pragma: no cover - compiled
    """Combination j in one account over the window (long-only when the combination is: combo_rules): its orders
    through the backtest's kernels; the metrics row `out` (the backtest's), each symbol's row in `rows` (its round
    trips, fills and orders; NaN for a symbol without bars in the window) and the equity curve into `eq`."""
    prices = win.prices
    orders, _ = _orders(win, ev, j, grid.lo[j], grid.qty_mode[j], grid.unit[j], grid.take_profit[j],
                        grid.stop_loss[j], grid.trail[j], rules.at_close)  # fmt: skip
    fills = simulate(prices, orders, combo_rules(rules, grid.lo[j]))
    exposed, returns = mark(prices.close, fills, rules.cash, eq)
    tr = round_trips(prices, fills)
    m = prices.times.shape[0]
    out[:] = np.nan
    mean, std, down, _, mdd, dd_start, dd_end = returns
    equity_metrics(out, m, mean, std, down, eq.equity[m - 1], rules.cash, mdd, dd_start, dd_end, prices.times, ppy)
    out[BUY_HOLD] = win.buy_hold
    out[EXPOSURE] = exposed / m * 100.0
    trade_columns(out, trade_stats(tr.pnl, tr.return_pct, tr.days, tr.closed), tr.pnl.shape[0])
    n_f = fills.row.shape[0]
    out[N_FILLS] = n_f
    out[COMMISSIONS] = fills.commission.sum()
    symbol_rows(win.symbol_buy_hold, tr.symbol, tr.pnl, tr.return_pct, tr.days, tr.closed, fills.symbol,
                fills.commission, orders.symbol, orders.status, rows)  # fmt: skip
    out[REJECTED] = 0.0
    out[UNFILLED] = 0.0
    for r in range(orders.status.shape[0]):
        col = _count_column(orders.status[r])
        if col >= 0:
            out[col] += 1.0


@njit(cache=True, inline="always")
def _count_column(status: int) -> int:  # pragma: no cover - compiled
    """The column an order of this status counts in: REJECTED, UNFILLED, or none (-1)."""
    return REJECTED if status == REJECTED_CASH else (UNFILLED if status in UNFILLED_STATUSES else -1)


@njit(cache=True)
def symbol_rows(symbol_buy_hold: np.ndarray, trade_symbol: np.ndarray, pnl: np.ndarray, ret: np.ndarray,
                days: np.ndarray, closed: np.ndarray, fill_symbol: np.ndarray, commission: np.ndarray,
                order_symbol: np.ndarray, status: np.ndarray, rows: np.ndarray) -> None:  # pragma: no cover
    """Each symbol's row of a combination (its part of the account: its round trips, in the order they close, its
    fills and its orders by status); NaN for a symbol without bars in the window (symbol_buy_hold NaN). The
    combinations of the sweep's kernel and the event strategies' runs alike."""
    n_s = rows.shape[0]
    rows[:] = np.nan
    for s in range(n_s):
        if not np.isnan(symbol_buy_hold[s]):
            rows[s, PNL] = 0.0
            rows[s, N_TRADES] = 0.0  # as trade_metrics of none (the rest of its trade columns: undefined)
            rows[s, OPEN_TRADES] = 0.0
            rows[s, N_FILLS] = 0.0
            rows[s, COMMISSIONS] = 0.0
            rows[s, REJECTED] = 0.0
            rows[s, UNFILLED] = 0.0
            rows[s, BUY_HOLD] = symbol_buy_hold[s]
    # a counting sort by symbol, stable: each symbol's round trips in the order they close
    start = np.zeros(n_s + 1, dtype=np.int64)
    n_tr = trade_symbol.shape[0]
    for i in range(n_tr):
        start[trade_symbol[i] + 1] += 1
    for s in range(n_s):
        start[s + 1] += start[s]
    by = np.empty(n_tr, dtype=np.int64)
    at = start[:n_s].copy()
    for i in range(n_tr):
        by[at[trade_symbol[i]]] = i
        at[trade_symbol[i]] += 1
    for s in range(n_s):
        if start[s + 1] == start[s]:
            continue
        acc = trades_start()
        total = 0.0
        for k in range(start[s], start[s + 1]):
            i = by[k]
            total += pnl[i]
            if closed[i]:
                acc = trades_add(acc, pnl[i], ret[i], days[i])
        rows[s, PNL] = total
        trade_columns(rows[s], acc, start[s + 1] - start[s])
    for i in range(fill_symbol.shape[0]):
        rows[fill_symbol[i], N_FILLS] += 1.0
        rows[fill_symbol[i], COMMISSIONS] += commission[i]
    for r in range(status.shape[0]):
        col = _count_column(status[r])
        if col >= 0:
            rows[order_symbol[r], col] += 1.0


@njit(cache=True)
def _trade_lane(lane: int, lanes: int, win: Window, ev: Events, grid: Grid, rules: Rules, ppy: float,
                eq_acc: np.ndarray, out: np.ndarray, rows: np.ndarray) -> None:  # pragma: no cover - compiled
    """Combinations lane, lane + lanes, ... with equity scratch of their own."""
    m = win.prices.times.shape[0]
    keep = eq_acc.shape[0] > 0
    eq = Equity(np.empty(m), np.empty(m), np.empty(m))
    for j in range(lane, grid.lo.shape[0], lanes):
        trade_combo(win, ev, j, grid, rules, ppy, Equity(eq.cash, eq.positions_value, eq_acc[j] if keep
                                                            else eq.equity), out[j], rows[j])  # fmt: skip


@njit(cache=True)
def trade_all(win: Window, ev: Events, grid: Grid, rules: Rules, ppy: float, eq_acc: np.ndarray, out: np.ndarray,
              rows: np.ndarray) -> None:  # pragma: no cover - compiled
    """Every combination of `ev` in its own account, on one thread. out: (combinations x N_METRICS); rows:
    (combinations x symbols x N_METRICS); eq_acc: (combinations x window bars) to keep the equity curves, or
    empty."""
    _trade_lane(0, 1, win, ev, grid, rules, ppy, eq_acc, out, rows)


@njit(cache=True)
def ma_sweep(prices: Prices, layout: Layout, win: Window, grid: Grid, rules: Rules, ppy: float, eq_acc: np.ndarray,
             out: np.ndarray, rows: np.ndarray) -> None:  # pragma: no cover - compiled
    """Every MA-crossover combination: its events, then its account, on one thread (safe from any caller, dask's
    worker threads included)."""
    trade_all(win, ma_events(prices, layout, grid, 0, 1), grid, rules, ppy, eq_acc, out, rows)


@njit(cache=True, parallel=True)
def ma_sweep_threads(prices: Prices, layout: Layout, window: Prices, full: np.ndarray, buy_hold: float,
                     symbol_buy_hold: np.ndarray, grid: Grid, rules: Rules, ppy: float, eq_acc: np.ndarray,
                     out: np.ndarray, rows: np.ndarray, lanes: int) -> None:  # pragma: no cover - compiled
    """ma_sweep with the combinations in `lanes` interleaved groups, one per numba thread, each finding its own
    events (its own average tables) and trading them: one join at the end, so a thread the OS pauses delays only
    its own share. Only from a process's main thread (numba's threading layer must not be entered from two
    threads at once). Each combination's results are its own, so they are ma_sweep's, bit for bit. The Window
    comes in its fields (a parallel kernel takes no nested tuple).

    Kept for what it saves: on 2 cores, bench_sweep's grid (174 combinations x 100 symbols x 2,520 bars) took
    0.112 s against 0.166 s on one thread (32%; medians of 9 interleaved runs of the whole `sweep`)."""
    for lane in prange(lanes):
        win = Window(window, full, buy_hold, symbol_buy_hold)
        _trade_lane(lane, lanes, win, ma_events(prices, layout, grid, lane, lanes), grid, rules, ppy, eq_acc, out,
                    rows)  # fmt: skip


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


