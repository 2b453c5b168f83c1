"""What the Python API adds to the names it re-exports (marketboss/__init__.py): a backtest (`run`: the name
`backtest` is the package's) and a parameter sweep of a strategy from a notebook or a script, through the
very engines `marketboss backtest` and `marketboss sweep` run (backtest.engine, research.sweep), with results
as polars frames and metrics.

A strategy is given as an instance, a class, a registered name or a plug-in form (`path/to/file.py:Class`);
bars as a frame (read_bars' or synth_bars'), a Market or a file path.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import ValidationError

from marketboss.backtest.costs import BacktestConfig
from marketboss.backtest.engine import BacktestResult, run_backtest, run_strategy
from marketboss.data.io import checked_bars, read_bars
from marketboss.data.market import Market
from marketboss.errors import MarketBossError
from marketboss.research.backends import Backend, LocalBackend
from marketboss.research.grid import combinations
from marketboss.research.sweep import SweepResult
from marketboss.research.sweep import sweep as run_sweep
from marketboss.research.windows import Window
from marketboss.signals import checked_frame
from marketboss.strategies import Strategy, create, register
from marketboss.strategies.plugins import spec_of

Bars = Market | pl.DataFrame | str | Path
StrategyLike = Strategy[Any] | type[Strategy[Any]] | str


def load_market(bars: Bars) -> Market:
    """Bars as the dense arrays strategies and the backtest read: from a file, a bars frame (polars or pandas,
    held to a file's rules) or a Market."""
    if isinstance(bars, Market):
        return bars
    return Market.from_bars(read_bars(bars) if isinstance(bars, str | Path) else checked_bars(bars))


def make_strategy(strategy: StrategyLike, params: Mapping[str, Any] | None = None) -> Strategy[Any]:
    """An instance (as given, without params), a class's or a name's with `params` validated."""
    if isinstance(strategy, Strategy):
        if params:
            raise MarketBossError("params go to a strategy class or name; this instance has its own")
        return strategy
    if isinstance(strategy, type):
        return strategy(**dict(params or {}))  # its parameters checked as create checks a name's
    return create(strategy, dict(params or {}))


def _config(config: BacktestConfig | None, fields: Mapping[str, Any], strategy: Any = None) -> BacktestConfig:
    """The backtest's settings: `config`, or its fields as keywords, checked in one line naming the field (and
    saying where a strategy's parameter given as a keyword goes)."""
    if config is not None and fields:
        raise MarketBossError(f"give config= or its fields ({', '.join(fields)}), not both")
    if config is not None:
        return config
    try:
        return BacktestConfig.model_validate(dict(fields))
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"])
        model = getattr(strategy, "params_model", None)
        if err["type"] == "extra_forbidden" and model is not None and name in model.model_fields:
            raise MarketBossError(f"'{name}' is a parameter of strategy '{strategy.name}': give it in params= "
                                  f"(params={{'{name}': {fields[name]!r}}}); keywords are the backtest's settings: "
                                  f"{', '.join(BacktestConfig.model_fields)}") from None  # fmt: skip
        what = "no backtest setting" if err["type"] == "extra_forbidden" else "backtest setting"
        raise MarketBossError(f"{what} '{name}': {err['msg']}; settings: {', '.join(BacktestConfig.model_fields)}"
                              ) from None


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
    if isinstance(strategy, pl.DataFrame):
        return run_backtest(load_market(bars), checked_frame(strategy), _config(config, config_fields))
    made = make_strategy(strategy, params)
    result, _ = run_strategy(load_market(bars), made, _config(config, config_fields, made))
    return result


def _spec(strategy: type[Strategy[Any]] | str) -> tuple[str, bool]:
    """A form the sweep's workers find the strategy by: its name or plug-in form, and whether only this process
    knows it: a class defined here (a script's or a notebook's) is registered under its name, which worker
    processes never see."""
    if isinstance(strategy, str):
        return strategy, False
    found = spec_of(strategy)
    if found is not None:
        return found, False
    module = strategy.__module__
    if module != "__main__" and importlib.util.find_spec(module) is not None and "<" not in strategy.__qualname__:
        return f"{module}:{strategy.__qualname__}", False
    try:
        register(strategy, replace=True)
    except ValueError as exc:
        raise MarketBossError(str(exc)) from None
    return strategy.name, True


def _here(backend: Backend | None, strategy: type[Strategy[Any]]) -> Backend:
    """A backend running every combination in this process, for a strategy only it knows (a large sweep went to
    worker processes, which stopped on "unknown strategy")."""
    if backend is None or isinstance(backend, LocalBackend):
        workers = backend.workers if backend is not None else None
        return LocalBackend(workers, pool_work=math.inf, pool_after=math.inf)
    raise MarketBossError(f"{strategy.__name__} is defined in this script, which {backend.describe()}'s workers "
                          "cannot import: give it as 'path/to/file.py:ClassName' (or define it in a module)")


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
    `result.rows` (per combination and symbol) and `result.top(metric, n)`. `window`: bars [start, end) (an
    exposure strategy's exposures read the bars before it too, as its signals are decided on the whole data; an
    event strategy runs on the window's bars alone, as `run` on them).
    Combinations the parameters refuse together (a stop-loss with a trailing stop) are skipped with a warning
    (a range of values may cross another's bound); `result.combos` holds those run."""
    if isinstance(strategy, Strategy):
        raise MarketBossError(f"sweep takes the strategy's class or name (it makes one for each combination), not "
                              f"an instance: sweep({type(strategy).__name__}, ...)")  # fmt: skip
    for name, values in grid.items():
        if isinstance(values, str) or not isinstance(values, Iterable):
            raise MarketBossError(f"grid: each parameter takes a list of values, {name}={values!r} is one value (give "
                                  f"[{values!r}], or put it in params=)")  # fmt: skip
    cfg = _config(config, config_fields, strategy if isinstance(strategy, type) else None)
    spec, here_only = _spec(strategy)
    if here_only:
        backend = _here(backend, strategy)  # type: ignore[arg-type]
    combos = combinations(spec, {k: list(v) for k, v in grid.items()}, dict(params or {}))
    if combos.skipped:
        warnings.warn(f"{combos.skipped} of {combos.skipped + len(combos.params)} parameter combinations skipped as "
                      f"invalid (e.g. {combos.skip_reason})", stacklevel=2)  # fmt: skip
    w = Window(*window) if window is not None else None
    return run_sweep(load_market(bars), combos, cfg, window=w, backend=backend)


__all__ = ["load_market", "make_strategy", "run", "sweep"]
