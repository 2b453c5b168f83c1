"""The local broker's HTTP face: Alpaca's trading and market-data endpoints, plus /admin/ for clock and faults.

A plain ASGI application (Starlette's data structures, no framework router) served by uvicorn, so that every
answer, including 404, 405, 413 and unexpected failures, is Alpaca's {"code", "message"} JSON and nothing ever
redirects (alpaca-py does not follow redirects). Handlers run on the event loop thread and do their SQLite work
without awaiting in between, so requests never interleave inside a change: one writer, one transaction each.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import re
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.datastructures import QueryParams

from marketboss.data.io import atomic_write_bytes, read_bars
from marketboss.errors import ConfigError
from marketboss.local_broker import errors as E
from marketboss.local_broker.account import PositionView
from marketboss.local_broker.clock import US, MarketClock, Sessions, iso_et, iso_z, parse_time, week_aligned_offset
from marketboss.local_broker.config import BrokerConfig, FaultConfig
from marketboss.local_broker.engine import Engine
from marketboss.local_broker.errors import ApiError, bad_request, invalid, not_found
from marketboss.local_broker.faults import FaultInjector, RateLimiter
from marketboss.local_broker.marketdata import MAX_LIMIT, MarketData, parse_barframe
from marketboss.local_broker.orders import parse_order, parse_symbol
from marketboss.local_broker.records import OPEN_STATUSES
from marketboss.local_broker.sqlite_store import SqliteStore
from marketboss.local_broker.views import EXCHANGE, asset_id, asset_json, fill_json, num, order_json
from marketboss.logging import get_logger

log = get_logger(__name__)

MAX_BODY = 1 << 20
JSON = (b"content-type", b"application/json")
ACTIVITY_TYPES = frozenset(
    ("FILL", "ACATC", "ACATS", "CFEE", "CIL", "CSD", "CSW", "DIV", "DIVCGL", "DIVCGS", "DIVNRA", "DIVROC", "DIVTXEX",
     "DIVWH", "EXTRD", "FEE", "FXTRD", "INT", "INTPNL", "JNLC", "JNLS", "MA", "MEM", "NC", "OCT", "OPASN", "OPCSH",
     "OPEXC", "OPEXP", "OPTRD", "PTC", "REORG", "SPIN", "SPLIT", "SWP", "VOF", "WH")
)  # fmt: skip
FEEDS = ("iex", "sip", "otc", "delayed_sip", "boats", "overnight")
ADJUSTMENTS = ("raw", "split", "dividend", "spin-off", "all")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")


class Drop(Exception):
    """Close the connection without answering (an injected network fault)."""


class Req:
    """What a handler sees of a request."""

    __slots__ = ("_query", "method", "params", "path", "receive", "scope")

    def __init__(self, scope: dict[str, Any], receive: Any, path: str, params: dict[str, str]):
        self.scope = scope
        self.receive = receive
        self.method: str = scope["method"]
        self.path = path
        self.params = params
        self._query: QueryParams | None = None

    @property
    def query(self) -> QueryParams:
        if self._query is None:
            self._query = QueryParams(self.scope["query_string"].decode("latin-1"))
        return self._query

    async def json(self) -> Any:
        length = _header(self.scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            raise ApiError(413, E.TOO_LARGE, f"request body larger than {MAX_BODY} bytes")
        chunks, size = [], 0
        while True:
            msg = await self.receive()
            if msg["type"] == "http.disconnect":
                raise Drop
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                raise ApiError(413, E.TOO_LARGE, f"request body larger than {MAX_BODY} bytes")
            chunks.append(chunk)
            if not msg.get("more_body", False):
                break
        raw = b"".join(chunks)
        if not raw.strip():
            raise invalid("request body is empty: expected a JSON object")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise invalid("request body format is invalid: not JSON") from None


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for k, v in scope["headers"]:
        if k == name:
            return str(v.decode("latin-1"))
    return None


Handler = Callable[[Req], Awaitable[tuple[int, Any]]]


# ---------------------------------------------------------------------------------------------- state


@dataclass
class BrokerState:
    """Everything the server needs, built (and validated) before it starts listening."""

    cfg: BrokerConfig
    sessions: Sessions
    market: MarketData
    store: SqliteStore
    clock: MarketClock
    engine: Engine
    faults: FaultInjector
    limiter: RateLimiter

    def close(self) -> None:
        self.store.close()


def build_state(cfg: BrokerConfig) -> BrokerState:
    """Load the bars and the database; restore the clock where the last run left it."""
    bars = read_bars(cfg.data)
    sessions = Sessions()
    market = MarketData(bars, sessions, cfg.spread_bps)
    store = SqliteStore(cfg.db)
    try:
        clock = MarketClock(cfg.clock, sessions, speed=cfg.speed, always_open=cfg.always_open)
        start = int(cfg.start.timestamp() * US) if cfg.start else market.first_start
        saved, offset = store.get_meta("clock_us"), store.get_meta("clock_offset_us")
        with store.transaction():
            if cfg.clock == "wallclock":
                if offset is None:
                    offset = str(week_aligned_offset(int(time.time() * US), start))
                    store.set_meta("clock_offset_us", offset)
                clock.set_offset(int(offset))
            else:
                clock.set(int(saved) if saved is not None else start)
            store.set_meta("clock_us", str(clock.now()))
            known = store.get_meta("data_path")
            if known is not None and known != str(cfg.data.resolve()):
                log.warning("broker_data_changed", previous=known, now=str(cfg.data))
            store.set_meta("data_path", str(cfg.data.resolve()))
        engine = Engine(cfg, store, market, clock, sessions)
    except BaseException:
        store.close()
        raise
    return BrokerState(
        cfg, sessions, market, store, clock, engine, FaultInjector(cfg.faults, cfg.seed), RateLimiter(cfg.rate_limit)
    )


# ---------------------------------------------------------------------------------------------- parameters


def _q_choice(
    q: QueryParams, name: str, allowed: tuple[str, ...], default: str | None, err: Any = invalid
) -> str | None:
    v = q.get(name)
    if v is None or v == "":
        return default
    if v.lower() not in allowed:
        raise err(f"invalid {name} '{v[:40]}': use one of {', '.join(allowed)}")
    return v.lower()


def _q_int(q: QueryParams, name: str, default: int, lo: int, hi: int, err: Any = invalid) -> int:
    v = q.get(name)
    if v is None or v == "":
        return default
    if not re.fullmatch(r"-?\d{1,12}", v.strip()):
        raise err(f"invalid {name} '{v[:40]}': expected an integer")
    n = int(v)
    if not lo <= n <= hi:
        raise err(f"{name} must be between {lo} and {hi}")
    return n


def _q_time(q: QueryParams, name: str, err: Any = invalid) -> int | None:
    v = q.get(name)
    if v is None or v == "":
        return None
    try:
        return parse_time(v)
    except (ValueError, OverflowError):
        raise err(f"invalid {name} '{v[:40]}': expected an RFC 3339 timestamp or a date") from None


def _q_day(q: QueryParams, name: str) -> str | None:
    v = q.get(name)
    if v is None or v == "":
        return None
    try:
        return date.fromisoformat(v.strip()[:10]).isoformat()
    except ValueError:
        raise invalid(f"invalid {name} '{v[:40]}': expected a date (YYYY-MM-DD)") from None


def _q_bool(q: QueryParams, name: str, default: bool) -> bool:
    v = q.get(name)
    if v is None or v == "":
        return default
    if v.lower() not in ("true", "false", "1", "0"):
        raise invalid(f"invalid {name} '{v[:40]}': expected true or false")
    return v.lower() in ("true", "1")


def _q_decimal(q: QueryParams, name: str) -> Decimal | None:
    v = q.get(name)
    if v is None or v == "":
        return None
    try:
        d = Decimal(v.strip())
    except ArithmeticError:
        raise invalid(f"invalid {name} '{v[:40]}'") from None
    if not d.is_finite() or d <= 0 or d > 10**9:
        raise invalid(f"invalid {name} '{v[:40]}'")
    return d


def _symbols(q: QueryParams, err: Any) -> list[str]:
    raw = q.get("symbols")
    if not raw:
        raise err("symbols is required")
    out = []
    for part in raw.split(","):
        if part.strip():
            try:
                out.append(parse_symbol(part))
            except ApiError:
                raise err(f"invalid symbol '{part[:40]}'") from None
    if not out:
        raise err("symbols is required")
    return out


# ---------------------------------------------------------------------------------------------- the app


class BrokerApp:
    def __init__(self, state: BrokerState, ready_file: Path | None = None, base_url: str = ""):
        self.s = state
        self.ready_file = ready_file
        self.base_url = base_url
        self._key = state.cfg.key_id.encode()
        self._secret = state.cfg.secret_key.get_secret_value().encode()
        self.requests: Counter[int] = Counter()
        self.wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._static: dict[str, dict[str, Handler]] = {}
        self._patterns: list[tuple[re.Pattern[str], dict[str, Handler]]] = []
        self._routes()

    # ------------------------------------------------------------------------------------------ routing

    def _route(self, path: str, method: str, handler: Handler) -> None:
        if "{" not in path:
            self._static.setdefault(path, {})[method] = handler
            return
        regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$")
        for pattern, methods in self._patterns:
            if pattern.pattern == regex.pattern:
                methods[method] = handler
                return
        self._patterns.append((regex, {method: handler}))

    def _routes(self) -> None:
        r = self._route
        r("/v2/account", "GET", self.account)
        r("/v2/orders", "POST", self.create_order)
        r("/v2/orders", "GET", self.list_orders)
        r("/v2/orders", "DELETE", self.cancel_orders)
        r("/v2/orders:by_client_order_id", "GET", self.order_by_client_id)
        r("/v2/orders/{order_id}", "GET", self.get_order)
        r("/v2/orders/{order_id}", "DELETE", self.cancel_order)
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
        r("/v2/stocks/bars", "GET", self.bars)
        r("/v2/stocks/bars/latest", "GET", self.latest_bars)
        r("/v2/stocks/quotes/latest", "GET", self.latest_quotes)
        r("/v2/stocks/trades/latest", "GET", self.latest_trades)
        r("/v2/stocks/{symbol}/bars/latest", "GET", self.latest_bar)
        r("/v2/stocks/{symbol}/quotes/latest", "GET", self.latest_quote)
        r("/v2/stocks/{symbol}/trades/latest", "GET", self.latest_trade)
        r("/admin/clock", "GET", self.admin_clock)
        r("/admin/clock", "POST", self.admin_set_clock)
        r("/admin/faults", "GET", self.admin_faults)
        r("/admin/faults", "POST", self.admin_set_faults)
        r("/admin/state", "GET", self.admin_state)

    def _resolve(self, path: str) -> tuple[dict[str, Handler], dict[str, str]] | None:
        methods = self._static.get(path)
        if methods is not None:
            return methods, {}
        for pattern, methods in self._patterns:
            m = pattern.match(path)
            if m:
                return methods, m.groupdict()
        return None

    # ------------------------------------------------------------------------------------------ ASGI

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path: str = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/") or "/"
        method: str = scope["method"]
        admin = path.startswith("/admin/")
        limited = not admin and self.s.limiter.limit > 0
        headers: list[tuple[bytes, bytes]] = []
        status, body = 500, None
        try:
            try:
                if not admin:
                    decision = self.s.faults.decide(method, path)
                    if decision is not None:
                        if decision.latency_s:
                            await asyncio.sleep(decision.latency_s)
                        if decision.outcome == "drop":
                            raise Drop
                        if decision.outcome == "429":
                            raise ApiError(429, E.RATE_LIMITED, "rate limit exceeded")
                        if decision.outcome:
                            code = int(decision.outcome)
                            raise ApiError(code, code * 100_000 + 10_000, f"injected fault: HTTP {code}")
                found = self._resolve(path)
                if found is None:
                    raise not_found(f"endpoint {path[:80]} not found")
                methods, params = found
                handler = methods.get(method)
                if handler is None:
                    allow = ", ".join(sorted(methods)).encode()
                    headers.append((b"allow", allow))
                    raise ApiError(405, E.METHOD_NOT_ALLOWED, f"method {method[:10]} not allowed")
                if not self._authorized(scope):
                    raise ApiError(401, E.UNAUTHORIZED, "request is not authorized")
                if limited:
                    allowed, remaining, reset = self.s.limiter.hit(time.time())
                    headers += _rate_headers(self.s.limiter.limit, remaining, reset)
                    if not allowed:
                        raise ApiError(429, E.RATE_LIMITED, "rate limit exceeded")
                status, body = await handler(Req(scope, receive, path, params))
            except ApiError as exc:
                status, body = exc.status, exc.body()
            except Drop:
                raise
            except Exception as exc:
                log.error("broker_unexpected_error", path=path, method=method, error_type=type(exc).__name__,
                          error=str(exc)[:500], exc_info=True)  # fmt: skip
                status, body = 500, {"code": E.SERVER_ERROR, "message": f"internal error: {type(exc).__name__}"}
        except Drop:
            self.requests[0] += 1
            _drop(send)
            return
        if limited and not any(k == b"x-ratelimit-limit" for k, _ in headers):
            remaining, reset = self.s.limiter.peek(time.time())
            headers += _rate_headers(self.s.limiter.limit, remaining, reset)
        self.requests[status] += 1
        if body is None:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        data = orjson.dumps(body)
        headers += [JSON, (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    def _authorized(self, scope: dict[str, Any]) -> bool:
        key = secret = None
        for k, v in scope["headers"]:
            if k == b"apca-api-key-id":
                key = v
            elif k == b"apca-api-secret-key":
                secret = v
        return (
            key is not None
            and secret is not None
            and hmac.compare_digest(key, self._key)
            and hmac.compare_digest(secret, self._secret)
        )

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    self._startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await self._shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _startup(self) -> None:
        self.wake = asyncio.Event()
        self._task = asyncio.create_task(self._matcher())
        if self.ready_file is not None:
            atomic_write_bytes(self.ready_file, orjson.dumps({"base_url": self.base_url}))

    async def _shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._save_clock()
        self.s.close()

    # ------------------------------------------------------------------------------------------ matcher

    async def _matcher(self) -> None:
        """Fills happen here, after the configured latency, never inside the request that placed the order."""
        assert self.wake is not None
        last_save = time.time()
        moving = self.s.clock.mode != "stepped"
        # Deadlines count from the wall time the last step ran at, not from now: a step that outlasts the
        # latency must still leave a timer for what it made eligible (a partial fill's remainder). 0.0 at
        # start: orders reloaded from the database are looked at once.
        stepped_at = 0.0
        while True:
            now = time.time()
            deadline = self.s.engine.next_deadline(stepped_at)
            timeout = None if deadline is None else max(0.0, deadline - now) + 0.0005
            if moving:
                timeout = 0.05 if timeout is None else min(timeout, 0.05)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout)
            self.wake.clear()
            try:
                stepped_at = time.time()
                self.s.engine.step(stepped_at)
            except Exception as exc:  # keep matching; the error is logged and the transaction rolled back
                log.error("broker_step_failed", error_type=type(exc).__name__, error=str(exc)[:500], exc_info=True)
                await asyncio.sleep(0.1)
            if moving and time.time() - last_save > 1.0:
                self._save_clock()
                last_save = time.time()

    def _save_clock(self) -> None:
        with contextlib.suppress(Exception), self.s.store.transaction():
            self.s.store.set_meta("clock_us", str(self.s.clock.now()))
            if self.s.clock.mode == "wallclock":
                self.s.store.set_meta("clock_offset_us", str(self.s.clock.offset_us()))

    def _poke(self) -> None:
        if self.wake is not None:
            self.wake.set()

    # ------------------------------------------------------------------------------------------ account & orders

    async def account(self, r: Req) -> tuple[int, Any]:
        e = self.s.engine
        v = e.valuation(self.s.clock.now())
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
            "regt_buying_power": num(v.buying_power),
            "non_marginable_buying_power": num(v.non_marginable_buying_power),
            "long_market_value": num(v.long_value),
            "short_market_value": num(v.short_value),
            "initial_margin": num(v.initial_margin),
            "maintenance_margin": num(v.maintenance_margin),
            "last_maintenance_margin": num(v.maintenance_margin),
            "sma": "0",
            "multiplier": str(self.s.cfg.multiplier),
            "accrued_fees": "0",
            "pending_transfer_in": "0",
            "pending_transfer_out": "0",
            "created_at": iso_z(e.account.created_at),
            "trading_blocked": False,
            "transfers_blocked": False,
            "account_blocked": False,
            "trade_suspended_by_user": False,
            "shorting_enabled": self.s.cfg.multiplier > 1,
            "pattern_day_trader": False,
            "daytrade_count": 0,
            "reserved_for_open_orders": num(v.reserved),
        }

    async def create_order(self, r: Req) -> tuple[int, Any]:
        req = parse_order(await r.json())
        order, legs = self.s.engine.submit(req, self.s.clock.now(), time.time())
        self._poke()
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
        status = _q_choice(q, "status", ("open", "closed", "all"), "open")
        side = _q_choice(q, "side", ("buy", "sell"), None)
        nested = _q_bool(q, "nested", False)
        symbols = _symbols(q, invalid) if q.get("symbols") else None
        orders = self.s.store.query_orders(
            statuses=OPEN_STATUSES if status == "open" else None,
            exclude_statuses=OPEN_STATUSES if status == "closed" else None,
            after=_q_time(q, "after"),
            until=_q_time(q, "until"),
            symbols=symbols,
            side=side,
            top_level_only=nested,
            descending=_q_choice(q, "direction", ("asc", "desc"), "desc") == "desc",
            limit=_q_int(q, "limit", 50, 1, 500),
        )
        if not nested:
            return 200, [order_json(o) for o in orders]
        return 200, [order_json(o, self._legs(o)) for o in orders]

    def _legs(self, o: Any) -> list[Any] | None:
        if o.order_class == "simple" or o.parent_id is not None:
            return None
        return self.s.engine.legs_of(o.id)

    def _order(self, order_id: str) -> Any:
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
            r.params["symbol"], _q_decimal(q, "qty"), _q_decimal(q, "percentage"), self.s.clock.now(), time.time()
        )
        self._poke()
        return 200, order_json(o)

    async def close_all_positions(self, r: Req) -> tuple[int, Any]:
        now, wall = self.s.clock.now(), time.time()
        e = self.s.engine
        if _q_bool(r.query, "cancel_orders", False):
            e.cancel_all(now, wall)
        out = []
        for sym in sorted(e.account.positions):
            try:
                o = e.close_position(sym, None, None, now, wall)
                out.append({"symbol": sym, "status": 200, "order_id": o.id, "body": order_json(o)})
            except ApiError as exc:
                out.append({"symbol": sym, "status": exc.status, "body": {"symbol": sym, **exc.body()}})
        self._poke()
        return 207, out

    # -------------------------------------------------------------------------------- clock, assets, activities

    async def market_clock(self, r: Req) -> tuple[int, Any]:
        return 200, self.s.clock.view(self.s.clock.now())

    async def calendar(self, r: Req) -> tuple[int, Any]:
        """Sessions between the start and end dates (inclusive, New York dates; default: a year either side)."""
        q, ses = r.query, self.s.sessions
        now = self.s.clock.now()
        first = _q_day(q, "start") or iso_et(now - 366 * 86_400 * US)[:10]
        last = _q_day(q, "end") or iso_et(now + 366 * 86_400 * US)[:10]
        lo, hi = parse_time(first) - 86_400 * US, parse_time(last) + 2 * 86_400 * US
        out = []
        for o in ses.opens_between(lo, hi):
            day = iso_et(o)[:10]
            if first <= day <= last:
                out.append({"date": day, "open": iso_et(o)[11:16], "close": iso_et(ses.next_close(o))[11:16],
                            "session_open": "0400", "session_close": "2000", "settlement_date": day})  # fmt: skip
        return 200, out

    async def assets(self, r: Req) -> tuple[int, Any]:
        q = r.query
        status = _q_choice(q, "status", ("active", "inactive"), "active")
        klass = _q_choice(q, "asset_class", ("us_equity", "us_option", "crypto", "crypto_perp"), "us_equity")
        exchange = q.get("exchange")
        if status != "active" or klass != "us_equity" or (exchange and exchange.upper() != EXCHANGE):
            return 200, []
        shortable = self.s.cfg.multiplier > 1
        return 200, [asset_json(s, shortable) for s in self.s.market.symbols]

    async def asset(self, r: Req) -> tuple[int, Any]:
        want = r.params["symbol"]
        for s in self.s.market.symbols:
            if want.upper() == s or want == asset_id(s):
                return 200, asset_json(s, self.s.cfg.multiplier > 1)
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
        category = _q_choice(q, "category", ("trade_activity", "non_trade_activity"), None)
        descending = _q_choice(q, "direction", ("asc", "desc"), "desc") == "desc"
        size = _q_int(q, "page_size", 100, 1, 100)
        after, until, day = _q_time(q, "after"), _q_time(q, "until"), _q_time(q, "date")
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

    # ------------------------------------------------------------------------------------------ market data

    def _data_params(self, q: QueryParams) -> list[str]:
        _q_choice(q, "feed", FEEDS, "iex", bad_request)
        cur = q.get("currency")
        if cur and cur.upper() != "USD":
            raise bad_request("only USD prices are available from the local broker")
        return _symbols(q, bad_request)

    async def bars(self, r: Req) -> tuple[int, Any]:
        q = r.query
        symbols = self._data_params(q)
        tf = q.get("timeframe")
        if not tf:
            raise bad_request("timeframe is required")
        frame = parse_barframe(tf)
        _q_choice(q, "adjustment", ADJUSTMENTS, "raw", bad_request)
        start, end = _q_time(q, "start", bad_request), _q_time(q, "end", bad_request)
        if start is not None and end is not None and end < start:
            raise bad_request("end should not be before start")
        limit = _q_int(q, "limit", 1000, 1, MAX_LIMIT, bad_request)
        descending = _q_choice(q, "sort", ("asc", "desc"), "asc", bad_request) == "desc"
        known = [s for s in symbols if self.s.market.has(s)]
        bars, token = self.s.market.bars(
            known, frame, start, end, limit, q.get("page_token") or None, descending, self.s.clock.now()
        )
        return 200, {"bars": bars, "next_page_token": token}

    def _latest(self, q: QueryParams, one: str | None, kind: str) -> dict[str, Any]:
        symbols = [parse_symbol(one)] if one else self._data_params(q)
        if one:
            _q_choice(q, "feed", FEEDS, "iex", bad_request)
        now, m = self.s.clock.now(), self.s.market
        out: dict[str, Any] = {}
        for sym in symbols:
            if not m.has(sym):
                continue
            if kind == "bars":
                i = m.last_complete(sym, now)
                if i is not None:
                    out[sym] = m.bar_json(sym, i)
                continue
            quote = m.quote(sym, now)
            if quote is None:
                continue
            if kind == "quotes":
                out[sym] = {"t": iso_z(now), "ax": "V", "ap": float(quote.ask), "as": 1, "bx": "V",
                            "bp": float(quote.bid), "bs": 1, "c": ["R"], "z": "C"}  # fmt: skip
            else:
                out[sym] = {"t": iso_z(now), "x": "V", "p": float(quote.price), "s": 100, "c": ["@"],
                            "i": now // US, "z": "C"}  # fmt: skip
        return out

    async def latest_bars(self, r: Req) -> tuple[int, Any]:
        return 200, {"bars": self._latest(r.query, None, "bars")}

    async def latest_quotes(self, r: Req) -> tuple[int, Any]:
        return 200, {"quotes": self._latest(r.query, None, "quotes")}

    async def latest_trades(self, r: Req) -> tuple[int, Any]:
        return 200, {"trades": self._latest(r.query, None, "trades")}

    async def _latest_one(self, r: Req, kind: str, key: str) -> tuple[int, Any]:
        try:
            sym = parse_symbol(r.params["symbol"])
        except ApiError:
            raise bad_request(f"invalid symbol '{r.params['symbol'][:40]}'") from None
        got = self._latest(r.query, sym, kind)
        if sym not in got:
            raise not_found(f"no {key} for {sym} at the simulated time")
        return 200, {"symbol": sym, key: got[sym]}

    async def latest_bar(self, r: Req) -> tuple[int, Any]:
        return await self._latest_one(r, "bars", "bar")

    async def latest_quote(self, r: Req) -> tuple[int, Any]:
        return await self._latest_one(r, "quotes", "quote")

    async def latest_trade(self, r: Req) -> tuple[int, Any]:
        return await self._latest_one(r, "trades", "trade")

    # ------------------------------------------------------------------------------------------ admin

    def _clock_view(self) -> dict[str, Any]:
        c, m, ses = self.s.clock, self.s.market, self.s.sessions
        t = c.now()
        nxt = m.next_bar_start(t)
        return {
            "timestamp": iso_z(t),
            "timestamp_et": iso_et(t),
            "mode": c.mode,
            "speed": c.speed,
            "always_open": c.always_open,
            "is_open": c.is_open(t),
            "next_open": iso_z(ses.next_open(t)),
            "next_close": iso_z(ses.next_close(t)),
            "next_bar": None if nxt is None else iso_z(nxt),
            "data_start": iso_z(m.first_start),
            "data_end": iso_z(m.last_end),
        }

    async def admin_clock(self, r: Req) -> tuple[int, Any]:
        return 200, self._clock_view()

    async def admin_set_clock(self, r: Req) -> tuple[int, Any]:
        """Body: exactly one of {"timestamp": T}, {"bar": STAMP} (the start of the bar stamped STAMP, e.g. a daily
        bar's session open), {"advance": "next_bar"|"bar_end"|"next_open"|"next_close"} or {"seconds": N};
        optionally "allow_backwards": true."""
        body = await r.json()
        if not isinstance(body, dict):
            raise invalid("body must be a JSON object")
        unknown = set(body) - {"timestamp", "bar", "advance", "seconds", "allow_backwards"}
        if unknown:
            raise invalid(f"unknown field(s): {', '.join(sorted(unknown))[:80]}")
        given = [k for k in ("timestamp", "bar", "advance", "seconds") if body.get(k) is not None]
        if len(given) != 1:
            raise invalid("give exactly one of timestamp, bar, advance or seconds")
        back = body.get("allow_backwards", False)
        if not isinstance(back, bool):
            raise invalid("allow_backwards must be a boolean")
        c, m, ses = self.s.clock, self.s.market, self.s.sessions
        now = c.now()
        target = self._clock_target(given[0], body[given[0]], now)
        if target < now and not back:
            raise invalid(f"the clock cannot move backwards (now {iso_z(now)}); send allow_backwards: true")
        if target > ses.last_close:
            raise invalid(f"{iso_z(target)} is beyond the NYSE calendar (last close {iso_z(ses.last_close)})")
        if target < m.first_start - 366 * 86_400 * US:
            raise invalid(f"{iso_z(target)} is more than a year before the data ({iso_z(m.first_start)})")
        c.set(target)
        e = self.s.engine
        if target < e.processed:
            e.rewind(target)
        self._save_clock()
        fills = e.step(time.time())
        self._poke()
        return 200, {**self._clock_view(), "fills": fills}

    def _clock_target(self, kind: str, value: Any, now: int) -> int:
        m, ses = self.s.market, self.s.sessions
        if kind in ("timestamp", "bar"):
            if not isinstance(value, str):
                raise invalid(f"{kind} must be an RFC 3339 timestamp string")
            try:
                t = parse_time(value)
            except (ValueError, OverflowError):
                raise invalid(f"invalid {kind} '{value[:40]}'") from None
            if kind == "timestamp":
                return t
            start = m.bar_starting_at_stamp(t)
            if start is None:
                raise invalid(f"no bar is stamped {iso_z(t)}")
            return start
        if kind == "seconds":
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 20 * 366 * 86_400:
                raise invalid("seconds must be a positive number (at most 20 years)")
            return now + int(value * US)
        choices: dict[str, Callable[[int], int | None]] = {
            "next_bar": m.next_bar_start,
            "bar_end": m.current_bar_end,
            "next_open": ses.next_open,
            "next_close": ses.next_close,
        }
        if not isinstance(value, str) or value not in choices:
            raise invalid(f"advance must be one of {', '.join(choices)}")
        found = choices[value](now)
        if found is None:
            raise invalid(f"no {value.replace('_', ' ')} after {iso_z(now)}")
        return found

    async def admin_faults(self, r: Req) -> tuple[int, Any]:
        return 200, {**self.s.faults.cfg.model_dump(mode="json"), "injected": dict(self.s.faults.injected)}

    async def admin_set_faults(self, r: Req) -> tuple[int, Any]:
        """The body replaces the whole fault configuration (missing fields: off); {} switches faults off."""
        body = await r.json()
        try:
            cfg = FaultConfig.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or "body"
            raise invalid(f"{where}: {first['msg']}"[:300]) from None
        self.s.faults.configure(cfg)
        self.s.engine.fills.reject_rate = cfg.reject_rate
        return 200, {**cfg.model_dump(mode="json"), "injected": dict(self.s.faults.injected)}

    async def admin_state(self, r: Req) -> tuple[int, Any]:
        e = self.s.engine
        v = e.valuation(self.s.clock.now())
        return 200, {
            "clock": self._clock_view(),
            "account": {"cash": num(v.cash), "equity": num(v.equity), "buying_power": num(v.buying_power)},
            "open_orders": len(e.book.open),
            **self.s.store.counts(),
            "requests": {str(k): n for k, n in sorted(self.requests.items())},
            "faults": self.s.faults.cfg.model_dump(mode="json"),
            "faults_injected": dict(self.s.faults.injected),
            "config": self.s.cfg.public(),
        }


def _ratio(a: Decimal, b: Decimal) -> str:
    return "0" if b == 0 else num((a / b).quantize(Decimal("1e-6")))


def _rate_headers(limit: int, remaining: int, reset: int) -> list[tuple[bytes, bytes]]:
    return [
        (b"x-ratelimit-limit", str(limit).encode()),
        (b"x-ratelimit-remaining", str(remaining).encode()),
        (b"x-ratelimit-reset", str(reset).encode()),
    ]


def _drop(send: Any) -> None:
    """Close the socket under uvicorn's request cycle without writing a byte."""
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:  # not a uvicorn request cycle: nothing to drop, so fail loudly instead
        raise ConfigError("dropped connections need uvicorn's HTTP protocol (httptools or h11)")
    cycle.disconnected = True  # type: ignore[union-attr]
    cycle.keep_alive = False  # type: ignore[union-attr]
    transport.close()
