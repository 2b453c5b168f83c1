"""Event-driven strategies: `on_bar(ctx)` once per bar, in time order, for what an exposure array cannot say
(stops that depend on the fill, scaling in, "hold 5 bars then exit").

The strategy sees the market as of the bar: `ctx` gives the history up to and including bar t (views that end
at t, never beyond), the account as the backtest kernel left it after bar t (positions, cash, equity, open
orders) and actions: buy or sell a quantity, move to a target weight, close, with every order type and bracket
of marketboss.signals' order fields, and cancel. Orders decided on bar t go live from bar t+1, exactly as
signals do, and they are signals: `signals(market)` runs the strategy and returns its orders as a signals
frame (deterministic ids), so `signals`, `backtest`, `paper` and `reconcile` take an event strategy unchanged.
The run itself (the backtest kernel, a bar or a few at a time) is marketboss.backtest.events'.

A strategy may also give a compiled `on_bar` (`compiled()`: a numba function of a fixed signature, see
CompiledOnBar) and the whole loop then runs compiled.
"""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import CodeType
from typing import Any, ClassVar, Literal, NamedTuple, TypeVar

import numpy as np
import polars as pl
from pydantic import model_validator

from marketboss.data.market import Market, SymbolBars, read_only
from marketboss.data.rules import shown
from marketboss.errors import MarketBossError
from marketboss.signals import ORDER_TYPE_NAMES, SignalRows
from marketboss.strategies.base import Strategy, StrategyError, StrategyParams

OrderType = Literal["market", "limit", "stop", "stop_limit", "trailing_stop"]


class EventParams(StrategyParams):
    """An event strategy's parameters. The shared ones keep their meaning where an event strategy leaves them
    to the framework: `sizing`/`quantity`/`weight` size a buy or sell placed without a size, the exit percents
    put a bracket on an entry placed without one, and `long_only` cuts a sale to the position (never a short)."""

    unused: ClassVar[frozenset[str]] = frozenset({"rebalance"})

    @model_validator(mode="after")
    def _no_rebalance(self) -> EventParams:
        if self.rebalance is not None:
            raise ValueError("rebalance is for exposure strategies: an event strategy places its own orders")
        return self


P = TypeVar("P", bound=EventParams)


@dataclass(eq=False)
class PlacedOrder:
    """An order an event strategy placed: its row in the run (the signal's row), the bar it was decided on,
    and the signal fields (quantity NaN: a target-weight order)."""

    row: int
    bar: int
    symbol: int
    buy: bool
    quantity: float
    target_weight: float
    order_type: OrderType = "market"
    gtc: bool = False
    limit_price: float = np.nan
    stop_price: float = np.nan
    trail_percent: float = np.nan
    take_profit: float = np.nan
    stop_loss: float = np.nan


class History(NamedTuple):
    """One symbol's bars up to and including the current one (read-only views of the market's arrays, NaN where
    the symbol had no bar): time in epoch microseconds, open, high, low, close, volume."""

    times: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


