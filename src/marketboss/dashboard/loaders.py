"""The dashboard's data, loaded through the same readers and computed by the same functions as the CLI
(read_bars, read_signals_frame, run_backtest, compare_backtest_paper, load_run, ...), cached by file identity.

Every loader takes FileKeys rather than paths: the page stats each file on every rerun and an edited file
becomes a new key, so what is shown follows the files without a hard refresh. A missing file raises NotFound,
an empty one Empty, a malformed one the reader's InputError (file, line, field): the page shows each in the
section that needs the file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from marketboss.backtest.costs import BacktestConfig, Costs
from marketboss.backtest.engine import BacktestResult, run_backtest
from marketboss.backtest.metrics import VersusBuyAndHold
from marketboss.backtest.runs import METRICS_FILE, Run, load_run
from marketboss.dashboard.cache import FileKey, file_key, memoize, prefetch
from marketboss.data.calendar import NY
from marketboss.data.io import read_bars
from marketboss.data.market import Market
from marketboss.data.stats import summary
from marketboss.errors import InputError, MarketBossError
from marketboss.execution.live_status import LiveStatus, read_status
from marketboss.execution.logs import TRADE_FIELDS, read_paper_equity, read_paper_trades
from marketboss.execution.reconcile import (
    Comparison,
    ReconcileSettings,
    compare_backtest_paper,
    paper_metrics,
    reconcile_settings,
)
from marketboss.ml import registry
from marketboss.signals import read_signals_frame


class NotFound(MarketBossError):
    """A file that does not exist (yet): information, with the command that makes it."""


class Empty(MarketBossError):
    """A file with nothing in it: a warning."""


HINTS = {
    "Market data": "create it with `marketboss data synth --output data/market_data.jsonl`, or fix the path in "
    "the sidebar",
    "Signals": "generate them with `python scripts/generate_sample_signals.py --data data/market_data.jsonl`",
    "Paper trading equity log": "start paper trading with `python scripts/run_paper_trading.py --signals "
    "data/signals.jsonl`",
    "Paper trades log": "start paper trading with `python scripts/run_paper_trading.py --signals data/signals.jsonl`",
    "Runs directory": "write runs with `marketboss backtest --strategy ma_crossover --output-dir runs/ma_crossover`",
    "Models directory": "train a model with `marketboss train`",
    "Live status file": "start a live session with `marketboss live --strategy ma_crossover --symbols AAPL,MSFT "
    "--timeframe 1Day --replay-from 2024-07-01 --speed 0` (a past window replayed on the local broker, no account "
    "needed; README.md: Live)",
    "Live signals log": "a live session appends each bar's signals there as the bars close",
}


def require(key: FileKey, what: str) -> None:
    if not key.exists:
        raise NotFound(f"{what} `{key.path}` not found: {HINTS.get(what, 'check the path in the sidebar')}.")
    if key.is_dir:
        raise InputError(key.path, "is a directory, expected a file")
    if key.size == 0:
        raise Empty(f"{what} `{key.path}` is empty: nothing to show yet.")


# ------------------------------------------------------------------------------------------- market data


@memoize(2)
def bars(key: FileKey) -> pl.DataFrame:
    require(key, "Market data")
    df = read_bars(key.path)
    if df.is_empty():
        raise Empty(f"Market data `{key.path}` has no bars.")
    return df


@memoize(2)
def market(key: FileKey) -> Market:
    return Market.from_bars(bars(key))


@memoize(2)
def bar_summary(key: FileKey) -> pl.DataFrame:
    return summary(bars(key))


@memoize(16)
def symbol_series(key: FileKey, symbol: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(UTC times as datetime64, close, volume) of one symbol's bars."""
    b = bars(key).filter(pl.col("symbol") == symbol)
    return b["timestamp"].dt.replace_time_zone(None).to_numpy(), b["close"].to_numpy(), b["volume"].to_numpy()


# ----------------------------------------------------------------------------------------------- signals


@memoize(2)
def signals(key: FileKey) -> pl.DataFrame:
    require(key, "Signals")
    df = read_signals_frame(key.path)
    if df.is_empty():
        raise Empty(f"Signals `{key.path}` has no signals.")
    return df


@dataclass(frozen=True)
class SignalOptions:
    symbols: tuple[str, ...]
    actions: tuple[str, ...]
    strategies: tuple[str, ...]
    first: date
    last: date


NO_STRATEGY = "(none)"


