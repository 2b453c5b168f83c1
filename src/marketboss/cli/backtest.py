"""`marketboss backtest` (signals file or strategy -> runs/<name>/) and `marketboss runs compare`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from marketboss.backtest.fill_mode import FillMode
from marketboss.cli.common import (
    LongOnlyOpt,
    SkipInvalid,
    StopLossOpt,
    TakeProfitOpt,
    TrailOpt,
    console,
    err_console,
    exits_option,
    get_settings,
    load_market,
    print_metrics,
    print_table,
)
from marketboss.cli.signals import STRATEGY_HELP, ParamOpt, SymbolsOpt
from marketboss.display import pct
from marketboss.errors import MarketBossError
from marketboss.logging import get_logger

if TYPE_CHECKING:
    import polars as pl

    from marketboss.data.market import Market

log = get_logger(__name__)
runs_app = typer.Typer(help="Inspect and compare backtest runs (runs/<name>/).", no_args_is_help=True)


def backtest(
    data: Path = typer.Option(None, "--data", help="Bars file (default: data/market_data.jsonl)."),
    signals: Path = typer.Option(None, "--signals", help="Signals file (default: data/signals.jsonl, unless "
                                                          "--strategy is given)."),
    strategy: str = typer.Option(None, "--strategy", "-s", help="Generate signals in memory with this strategy "
                                 "instead of reading --signals: " + STRATEGY_HELP),
    param: list[str] = ParamOpt,
    symbols: str = SymbolsOpt,
    cash: float = typer.Option(None, "--cash", help="Starting cash (default 100000, env MARKETBOSS_INITIAL_CASH)."),
    commission: float = typer.Option(0.0, "--commission", help="Fraction of notional per fill, e.g. 0.001."),
    commission_per_share: float = typer.Option(0.0, "--commission-per-share", help="$ per share per fill."),
    commission_min: float = typer.Option(0.0, "--commission-min", help="Minimum $ commission per fill."),
    slippage_bps: float = typer.Option(0.0, "--slippage-bps", help="Adverse fill price move, basis points."),
    spread_bps: float = typer.Option(0.0, "--spread-bps", help="Bid-ask spread in bps (half paid per side)."),
    fill: FillMode = typer.Option(FillMode.NEXT_OPEN, "--fill", help="next_open: next bar's open (default); "
                                                                     "close: the signal bar's close (optimistic)."),
    fractional: bool = typer.Option(False, "--fractional/--whole-shares", help="Target-weight sizing may buy "
                                                                              "fractional shares."),
    no_buy_stop_collar: bool = typer.Option(False, "--no-buy-stop-collar", help="Buy stops fill at market "
                                            "through a gap, instead of as the stop-limits 4% above the stop (2.5% "
                                            "from $50) Alpaca makes them (the local broker: the same flag)."),
    output_dir: Path = typer.Option(None, "--output-dir", "-o", help="Default: runs/<strategy or signals name>."),
    stop_loss_pct: float = StopLossOpt,
    take_profit_pct: float = TakeProfitOpt,
    trail_percent: float = TrailOpt,
    report: Path = typer.Option(None, "--report", help="Also write a self-contained interactive HTML report."),
    skip_invalid: bool = SkipInvalid,
    long_only: bool = LongOnlyOpt,
) -> None:
    """Backtest a signals file (the one the paper executor trades) or a strategy: prints the metrics and
    writes metrics.json, equity.jsonl, fills.jsonl, trades.jsonl, rejections.jsonl and signals.jsonl."""
    from pydantic import ValidationError

    from marketboss.backtest.arrays import FRACTIONAL_SHORT, LONG_ONLY
    from marketboss.backtest.costs import BacktestConfig, Costs
    from marketboss.backtest.engine import STATUS, run_backtest, run_strategy
    from marketboss.backtest.metrics import METRICS
    from marketboss.backtest.runs import save_run
    from marketboss.signals import read_signals_frame
    from marketboss.signals.exits import check_fractional, with_exits

    settings = get_settings()
    if strategy and signals:
        raise MarketBossError("give either --signals or --strategy, not both")
    if param and not strategy:
        raise MarketBossError("--param needs --strategy")
    try:
        config = BacktestConfig(
            cash=settings.initial_cash if cash is None else cash,
            costs=Costs(commission=commission, commission_per_share=commission_per_share,
                        commission_min=commission_min, slippage_bps=slippage_bps, spread_bps=spread_bps),
            fill=fill,
            fractional=fractional,
            buy_stop_collar=not no_buy_stop_collar,
            long_only=long_only,  # a long-only strategy's run sets it itself
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        opt = "--" + str(err["loc"][-1]).replace("_", "-")
        raise MarketBossError(f"{opt}: {err['msg']}") from None
    exits = exits_option(stop_loss_pct, take_profit_pct, trail_percent)
    exit_params = [f"{k}={v}" for k, v in (("stop_loss_pct", stop_loss_pct), ("take_profit_pct", take_profit_pct),
                                            ("trail_percent", trail_percent)) if v is not None]  # fmt: skip
    strat = None
    if strategy:
        from marketboss.strategies import create  # a signals file's backtest loads no strategy code

        strat = create(strategy, [*param, *exit_params])
    data_path = data or settings.market_data
    market = load_market(data_path, skip_invalid, symbols)
    if strat is not None:
        result, sig = run_strategy(market, strat, config)
        source, name = f"strategy {strat.describe()}", strat.name
    else:
        sig_path = signals or settings.signals
        sig = read_signals_frame(sig_path, skip_invalid=skip_invalid, keep_copy=True)
        if symbols:
            sig = sig.filter(sig["symbol"].is_in(market.symbols))
        sig = with_exits(sig, exits, str(sig_path))
        source, name = str(sig_path), sig_path.stem
        result = run_backtest(market, sig, config, source=source)
        off = _off_bar(market, sig)
        if off:
            err_console.print(f"[yellow]{off:,} of {sig.height:,} signals are at no bar of their symbol in {data_path} "
                              "(another data file's signals, or a finer timeframe's?): each trades at its symbol's "
                              "next bar[/]")  # fmt: skip
    check_fractional(sig, source, weights=fractional)  # trades the broker would refuse are never shown
    out = output_dir or settings.runs_dir / name
    info = {
        "name": out.name,
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data": str(data_path),
        "signals": source,
        "strategies": sorted(s for s in sig["strategy"].unique().to_list() if s),
        "config": result.config.model_dump(mode="json"),  # a long-only strategy's: long_only
    }
    run = save_run(result, out, info, signals=sig)
    print_metrics(f"backtest {out.name}: {source}", ["value"], METRICS, [[run.metrics.get(k)] for k, _ in METRICS])
    _print_yearly(result.equity, market, config.cash)
    m = result.metrics
    no_shares = int((result.orders["status"] == STATUS[LONG_ONLY]).sum())
    fraction = int((result.orders["status"] == STATUS[FRACTIONAL_SHORT]).sum())
    if m["rejected_orders"] or m["unfilled_orders"] or no_shares or fraction:
        held = f", {no_shares} sale(s) with no shares held not traded (long_only)" if no_shares else ""
        held += f", {fraction} sale(s) of a fraction of a share short not traded (brokers refuse)" if fraction else ""
        err_console.print(
            f"[yellow]{m['rejected_orders']} order(s) rejected for insufficient cash, {m['unfilled_orders']} "
            f"unfilled{held}; each is listed with its reason in {out / 'rejections.jsonl'}[/]"
        )
    written = "metrics.json, equity.jsonl, fills.jsonl, trades.jsonl, rejections.jsonl, signals.jsonl"
    console.print(f"wrote {out}/{{{written}}}")
    if report:
        from marketboss.backtest.report import write_report

        write_report(run, market, report, title=f"Backtest {out.name}: {source}")
        console.print(f"wrote report {report}")
    log.info("backtest_done", run=str(out), final_equity=m["final_equity"], trades=m["n_trades"])


def _print_yearly(equity: pl.DataFrame, market: Market, cash: float) -> None:
    """The run's return per calendar year beside the equal-weight buy and hold of the same symbols."""
    from marketboss.backtest.metrics import VersusBuyAndHold

    yearly = VersusBuyAndHold.of(equity, market, cash).yearly
    columns = ["strategy %", "buy & hold %", "difference %"]
    rows = [[str(y), *map(pct, r)] for y, *r in yearly.select("year", "strategy_pct", "buy_hold_pct",
                                                                "difference_pct").iter_rows()]  # fmt: skip
    print_table("yearly returns vs equal-weight buy & hold", ["year", *columns], rows, columns)