@dataclass(eq=False, slots=True)
class Context:
    """What on_bar sees and does at bar t. The run updates the account fields before each call; everything
    read from the market is cut at t."""

    _market: Market  # the whole market: read through the methods, which cut it at t
    params: EventParams
    _indicators: dict[str, np.ndarray]  # name -> (time x symbol), causal: read through value/indicator
    t: int = -1
    positions_now: list[float] = field(default_factory=list)  # shares per symbol (a list: read once a bar)
    cash: float = 0.0
    orders: list[PlacedOrder] = field(default_factory=list)  # every order placed, by row
    places: list[tuple[CodeType, int]] = field(default_factory=list)  # the code and line that placed each (placed_at)
    open_rows: set[int] = field(default_factory=set)  # rows still pending or working
    settled: set[int] = field(default_factory=set)  # rows a cancel was asked for (nothing left to cancel after it)
    placed: list[PlacedOrder] = field(default_factory=list)  # placed at this bar (the run takes them)
    canceled: list[PlacedOrder] = field(default_factory=list)  # canceled at this bar (the run takes them)
    trade_from: int = 0  # the first bar whose orders are sent; before it, each is canceled as placed (a warm-up)

    # ---------------------------------------------------------------- the market up to t
    @property
    def time(self) -> datetime:
        if self.t < 0:
            raise MarketBossError(_BEFORE_FIRST_BAR)
        us = int(self._market.times[self.t])
        return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)

    @property
    def symbols(self) -> tuple[str, ...]:
        return self._market.symbols

    def _s(self, symbol: str | int | None) -> int:
        if type(symbol) is int and 0 <= symbol < self._market.n_symbols:
            return symbol
        if symbol is None:
            if self._market.n_symbols != 1:
                raise MarketBossError(f"name the symbol: the data has several ({_listed(self._market.symbols)})")
            return 0
        if isinstance(symbol, int | np.integer) and not isinstance(symbol, bool):
            if 0 <= symbol < self._market.n_symbols:
                return int(symbol)
            raise MarketBossError(f"symbol index {symbol} out of range: the data has {self._market.n_symbols} "
                                  f"symbol(s), 0 to {self._market.n_symbols - 1} ({_listed(self._market.symbols)})")
        try:
            return self._market.symbol_index(symbol)  # type: ignore[arg-type]  # a bool, anything: not a name
        except ValueError:
            pass
        raise MarketBossError(f"unknown symbol {symbol!r} (the data has {_listed(self._market.symbols)})")

    @contextmanager
    def before_first_bar(self) -> Iterator[Context]:
        """The context as start(ctx) sees it: the market and indicators without a bar (at t = -1 every read gave
        the data's last bar: a strategy could pick its symbols by their final closes); placing an order is an
        error too."""
        market, indicators = self._market, self._indicators
        self._market, self._indicators = market.head(0), {k: v[:0] for k, v in indicators.items()}
        try:
            yield self
        finally:
            self._market, self._indicators = market, indicators

    def _ind(self, name: str) -> np.ndarray:
        try:
            return self._indicators[name]
        except (KeyError, TypeError):  # TypeError: an unhashable name
            raise self._no_indicator(name) from None

    def _no_indicator(self, name: Any) -> MarketBossError:
        return MarketBossError(f"no indicator {name!r} (the strategy's indicators: {_listed(tuple(self._indicators))})")

    def _lookup_error(self, name: str | None, symbol: Any) -> MarketBossError | None:
        """Why a fast read (an int index, unchecked) failed: the indicator's name or the symbol, or no bar yet
        (start: its market has none) (None: neither)."""
        if self.t < 0:
            return MarketBossError(_BEFORE_FIRST_BAR)
        try:
            if name is not None:
                self._ind(name)
            self._s(symbol)
        except MarketBossError as exc:
            return exc
        return None

    def history(self, symbol: str | int | None = None) -> History:
        m, s, end = self._market, self._s(symbol), self.t + 1
        return History(*(read_only(a) for a in (m.times[:end], m.open[:end, s], m.high[:end, s], m.low[:end, s],
                                                 m.close[:end, s], m.volume[:end, s])))  # fmt: skip

    def price(self, symbol: str | int | None = None) -> float:
        """The symbol's close at this bar (NaN when it has no bar here)."""
        try:
            return self._market.close.item(self.t, symbol if type(symbol) is int and symbol >= 0 else self._s(symbol))
        except IndexError as exc:
            raise self._lookup_error(None, symbol) or exc from None

    def indicator(self, name: str, symbol: str | int | None = None) -> np.ndarray:
        """The indicator's values up to and including this bar (a view on_bar cannot write through: a write would
        change what ctx.value reads for the rest of the run)."""
        return read_only(self._ind(name)[: self.t + 1, self._s(symbol)])

    def value(self, name: str, symbol: str | int | None = None) -> float:
        """The indicator's value at this bar (a plain float: item() takes half the time of float(a[t, s]), and
        on_bar reads a value per symbol and bar: an int index is checked only when the read fails)."""
        try:
            return self._indicators[name].item(self.t, symbol if type(symbol) is int and symbol >= 0
                                              else self._s(symbol))  # fmt: skip
        except (KeyError, IndexError, TypeError) as exc:
            raise self._lookup_error(name, symbol) or exc from None

    # ---------------------------------------------------------------- the account after bar t
    def position(self, symbol: str | int | None = None) -> float:
        try:
            return self.positions_now[symbol if type(symbol) is int and symbol >= 0 else self._s(symbol)]
        except IndexError as exc:
            raise self._lookup_error(None, symbol) or exc from None

    @property
    def positions(self) -> dict[str, float]:
        """Shares per held symbol."""
        return {self._market.symbols[s]: p for s, p in enumerate(self.positions_now) if p}

    @property
    def equity(self) -> float:
        """Cash plus the positions at this bar's closes (a symbol without a bar here: its last close)."""
        total = self.cash
        close = self._market.close
        for s, p in enumerate(self.positions_now):
            if p:
                px = close[self.t, s]
                if np.isnan(px):  # no bar here: its last close
                    col = close[: self.t, s]
                    known = col[~np.isnan(col)]
                    px = known[-1] if known.shape[0] else 0.0
                total += p * px
        return float(total)

    @property
    def open_orders(self) -> list[PlacedOrder]:
        """Orders not yet filled, ended or canceled (those placed at this bar included)."""
        return [self.orders[r] for r in sorted(self.open_rows)]

    # ---------------------------------------------------------------- actions
    def buy(self, quantity: float | None = None, symbol: str | int | None = None, **order: Any) -> PlacedOrder | None:
        """Buy `quantity` shares (default: the parameters' sizing). Order fields as keywords: order_type,
        time_in_force, limit_price, stop_price, trail_percent, take_profit, stop_loss."""
        return self._sized(True, quantity, symbol, order)

    def sell(self, quantity: float | None = None, symbol: str | int | None = None, **order: Any
             ) -> PlacedOrder | None:
        """Sell `quantity` shares (default: the parameters' sizing); long_only cuts it to the position."""
        return self._sized(False, quantity, symbol, order)

    def target_weight(self, weight: float, symbol: str | int | None = None, **order: Any) -> PlacedOrder | None:
        """Move the position to `weight` x equity (sized at the fill, as a target-weight signal); None when it
        is already there at this bar's close."""
        s = self._s(symbol)
        if not _is_number(weight) or not math.isfinite(weight):  # True was 1.0: all in
            raise MarketBossError(f"target_weight {shown(weight)}: a weight is a finite number (a fraction of "
                                  "equity)")  # fmt: skip
        if self.params.long_only and weight < 0:
            raise MarketBossError(f"target_weight {weight:g}: long_only strategies do not short")
        return self._to_target(s, float(weight), order, depth=3)

    def _to_target(self, s: int, weight: float, order: dict[str, Any], depth: int) -> PlacedOrder | None:
        """The order moving the position to weight x equity at this bar's close (its side the move's), None when
        there is no move (there already, or no price at this bar to size it by: a symbol without a bar yet), as
        the compiled path takes a target-weight row (backtest.events._to_targets); a weight of 0 flattens, with
        or without a price. `depth`: _place's."""
        if self.t < 0:
            raise MarketBossError(_BEFORE_FIRST_BAR)
        held = self.positions_now[s]
        wanted = -held if weight == 0.0 else weight * self.equity / self._market.close[self.t, s] - held
        if not wanted or np.isnan(wanted):
            return None
        return self._place(s, bool(wanted > 0), np.nan, weight, order, depth=depth)

    def close(self, symbol: str | int | None = None) -> PlacedOrder | None:
        """Flatten the position (a target weight of 0: nothing left to trade if an exit got there first)."""
        s = self._s(symbol)
        p = self.positions_now[s]
        return self._place(s, bool(p < 0), np.nan, 0.0, {}) if p else None

    def cancel(self, order: PlacedOrder) -> None:
        """Cancel an open order from the next bar on; of an order that has filled, its exits still working (its
        bracket legs, trailing stop: the position stays). An order ended, or filled without exits, stays as it
        is."""
        if not isinstance(order, PlacedOrder):
            raise MarketBossError(f"cancel takes an order ctx.buy, sell, target_weight or close returned (or one of "
                                  f"ctx.open_orders), not {shown(order)}")  # fmt: skip
        if order.row not in self.settled:  # the run cancels what still works of it, if anything (nb.cancel_row)
            self.settled.add(order.row)
            self.open_rows.discard(order.row)
            self.canceled.append(order)

    def cancel_all(self, symbol: str | int | None = None) -> None:
        s = None if symbol is None else self._s(symbol)
        for o in self.open_orders:
            if s is None or o.symbol == s:
                self.cancel(o)

    def _sized(self, buy: bool, quantity: float | None, symbol: str | int | None, order: dict[str, Any]
               ) -> PlacedOrder | None:
        s = self._s(symbol)
        p = self.params
        if quantity is None and p.sizing == "weight":  # a target weight, as entry_args' rows of the compiled path
            return self._to_target(s, p.weight if buy else (0.0 if p.long_only else -p.weight), order, depth=4)
        if quantity is not None and not _is_number(quantity):
            raise MarketBossError(f"quantity {shown(quantity)}: {'buy' if buy else 'sell'} takes a number of shares")
        q = float(p.quantity if quantity is None else quantity)
        if not 0 <= q < math.inf:  # NaN too; 0 (`ctx.sell(ctx.position(s))` of a flat symbol) is nothing to do
            raise MarketBossError(f"quantity {q:g}: {'buy' if buy else 'sell'} takes a positive, finite number of "
                                  "shares")  # fmt: skip
        if not buy and p.long_only:
            q = min(q, float(self.positions_now[s]))
        if not q > 0:
            return None
        return self._place(s, buy, q, np.nan, order, depth=3)

    def _place(self, s: int, buy: bool, quantity: float, weight: float, fields: dict[str, Any], depth: int = 2
               ) -> PlacedOrder:  # fmt: skip
        """The order, as the run takes it. `depth`: the frames from here up to the caller of the action (2 from
        close; 3 from buy and sell through _sized, and from target_weight through _to_target; 4 from buy and sell
        sized by weight): where it was placed (placed_at)."""
        if self.t < 0:
            raise MarketBossError(_BEFORE_FIRST_BAR)
        # ctx.buy(symbol=s), ctx.close(s): a market day order with no fields to check (a third of an order-heavy run)
        o = self._order_of(s, buy, quantity, weight, fields) if fields else PlacedOrder(
            len(self.orders), self.t, s, buy, quantity, weight)
        closing = not np.isnan(weight) and weight == 0.0
        if not closing and o.order_type != "trailing_stop" and not fields.keys() & _LEGS:
            self._default_exits(o)
        self.orders.append(o)
        self.placed.append(o)
        frame = sys._getframe(depth)  # the line that called the action (a fixed depth: walking up cost 5% more)
        self.places.append((frame.f_code, frame.f_lineno))
        if self.t < self.trade_from:  # the warm-up: the account does not trade it (backtest.events: trade_from)
            self.canceled.append(o)
        else:
            self.open_rows.add(o.row)
        return o

    def _order_of(self, s: int, buy: bool, quantity: float, weight: float, fields: dict[str, Any]) -> PlacedOrder:
        """The order of these fields, each checked; its prices on the grid."""
        unknown = fields.keys() - _ORDER_KEYWORDS
        if unknown:
            raise MarketBossError(f"unknown order field(s) {', '.join(sorted(unknown))}; valid: "
                                  f"{', '.join(_ORDER_KEYWORDS)}")  # fmt: skip
        kind: OrderType = fields.get("order_type") or _infer_type(fields)
        if kind not in ORDER_TYPE_NAMES:
            raise MarketBossError(f"order_type '{kind}': choose one of {', '.join(ORDER_TYPE_NAMES)}")
        for f in _PRICES:
            v = fields.get(f)
            if v is not None and not (_is_number(v) and math.isfinite(v)):
                raise MarketBossError(f"{f} {shown(v)}: a finite number, or leave it out (None: none, not even the "
                                      "parameters')")  # fmt: skip
        tif = fields.get("time_in_force", "day")
        if tif not in ("day", "gtc"):
            raise MarketBossError(f"time_in_force '{tif}': choose day or gtc")
        return PlacedOrder(len(self.orders), self.t, s, buy, quantity, weight, kind, tif == "gtc",
                           *(_num(fields.get(f)) if f == "trail_percent" else _on_grid(fields.get(f)) for f in _PRICES))

    def placed_at(self, row: int) -> str:
        """Where the strategy placed order `row`, as `file, line N, in function` (an error about the order names
        it: the rules are checked over every order at the end of the run)."""
        code, line = self.places[row]
        return f"{Path(code.co_filename).name}, line {line}, in {code.co_name}"

    def _default_exits(self, o: PlacedOrder) -> None:
        """The parameters' exit percents as a bracket on an entry without legs of its own, priced from its
        reference (limit, stop, else this bar's close) as signals.exits prices them. An order that only
        reduces the position held at this bar (a sale under long_only; a sale of at most the shares held, a
        buy covering at most the short) opens nothing: no bracket (the backtest and the broker would drop it)."""
        from marketboss.signals.nb import exit_price  # numba: loaded by the strategies that place orders

        p = self.params
        pos = self.positions_now[o.symbol]
        against = pos < 0 if o.buy else pos > 0  # its side trades against the position held
        # a target weight: it stays on the position's side of zero; shares: at most those held
        reduces = against and (o.target_weight * pos >= 0 if np.isnan(o.quantity) else o.quantity <= abs(pos))
        if (not o.buy and p.long_only) or reduces:
            return
        ref = next((v for v in (o.limit_price, o.stop_price) if not np.isnan(v)), self._market.close[self.t, o.symbol])
        up = 1.0 if o.buy else -1.0
        o.take_profit = exit_price(ref, up, _num(p.take_profit_pct))
        o.stop_loss = exit_price(ref, -up, _num(p.stop_loss_pct))
        if p.trail_percent is not None:
            o.trail_percent = p.trail_percent


