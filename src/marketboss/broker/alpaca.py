"""The Broker port on alpaca-py: the same code drives Alpaca (paper or live) and the local broker.

The SDK's own silent retries (429/504, three times, 3 s apart, POST included) are switched off: the
executor retries itself, looking an order up by client_order_id before it ever sends it again.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, TypeVar

import requests
from requests.adapters import HTTPAdapter

from marketboss.broker.base import (
    Account,
    Asset,
    AuthError,
    BrokerError,
    Clock,
    DuplicateOrder,
    NotFound,
    Order,
    OrderRejected,
    OrderRequest,
    Position,
    TransientError,
)

if TYPE_CHECKING:
    import polars as pl

    from marketboss.broker.bars import BarStream
    from marketboss.broker.stream import OrderStream
    from marketboss.data.calendar import Timeframe

T = TypeVar("T")
MAX_WAIT = 65.0  # seconds: no broker instruction makes us wait longer than a rate-limit window


class _TimeoutAdapter(HTTPAdapter):
    """requests has no session-wide timeout; without one a silent server hangs the executor forever."""

    def __init__(self, timeout: float):
        super().__init__(max_retries=0)
        self.timeout = timeout

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


def _f(v: Any, default: float = 0.0) -> float:
    return default if v in (None, "") else float(v)


def _enum(v: Any) -> str:
    return str(getattr(v, "value", v))


class AlpacaBroker:
    def __init__(
        self,
        key_id: str,
        secret_key: str,
        base_url: str,
        *,
        data_url: str | None = None,
        paper: bool = True,
        is_local: bool = False,
        timeout: float = 10.0,
    ):
        from alpaca.data.historical import StockHistoricalDataClient
        from alpaca.trading.client import TradingClient

        self.base_url = base_url.rstrip("/")
        self.is_local = is_local
        self.live = not paper  # Alpaca's live account: real money
        self._keys = (key_id, secret_key)
        self._trading = TradingClient(key_id, secret_key, paper=paper, url_override=self.base_url)
        self._data = StockHistoricalDataClient(key_id, secret_key, url_override=data_url)
        self.data_url = data_url
        # Trading and market data have separate per-minute budgets at Alpaca (one at the local broker).
        self._budgets: dict[str, tuple[int, float]] = {}
        for name, client in (("trading", self._trading), ("data", self._data)):
            client._retry = 0  # no silent SDK retries: see the module docstring
            adapter = _TimeoutAdapter(timeout)
            client._session.mount("http://", adapter)
            client._session.mount("https://", adapter)
            client._session.hooks["response"].append(self._budget_hook(name))

    def _budget_hook(self, name: str) -> Callable[..., None]:
        def note(response: requests.Response, *args: Any, **kwargs: Any) -> None:
            """Alpaca says how many requests are left this minute (X-Ratelimit-Remaining / -Reset)."""
            remaining, reset = response.headers.get("X-Ratelimit-Remaining"), response.headers.get("X-Ratelimit-Reset")
            if remaining is not None and reset is not None:
                with contextlib.suppress(ValueError):
                    self._budgets[name] = (int(remaining), float(reset))

        return note

    def throttle_wait(self) -> float:
        now = time.time()
        waits = [reset - now for remaining, reset in self._budgets.values() if remaining <= 2]
        return max(0.0, min(MAX_WAIT, max(waits))) if waits else 0.0

    def fill_costs(self) -> dict[str, float] | None:
        """The local broker's spread and slippage (its GET /admin/state), which it adds to every fill by the
        backtest's Costs: recorded with each run, so that reconcile's backtest pays the same. None for Alpaca (the
        market's spread is not known) and when the broker does not say."""
        if not self.is_local:
            return None
        try:
            keys = {"APCA-API-KEY-ID": self._keys[0], "APCA-API-SECRET-KEY": self._keys[1]}
            r = requests.get(f"{self.base_url}/admin/state", headers=keys, timeout=10.0)
            cfg = r.json()["config"]
            return {"spread_bps": float(cfg["spread_bps"]), "slippage_bps": float(cfg["slippage_bps"])}
        except (requests.RequestException, ValueError, KeyError, TypeError):
            return None

    # ------------------------------------------------------------------------------------------ errors
    def _call(self, what: str, fn: Callable[[], T]) -> T:
        from alpaca.common.exceptions import APIError

        try:
            return fn()
        except APIError as exc:
            err = _translate(what, exc)
            if isinstance(err, TransientError):
                err.retry_after = retry_after(getattr(exc, "response", None))
            raise err from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientError(f"{what}: no answer from the broker ({type(exc).__name__})") from None
        except requests.RequestException as exc:
            raise TransientError(f"{what}: {type(exc).__name__}") from None

    # ------------------------------------------------------------------------------------------ reads
    def account(self) -> Account:
        a: Any = self._call("get account", self._trading.get_account)
        return Account(
            cash=_f(a.cash),
            portfolio_value=_f(a.portfolio_value),
            buying_power=_f(a.buying_power),
            equity=_f(a.equity),
            last_equity=_f(a.last_equity),
            multiplier=_f(a.multiplier, 1.0),
            status=_enum(a.status),
            trading_blocked=bool(a.trading_blocked or a.account_blocked),
        )

    def clock(self) -> Clock:
        c: Any = self._call("get clock", self._trading.get_clock)
        return Clock(timestamp=c.timestamp, is_open=c.is_open, next_open=c.next_open, next_close=c.next_close)

    def asset(self, symbol: str) -> Asset | None:
        try:
            a: Any = self._call(f"get asset {symbol}", lambda: self._trading.get_asset(symbol))
        except NotFound:
            return None
        return Asset(
            symbol=a.symbol,
            tradable=bool(a.tradable),
            shortable=bool(a.shortable),
            fractionable=bool(a.fractionable),
            status=_enum(a.status),
        )

    def positions(self) -> dict[str, Position]:
        rows: Any = self._call("get positions", self._trading.get_all_positions)
        out = {}
        for p in rows:
            qty = _f(p.qty)
            if _enum(p.side) == "short" and qty > 0:
                qty = -qty
            out[p.symbol] = Position(p.symbol, qty, _f(p.avg_entry_price), _f(p.current_price), _f(p.market_value))
        return out

    def latest_price(self, symbol: str) -> float:
        """Mid of the latest quote, else the latest bar's close: the price sizing and notional checks use."""
        from alpaca.data.requests import StockLatestBarRequest, StockLatestQuoteRequest

        quotes: Any = self._call(
            f"latest quote {symbol}",
            lambda: self._data.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols=symbol)),
        )
        q = quotes.get(symbol)
        if q is not None and q.bid_price and q.ask_price and q.bid_price > 0 and q.ask_price > 0:
            return (float(q.bid_price) + float(q.ask_price)) / 2
        bars: Any = self._call(
            f"latest bar {symbol}",
            lambda: self._data.get_stock_latest_bar(StockLatestBarRequest(symbol_or_symbols=symbol)),
        )
        if symbol not in bars:
            raise NotFound(f"no price for {symbol}", status=404)
        return float(bars[symbol].close)

    def get_order(self, order_id: str) -> Order:
        """The order with its legs (nested), so a bracket's exits can be followed."""
        from alpaca.trading.requests import GetOrderByIdRequest

        nested = GetOrderByIdRequest(nested=True)
        return _order(self._call(f"get order {order_id}", lambda: self._trading.get_order_by_id(order_id, nested)))

    def order_by_client_id(self, client_order_id: str) -> Order | None:
        try:
            o = self._call(
                f"look up order {client_order_id}", lambda: self._trading.get_order_by_client_id(client_order_id)
            )
        except NotFound:
            return None
        return _order(o)

    def fill_commission(self, order: Order) -> float:
        """The commission the broker charged on an order's fills (its FILL activities; Alpaca's equities are
        commission-free, so there the field is absent and this is 0)."""
        params: dict[str, Any] = {"direction": "asc", "page_size": 100}
        if order.submitted_at is not None:
            params["after"] = (order.submitted_at - timedelta(seconds=1)).isoformat()
        total, seen = 0.0, 0.0
        for _ in range(100):  # at most 10,000 fills after the order: far beyond any one order's
            page: Any = self._call(
                f"fills of order {order.id}", lambda: self._trading.get("/account/activities/FILL", dict(params))
            )
            for fill in page or []:
                if str(fill.get("order_id")) == order.id:
                    total += _f(fill.get("commission"))
                    seen += _f(fill.get("qty"))
            if not page or len(page) < params["page_size"] or seen >= order.filled_qty:
                break
            params["page_token"] = page[-1]["id"]
        return round(total, 6)

    def open_orders(self) -> list[Order]:
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        req = GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500)
        rows: Any = self._call("list open orders", lambda: self._trading.get_orders(req))
        return [_order(o) for o in rows]

    # ------------------------------------------------------------------------------------------ writes
    def submit_order(self, request: OrderRequest) -> Order:
        req = _sdk_request(request)
        return _order(self._call(f"submit order {request.client_order_id}", lambda: self._trading.submit_order(req)))

    def cancel_order(self, order_id: str) -> None:
        self._call(f"cancel order {order_id}", lambda: self._trading.cancel_order_by_id(order_id))

    def cancel_all_orders(self) -> None:
        self._call("cancel all orders", self._trading.cancel_orders)

    def bars(self, symbols: list[str], start: datetime, end: datetime | None, timeframe: Timeframe,
             feed: str = "iex") -> pl.DataFrame:  # fmt: skip
        """Historical bars starting in [start, end] (complete ones only: the broker serves no others)."""
        from marketboss.data.alpaca_source import bars_request, barset_frame

        req = bars_request(symbols, start, end, timeframe, feed)
        return barset_frame(self._call(f"bars {','.join(symbols)[:60]}", lambda: self._data.get_stock_bars(req)))

    # ------------------------------------------------------------------------------------------ stream
    def order_updates(self) -> OrderStream:
        from marketboss.broker.stream import OrderStream, stream_url  # loads websockets only when used

        return OrderStream(*self._keys, stream_url(self.base_url), _order)

    def bar_stream(self, symbols: list[str], feed: str = "iex") -> BarStream:
        """Closed bars of these symbols on the market-data stream (Alpaca's, or the local broker's own)."""
        from marketboss.broker.bars import BarStream, data_stream_url

        return BarStream(*self._keys, data_stream_url(self.data_url or self.base_url, feed, self.is_local), feed,
                         symbols)  # fmt: skip


