"""Backtesting: the compiled portfolio kernel (nb.py), its polars API (engine.py), costs, metrics, runs on
disk and HTML reports.

The names below load their module on first use (PEP 562), so that importing a light part such as
`backtest.costs` (the CLI's options do) does not load numba and polars."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_WHERE = {
    "BacktestConfig": "costs", "Costs": "costs", "FillMode": "costs",
    "BacktestResult": "engine", "run_backtest": "engine", "run_strategy": "engine", "run_events": "events",
    "equity_metrics": "metrics", "trade_metrics": "metrics",
    "Run": "runs", "load_run": "runs", "save_run": "runs",
}  # fmt: skip

if TYPE_CHECKING:
    from marketboss.backtest.costs import BacktestConfig, Costs, FillMode
    from marketboss.backtest.engine import BacktestResult, run_backtest, run_strategy
    from marketboss.backtest.events import run_events
    from marketboss.backtest.metrics import equity_metrics, trade_metrics
    from marketboss.backtest.runs import Run, load_run, save_run


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'marketboss.backtest' has no attribute '{name}'")
    return getattr(import_module(f"marketboss.backtest.{_WHERE[name]}"), name)


__all__ = [
    "BacktestConfig",
    "BacktestResult",
    "Costs",
    "FillMode",
    "Run",
    "equity_metrics",
    "load_run",
    "run_backtest",
    "run_events",
    "run_strategy",
    "save_run",
    "trade_metrics",
]