_ORDER_KEYWORDS = ("order_type", "time_in_force", "limit_price", "stop_price", "trail_percent", "take_profit",
                   "stop_loss")  # fmt: skip
_LEGS = {"take_profit", "stop_loss", "trail_percent"}
_BEFORE_FIRST_BAR = ("start(ctx) runs before the first bar: it has no bar to read and places no order (read the "
                     "market and trade in on_bar)")
_PRICES = ("limit_price", "stop_price", "trail_percent", "take_profit", "stop_loss")  # PlacedOrder's order


def _is_number(v: Any) -> bool:
    """A real number, not a bool (`ctx.buy(True)`) nor a text (`ctx.buy("10")`)."""
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool | np.bool_)


def _listed(names: tuple[str, ...], most: int = 10) -> str:
    """Names for an error message: all of a few, the first `most` of many."""
    if not names:
        return "none"
    text = ", ".join(names[:most])
    return text if len(names) <= most else f"{text}, ... ({len(names)} in all)"


def _num(v: float | None) -> float:
    return np.nan if v is None else float(v)


def _on_grid(price: float | None) -> float:
    """A price the strategy gave, on the grid orders take (signals.nb.tick: cents from $1), as the run's kernel
    rounds a compiled on_bar's (add_order): what the backtest trades, the broker accepts."""
    from marketboss.signals.nb import tick  # numba: loaded by the strategies that place orders

    return np.nan if price is None else float(tick(float(price)))