def retry_after(response: requests.Response | None) -> float:
    """Seconds the broker asked us to wait: Retry-After (seconds or an HTTP date), else the rate-limit reset when
    this minute's budget is spent (X-Ratelimit-Remaining 0). A 429 with budget left (a burst) says nothing: 0."""
    if response is None:
        return 0.0
    headers = response.headers
    now = time.time()
    wait = 0.0
    text = (headers.get("Retry-After") or "").strip()
    if text:
        try:
            wait = float(text)
        except ValueError:
            with contextlib.suppress(TypeError, ValueError, IndexError):
                wait = parsedate_to_datetime(text).timestamp() - now
    elif headers.get("X-Ratelimit-Remaining", "").strip() == "0":
        with contextlib.suppress(ValueError):
            wait = float(headers.get("X-Ratelimit-Reset", "")) - now
    return max(0.0, min(MAX_WAIT, wait)) if math.isfinite(wait) else 0.0


def _sdk_request(request: OrderRequest) -> Any:
    """The alpaca-py request for an order of any type, its exits as a bracket (both) or an OTO (one). What the SDK
    itself refuses is an OrderRejected naming the order, never a traceback."""
    from alpaca.trading.enums import OrderClass, OrderSide, TimeInForce
    from alpaca.trading.requests import (
        LimitOrderRequest,
        MarketOrderRequest,
        StopLimitOrderRequest,
        StopLossRequest,
        StopOrderRequest,
        TakeProfitRequest,
        TrailingStopOrderRequest,
    )
    from pydantic import ValidationError

    kinds: dict[str, tuple[type[Any], tuple[str, ...]]] = {
        "market": (MarketOrderRequest, ()),
        "limit": (LimitOrderRequest, ("limit_price",)),
        "stop": (StopOrderRequest, ("stop_price",)),
        "stop_limit": (StopLimitOrderRequest, ("stop_price", "limit_price")),
        "trailing_stop": (TrailingStopOrderRequest, ("trail_percent",)),
    }
    cls, prices = kinds[request.type]
    fields: dict[str, Any] = {
        "symbol": request.symbol,
        "qty": request.qty,
        "side": OrderSide(request.side),
        "time_in_force": TimeInForce(request.time_in_force),
        "client_order_id": request.client_order_id,
        **{name: getattr(request, name) for name in prices},
    }
    if request.order_class != "simple":
        fields["order_class"] = OrderClass(request.order_class)
        if request.take_profit is not None:
            fields["take_profit"] = TakeProfitRequest(limit_price=request.take_profit)
        if request.stop_loss is not None:
            fields["stop_loss"] = StopLossRequest(stop_price=request.stop_loss)
    try:
        return cls(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        raise OrderRejected(f"submit order {request.client_order_id}: {where + ': ' if where else ''}{msg}") from None


def _price(v: Any) -> float | None:
    return None if v in (None, "") else float(v)


def _order(o: Any) -> Order:
    return Order(
        id=str(o.id),
        client_order_id=o.client_order_id,
        symbol=o.symbol,
        side=_enum(o.side),  # type: ignore[arg-type]
        qty=_f(o.qty),
        filled_qty=_f(o.filled_qty),
        filled_avg_price=_f(o.filled_avg_price) if o.filled_avg_price not in (None, "") else None,
        status=_enum(o.status),
        type=_enum(o.type or o.order_type),
        submitted_at=o.submitted_at,
        filled_at=o.filled_at,
        stop_price=_price(o.stop_price),
        limit_price=_price(o.limit_price),
        trail_percent=_price(o.trail_percent),
        time_in_force=_enum(o.time_in_force),
        order_class=_enum(o.order_class) if o.order_class else "simple",
        legs=tuple(_order(leg) for leg in o.legs or ()),
    )


def _translate(what: str, exc: Any) -> BrokerError:
    status = exc.status_code
    try:
        code, message = exc.code, exc.message
    except Exception:  # a body without {code, message}: never let the SDK's KeyError escape
        code, message = None, str(exc)[:200]
    text = f"{what}: HTTP {status}: {message}"
    if status == 429 or (status is not None and status >= 500):
        return TransientError(text, status, code)
    if status == 401 or (status == 403 and code == 40310000 and "not authorized" in str(message).lower()):
        return AuthError(text, status, code)
    if status == 404:
        return NotFound(text, status, code)
    if status == 422 and "client_order_id" in str(message).lower() and "unique" in str(message).lower():
        return DuplicateOrder(text, status, code)
    if status in (403, 422):
        return OrderRejected(text, status, code)
    return BrokerError(text, status, code)
