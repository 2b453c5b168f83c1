"""`marketboss sweep`, `marketboss walkforward` and `marketboss compare`: research at scale, locally or on a
dask cluster (`--backend dask --scheduler tcp://HOST:8786`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from marketboss.backtest.fill_mode import FillMode
from marketboss.cli.common import (
    SkipInvalid,
    console,
    err_console,
    get_settings,
    key_values,
    load_market,
    print_metrics,
    print_table,
)
from marketboss.cli.signals import ParamOpt, StrategyOpt, SymbolsOpt
from marketboss.errors import MarketBossError
from marketboss.logging import get_logger

if TYPE_CHECKING:  # loaded inside the commands that use them: `--help` needs none
    import polars as pl

log = get_logger(__name__)

DataOpt = typer.Option(None, "--data", help="Bars file (default: data/market_data.jsonl).")
GridOpt = typer.Option(..., "--grid", "-g", help="name=start:stop:step (inclusive), name=a,b,c or name=value; "
                                                 "repeatable, e.g. --grid fast=5:50:5 --grid slow=20:200:10.")
MetricOpt = typer.Option("sharpe", "--metric", "-m", help="Rank by: sharpe, sortino, calmar, total_return_pct, "
                                                         "cagr_pct, pnl, final_equity, max_drawdown_pct, "
                                                         "annual_volatility_pct, max_drawdown_duration_days.")
BackendOpt = typer.Option("local", "--backend", help="local (this machine's processes) or dask.")
SchedulerOpt = typer.Option(None, "--scheduler", help="dask scheduler address, e.g. tcp://10.0.0.5:8786.")
WorkersOpt = typer.Option(None, "--workers", help="local: worker processes (default: one per core).")
CashOpt = typer.Option(None, "--cash", help="Starting cash per account (default 100000, env MARKETBOSS_INITIAL_CASH).")
CommissionOpt = typer.Option(0.0, "--commission", help="Fraction of notional per fill, e.g. 0.001.")
PerShareOpt = typer.Option(0.0, "--commission-per-share", help="$ per share per fill.")
MinOpt = typer.Option(0.0, "--commission-min", help="Minimum $ commission per fill.")
SlippageOpt = typer.Option(0.0, "--slippage-bps", help="Adverse fill price move, basis points.")
SpreadOpt = typer.Option(0.0, "--spread-bps", help="Bid-ask spread in bps (half paid per side).")
FillOpt = typer.Option(FillMode.NEXT_OPEN, "--fill", help="next_open: next bar's open (default); close: the "
                                                          "signal bar's close (optimistic).")
FractionalOpt = typer.Option(False, "--fractional/--whole-shares", help="Target-weight sizing may buy fractions.")


def _config(cash: float | None, commission: float, per_share: float, minimum: float, slippage: float,
            spread: float, fill: FillMode, fractional: bool) -> Any:
    from pydantic import ValidationError

    from marketboss.backtest.costs import BacktestConfig, Costs

    try:
        return BacktestConfig(
            cash=get_settings().initial_cash if cash is None else cash,
            costs=Costs(commission=commission, commission_per_share=per_share, commission_min=minimum,
                        slippage_bps=slippage, spread_bps=spread),
            fill=fill,
            fractional=fractional,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        raise MarketBossError(f"--{str(err['loc'][-1]).replace('_', '-')}: {err['msg']}") from None


def _market(data: Path | None, symbols: str | None, skip_invalid: bool) -> tuple[Path, Any]:
    path = data or get_settings().market_data
    return path, load_market(path, skip_invalid, symbols)


@contextmanager
def _progress(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (results stay alone on stdout), on a terminal only: elsewhere (a pipe, a log file)
    it drew nothing but left a blank line before an error's one line."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True, disable=not err_console.is_terminal) as bar:
        task = bar.add_task(label, total=total)
        yield lambda k: bar.advance(task, k)


def write_table(df: pl.DataFrame, path: Path) -> None:
    """Parquet or CSV by the file's extension, written atomically."""
    from marketboss.data.io import atomic_open

    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise MarketBossError(f"{path}: the table is written as .parquet or .csv")
    with atomic_open(path) as fh:
        if suffix == ".parquet":
            df.write_parquet(fh)
        else:
            df.write_csv(fh)


