"""The event-driven run: an EventStrategy's on_bar once per bar, its orders traded by the backtest kernel itself
(nb.step: the same fill and trigger rules, costs and sizing as every backtest), then the same result tables.

The kernel runs between the strategy's calls, on its own state (nb.Sim). Calling it on every bar would cost
more than the strategy: in plain Python it runs ahead instead, up to the first bar where something the strategy
can see changes (a fill, an order's status) or its budget of bars runs out (MIN_RUN_AHEAD), and the strategy is
shown the account as it was before that bar for the bars in between (nothing changed there). When the strategy
places or cancels an order on a bar the kernel has already run past, the kernel goes back to its state before its
run and replays up to that bar, then takes the order: what it computed past that bar did not know the order. The
compiled path does the same inside one compiled loop.

Orders decided on bar t go live on the symbol's next bar, as scheduled for signals (nb.next_bar); `--fill close`
(filling on the decision bar itself) is refused.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, cast

import numpy as np
import polars as pl
from numba import cfunc, njit, typeof, types
from numba.core import cgutils, imputils
from numba.core.dispatcher import Dispatcher
from numba.core.errors import NumbaError
from numba.core.runtime.nrtdynmod import _meminfo_struct_type
from numba.experimental import structref
from numba.extending import intrinsic
from pydantic import ValidationError

from marketboss.backtest import nb
from marketboss.backtest.arrays import CANCELED
from marketboss.backtest.costs import BacktestConfig, FillMode
from marketboss.backtest.engine import BacktestResult, Outcome, outcome, pick, result, strategy_config
from marketboss.backtest.loop_cache import cache_loop
from marketboss.data.market import Market, SymbolBars
from marketboss.data.rules import shown
from marketboss.errors import InputError, MarketBossError
from marketboss.signals import (
    ACTION_CODES,
    CANCELS,
    ORDER_TYPE_NAMES,
    SIGNAL_SCHEMA,
    OrderArrays,
    Signal,
    SignalRows,
    epoch_us,
    id_key,
    rules_pass,
    signal_ids,
)
from marketboss.signals.nb import tick
from marketboss.strategies import events as ev
from marketboss.strategies.base import StrategyError, real_numbers
from marketboss.strategies.causal import CHECKED_SYMBOLS, cuts, head, same_values
from marketboss.strategies.plugins import OWN_CODE, alias_module

_KIND = {name: code for code, name in enumerate(ORDER_TYPE_NAMES)}


#: The budget of a run ahead (advance), in bars passed while orders work, at its least and at the start: what the
#: kernel ran past the bar where the strategy next places an order is thrown away and run again. Unbounded, a
#: strategy placing an order every few bars while its trailing stops worked ran the kernel to the end of the data
#: each time: 10 symbols x 7,020 minute bars (benchmarks/bench_events.py) took 1.47 s compiled. A run stopped by its
#: budget doubles it, a rewind halves it: long quiet stretches are run in a few calls, a strategy trading often
#: wastes little (that run: 0.049 s with 64 bars at least, 0.031 s with 8, the same with 2; the others alike).
MIN_RUN_AHEAD = 8


#: Order rows a Book starts with (doubled as needed): room for a run's few hundred orders (growing from 64 took
#: 0.16 ms of a compiled 188-order run's 1.4 ms loop).
START_ROWS = 256


@structref.register
class _KernelStateType(types.StructRef):
    def preprocess_fields(self, fields: Any) -> Any:
        return tuple((name, types.unliteral(t)) for name, t in fields)


class KernelState(structref.StructRefProxy):
    """A Book's arrays as one argument of the kernel's calls (advance, take): a pointer. Passed as ~60 arrays,
    each plain-loop call unboxed them all from Python, and the compiled loop spent ~1 s of its compilation, in
    every process, on taking and passing them."""

    prices: nb.Prices
    orders: nb.Orders
    sim: nb.Sim
    ran_to: np.ndarray
    decided: np.ndarray
    canceled_at: np.ndarray
    n_rows: np.ndarray
    fault: np.ndarray


_STATE_FIELDS = ("prices", "orders", "rules", "sim", "snap", "ran_to", "decided", "canceled_at", "n_rows", "full",
                 "fault")
structref.define_proxy(KernelState, _KernelStateType, list(_STATE_FIELDS))


@njit(cache=True)
def kernel_state(prices: nb.Prices, orders: nb.Orders, rules: nb.Rules, sim: nb.Sim, snap: Snap, ran_to: np.ndarray,
                 decided: np.ndarray, canceled_at: np.ndarray, n_rows: np.ndarray, full: np.ndarray,
                 fault: np.ndarray) -> KernelState:  # pragma: no cover - compiled
    """A Book's KernelState (compiled and cached for each kind of prices, as the kernel's calls)."""
    return KernelState(prices, orders, rules, sim, snap, ran_to, decided, canceled_at, n_rows, full, fault)


@intrinsic
def _fields_of(typingctx: Any, state: Any) -> Any:  # pragma: no cover - compiled
    """A KernelState's fields as a tuple (in _STATE_FIELDS' order). A structref's attributes need numba's
    reference counting, which the kernel's calls go without (nb.NO_REFCOUNTS): read here from the payload's
    address, as numba's NRT_MemInfo_data_fast does, and counted only where references are counted."""
    names = [name for name, _ in state._fields]
    out = types.Tuple([t for _, t in state._fields])

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        ref = cgutils.create_struct_proxy(sig.args[0])(context, builder, value=args[0])
        meminfo = builder.bitcast(ref.meminfo, _meminfo_struct_type.as_pointer())
        data = builder.load(cgutils.gep(builder, meminfo, 0, 3))  # MemInfo's data pointer
        payload = sig.args[0].get_data_type()
        ptr = builder.bitcast(data, context.data_model_manager[payload].get_value_type().as_pointer())
        fields = cgutils.create_struct_proxy(payload)(context, builder, ref=ptr)
        tup = context.make_tuple(builder, sig.return_type, [getattr(fields, n) for n in names])
        return imputils.impl_ret_borrowed(context, builder, sig.return_type, tup)  # a reference of its own

    return out(state), codegen


_StateFields = tuple[nb.Prices, nb.Orders, nb.Rules, nb.Sim, "Snap", np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                     np.ndarray, np.ndarray]
_fields = cast(Callable[[KernelState], _StateFields], _fields_of)


class Book:
    """The orders placed so far, as the kernel reads them (nb.Orders, capacity-sized, rows in placement order),
    the decision bar of each, and the kernel's state (nb.Sim); both grow together."""

    def __init__(self, market: Market, rules: nb.Rules, capacity: int | None = None):
        capacity = capacity or START_ROWS
        self.market = market
        self.rules = rules
        self.prices = nb.Prices(*map(np.ascontiguousarray, (market.times, market.open, market.high, market.low,
                                                            market.close, market.session_end)))  # see KernelCalls
        self.full = np.array([market.is_full(s) for s in range(market.n_symbols)])
        self.n_rows = np.zeros(1, dtype=np.int64)
        n = capacity
        self.orders = nb.Orders(np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=np.int64),
                                np.zeros(n, dtype=np.bool_), np.full(n, np.nan), np.zeros(n),
                                np.zeros(n, dtype=np.int8), np.zeros(n, dtype=np.int64), False,
                                np.zeros(n, dtype=np.int8), np.full(n, np.nan), np.full(n, np.nan),
                                np.full(n, np.nan), np.zeros(n, dtype=np.bool_), np.full(n, np.nan),
                                np.full(n, np.nan))  # fmt: skip
        self.decided = np.zeros(capacity, dtype=np.int64)
        self.canceled_at = np.full(capacity, -1, dtype=np.int64)  # the bar an order was canceled on (-1: not)
        self.sim = nb.sim_start(market.n_symbols, capacity, False, rules.cash)
        self.snap = new_snap(market.n_symbols, capacity)
        self.ran_to = np.array([0, MIN_RUN_AHEAD], dtype=np.int64)  # the kernel ran the bars before [0]; [1]: budget
        self.fault = np.full(3, -1, dtype=np.int64)  # an order row add_rows refused: its bar, row in out, column
        self.outside: set[int] = set()  # the rows canceled from outside (run_events' `canceled`)
        self._state: KernelState | None = None

    @property
    def state(self) -> KernelState:
        """The arrays as the kernel's calls take them (made again when reserve grows them)."""
        if self._state is None:
            self._state = kernel_state(self.prices, self.orders, self.rules, self.sim, self.snap, self.ran_to,
                                       self.decided, self.canceled_at, self.n_rows, self.full, self.fault)  # fmt: skip
        return self._state

    @property
    def capacity(self) -> int:
        return int(self.decided.shape[0])

    def reserve(self, more: int) -> None:
        """Room for `more` rows: every per-row array doubled (copied) as needed."""
        need = int(self.n_rows[0]) + more
        if need <= self.capacity:
            return
        cap = max(need, 2 * self.capacity)
        self._state = None
        self.orders = nb.Orders._make(_grown(a, cap) if isinstance(a, np.ndarray) else a for a in self.orders)
        self.decided = _grown(self.decided, cap)
        self.canceled_at = np.concatenate([self.canceled_at, np.full(cap - self.canceled_at.shape[0], -1)])
        s = self.sim
        self.sim = s._replace(mark=_grown(s.mark, cap), triggered=_grown(s.triggered, cap),
                              working=_grown(s.working, cap), fills=nb.Fills(*(_grown(a, 2 * cap) for a in s.fills)),
                              ex=nb.Exits(*(_grown(a, cap) for a in s.ex)), fresh=_grown(s.fresh, cap),
                              cand=nb.Candidates(*(_grown(a, 2 * cap) for a in s.cand)))  # fmt: skip
        p = self.snap
        self.snap = p._replace(**{f: _grown(getattr(p, f), cap) for f in Snap._fields[6:-1]})  # the per-row ones


