"""What the local broker keeps: orders (bracket legs included), fills and positions, as plain records that the
engine changes in memory and a Store writes down."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

_NAMESPACE = uuid.UUID("6c3f4c0e-8d7a-4a44-9a55-5a1f0f3b6e21")
OPEN_STATUSES = ("accepted", "pending_new", "new", "partially_filled", "held")


@dataclass(slots=True)
class Order:
    id: str
    seq: int
    client_order_id: str
    parent_id: str | None
    leg: str | None  # take_profit | stop_loss for bracket legs
    symbol: str
    side: str
    type: str
    tif: str
    order_class: str
    intent: str  # buy_to_open, sell_to_close, ...
    qty: Decimal | None
    notional: Decimal | None
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    extended_hours: bool
    status: str
    created_at: int
    updated_at: int
    submitted_at: int
    filled_at: int | None
    expired_at: int | None
    canceled_at: int | None
    failed_at: int | None
    expires_at: int | None
    triggered: bool
    reserve_price: Decimal | None
    commission: Decimal
    eligible_wall: float
    partial_done: bool
    trail_percent: Decimal | None = None
    trail_price: Decimal | None = None
    hwm: float | None = None  # a trailing stop's mark: the best price since it was placed
    live_from: int = 0  # bars starting at or after this time are tested against it (its placement, a leg's release)
    replaces: str | None = None  # the order this one replaced (PATCH /v2/orders/{id})
    replaced_by: str | None = None
    replaced_at: int | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> Decimal | None:
        return None if self.qty is None else self.qty - self.filled_qty

    @property
    def at_market(self) -> bool:
        """Trades at the price of the moment: a market order, or a stop (trailing or not) that has triggered."""
        return self.type == "market" or (self.triggered and self.type in ("stop", "trailing_stop"))

    @property
    def grouped(self) -> bool:
        """Tested with the other orders of its group (one cancels the other): a bracket / OTO leg, or either
        order of an OCO pair (the take-profit parent and its stop-loss leg)."""
        return self.parent_id is not None or self.order_class == "oco"

    @property
    def opening(self) -> bool:
        return self.intent.endswith("_to_open")


@dataclass(slots=True)
class Fill:
    id: str
    seq: int
    order_id: str
    symbol: str
    side: str
    type: str  # fill | partial_fill
    qty: Decimal
    price: Decimal
    cum_qty: Decimal
    leaves_qty: Decimal
    order_status: str
    transaction_time: int
    commission: Decimal


@dataclass(slots=True)
class Position:
    symbol: str
    qty: Decimal  # negative when short
    avg_entry_price: Decimal


#: The digits of a fill's price and a position's average entry price (the float fill rule's noise left out).
MICRO = Decimal("1e-6")


def num(d: Decimal) -> str:
    """Plain decimal text without exponent or trailing zeros ("100000", "150.25", "0.5")."""
    if d == 0:
        return "0"
    if d == d.to_integral_value():
        return str(d.quantize(Decimal(1)))
    return format(d.normalize(), "f")


@lru_cache(maxsize=4096)
def asset_id(symbol: str) -> str:
    """Stable per symbol, so positions and assets agree across restarts."""
    return str(uuid.uuid5(_NAMESPACE, symbol))