def _skipped(n: int, reason: str | None) -> str:
    return f"; {n:,} invalid combination(s) skipped (e.g. {reason})" if n else ""


def _check_report(report: Path | None) -> None:
    """A report is HTML: --report x.pdf wrote HTML under a name no viewer opens it by."""
    if report and report.suffix.lower() not in (".html", ".htm"):
        raise MarketBossError(f"--report {report}: the report is written as HTML (.html)")


def sweep(
    strategy: str = StrategyOpt,
    grid: list[str] = GridOpt,
    param: list[str] = ParamOpt,
    data: Path = DataOpt,
    symbols: str = SymbolsOpt,
    metric: str = MetricOpt,
    top: int = typer.Option(10, "--top", min=1, help="Best combinations to print."),
    output: Path = typer.Option(None, "--output", "-o", help="Rows table, .parquet or .csv (default: "
                                                             "runs/sweep_<strategy>.parquet); the per-combination "
                                                             "summary goes beside it as <name>.summary.<ext>."),
    report: Path = typer.Option(None, "--report", help="Also write a self-contained HTML report with a heatmap."),
    backend: str = BackendOpt,
    scheduler: str = SchedulerOpt,
    workers: int = WorkersOpt,
    cash: float = CashOpt,
    commission: float = CommissionOpt,
    commission_per_share: float = PerShareOpt,
    commission_min: float = MinOpt,
    slippage_bps: float = SlippageOpt,
    spread_bps: float = SpreadOpt,
    fill: FillMode = FillOpt,
    fractional: bool = FractionalOpt,
    skip_invalid: bool = SkipInvalid,
) -> None:
    """Every parameter combination on every symbol, each combination in one account as a backtest; writes a
    summary row per combination (its backtest metrics) and a row per (combination, symbol) (that symbol's part),
    prints the best."""
    from marketboss.research.backends import make_backend
    from marketboss.research.grid import combinations
    from marketboss.research.selection import check_metric
    from marketboss.research.sweep import deflation
    from marketboss.research.sweep import sweep as run_sweep
    from marketboss.strategies.registry import parse_param_pairs, resolve

    check_metric(metric)
    combos = combinations(strategy, grid, parse_param_pairs(param))
    config = _config(cash, commission, commission_per_share, commission_min, slippage_bps, spread_bps, fill,
                     fractional)
    if fractional:
        from marketboss.signals.exits import check_fractional_params

        check_fractional_params(combos.params)
    out = output or get_settings().runs_dir / f"sweep_{resolve(strategy).name}.parquet"
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise MarketBossError(f"--output {out}: the table is written as .parquet or .csv")
    _check_report(report)
    data_path, market = _market(data, symbols, skip_invalid)
    with make_backend(backend, scheduler, workers) as be:
        t0 = time.perf_counter()
        with _progress(f"sweep {strategy}", len(combos.params)) as advance:
            result = run_sweep(market, combos, config, backend=be, on_progress=advance)
        elapsed = time.perf_counter() - t0
        where = be.describe()
        luck = deflation(result, market, be)
    summary_path = out.with_name(f"{out.stem}.summary{out.suffix}")
    write_table(result.rows, out)
    write_table(result.summary, summary_path)
    best = result.top(metric, top)
    cols = ["combo", *combos.keys, *dict.fromkeys([metric, "sharpe", "total_return_pct", "max_drawdown_pct",
                                                    "n_trades", "symbols_profitable_pct"])]
    print_table(f"best {best.height} of {len(combos.params)} combinations by {metric} (every symbol in one account)",
                cols, best.select(cols).rows())
    n = len(combos.params)
    console.print(
        f"swept {n:,} combination{'s' if n != 1 else ''} x {market.n_symbols} symbols x {market.n_times:,} bars = "
        f"{result.bar_steps:,} bar-steps in {elapsed:.2f}s ({result.bar_steps / elapsed:,.0f}/s) on {where}"
        f"{_skipped(combos.skipped, combos.skip_reason)}\nwrote {out} and {summary_path}", soft_wrap=True,
    )
    if luck is not None:  # the best of many backtests is flattered by the many: how much, said beside it
        console.print(
            f"best by Sharpe: combo {luck.combo}, Sharpe {luck.sharpe:.3f}; the best of {luck.trials:,} skill-less "
            f"trials would show {luck.expected_max_sharpe:.3f} by luck alone: deflated Sharpe (DSR) {luck.dsr:.3f}, "
            "the probability its true Sharpe ratio exceeds that", soft_wrap=True)  # fmt: skip
    if report:
        from marketboss.research.report import write_sweep_report

        info = (f"data {data_path}; {market.n_symbols} symbols, {market.n_times} bars; grid {' '.join(grid)}; "
                f"{len(combos.params)} combinations{_skipped(combos.skipped, combos.skip_reason)}; "
                f"costs {config.costs.model_dump()}; fill {config.fill.value}; cash {config.cash:,.0f}")
        write_sweep_report(result, metric, report, f"Sweep: {strategy}", info)
        console.print(f"wrote report {report}")
    log.info("sweep_done", strategy=strategy, combinations=len(combos.params), skipped=combos.skipped,
             bar_steps=result.bar_steps, seconds=round(elapsed, 3), backend=backend)


