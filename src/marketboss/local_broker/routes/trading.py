"""Alpaca's trading API (/v2/account, orders, positions, clock, calendar, assets, activities) on the engine, with
the JSON shapes of the account and positions (orders, fills and assets are in views.py)."""

from __future__ import annotations

import re
import time
import uuid
from decimal import Decimal
from typing import Any

from marketboss.local_broker.account import PositionView
from marketboss.local_broker.clock import US, iso_et, iso_z, parse_time
from marketboss.local_broker.errors import ApiError, invalid, not_found
from marketboss.local_broker.http import Drop, Req, Router, q_bool, q_choice, q_day, q_decimal, q_int, q_symbols, q_time
from marketboss.local_broker.orders import parse_order, parse_replace
from marketboss.local_broker.records import OPEN_STATUSES, Order, asset_id, num
from marketboss.local_broker.state import BrokerState
from marketboss.local_broker.views import EXCHANGE, asset_json, fill_json, order_json

ACTIVITY_TYPES = frozenset(
    ("FILL", "ACATC", "ACATS", "CFEE", "CIL", "CSD", "CSW", "DIV", "DIVCGL", "DIVCGS", "DIVNRA", "DIVROC", "DIVTXEX",
     "DIVWH", "EXTRD", "FEE", "FXTRD", "INT", "INTPNL", "JNLC", "JNLS", "MA", "MEM", "NC", "OCT", "OPASN", "OPCSH",
     "OPEXC", "OPEXP", "OPTRD", "PTC", "REORG", "SPIN", "SPLIT", "SWP", "VOF", "WH")
)  # fmt: skip
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")