def _grown(a: np.ndarray, n: int) -> np.ndarray:
    out = np.empty(n, dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


@njit(cache=True, **nb.NO_REFCOUNTS)
def add_order(orders: nb.Orders, sim: nb.Sim, decided: np.ndarray, n_rows: np.ndarray, close: np.ndarray,
              full: np.ndarray, t: int, s: int, side: float, qty: float, weight: float, kind: int, limit: float,
              stop: float, trail: float, gtc: bool, tp: float, sl: float) -> None:  # pragma: no cover - compiled
    """Order row n_rows decided at bar t: live on the symbol's next bar, placed among the orders not yet live in
    execution order (by that bar, then row), as nb.schedule places signals; its prices on the grid orders take (a
    compiled on_bar's as ctx rounds a plain one's). With no next bar in the data it waits for one past the last
    (EXPIRED at the end, nb.sim_end): open until then, as it is where the symbol trades again later (expired at
    once, it left the open orders at the next pause: whether the symbol had another bar, seen before its time)."""
    r = n_rows[0]
    n_rows[0] = r + 1
    decided[r] = t
    orders.symbol[r], orders.buy[r], orders.qty[r], orders.weight[r] = s, side > 0, qty, weight
    orders.kind[r], orders.limit[r], orders.stop[r], orders.trail[r] = kind, tick(limit), tick(stop), trail
    orders.gtc[r], orders.take_profit[r], orders.stop_loss[r] = gtc, tick(tp), tick(sl)
    sim.mark[r] = np.nan
    sim.triggered[r] = False
    sim.ex.qty[r] = 0.0  # no exits (yet)
    e = nb.next_bar(close, full[s], s, t)
    orders.bar[r] = e
    orders.status[r] = nb.PENDING
    live, ints = orders.live, sim.ints
    j = ints[nb.I_LIVE]
    while j > ints[nb.I_K0] and orders.bar[live[j - 1]] > e:
        live[j] = live[j - 1]
        j -= 1
    live[j] = r
    ints[nb.I_LIVE] += 1


@njit(cache=True, **nb.NO_REFCOUNTS)
def cancel_symbol(orders: nb.Orders, sim: nb.Sim, canceled_at: np.ndarray, s: int, t: int) -> None:
    # pragma: no cover - compiled
    """Cancel symbol s's open orders (s < 0: all) at bar t, the kernel having run bar t: the orders not yet live
    and the working ones, the only ones still open then (not every row: a strategy canceling at each bar made
    the run quadratic in its orders)."""
    ints = sim.ints
    for k in range(ints[nb.I_K0], ints[nb.I_LIVE]):
        _cancel(orders, canceled_at, orders.live[k], s, t)
    for w in range(ints[nb.I_WORK]):
        _cancel(orders, canceled_at, sim.working[w], s, t)


@njit(cache=True, **nb.NO_REFCOUNTS)
def cancel_exits(orders: nb.Orders, sim: nb.Sim, canceled_at: np.ndarray, s: int, t: int) -> None:
    # pragma: no cover - compiled
    """End the exits working on symbol s's position (s < 0: every symbol's) at bar t, the kernel having run bar
    t: nb.cancel_row of each filled order whose exits they are, as ctx.cancel of it (its CANCEL line follows)."""
    for h in range(sim.ints[nb.I_EXITS] - 1, -1, -1):  # from the last: cancel_row moves up the ones after h
        r = sim.ex.rows[h]
        if (s < 0 or orders.symbol[r] == s) and nb.cancel_row(orders, sim, r):
            canceled_at[r] = t


@njit(cache=True, **nb.NO_REFCOUNTS)
def count_open(orders: nb.Orders, sim: nb.Sim, counts: np.ndarray) -> None:  # pragma: no cover - compiled
    """Per symbol, its open orders as ctx.open_orders shows them: those not yet live and the working ones (the
    only ones still open: cancel_symbol)."""
    for s in range(counts.shape[0]):
        counts[s] = 0.0
    ints = sim.ints
    for k in range(ints[nb.I_K0], ints[nb.I_LIVE]):
        _count(orders, orders.live[k], counts)
    for w in range(ints[nb.I_WORK]):
        _count(orders, sim.working[w], counts)


@njit(cache=True, inline="always")
def _count(orders: nb.Orders, r: int, counts: np.ndarray) -> None:  # pragma: no cover - compiled
    if orders.status[r] == nb.PENDING:
        counts[orders.symbol[r]] += 1.0


@njit(cache=True, inline="always")
def _cancel(orders: nb.Orders, canceled_at: np.ndarray, r: int, s: int, t: int) -> None:  # pragma: no cover
    if orders.status[r] == nb.PENDING and (s < 0 or orders.symbol[r] == s):
        orders.status[r] = CANCELED
        canceled_at[r] = t


class Snap(NamedTuple):
    """The kernel state a replay restarts from (see the module's docstring): the scalars, cash, the per-symbol
    arrays, the working orders and working exits, and the rows that can still change (working, with exits
    working, or not yet live): their status, trailing mark, trigger and exits; in `saved` how many rows, working
    orders and working exits were kept."""

    ints: np.ndarray
    cash: np.ndarray
    pos: np.ndarray
    held: np.ndarray
    slot: np.ndarray
    credit: np.ndarray
    working: np.ndarray
    exits: np.ndarray
    rows: np.ndarray
    status: np.ndarray
    mark: np.ndarray
    triggered: np.ndarray
    ex_qty: np.ndarray
    ex_mark: np.ndarray
    ex_from: np.ndarray
    saved: np.ndarray


def new_snap(n_s: int, capacity: int) -> Snap:
    f, i, n = np.empty(n_s), np.empty(n_s, dtype=np.int64), capacity
    return Snap(np.empty(8, dtype=np.int64), np.empty(1), f.copy(), i.copy(), i.copy(), f.copy(),
                np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64),
                np.empty(n, dtype=np.int8), np.empty(n), np.empty(n, dtype=np.bool_), np.empty(n), np.empty(n),
                np.empty(n, dtype=np.int64), np.zeros(3, dtype=np.int64))  # fmt: skip


@njit(cache=True, inline="always")
def _copy(dst: np.ndarray, src: np.ndarray, n: int) -> None:  # pragma: no cover - compiled
    """dst[:n] = src[:n], as a loop: with numba's slice copies a save took 0.50 us (0.35 us so), and each
    function using one compiles the copy's error path anew (3 s of the compiled loop's compilation)."""
    for i in range(n):
        dst[i] = src[i]


