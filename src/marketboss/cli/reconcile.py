"""`marketboss reconcile`: the paper run beside a backtest of the same signals over the same window."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

from marketboss.cli.common import (
    FractionalOpt,
    StopLossOpt,
    TakeProfitOpt,
    TrailOpt,
    err_console,
    exits_option,
    get_settings,
    load_bars,
    print_table,
)


def reconcile(
    data: Path = typer.Option(None, "--data", help="Bars (default: data/market_data.jsonl)."),
    signals: Path = typer.Option(None, "--signals", help="Signals the paper run traded (default: data/signals.jsonl)."),
    trades: Path = typer.Option(None, "--trades", help="Paper trades log (default: data/paper_trading_trades.jsonl)."),
    equity: Path = typer.Option(None, "--equity", help="Paper equity log (default: data/paper_trading_equity.jsonl)."),
    commission: float = typer.Option(0.0, help="Backtest commission, fraction of notional (Alpaca: 0)."),
    slippage_bps: float = typer.Option(None, "--slippage-bps", help="Backtest slippage in basis points (default: "
                                       "the local broker's, as the paper runs recorded it; else 0)."),
    spread_bps: float = typer.Option(None, "--spread-bps", help="Backtest bid-ask spread in bps, half paid per side "
                                     "(default: the local broker's, 2 unless served otherwise, as the paper runs "
                                     "recorded it; else 0)."),
    long_only: bool = typer.Option(None, "--long-only/--no-long-only", help="Cut each sale to the shares held, never "
                                   "a short, as `backtest --long-only` (default: as the paper runs recorded it, e.g. "
                                   "a long-only strategy's live session; else no)."),
    timeframe: str = typer.Option(None, "--timeframe", help="The signals' bars, e.g. 15Min (default: as the paper "
                                  "runs recorded it, else the data's): the data are aggregated onto them."),
    show_trades: int = typer.Option(10, help="How many joined fills to list (worst slippage first)."),
    stop_loss_pct: float = StopLossOpt,  # the paper run's exits, so that the backtest trades the same ones
    take_profit_pct: float = TakeProfitOpt,
    trail_percent: float = TrailOpt,
    fractional: bool = FractionalOpt,  # the paper run's sizing, so that the backtest's weights buy the same way
) -> None:
    """Backtest vs paper: returns, Sharpe, drawdown, fills, slippage (joined by signal id), costs, status."""
    from marketboss.execution.journal import journal_path
    from marketboss.execution.logs import read_paper_equity, read_paper_trades
    from marketboss.execution.reconcile import compare_backtest_paper, reconcile_settings
    from marketboss.execution.slippage import VS_BACKTEST
    from marketboss.signals import read_signals_frame

    s = get_settings()
    given_exits = (stop_loss_pct, take_profit_pct, trail_percent) != (None, None, None)
    exits = exits_option(stop_loss_pct, take_profit_pct, trail_percent) if given_exits else None
    trades_path, equity_path = trades or s.paper_trades, equity or s.paper_equity
    settings = reconcile_settings(trades_path, commission, fractional or None, timeframe=timeframe,
                                  long_only=long_only, spread_bps=spread_bps, slippage_bps=slippage_bps,
                                  exits=exits)  # fmt: skip
    if settings.recorded:  # said, so that the figures can be reproduced (and overridden)
        err_console.print(f"as the paper runs recorded ({journal_path(trades_path)}): {settings.recorded_text()}")
    cmp = compare_backtest_paper(
        load_bars(data or s.market_data),
        read_signals_frame(signals or s.signals),
        read_paper_trades(trades_path, _torn(trades_path)),
        read_paper_equity(equity_path, _torn(equity_path)),
        settings.config,
        settings.exits,
        settings.timeframe,
    )
    m = cmp.summary
    print_table(
        "backtest vs paper (same signals, same window)",
        ["", "backtest", "paper", "difference"],
        [
            ("return %", m["backtest_return_pct"], m["paper_return_pct"], m["return_difference_pct"]),
            ("sharpe", m["backtest_sharpe"], m["paper_sharpe"], None),
            ("max drawdown %", m["backtest_max_drawdown_pct"], m["paper_max_drawdown_pct"], None),
            ("fills", m["backtest_fills"], m["paper_fills"], m["paper_fills"] - m["backtest_fills"]),
            ("commissions $", m["backtest_commissions"], m["paper_commissions"], None),
            (f"avg slippage bps {VS_BACKTEST}", None, m["avg_slippage_bps"], None),
            (f"slippage $ {VS_BACKTEST}", None, m["slippage_usd"], None),
            ("missed in paper", None, m["missed_in_paper"], None),
            ("filled in paper only", None, m["filled_in_paper_only"], None),
            ("filled at another quantity", None, m["other_quantity"], None),
            ("daily return corr.", None, m["daily_return_correlation"], None),
            ("status", None, m["status"], None),
        ],
    )
    worst = cmp.joined.sort("slippage_usd", descending=True, nulls_last=True).head(show_trades)
    if show_trades and worst.height:
        cols = ["signal_id", "leg", "symbol", "bt_side", "bt_qty", "bt_price", "paper_qty", "paper_price",
                "slippage_bps", "slippage_usd", "status"]  # fmt: skip
        print_table(f"fills, worst slippage ({VS_BACKTEST}) first", cols, worst.select(cols).rows())


def _torn(path: Path) -> Callable[[int], None]:
    """A torn last line (a write a crash cut short) is left out, as the run that resumes the log leaves it: said,
    since the record it held (a signal's outcome, a snapshot) is not in the comparison."""

    def warn(line: int) -> None:
        err_console.print(f"[yellow]{path}:{line}: torn last line (a write cut short, e.g. by a crash) left out: "
                          "rerun paper/live on the same files to finish its signal[/]")  # fmt: skip

    return warn


