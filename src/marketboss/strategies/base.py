"""The strategy contract: a strategy says, bar by bar, what exposure it wants; the framework turns changes of
that wish into signals.

A strategy implements `exposure(bars)` for one symbol (or overrides `exposures(market)` for cross-sectional
models such as the ML strategy): an array aligned with the bars, in [-1, 1], where +1 is "fully long one
unit", -1 "fully short one unit", 0 flat and NaN "no opinion, keep what I have". exposure[t] may use bars up
to and including t only. Sizing then scales a unit: `quantity` shares, or `weight` x equity.

Signals come from the changes of the held exposure only, so a strategy that can find those directly may
also override `changes(bars, lo, hi)` (the crossover does: its exposure only changes at crosses), and signal
generation then never builds or scans a per-bar array.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from marketboss.data.market import Market, SymbolBars
from marketboss.errors import MarketBossError
from marketboss.signals import (
    ACTION_CODES,
    MAX_QUANTITY,
    SIGNAL_SCHEMA,
    SignalRows,
    canonical_params,
    id_key,
    order_arrays,
    signal_ids,
)
from marketboss.signals.exits import MAX_PCT, MIN_PCT, Exits, with_exits
from marketboss.strategies.causal import CHECKED_SYMBOLS, cuts, head, same_values
from marketboss.strategies.kernels import fill_steps, rebalance_points, signal_sides, state_changes
from marketboss.strategies.params_text import params_error


class StrategyParams(BaseModel):
    """Sizing and direction, shared by every strategy; subclasses add their own parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    #: Parameters a kind of strategy refuses (left out of its listing: `strategies list`, a bad --param's).
    unused: ClassVar[frozenset[str]] = frozenset()

    sizing: Literal["quantity", "weight"] = Field(
        "quantity", description="quantity: fixed shares per signal; weight: target fraction of equity"
    )
    quantity: float = Field(10, gt=0, le=MAX_QUANTITY, allow_inf_nan=False,
                            description="shares per unit of exposure")  # a signal's limit: its file reads back
    weight: float = Field(0.1, gt=0, le=1, allow_inf_nan=False, description="equity fraction per unit")
    long_only: bool = Field(True, description="true: never short; false: long-short")
    stop_loss_pct: float | None = Field(
        None, ge=MIN_PCT, le=MAX_PCT, description="exit: stop-loss this percent from an entry's signal close"
    )
    take_profit_pct: float | None = Field(
        None, ge=MIN_PCT, le=MAX_PCT, description="exit: take-profit this percent from an entry's signal close"
    )
    trail_percent: float | None = Field(
        None, ge=MIN_PCT, le=MAX_PCT, description="exit: trailing stop this percent from the best price since entry"
    )

    rebalance: Literal["weekly", "monthly"] | Annotated[int, Field(ge=1)] | None = Field(
        None, description="sizing=weight: restore drifted weights every N bars, weekly or monthly"
    )

    @model_validator(mode="after")
    def _one_stop(self) -> StrategyParams:
        self.exits()  # raises on a stop-loss and a trailing stop together
        if self.rebalance is not None and self.sizing != "weight" and "rebalance" not in self.unused:  # else: its own
            raise ValueError("rebalance restores target weights: it needs sizing=weight")
        return self

    def exits(self) -> Exits:
        return Exits(self.stop_loss_pct, self.take_profit_pct, self.trail_percent)

    def identity(self) -> dict[str, Any]:
        """The parameters that name the strategy's signals (their ids): unset exits are left out, so that
        signals from before the exits existed keep their ids."""
        return {k: v for k, v in self.model_dump(mode="json").items() if not (k in EXIT_PARAMS and v is None)}


