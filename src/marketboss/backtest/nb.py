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

from marketboss.backtest.arrays import (  # the kernels' inputs and outputs (nb.Prices, ... read them here too)
    CANCELED,
    DAY_ENDED,
    DAY_US,
    EXPIRED,
    FILLED,
    FRACTIONAL_SHORT,
    LONG_ONLY,
    NO_BAR,
    OPEN,
    PENDING,
    REJECTED_CASH,
    SKIPPED,
    Equity,
    Fills,
    Orders,
    Prices,
    RoundTrips,
    Rules,
    TradeAcc,
)
from marketboss.orders.codes import (
    LIMIT,
    MARKET,
    NO_EXIT,
    STOP,
    STOP_LIMIT,
    TAKE_PROFIT,
    TRAILING_EXIT,
    TRAILING_STOP,
)
from marketboss.orders.nb import (
    bracket_exit,
    buy_stop_limit,
    limit_fill,
    stop_fill,
    stop_limit_fill,
    trailing_fill,
)

#: numba's options for the kernels that run on state they are given (step, what it calls with arrays, and the
#: event loop's calls in events.py): no reference counting (numba's NRT). A call passes some 50 arrays in named
#: tuples, and counting their references cost more than a short call's work: the event-driven run of a strategy
#: trading every few bars (benchmarks/bench_events.py, time_trailing_stop) took 30.4 ms compiled, 124 ms in plain
#: Python; without, 14.6 ms and 85 ms. Safe because numba refuses to compile an allocation in such a function: it
#: only reads and writes arrays its caller holds.
NO_REFCOUNTS: dict[str, Any] = {"_nrt": False}


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
def fill_price(ref: float, side: float, slip: float, cap: float) -> float:  # pragma: no cover - compiled
    """Reference price moved against the trader by `slip` (slippage + half-spread, as a fraction), never beyond
    `cap`, a limit price (NaN: none): the price of a fill, in the backtest and the local broker alike."""
    px = ref * (1.0 + side * slip)
    if np.isnan(cap):
        return px
    return fmin(px, cap) if side > 0 else fmax(px, cap)


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


@njit(cache=True, inline="always")
def next_bar(close: np.ndarray, full: bool, s: int, t: int) -> int:  # pragma: no cover - compiled
    """Symbol s's first bar after bar t (the very next bar when it has a bar at every time, `full`); the number
    of bars when there is none: where an order decided at bar t goes live."""
    t += 1
    while t < close.shape[0] and not full and np.isnan(close[t, s]):
        t += 1
    return t


