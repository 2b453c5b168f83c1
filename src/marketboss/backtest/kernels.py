"""The backtest kernels (nb.py) a command runs, compiled ahead of time by `make` (marketboss.aot: a command
loads them without numba, else they go through numba): their argument types, those engine.py and metrics.py
call them with, and a typed function per kernel."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np

from marketboss.aot import Arr, Kernels, Spec
from marketboss.backtest.arrays import Equity, Fills, Orders, Prices, RoundTrips, Rules, TradeAcc

_I, _F, _B, _K, _F2 = Arr("int64", 1), Arr("float64", 1), Arr("bool", 1), Arr("int8", 1), Arr("float64", 2)
_PRICES = Prices._make((_I, _F2, _F2, _F2, _F2, _I))
_ORDERS = Orders._make((_I, _I, _B, _F, _F, _K, _I, "bool", _K, _F, _F, _F, _B, _F, _F))
_RULES = Rules._make(("float64",) * 5 + ("bool",) * 4)
_FILLS = Fills._make((_I, _I, _I, _I, _B, _F, _F, _F, _K))

#: Each compiled kernel's argument types: those engine.py calls it with.
SIGNATURES: dict[str, tuple[Spec, ...]] = {
    "schedule": (_I, _F2, _B, _I, _I, _I, "bool", _K),
    "simulate": (_PRICES, _ORDERS, _RULES),
    "mark": (_F2, _FILLS, "float64", Equity._make((_F, _F, _F))),
    "round_trips": (_PRICES, _FILLS),
    "trade_stats": (_F, _F, _F, _B),
    "equity_stats": ("float64", _F),
}

HERE = Path(__file__).parent
#: nb.py imports these: their code is in the compiled module too.
KERNELS = Kernels(__name__, __file__, SIGNATURES, (HERE / "arrays.py", HERE.parent / "orders" / "nb.py",
                                                  HERE.parent / "orders" / "codes.py"))  # fmt: skip


def schedule(times: np.ndarray, close: np.ndarray, full: np.ndarray, signal_time: np.ndarray, signal_bar: np.ndarray,
             symbol: np.ndarray, at_close: bool, kind: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """nb.schedule."""
    out = KERNELS.call("schedule", times, close, full, signal_time, signal_bar, symbol, at_close, kind)
    return cast(tuple[np.ndarray, np.ndarray, np.ndarray, bool], out)


def simulate(prices: Prices, orders: Orders, rules: Rules) -> Fills:
    """nb.simulate."""
    return cast(Fills, KERNELS.call("simulate", prices, orders, rules))


def mark(close: np.ndarray, fills: Fills, cash0: float, out: Equity) -> tuple[int, Any]:
    """nb.mark."""
    return cast(tuple[int, Any], KERNELS.call("mark", close, fills, cash0, out))


def round_trips(prices: Prices, fills: Fills) -> RoundTrips:
    """nb.round_trips."""
    return cast(RoundTrips, KERNELS.call("round_trips", prices, fills))


def trade_stats(pnl: np.ndarray, ret: np.ndarray, days: np.ndarray, closed: np.ndarray) -> TradeAcc:
    """nb.trade_stats."""
    return cast(TradeAcc, KERNELS.call("trade_stats", pnl, ret, days, closed))


def equity_stats(initial: float, equity: np.ndarray) -> tuple[float, float, float, float, float, int, int]:
    """nb.equity_stats."""
    return cast(tuple[float, float, float, float, float, int, int], KERNELS.call("equity_stats", initial, equity))
