"""Trading costs and fill rules, validated up front; the arithmetic itself is in nb.py (fill_price, commission)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from marketboss.backtest.fill_mode import FillMode


class Costs(BaseModel):
    """Commission = commission x notional + commission_per_share x shares, at least commission_min per
    fill. Fill price = reference price x (1 ± (slippage_bps + spread_bps / 2) / 10 000): buyers pay up,
    sellers receive less, i.e. half the spread and the slippage on every side."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    commission: float = Field(0.0, ge=0, lt=0.1, allow_inf_nan=False)
    commission_per_share: float = Field(0.0, ge=0, allow_inf_nan=False)
    commission_min: float = Field(0.0, ge=0, allow_inf_nan=False)
    slippage_bps: float = Field(0.0, ge=0, le=1000, allow_inf_nan=False)
    spread_bps: float = Field(0.0, ge=0, le=1000, allow_inf_nan=False)

    @property
    def slip(self) -> float:
        """Adverse price move per side, as a fraction."""
        return (self.slippage_bps + self.spread_bps / 2.0) / 10_000.0


class BacktestConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    cash: float = Field(100_000.0, gt=0, allow_inf_nan=False)
    costs: Costs = Costs()
    fill: FillMode = FillMode.NEXT_OPEN
    fractional: bool = Field(False, description="target-weight sizing may buy fractional shares")
    buy_stop_collar: bool = Field(
        True, description="a buy stop is a stop-limit 4% above the stop (2.5% from $50), as Alpaca makes it "
        "(orders.nb.buy_stop_limit; the local broker's buy_stop_collar, on by default too): a gap beyond it waits"
    )
    long_only: bool = Field(
        False, description="a sale is cut to the shares held at its fill, never through zero to a short (none "
        "held: it does not trade, status long_only): a long-only strategy's run sets it (engine.strategy_config)"
    )
