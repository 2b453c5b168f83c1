"""What the Python API adds to the names it re-exports (marketboss/__init__.py): a backtest (`run`: the name
`backtest` is the package's) and a parameter sweep of a strategy from a notebook or a script, through the
very engines `marketboss backtest` and `marketboss sweep` run (backtest.engine, research.sweep), with results
as polars frames and metrics.

A strategy is given as an instance, a class, a registered name or a plug-in form (`path/to/file.py:Class`);
bars as a frame (read_bars' or synth_bars'), a Market or a file path.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from marketboss.backtest.costs import BacktestConfig
from marketboss.backtest.engine import BacktestResult, run_backtest, run_strategy
from marketboss.data.io import read_bars
from marketboss.data.market import Market
from marketboss.errors import MarketBossError
from marketboss.research.backends import Backend
from marketboss.research.grid import combinations
from marketboss.research.sweep import SweepResult
from marketboss.research.sweep import sweep as run_sweep
from marketboss.research.windows import Window
from marketboss.strategies import Strategy, create, register
from marketboss.strategies.plugins import spec_of

Bars = Market | pl.DataFrame | str | Path
StrategyLike = Strategy[Any] | type[Strategy[Any]] | str


def load_market(bars: Bars) -> Market:
    """Bars as the dense arrays strategies and the backtest read: from a file, a bars frame or a Market."""
    if isinstance(bars, Market):
        return bars
    return Market.from_bars(read_bars(bars) if isinstance(bars, str | Path) else bars)


def make_strategy(strategy: StrategyLike, params: Mapping[str, Any] | None = None) -> Strategy[Any]:
    """An instance (as given, without params), a class's or a name's with `params` validated."""
    if isinstance(strategy, Strategy):
        if params:
            raise MarketBossError("params go to a strategy class or name; this instance has its own")
        return strategy
    if isinstance(strategy, type):
        return strategy(strategy.params_model.model_validate(dict(params or {})))
    return create(strategy, dict(params or {}))


def _config(config: BacktestConfig | None, fields: Mapping[str, Any]) -> BacktestConfig:
    if config is not None and fields:
        raise MarketBossError(f"give config= or its fields ({', '.join(fields)}), not both")
    return config if config is not None else BacktestConfig.model_validate(dict(fields))


def run(
    strategy: StrategyLike | pl.DataFrame,
    bars: Bars,
    params: Mapping[str, Any] | None = None,
    *,
    config: BacktestConfig | None = None,
    **config_fields: Any,
) -> BacktestResult:
    """Backtest a strategy (or a signals frame) on the bars: `result.equity`, `.fills`, `.trades`, `.orders`
    (polars frames) and `.metrics` (a dict), as `marketboss backtest` computes them. The costs and fill rules
    are a BacktestConfig or its fields as keywords, e.g. `cash=50_000, fill="close", costs={"slippage_bps": 2}`."""
    market = load_market(bars)
    cfg = _config(config, config_fields)
    if isinstance(strategy, pl.DataFrame):
        return run_backtest(market, strategy, cfg)
    result, _ = run_strategy(market, make_strategy(strategy, params), cfg)
    return result


def _spec(strategy: type[Strategy[Any]] | str) -> str:
    """A form the sweep's workers find the strategy by: its name or plug-in form; a class defined here (a
    notebook's) is registered under its name, which this process's workers (the default for small sweeps) see."""
    if isinstance(strategy, str):
        return strategy
    found = spec_of(strategy)
    if found is not None:
        return found
    module = strategy.__module__
    if module != "__main__" and importlib.util.find_spec(module) is not None and "<" not in strategy.__qualname__:
        return f"{module}:{strategy.__qualname__}"
    try:
        register(strategy, replace=True)
    except ValueError as exc:
        raise MarketBossError(str(exc)) from None
    return strategy.name


def sweep(
    strategy: type[Strategy[Any]] | str,
    bars: Bars,
    grid: Mapping[str, Sequence[Any]],
    params: Mapping[str, Any] | None = None,
    *,
    config: BacktestConfig | None = None,
    window: tuple[int, int] | None = None,
    backend: Backend | None = None,
    **config_fields: Any,
) -> SweepResult:
    """Every combination of `grid` (name -> values) with the fixed `params`, each on every symbol in one
    account, as `marketboss sweep` runs them: `result.summary` (a row of backtest metrics per combination),
    `result.rows` (per combination and symbol) and `result.top(metric, n)`. `window`: bars [start, end)."""
    market = load_market(bars)
    combos = combinations(_spec(strategy), {k: list(v) for k, v in grid.items()}, dict(params or {}))
    w = Window(*window) if window is not None else None
    return run_sweep(market, combos, _config(config, config_fields), window=w, backend=backend)


__all__ = ["load_market", "make_strategy", "run", "sweep"]