@njit(cache=True, inline="always")
def _copy_account(dst: Any, src: Any) -> None:  # pragma: no cover - compiled
    """The scalars, cash and per-symbol arrays a Sim and a Snap both have, from src to dst (either way)."""
    _copy(dst.ints, src.ints, src.ints.shape[0])
    dst.cash[0] = src.cash[0]
    n_s, n_x = src.pos.shape[0], min(src.credit.shape[0], dst.credit.shape[0])  # n_x: 0 in a plain Sim
    _copy(dst.pos, src.pos, n_s)
    _copy(dst.held, src.held, n_s)
    _copy(dst.slot, src.slot, n_s)
    _copy(dst.credit, src.credit, n_x)


@njit(cache=True, inline="always")
def _save_row(snap: Snap, n: int, r: int, sim: nb.Sim, orders: nb.Orders) -> int:  # pragma: no cover - compiled
    """Row r's state that can still change, into the snapshot's n-th place; the next place."""
    snap.rows[n], snap.status[n] = r, orders.status[r]
    snap.mark[n], snap.triggered[n] = sim.mark[r], sim.triggered[r]
    snap.ex_qty[n], snap.ex_mark[n], snap.ex_from[n] = sim.ex.qty[r], sim.ex.mark[r], sim.ex.live_from[r]
    return n + 1


@njit(cache=True, **nb.NO_REFCOUNTS)
def save(sim: nb.Sim, orders: nb.Orders, snap: Snap) -> None:  # pragma: no cover - compiled
    _copy_account(snap, sim)
    ints = sim.ints
    n_work, n_exits = ints[nb.I_WORK], ints[nb.I_EXITS]
    _copy(snap.working, sim.working, n_work)
    _copy(snap.exits, sim.ex.rows, n_exits)
    n = 0
    for k in range(n_work):
        n = _save_row(snap, n, sim.working[k], sim, orders)
    for k in range(n_exits):
        n = _save_row(snap, n, sim.ex.rows[k], sim, orders)
    for k in range(ints[nb.I_K0], ints[nb.I_LIVE]):
        n = _save_row(snap, n, orders.live[k], sim, orders)
    snap.saved[0], snap.saved[1], snap.saved[2] = n, n_work, n_exits


@njit(cache=True, **nb.NO_REFCOUNTS)
def restore(snap: Snap, sim: nb.Sim, orders: nb.Orders) -> None:  # pragma: no cover - compiled
    _copy_account(sim, snap)
    _copy(sim.working, snap.working, snap.saved[1])
    _copy(sim.ex.rows, snap.exits, snap.saved[2])
    ex = sim.ex
    for k in range(snap.saved[0]):
        r = snap.rows[k]
        orders.status[r], sim.mark[r], sim.triggered[r] = snap.status[k], snap.mark[k], snap.triggered[k]
        ex.qty[r], ex.mark[r], ex.live_from[r] = snap.ex_qty[k], snap.ex_mark[k], snap.ex_from[k]


def _indicators(market: Market, strategy: ev.EventStrategy[Any]) -> dict[str, np.ndarray]:
    """The strategy's indicators as (time x symbol) matrices (NaN where a symbol has no bar), each checked to be
    causal as an exposure is (strategies.causal): computed again on the first half and three quarters of the bars
    of the first symbols, they must give the same values there; its market_indicators, as a whole-market model's
    exposures are, on the first half and three quarters of the market."""
    out = _symbol_indicators(market, strategy)
    if type(strategy).market_indicators is ev.EventStrategy.market_indicators:
        return out
    view = market.read_only()
    whole = _market_indicators(view, strategy)
    for n in cuts(market.n_times):
        early = _market_indicators(view.head(n), strategy)
        for name, arr in whole.items():
            if name not in early:
                raise StrategyError(strategy, f"market indicator '{name}' is missing when the market is cut to its "
                                              f"first {n} bars: give every indicator whatever the bars")  # fmt: skip
            if not same_values(early[name], arr[:n]):
                raise StrategyError(strategy, f"market indicator '{name}' looks ahead: its values on the first {n} "
                                              "bars change when later bars are added")  # fmt: skip
    both = out.keys() & whole.keys()
    if both:
        raise StrategyError(strategy, f"indicator '{sorted(both)[0]}' comes from both indicators() and "
                                      "market_indicators(): give each name once")  # fmt: skip
    return out | whole


def _market_indicators(market: Market, strategy: ev.EventStrategy[Any]) -> dict[str, np.ndarray]:
    got = strategy.market_indicators(market)
    if not isinstance(got, dict):
        raise StrategyError(strategy, f"market_indicators returned {shown(got)}: it returns a dict of name -> "
                                      "(time x symbol) array, {} for none")  # fmt: skip
    _named(strategy, got)
    out = {}
    for name, v in got.items():
        arr = _numbers(strategy, f"market indicator {name!r}", v, "a (time x symbol) array of numbers")
        if arr.shape != (market.n_times, market.n_symbols):
            raise StrategyError(strategy, f"market indicator '{name}' has shape {arr.shape}, expected "
                                          f"({market.n_times}, {market.n_symbols}): one value per bar and symbol")
        out[name] = arr
    return out


def _named(strategy: ev.EventStrategy[Any], names: Any) -> None:
    """An indicator's name is a string (ctx.value(1, s) found one named 1, and a missing one's error failed)."""
    bad = next((n for n in names if not isinstance(n, str)), None)
    if bad is not None:
        raise StrategyError(strategy, f"indicator name {bad!r} is a {type(bad).__name__}: name indicators by strings")


def _numbers(strategy: ev.EventStrategy[Any], what: str, v: Any, give: str) -> np.ndarray:
    """An indicator's values as float64; numbers only (no text to parse, no complex numbers to cut to their real
    part)."""
    arr = real_numbers(v)  # (the exposures' rule)
    if arr is None:
        kind = "complex numbers" if np.asarray(v).dtype.kind == "c" else "no numbers"
        raise StrategyError(strategy, f"{what} is a {type(v).__name__} of {kind}: give {give}")
    return arr


def _symbol_indicators(market: Market, strategy: ev.EventStrategy[Any]) -> dict[str, np.ndarray]:
    """indicators(bars) of each symbol, into (time x symbol) matrices, checked at the cuts of CHECKED_SYMBOLS."""
    out: dict[str, np.ndarray] = {}
    for s in range(market.n_symbols):
        bars = market.symbol_bars(s)
        values = _indicators_of(strategy, bars)
        checked = values and s < CHECKED_SYMBOLS
        early = {n: _indicators_of(strategy, head(bars, n)) for n in cuts(len(bars))} if checked else {}
        _named(strategy, values)
        for name, v in values.items():
            arr = _numbers(strategy, f"indicator {name!r}", v, "an array of one number per bar")
            if arr.shape != (len(bars),):
                raise StrategyError(strategy, f"indicator '{name}' has shape {arr.shape}, expected ({len(bars)},), "
                                              "one value per bar")  # fmt: skip
            for n, got in early.items():
                if not same_values(np.asarray(got.get(name, np.nan), dtype=np.float64), arr[:n]):
                    raise StrategyError(strategy, f"indicator '{name}' looks ahead: its values on the first {n} bars "
                                                  f"of {bars.symbol} change when later bars are added")  # fmt: skip
            if market.n_symbols == 1 and len(bars) == market.n_times:  # the matrix already: a view, no copy
                out[name] = arr[:, np.newaxis]
                continue
            into = out.get(name)
            if into is None:  # not setdefault: that allocates a (time x symbol) matrix per symbol
                into = out[name] = np.full((market.n_times, market.n_symbols), np.nan)
            into[slice(None) if len(bars) == market.n_times else bars.rows, s] = arr  # every bar: no gather
    return out


def _indicators_of(strategy: ev.EventStrategy[Any], bars: SymbolBars) -> dict[str, Any]:
    got = strategy.indicators(bars)
    if not isinstance(got, dict):
        raise StrategyError(strategy, f"indicators returned {shown(got)}: it returns a dict of name -> array (one "
                                      "value per bar), {} for none")  # fmt: skip
    return got