def _infer_type(fields: dict[str, Any]) -> OrderType:
    """The order type the prices given imply: limit and stop -> stop_limit, limit, stop, else market."""
    lim, stop = fields.get("limit_price") is not None, fields.get("stop_price") is not None
    return "stop_limit" if lim and stop else "limit" if lim else "stop" if stop else "market"


# ------------------------------------------------------------------------------------------ compiled path

#: Columns of a compiled on_bar's order buffer (one row per order): symbol index, +1 buy / -1 sell (a
#: target-weight order's: the move to its target, not read), shares (NaN: a target-weight order), target weight,
#: order type (marketboss.orders' codes; CANCEL: cancel the symbol's open orders; CANCEL_EXITS: end the exits
#: working on its position, as ctx.cancel of the filled orders that opened them), limit and stop prices, trail
#: percent, 1 for gtc (0 or NaN: day), take-profit and stop-loss (NaN: absent).
(OUT_SYMBOL, OUT_SIDE, OUT_QTY, OUT_WEIGHT, OUT_KIND, OUT_LIMIT, OUT_STOP, OUT_TRAIL, OUT_GTC, OUT_TP,
 OUT_SL) = range(11)  # fmt: skip
N_OUT = 11
CANCEL = -1
CANCEL_EXITS = -2


