"""Walk-forward optimisation: choose parameters on a training window, trade them on the next window, roll on.

Each fold sweeps the grid over its training bars and picks the best combination by the chosen metric of its
one account (sweep.py's summary: the backtest on those bars); that combination is then run over the test bars
that follow, which no choice has seen. The test windows are contiguous, so their equity curves stitch (by
compounding their returns) into one out-of-sample curve. In-sample and out-of-sample metrics sit side by side
per fold; the deflated Sharpe ratio says how much of the in-sample edge a best-of-N search would produce by luck
alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from marketboss.backtest.costs import BacktestConfig
from marketboss.backtest.metrics import equity_metrics
from marketboss.data.market import Market
from marketboss.errors import MarketBossError
from marketboss.research.backends import Backend, LocalBackend
from marketboss.research.dsr import (
    SharpeEstimate,
    bar_returns,
    deflated_sharpe,
    expected_max_sharpe,
    probabilistic_sharpe,
)
from marketboss.research.grid import Combinations
from marketboss.research.selection import best_index, check_metric
from marketboss.research.sweep import SUMMARY_METRICS, ChunkResult, SweepTask, plan_tasks, run_tasks
from marketboss.research.windows import Window

_S = {k: i for i, k in enumerate(SUMMARY_METRICS)}


@dataclass(frozen=True)
class Fold:
    index: int
    train: Window
    test: Window


def plan_folds(n_bars: int, train: int, test: int, anchored: bool = False) -> list[Fold]:
    """Training windows of `train` bars (from the first bar when anchored), each followed by up to `test`
    bars; the last test window may be shorter (at least 2 bars)."""
    if train < 2 or test < 2:
        raise MarketBossError("--train and --test must each be at least 2 bars")
    folds: list[Fold] = []
    b = train
    while b + 2 <= n_bars:
        folds.append(Fold(len(folds), Window(0 if anchored else b - train, b), Window(b, min(b + test, n_bars))))
        b += test
    if not folds:
        raise MarketBossError(f"not enough bars for one fold: the data has {n_bars}, a fold needs --train ({train}) "
                              "plus at least 2 test bars")
    return folds


@dataclass(frozen=True)
class WalkForwardResult:
    combos: Combinations
    metric: str
    folds: pl.DataFrame  # one row per fold: windows, chosen parameters, in- and out-of-sample metrics, DSR
    equity: pl.DataFrame  # the stitched out-of-sample equity: timestamp, equity, fold
    summary: dict[str, Any]  # out-of-sample metrics of the stitched curve, PSR, DSR, in- vs out-of-sample


def walk_forward(
    market: Market,
    combos: Combinations,
    train: int,
    test: int,
    config: BacktestConfig | None = None,
    anchored: bool = False,
    metric: str = "sharpe",
    backend: Backend | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> WalkForwardResult:
    """on_progress(k) reports k more combination-windows evaluated (of len(folds) x (combinations + 2))."""
    check_metric(metric)
    cfg = config or BacktestConfig()
    be = backend or LocalBackend()
    folds = plan_folds(market.n_times, train, test, anchored)
    initial = cfg.cash  # each combination's one account, as a backtest
    ppy = market.bars_per_year

    # Round 1: every fold's training sweep, all at once so that the backend stays busy.
    plans = [plan_tasks(combos, cfg, f.train, market.n_symbols, be) for f in folds]
    flat = run_tasks([t for p in plans for t in p], market, be, on_progress)
    per_fold: list[np.ndarray] = []
    at = 0
    for p in plans:
        per_fold.append(np.concatenate([r.summary for r in flat[at : at + len(p)]]))
        at += len(p)
    chosen: list[int] = []
    for f, summ in zip(folds, per_fold, strict=True):
        i = best_index(summ[:, _S[metric]], metric)
        if i is None:
            raise MarketBossError(f"fold {f.index}: no combination has a defined {metric} on its training window "
                                  "(too few bars or no trades)")
        chosen.append(i)

    # Round 2: the chosen combination of each fold on its test window, and again on its training window
    # (for its return series), equity kept.
    dicts = combos.dicts()
    second = [SweepTask(combos.strategy, (dicts[i],), cfg, w, keep_equity=True)
              for f, i in zip(folds, chosen, strict=True) for w in (f.test, f.train)]
    evals: list[ChunkResult] = run_tasks(second, market, be, on_progress)

    rows: list[dict[str, Any]] = []
    parts_t, parts_e, parts_f = [], [], []
    level = initial
    trial_var: list[float] = []
    trials: list[int] = []
    for f, i, summ, k in zip(folds, chosen, per_fold, range(len(folds)), strict=True):
        oos, ins = evals[2 * k], evals[2 * k + 1]
        assert oos.equity is not None and ins.equity is not None
        sharpes = summ[:, _S["sharpe"]] / np.sqrt(ppy)
        sharpes = sharpes[np.isfinite(sharpes)]
        n_trials = int(sharpes.shape[0])
        var = float(sharpes.var(ddof=1)) if n_trials > 1 else 0.0
        trials.append(n_trials)
        trial_var.append(var)
        is_est = SharpeEstimate.of(bar_returns(ins.equity[0], initial))
        eq = oos.equity[0]
        parts_t.append(market.times[f.test.start : f.test.end])
        parts_e.append(eq * (level / initial))
        parts_f.append(np.full(eq.shape[0], f.index))
        level = float(parts_e[-1][-1])
        o, s = oos.summary[0], summ[i]
        row: dict[str, Any] = {
            "fold": f.index,
            "train_start": int(market.times[f.train.start]),
            "train_end": int(market.times[f.train.end - 1]),
            "test_start": int(market.times[f.test.start]),
            "test_end": int(market.times[f.test.end - 1]),
            **{key: getattr(combos.params[i], key) for key in combos.keys},
            "trials": n_trials,
            f"is_{metric}": float(s[_S[metric]]),
            f"oos_{metric}": float(o[_S[metric]]),
        }
        for key in ("sharpe", "total_return_pct", "max_drawdown_pct", "n_trades"):
            row.setdefault(f"is_{key}", float(s[_S[key]]))
            row.setdefault(f"oos_{key}", float(o[_S[key]]))
        row["is_dsr"] = deflated_sharpe(is_est, n_trials, var)
        rows.append(row)

    times = np.concatenate(parts_t)
    stitched = np.concatenate(parts_e)
    folds_df = pl.DataFrame(rows).with_columns(
        pl.col(c).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        for c in ("train_start", "train_end", "test_start", "test_end")
    )
    equity = pl.DataFrame({"timestamp": times, "equity": stitched, "fold": np.concatenate(parts_f)}).with_columns(
        pl.col("timestamp").cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    )
    oos_est = SharpeEstimate.of(bar_returns(stitched, initial))
    n_trials = round(float(np.mean(trials)))
    variance = float(np.mean(trial_var))
    is_vals = folds_df[f"is_{metric}"].to_numpy()
    oos_vals = folds_df[f"oos_{metric}"].to_numpy()
    summary: dict[str, Any] = {
        "strategy": combos.strategy,
        "metric": metric,
        "folds": len(folds),
        "train_bars": train,
        "test_bars": test,
        "anchored": anchored,
        "trials_per_fold": n_trials,
        "symbols": market.n_symbols,
        **{f"oos_{k}": v for k, v in equity_metrics(times, stitched, initial=initial, periods_per_year=ppy).items()},
        f"is_{metric}_mean": float(np.nanmean(is_vals)) if np.isfinite(is_vals).any() else float("nan"),
        f"oos_{metric}_mean": float(np.nanmean(oos_vals)) if np.isfinite(oos_vals).any() else float("nan"),
        "oos_psr": probabilistic_sharpe(oos_est),
        "oos_dsr": deflated_sharpe(oos_est, n_trials, variance),
        "expected_max_sharpe": expected_max_sharpe(n_trials, variance) * float(np.sqrt(ppy)),
    }
    return WalkForwardResult(combos, metric, folds_df, equity, summary)
