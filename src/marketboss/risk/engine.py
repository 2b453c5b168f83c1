"""Pre-trade checks and the daily-loss kill switch, configured by one frozen, validated config."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

from marketboss.broker.base import Account, Asset, Clock, Side


class RiskConfig(BaseModel):
    """Every limit is optional; None switches a check off. Percentages are fractions (0.2 = 20%)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    require_market_open: bool = True
    allowed_symbols: frozenset[str] | None = None
    max_position_shares: float | None = Field(None, gt=0)
    # at most 4: Alpaca's largest buying power (4x equity, a day trader's); 20 meant for 20% was 2000%, no limit
    max_position_pct: float | None = Field(None, gt=0, le=4)
    max_order_notional: float | None = Field(None, gt=0)
    check_buying_power: bool = True
    max_daily_loss_pct: float | None = Field(None, gt=0, lt=1)
    # a sale is cut to the shares held, so no order opens a short: the live loop sets it for a long-only strategy,
    # whose state from the warm-up may hold a position the account does not (its sale would open a short)
    long_only: bool = False

    @field_validator("allowed_symbols", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        if isinstance(v, str):
            v = [s for s in v.split(",") if s.strip()]
        return None if v is None else frozenset(str(s).strip().upper() for s in v)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class OrderIntent:
    symbol: str
    side: Side
    qty: float
    price: float  # the latest price: what notional and position checks use


@dataclass(frozen=True)
class RiskContext:
    account: Account
    clock: Clock
    asset: Asset | None
    position_qty: float  # signed, before the order


@dataclass(frozen=True)
class Block:
    check: str
    reason: str


class RiskEngine:
    def __init__(self, config: RiskConfig):
        self.config = config

    def pre_trade(self, o: OrderIntent, ctx: RiskContext) -> Block | None:
        """The first check that blocks the order, or None when it may go."""
        c = self.config
        notional = o.qty * o.price
        after = ctx.position_qty + (o.qty if o.side == "buy" else -o.qty)
        if ctx.account.trading_blocked or ctx.account.status.upper() != "ACTIVE":
            return Block("account", f"account is {ctx.account.status} (trading blocked)")
        if c.require_market_open and not ctx.clock.is_open:
            return Block("market_open", f"market is closed; next open {ctx.clock.next_open.isoformat()}")
        if ctx.asset is None:
            return Block("tradable", f"{o.symbol} is not an asset this broker knows")
        if not ctx.asset.tradable or ctx.asset.status != "active":
            return Block("tradable", f"{o.symbol} is not tradable")
        if after < 0 and ctx.position_qty > after and not ctx.asset.shortable:
            return Block("tradable", f"{o.symbol} cannot be sold short")
        if o.qty != int(o.qty) and not ctx.asset.fractionable:
            return Block("tradable", f"{o.symbol} does not take fractional quantities ({o.qty})")
        if c.allowed_symbols is not None and o.symbol not in c.allowed_symbols:
            return Block("allow_list", f"{o.symbol} is not in the allowed symbols")
        if c.max_order_notional is not None and notional > c.max_order_notional:
            return Block("max_order_notional", f"order notional {notional:,.2f} > limit {c.max_order_notional:,.2f}")
        if (
            c.max_position_shares is not None
            and abs(after) > c.max_position_shares
            and abs(after) > abs(ctx.position_qty)
        ):
            return Block("max_position_shares", f"position would be {after:g} shares > limit {c.max_position_shares:g}")
        equity = ctx.account.equity
        if c.max_position_pct is not None and abs(after) > abs(ctx.position_qty):
            pct = abs(after) * o.price / equity if equity > 0 else float("inf")
            if pct > c.max_position_pct:
                return Block(
                    "max_position_pct", f"position would be {pct:.1%} of equity > limit {c.max_position_pct:.1%}"
                )
        increases_exposure = abs(after) > abs(ctx.position_qty)
        if c.check_buying_power and increases_exposure and notional > ctx.account.buying_power:
            return Block(
                "buying_power", f"order notional {notional:,.2f} > buying power {ctx.account.buying_power:,.2f}"
            )
        return None

    def daily_loss_breached(self, account: Account) -> Block | None:
        """Equity below the previous close by more than the limit: the kill switch trips."""
        limit = self.config.max_daily_loss_pct
        if limit is None or account.last_equity <= 0:
            return None
        loss = (account.last_equity - account.equity) / account.last_equity
        if loss > limit:
            return Block("max_daily_loss", f"daily loss {loss:.2%} > limit {limit:.2%}")
        return None
