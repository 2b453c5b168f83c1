"""POST /v2/orders bodies checked the way Alpaca checks them: anything wrong is a 422 naming the field."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from marketboss.data.rules import number_from_text, symbol_error
from marketboss.local_broker.errors import invalid

SIDES = ("buy", "sell")
TYPES = ("market", "limit", "stop", "stop_limit", "trailing_stop")
TIFS = ("day", "gtc", "ioc", "fok")
CLASSES = ("simple", "bracket", "oto")
MAX_QTY = Decimal(10) ** 9
MAX_PRICE = Decimal(10) ** 7
MAX_CLIENT_ID = 128
MAX_TRAIL_PERCENT = Decimal(100)


@dataclass(frozen=True)
class OrderRequest:
    symbol: str
    side: str
    type: str
    tif: str
    qty: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    extended_hours: bool
    client_order_id: str | None
    order_class: str
    take_profit: Decimal | None
    stop_loss_stop: Decimal | None
    stop_loss_limit: Decimal | None
    trail_percent: Decimal | None = None
    trail_price: Decimal | None = None


def _decimal(body: dict[str, Any], name: str, what: str = "number") -> Decimal | None:
    v = body.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise invalid(f"{name} must be a {what}")
    d = number_from_text(v) if isinstance(v, str) else number_from_text(repr(v)) if math.isfinite(v) else None
    if d is None:
        raise invalid(f"invalid {name}: {str(v)[:40]!r}")
    return d


def _qty(body: dict[str, Any], name: str) -> Decimal | None:
    d = _decimal(body, name)
    if d is None:
        return None
    if d <= 0:
        raise invalid(f"{name} must be > 0")
    if d > MAX_QTY:
        raise invalid(f"{name} is too large")
    if -d.as_tuple().exponent > 9:  # type: ignore[operator]
        raise invalid(f"{name} can have at most 9 decimal places")
    return d


def price_field(body: dict[str, Any], name: str) -> Decimal | None:
    d = _decimal(body, name)
    if d is None:
        return None
    if d <= 0:
        raise invalid(f"{name} must be > 0")
    if d >= MAX_PRICE:
        raise invalid(f"{name} is too large")
    places = -d.normalize().as_tuple().exponent  # type: ignore[operator]
    if places > (2 if d >= 1 else 4):
        raise invalid(f"invalid {name} {d}. sub-penny increment does not fulfill minimum pricing criteria")
    return d


def _choice(body: dict[str, Any], name: str, allowed: tuple[str, ...], default: str | None = None) -> str:
    v = body.get(name)
    if v is None:
        v = default
    if v is None:
        raise invalid(f"{name} is required")
    if not isinstance(v, str) or v.lower() not in allowed:
        shown = v[:40] if isinstance(v, str) else type(v).__name__
        raise invalid(f"invalid {name} '{shown}': use one of {', '.join(allowed)}")
    return v.lower()


def _object(body: dict[str, Any], name: str) -> dict[str, Any] | None:
    v = body.get(name)
    if v is None:
        return None
    if not isinstance(v, dict):
        raise invalid(f"{name} must be an object")
    return v


def parse_symbol(v: object, name: str = "symbol") -> str:
    if not isinstance(v, str) or not v.strip():
        raise invalid(f"{name} is required")
    s = v.strip().upper()
    if symbol_error(s):
        raise invalid(f"invalid {name} '{v[:40]}'")
    return s


def parse_order(body: Any) -> OrderRequest:
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    symbol = parse_symbol(body.get("symbol"))
    side = _choice(body, "side", SIDES)
    kind = body.get("type", body.get("order_type"))
    otype = _choice({"type": kind}, "type", TYPES)
    tif_raw = body.get("time_in_force")
    if isinstance(tif_raw, str) and tif_raw.lower() in ("opg", "cls"):
        raise invalid(f"time_in_force {tif_raw.lower()} is not supported by the local broker")
    tif = _choice(body, "time_in_force", TIFS)
    qty, notional = _qty(body, "qty"), _qty(body, "notional")
    if (qty is None) == (notional is None):
        raise invalid("qty or notional is required" if qty is None else "only one of qty or notional may be given")
    limit_price, stop_price = price_field(body, "limit_price"), price_field(body, "stop_price")
    if otype in ("limit", "stop_limit") and limit_price is None:
        raise invalid(f"limit_price is required for {otype} orders")
    if otype in ("stop", "stop_limit") and stop_price is None:
        raise invalid(f"stop_price is required for {otype} orders")
    if otype in ("market", "stop", "trailing_stop") and limit_price is not None:
        raise invalid(f"limit_price is not allowed for {otype} orders")
    if otype in ("market", "limit", "trailing_stop") and stop_price is not None:
        raise invalid(f"stop_price is not allowed for {otype} orders")
    trail_percent, trail_price = _trail(body, otype, tif)
    ext = body.get("extended_hours", False)
    if ext is None:
        ext = False
    if not isinstance(ext, bool):
        raise invalid("extended_hours must be a boolean")
    if ext and (otype != "limit" or tif != "day"):
        raise invalid("extended hours order must be DAY limit orders")
    cid = body.get("client_order_id")
    if cid is not None:
        if not isinstance(cid, str) or not cid:
            raise invalid("client_order_id must be a non-empty string")
        if len(cid) > MAX_CLIENT_ID:
            raise invalid(f"client_order_id must be at most {MAX_CLIENT_ID} characters")
        if not cid.isprintable():
            raise invalid("client_order_id must be printable")
    oclass_raw = body.get("order_class")
    if oclass_raw == "":
        oclass_raw = "simple"
    if isinstance(oclass_raw, str) and oclass_raw.lower() in ("oco", "mleg"):
        raise invalid(f"order_class {oclass_raw.lower()} is not supported by the local broker")
    oclass = _choice({"order_class": oclass_raw}, "order_class", CLASSES, "simple")
    if body.get("legs") is not None:
        raise invalid("legs are only for multi-leg option orders")
    tp, sl = _object(body, "take_profit"), _object(body, "stop_loss")
    take_profit = price_field(tp, "limit_price") if tp is not None else None
    sl_stop = price_field(sl, "stop_price") if sl is not None else None
    sl_limit = price_field(sl, "limit_price") if sl is not None else None
    if tp is not None and take_profit is None:
        raise invalid("take_profit.limit_price is required")
    if sl is not None and sl_stop is None:
        raise invalid("stop_loss.stop_price is required")
    if oclass == "simple" and (tp is not None or sl is not None):
        raise invalid("take_profit and stop_loss need order_class bracket or oto")
    if oclass == "bracket" and (take_profit is None or sl_stop is None):
        raise invalid("bracket orders require take_profit.limit_price and stop_loss.stop_price")
    if oclass == "oto" and (take_profit is None) == (sl_stop is None):
        raise invalid("oto orders require exactly one of take_profit or stop_loss")
    if oclass != "simple":
        if otype not in ("market", "limit"):
            raise invalid(f"{oclass} orders must be market or limit orders")
        if tif not in ("day", "gtc"):
            raise invalid(f"{oclass} orders must be day or gtc orders")
        if qty is None or qty != qty.to_integral_value():
            raise invalid(f"fractional orders cannot be {oclass} orders")
        if ext:
            raise invalid(f"{oclass} orders cannot be extended hours orders")
    if notional is not None and (otype != "market" or tif != "day"):
        raise invalid("notional orders must be market day orders")
    if qty is not None and qty != qty.to_integral_value() and (tif != "day" or otype not in ("market", "limit")):
        raise invalid("fractional orders must be market or limit day orders")
    if notional is not None and notional < 1:
        raise invalid("notional must be at least 1")
    return OrderRequest(
        symbol=symbol,
        side=side,
        type=otype,
        tif=tif,
        qty=qty,
        notional=notional,
        limit_price=limit_price,
        stop_price=stop_price,
        extended_hours=ext,
        client_order_id=cid,
        order_class=oclass,
        take_profit=take_profit,
        stop_loss_stop=sl_stop,
        stop_loss_limit=sl_limit,
        trail_percent=trail_percent,
        trail_price=trail_price,
    )


def _trail(body: dict[str, Any], otype: str, tif: str) -> tuple[Decimal | None, Decimal | None]:
    """A trailing stop's distance, as Alpaca takes it: exactly one of trail_percent or trail_price, day or gtc."""
    if otype != "trailing_stop":
        for name in ("trail_price", "trail_percent"):
            if body.get(name) is not None:
                raise invalid(f"{name} is only for trailing_stop orders")
        return None, None
    percent, price = _decimal(body, "trail_percent"), price_field(body, "trail_price")
    if (percent is None) == (price is None):
        raise invalid("trailing_stop orders require exactly one of trail_percent or trail_price")
    if percent is not None and not 0 < percent < MAX_TRAIL_PERCENT:
        raise invalid("trail_percent must be > 0 and < 100")
    if tif not in ("day", "gtc"):
        raise invalid("trailing_stop orders must be day or gtc orders")
    return percent, price
