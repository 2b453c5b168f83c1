"""Parameter sweeps: every combination of a grid on every symbol, each combination trading all of them in one
cash account, as a backtest does.

The summary has one row per combination: exactly the metrics of `run_backtest` of that strategy and those
parameters on the window (marketboss.research.windows.evaluate), plus the share of symbols that made money;
that is what rankings, the heatmap and walk-forward selection use. A row of `rows` is one (combination,
symbol) pair: that symbol's part of the account (its round trips' P&L and statistics, fills, commissions,
orders not filled) and its own buy and hold.

MA crossover finds its events in the fused kernel (research.nb.ma_events); any other strategy (plug-ins too) through
its own `exposures` one combination at a time; both then trade through the backtest's kernels. An event-driven
strategy runs its event backtest (backtest.events.event_outcome: the run and its metrics, no table) per combination
over the window's bars.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import polars as pl

from marketboss.backtest.costs import BacktestConfig
from marketboss.backtest.engine import Outcome, signals_outcome, strategy_config
from marketboss.backtest.events import event_outcome
from marketboss.backtest.metrics import buy_and_hold_pct
from marketboss.backtest.nb import Prices, Rules
from marketboss.data.market import Market
from marketboss.research import nb
from marketboss.research.backends import Backend, LocalBackend, plan_chunks
from marketboss.research.dsr import SharpeEstimate, bar_returns, deflated_sharpe, expected_max_sharpe
from marketboss.research.grid import Combinations
from marketboss.research.selection import check_metric, ranking
from marketboss.research.windows import Window, history_exposures, time_slice, window_signals
from marketboss.strategies import StrategyParams, create, resolve
from marketboss.strategies.events import EventStrategy
from marketboss.strategies.ma_crossover import MACrossover, MACrossoverParams

#: A combination's metrics (a backtest's), in research.nb's column order; the keys are backtest.metrics.METRICS'.
METRICS: tuple[str, ...] = (
    "final_equity", "pnl", "total_return_pct", "buy_hold_return_pct", "cagr_pct", "annual_volatility_pct",
    "sharpe", "sortino", "calmar", "max_drawdown_pct", "max_drawdown_duration_bars", "max_drawdown_duration_days",
    "exposure_pct", "n_trades", "win_rate_pct", "profit_factor", "expectancy", "avg_trade_pct", "best_trade_pct",
    "worst_trade_pct", "avg_trade_duration_days", "open_trades", "n_fills", "commissions", "rejected_orders",
    "unfilled_orders",
)  # fmt: skip
INT_METRICS = frozenset(
    {"max_drawdown_duration_bars", "n_trades", "open_trades", "n_fills", "rejected_orders", "unfilled_orders"}
)
#: Columns of a (combination, symbol) row: the symbol's part of the combination's account.
ROW_METRICS: tuple[str, ...] = (
    "pnl", "buy_hold_return_pct", "n_trades", "win_rate_pct", "profit_factor", "expectancy", "avg_trade_pct",
    "best_trade_pct", "worst_trade_pct", "avg_trade_duration_days", "open_trades", "n_fills", "commissions",
    "rejected_orders", "unfilled_orders",
)  # fmt: skip
#: Columns of a summary row: the combination's backtest metrics, then the share of its symbols that made money.
SUMMARY_METRICS: tuple[str, ...] = (*METRICS, "symbols_profitable_pct")
_COL = {k: i for i, k in enumerate(METRICS)}
_ROW_COLS = [_COL[k] for k in ROW_METRICS]
assert len(METRICS) == nb.N_METRICS


@dataclass(frozen=True)
class SweepTask:
    """One chunk of combinations, run against the market a backend holds."""

    strategy: str
    params: tuple[dict[str, Any], ...]
    config: BacktestConfig
    window: Window
    keep_equity: bool = False
    threads: int = 1  # numba threads in the MA kernel (results do not depend on it)


@dataclass(frozen=True)
class ChunkResult:
    rows: np.ndarray  # (combinations, symbols, len(ROW_METRICS))
    summary: np.ndarray  # (combinations, len(SUMMARY_METRICS))
    equity: np.ndarray | None  # (combinations, window bars): each combination's account, when asked for


def _layout(market: Market, window: Window) -> nb.Layout:
    """Each symbol's bar rows, concatenated, with offsets (symbol s: rows[offsets[s]:offsets[s+1]])."""
    parts = [market.rows(s).astype(np.int64) for s in range(market.n_symbols)]
    offsets = np.zeros(market.n_symbols + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([p.shape[0] for p in parts])
    return nb.Layout(offsets, np.concatenate(parts), window.start, window.end)


def _window(market: Market, w: Window) -> nb.Window:
    """The window's market as the backtest kernels read it (what evaluate's time_slice gives the engine)."""
    sl = slice(w.start, w.end)
    close = market.close[sl]
    present = ~np.isnan(close)
    session_end = np.minimum(market.session_end[sl], w.end - 1) - w.start
    prices = Prices(market.times[sl], market.open[sl], market.high[sl], market.low[sl], close, session_end)
    has = present.any(axis=0)
    first = np.where(has, present.argmax(axis=0), 0)
    last = np.where(has, w.bars - 1 - present[::-1].argmax(axis=0), 0)
    cols = np.arange(market.n_symbols)
    with np.errstate(invalid="ignore"):
        symbol_bh = np.where(has, (close[last, cols] / close[first, cols] - 1.0) * 100.0, np.nan)
    buy_hold = buy_and_hold_pct(time_slice(market, w.start, w.end)) if has.any() else float("nan")
    return nb.Window(prices, present.all(axis=0), buy_hold, symbol_bh)


def _grid_params(models: list[StrategyParams]) -> tuple[np.ndarray, ...]:
    """Per combination: lowest held state, sizing by quantity, unit, and exits in percent (NaN: none)."""
    lo = np.array([0.0 if p.long_only else -1.0 for p in models])
    qty = np.array([p.sizing == "quantity" for p in models])
    unit = np.array([p.quantity if p.sizing == "quantity" else p.weight for p in models], dtype=np.float64)
    exits = [np.array([np.nan if getattr(p, k) is None else getattr(p, k) for p in models], dtype=np.float64)
             for k in ("take_profit_pct", "stop_loss_pct", "trail_percent")]  # fmt: skip
    return lo, qty, unit, *exits


def run_chunk(task: SweepTask, market: Market) -> ChunkResult:
    """Every combination of the chunk in its account over the window (runs inside a backend's worker)."""
    w = task.window
    rules, ppy = Rules.of(task.config), market.bars_per_year
    prices = Prices(market.times, market.open, market.high, market.low, market.close, market.session_end)
    layout, win = _layout(market, w), _window(market, w)
    n_comb, n_sym = len(task.params), market.n_symbols
    out = np.empty((n_comb, nb.N_METRICS))
    rows = np.empty((n_comb, n_sym, nb.N_METRICS))
    eq = np.empty((n_comb, w.bars) if task.keep_equity else (0, 0))
    cls = resolve(task.strategy)
    models = [cls.params_model.model_validate(p) for p in task.params]
    lo, qty, unit, tp, sl, trail = _grid_params(models)
    if cls is MACrossover:
        index: dict[tuple[int, bool], int] = {}
        fast_w, slow_w = np.empty(n_comb, dtype=np.int64), np.empty(n_comb, dtype=np.int64)
        for j, p in enumerate(models):
            assert isinstance(p, MACrossoverParams)
            fast_w[j] = index.setdefault((p.fast, p.ma == "ema"), len(index))
            slow_w[j] = index.setdefault((p.slow, p.ma == "ema"), len(index))
        grid = nb.Grid(np.array([k[0] for k in index], dtype=np.int64), np.array([k[1] for k in index], dtype=np.bool_),
                       fast_w, slow_w, lo, qty, unit, tp, sl, trail)  # fmt: skip
        threads = max(1, min(task.threads, numba.config.NUMBA_NUM_THREADS, n_comb))  # type: ignore[attr-defined]
        if threads > 1 and threading.current_thread() is threading.main_thread():
            numba.set_num_threads(threads)
            nb.ma_sweep_threads(prices, layout, *win, grid, rules, ppy, eq, out, rows, threads)
        else:
            nb.ma_sweep(prices, layout, win, grid, rules, ppy, eq, out, rows)
    elif issubclass(cls, EventStrategy):
        bars = time_slice(market, w.start, w.end)  # the window's bars, cut once for every combination
        # each combination made of its parameters validated above (create would resolve the plug-in again)
        for j, params in enumerate(models):
            _event_combo(market, bars, win, cls(params), task, out[j], rows[j], eq[j] if task.keep_equity else None)
    else:
        history = time_slice(market, 0, w.end)
        none = np.zeros(0, dtype=np.int64)
        for j, values in enumerate(task.params):
            if models[j].rebalance is not None:
                continue  # below
            expo = history_exposures(market, create(task.strategy, values), w.end, history)
            events = nb.exposure_events(prices, layout, expo, lo[j])
            one = nb.Grid(none, np.zeros(0, dtype=np.bool_), none, none, *(a[j : j + 1] for a in (lo, qty, unit, tp,
                                                                                                  sl, trail)))
            nb.trade_all(win, events, one, rules, ppy, eq[j : j + 1], out[j : j + 1], rows[j : j + 1])
    if not issubclass(cls, EventStrategy):
        for j in (j for j, p in enumerate(models) if p.rebalance is not None):
            # restated weights on each due bar: trades the kernel's events (changes of held state) do not hold, its
            # backtest's signals do (a class's own default too: it was dropped, and the row was not its backtest's)
            strategy = create(task.strategy, task.params[j])
            bars, signals = window_signals(market, strategy, w)
            config = strategy_config(task.config, strategy)
            run = signals_outcome(bars, signals, config, f"strategy {strategy.describe()}")
            _outcome_row(market, bars, win, run, out[j], rows[j], eq[j] if task.keep_equity else None)
    has = ~np.isnan(win.symbol_buy_hold)
    with np.errstate(invalid="ignore"):
        profitable = (rows[:, :, _COL["pnl"]] > 0).sum(axis=1) / has.sum() * 100.0
    summary = np.concatenate([out, profitable[:, None]], axis=1)
    return ChunkResult(rows[:, :, _ROW_COLS], summary, eq if task.keep_equity else None)


def _event_combo(market: Market, bars: Market, win: nb.Window, strategy: EventStrategy[Any], task: SweepTask,
                 out: np.ndarray, rows: np.ndarray, equity: np.ndarray | None) -> None:
    """An event strategy's combination: its event run over the window's bars as research.windows.evaluate runs
    it, without the tables (backtest.events.event_outcome)."""
    _outcome_row(market, bars, win, event_outcome(bars, strategy, task.config), out, rows, equity)


def _outcome_row(market: Market, bars: Market, win: nb.Window, run: Outcome, out: np.ndarray, rows: np.ndarray,
                 equity: np.ndarray | None) -> None:
    """A combination's backtest over the window's bars (`bars`): the summary its metrics, a row per symbol (of the
    market's) its part."""
    out[:] = [run.metrics[k] for k in METRICS]
    if equity is not None:
        equity[:] = run.equity.equity
    own = np.array([market.symbols.index(s) for s in bars.symbols], dtype=np.int64)  # the window's: a subset
    tr, fills = run.trips, run.fills
    nb.symbol_rows(win.symbol_buy_hold, own[tr.symbol], tr.pnl, tr.return_pct, tr.days, tr.closed, own[fills.symbol],
                   fills.commission, own[run.symbol], run.status.astype(np.int64), rows)  # fmt: skip


@dataclass(frozen=True)
class SweepResult:
    combos: Combinations
    window: Window
    config: BacktestConfig
    rows: pl.DataFrame  # combo, parameters, symbol, ROW_METRICS
    summary: pl.DataFrame  # combo, parameters, SUMMARY_METRICS
    equity: np.ndarray | None  # (combinations, window bars) when kept
    bar_steps: int  # combinations x symbols x bars in the window

    def top(self, metric: str = "sharpe", n: int = 10) -> pl.DataFrame:
        """The n best combinations by a summary metric (undefined values last, grid order on ties)."""
        order = ranking(self.summary[check_metric(metric, "metric")].to_numpy(), metric)[:n]
        return self.summary[order]


def bar_step_cost(strategy: str) -> float:
    """What a bar-step (a combination's bar of a symbol) of the strategy costs against one of the MA crossover's
    fused kernel, the unit of the backends' CHUNK_WORK and LOCAL_POOL_WORK. Measured (session 25, 50 symbols x
    1,258 daily bars): the MA kernel 2.6e8 bar-steps a second on a thread, another exposure strategy 1.9e7 (its
    exposures per combination), an event strategy 0.7-1.3e7 (its run per combination) with its compiled on_bar,
    0.8-2.1e6 with a plain one (bench_events.py). Counted alike, an event sweep stayed in this process up to two
    minutes of work, where two processes already took a fifth off 5 s (a plain one's, with --workers 2 too)."""
    cls = resolve(strategy)
    if cls is MACrossover:
        return 1.0
    if issubclass(cls, EventStrategy):
        return 30.0 if cls.compiled is not EventStrategy.compiled else 200.0
    return 15.0


def plan_tasks(
    combos: Combinations, config: BacktestConfig, window: Window, n_symbols: int, backend: Backend,
    keep_equity: bool = False,
) -> list[SweepTask]:
    """The combinations cut into chunks for the backend (results do not depend on the cut)."""
    dicts = combos.dicts()
    per_combination = n_symbols * window.bars * bar_step_cost(combos.strategy)
    chunks = plan_chunks(len(dicts), per_combination, backend)
    threads = backend.threads_per_task(len(dicts) * per_combination, len(chunks))
    return [SweepTask(combos.strategy, tuple(dicts[c.start : c.stop]), config, window, keep_equity, threads)
            for c in chunks]


def run_tasks(
    tasks: list[SweepTask], market: Market, backend: Backend, on_progress: Callable[[int], None] | None = None
) -> list[ChunkResult]:
    """Every task on the backend, in order; on_progress(k) reports k more combinations done."""
    work = float(sum(len(t.params) * t.window.bars * bar_step_cost(t.strategy) for t in tasks) * market.n_symbols)

    def done(i: int) -> None:
        if on_progress:
            on_progress(len(tasks[i].params))

    return backend.map(run_chunk, tasks, market, work=work, on_done=done)


def sweep(
    market: Market,
    combos: Combinations,
    config: BacktestConfig | None = None,
    window: Window | None = None,
    backend: Backend | None = None,
    on_progress: Callable[[int], None] | None = None,
    keep_equity: bool = False,
) -> SweepResult:
    """Every combination on every symbol over the window (default: all bars). on_progress(k) reports k more
    combinations done."""
    cfg = config or BacktestConfig()
    w = window or Window(0, market.n_times)
    if w.end > market.n_times:
        raise ValueError(f"window {w} beyond the market's {market.n_times} bars")
    be = backend or LocalBackend()
    results = run_tasks(plan_tasks(combos, cfg, w, market.n_symbols, be, keep_equity), market, be, on_progress)
    return assemble(combos, market, cfg, w, results)


@dataclass(frozen=True)
class Deflation:
    """The best combination by Sharpe against the trials it was picked from (research.dsr): picking the best of
    N inflates its Sharpe ratio, so its backtest says little until held to what luck alone gives."""

    combo: int  # the best's index in the combinations
    sharpe: float  # its Sharpe ratio (annualised)
    trials: int  # the combinations with a Sharpe ratio
    expected_max_sharpe: float  # annualised: the best of as many skill-less trials' expected Sharpe ratio
    dsr: float  # the deflated Sharpe ratio: P(the best's true Sharpe ratio exceeds that)


def deflation(result: SweepResult, market: Market, backend: Backend | None = None) -> Deflation | None:
    """The sweep's best combination by Sharpe, deflated by its trials (its equity run again, one combination);
    None with fewer than two combinations of a Sharpe ratio."""
    ppy = market.bars_per_year
    sharpe = result.summary["sharpe"].to_numpy()
    finite = np.isfinite(sharpe)
    if finite.sum() < 2:
        return None
    row = int(np.argmax(np.where(finite, sharpe, -np.inf)))
    combo = int(result.summary["combo"][row])
    per_bar = sharpe[finite] / np.sqrt(ppy)
    variance, n = float(per_bar.var(ddof=1)), int(per_bar.shape[0])
    task = SweepTask(result.combos.strategy, (result.combos.dicts()[combo],), result.config, result.window,
                     keep_equity=True)  # fmt: skip
    (run,) = run_tasks([task], market, backend or LocalBackend(1))
    assert run.equity is not None
    est = SharpeEstimate.of(bar_returns(run.equity[0], result.config.cash))
    return Deflation(combo, float(sharpe[row]), n, expected_max_sharpe(n, variance) * float(np.sqrt(ppy)),
                     deflated_sharpe(est, n, variance))  # fmt: skip


def assemble(
    combos: Combinations, market: Market, config: BacktestConfig, window: Window, results: list[ChunkResult]
) -> SweepResult:
    rows = np.concatenate([r.rows for r in results])
    summary = np.concatenate([r.summary for r in results])
    kept = [r.equity for r in results if r.equity is not None]
    return SweepResult(
        combos, window, config, _rows_frame(combos, market, rows), _summary_frame(combos, summary),
        np.concatenate(kept) if kept else None, len(combos.params) * market.n_symbols * window.bars,
    )


def _param_columns(combos: Combinations, repeat: int) -> dict[str, pl.Series]:
    cols: dict[str, pl.Series] = {"combo": pl.Series(np.repeat(np.arange(len(combos.params)), repeat))}
    for key in combos.keys:
        values = [getattr(p, key) for p in combos.params]
        cols[key] = pl.Series(key, values).gather(np.repeat(np.arange(len(values)), repeat))
    return cols


def _metric_frame(names: tuple[str, ...], values: np.ndarray) -> pl.DataFrame:
    df = pl.from_numpy(values, schema=list(names))
    ints = [n for n in names if n in INT_METRICS]
    return df.with_columns(pl.col(ints).fill_nan(None).cast(pl.Int64))


def _rows_frame(combos: Combinations, market: Market, rows: np.ndarray) -> pl.DataFrame:
    n_comb, n_sym = rows.shape[0], rows.shape[1]
    symbols = pl.Series("symbol", market.symbols, dtype=pl.String).gather(np.tile(np.arange(n_sym), n_comb))
    params = pl.DataFrame({**_param_columns(combos, n_sym), "symbol": symbols})
    return pl.concat([params, _metric_frame(ROW_METRICS, rows.reshape(n_comb * n_sym, -1))], how="horizontal")


def _summary_frame(combos: Combinations, summary: np.ndarray) -> pl.DataFrame:
    return pl.concat([pl.DataFrame(_param_columns(combos, 1)), _metric_frame(SUMMARY_METRICS, summary)],
                     how="horizontal")
