"""Several strategies on the same data and period, side by side; the best by an out-of-sample metric.

Each strategy is backtested by the engine itself, all symbols in one account as `marketboss backtest` and the
paper executor trade them, on two windows: in-sample (the bars before the split) and out-of-sample (the bars
from the split on). Exposures always come from history only (research.windows), so the out-of-sample run sees
nothing later than each bar; it starts flat, holding what the strategy holds at the split. Strategies are
treated generically through the registry: one that cannot run (not registered, no trained model) gets a
one-line reason instead of a result, and the others are still compared.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from marketboss.backtest.costs import BacktestConfig
from marketboss.backtest.metrics import METRICS
from marketboss.data.market import Market
from marketboss.errors import MarketBossError
from marketboss.research.backends import Backend, LocalBackend
from marketboss.research.selection import best_index, check_metric
from marketboss.research.windows import Window, evaluate
from marketboss.strategies import create
from marketboss.strategies.plugins import failure

#: The metrics of each window in the table (every number backtest.metrics computes, dates aside).
TABLE_METRICS: tuple[str, ...] = tuple(k for k, _ in METRICS if k not in ("start", "end"))


@dataclass(frozen=True)
class CompareTask:
    strategy: str
    params: dict[str, Any]
    config: BacktestConfig
    split: int


@dataclass(frozen=True)
class Outcome:
    strategy: str
    params: dict[str, Any] | None  # validated, as the strategy uses them
    in_sample: dict[str, Any] | None
    out_of_sample: dict[str, Any] | None
    error: str | None


def run_compare_task(task: CompareTask, market: Market) -> Outcome:
    """One strategy on both windows (runs inside a backend's worker); a failure is its one-line reason."""
    try:
        strat = create(task.strategy, task.params)
        ins = evaluate(market, strat, Window(0, task.split), task.config)
        oos = evaluate(market, strat, Window(task.split, market.n_times), task.config)
    except Exception as exc:  # a strategy's own failure (e.g. a model that cannot load) must not end the rest
        failed = failure(exc)  # a plug-in's: at its line
        if failed is not None or isinstance(exc, MarketBossError):
            return Outcome(task.strategy, None, None, None, str(exc) if failed is None else failed.detail)
        text = " ".join(str(exc).split()) or "no message"
        return Outcome(task.strategy, None, None, None, f"{type(exc).__name__}: {text}")
    return Outcome(task.strategy, strat.params.model_dump(mode="json"), ins.metrics, oos.metrics, None)


@dataclass(frozen=True)
class Comparison:
    outcomes: list[Outcome]
    metric: str
    best: Outcome | None
    split_time: int  # epoch microseconds of the first out-of-sample bar

    def table(self) -> pl.DataFrame:
        """One row per strategy: parameters, status, whether selected, then in_<metric> and oos_<metric>."""
        rows = []
        for o in self.outcomes:
            row: dict[str, Any] = {
                "strategy": o.strategy,
                "selected": o is self.best,
                "status": "ok" if o.error is None else o.error,
                "params": json.dumps(o.params, sort_keys=True) if o.params is not None else None,
            }
            for prefix, m in (("is", o.in_sample), ("oos", o.out_of_sample)):
                for k in TABLE_METRICS:
                    v = (m or {}).get(k)
                    row[f"{prefix}_{k}"] = None if v is None else float(v)
            rows.append(row)
        schema: dict[str, pl.DataType] = {"strategy": pl.String(), "selected": pl.Boolean(), "status": pl.String(),
                                          "params": pl.String()}
        schema.update({f"{p}_{k}": pl.Float64() for p in ("is", "oos") for k in TABLE_METRICS})
        return pl.DataFrame(rows, schema=schema)


def _metric(metrics: dict[str, Any] | None, key: str) -> float:
    v = (metrics or {}).get(key)
    return float("nan") if v is None else float(v)


def split_index(market: Market, oos_fraction: float | None = None, oos_start: int | None = None) -> int:
    """The first out-of-sample bar: the last `oos_fraction` of the bars, or the first bar at/after oos_start."""
    n = market.n_times
    if oos_start is not None:
        split = int(np.searchsorted(market.times, oos_start))
    else:
        frac = 0.3 if oos_fraction is None else oos_fraction
        if not 0.0 < frac < 1.0:
            raise MarketBossError("--oos-fraction must be between 0 and 1")
        split = n - round(n * frac)
    if not 2 <= split <= n - 2:
        raise MarketBossError(f"the split leaves {split} in-sample and {n - split} out-of-sample bars; "
                              "each side needs at least 2")
    return split


def compare(
    market: Market,
    strategies: list[str],
    params: Mapping[str, Mapping[str, Any]] | None = None,
    config: BacktestConfig | None = None,
    metric: str = "sharpe",
    split: int | None = None,
    backend: Backend | None = None,
) -> Comparison:
    """Every strategy on the same bars; the best is the one with the best out-of-sample `metric` (none when one
    could not run: a selection among the others is not what was asked)."""
    check_metric(metric)
    if not strategies or len(set(strategies)) != len(strategies):
        raise MarketBossError("--strategies must list distinct strategy names")
    cfg = config or BacktestConfig()
    at = split_index(market) if split is None else split
    given = params or {}
    unknown = sorted(set(given) - set(strategies))
    if unknown:
        raise MarketBossError(f"--param for '{unknown[0]}', which is not in --strategies")
    tasks = [CompareTask(s, dict(given.get(s, {})), cfg, at) for s in strategies]
    be = backend or LocalBackend()
    outcomes = be.map(run_compare_task, tasks, market, work=float(len(tasks) * market.n_times * market.n_symbols))
    values = np.array([_metric(o.out_of_sample, metric) for o in outcomes])
    i = None if any(o.error is not None for o in outcomes) else best_index(values, metric)
    return Comparison(outcomes, metric, None if i is None else outcomes[i], int(market.times[at]))