class TradingRoutes:
    """Handlers answer (status, JSON body); an ApiError raised anywhere becomes Alpaca's error answer."""

    def __init__(self, state: BrokerState):
        self.s = state

    def register(self, router: Router) -> None:
        r = router.add
        r("/v2/account", "GET", self.account)
        r("/v2/orders", "POST", self.create_order)
        r("/v2/orders", "GET", self.list_orders)
        r("/v2/orders", "DELETE", self.cancel_orders)
        r("/v2/orders:by_client_order_id", "GET", self.order_by_client_id)
        r("/v2/orders/{order_id}", "GET", self.get_order)
        r("/v2/orders/{order_id}", "DELETE", self.cancel_order)
        r("/v2/orders/{order_id}", "PATCH", self.replace_order)
        r("/v2/positions", "GET", self.positions)
        r("/v2/positions", "DELETE", self.close_all_positions)
        r("/v2/positions/{symbol}", "GET", self.position)
        r("/v2/positions/{symbol}", "DELETE", self.close_position)
        r("/v2/clock", "GET", self.market_clock)
        r("/v2/calendar", "GET", self.calendar)
        r("/v2/assets", "GET", self.assets)
        r("/v2/assets/{symbol}", "GET", self.asset)
        r("/v2/account/activities", "GET", self.activities)
        r("/v2/account/activities/{activity_type}", "GET", self.activities)

    async def account(self, r: Req) -> tuple[int, Any]:
        e = self.s.engine
        now = self.s.clock.now()
        v = e.valuation(now)
        count = e.daytrade_count(now)
        configs = e.account.configs
        return 200, {
            "id": e.account.account_id,
            "account_number": e.account.account_number,
            "status": "ACTIVE",
            "currency": "USD",
            "cash": num(v.cash),
            "portfolio_value": num(v.equity),
            "equity": num(v.equity),
            "last_equity": num(e.account.last_equity),
            "buying_power": num(v.buying_power),
            "regt_buying_power": num(v.regt_buying_power),
            "daytrading_buying_power": num(v.daytrading_buying_power),
            "non_marginable_buying_power": num(v.non_marginable_buying_power),
            "long_market_value": num(v.long_value),
            "short_market_value": num(v.short_value),
            "initial_margin": num(v.initial_margin),
            "maintenance_margin": num(v.maintenance_margin),
            "last_maintenance_margin": num(e.account.last_maintenance_margin),
            "sma": "0",
            "multiplier": str(v.multiplier),
            "accrued_fees": "0",
            "pending_transfer_in": "0",
            "pending_transfer_out": "0",
            "created_at": iso_z(e.account.created_at),
            "trading_blocked": False,
            "transfers_blocked": False,
            "account_blocked": False,
            "trade_suspended_by_user": bool(configs["suspend_trade"]),
            "shorting_enabled": v.multiplier > 1 and not configs["no_shorting"],
            "pattern_day_trader": count >= 4,
            "daytrade_count": count,
            "reserved_for_open_orders": num(v.reserved),
        }

    async def create_order(self, r: Req) -> tuple[int, Any]:
        req = parse_order(await r.json())
        order, legs = self.s.engine.submit(req, self.s.clock.now(), time.time())
        self.s.poke()
        if self.s.faults.applies(r.method, r.path):
            fault = self.s.faults.after_commit()
            if fault == "drop":
                raise Drop
            if fault == "fail":
                status = self.s.faults.cfg.fail_after_commit_status
                message = f"injected fault: HTTP {status} after the order was created"
                raise ApiError(status, status * 100_000 + 10_000, message)
        return 200, order_json(order, legs or None)

    async def list_orders(self, r: Req) -> tuple[int, Any]:
        q = r.query
        status = q_choice(q, "status", ("open", "closed", "all"), "open")
        side = q_choice(q, "side", ("buy", "sell"), None)
        nested = q_bool(q, "nested", False)
        symbols = q_symbols(q, invalid) if q.get("symbols") else None
        orders = self.s.store.query_orders(
            statuses=OPEN_STATUSES if status == "open" else None,
            exclude_statuses=OPEN_STATUSES if status == "closed" else None,
            after=q_time(q, "after"),
            until=q_time(q, "until"),
            symbols=symbols,
            side=side,
            top_level_only=nested,
            descending=q_choice(q, "direction", ("asc", "desc"), "desc") == "desc",
            limit=q_int(q, "limit", 50, 1, 500),
        )
        if not nested:
            return 200, [order_json(o) for o in orders]
        return 200, [order_json(o, self._legs(o)) for o in orders]

    def _legs(self, o: Order) -> list[Order] | None:
        if o.order_class == "simple" or o.parent_id is not None:
            return None
        return self.s.engine.legs_of(o.id)

    def _order(self, order_id: str) -> Order:
        if not _UUID.match(order_id):
            raise invalid(f"invalid order id '{order_id[:40]}'")
        o = self.s.engine.get_order(str(uuid.UUID(order_id)))
        if o is None:
            raise not_found("order not found")
        return o

    async def get_order(self, r: Req) -> tuple[int, Any]:
        o = self._order(r.params["order_id"])
        return 200, order_json(o, self._legs(o))

    async def order_by_client_id(self, r: Req) -> tuple[int, Any]:
        cid = r.query.get("client_order_id")
        if not cid:
            raise invalid("client_order_id is required")
        o = self.s.store.order_by_client_id(cid)
        if o is None:
            raise not_found("order not found")
        o = self.s.engine.get_order(o.id) or o
        return 200, order_json(o, self._legs(o))

    async def cancel_order(self, r: Req) -> tuple[int, Any]:
        o = self._order(r.params["order_id"])
        self.s.engine.cancel(o.id, self.s.clock.now(), time.time())
        return 204, None

    async def replace_order(self, r: Req) -> tuple[int, Any]:
        o = self._order(r.params["order_id"])
        new = self.s.engine.replace(o.id, parse_replace(await r.json()), self.s.clock.now(), time.time())
        self.s.poke()
        return 200, order_json(new, self._legs(new))

    async def cancel_orders(self, r: Req) -> tuple[int, Any]:
        done = self.s.engine.cancel_all(self.s.clock.now(), time.time())
        return 207, [{"id": o.id, "status": 200, "body": order_json(o)} for o in done]

    # ------------------------------------------------------------------------------------------ positions

    def _position_json(self, pv: PositionView) -> dict[str, Any]:
        p, price, last = pv.position, pv.price, pv.lastday_price
        value, basis = p.qty * price, p.qty * p.avg_entry_price
        pl, day_pl = value - basis, (price - last) * p.qty
        sign = 1 if p.qty > 0 else -1
        return {
            "asset_id": asset_id(p.symbol),
            "symbol": p.symbol,
            "exchange": EXCHANGE,
            "asset_class": "us_equity",
            "asset_marginable": True,
            "avg_entry_price": num(p.avg_entry_price),
            "qty": num(p.qty),
            "qty_available": num(sign * (abs(p.qty) - pv.held)),
            "side": "long" if p.qty > 0 else "short",
            "market_value": num(value),
            "cost_basis": num(basis),
            "unrealized_pl": num(pl),
            "unrealized_plpc": _ratio(pl, abs(basis)),
            "unrealized_intraday_pl": num(day_pl),
            "unrealized_intraday_plpc": _ratio(day_pl, abs(last * p.qty)),
            "current_price": num(price),
            "lastday_price": num(last),
            "change_today": _ratio(price - last, last),
        }

    async def positions(self, r: Req) -> tuple[int, Any]:
        return 200, [self._position_json(pv) for pv in self.s.engine.position_views(self.s.clock.now())]

    async def position(self, r: Req) -> tuple[int, Any]:
        want = r.params["symbol"]
        for pv in self.s.engine.position_views(self.s.clock.now()):
            if want.upper() == pv.position.symbol or want == asset_id(pv.position.symbol):
                return 200, self._position_json(pv)
        raise not_found("position does not exist")

    async def close_position(self, r: Req) -> tuple[int, Any]:
        q = r.query
        o = self.s.engine.close_position(
            r.params["symbol"], q_decimal(q, "qty"), q_decimal(q, "percentage"), self.s.clock.now(), time.time()
        )
        self.s.poke()
        return 200, order_json(o)

    async def close_all_positions(self, r: Req) -> tuple[int, Any]:
        now, wall = self.s.clock.now(), time.time()
        e = self.s.engine
        if q_bool(r.query, "cancel_orders", False):
            e.cancel_all(now, wall)
        out = []
        for sym in sorted(e.account.positions):
            try:
                o = e.close_position(sym, None, None, now, wall)
                out.append({"symbol": sym, "status": 200, "order_id": o.id, "body": order_json(o)})
            except ApiError as exc:
                out.append({"symbol": sym, "status": exc.status, "body": {"symbol": sym, **exc.body()}})
        self.s.poke()
        return 207, out

    # -------------------------------------------------------------------------------- clock, assets, activities

    async def market_clock(self, r: Req) -> tuple[int, Any]:
        return 200, self.s.clock.view(self.s.clock.now())

    async def calendar(self, r: Req) -> tuple[int, Any]:
        """Sessions between the start and end dates (inclusive, New York dates; default: a year either side)."""
        q, ses = r.query, self.s.sessions
        now = self.s.clock.now()
        first = q_day(q, "start") or iso_et(now - 366 * 86_400 * US)[:10]
        last = q_day(q, "end") or iso_et(now + 366 * 86_400 * US)[:10]
        # (to a week past the last: the last session's settlement, T+1, is the next session)
        lo, hi = parse_time(first) - 86_400 * US, parse_time(last) + 9 * 86_400 * US
        opens = ses.opens_between(lo, hi)
        out = []
        for o, after in zip(opens, [*opens[1:], None], strict=True):
            day = iso_et(o)[:10]
            if first <= day <= last:
                settles = iso_et(after)[:10] if after is not None else day
                out.append({"date": day, "open": iso_et(o)[11:16], "close": iso_et(ses.next_close(o))[11:16],
                            "session_open": "0400", "session_close": "2000", "settlement_date": settles})  # fmt: skip
        return 200, out

    async def assets(self, r: Req) -> tuple[int, Any]:
        q = r.query
        status = q_choice(q, "status", ("active", "inactive"), "active")
        klass = q_choice(q, "asset_class", ("us_equity", "us_option", "crypto", "crypto_perp"), "us_equity")
        exchange = q.get("exchange")
        if status != "active" or klass != "us_equity" or (exchange and exchange.upper() != EXCHANGE):
            return 200, []
        return 200, [asset_json(s, self.s.engine.shortable(s)) for s in self.s.market.symbols]

    async def asset(self, r: Req) -> tuple[int, Any]:
        want = r.params["symbol"]
        for s in self.s.market.symbols:
            if want.upper() == s or want == asset_id(s):
                return 200, asset_json(s, self.s.engine.shortable(s))
        raise not_found(f"asset not found for {want[:40]}")

    async def activities(self, r: Req) -> tuple[int, Any]:
        q = r.query
        kinds: set[str] = set()
        one = r.params.get("activity_type")
        for part in ([one] if one else (q.get("activity_types") or "").split(",")):
            if part.strip():
                if part.strip().upper() not in ACTIVITY_TYPES:
                    raise invalid(f"invalid activity type '{part[:40]}'")
                kinds.add(part.strip().upper())
        category = q_choice(q, "category", ("trade_activity", "non_trade_activity"), None)
        descending = q_choice(q, "direction", ("asc", "desc"), "desc") == "desc"
        size = q_int(q, "page_size", 100, 1, 100)
        after, until, day = q_time(q, "after"), q_time(q, "until"), q_time(q, "date")
        if day is not None:
            if after is not None or until is not None:
                raise invalid("date cannot be combined with after or until")
            after, until = day - 1, day + 86_400 * US
        token = q.get("page_token")
        page_after = None
        if token:
            page_after = self.s.store.fill_position(token)
            if page_after is None:
                raise invalid("invalid page_token")
        if (kinds and "FILL" not in kinds) or category == "non_trade_activity":
            return 200, []
        fills = self.s.store.query_fills(
            after=after, until=until, descending=descending, page_after=page_after, limit=size
        )
        return 200, [fill_json(f, self.s.engine.account.account_id) for f in fills]


def _ratio(a: Decimal, b: Decimal) -> str:
    return "0" if b == 0 else num((a / b).quantize(Decimal("1e-6")))

