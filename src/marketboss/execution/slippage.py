"""Slippage, defined once: how much worse a fill was than a reference price, in basis points (positive: paid
more on a buy, received less on a sell). Two references are used, and every figure is shown with its own:
the signal's close (what the strategy saw; the paper trades log) and the backtest's fill of the same signal
(what reconcile and the dashboard compare)."""

from __future__ import annotations

from typing import TypeVar

import polars as pl

VS_SIGNAL = "vs signal close"
VS_BACKTEST = "vs backtest fill"

N = TypeVar("N", float, pl.Expr)


def bps(sign: N, reference: N, filled: N) -> N:
    """sign (+1 buy, -1 sell) x (filled - reference) / reference in basis points; on floats or polars columns."""
    return sign * (filled - reference) / reference * 1e4


def slippage_bps(side: str, reference: float | None, filled: float | None) -> float | None:
    """One fill's slippage against `reference`, None when either price is missing."""
    if not reference or not filled:
        return None
    return bps(1.0 if side.upper() == "BUY" else -1.0, reference, filled)