def entry_args(params: EventParams) -> list[float]:
    """What `ctx.buy(symbol=s)` takes from the parameters, for a compiled on_bar's args: [quantity, weight,
    take_profit_pct, stop_loss_pct, trail_percent], NaN where one does not apply (quantity under sizing=weight,
    weight under quantity, an exit not set). Its buy row writes them as OUT_QTY, OUT_WEIGHT (a target-weight
    row), OUT_TP and OUT_SL (signals.nb.exit_price of the close, up and down) and OUT_TRAIL, and trades as the
    plain buy whatever the parameters say."""
    p = params
    weight = p.sizing == "weight"
    return [np.nan if weight else p.quantity, p.weight if weight else np.nan,
            *(_num(v) for v in (p.take_profit_pct, p.stop_loss_pct, p.trail_percent))]  # fmt: skip


@dataclass(frozen=True)
class CompiledOnBar:
    """A numba-compiled on_bar and what it needs. The function is called once per bar inside the compiled loop:

        n = on_bar(t, open, high, low, close, ind, position, cash, equity, args, memory, out[, open_orders])

    with t the bar index; open..close the (t+1 x symbol) history; ind the (indicators x (t+1) x symbol)
    indicator values (in the order of `indicators`); position the shares per symbol after bar t, cash and
    equity; args the strategy's parameters as floats; memory a float array the function keeps between bars
    (zeros at the start): `memory` long, or with `per_symbol` `memory` numbers for each symbol, a (memory x
    symbol) array, so that it fits any market; out a (rows x N_OUT) buffer it writes its orders to (see OUT_*),
    returning how many it wrote; open_orders, when it takes a 13th parameter, the orders open per symbol after
    bar t (ctx.open_orders as on_bar starts). `max_orders`: out's rows (default: two per symbol, at least 16).
    numba does not check indexes: a function writing past out's rows or memory corrupts the process's memory
    (stop at out.shape[0]); returning more orders than out holds is an error."""

    on_bar: Callable[..., int]
    args: np.ndarray
    indicators: tuple[str, ...] = ()
    memory: int = 0
    max_orders: int | None = None
    per_symbol: bool = False

    def new_memory(self, n_symbols: int) -> np.ndarray:
        """The memory of a run over n_symbols, zeros."""
        return np.zeros((self.memory, n_symbols) if self.per_symbol else self.memory)

    def rows(self, n_symbols: int) -> int:
        """out's rows for a market of n_symbols."""
        return self.max_orders if self.max_orders is not None else max(16, 2 * n_symbols)