class StrategyError(MarketBossError):
    """A strategy's code broke the contract MarketBoss runs it by (what exposure returned, a compiled on_bar that
    does not compile, an order row it cannot take): one line, `<name>: <detail>`. A plug-in's is named by its
    form at the CLI's error boundary (strategies.plugins.failure), where its file is known."""

    def __init__(self, strategy: Strategy[Any], detail: str):
        super().__init__(f"{strategy.name}: {detail}")
        self.strategy = strategy
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:  # from a worker process: its line (a plug-in's made there by failure)
        return (MarketBossError, (str(self),))


#: Parameters left out of a strategy's identity when unset (added after signals had ids).
EXIT_PARAMS = ("stop_loss_pct", "take_profit_pct", "trail_percent", "rebalance")


P = TypeVar("P", bound=StrategyParams)


class _ClassName:
    """A strategy's default `name` (what its signal ids are derived from): its class name."""

    def __get__(self, obj: object, owner: type) -> str:
        return owner.__name__


class _DocSummary:
    """A strategy's default `summary`: the first line of its docstring."""

    def __get__(self, obj: object, owner: type) -> str:
        return (owner.__doc__ or "").strip().partition("\n")[0]


class _Defaults:
    """What a strategy class need not declare (kept off Strategy itself, whose own `name` would make it look
    like a named strategy)."""

    name: ClassVar[str] = _ClassName()  # type: ignore[assignment]
    summary: ClassVar[str] = _DocSummary()  # type: ignore[assignment]


