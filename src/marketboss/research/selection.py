"""Choosing by a metric: which metrics can rank strategies, which way is better, and ties."""

from __future__ import annotations

import numpy as np

from marketboss.errors import MarketBossError

#: Metrics a sweep, walk-forward or comparison can select by, and whether higher is better.
SELECTABLE: dict[str, bool] = {
    "sharpe": True,
    "sortino": True,
    "calmar": True,
    "total_return_pct": True,
    "cagr_pct": True,
    "pnl": True,
    "final_equity": True,
    "max_drawdown_pct": True,  # negative: the shallowest drawdown is the highest value
    "annual_volatility_pct": False,
    "max_drawdown_duration_days": False,
}


def check_metric(metric: str, given_as: str = "--metric") -> str:
    if metric not in SELECTABLE:
        raise MarketBossError(f"{given_as} '{metric}' cannot rank strategies; choose one of {', '.join(SELECTABLE)}")
    return metric


def ranking(values: np.ndarray, metric: str) -> np.ndarray:
    """Indices best first; undefined values (NaN) last; equal values keep their order (the grid's)."""
    v = np.asarray(values, dtype=np.float64)
    key = -v if SELECTABLE[check_metric(metric)] else v.copy()
    key[np.isnan(key)] = np.inf
    return np.argsort(key, kind="stable")


def best_index(values: np.ndarray, metric: str) -> int | None:
    """The best entry, or None when the metric is undefined for every one."""
    order = ranking(values, metric)
    if order.shape[0] == 0 or np.isnan(values[order[0]]):
        return None
    return int(order[0])