@memoize(2)
def signal_options(key: FileKey) -> SignalOptions:
    df = signals(key)
    days = df["timestamp"].dt.date()
    strategies = df["strategy"].fill_null(NO_STRATEGY).unique().sort().to_list()
    return SignalOptions(
        tuple(df["symbol"].unique().sort().to_list()),
        tuple(df["action"].unique().sort().to_list()),
        tuple(strategies),
        days.min(),  # type: ignore[arg-type]
        days.max(),  # type: ignore[arg-type]
    )


@memoize(8)
def filtered_signals(
    key: FileKey, symbols: tuple[str, ...], actions: tuple[str, ...], strategies: tuple[str, ...], start: date,
    end: date,
) -> pl.DataFrame:
    """Signals matching every filter (an empty selection means all), in time order, without the line column."""
    df = signals(key)
    cond = pl.col("timestamp").dt.date().is_between(start, end)
    if symbols:
        cond &= pl.col("symbol").is_in(symbols)
    if actions:
        cond &= pl.col("action").is_in(actions)
    if strategies:
        cond &= pl.col("strategy").fill_null(NO_STRATEGY).is_in(strategies)
    return df.filter(cond).drop("_line", strict=False).sort("timestamp", maintain_order=True)


# ------------------------------------------------------------------------------------------------ backtest


def backtest_config(cash: float, commission: float, slippage_bps: float) -> BacktestConfig:
    return BacktestConfig(cash=cash, costs=Costs(commission=commission, slippage_bps=slippage_bps))


@memoize(4)
def backtest(
    bars_key: FileKey, signals_key: FileKey, cash: float, commission: float, slippage_bps: float
) -> BacktestResult:
    return run_backtest(market(bars_key), signals(signals_key), backtest_config(cash, commission, slippage_bps),
                        source=signals_key.path)  # fmt: skip


@memoize(4)
def versus_buy_and_hold(
    bars_key: FileKey, signals_key: FileKey, cash: float, commission: float, slippage_bps: float
) -> VersusBuyAndHold:
    """The quick backtest beside the equal-weight buy and hold of the same bars (benchmark, yearly, rolling)."""
    result = backtest(bars_key, signals_key, cash, commission, slippage_bps)
    return VersusBuyAndHold.of(result.equity, market(bars_key), cash)


# ---------------------------------------------------------------------------------------------- paper logs


#: The torn last line each log's read left out (a write a crash or a running writer cut short), by its key.
_TORN: dict[FileKey, int] = {}


def torn_line(key: FileKey) -> int | None:
    """The torn last line the log's read (of this version of it) left out, as reconcile says it; None: none."""
    return _TORN.get(key)


def _heard_torn(key: FileKey) -> Callable[[int], None]:
    _TORN.pop(key, None)
    return lambda line: _TORN.__setitem__(key, line)


@memoize(4)
def paper_equity(key: FileKey) -> pl.DataFrame:
    require(key, "Paper trading equity log")
    df = read_paper_equity(Path(key.path), _heard_torn(key))
    if df.is_empty():
        raise Empty(f"Paper trading equity log `{key.path}` has no snapshots yet.")
    return df


@memoize(4)
def paper_trades(key: FileKey) -> pl.DataFrame:
    require(key, "Paper trades log")
    return read_paper_trades(Path(key.path), _heard_torn(key))


NO_TRADES = pl.DataFrame(schema=dict.fromkeys(TRADE_FIELDS, pl.String))


@memoize(4)
def paper_stats(equity_key: FileKey, trades_key: FileKey | None) -> dict[str, Any]:
    """comparison.paper_metrics of the logs; without a trades log, only the equity figures mean anything."""
    trades = paper_trades(trades_key) if trades_key is not None else NO_TRADES
    return paper_metrics(trades, paper_equity(equity_key))


@memoize(4)
def comparison_settings(trades_key: FileKey, commission: float, slippage_bps: float) -> ReconcileSettings:
    """As `marketboss reconcile` takes them, with the sidebar's commission and slippage: the rest as the paper runs
    recorded them (the signals' bars, long-only, the local broker's spread, the exits, fractional sizing)."""
    return reconcile_settings(Path(trades_key.path), commission, slippage_bps=slippage_bps)