@runs_app.command("compare")
def compare(
    runs: list[Path] = typer.Argument(..., help="Run directories, e.g. runs/ma_crossover runs/momentum."),
) -> None:
    """Side-by-side metrics of several runs."""
    from marketboss.backtest.metrics import METRICS
    from marketboss.backtest.runs import compare as compare_rows
    from marketboss.backtest.runs import load_run

    loaded = [load_run(p) for p in runs]
    keys = [(k, label) for k, label in METRICS if k not in ("start", "end")]
    rows = compare_rows(loaded, keys)
    print_metrics("backtest runs side by side", [r.name for r in loaded], keys, [row[1:] for row in rows])


def _off_bar(market: Market, sig: pl.DataFrame) -> int:
    """How many signals are stamped at no bar of their symbol (a signal is stamped at the bar that decided it)."""
    import numpy as np

    index = {s: i for i, s in enumerate(market.symbols)}
    known = sig.filter(sig["symbol"].is_in(list(index)))
    if known.is_empty():
        return 0
    ts = known["timestamp"].dt.epoch("us").to_numpy()
    sym = np.array([index[s] for s in known["symbol"].to_list()])
    bar = np.searchsorted(market.times, ts, side="right") - 1
    at = (bar >= 0) & (market.times[np.maximum(bar, 0)] == ts)
    at &= ~np.isnan(market.close[np.maximum(bar, 0), sym])
    return int((~at).sum())
