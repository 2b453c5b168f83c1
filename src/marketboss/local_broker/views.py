"""JSON shapes of Alpaca's objects: field names as Alpaca spells them, numbers as strings where Alpaca sends
strings, and only enum values alpaca-py's strict enums accept."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from marketboss.local_broker.clock import iso_z
from marketboss.local_broker.marketdata import round_price
from marketboss.local_broker.records import Fill, Order, asset_id, num
from marketboss.orders import trailing_level

EXCHANGE = "NASDAQ"


def opt_num(d: Decimal | None) -> str | None:
    return None if d is None else num(d)


def opt_ts(us: int | None) -> str | None:
    return None if us is None else iso_z(us)


def trailing_stop_price(o: Order) -> Decimal | None:
    """A trailing stop's level now (Alpaca reports it as stop_price), on the tick grid."""
    if o.hwm is None:
        return None
    nan = float("nan")
    pct = float(o.trail_percent) if o.trail_percent is not None else nan
    gap = float(o.trail_price) if o.trail_price is not None else nan
    return round_price(float(trailing_level(o.side == "buy", o.hwm, pct, gap)))


def order_json(o: Order, legs: list[Order] | None = None) -> dict[str, Any]:
    return {
        "id": o.id,
        "client_order_id": o.client_order_id,
        "created_at": iso_z(o.created_at),
        "updated_at": iso_z(o.updated_at),
        "submitted_at": iso_z(o.submitted_at),
        "filled_at": opt_ts(o.filled_at),
        "expired_at": opt_ts(o.expired_at),
        "expires_at": opt_ts(o.expires_at),
        "canceled_at": opt_ts(o.canceled_at),
        "failed_at": opt_ts(o.failed_at),
        "replaced_at": opt_ts(o.replaced_at),
        "replaced_by": o.replaced_by,
        "replaces": o.replaces,
        "asset_id": asset_id(o.symbol),
        "symbol": o.symbol,
        "asset_class": "us_equity",
        "notional": opt_num(o.notional),
        "qty": opt_num(o.qty),
        "filled_qty": num(o.filled_qty),
        "filled_avg_price": opt_num(o.filled_avg_price),
        "order_class": o.order_class,
        "order_type": o.type,
        "type": o.type,
        "side": o.side,
        "position_intent": o.intent,
        "time_in_force": o.tif,
        "limit_price": opt_num(o.limit_price),
        "stop_price": opt_num(o.stop_price if o.type != "trailing_stop" else trailing_stop_price(o)),
        "status": o.status,
        "extended_hours": o.extended_hours,
        "legs": None if legs is None else [order_json(leg) for leg in legs],
        "trail_percent": opt_num(o.trail_percent),
        "trail_price": opt_num(o.trail_price),
        "hwm": None if o.hwm is None else num(round_price(o.hwm)),
        "commission": num(o.commission),
        "subtag": None,
        "source": None,
    }


def fill_json(f: Fill, account_id: str) -> dict[str, Any]:
    return {
        "id": f.id,
        "account_id": account_id,
        "activity_type": "FILL",
        "transaction_time": iso_z(f.transaction_time),
        "type": f.type,
        "price": num(f.price),
        "qty": num(f.qty),
        "side": f.side,
        "symbol": f.symbol,
        "leaves_qty": num(f.leaves_qty),
        "order_id": f.order_id,
        "cum_qty": num(f.cum_qty),
        "order_status": f.order_status,
        "commission": num(f.commission),
    }


def asset_json(symbol: str, shortable: bool) -> dict[str, Any]:
    return {
        "id": asset_id(symbol),
        "class": "us_equity",
        "exchange": EXCHANGE,
        "symbol": symbol,
        "name": f"{symbol} (simulated by the MarketBoss local broker)",
        "status": "active",
        "tradable": True,
        "marginable": True,
        "maintenance_margin_requirement": 30,
        "shortable": shortable,
        "easy_to_borrow": shortable,  # shortable here means easy to borrow: hard-to-borrow assets cannot be shorted
        "fractionable": True,
        "attributes": [],
    }