def walkforward(
    strategy: str = StrategyOpt,
    grid: list[str] = GridOpt,
    param: list[str] = ParamOpt,
    train: int = typer.Option(504, "--train", help="Training window, in bars."),
    test: int = typer.Option(126, "--test", help="Test window (and step), in bars."),
    anchored: bool = typer.Option(False, "--anchored/--rolling", help="Training windows start at the first bar "
                                                                       "(expanding) or roll (default)."),
    data: Path = DataOpt,
    symbols: str = SymbolsOpt,
    metric: str = MetricOpt,
    output: Path = typer.Option(None, "--output", "-o", help="Folds table, .parquet or .csv."),
    equity_output: Path = typer.Option(None, "--equity-output", help="Stitched out-of-sample equity (.jsonl)."),
    report: Path = typer.Option(None, "--report", help="Also write a self-contained HTML report."),
    backend: str = BackendOpt,
    scheduler: str = SchedulerOpt,
    workers: int = WorkersOpt,
    cash: float = CashOpt,
    commission: float = CommissionOpt,
    commission_per_share: float = PerShareOpt,
    commission_min: float = MinOpt,
    slippage_bps: float = SlippageOpt,
    spread_bps: float = SpreadOpt,
    fill: FillMode = FillOpt,
    fractional: bool = FractionalOpt,
    skip_invalid: bool = SkipInvalid,
) -> None:
    """Optimise on a training window, trade the choice on the next window, roll forward: in-sample against
    out-of-sample per fold, the stitched out-of-sample equity, and the deflated Sharpe ratio."""
    import polars as pl

    from marketboss.data.io import write_jsonl
    from marketboss.research.backends import make_backend
    from marketboss.research.grid import combinations
    from marketboss.research.selection import check_metric
    from marketboss.research.walkforward import plan_folds, walk_forward
    from marketboss.strategies.registry import parse_param_pairs

    check_metric(metric)
    combos = combinations(strategy, grid, parse_param_pairs(param))
    config = _config(cash, commission, commission_per_share, commission_min, slippage_bps, spread_bps, fill,
                     fractional)
    if fractional:
        from marketboss.signals.exits import check_fractional_params

        check_fractional_params(combos.params)
    if output and output.suffix.lower() not in (".parquet", ".csv"):
        raise MarketBossError(f"--output {output}: the table is written as .parquet or .csv")
    if equity_output and equity_output.suffix.lower() not in (".jsonl", ".ndjson"):  # (never --output's, then)
        raise MarketBossError(f"--equity-output {equity_output}: the equity is written as JSON Lines (.jsonl)")
    _check_report(report)
    _, market = _market(data, symbols, skip_invalid)
    folds = plan_folds(market.n_times, train, test, anchored)
    n_folds, last = len(folds), folds[-1].test.end - folds[-1].test.start
    with make_backend(backend, scheduler, workers) as be, _progress(
        f"walk-forward {strategy}", n_folds * (len(combos.params) + 2)
    ) as advance:
        result = walk_forward(market, combos, train, test, config, anchored, metric, be, advance)
    f = result.folds
    cols = ["fold", "test_start", *combos.keys, "trials", *dict.fromkeys(
        [f"is_{metric}", f"oos_{metric}", "is_sharpe", "oos_sharpe", "is_dsr", "oos_total_return_pct"])]
    print_table(f"walk-forward {strategy}: {n_folds} folds, train {train} bars, test {test} bars"
                f"{f' (the last {last}: the data ends)' if last < test else ''}"
                f"{' (anchored)' if anchored else ''}; chosen by in-sample {metric}", cols, f.select(cols).rows())
    s = result.summary
    print_table("out-of-sample (stitched test windows)", ["figure", "value"], [
        ["Return %", s["oos_total_return_pct"]], ["CAGR %", s["oos_cagr_pct"]], ["Sharpe", s["oos_sharpe"]],
        ["Max drawdown %", s["oos_max_drawdown_pct"]], [f"in-sample {metric} (mean of folds)", s[f"is_{metric}_mean"]],
        [f"out-of-sample {metric} (mean of folds)", s[f"oos_{metric}_mean"]],
        ["P(true Sharpe > 0) (PSR)", s["oos_psr"]],
        [f"deflated Sharpe (DSR, {s['trials_per_fold']} trials/fold)", s["oos_dsr"]],
        ["best-of-N Sharpe expected from luck", s["expected_max_sharpe"]],
    ])
    if combos.skipped:
        console.print(_skipped(combos.skipped, combos.skip_reason).removeprefix("; "), soft_wrap=True)
    if output:
        write_table(f, output)
        console.print(f"wrote {output}")
    if equity_output:
        rows = result.equity.with_columns(pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
        write_jsonl(equity_output, rows.iter_rows(named=True))
        console.print(f"wrote {equity_output}")
    if report:
        from marketboss.research.report import write_walkforward_report

        write_walkforward_report(result, report, f"Walk-forward: {strategy}",
                                 f"grid {' '.join(grid)}; train {train}, test {test} bars; metric {metric}")
        console.print(f"wrote report {report}")
    log.info("walkforward_done", strategy=strategy, folds=n_folds, oos_sharpe=s["oos_sharpe"], dsr=s["oos_dsr"])


def _strategy_params(pairs: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for p in pairs:  # the key is after the last dot before "=": a plug-in's name may hold dots (file.py:Class)
        left, eq, value = p.partition("=")
        name, dot, key = left.rpartition(".")
        if not dot or not eq or not name.strip() or not key.strip():
            raise MarketBossError(f"--param '{p}' must look like strategy.key=value, e.g. ma_crossover.fast=20")
        mine = out.setdefault(name.strip(), {})
        if key.strip() in mine:  # one would be dropped without a word
            raise MarketBossError(f"--param {left.strip()} is given twice ({mine[key.strip()]} and {value.strip()})")
        mine[key.strip()] = value.strip()
    return out


def _utc_us(text: str) -> int:
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise MarketBossError(f"--oos-start '{text}': expected a date like 2024-01-02") from None
    ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    return int(ts.timestamp() * 1_000_000)


def compare(
    strategies: str = typer.Option("ma_crossover,momentum,mean_reversion", "--strategies",
                                   help="Comma-separated strategies: names (`marketboss strategies list`) or "
                                   "plug-ins, e.g. ma_crossover,momentum,examples/rsi_bracket.py:RsiBracket."),
    param: list[str] = typer.Option([], "--param", "-p", help="strategy.key=value, repeatable, e.g. "
                                    "--param ma_crossover.fast=20.", callback=key_values),
    data: Path = DataOpt,
    symbols: str = SymbolsOpt,
    metric: str = MetricOpt,
    oos_fraction: float = typer.Option(None, "--oos-fraction", help="Last fraction of the bars held out (default "
                                       "0.3)."),
    oos_start: str = typer.Option(None, "--oos-start", help="Or: the out-of-sample window starts at this date."),
    output: Path = typer.Option(None, "--output", "-o", help="Signals of the best strategy, for paper trading "
                                                             "(default: data/signals.jsonl)."),
    table: Path = typer.Option(None, "--table", help="Side-by-side table, .csv or .parquet (default: "
                                                     "runs/compare.csv)."),
    backend: str = BackendOpt,
    scheduler: str = SchedulerOpt,
    workers: int = WorkersOpt,
    cash: float = CashOpt,
    commission: float = CommissionOpt,
    commission_per_share: float = PerShareOpt,
    commission_min: float = MinOpt,
    slippage_bps: float = SlippageOpt,
    spread_bps: float = SpreadOpt,
    fill: FillMode = FillOpt,
    fractional: bool = FractionalOpt,
    skip_invalid: bool = SkipInvalid,
) -> None:
    """Run several strategies on the same data and period (in-sample, then held-out bars), print and save them
    side by side, select the best by an out-of-sample metric and write its signals for paper trading."""
    from marketboss.backtest.metrics import METRICS
    from marketboss.research.backends import make_backend
    from marketboss.research.compare import compare as run_compare
    from marketboss.research.compare import split_index
    from marketboss.research.selection import check_metric
    from marketboss.signals import write_signals
    from marketboss.strategies import create
    from marketboss.strategies.registry import check_params

    check_metric(metric)
    names = [s.strip() for s in strategies.split(",") if s.strip()]
    params = _strategy_params(param)
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise MarketBossError(f"--param for '{unknown[0]}', which is not in --strategies")
    if oos_fraction is not None and oos_start:
        raise MarketBossError("give --oos-start or --oos-fraction, not both (the fraction was ignored)")
    checked = [check_params(name, params.get(name, {})) for name in names]  # a strategy not found, not loadable
    config = _config(cash, commission, commission_per_share, commission_min, slippage_bps, spread_bps, fill,
                     fractional)  # or given a bad --param is the user's to fix first
    if fractional:
        from marketboss.signals.exits import check_fractional_params

        check_fractional_params(checked)
    settings = get_settings()
    signals_path = output or settings.signals
    table_path = table or settings.runs_dir / "compare.csv"
    if table_path.suffix.lower() not in (".parquet", ".csv"):
        raise MarketBossError(f"--table {table_path}: the table is written as .parquet or .csv")
    data_path, market = _market(data, symbols, skip_invalid)
    split = split_index(market, oos_fraction, _utc_us(oos_start) if oos_start else None)
    with make_backend(backend, scheduler, workers) as be:
        result = run_compare(market, names, params, config, metric, split, be)
    for o in result.outcomes:
        if o.error is not None:  # a strategy's own error names it already
            text = o.error if o.error.startswith(f"strategy '{o.strategy}'") else f"strategy '{o.strategy}': {o.error}"
            err_console.print(f"error: {text}", markup=False, highlight=False, soft_wrap=True)
    ok = [o for o in result.outcomes if o.error is None]
    if not ok:
        raise MarketBossError("no strategy could be run; see the reasons above")
    keys = [(k, label) for k, label in METRICS if k not in ("start", "end", "buy_hold_return_pct")]
    values = [[v for o in ok for v in ((o.in_sample or {}).get(k), (o.out_of_sample or {}).get(k))] for k, _ in keys]
    ts = market.timestamps()
    print_metrics(
        f"{len(ok)} strategies on {data_path}: in-sample {ts[0]:%Y-%m-%d}..{ts[split - 1]:%Y-%m-%d}, "
        f"out-of-sample {ts[split]:%Y-%m-%d}..{ts[-1]:%Y-%m-%d}",
        [f"{o.strategy} {w}" for o in ok for w in ("IS", "OOS")], keys, values,
    )
    write_table(result.table(), table_path)  # each strategy's status too: why one could not run
    console.print(f"wrote {table_path}")
    if len(ok) < len(result.outcomes):  # a selection among the others is not what was asked: none for paper
        raise MarketBossError(f"{len(result.outcomes) - len(ok)} of {len(result.outcomes)} strategies could not be "
                              f"run (above): the comparison is of the others, and no signals were written to "
                              f"{signals_path}")  # fmt: skip
    if result.best is None:
        raise MarketBossError(f"no strategy has a defined out-of-sample {metric}: nothing selected, no signals "
                              "written")
    best = result.best
    strat = create(best.strategy, best.params or {})
    signals = strat.signals(market)
    write_signals(signals_path, signals)
    value = (best.out_of_sample or {}).get(metric)
    console.print(f"best by out-of-sample {metric}: {best.strategy} ({value:.4f}); wrote its {signals.height:,} "
                  f"signals over the whole period to {signals_path} for paper trading\n  {strat.describe()}",
                  soft_wrap=True)
    log.info("compare_done", strategies=names, best=best.strategy, metric=metric, value=value,
             signals=str(signals_path))
