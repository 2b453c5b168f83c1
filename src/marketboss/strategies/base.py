"""The strategy contract: a strategy says, bar by bar, what exposure it wants; the framework turns changes of
that wish into signals.

A strategy implements `exposure(bars)` for one symbol (or overrides `exposures(market)` for cross-sectional
models such as the ML strategy): an array aligned with the bars, in [-1, 1], where +1 is "fully long one
unit", -1 "fully short one unit", 0 flat and NaN "no opinion, keep what I have". exposure[t] may use bars up
to and including t only. Sizing then scales a unit: `quantity` shares, or `weight` x equity.
"""

from __future__ import annotations

from abc import ABC
from typing import Any, ClassVar, Generic, Literal, TypeVar

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from marketboss.signals import ACTION_CODES, SIGNAL_SCHEMA, canonical_params, id_key, signal_ids
from marketboss.strategies.market import Market, SymbolBars
from marketboss.strategies.nb import state_changes


class StrategyParams(BaseModel):
    """Sizing and direction, shared by every strategy; subclasses add their own parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sizing: Literal["quantity", "weight"] = Field(
        "quantity", description="quantity: fixed shares per signal; weight: target fraction of equity"
    )
    quantity: float = Field(10, gt=0, allow_inf_nan=False, description="shares per unit of exposure")
    weight: float = Field(0.1, gt=0, le=1, allow_inf_nan=False, description="equity fraction per unit")
    long_only: bool = Field(True, description="true: never short; false: long-short")


P = TypeVar("P", bound=StrategyParams)


class Strategy(ABC, Generic[P]):
    name: ClassVar[str]
    summary: ClassVar[str]
    params_model: ClassVar[type[StrategyParams]]

    def __init__(self, params: P):
        self.params = params

    def exposure(self, bars: SymbolBars) -> np.ndarray:
        """Desired exposure per bar of one symbol (causal). Override this or `exposures`."""
        raise NotImplementedError

    def exposures(self, market: Market) -> np.ndarray:
        """(time x symbol) desired exposures; NaN where a symbol has no bar or no opinion."""
        out: np.ndarray | None = None
        for s in range(market.n_symbols):
            bars = market.symbol_bars(s)
            e = np.asarray(self.exposure(bars), dtype=np.float64)
            if e.shape != bars.close.shape:
                raise ValueError(f"{self.name}.exposure returned shape {e.shape}, expected {bars.close.shape}")
            if market.n_symbols == 1 and market.is_full(0):
                return e.reshape(-1, 1)
            if out is None:
                out = np.full((market.n_times, market.n_symbols), np.nan)
            if market.is_full(s):
                out[:, s] = e
            else:
                out[bars.rows, s] = e
        assert out is not None
        return out

    def params_json(self) -> str:
        return canonical_params(self.params.model_dump(mode="json"))

    def describe(self) -> str:
        return f"{self.name} " + " ".join(f"{k}={v}" for k, v in self.params.model_dump(mode="json").items())

    def signals(self, market: Market) -> pl.DataFrame:
        return signals_from_exposures(market, self.exposures(market), self.name, self.params_json(), self.params)


def signals_from_exposures(
    market: Market, exposures: np.ndarray, strategy: str, params_json: str, sizing: StrategyParams
) -> pl.DataFrame:
    """One signal per change of held exposure, at the bar where the change was decided, in time order."""
    lo = 0.0 if sizing.long_only else -1.0
    parts_t, parts_s, parts_b, parts_a = [], [], [], []
    for s in range(market.n_symbols):
        rows = market.rows(s)
        col = exposures[:, s] if market.is_full(s) else exposures[rows, s]
        m = col.shape[0]
        idx, before, after = np.empty(m, dtype=np.int64), np.empty(m), np.empty(m)
        k = state_changes(np.ascontiguousarray(col), lo, 1.0, idx, before, after)
        parts_t.append(rows[idx[:k]])
        parts_s.append(np.full(k, s, dtype=np.intp))
        parts_b.append(before[:k].copy())
        parts_a.append(after[:k].copy())
    t = np.concatenate(parts_t)
    s_idx = np.concatenate(parts_s)
    before = np.concatenate(parts_b)
    after = np.concatenate(parts_a)
    if market.n_symbols > 1:
        order = np.lexsort((s_idx, t))
        t, s_idx, before, after = t[order], s_idx[order], before[order], after[order]
    buy = after > before
    n = t.shape[0]
    if sizing.sizing == "quantity":
        quantity: Any = np.abs(after - before) * sizing.quantity
        weight: Any = pl.Series(values=[None] * n, dtype=pl.Float64)
    else:
        quantity = pl.Series(values=[None] * n, dtype=pl.Float64)
        weight = after * sizing.weight
    keys = np.array([id_key(strategy, params_json, sym) for sym in market.symbols], dtype=np.uint64)
    ts = market.times[t]
    codes = np.where(buy, ACTION_CODES["BUY"], ACTION_CODES["SELL"])
    return pl.DataFrame(
        {
            "id": signal_ids(keys[s_idx], ts, codes),
            "timestamp": pl.Series(ts).cast(pl.Datetime("us")),
            "symbol": pl.Series(market.symbols, dtype=pl.String).gather(s_idx),
            "action": pl.Series(["SELL", "BUY"]).gather(buy.astype(np.intp)),
            "quantity": quantity,
            "strategy": pl.repeat(strategy, n, eager=True, dtype=pl.String),
            "price": market.close[t, s_idx],
            "target_weight": weight,
        },
    ).cast(SIGNAL_SCHEMA)  # type: ignore[arg-type]
