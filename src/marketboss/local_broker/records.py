"""What the local broker keeps: orders (bracket legs included), fills and positions, as plain records that the
engine changes in memory and a Store writes down."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

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

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> Decimal | None:
        return None if self.qty is None else self.qty - self.filled_qty

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