@njit(cache=True)
def schedule(
    times: np.ndarray, close: np.ndarray, full: np.ndarray, ts: np.ndarray, sig_bar: np.ndarray,
    o_s: np.ndarray, at_close: bool, kind: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:  # pragma: no cover - compiled
    """Where each order (in signal time order; `sig_bar`: the last bar at or before the signal) goes live: its
    bar (-1 and a status when it cannot), the fillable orders in execution order (by that bar, signal order
    within a bar), and whether that is signal order. `kind`: the order types (empty: all market orders).

    An order goes live on the symbol's first bar after the signal bar (the very next bar for a symbol with a
    bar at every time, `full`); a market order filling at the close (`at_close`) on the signal bar itself,
    which must be a bar of that symbol at exactly the signal time."""
    n = o_s.shape[0]
    t_max = times.shape[0]
    exec_t = np.full(n, -1, dtype=np.int64)
    status = np.zeros(n, dtype=np.int8)
    live = np.empty(n, dtype=np.int64)
    n_live = 0
    ordered = True
    for k in range(n):
        s = o_s[k]
        if at_close and (kind.shape[0] == 0 or kind[k] == MARKET):
            t = sig_bar[k]
            if t < 0 or times[t] != ts[k] or np.isnan(close[t, s]):
                status[k] = NO_BAR
                continue
        else:
            t = next_bar(close, full[s], s, sig_bar[k])
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


#: Fractional shares are traded in millionths (the paper executor's orders, the local broker's grid): the
#: backtest sizes on the same grid, so that a weight comes out the same shares in both.
SHARE_PARTS = 1e6

#: Nothing is borrowed (gross exposure at most the equity, backtesting.py's margin=1): a short position holds
#: cash of COLLATERAL times its value, its sale's proceeds and as much of the account's own (order_fill).
COLLATERAL = 2.0


@njit(cache=True)
def target_shares(weight: float, equity: float, free: float, ref: float, fp: float, pos: float, rules: Rules
                  ) -> float:  # fmt: skip
    # pragma: no cover - compiled
    """The position a target weight asks for: weight x equity at the reference price; when that adds to the
    position (or flips it), no more than the position and the commission of reaching it cost together at the
    fill price fp, so that 1.0 is all in and never rejected for its own fees, and within the account's `free`
    cash (its cash less the collateral the other symbols' shorts hold: free_cash): a purchase no more than it pays
    for, a short no more than it holds the collateral of (order_fill's rule, the short valued at ref). Whole shares
    unless fractional (then millionths, SHARE_PARTS, for a purchase: a short is whole). The one sizing rule of the
    backtest, the sweep and the paper executor."""
    raw = weight * equity / ref
    if raw == 0.0 or (raw * pos > 0.0 and abs(raw) <= abs(pos)):  # a reduction: it pays no cost of its own
        return np.trunc(raw * SHARE_PARTS) / SHARE_PARTS if rules.fractional and raw > 0.0 else np.trunc(raw)
    budget = abs(weight) * equity
    per = rules.rate * fp + rules.per_share  # commission per share traded, above the minimum
    # shares traded: |target| - |pos| adding to the position, |target| + |pos| flipping it
    sigma = -1.0 if raw * pos > 0.0 else (1.0 if pos != 0.0 else 0.0)
    n = fmin((budget - sigma * abs(pos) * per) / (fp + per), (budget - rules.minimum) / fp)
    if weight > 0.0:  # a purchase: the shares bought (n - pos) and their commission within the free cash
        n = fmin(n, pos + fmin(free / (fp + per), (free - rules.minimum) / fp))
    else:  # a short of n: free cash + the sale's proceeds (pos + n shares at fp, less commission) >= 2 n ref
        n = fmin(n, fmin((free + pos * (fp - per)) / (COLLATERAL * ref - fp + per),
                         (free + pos * fp - rules.minimum) / (COLLATERAL * ref - fp)))  # fmt: skip
    n = fmax(n, 0.0)
    # fractional shares are bought, never sold short (Alpaca refuses a fractional short sale): a short is whole
    n = np.floor(n * SHARE_PARTS) / SHARE_PARTS if rules.fractional and weight > 0.0 else np.floor(n)
    return n if weight > 0.0 else -n


@njit(cache=True)
def weight_trade(weight: float, equity: float, free: float, ref: float, side: float, pos: float, rules: Rules
                 ) -> tuple[float, int]:  # pragma: no cover - compiled
    """(shares to trade, PENDING) for a target-weight order on the `side` of its action, or (0, why not):
    SKIPPED when the target is already reached on that side, REJECTED_CASH when a trade of at least a share (any
    amount when fractional) toward it finds no free cash for it (target_shares)."""
    target = target_shares(weight, equity, free, ref, fill_price(ref, side, rules.slip, np.nan), pos, rules)
    q = target - pos
    if q * side > 0.0 and abs(q) > 1e-12 * (abs(target) + 1.0):
        return q, PENDING
    wanted = (weight * equity / ref - pos) * side
    if wanted > 0.0 if rules.fractional else wanted >= 1.0:
        return 0.0, REJECTED_CASH
    return 0.0, SKIPPED


@njit(cache=True, inline="always")
def whole(shares: float) -> bool:  # pragma: no cover - compiled
    """Whole shares, to float noise: brokers sell no fraction of a share short (Alpaca refuses the order)."""
    return abs(shares - np.round(shares)) <= 1e-9


@njit(cache=True, inline="always")
def held_sale(q: float, pos: float) -> float:  # pragma: no cover - compiled
    """A long-only account's trade of q shares (negative: a sale) at a position of `pos`: a sale no more than the
    shares held, never through zero to a short (0 when none are held); a purchase as it is. The one long-only
    rule of the backtest and the sweep (step applies it under Rules.long_only), as the event strategy's
    ctx.sell and the paper executor cut a long-only sale."""
    return -fmin(-q, fmax(pos, 0.0)) if q < 0.0 else q


@njit(cache=True)
def order_fill(cash: float, q: float, ref: float, cap: float, rules: Rules, collateral: float
               ) -> tuple[float, float, float, bool]:  # fmt: skip
    # pragma: no cover - compiled
    """The one fill rule: q shares (negative: a sale) at the reference price ref moved against the trader by
    slippage, never beyond `cap` (a limit; NaN: none), commission on top. Nothing is borrowed: a trade that grows a
    position, or opens one on its other side, may not leave less cash than the `collateral` the account's shorts
    hold after it (COLLATERAL times their value: a short's proceeds and as much again, what backtesting.py's
    margin=1 asks; 0 with none: cash may not go below zero), and is refused whole when it would. A trade that only
    reduces a position (collateral NaN) is never refused: a stop or a cover of a short that rose past the
    account's collateral fills, its cost taking cash below zero if it must, as a broker's margin call would
    close it. (price, commission, cash after, whether it fills)."""
    fp = fill_price(ref, 1.0 if q > 0 else -1.0, rules.slip, cap)
    comm = commission(q, fp, rules)
    new_cash = cash_after(cash, q, fp, comm)
    return fp, comm, new_cash, np.isnan(collateral) or new_cash >= collateral - 1e-9 * abs(q) * fp


@njit(cache=True, **NO_REFCOUNTS)
def equity_at(cash: float, pos: np.ndarray, held: np.ndarray, n_held: int, refs: np.ndarray, close: np.ndarray,
              t: int) -> float:  # pragma: no cover - compiled
    """Cash plus the held positions marked at bar t's reference prices (a symbol without one: its last close)."""
    equity = cash
    for h in range(n_held):
        j = held[h]
        px = refs[t, j]
        if np.isnan(px):
            px = last_close(close, t, j)
        equity += pos[j] * px
    return equity


@njit(cache=True, **NO_REFCOUNTS)
def shorts_at(pos: np.ndarray, held: np.ndarray, n_held: int, refs: np.ndarray, close: np.ndarray, t: int,
              skip: int) -> float:  # pragma: no cover - compiled
    """The value of the short positions but symbol `skip`'s (a positive amount), marked as equity_at marks them."""
    value = 0.0
    for h in range(n_held):
        j = held[h]
        if j != skip and pos[j] < 0.0:
            px = refs[t, j]
            if np.isnan(px):
                px = last_close(close, t, j)
            value -= pos[j] * px
    return value


@njit(cache=True, inline="always")
def free_cash(cash: float, others_short: float) -> float:  # pragma: no cover - compiled
    """The cash a trade of one symbol may use: the account's, less the collateral the other symbols' short
    positions (`others_short`, their value) hold (order_fill's rule)."""
    return cash - COLLATERAL * others_short


class Exits(NamedTuple):
    """Per order row, the exits its fill opened, as Alpaca's bracket legs are the entry's own orders for its own
    shares: how many shares they still cover (0: none working), a trailing exit's mark and the first bar they are
    live; `rows`: the rows whose exits work, in the order they were set (Sim.ints[I_EXITS] of them). Their
    prices are the order's (take_profit, stop_loss, trail: exit_trail)."""

    qty: np.ndarray
    mark: np.ndarray
    live_from: np.ndarray
    rows: np.ndarray


class Candidates(NamedTuple):
    """The trades one phase of a bar may make, in order: the order's row (a leg's: its entry's), reference price,
    limit cap (NaN: none) and leg (NO_EXIT: the order itself; -1 once done)."""

    row: np.ndarray
    ref: np.ndarray
    cap: np.ndarray
    leg: np.ndarray


@njit(cache=True, inline="always")
def exit_trail(orders: Orders, r: int) -> float:  # pragma: no cover - compiled
    """Row r's trailing stop-loss percent (NaN: none): a trailing-stop order's trail is its own, not an exit."""
    return orders.trail[r] if orders.kind[r] != TRAILING_STOP else np.nan


@njit(cache=True, inline="always")
def _exit_candidates(ex: Exits, orders: Orders, rows: np.ndarray, n_rows: int, prices: Prices, t: int,
                     cand: Candidates, n_c: int) -> int:  # pragma: no cover - compiled
    """The entries (of rows[:n_rows]) whose exits trade on bar t, appended to `cand`: the stop (trailing or
    fixed) first, then the take-profit (one bar reaching both: the stop); each closes its entry's shares. A
    trailing mark that does not trigger moves with the bar."""
    for h in range(n_rows):
        r = rows[h]
        if ex.live_from[r] > t:
            continue
        s = orders.symbol[r]
        o, hi, lo = prices.open[t, s], prices.high[t, s], prices.low[t, s]
        if np.isnan(o):
            continue
        long = orders.buy[r]
        which, px = NO_EXIT, np.nan
        trail = exit_trail(orders, r)
        if not np.isnan(trail):
            px, m = trailing_fill(not long, o, hi, lo, ex.mark[r], trail, np.nan)
            if np.isnan(px):
                ex.mark[r] = m
            else:
                which = TRAILING_EXIT
        if which == NO_EXIT:
            which, px = bracket_exit(long, o, hi, lo, orders.take_profit[r], orders.stop_loss[r])
        if which != NO_EXIT:
            cand.row[n_c] = r
            cand.ref[n_c] = px
            cand.cap[n_c] = orders.take_profit[r] if which == TAKE_PROFIT else np.nan
            cand.leg[n_c] = which
            n_c += 1
    return n_c


@njit(cache=True, inline="always")
def _quiet_until(ex: Exits, orders: Orders, n_exits: int, prices: Prices, t: int, end: int
                 ) -> int:  # pragma: no cover - compiled
    """The first bar from t (before `end`) where a working exit may trade: the bars before it change nothing (no
    exit reaches its price) and step skips them. A trailing exit moves its mark on every bar, so with one the
    answer is t (those bars take the full path). Entry by entry, each a scan of its own (_first_exit)."""
    rows = ex.rows
    for h in range(n_exits):
        if not np.isnan(exit_trail(orders, rows[h])):
            return t
    if end <= t:
        return t
    for h in range(n_exits):
        r = rows[h]
        end = _first_exit(orders.buy[r], prices, orders.symbol[r], orders.take_profit[r], orders.stop_loss[r],
                          max(t, ex.live_from[r]), end)  # fmt: skip
    return end


@njit(cache=True, **NO_REFCOUNTS)
def _first_exit(long: bool, prices: Prices, s: int, tp: float, sl: float, start: int, end: int) -> int:
    # pragma: no cover - compiled
    """The first bar in [start, end) where a long (or short) position's bracket may trade (`end`: none). A
    position's levels read once: on 1M minute bars the whole kernel takes 3.7 ms, 5.3 ms scanning bar by bar
    within step's loop. (Compiled once per side, with `long` a constant, it took 2.1 ms: 7% of the event
    benchmark's compiled run, under the 20% a speed trick must save to stay.)"""
    for i in range(start, end):
        o = prices.open[i, s]
        if not np.isnan(o) and bracket_exit(long, o, prices.high[i, s], prices.low[i, s], tp, sl)[0] != NO_EXIT:
            return i
    return end


@njit(cache=True, inline="always")
def _working_candidates(orders: Orders, working: np.ndarray, n_work: int, mark: np.ndarray, triggered: np.ndarray,
                        prices: Prices, t: int, cand: Candidates, n_c: int, collar: bool
                        ) -> int:  # pragma: no cover - compiled
    """The working orders (limit, stop, stop-limit, trailing stop) that trade on bar t at their rule's price,
    appended to `cand`; moves trailing stops' marks and stop-limits' triggers as the bar passes. With `collar` a
    buy stop is the stop-limit Alpaca makes of it (its limit: buy_stop_limit)."""
    for w in range(n_work):
        r = working[w]
        s = orders.symbol[r]
        o, hi, lo = prices.open[t, s], prices.high[t, s], prices.low[t, s]
        if np.isnan(o):
            continue
        buy = orders.buy[r]
        kind = orders.kind[r]
        cap = np.nan
        if kind == LIMIT:
            px, cap = limit_fill(buy, o, hi, lo, orders.limit[r]), orders.limit[r]
        elif kind == STOP and not (collar and buy):
            px = stop_fill(buy, o, hi, lo, orders.stop[r])
        elif kind in (STOP, STOP_LIMIT):  # a stop-limit, or a buy stop collared into one
            cap = orders.limit[r] if kind == STOP_LIMIT else buy_stop_limit(orders.stop[r])
            if triggered[r]:
                px = limit_fill(buy, o, hi, lo, cap)
            else:
                hit, px = stop_limit_fill(buy, o, hi, lo, orders.stop[r], cap)
                triggered[r] = hit
        else:
            px, m = trailing_fill(buy, o, hi, lo, mark[r], orders.trail[r], np.nan)
            if np.isnan(px):
                mark[r] = m
        if not np.isnan(px):
            cand.row[n_c] = r
            cand.ref[n_c] = px
            cand.cap[n_c] = cap
            cand.leg[n_c] = NO_EXIT
            n_c += 1
    return n_c


@njit(cache=True, **NO_REFCOUNTS)
def _set_exits(ex: Exits, orders: Orders, r: int, s: int, leg: int, was: float, now: float, mark: float,
               live_from: int, n: int) -> int:  # pragma: no cover - compiled
    """The working exits after order r (`leg`: its exit's fill) moved symbol s's position from `was` to `now`,
    as the paper executor keeps them at the broker: a leg's fill ends its entry's exits, and all of the
    symbol's when it flattens the position; an order that reduces or flips the position ends all of the
    symbol's (the executor cancels them before sending it); one that opens, adds to or flips it with exits of
    its own sets them for the shares it opened (a flip's: those past zero, the executor's rest order, which
    carries them) (a trailing mark starting at `mark`). n: the rows with exits working, before and (returned)
    after."""
    if leg != NO_EXIT:
        return _end_exits(ex, orders, n, r, s if now == 0.0 else -1)
    flips = now * was < 0.0
    if was != 0.0 and (now - was) * was < 0.0:
        n = _end_exits(ex, orders, n, -1, s)
        if not flips:  # reduced or closed: it opens nothing
            return n
    if np.isnan(orders.take_profit[r]) and np.isnan(orders.stop_loss[r]) and np.isnan(exit_trail(orders, r)):
        return n
    ex.qty[r] = abs(now) if flips else abs(now - was)
    ex.mark[r] = mark
    ex.live_from[r] = live_from
    ex.rows[n] = r
    return n + 1


@njit(cache=True, **NO_REFCOUNTS)
def _end_exits(ex: Exits, orders: Orders, n: int, row: int, s: int) -> int:  # pragma: no cover - compiled
    """The exits of row `row` and of every row of symbol s end (-1: none); the rest keep their order."""
    kept = 0
    for h in range(n):
        r = ex.rows[h]
        if r == row or orders.symbol[r] == s:
            ex.qty[r] = 0.0
        else:
            ex.rows[kept] = r
            kept += 1
    return kept


# simulate's scalars between calls, in Sim.ints: the next bar to run, the next entry of `live` to go live, the
# entries of `live` in use, symbols held, fills made, working orders, positions with exits, and whether the last
# call paused at a bar where something changed.
I_T, I_K0, I_LIVE, I_HELD, I_FILLS, I_WORK, I_EXITS, I_PAUSED = range(8)


class Sim(NamedTuple):
    """simulate's state, in arrays, so that it can run a stretch of bars and resume later (the event-driven
    mode runs it a bar or a few at a time, adding orders between calls): the scalars (I_* above), cash, per
    symbol the position, the held set (see _hold) and the credit its exits left (see step), per order row the
    exits its fill opened, a trailing mark and a stop-limit's trigger, the working orders, the fills so far and
    scratch space. Sized for `capacity` order rows (fills: two per row); a `plain` run has no per-row or exit
    state."""

    ints: np.ndarray
    cash: np.ndarray
    pos: np.ndarray
    held: np.ndarray
    slot: np.ndarray
    credit: np.ndarray
    ex: Exits
    mark: np.ndarray
    triggered: np.ndarray
    working: np.ndarray
    fills: Fills
    cand: Candidates
    fresh: np.ndarray


@njit(cache=True)
def sim_start(n_s: int, capacity: int, plain: bool, cash: float) -> Sim:  # pragma: no cover - compiled
    """A flat account with `cash` before the first bar, room for `capacity` order rows."""
    m = 2 * capacity  # an order fills once, and so may one exit it sets
    nx = 0 if plain else n_s
    n_rows = 0 if plain else capacity
    fills = Fills(np.empty(m, dtype=np.int64), np.empty(m, dtype=np.int64), np.empty(m, dtype=np.int64),
                  np.empty(m, dtype=np.int64), np.empty(m, dtype=np.bool_), np.empty(m), np.empty(m), np.empty(m),
                  np.empty(m, dtype=np.int8))  # fmt: skip
    ex = Exits(np.zeros(n_rows), np.full(n_rows, np.nan), np.zeros(n_rows, dtype=np.int64),
               np.empty(n_rows, dtype=np.int64))
    c = 2 * capacity  # a row trades once as an order, once as an exit
    cand = Candidates(np.empty(c, dtype=np.int64), np.empty(c), np.empty(c), np.empty(c, dtype=np.int8))
    return Sim(np.zeros(8, dtype=np.int64), np.full(1, cash), np.zeros(n_s), np.zeros(n_s, dtype=np.int64),
               np.full(n_s, -1, dtype=np.int64), np.zeros(nx), ex, np.full(n_rows, np.nan),
               np.zeros(n_rows, dtype=np.bool_), np.empty(capacity, dtype=np.int64), fills, cand,
               np.empty(n_rows, dtype=np.int64))  # fmt: skip


@njit(cache=True, error_model="numpy")
def simulate(prices: Prices, orders: Orders, rules: Rules) -> Fills:  # pragma: no cover - compiled
    """Fill the orders bar by bar, all bars in one call (see step); `mark` values the bars and `round_trips`
    matches the trades afterwards, both from the fills. The orders' status is updated in place: a gtc order
    still working at the end of the data is OPEN."""
    n = orders.live.shape[0]
    # room for every order row, not only the live ones: the per-row state (mark, triggered) is indexed by row
    sim = sim_start(prices.close.shape[1], orders.status.shape[0], orders.plain, rules.cash)
    sim.ints[I_LIVE] = n
    step(prices, orders, rules, sim, prices.close.shape[0], False, 0)
    return sim_end(orders, sim)


@njit(cache=True, error_model="numpy")
def simulate_canceling(prices: Prices, orders: Orders, rules: Rules, rows: np.ndarray, bars: np.ndarray) -> Fills:
    # pragma: no cover - compiled
    """simulate, with order rows[i] canceled after bar bars[i] (bars ascending; cancel_row): a signals file's
    cancels, as the event run applies them."""
    sim = sim_start(prices.close.shape[1], orders.status.shape[0], orders.plain, rules.cash)
    sim.ints[I_LIVE] = orders.live.shape[0]
    for i in range(rows.shape[0]):
        step(prices, orders, rules, sim, bars[i] + 1, False, 0)
        cancel_row(orders, sim, rows[i])
    step(prices, orders, rules, sim, prices.close.shape[0], False, 0)
    return sim_end(orders, sim)


@njit(cache=True, **NO_REFCOUNTS)
def cancel_row(orders: Orders, sim: Sim, r: int) -> bool:  # pragma: no cover - compiled
    """A cancel of order row r (a CANCEL naming it, or the live loop's stop): what of it still works ends, as
    at the broker: the order itself while it is open (CANCELED), else the exits its fill opened (a bracket's
    legs: the executor cancels them). Whether anything ended."""
    if orders.status[r] == PENDING:
        orders.status[r] = CANCELED
        return True
    if r < sim.ex.qty.shape[0] and sim.ex.qty[r] > 0.0:
        sim.ints[I_EXITS] = _end_exits(sim.ex, orders, sim.ints[I_EXITS], r, -1)
        return True
    return False


@njit(cache=True)
def sim_end(orders: Orders, sim: Sim) -> Fills:  # pragma: no cover - compiled
    """After the last bar: the working gtc orders are OPEN, those still waiting for a bar of their symbol (an
    event run's, decided on its last bar: live past the data) EXPIRED; the fills made."""
    for w in range(sim.ints[I_WORK]):
        orders.status[sim.working[w]] = OPEN
    for k in range(sim.ints[I_K0], sim.ints[I_LIVE]):
        if orders.status[orders.live[k]] == PENDING:  # not canceled meanwhile
            orders.status[orders.live[k]] = EXPIRED
    n_f = sim.ints[I_FILLS]
    f = sim.fills
    return Fills(f.row[:n_f], f.bar[:n_f], f.time[:n_f], f.symbol[:n_f], f.buy[:n_f], f.qty[:n_f], f.price[:n_f],
                 f.commission[:n_f], f.leg[:n_f])  # fmt: skip


@njit(cache=True, error_model="numpy", **NO_REFCOUNTS)
def step(prices: Prices, orders: Orders, rules: Rules, sim: Sim, t_stop: int, pause: bool, budget: int) -> None:
    # pragma: no cover - compiled
    """Run the bars from sim's next bar up to t_stop (exclusive), or with `pause` only up to and including the
    first bar where something a strategy can see changed (a fill, or an order's status) or `budget` bars (> 0)
    after it started, not counting the bars skipped while nothing works; then record where it stopped in sim.
    Orders are those of live[k0:n_live] (in execution order) and the working ones.

    On each bar where something can trade, in two phases: the market orders going live there, at its open (at the
    signal bar's close with `at_close`, after the other phase); and the working exits (each entry's own, for its
    shares: _set_exits) and the working orders (limit, stop, stop-limit, trailing stop), at the prices
    marketboss.orders' rules give on its open, high and low. Each phase's trades go through one order step, those
    that reduce a position first, then the rest, so that sales pay for purchases. A day order not filled by the end
    of the session it went live in ends (DAY_ENDED). Exits set by an order filled at the bar's open are live on that
    bar (the whole bar follows the fill), others from the next bar; a working order against the position ends the
    symbol's exits as it goes live. The shares an exit traded count toward the
    symbol's next quantity order on the same side (it is that much smaller, and SKIPPED when nothing is left), as
    the paper executor does. Under `rules.long_only` an order's sale is cut to the shares held when it fills (held_sale:
    never a short), and one that finds none does not trade (LONG_ONLY). A sale that would sell a fraction of a
    share short does not trade (FRACTIONAL_SHORT: the broker refuses it), a flip's fills as its close alone (its
    rest, sent apart by the executor, is refused). A resting order (not market) that would take
    the position through zero fills as its close alone, as the paper executor sends it (Alpaca takes no resting
    order through zero: a market flip goes as two orders there, and here as one). Bars where nothing works are
    skipped. A CANCELED order does not trade and stops working."""
    times, close = prices.times, prices.close
    live, exec_t, status = orders.live, orders.bar, orders.status
    o_s, o_buy, o_qty, o_weight, kind, plain = (orders.symbol, orders.buy, orders.qty, orders.weight, orders.kind,
                                                orders.plain)  # fmt: skip
    ints = sim.ints
    t, k0, n, n_held, n_f = ints[I_T], ints[I_K0], ints[I_LIVE], ints[I_HELD], ints[I_FILLS]
    n_work, n_exits = ints[I_WORK], ints[I_EXITS]
    n_t = close.shape[0]
    at_close = rules.at_close
    refs = close if at_close else prices.open
    cash = sim.cash[0]
    pos, held, slot, credit, ex, mark, triggered, working, fresh = (sim.pos, sim.held, sim.slot, sim.credit, sim.ex,
                                                                     sim.mark, sim.triggered, sim.working, sim.fresh)
    f_row, f_bar, f_time, f_s, f_buy, f_qty, f_price, f_comm, f_leg = sim.fills
    cand = sim.cand
    c_row, c_ref, c_cap, c_leg = cand
    paused = False
    if t_stop > n_t:
        t_stop = n_t
    worked = 0  # the bars counted against the budget
    limit = budget if pause and budget > 0 else n_t + 1
    while True:
        if n_work == 0 and n_exits == 0:  # nothing working: on to the next bar an order goes live
            nxt = exec_t[live[k0]] if k0 < n else t_stop
            if nxt >= t_stop:
                if t < t_stop:  # the bars before t_stop: none trades
                    t = t_stop
                break
            if nxt > t:
                t = nxt
        elif n_work == 0:  # only exits working: on to the first bar one may trade (or an order goes live)
            nxt = exec_t[live[k0]] if k0 < n else t_stop
            end = nxt if nxt < t_stop else t_stop
            if limit - worked < end - t:  # the bars the budget has left
                end = t + (limit - worked)
            t_was = t
            t = _quiet_until(ex, orders, n_exits, prices, t, end)
            worked += t - t_was
        if t >= t_stop:
            break
        changed = False
        k1 = k0
        while k1 < n and exec_t[live[k1]] == t:
            k1 += 1
        if not plain:  # the orders that start working here
            for k in range(k0, k1):
                r = live[k]
                if kind[r] != MARKET:
                    working[n_work] = r
                    n_work += 1
                    if kind[r] == TRAILING_STOP:
                        mark[r] = last_close(close, t, o_s[r])
                    p = pos[o_s[r]]
                    if n_exits > 0 and p != 0.0 and (p > 0.0) != o_buy[r] and status[r] == PENDING:
                        # against the position: the symbol's exits end as it goes live, not when it fills (the
                        # executor cancels them before sending it: Alpaca's legs hold the shares it would sell)
                        n_exits = _end_exits(ex, orders, n_exits, -1, o_s[r])
        for phase in range(2):
            market = (phase == 0) != at_close
            n_c = 0
            if market:
                for k in range(k0, k1):
                    r = live[k]
                    if plain or kind[r] == MARKET:
                        c_row[n_c] = r
                        c_ref[n_c] = refs[t, o_s[r]]
                        c_cap[n_c] = np.nan
                        c_leg[n_c] = NO_EXIT
                        n_c += 1
            else:
                if n_exits > 0:
                    n_c = _exit_candidates(ex, orders, ex.rows, n_exits, prices, t, cand, n_c)
                if n_work > 0:
                    n_c = _working_candidates(orders, working, n_work, mark, triggered, prices, t, cand, n_c,
                                              rules.buy_stop_collar)
            n_fresh = 0
            while True:
                # The order step: each candidate sized, filled and accounted, reductions first.
                for increases in (False, True):
                    for c in range(n_c):
                        r, leg = c_row[c], c_leg[c]
                        if leg < 0 or (leg == NO_EXIT and status[r] != PENDING):
                            continue
                        s = o_s[r]
                        p = pos[s]
                        ref = c_ref[c]
                        if leg != NO_EXIT:
                            if ex.qty[r] == 0.0:  # an earlier trade this bar ended its exits
                                c_leg[c] = -1
                                continue
                            q = fmin(ex.qty[r], abs(p))  # its entry's shares (all of them while it works)
                            if o_buy[r]:
                                q = -q
                        else:
                            side = 1.0 if o_buy[r] else -1.0
                            if not np.isnan(o_qty[r]):
                                q = o_qty[r] * side
                                if not plain and credit[s] * q > 0.0:  # an exit already traded part of it
                                    q = side * fmax(abs(q) - abs(credit[s]), 0.0)
                                    if q == 0.0:
                                        status[r] = SKIPPED
                                        changed = True
                                        credit[s] = 0.0
                                        continue
                            else:
                                free = free_cash(cash, shorts_at(pos, held, n_held, refs, close, t, s))
                                q, why = weight_trade(o_weight[r], equity_at(cash, pos, held, n_held, refs, close, t),
                                                      free, ref, side, p, rules)  # fmt: skip
                                if why != PENDING:
                                    if why == REJECTED_CASH and not increases:
                                        continue  # a purchase waits for the second pass: the bar's sales pay it
                                    status[r] = why
                                    changed = True
                                    continue
                            if rules.long_only and q < 0.0:  # a sale of at most the shares held now
                                q = held_sale(q, p)
                                if q == 0.0:
                                    status[r] = LONG_ONLY
                                    changed = True
                                    continue
                            if not plain and kind[r] != MARKET and (p + q) * p < 0.0:
                                q = -p  # a resting order through zero: the position's close, as the executor sends it
                            if abs(p + q) >= abs(p) and not increases:
                                continue  # not a reduction: the second pass
                            if q < 0.0 and p + q < 0.0 and not whole(fmin(-q, -(p + q))):  # sold short: a fraction
                                if p <= 0.0:
                                    status[r] = FRACTIONAL_SHORT
                                    changed = True
                                    continue
                                q = -p  # a flip: its close fills, its rest refused, as the executor's two orders do
                        c_leg[c] = -1
                        collateral = np.nan  # a reduction
                        if abs(p + q) > abs(p) or p * (p + q) < 0.0:  # it grows a position or opens one: the
                            collateral = COLLATERAL * (shorts_at(pos, held, n_held, refs, close, t, s)  # shorts
                                                       + fmax(-(p + q), 0.0) * ref)  # after it hold collateral
                        fp, comm, new_cash, fills = order_fill(cash, q, ref, c_cap[c], rules, collateral)
                        if not fills:
                            if leg == NO_EXIT:
                                status[r] = REJECTED_CASH
                                changed = True
                            continue
                        cash = new_cash
                        aq = abs(q)
                        f_row[n_f] = r
                        f_bar[n_f] = t
                        f_time[n_f] = times[t]
                        f_s[n_f] = s
                        f_buy[n_f] = q > 0
                        f_qty[n_f] = aq
                        f_price[n_f] = fp
                        f_comm[n_f] = comm
                        f_leg[n_f] = leg
                        n_f += 1
                        changed = True
                        n_held = _hold(pos, held, slot, n_held, s, q, aq)
                        if leg == NO_EXIT:
                            status[r] = FILLED
                        if not plain:
                            credit[s] = credit[s] + q if leg != NO_EXIT else 0.0
                            # exits are live on the fill's bar when it filled at the open (the whole bar follows),
                            # a trailing mark starting at the fill; else from the next bar, the mark at the close
                            # (where the executor places them, once the bar shows the fill: a trailing stop's
                            # high-water mark at the broker starts at the price then)
                            at_open = not at_close and (market or ref == prices.open[t, s])
                            n_exits = _set_exits(ex, orders, r, s, leg, p, pos[s], ref if at_open else close[t, s],
                                                 t if at_open else t + 1, n_exits)  # fmt: skip
                            if at_open and not market and leg == NO_EXIT and ex.qty[r] > 0.0:
                                fresh[n_fresh] = r
                                n_fresh += 1
                if n_fresh == 0:
                    break
                # exits a working order set at the open: tested on this bar too, after it
                n_c = _exit_candidates(ex, orders, fresh, n_fresh, prices, t, cand, 0)
                n_fresh = 0
            if not market and n_work > 0:  # the working orders that filled, ended or go on
                kept = 0
                for w in range(n_work):
                    r = working[w]
                    if status[r] == PENDING and not orders.gtc[r] and t >= prices.session_end[exec_t[r]]:
                        status[r] = DAY_ENDED
                        changed = True
                    if status[r] == PENDING:
                        working[kept] = r
                        kept += 1
                n_work = kept
        k0 = k1
        t += 1
        if pause and changed:
            paused = True
            break
        worked += 1
        if worked >= limit:
            break
    ints[I_T], ints[I_K0], ints[I_HELD], ints[I_FILLS] = t, k0, n_held, n_f
    ints[I_WORK], ints[I_EXITS] = n_work, n_exits
    ints[I_PAUSED] = paused
    sim.cash[0] = cash


@njit(cache=True, error_model="numpy")
def round_trips(prices: Prices, fills: Fills) -> RoundTrips:  # pragma: no cover - compiled
    """The round trips of simulate's fills, matched FIFO per symbol (a lot per
    opening fill), at most two per fill and one more: in the order they close; those still open at the end
    come last, marked at the last close without an exit commission."""
    times, close = prices.times, prices.close
    f_row, f_bar, f_time, f_s, f_buy, f_qty, f_price, f_comm = fills[:8]
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
        t = f_bar[k]
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
def mark(close: np.ndarray, fills: Fills, cash0: float, out: Equity) -> tuple[int, Any]:
    # pragma: no cover - compiled
    """Mark every bar at its close, replaying simulate's fills, into `out`
    (every element written). Returns (bars with a position, the return statistics of the equity curve:
    returns_finish).

    Between two fill bars the held set cannot change, so the bars are marked a stretch at a time: flat
    stretches are plain stores (their return statistics in O(1)), others walk the held set. A held symbol
    without a bar keeps its last close."""
    f_row, f_bar, _, f_s, f_buy, f_qty, f_price, f_comm = fills[:8]
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
        while k < n_f and f_bar[k] == t:
            aq = f_qty[k]
            q = aq if f_buy[k] else -aq
            cash = cash_after(cash, q, f_price[k], f_comm[k])
            n_held = _hold(pos, held, slot, n_held, f_s[k], q, aq)
            k += 1
        end = f_bar[k] if k < n_f else n_t  # the next fill bar: the held set is fixed until then
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