@memoize(4)
def comparison(
    bars_key: FileKey, signals_key: FileKey, trades_key: FileKey, equity_key: FileKey, commission: float,
    slippage_bps: float,
) -> Comparison:
    # its cash: compare_backtest_paper starts from paper's
    settings = comparison_settings(trades_key, commission, slippage_bps)
    return compare_backtest_paper(bars(bars_key), signals(signals_key), paper_trades(trades_key),
                                  paper_equity(equity_key), settings.config, settings.exits,
                                  timeframe=settings.timeframe)  # fmt: skip


# -------------------------------------------------------------------------------------------- live session


@memoize(4)
def live_status(key: FileKey) -> LiveStatus:
    """The status file the running `marketboss live` rewrites (atomically) after every bar."""
    require(key, "Live status file")
    status = read_status(Path(key.path))
    if status is None:  # removed between the stat and the read: the next rerun's key says so
        raise NotFound(f"Live status file `{key.path}` not found: {HINTS['Live status file']}.")
    return status


@memoize(2)
def live_signals(key: FileKey) -> pl.DataFrame:
    require(key, "Live signals log")
    return read_signals_frame(key.path, on_torn=_heard_torn(key))  # (the live loop's crash: said, as the others)


@memoize(4)
def signals_on(key: FileKey, day: date) -> pl.DataFrame:
    """The log's signals whose timestamp falls on this New York date, newest first, without the line column."""
    df = live_signals(key)
    on_day = pl.col("timestamp").dt.convert_time_zone(NY).dt.date() == day
    newest_first = df.filter(on_day).drop("_line", strict=False).reverse()
    return newest_first.sort("timestamp", descending=True, maintain_order=True)


# ---------------------------------------------------------------------------------------------------- runs


RUN_FRAMES = ("equity",)  # all the comparison shows besides metrics.json


def run_keys(runs_dir: str) -> list[tuple[FileKey, ...]]:
    """(metrics.json, equity.jsonl) FileKeys per run directory, sorted by name."""
    root = Path(runs_dir)
    if not root.is_dir():
        raise NotFound(f"Runs directory `{runs_dir}` not found: {HINTS['Runs directory']}.")
    dirs = sorted(d for d in root.iterdir() if (d / METRICS_FILE).is_file())
    return [tuple(file_key(d / f) for f in (METRICS_FILE, *(f"{n}.jsonl" for n in RUN_FRAMES))) for d in dirs]


@memoize(32)
def run(keys: tuple[FileKey, ...]) -> Run:
    return load_run(Path(keys[0].path).parent, frames=RUN_FRAMES)


# -------------------------------------------------------------------------------------------------- models


def model_dirs(models_dir: str) -> list[Path]:
    root = Path(models_dir)
    if not root.is_dir():
        raise NotFound(f"Models directory `{models_dir}` not found: {HINTS['Models directory']}.")
    return [root / n for n in registry.model_names(root)]


@dataclass(frozen=True)
class ModelState:
    versions: tuple[registry.ModelVersion, ...]  # newest first
    latest: registry.ModelVersion


def model_state(model_dir: Path) -> ModelState:
    metas = tuple(file_key(d / registry.METADATA) for d in registry.version_dirs(model_dir))
    return _model_state(str(model_dir), metas, file_key(model_dir / registry.LATEST))


@memoize(16)
def _model_state(model_dir: str, metas: tuple[FileKey, ...], latest_key: FileKey) -> ModelState:
    d = Path(model_dir)
    versions = registry.load_versions(d)
    return ModelState(tuple(versions), registry.latest(versions, registry.pointer(d), d))


@memoize(16)
def decisions(key: FileKey) -> list[dict[str, Any]]:
    if not key.exists:
        return []
    return registry.read_decisions(Path(key.path))


# ------------------------------------------------------------------------------------------------ prefetch


def warm(bars_key: FileKey, signals_key: FileKey, runs_dir: str) -> None:
    """Start the slow loads side by side (polars parses bars off the GIL while signals validate and runs
    load); each section then finds its data cached, or waits only for what it needs."""

    def bar_chain() -> None:
        bars(bars_key)
        prefetch(_quietly, lambda: bar_summary(bars_key))
        market(bars_key)

    def run_chain() -> None:
        for keys in run_keys(runs_dir):
            run(keys)

    for job in (bar_chain, lambda: signals(signals_key), run_chain):
        prefetch(_quietly, job)


def _quietly(job: Any) -> None:
    """Failures are cached by the loaders and shown by the sections that need the file."""
    try:
        job()
    except Exception:
        return
