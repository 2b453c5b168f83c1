"""POST /v2/orders bodies checked the way Alpaca checks them: anything wrong is a 422 naming the field."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from marketboss.data.rules import number_from_text, symbol_error
from marketboss.local_broker.errors import invalid
from marketboss.signals.exits import fractional_refusal

SIDES = ("buy", "sell")
TYPES = ("market", "limit", "stop", "stop_limit", "trailing_stop")
TIFS = ("day", "gtc", "ioc", "fok")
CLASSES = ("simple", "bracket", "oto", "oco")
REPLACE_TIFS = ("day", "gtc")
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
    oco = isinstance(body.get("order_class"), str) and body["order_class"].lower() == "oco"
    if otype in ("limit", "stop_limit") and limit_price is None and not oco:  # an OCO's may come in take_profit
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
    cid = _client_id(body)
    oclass_raw = body.get("order_class")
    if oclass_raw == "":
        oclass_raw = "simple"
    if isinstance(oclass_raw, str) and oclass_raw.lower() == "mleg":
        raise invalid("order_class mleg is not supported by the local broker")
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
    if oclass == "oco":
        limit_price = _oco(side, otype, limit_price, take_profit, sl_stop, sl_limit)
    if oclass != "simple":
        if otype not in ("market", "limit"):
            raise invalid(f"{oclass} orders must be market or limit orders")
        if tif not in ("day", "gtc"):
            raise invalid(f"{oclass} orders must be day or gtc orders")
        if qty is None or qty != qty.to_integral_value():
            raise invalid(fractional_refusal(otype, tif, oclass) or "")
        if ext:
            raise invalid(f"{oclass} orders cannot be extended hours orders")
    if notional is not None and (otype != "market" or tif != "day"):
        raise invalid("notional orders must be market day orders")
    refusal = fractional_refusal(otype, tif)
    if qty is not None and qty != qty.to_integral_value() and refusal is not None:
        raise invalid(refusal)
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


def _oco(
    side: str, otype: str, limit: Decimal | None, tp: Decimal | None, stop: Decimal | None, stop_limit: Decimal | None
) -> Decimal:
    """An OCO exit as Alpaca takes it: a limit order whose price is take_profit.limit_price (limit_price may be left
    out or must agree), with a stop-loss beyond it on the losing side. Returns the order's limit price."""
    if otype != "limit":
        raise invalid("oco orders must be limit orders")
    if tp is None or stop is None:
        raise invalid("oco orders require take_profit.limit_price and stop_loss.stop_price")
    if limit is not None and limit != tp:
        raise invalid("limit_price of an oco order must equal take_profit.limit_price")
    sell = side == "sell"
    if tp <= stop if sell else tp >= stop:
        raise invalid(f"take_profit.limit_price must be {'>' if sell else '<'} stop_loss.stop_price")
    if stop_limit is not None and (stop_limit > stop if sell else stop_limit < stop):
        raise invalid(f"stop_loss.limit_price must be {'<=' if sell else '>='} stop_loss.stop_price")
    return tp


@dataclass(frozen=True)
class ReplaceRequest:
    """PATCH /v2/orders/{id}: the fields to change (None: keep the old order's)."""

    qty: Decimal | None
    tif: str | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    trail: Decimal | None
    client_order_id: str | None


def parse_replace(body: Any) -> ReplaceRequest:
    """Alpaca's replace body: qty (whole shares), time_in_force (day or gtc), limit_price, stop_price, trail,
    client_order_id."""
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    unknown = sorted(set(body) - {"qty", "time_in_force", "limit_price", "stop_price", "trail", "client_order_id"})
    if unknown:
        raise invalid(f"unknown field {unknown[0][:40]!r}: replace takes qty, time_in_force, limit_price, "
                      "stop_price, trail, client_order_id")  # fmt: skip
    qty = _qty(body, "qty")
    if qty is not None and qty != qty.to_integral_value():
        raise invalid("qty must be a whole number of shares when replacing")
    tif = _choice(body, "time_in_force", REPLACE_TIFS) if body.get("time_in_force") is not None else None
    trail = _decimal(body, "trail")
    if trail is not None and not 0 < trail < MAX_PRICE:
        raise invalid("trail must be > 0")
    return ReplaceRequest(qty, tif, price_field(body, "limit_price"), price_field(body, "stop_price"), trail,
                          _client_id(body))  # fmt: skip


def _client_id(body: dict[str, Any]) -> str | None:
    cid = body.get("client_order_id")
    if cid is not None:
        if not isinstance(cid, str) or not cid:
            raise invalid("client_order_id must be a non-empty string")
        if len(cid) > MAX_CLIENT_ID:
            raise invalid(f"client_order_id must be at most {MAX_CLIENT_ID} characters")
        if not cid.isprintable():
            raise invalid("client_order_id must be printable")
    return cid


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
