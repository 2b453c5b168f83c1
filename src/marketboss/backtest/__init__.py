"""Backtesting: the compiled portfolio kernel (nb.py), its polars API (engine.py), costs, metrics, runs on
disk and HTML reports."""

from marketboss.backtest.costs import BacktestConfig, Costs, FillMode
from marketboss.backtest.engine import BacktestResult, run_backtest, run_strategy
from marketboss.backtest.metrics import equity_metrics, trade_metrics
from marketboss.backtest.runs import Run, load_run, save_run

__all__ = [
    "BacktestConfig",
    "BacktestResult",
    "Costs",
    "FillMode",
    "Run",
    "equity_metrics",
    "load_run",
    "run_backtest",
    "run_strategy",
    "save_run",
    "trade_metrics",
]
