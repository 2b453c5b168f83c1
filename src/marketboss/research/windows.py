"""Windows of the market's time axis, and a strategy evaluated on one with the backtest engine itself.

The rule every research result follows (the sweep kernel and the engine path alike): a strategy's exposures
are computed from all bars before the window's end (history before the window warms its indicators up; no
bar at or after the end is ever read), and the account starts flat at the window's first bar holding what
the strategy holds then: a missing opinion at that bar means its last opinion before the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from marketboss.backtest.costs import BacktestConfig
from marketboss.backtest.engine import BacktestResult, run_backtest, strategy_config
from marketboss.data.market import Market
from marketboss.errors import MarketBossError
from marketboss.strategies import Strategy, signals_from_exposures
from marketboss.strategies.events import EventStrategy


@dataclass(frozen=True)
class Window:
    """Bars [start, end) of the market's time axis."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise MarketBossError(f"empty or inverted window [{self.start}, {self.end})")

    @property
    def bars(self) -> int:
        return self.end - self.start


def time_slice(market: Market, start: int, end: int, symbols: list[int] | None = None) -> Market:
    """Bars [start, end) of some symbols (default all that have a bar there), keeping the market's
    annualisation so that metrics of a slice compare with those of the whole."""
    keep = symbols if symbols is not None else list(range(market.n_symbols))
    present = ~np.isnan(market.close[start:end][:, keep])
    keep = [s for s, has in zip(keep, present.any(axis=0), strict=True) if has]
    if not keep:
        raise MarketBossError("no bars in the window")
    if start == 0 and end == market.n_times and len(keep) == market.n_symbols:  # all of it: no copy, and what
        return market  # the market worked out once (session_end) stays worked out
    sl = slice(start, end)

    def cut(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a[sl][:, keep])

    return Market(tuple(market.symbols[s] for s in keep), market.times[sl], cut(market.open), cut(market.high),
                  cut(market.low), cut(market.close), cut(market.volume), bars_per_year=market.bars_per_year)


def history_exposures(
    market: Market, strategy: Strategy[Any], end: int, history: Market | None = None
) -> np.ndarray:
    """(end x symbols) exposures computed from bars [0, end) only (`history`: that slice, when already cut);
    NaN for symbols without a bar there."""
    hist = history or time_slice(market, 0, end)
    full = np.full((end, market.n_symbols), np.nan)
    full[:, [market.symbols.index(s) for s in hist.symbols]] = strategy.checked_exposures(hist)
    return full


def window_exposures(market: Market, strategy: Strategy[Any], window: Window) -> np.ndarray:
    """The strategy's exposures over the window (time x symbol), from history up to the window's end, with
    each symbol's first bar in the window carrying its last opinion from before."""
    full = history_exposures(market, strategy, window.end)
    out = full[window.start :].copy()
    if window.start == 0:
        return out
    for s in range(market.n_symbols):
        rows = np.flatnonzero(~np.isnan(market.close[window.start : window.end, s]))
        if rows.shape[0] == 0 or not np.isnan(out[rows[0], s]):
            continue
        before = full[: window.start, s]
        known = np.flatnonzero(~np.isnan(before))
        if known.shape[0]:
            out[rows[0], s] = before[known[-1]]
    return out


def evaluate(
    market: Market,
    strategy: Strategy[Any],
    window: Window | None = None,
    config: BacktestConfig | None = None,
    symbols: list[int] | None = None,
) -> BacktestResult:
    """The backtest engine on a window (default: all bars), all symbols in one account or only `symbols`, long-only
    when the strategy is (engine.strategy_config). An event strategy runs its event backtest over the window's bars
    (its indicators warm up inside the window)."""
    w = window or Window(0, market.n_times)
    config = strategy_config(config, strategy)
    if isinstance(strategy, EventStrategy):  # its event run on the window's bars, flat at its start
        result: BacktestResult = strategy.backtest(time_slice(market, w.start, w.end, symbols), config)[0]
        return result
    sub, signals = window_signals(market, strategy, w, symbols)
    return run_backtest(sub, signals, config, source=f"strategy {strategy.describe()}")


def window_signals(market: Market, strategy: Strategy[Any], window: Window, symbols: list[int] | None = None
                   ) -> tuple[Market, pl.DataFrame]:  # fmt: skip
    """An exposure strategy's window as evaluate backtests it: the window's bars (of `symbols`) and its signals
    there (its exposures from the history before it too, the position held at its start entered on its first
    bar; its rebalancing's)."""
    expo = window_exposures(market, strategy, window)
    sub = time_slice(market, window.start, window.end, symbols)
    cols = [market.symbols.index(s) for s in sub.symbols]
    return sub, signals_from_exposures(sub, expo[:, cols], strategy.name, strategy.params_json(), strategy.params)
