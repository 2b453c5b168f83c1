"""RSI with a bracket (5% stop-loss, 10% take-profit on every entry), e.g.
`marketboss backtest --strategy examples/rsi_bracket.py:RsiBracket --data data/market_data.jsonl`."""

import numpy as np
from pydantic import Field

from marketboss import Strategy, StrategyParams, SymbolBars
from marketboss.indicators import rsi


class RsiParams(StrategyParams):
    period: int = Field(14, ge=2, description="RSI period (bars)")
    lower: float = Field(30, gt=0, lt=100, description="buy below this RSI")
    upper: float = Field(70, gt=0, lt=100, description="sell above this RSI")
    stop_loss_pct: float | None = Field(5.0, description="bracket: stop-loss % below each entry")
    take_profit_pct: float | None = Field(10.0, description="bracket: take-profit % above each entry")


class RsiBracket(Strategy[RsiParams]):
    """RSI below `lower` buys, above `upper` sells; a 5% stop and a 10% target on every entry."""

    name = "rsi_bracket"
    params_model = RsiParams

    def exposure(self, bars: SymbolBars) -> np.ndarray:
        r = rsi(bars.close, self.params.period)
        return np.where(r < self.params.lower, 1.0, np.where(r > self.params.upper, 0.0, np.nan))