class EventStrategy(Strategy[P]):
    """Subclass with a params_model (EventParams or a subclass), and implement on_bar (or compiled, or both:
    they must then trade alike). Keep per-run state in attributes set up in `start`: the same object runs many
    times (signals, backtest, each sweep combination)."""

    params_model: ClassVar[type[StrategyParams]] = EventParams

    def start(self, ctx: Context) -> None:
        """Called before the first bar of each run: ctx gives the symbols, the parameters and the cash, no bar
        (reading one, or placing an order, is an error: Context.before_first_bar)."""

    def on_bar(self, ctx: Context) -> None:
        raise StrategyError(self, "implements neither on_bar(ctx) nor compiled(): an event strategy overrides one "
                                  "of them")  # fmt: skip

    def indicators(self, bars: SymbolBars) -> dict[str, np.ndarray]:
        """Indicator arrays over one symbol's bars (each aligned with them), read in on_bar through
        ctx.value / ctx.indicator (cut at the bar). They must be causal: the run recomputes them on the first
        half and three quarters of two symbols' bars (strategies.causal) and refuses any whose values there
        differ (a look into the future)."""
        return {}

    def market_indicators(self, market: Market) -> dict[str, np.ndarray]:
        """Indicators over the whole market at once, each a (time x symbol) array (NaN where a symbol has no bar),
        read as indicators() are: what compares symbols (a pair's spread, a rank across them), or one call over
        every symbol (marketboss.indicators take the matrix). The market comes as read-only views; they must be
        causal as exposures(market) must: the run recomputes them on the market's first half and three quarters
        and refuses any whose values there differ. Keep nothing of the market for on_bar: it holds every bar, the
        future's too (on_bar reads the market through ctx)."""
        return {}

    def compiled(self) -> CompiledOnBar | None:
        """The compiled on_bar, if the strategy has one."""
        return None

    def signals(self, market: Market) -> pl.DataFrame:
        """Run the strategy over the bars (a default backtest account) and return its signals: the orders it
        sent and, for each it canceled on a later bar, a CANCEL line at that bar (marketboss.signals)."""
        return _runner().signals(market, self)

    def signal_rows(self, market: Market) -> SignalRows:
        """The orders it sent, as signals (no cancels: see `signals`); an order canceled on the bar it was
        placed on was never sent and is left out."""
        return _runner().signal_rows(market, self)

    def backtest(self, market: Market, config: Any = None, *, trade_from: datetime | None = None,
                 canceled: Mapping[str, datetime] | None = None) -> Any:
        """The event run in a backtest account (marketboss.backtest.events.run_events): (result, signals)."""
        return _runner().backtest(market, self, config, trade_from=trade_from, canceled=canceled)


class Runner(NamedTuple):
    """The event run, which is the backtest's (a layer above): registered by marketboss.backtest.events."""

    signal_rows: Callable[[Market, EventStrategy[Any]], SignalRows]
    backtest: Callable[..., Any]
    signals: Callable[[Market, EventStrategy[Any]], pl.DataFrame]


def _runner() -> Runner:
    """The registered runner; its module imported by name on first use (strategies may not import the backtest)."""
    if _RUNNER is None:
        importlib.import_module("marketboss.backtest.events")
    assert _RUNNER is not None
    return _RUNNER


_RUNNER: Runner | None = None


def set_runner(runner: Runner) -> None:
    global _RUNNER
    _RUNNER = runner