@njit(cache=True, **nb.NO_REFCOUNTS)
def advance(state: KernelState, t: int) -> None:  # pragma: no cover - compiled
    """Before on_bar at bar t, when the kernel has not run bar t yet: save its state, then run it ahead to the
    first bar where something changes (or the end), or for its budget (ran_to[1], see MIN_RUN_AHEAD)."""
    prices, orders, rules, sim, snap, ran_to, _, _, _, _, _ = _fields(state)
    save(sim, orders, snap)
    n_t = prices.close.shape[0]
    nb.step(prices, orders, rules, sim, n_t, True, ran_to[1])
    ran_to[0] = sim.ints[nb.I_T]
    if not sim.ints[nb.I_PAUSED] and ran_to[0] < n_t:
        ran_to[1] *= 2


@njit(cache=True, **nb.NO_REFCOUNTS)
def rewind(prices: nb.Prices, orders: nb.Orders, rules: nb.Rules, sim: nb.Sim, snap: Snap, ran_to: np.ndarray,
           t: int) -> None:  # pragma: no cover - compiled
    """Before the orders decided at bar t are taken: if the kernel ran past bar t without them, back to its saved
    state and run it again up to bar t; the next run ahead gets half the budget."""
    if ran_to[0] > t + 1:
        ran_to[1] = max(MIN_RUN_AHEAD, ran_to[1] // 2)
        restore(snap, sim, orders)
        nb.step(prices, orders, rules, sim, t + 1, False, 0)
        ran_to[0] = t + 1


@njit(cache=True, inline="always")
def _bad_column(out: np.ndarray, i: int, n_s: int, long_only: bool) -> int:  # pragma: no cover - compiled
    """The column of out's row i that add_rows cannot take (-1: none): an OUT_KIND that is not an order type,
    CANCEL or CANCEL_EXITS, an OUT_SYMBOL that is not a symbol's index (-1 too with a cancel: every symbol's), a
    negative target weight under long_only (ctx.target_weight's error), an order's OUT_SIDE that is not +1 or -1,
    an OUT_GTC that is not 1 (gtc), 0 or NaN (day). Anything else a row says is the signal contract's to judge
    (_check)."""
    kind = out[i, ev.OUT_KIND]
    if not (ev.CANCEL_EXITS <= kind < len(ORDER_TYPE_NAMES) and kind == np.floor(kind)):  # NaN fails both
        return ev.OUT_KIND
    s = out[i, ev.OUT_SYMBOL]
    if not ((-1 if kind < 0 else 0) <= s < n_s and s == np.floor(s)):
        return ev.OUT_SYMBOL
    if kind < 0:
        return -1
    if long_only and np.isnan(out[i, ev.OUT_QTY]) and out[i, ev.OUT_WEIGHT] < 0.0:
        return ev.OUT_WEIGHT
    if out[i, ev.OUT_SIDE] != 1.0 and out[i, ev.OUT_SIDE] != -1.0:
        return ev.OUT_SIDE
    gtc = out[i, ev.OUT_GTC]
    if gtc != 1.0 and gtc != 0.0 and not np.isnan(gtc):
        return ev.OUT_GTC
    return -1


@njit(cache=True, **nb.NO_REFCOUNTS)
def _to_targets(out: np.ndarray, n: int, close: np.ndarray, t: int, position: np.ndarray, equity: float,
                long_only: bool) -> int:  # pragma: no cover - compiled
    """A compiled on_bar's target-weight rows (OUT_QTY NaN, a finite OUT_WEIGHT) as ctx.target_weight places
    them: the side of the move to the target at bar t's close (OUT_SIDE as written is not read), and none when
    there is no move (at the target, or no price at t); a weight of 0 as ctx.close: flat, with or without a
    price. A negative weight under long_only is kept as it is: add_rows refuses it. Returns the rows kept, moved
    up in out."""
    k = 0
    n_s = close.shape[1]
    for i in range(n):
        s, w = out[i, ev.OUT_SYMBOL], out[i, ev.OUT_WEIGHT]
        if (out[i, ev.OUT_KIND] >= 0 and np.isnan(out[i, ev.OUT_QTY]) and np.isfinite(w)
                and 0 <= s < n_s and s == np.floor(s) and not (long_only and w < 0.0)):  # else add_rows refuses it
            held = position[int(s)]
            wanted = -held if w == 0.0 else w * equity / close[t, int(s)] - held
            if not wanted or np.isnan(wanted):
                continue
            out[i, ev.OUT_SIDE] = 1.0 if wanted > 0 else -1.0
        if k != i:
            for c in range(out.shape[1]):  # not out[k, :] = out[i, :]: a slice needs reference counting
                out[k, c] = out[i, c]
        k += 1
    return k


@njit(cache=True, **nb.NO_REFCOUNTS)
def add_rows(orders: nb.Orders, sim: nb.Sim, decided: np.ndarray, canceled_at: np.ndarray, n_rows: np.ndarray,
             close: np.ndarray, full: np.ndarray, fault: np.ndarray, out: np.ndarray, n: int, t: int,
             long_only: bool) -> None:  # fmt: skip
    # pragma: no cover - compiled
    """The orders decided at bar t, out[:n] (a compiled on_bar's rows, ev.OUT_*), into the book (after the
    rewind): both paths take a bar's orders here. A row it cannot take (_bad_column) stops it there, noted in
    `fault` (bar, row, column): the run ends with its error (_run_compiled). A long-only sale in shares is cut to
    the shares held after bar t (nb.held_sale), and none is placed when none are held, as ctx.sell places it: a
    stop meant to protect a buy of the same bar is the buy's bracket."""
    for i in range(n):
        col = _bad_column(out, i, close.shape[1], long_only)
        if col >= 0:
            fault[0], fault[1], fault[2] = t, i, col
            return
        s = int(out[i, ev.OUT_SYMBOL])
        kind = int(out[i, ev.OUT_KIND])
        if kind == ev.CANCEL:
            cancel_symbol(orders, sim, canceled_at, s, t)
            continue
        if kind == ev.CANCEL_EXITS:
            cancel_exits(orders, sim, canceled_at, s, t)
            continue
        qty = out[i, ev.OUT_QTY]
        if long_only and out[i, ev.OUT_SIDE] < 0 and not np.isnan(qty):
            qty = -nb.held_sale(-qty, sim.pos[s])
            if qty == 0.0:
                continue
        add_order(orders, sim, decided, n_rows, close, full, t, s, out[i, ev.OUT_SIDE], qty,
                  out[i, ev.OUT_WEIGHT], kind, out[i, ev.OUT_LIMIT], out[i, ev.OUT_STOP], out[i, ev.OUT_TRAIL],
                  out[i, ev.OUT_GTC] > 0, out[i, ev.OUT_TP], out[i, ev.OUT_SL])  # fmt: skip


@njit(cache=True, **nb.NO_REFCOUNTS)
def take(state: KernelState, out: np.ndarray, n: int, t: int) -> None:  # pragma: no cover - compiled
    """The rewind and add_rows: both paths take a bar's orders in this one call (the compiled loop through
    KernelCalls)."""
    prices, orders, rules, sim, snap, ran_to, decided, canceled_at, n_rows, full, fault = _fields(state)
    rewind(prices, orders, rules, sim, snap, ran_to, t)
    add_rows(orders, sim, decided, canceled_at, n_rows, prices.close, full, fault, out, n, t, rules.long_only)


@njit(cache=True, **nb.NO_REFCOUNTS)
def take_targets(state: KernelState, out: np.ndarray, n: int, t: int) -> None:  # pragma: no cover - compiled
    """take, for a compiled on_bar's rows: its target-weight rows placed as ctx.target_weight places them
    (_to_targets), from the account after bar t (as the rewind leaves it). Here, not in the compiled loop: there,
    this code made the whole loop slower (1M bars: 6 ms to 9), though it runs only at the bars with orders."""
    prices, orders, rules, sim, snap, ran_to, decided, canceled_at, n_rows, full, fault = _fields(state)
    rewind(prices, orders, rules, sim, snap, ran_to, t)
    n = _to_targets(out, n, prices.close, t, sim.pos, _equity(prices.close, t, sim.pos, sim.cash[0]), rules.long_only)
    add_rows(orders, sim, decided, canceled_at, n_rows, prices.close, full, fault, out, n, t, rules.long_only)


@njit(cache=True, inline="always")
def _equity(close: np.ndarray, t: int, pos: np.ndarray, cash: float) -> float:  # pragma: no cover - compiled
    """Cash and the positions at bar t's close (a symbol without a bar there: its last close)."""
    equity = cash
    for s in range(pos.shape[0]):
        if pos[s] != 0.0:
            px = close[t, s]
            equity += pos[s] * (nb.last_close(close, t, s) if np.isnan(px) else px)
    return equity


def _rows(placed: list[ev.PlacedOrder]) -> np.ndarray:
    """Orders placed from Python as a compiled on_bar writes them (ev.OUT_* columns)."""
    out = np.empty((len(placed), ev.N_OUT))
    for row, o in zip(out, placed, strict=True):
        row[ev.OUT_SYMBOL] = o.symbol
        row[ev.OUT_SIDE] = 1.0 if o.buy else -1.0
        row[ev.OUT_QTY] = o.quantity
        row[ev.OUT_WEIGHT] = o.target_weight
        row[ev.OUT_KIND] = _KIND[o.order_type]
        row[ev.OUT_LIMIT] = o.limit_price
        row[ev.OUT_STOP] = o.stop_price
        row[ev.OUT_TRAIL] = o.trail_percent
        row[ev.OUT_GTC] = 1.0 if o.gtc else 0.0
        row[ev.OUT_TP] = o.take_profit
        row[ev.OUT_SL] = o.stop_loss
    return out


def _run_python(book: Book, strategy: ev.EventStrategy[Any], ctx: ev.Context, outside: Mapping[int, set[str]]
                ) -> None:  # fmt: skip
    """on_bar on every bar, the kernel running ahead of it between the bars where the account changes."""
    n_t = book.market.n_times
    on_bar = strategy.on_bar
    kernel = _entry_points(book)
    ran_to = 0  # book.ran_to[0], as a Python int in the loop
    placed, canceled = ctx.placed, ctx.canceled
    for t in range(n_t):
        if ran_to <= t:
            kernel.advance(book.state, t)
            ran_to = int(book.ran_to[0])
        if ran_to == t + 1:  # the kernel's state is the account after bar t
            _show(book, ctx)
        ctx.t = t
        on_bar(ctx)
        if placed or canceled or t in outside:
            book.reserve(len(placed))
            kernel.take(book.state, _rows(placed), len(placed), t)
            ran_to = int(book.ran_to[0])
            rows = [o.row for o in ctx.canceled] + _outside_rows(book, strategy, outside.get(t, set()))
            ctx.open_rows.difference_update(_cancel_at(book, rows, t))
            ctx.placed.clear()
            ctx.canceled.clear()
    nb.step(book.prices, book.orders, book.rules, book.sim, n_t, False, 0)


def _cancel_at(book: Book, rows: list[int], t: int) -> list[int]:
    """The rows canceled after bar t, the kernel having taken the bar (nb.cancel_row: an open order, or a filled
    one's exits); those where something ended."""
    ended = [r for r in rows if nb.cancel_row(book.orders, book.sim, r)]
    book.canceled_at[ended] = t
    return ended


def _outside_rows(book: Book, strategy: ev.EventStrategy[Any], ids: set[str]) -> list[int]:
    """The rows placed so far whose signal ids are these, canceled from outside (noted in book.outside: they were
    sent, so their signals stay, with a CANCEL line, even canceled on the bar that placed them)."""
    n = int(book.n_rows[0])
    if not ids or not n:
        return []
    o = book.orders
    own = _ids(book.market, strategy, book.decided[:n], o.symbol[:n], o.buy[:n])
    rows: list[int] = np.flatnonzero(own.is_in(list(ids)).to_numpy()).tolist()
    book.outside.update(rows)
    return rows


def _show(book: Book, ctx: ev.Context) -> None:
    """The kernel's account into the context: positions, cash, and the open orders still open."""
    ctx.positions_now = book.sim.pos.tolist()
    ctx.cash = float(book.sim.cash[0])
    if ctx.open_rows:
        status = book.orders.status
        ctx.open_rows.difference_update([r for r in ctx.open_rows if status[r] != nb.PENDING])


@intrinsic
def _upto_view(typingctx: Any, arr: Any, end: Any) -> Any:  # pragma: no cover - compiled
    """arr[:end] (a 3-d array: arr[:, :end], its time axis) as a view that does not count references: a compiled
    on_bar is given six such views a bar, and numba's slices (a reference count each) cost more than the rest
    of the loop. The views live only during the call, while the arrays they view are held by the loop."""
    axis = arr.ndim - 2
    view = arr if axis == 0 and arr.layout == "C" else arr.copy(layout="A")  # a C array cut on axis 0 stays C

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        src = context.make_array(sig.args[0])(context, builder, value=args[0])
        out = context.make_array(sig.return_type)(context, builder)
        shape = cgutils.unpack_tuple(builder, src.shape)
        shape[axis] = args[1]
        context.populate_array(out, data=src.data, shape=cgutils.pack_array(builder, shape), strides=src.strides,
                               itemsize=src.itemsize, meminfo=None, parent=None)  # fmt: skip
        return out._getvalue()

    return view(arr, types.intp), codegen


_upto = cast(Callable[[np.ndarray, int], np.ndarray], _upto_view)


def _advance_call(state: KernelState, t: int) -> None:  # pragma: no cover - compiled
    """advance, for KernelCalls (a function of its own: numba caches a C callback apart from a jit function, and
    the two sharing a function would read each other's cache)."""
    advance(state, t)


def _take_call(state: KernelState, out: np.ndarray, n: int, t: int) -> None:  # pragma: no cover - compiled
    """take_targets, for KernelCalls (as _advance_call): the compiled loop's."""
    take_targets(state, out, n, t)


class KernelCalls(NamedTuple):
    """advance and take as a loop calls them: for the plain loop, numba's entry points (_entry_points); for the
    compiled loop, C callbacks (numba.cfunc, kept in numba's disk cache), whose addresses it calls. A compiled
    loop calling them directly links the whole kernel, step included, and every strategy's on_bar makes a new
    loop (compiled in each process: a function argument's type is not the same in the next one), so a
    strategy's first run in a process spent 2.5-5 s compiling; through the callbacks it is about 0.5 s (1.3 s
    when they took the Book's ~60 arrays instead of its KernelState). Their argument types are those of the
    Book: it makes its arrays, C-contiguous and of fixed dtypes, but for the market's prices, so they are made
    once a process for each kind of prices (dtypes, read-only or not) at the first run with them (typing a
    Book's arrays takes 0.5 ms, too long to do per run)."""

    advance: Any
    take: Any


_Kind = tuple[tuple[str, bool], ...]  # the kind of a Book's prices: each array's dtype and whether writable
_KERNEL_CALLS: dict[_Kind, KernelCalls] = {}
_ENTRY_POINTS: dict[_Kind, KernelCalls] = {}


def _prices_kind(book: Book) -> _Kind:
    return tuple((a.dtype.str, bool(a.flags.writeable)) for a in book.prices)


def _signatures(book: Book) -> tuple[Any, Any]:
    """advance's and take's argument types for the Book's state (and an ev.N_OUT-column `out`)."""
    state = typeof(book.state)
    return types.void(state, types.int64), types.void(state, types.float64[:, ::1], types.int64, types.int64)


def _kernel_calls(book: Book) -> KernelCalls:
    kind = _prices_kind(book)
    calls = _KERNEL_CALLS.get(kind)
    if calls is None:
        advance_sig, take_sig = _signatures(book)
        options = {"cache": True, **nb.NO_REFCOUNTS}
        calls = _KERNEL_CALLS[kind] = KernelCalls(cfunc(advance_sig, **options)(_advance_call),
                                                  cfunc(take_sig, **options)(_take_call))  # fmt: skip
    return calls


def _entry_points(book: Book) -> KernelCalls:
    """advance and take as the plain loop calls them: numba's compiled functions for the Book's state, called
    without its dispatch (which typed every call's arrays: 6 us a call, a quarter of a plain run placing an order
    every other bar, when they were ~60 arrays)."""
    kind = _prices_kind(book)
    calls = _ENTRY_POINTS.get(kind)
    if calls is None:
        advance_sig, take_sig = _signatures(book)
        calls = _ENTRY_POINTS[kind] = KernelCalls(advance.compile(advance_sig.args), take.compile(take_sig.args))
    return calls


@njit(cache=True, **nb.NO_REFCOUNTS)
def _cancel_rows(state: KernelState, first: int, t: int) -> None:  # pragma: no cover - compiled
    """The orders placed at bar t from row `first` on, canceled as placed (before trade_from: a warm-up's)."""
    _, orders, _, _, _, _, _, canceled_at, n_rows, _, _ = _fields(state)
    for r in range(first, n_rows[0]):
        _cancel(orders, canceled_at, r, -1, t)


@njit
def _loop(state: KernelState, ind: np.ndarray, on_bar: Any, args: np.ndarray, mem: np.ndarray, out: np.ndarray,
          view_pos: np.ndarray, view_cash: np.ndarray, view_open: np.ndarray, given: tuple[np.ndarray, ...], t0: int,
          t_end: int, trade_from: int, advance_call: Any, take_call: Any) -> int:  # pragma: no cover - compiled
    """The compiled path from bar t0 to t_end: _run_python's loop, on_bar a compiled function, the kernel through
    KernelCalls (orders before bar trade_from canceled as placed, as Context's). Returns the bar to resume at when
    the book has no room for another bar's orders (the number of bars when done; -1 - t when on_bar returned a
    count at bar t out of out's rows, or a row add_rows refused: state.fault, (bar, count, N_OUT) or (bar, row,
    column)). Compiled for each on_bar, and kept on disk beside it (loop_cache: numba's cache could not find it
    again in another process)."""
    prices, orders, sim, ran_to = state.prices, state.orders, state.sim, state.ran_to
    n_rows, decided, fault = state.n_rows, state.decided, state.fault
    close = prices.close
    n_s = close.shape[1]
    counting = len(given) > 0  # an on_bar taking the open orders (known as the loop is compiled)
    for t in range(t0, t_end):
        if n_rows[0] + out.shape[0] > decided.shape[0]:
            return t
        if ran_to[0] <= t:
            advance_call(state, t)
        if ran_to[0] == t + 1:  # the account after bar t (else the kernel ran ahead: nothing seen changed)
            _copy(view_pos, sim.pos, n_s)  # not view_pos[:] = sim.pos: compiling its error path took 3 s
            view_cash[0] = sim.cash[0]
            if counting:
                count_open(orders, sim, view_open)
        equity = _equity(close, t, view_pos, view_cash[0])
        end = t + 1
        n = on_bar(t, _upto(prices.open, end), _upto(prices.high, end), _upto(prices.low, end), _upto(close, end),
                   _upto(ind, end), view_pos, view_cash[0], equity, args, mem, out, *given)
        if n < 0 or n > out.shape[0]:  # more orders than out holds, or no count
            fault[0], fault[1], fault[2] = t, n, ev.N_OUT
            return -1 - t
        if n != np.floor(n):  # a float that is no count (0.5, NaN): it was taken as its whole part
            fault[0], fault[1], fault[2] = t, 0, ev.N_OUT + 1
            return -1 - t
        if n > 0:
            first = n_rows[0]
            take_call(state, out, np.int64(n), t)
            if fault[0] >= 0:
                return -1 - t
            if t < trade_from:
                _cancel_rows(state, first, t)
            if counting:  # the account after bar t again (the rewind), its orders too
                count_open(orders, sim, view_open)
    return t_end


cache_loop(_loop)  # kept on disk for an on_bar kept there (loop_cache)


def _run_compiled(book: Book, spec: ev.CompiledOnBar, indicators: dict[str, np.ndarray], cash: float,
                  strategy: ev.EventStrategy[Any], trade_from: int, outside: Mapping[int, set[str]]) -> None:
    m = book.market
    if not isinstance(spec, ev.CompiledOnBar):
        raise StrategyError(strategy, f"compiled() must return a CompiledOnBar (or None), not a {type(spec).__name__}")
    if not isinstance(spec.on_bar, Dispatcher):
        fn = spec.on_bar
        what = f"{type(fn).__name__} {fn.__qualname__}" if hasattr(fn, "__qualname__") else shown(fn)
        raise StrategyError(strategy, f"compiled on_bar must be a numba @njit function, not the {what}")
    home_name = spec.on_bar.py_func.__module__
    if home_name not in _ALIASED:  # numba's cache of it may name its module otherwise (once a process)
        _ALIASED.add(home_name)
        home = sys.modules.get(home_name)
        if home is not None and getattr(home, "__file__", None):
            alias_module(home, Path(home.__file__).resolve())  # type: ignore[arg-type]
    missing = [n for n in spec.indicators if n not in indicators]
    if missing:
        raise StrategyError(strategy, f"compiled on_bar asks for indicator(s) {', '.join(missing)} that the "
                                      "strategy's indicators lack (indicators() and market_indicators() give: "
                                      f"{', '.join(indicators) or 'none'})")  # fmt: skip
    if len(spec.indicators) == 1:  # a view: no copy of a (time x symbol) matrix
        ind = indicators[spec.indicators[0]][np.newaxis]
    elif spec.indicators:
        ind = np.stack([indicators[n] for n in spec.indicators])
    else:
        ind = np.zeros((0, m.n_times, m.n_symbols))
    mem = spec.new_memory(m.n_symbols)
    rows = spec.rows(m.n_symbols)
    out = np.full((rows, ev.N_OUT), np.nan)
    args = np.asarray(spec.args, dtype=np.float64)
    view_pos, view_cash, view_open = np.zeros(m.n_symbols), np.full(1, cash), np.zeros(m.n_symbols)
    given = (view_open,) if spec.on_bar.py_func.__code__.co_argcount == 13 else ()  # its optional parameter
    calls = _kernel_calls(book)
    t, stops = 0, sorted(outside)
    while t < m.n_times:
        book.reserve(rows)
        end = next((b + 1 for b in stops if b >= t), m.n_times)  # the loop pauses after a bar with cancels
        try:
            t = _loop(book.state, ind, spec.on_bar, args, mem, out, view_pos, view_cash, view_open, given, t, end,
                      trade_from, calls.advance, calls.take)  # fmt: skip
        except NumbaError as exc:  # compiling it with its on_bar: the strategy's function does not compile
            raise StrategyError(strategy, f"compiled on_bar does not compile: {_numba_message(exc, spec.on_bar)}"
                                ) from None
        except Exception as exc:  # raised as it ran, by on_bar: the loop's own code raises nothing
            code = spec.on_bar.py_func.__code__
            raise StrategyError(strategy, f"compiled on_bar raised {type(exc).__name__}: {' '.join(str(exc).split())} "
                                          f"({Path(code.co_filename).name}, in {code.co_name})") from None
        if t < 0 and book.fault[2] == ev.N_OUT and book.fault[1] > 0:
            raise StrategyError(strategy, f"compiled on_bar returned more orders than out holds ({rows}) at bar "
                                          f"{-1 - t}: set CompiledOnBar.max_orders (writing past out's rows corrupts "
                                          "memory)")  # fmt: skip
        if t < 0 and book.fault[2] in (ev.N_OUT, ev.N_OUT + 1):
            what = book.fault[1] if book.fault[2] == ev.N_OUT else "a number that is no whole count"
            raise StrategyError(strategy, f"compiled on_bar returned {what} at bar {-1 - t}: it returns the number of "
                                          "orders it wrote to out (0 for none)")  # fmt: skip
        if t < 0:
            raise StrategyError(strategy, _refused_row(m, out, book.fault))
        if t == end and t - 1 in outside:  # as the plain loop: the kernel back at the bar, then the cancels
            _entry_points(book).take(book.state, out, 0, t - 1)
            _cancel_at(book, _outside_rows(book, strategy, outside[t - 1]), t - 1)
            if given:
                count_open(book.orders, book.sim, view_open)
    nb.step(book.prices, book.orders, book.rules, book.sim, m.n_times, False, 0)


_ALIASED: set[str] = set()  # the modules of compiled on_bars given their other names (alias_module)
_OUT_NAMES = {ev.OUT_SYMBOL: "OUT_SYMBOL", ev.OUT_KIND: "OUT_KIND", ev.OUT_SIDE: "OUT_SIDE", ev.OUT_GTC: "OUT_GTC",
              ev.OUT_WEIGHT: "OUT_WEIGHT"}


def _refused_row(market: Market, out: np.ndarray, fault: np.ndarray) -> str:
    """What add_rows refused (fault: bar, row, column): the bar, the row, the column and its value."""
    t, i, col = (int(x) for x in fault)
    value = float(out[i, col])
    if col == ev.OUT_KIND:
        valid = ", ".join(f"{k} {n}" for k, n in enumerate(ORDER_TYPE_NAMES))
        why = f"not an order type ({valid}) nor CANCEL ({ev.CANCEL}) or CANCEL_EXITS ({ev.CANCEL_EXITS})"
    elif col == ev.OUT_SIDE:
        why = "not +1 (buy) nor -1 (sell)"
    elif col == ev.OUT_GTC:
        why = "not 1 (gtc) nor 0 (day)"
    elif col == ev.OUT_WEIGHT:
        why = "a negative target weight: long_only strategies do not short"
    else:
        why = f"not a symbol's index (0 to {market.n_symbols - 1}; -1 with a cancel: every symbol's)"
    return (f"order row {i} of compiled on_bar at bar {t} ({market.timestamps()[t]}): {_OUT_NAMES[col]} {value:g} "
            f"is {why}")


#: Where numba's message points: `File "<path, relative to the working directory>", line N:`.
_NUMBA_PLACE = re.compile(r'File "([^"\n]+)", line (\d+):')
_NUMBA_BIND = re.compile(r"^Cannot bind .* to signature '(.*)' due to \"(?:TypeError: )?(.*)\"")


def _numba_message(exc: NumbaError, on_bar: Any) -> str:
    """numba's message in short: its first line after the pipeline's `Failed in ...` (with the next when it ends in
    a colon: the signature it found no implementation for), and the first place it names in on_bar's file (else
    outside MarketBoss), as (file, line N)."""
    lines = [x.strip() for x in str(exc).splitlines() if x.strip() and not x.startswith("Failed in ")]
    head = lines[0] if lines else type(exc).__name__
    if head.endswith(":") and len(lines) > 1:
        head = f"{head} {lines[1].removeprefix('>>> ')}"
    code = getattr(on_bar, "py_func", on_bar).__code__
    bind = _NUMBA_BIND.search(head)
    if bind:  # its parameters are not on_bar's: numba lists every argument's type
        head = (f"its parameters {bind[1]} are not on_bar's (t, open_, high, low, close, ind, position, cash, equity, "
                f"args, memory, out[, open_orders]): {bind[2]}")
    own = os.path.realpath(code.co_filename)
    places = [(os.path.realpath(f), n) for f, n in _NUMBA_PLACE.findall(str(exc))]
    where = next((p for p in places if p[0] == own), None) or next(
        (p for p in places if not p[0].startswith(OWN_CODE)), None)
    at = f"{Path(where[0]).name}, line {where[1]}" if where else f"{Path(own).name}, in {code.co_name}"
    return f"{head} ({at})"


def run_events(market: Market, strategy: ev.EventStrategy[Any], config: BacktestConfig | None = None,
               compiled: bool | None = None, *, trade_from: datetime | None = None,
               canceled: Mapping[str, datetime] | None = None) -> tuple[BacktestResult, pl.DataFrame]:
    """Run the event strategy over the market in a backtest account: (result, its signals). `compiled`: use the
    strategy's compiled on_bar (default: when it has one). `trade_from`: the strategy trades from the first bar
    at or after it; on the bars before, its warm-up, it runs with every order canceled as placed (never sent:
    not in the signals), so it reaches that bar flat and without orders, with the history before it (the live
    loop's start: what its account has). `canceled`: orders (by signal id) canceled from outside at a time (the
    live loop's stop canceled them): canceled after the last bar that began by then (nb.cancel_row: an order
    still open, else the exits its fill opened), so that it decides again as the account stands."""
    cfg = _event_config(config, strategy)
    first = 0 if trade_from is None else int(np.searchsorted(market.times, epoch_us(trade_from)))
    outside: dict[int, set[str]] = {}
    for sid, at in (canceled or {}).items():
        bar = int(np.searchsorted(market.times, epoch_us(at), side="right")) - 1
        if bar >= 0:  # before the first bar: nothing placed yet to cancel
            outside.setdefault(bar, set()).add(sid)
    book, rows, _ = _run(market, strategy, cfg, compiled, first, outside)
    fills = nb.sim_end(book.orders, book.sim)
    return (result(market, rows, cfg, fills, book.orders.status[: len(rows.time)], False),
            _with_cancels(market, strategy, rows, book))


def event_outcome(market: Market, strategy: ev.EventStrategy[Any], config: BacktestConfig | None = None) -> Outcome:
    """run_events' simulation and metrics without its tables (the signals' and the result's: 42-60% of a sweep's
    combination, benchmarks/bench_event_sweep.py): what a sweep's combination reads. Its orders are held to
    Signal's rules all the same."""
    cfg = _event_config(config, strategy)
    book, ctx = _simulate(market, strategy, cfg, None)
    if not _orders_pass(market, book).all():
        _signal_rows(market, strategy, book, ctx)  # raises, naming the first order that breaks a rule
    n = int(book.n_rows[0])
    return outcome(market, cfg, nb.sim_end(book.orders, book.sim), book.orders.status[:n], book.orders.symbol[:n])


def _event_config(config: BacktestConfig | None, strategy: ev.EventStrategy[Any]) -> BacktestConfig:
    cfg = strategy_config(config, strategy)
    if cfg.fill == FillMode.CLOSE:
        raise MarketBossError("event strategies decide on a bar's close and fill from the next bar: --fill close "
                              "does not apply")  # fmt: skip
    return cfg


def _run(market: Market, strategy: ev.EventStrategy[Any], cfg: BacktestConfig, compiled: bool | None,
         trade_from: int = 0, outside: Mapping[int, set[str]] | None = None) -> tuple[Book, SignalRows, ev.Context]:
    book, ctx = _simulate(market, strategy, cfg, compiled, trade_from, outside)
    return book, _signal_rows(market, strategy, book, ctx), ctx


def _simulate(market: Market, strategy: ev.EventStrategy[Any], cfg: BacktestConfig, compiled: bool | None,
              trade_from: int = 0, outside: Mapping[int, set[str]] | None = None) -> tuple[Book, ev.Context]:
    """The strategy run bar by bar in the kernel's account: its Book (orders, fills) and its context."""
    book = Book(market, nb.Rules.of(strategy_config(cfg, strategy)))  # its signals as its backtest makes them
    indicators = _indicators(market, strategy)
    ctx = ev.Context(market, strategy.params, indicators, positions_now=[0.0] * market.n_symbols,
                     cash=cfg.cash, trade_from=trade_from)  # fmt: skip
    spec = strategy.compiled()
    use_compiled = spec is not None if compiled is None else compiled
    if use_compiled and spec is None:
        raise MarketBossError(f"{strategy.name} has no compiled on_bar")
    with ctx.before_first_bar():  # the compiled path too: a strategy may refuse a market there (too many symbols)
        strategy.start(ctx)
    outside = outside or {}
    if spec is not None and use_compiled:
        _run_compiled(book, spec, indicators, cfg.cash, strategy, trade_from, outside)
    else:
        _run_python(book, strategy, ctx, outside)
    return book, ctx


def _from_outside(book: Book, n: int) -> np.ndarray:
    """Per row, whether it was canceled from outside (book.outside)."""
    mask = np.zeros(n, dtype=np.bool_)
    mask[list(book.outside)] = True
    return mask


def _sent(rows: SignalRows, book: Book) -> SignalRows:
    """The orders sent: all but those the strategy canceled on the bar it placed them on (nobody saw them; they
    traded nothing). One canceled from outside was sent (the live loop's stop canceled it at the broker)."""
    n = len(rows.time)
    keep = (book.canceled_at[:n] != book.decided[:n]) | _from_outside(book, n)
    if keep.all():
        return rows
    assert rows.orders is not None
    return SignalRows(rows.frame.filter(pl.Series(keep)), rows.time[keep], rows.bar[keep], rows.symbol[keep],
                      rows.buy[keep], rows.quantity[keep], rows.weight[keep],
                      OrderArrays(*(a[keep] for a in rows.orders)))  # fmt: skip


def _with_cancels(market: Market, strategy: ev.EventStrategy[Any], rows: SignalRows, book: Book) -> pl.DataFrame:
    """The signals: the orders sent and, for each one canceled on a later bar, a CANCEL line at that bar
    (before the bar's orders), naming its id; for one canceled from outside on its own bar, after it. Without
    cancels: the orders' frame as it is."""
    n = len(rows.time)
    canceled, decided = book.canceled_at[:n], book.decided[:n]
    late = np.flatnonzero((canceled > decided) | ((canceled == decided) & _from_outside(book, n)))
    sent_rows = _sent(rows, book)
    sent = sent_rows.frame
    if not late.shape[0]:
        return sent
    bar, s_idx = book.canceled_at[late], book.orders.symbol[late]
    ts = market.times[bar]
    keys = _keys(market, strategy, s_idx, bar, np.full(late.shape[0], 2))
    cancels = pl.DataFrame([
        signal_ids(keys, ts, np.full(late.shape[0], ACTION_CODES["CANCEL"])),
        pl.Series("timestamp", ts).cast(SIGNAL_SCHEMA["timestamp"]),
        pick(market.symbols, s_idx).alias("symbol"),
        pl.Series("action", ["CANCEL"] * late.shape[0], dtype=pl.String),
        pl.Series("strategy", [strategy.name] * late.shape[0], dtype=pl.String),
        rows.frame["id"][late].alias(CANCELS),
    ])  # fmt: skip
    both = pl.concat([sent.with_columns(pl.lit(None, pl.String).alias(CANCELS)), cancels], how="diagonal_relaxed")
    after = np.where(canceled[late] == decided[late], 2, 0)  # its own bar's order first: a CANCEL names one above
    order = np.lexsort((np.r_[np.ones(sent.height), after], np.r_[sent_rows.time, ts]))
    return both[order].select([*sent.columns, CANCELS])


def _keys(market: Market, strategy: ev.EventStrategy[Any], s_idx: np.ndarray, bar: np.ndarray, side: np.ndarray
          ) -> np.ndarray:
    """Id keys as an exposure strategy's; a second signal of the same symbol, bar and side numbered apart."""
    params_json = strategy.params_json()
    keys = np.array([id_key(strategy.name, params_json, sym) for sym in market.symbols], dtype=np.uint64)[s_idx]
    nth = _nth((s_idx * market.n_times + bar) * 3 + side)
    for i in np.flatnonzero(nth).tolist():
        keys[i] = id_key(strategy.name, f"{params_json}#{nth[i]}", market.symbols[s_idx[i]])
    return keys


def _signal_rows(market: Market, strategy: ev.EventStrategy[Any], book: Book, ctx: ev.Context) -> SignalRows:
    """Every order placed, as signals (marketboss.signals' schema with the order fields), in placement order."""
    n = int(book.n_rows[0])
    o = book.orders
    bar, s_idx, buy = book.decided[:n].copy(), o.symbol[:n].copy(), o.buy[:n].copy()
    qty, weight = o.qty[:n].copy(), o.weight[:n].copy()
    ts, price = market.times[bar], market.close[bar, s_idx]
    is_qty = ~np.isnan(qty)

    def num(name: str, a: np.ndarray) -> pl.Series:
        return pl.Series(name, a[:n], nan_to_null=True)

    frame = pl.DataFrame([
        _ids(market, strategy, bar, s_idx, buy),
        pl.Series("timestamp", ts).cast(SIGNAL_SCHEMA["timestamp"]),
        pick(market.symbols, s_idx).alias("symbol"),
        pick(("SELL", "BUY"), buy).alias("action"),
        num("quantity", qty),
        pl.Series("strategy", [strategy.name] * n, dtype=pl.String),
        pl.Series("price", price, nan_to_null=True),  # no bar of the symbol here: no price
        num("target_weight", np.where(is_qty, np.nan, weight)),
        pick(ORDER_TYPE_NAMES, o.kind[:n]).alias("order_type"),
        pick(("day", "gtc"), o.gtc[:n]).alias("time_in_force"),
        num("limit_price", o.limit), num("stop_price", o.stop), num("trail_percent", o.trail),
        num("take_profit", o.take_profit), num("stop_loss", o.stop_loss),
    ])  # fmt: skip
    _check(frame, strategy, ctx, _orders_pass(market, book))
    orders = OrderArrays(o.kind[:n].copy(), o.limit[:n].copy(), o.stop[:n].copy(), o.trail[:n].copy(),
                         o.gtc[:n].copy(), o.take_profit[:n].copy(), o.stop_loss[:n].copy())  # fmt: skip
    return SignalRows(frame, ts, bar, s_idx, buy, qty, np.where(is_qty, 0.0, weight), orders)


def _orders_pass(market: Market, book: Book) -> np.ndarray:
    """Per order placed, whether it keeps Signal's rules (signals.rules_pass, over the run's arrays)."""
    n = int(book.n_rows[0])
    o = book.orders
    qty = o.qty[:n]
    weight = np.where(np.isnan(qty), o.weight[:n], np.nan)
    price = market.close[book.decided[:n], o.symbol[:n]]
    return rules_pass(o.buy[:n], o.kind[:n], o.gtc[:n], np.column_stack([
        qty, weight, price, *(a[:n] for a in (o.limit, o.stop, o.trail, o.take_profit, o.stop_loss))]))  # fmt: skip


def _ids(market: Market, strategy: ev.EventStrategy[Any], bar: np.ndarray, s_idx: np.ndarray, buy: np.ndarray
         ) -> pl.Series:  # fmt: skip
    """The signal ids of orders decided on these bars, of these symbols and sides."""
    codes = np.where(buy, ACTION_CODES["BUY"], ACTION_CODES["SELL"])
    return signal_ids(_keys(market, strategy, s_idx, bar, buy.astype(np.int64)), market.times[bar], codes)


def _nth(key: np.ndarray) -> np.ndarray:
    """Per row, how many rows before it have the same key."""
    order = np.argsort(key, kind="stable")
    k = key[order]
    i = np.arange(k.shape[0])
    first = np.maximum.accumulate(np.where(np.r_[True, k[1:] != k[:-1]], i, 0)) if k.shape[0] else i
    out = np.empty_like(i)
    out[order] = i - first
    return out


def _check(frame: pl.DataFrame, strategy: ev.EventStrategy[Any], ctx: ev.Context, ok: np.ndarray) -> None:
    """Every order must be a valid signal (it is written, paper-traded): the first that is not (ok false: its
    row of the frame, from signals.rules_pass) is an error naming its bar and field, and the strategy's line
    that placed it (a plain on_bar's; a compiled one's file and function: numba keeps no line)."""
    if ok.all():
        return
    i = int(np.argmin(ok))
    row = frame.row(i, named=True)
    if i < len(ctx.places):
        where = f" ({ctx.placed_at(i)})"
    else:  # placed by the compiled on_bar (checked to be numba's before it ran): numba keeps no line
        code = strategy.compiled().on_bar.py_func.__code__  # type: ignore[union-attr]
        where = f" ({Path(code.co_filename).name}, in {code.co_name})"
    try:
        Signal.model_validate({**row, "id": "x"})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        raise InputError(f"strategy {strategy.describe()}", f"order at {row['timestamp']} ({row['symbol']} "
                         f"{row['action']}): {str(err['msg']).removeprefix('Value error, ')}{where}",
                         field=field) from None  # fmt: skip


def event_signal_rows(market: Market, strategy: ev.EventStrategy[Any]) -> SignalRows:
    """EventStrategy.signal_rows: the strategy run in a default account, the orders it sent as signals."""
    book, rows, _ = _run(market, strategy, BacktestConfig(), None)
    return _sent(rows, book)


def event_signals(market: Market, strategy: ev.EventStrategy[Any]) -> pl.DataFrame:
    """EventStrategy.signals: the orders it sent and its cancels, in a default account."""
    book, rows, _ = _run(market, strategy, BacktestConfig(), None)
    return _with_cancels(market, strategy, rows, book)


ev.set_runner(ev.Runner(event_signal_rows, run_events, event_signals))