class Strategy(_Defaults, ABC, Generic[P]):
    """Subclass it, set `params_model` (a StrategyParams subclass; default: sizing and exits only) and
    implement `exposure(bars)` or `exposures(market)`. `name` (default: the class name) names the strategy
    and, with its parameters, its signals' ids: keep it stable."""

    params_model: ClassVar[type[StrategyParams]] = StrategyParams

    def __init__(self, params: P | None = None, **values: Any):
        """`Strategy(params_model(...))`, or the parameters as keywords (`RsiBracket(stop_loss_pct=5)`),
        or nothing for the defaults."""
        if params is not None and values:
            raise TypeError("give a params model or keyword parameters, not both")
        if params is None:
            try:
                params = self.params_model.model_validate(values)  # type: ignore[assignment]
            except ValidationError as exc:  # one line naming the parameter and listing the valid ones, as create's
                raise params_error(self.name, type(self), exc.errors(), values) from None
        self.params: P = params  # type: ignore[assignment]

    #: Whether the framework checks a whole-market model's `exposures` for look-ahead (checked_exposures). Off only
    #: for a model causal by construction whose run on the market's first half cannot be asked (the ML strategy:
    #: trading out of sample, a cut before its training end has no bar to trade).
    check_exposures: ClassVar[bool] = True

    def exposure(self, bars: SymbolBars) -> np.ndarray:
        """Desired exposure per bar of one symbol (causal). Override this or `exposures`."""
        raise StrategyError(self, "implements neither exposure(bars) nor exposures(market): a strategy overrides "
                                  "one of them")  # fmt: skip

    def changes(self, bars: SymbolBars, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(bar index, held state before, held state after) at each change of one symbol's held exposure,
        clipped to [lo, hi] (see held_changes). Derived from `exposure` by default; a strategy that can find
        its changes directly overrides this and never builds the per-bar array (the crossover does)."""
        return held_changes(self._exposure_of(bars), lo, hi)

    def _exposure_of(self, bars: SymbolBars) -> np.ndarray:
        got = self.exposure(bars)
        e = real_numbers(got)
        if e is None:
            raise StrategyError(self, f"exposure returned a {type(got).__name__} holding values that are not numbers "
                                      f"for {bars.symbol}: it must return an array of numbers, one per bar"
                                )  # fmt: skip
        if e.shape != bars.close.shape:
            what = "None" if got is None else f"shape {e.shape}"
            raise StrategyError(self, f"exposure returned {what} for {bars.symbol}'s {len(bars)} bars: it must return "
                                      "an array of one value per bar")  # fmt: skip
        self._finite(e, bars.times, bars.symbol)
        return e

    def _finite(self, e: np.ndarray, times: np.ndarray, symbol: str | Sequence[str]) -> None:
        """An exposure is a number or NaN (no opinion), never an infinity: 1.0 is one unit (larger values are
        cut to it)."""
        bad = np.isinf(e)
        if bad.any():
            i = np.argwhere(bad)[0]
            sym = symbol if isinstance(symbol, str) else symbol[int(i[1])]
            at = str(np.datetime64(int(times[int(i[0])]), "us").astype("datetime64[s]")) + "Z"
            raise StrategyError(self, f"exposure {e[tuple(i)]:g} for {sym} at {at}: an exposure is a finite number "
                                      "(1.0 one unit, -1.0 one unit short; NaN: no opinion)")  # fmt: skip

    def exposures(self, market: Market) -> np.ndarray:
        """(time x symbol) desired exposures; NaN where a symbol has no bar or no opinion. Checked to be causal
        (what sweep and walkforward run: signal_rows checks its own)."""
        out = np.full((market.n_times, market.n_symbols), np.nan)
        computed = []
        for s in range(market.n_symbols):
            bars = market.symbol_bars(s)
            computed.append(self._exposure_of(bars))
            out[bars.rows, s] = computed[-1]
        self._check_causal(market, computed)
        return out

    def checked_exposures(self, market: Market) -> np.ndarray:
        """`exposures` as every run takes it. A whole-market model (an override of `exposures`) is given the market
        through read-only views, must return its (time x symbol) shape, and must be causal: computed on the
        market's first half and three quarters of its bars, the same values there (check_exposures)."""
        if type(self).exposures is Strategy.exposures:
            return self.exposures(market)  # each symbol's exposure, checked there
        view = market.read_only()
        full = self._matrix(view)
        if not self.check_exposures:
            return full
        for n in cuts(market.n_times):
            if not same_values(self._matrix(view.head(n)), full[:n]):
                raise StrategyError(self, f"exposures looks ahead: its values on the first {n} bars change when later "
                                          "bars are added (exposures[t] may use bars up to t only)")  # fmt: skip
        return full

    def _matrix(self, market: Market) -> np.ndarray:
        got = self.exposures(market)
        e = real_numbers(got)
        if e is None or e.shape != (market.n_times, market.n_symbols):
            what = "None" if got is None else f"shape {e.shape}" if e is not None else f"a {type(got).__name__}"
            raise StrategyError(self, f"exposures returned {what} for {market.n_times} bars x {market.n_symbols} "
                                      "symbols: it must return a (time x symbol) array of numbers, one per bar and "
                                      "symbol")  # fmt: skip
        self._finite(e, market.times, market.symbols)
        return e

    def params_json(self) -> str:
        return canonical_params(self.params.identity())

    def describe(self) -> str:
        return f"{self.name} " + " ".join(f"{k}={v}" for k, v in self.params.identity().items())

    def signals(self, market: Market) -> pl.DataFrame:
        """One signal per change of held exposure, at the bar where the change was decided, in time order."""
        return self.signal_rows(market).frame

    def signal_rows(self, market: Market) -> SignalRows:
        """`signals` with the arrays the frame was built from, which a backtest of them reads."""
        if type(self).exposures is not Strategy.exposures:  # a whole-market model: its matrix is the source
            return _signal_rows(market, _matrix_changes(market, self.checked_exposures(market), self.params),
                                self.name, self.params_json(), self.params)  # fmt: skip
        lo = _low(self.params)
        if type(self).changes is Strategy.changes:  # exposure is the source: it may use bars up to t only
            self._check_causal(market)
        changes = [self.changes(market.symbol_bars(s), lo, 1.0) for s in range(market.n_symbols)]
        return _signal_rows(market, changes, self.name, self.params_json(), self.params)

    def _check_causal(self, market: Market, computed: list[np.ndarray] | None = None) -> None:
        """exposure on the first half and three quarters of a symbol's bars must give what it gives on them with
        every bar (on the first CHECKED_SYMBOLS symbols). `computed`: each symbol's exposure on all its bars, when
        in hand."""
        for s in range(min(CHECKED_SYMBOLS, market.n_symbols)):
            bars = market.symbol_bars(s)
            full = computed[s] if computed is not None else self._exposure_of(bars)
            for n in cuts(len(bars)):
                if not same_values(self._exposure_of(head(bars, n)), full[:n]):
                    raise StrategyError(self, f"exposure looks ahead: its values on the first {n} bars of "
                                              f"{bars.symbol} change when later bars are added (exposure[t] may use "
                                              "bars up to t only)")  # fmt: skip


def real_numbers(got: object) -> np.ndarray | None:
    """`got` as float64; None when it holds values that are not real numbers (numpy reads the text "0.5" as 0.5,
    drops a complex number's imaginary part and counts a date's days: all were traded). The one rule of exposures
    and event indicators."""
    try:
        raw = np.asarray(got)
        if raw.dtype.kind not in "biufO" or (raw.dtype.kind == "O" and any(isinstance(x, str | bytes | complex)
                                                                           for x in raw.flat)):  # fmt: skip
            return None
        return np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def held_changes(exposure: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bar index, previous state, new state) where the held state changes: NaN keeps the previous state
    (start flat), values are clipped to [lo, hi]."""
    m = exposure.shape[0]
    idx, before, after = np.empty(m, dtype=np.int64), np.empty(m), np.empty(m)
    k = state_changes(np.ascontiguousarray(exposure), lo, hi, idx, before, after)
    return idx[:k], before[:k], after[:k]


def _low(sizing: StrategyParams) -> float:
    return 0.0 if sizing.long_only else -1.0


def signals_from_exposures(
    market: Market, exposures: np.ndarray, strategy: str, params_json: str, sizing: StrategyParams
) -> pl.DataFrame:
    """One signal per change of held exposure, at the bar where the change was decided, in time order."""
    return _signal_rows(market, _matrix_changes(market, exposures, sizing), strategy, params_json, sizing).frame


def _matrix_changes(
    market: Market, exposures: np.ndarray, sizing: StrategyParams
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    lo = _low(sizing)
    changes = []
    for s in range(market.n_symbols):
        col = exposures[:, s] if market.is_full(s) else exposures[market.rows(s), s]
        changes.append(held_changes(col, lo, 1.0))
    return changes


def _signal_rows(
    market: Market,
    changes: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    strategy: str,
    params_json: str,
    sizing: StrategyParams,
) -> SignalRows:
    """The signals from each symbol's held-state changes (indices into the symbol's own bars)."""
    bars = [idx if market.is_full(s) else market.rows(s)[idx] for s, (idx, _, _) in enumerate(changes)]
    t = np.concatenate(bars)
    s_idx = np.concatenate([np.full(c[0].shape[0], s, dtype=np.intp) for s, c in enumerate(changes)])
    order = np.lexsort((s_idx, t))
    t, s_idx = t[order], s_idx[order]
    before = np.concatenate([c[1] for c in changes])[order]
    after = np.concatenate([c[2] for c in changes])[order]
    n = t.shape[0]
    buy, codes, change = np.empty(n, dtype=np.bool_), np.empty(n, dtype=np.int64), np.empty(n)
    signal_sides(before, after, ACTION_CODES["BUY"], ACTION_CODES["SELL"], buy, codes, change)
    if sizing.rebalance is not None:
        t, s_idx, before, after, buy, codes = _with_rebalancing(market, t, s_idx, before, after, buy, codes, sizing)
        n = t.shape[0]
    if sizing.sizing == "quantity":
        quantity = np.multiply(change, sizing.quantity, out=change)
        weight = quantity  # read only where the quantity is NaN: never
    else:
        quantity, weight = np.full(n, np.nan), after * sizing.weight

    ts, price = market.times[t], market.close[t, s_idx]
    nulls = pl.Series([None], dtype=pl.Float64).new_from_index(0, n)
    size = (pl.Series(quantity), nulls) if sizing.sizing == "quantity" else (nulls, pl.Series(weight))
    keys = np.array([id_key(strategy, params_json, sym) for sym in market.symbols], dtype=np.uint64)
    frame = pl.DataFrame([  # already of SIGNAL_SCHEMA's types, in its order
        signal_ids(np.take(keys, s_idx), ts, codes),
        pl.Series("timestamp", ts).cast(SIGNAL_SCHEMA["timestamp"]),
        pl.Series("symbol", market.symbols, dtype=pl.String).gather(s_idx),
        pl.Series("action", ["SELL", "BUY"]).gather(buy.view(np.int8)),
        size[0].alias("quantity"),
        pl.Series("strategy", [strategy] * n, dtype=pl.String),
        pl.Series("price", price),
        size[1].alias("target_weight"),
    ])
    exits = sizing.exits()
    if not exits:
        return SignalRows(frame, ts, t, s_idx, buy, quantity, weight)
    entries = (np.abs(after) > np.abs(before)) | (after * before < 0)  # opens, adds to or flips a position
    frame = with_exits(frame, exits, strategy, entries)
    return SignalRows(frame, ts, t, s_idx, buy, quantity, weight, order_arrays(frame))


def _due(market: Market, every: str | int) -> np.ndarray:
    """The bars that rebalance: every N bars, or the first bar of each New York week or month."""
    if isinstance(every, int):
        return np.arange(market.n_times) % every == 0
    local = market.timestamps().dt.convert_time_zone("America/New_York")
    period = (local.dt.year() * 100 + local.dt.week()) if every == "weekly" else (local.dt.year() * 100 +
                                                                                  local.dt.month())  # fmt: skip
    p = period.to_numpy()
    due = np.empty(p.shape[0], dtype=np.bool_)
    due[0] = False
    due[1:] = p[1:] != p[:-1]
    return due


def _with_rebalancing(
    market: Market, t: np.ndarray, s_idx: np.ndarray, before: np.ndarray, after: np.ndarray, buy: np.ndarray,
    codes: np.ndarray, sizing: StrategyParams,
) -> tuple[np.ndarray, ...]:
    """The signals plus a rebalancing signal per drifted holding on each due bar (strategies.kernels.rebalance_points:
    the held state is unchanged, its target weight restated), in time then symbol order."""
    assert sizing.rebalance is not None
    state = np.empty((market.n_times, market.n_symbols))  # the held state per bar, 0 before the first signal
    changed = np.zeros_like(state, dtype=np.bool_)
    changed[t, s_idx] = True
    for s in range(market.n_symbols):
        mine = s_idx == s
        state[:, s] = np.nan_to_num(fill_steps(t[mine], after[mine], np.empty(market.n_times)))
    cap = market.n_times * market.n_symbols
    rt, rs, rbuy = np.empty(cap, dtype=np.int64), np.empty(cap, dtype=np.int64), np.empty(cap, dtype=np.bool_)
    k = rebalance_points(market.close, state * sizing.weight, changed, _due(market, sizing.rebalance), rt, rs,
                         rbuy)  # fmt: skip
    held = state[rt[:k], rs[:k]]  # restated
    order = np.lexsort((np.concatenate([s_idx, rs[:k]]), np.concatenate([t, rt[:k]])))
    rcodes = np.where(rbuy[:k], ACTION_CODES["BUY"], ACTION_CODES["SELL"])
    return tuple(np.concatenate([a, b])[order] for a, b in ((t, rt[:k]), (s_idx, rs[:k]), (before, held),
                                                              (after, held), (buy, rbuy[:k]), (codes, rcodes)))
