"""The Broker port: plain frozen values in, plain frozen values out, and errors that say whether to retry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from marketboss.errors import MarketBossError

Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit", "stop", "stop_limit", "trailing_stop"]
TimeInForce = Literal["day", "gtc"]
OrderClass = Literal["simple", "bracket", "oto", "oco"]
TERMINAL = frozenset({"filled", "canceled", "expired", "rejected", "done_for_day", "replaced", "stopped", "suspended"})


@dataclass(frozen=True)
class Account:
    cash: float
    portfolio_value: float
    buying_power: float
    equity: float
    last_equity: float
    multiplier: float
    status: str
    trading_blocked: bool = False


@dataclass(frozen=True)
class Clock:
    timestamp: datetime
    is_open: bool
    next_open: datetime
    next_close: datetime


@dataclass(frozen=True)
class Asset:
    symbol: str
    tradable: bool
    shortable: bool
    fractionable: bool
    status: str


@dataclass(frozen=True)
class Position:
    symbol: str
    qty: float  # signed: negative is short
    avg_entry_price: float
    current_price: float
    market_value: float


@dataclass(frozen=True)
class Order:
    id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: float
    filled_qty: float
    filled_avg_price: float | None
    status: str
    type: str
    submitted_at: datetime | None
    filled_at: datetime | None
    stop_price: float | None = None
    limit_price: float | None = None
    trail_percent: float | None = None
    time_in_force: str = "day"
    order_class: str = "simple"
    legs: tuple[Order, ...] = ()  # a bracket's or OTO's exit orders, as the broker reports them

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass(frozen=True)
class OrderRequest:
    """One order, possibly with exits attached: `take_profit` (a limit price) and `stop_loss` (a stop price)
    make a bracket when both are given, an OTO (one-triggers-other) when one is; with `oco`, the two exits of a
    position held already (a limit order at take_profit, one-cancels-other with a stop at stop_loss)."""

    symbol: str
    qty: float
    side: Side
    client_order_id: str
    type: OrderType = "market"
    time_in_force: TimeInForce = "day"
    stop_price: float | None = None
    limit_price: float | None = None
    trail_percent: float | None = None
    take_profit: float | None = None
    stop_loss: float | None = None
    oco: bool = False

    @property
    def order_class(self) -> OrderClass:
        legs = (self.take_profit is not None) + (self.stop_loss is not None)
        return "oco" if self.oco else "bracket" if legs == 2 else "oto" if legs == 1 else "simple"


class BrokerError(MarketBossError):
    """A broker answered with an error (or not at all)."""

    def __init__(self, message: str, status: int | None = None, code: int | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class TransientError(BrokerError):
    """429, 5xx, a timeout or a dropped connection: worth retrying (orders only after a lookup)."""

    def __init__(self, message: str, status: int | None = None, code: int | None = None, retry_after: float = 0.0):
        super().__init__(message, status, code)
        self.retry_after = retry_after  # seconds until the rate limit resets, when the broker said so


class OrderRejected(BrokerError):
    """403/422 for an order: buying power, shares, invalid input. Retrying will not help."""


class DuplicateOrder(OrderRejected):
    """422 'client_order_id must be unique': the order exists already; look it up."""


class NotFound(BrokerError):
    """404: no such order, position or asset."""


class AuthError(BrokerError):
    """401/403 on authentication: keys missing, wrong, or for the other environment (paper vs live)."""


class OrderUpdates(Protocol):
    """Order states pushed by the broker (its trade_updates stream); see broker/stream.py."""

    live: bool  # listening now
    generation: int  # connections made so far: a change means updates may have been missed in between
    first_fill: dict[str, float]  # client_order_id -> time.perf_counter() when its first fill was heard

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def wait_live(self, timeout: float) -> bool: ...
    def wait(self, order_id: str, after: int, timeout: float) -> tuple[int, Order] | None:
        """The order's latest state if newer than update number `after`, waiting up to `timeout` seconds."""
        ...


class Broker(Protocol):
    """What the executor needs of a venue; AlpacaBroker implements it for Alpaca and the local broker alike."""

    base_url: str
    is_local: bool
    live: bool  # the live account: real money

    def account(self) -> Account: ...
    def clock(self) -> Clock: ...
    def asset(self, symbol: str) -> Asset | None: ...
    def positions(self) -> dict[str, Position]: ...
    def latest_price(self, symbol: str) -> float: ...
    def submit_order(self, request: OrderRequest) -> Order: ...
    def get_order(self, order_id: str) -> Order: ...
    def order_by_client_id(self, client_order_id: str) -> Order | None: ...
    def open_orders(self) -> list[Order]: ...
    def fill_commission(self, order: Order) -> float: ...
    def cancel_order(self, order_id: str) -> None: ...
    def cancel_all_orders(self) -> None: ...
    def order_updates(self) -> OrderUpdates:
        """The account's order updates stream (not started yet)."""
        ...

    def throttle_wait(self) -> float:
        """Seconds to pause before the next request so as not to hit the rate limit (0 when there is room)."""
        ...

    def fill_costs(self) -> dict[str, float] | None:
        """The costs the venue adds to every fill (the local broker's spread and slippage), None when unknown
        (Alpaca: the market's)."""
        ...
