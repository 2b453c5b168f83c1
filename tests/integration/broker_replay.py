"""Replay bars on a real local broker and collect its fills: the broker half of a backtest-vs-broker comparison.

    bars = daily_bars("AAPL", [(100, 101, 99, 100.5), (100.5, 103, 100, 102), ...])  # (open, high, low, close)
    fills = replay_fills(bars, [OrderSpec(bar=0, symbol="AAPL", side="buy", type="limit", limit_price=99.5)])

Inputs:
- `bars`: a bars frame (timestamp, symbol, open, high, low, close, volume), daily bars stamped at midnight New York
  on NYSE sessions (daily_bars() makes one; marketboss.data.synth.synth_bars too). Several symbols may share it.
- `orders`: OrderSpec each, placed after the close of the symbol's bar `bar` (a signal stamped at that bar, as the
  backtest places it), so it works from the next bar on. Prices are absolute; take_profit / stop_loss make a
  bracket (both) or an OTO (one) whose legs sell (buy) what the entry bought (sold).
- `options`: BrokerConfig fields (slippage_bps, spread_bps, commission_bps, ...). Defaults: no costs, no latency,
  no partial fills, cash 1e9 on a margin account (sells without a position open shorts).

The server is a real one (uvicorn on a free loopback port, the BrokerApp `marketboss broker serve` runs) driven by
alpaca-py; it runs in this process, so a call costs a fraction of a second and a hypothesis test can afford one
server per example. The clock steps from bar close to bar close; every fill is returned, legs included, with the
index and timestamp of the symbol's bar it happened on.
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from bisect import bisect_right
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import polars as pl
import uvicorn
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, TimeInForce
from alpaca.trading.requests import (
    LimitOrderRequest,
    MarketOrderRequest,
    OrderRequest,
    StopLimitOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
    TrailingStopOrderRequest,
)

from marketboss.data.calendar import NY, schedule
from marketboss.data.io import write_bars
from marketboss.local_broker.app import BrokerApp
from marketboss.local_broker.clock import iso_z, parse_time
from marketboss.local_broker.config import BrokerConfig
from marketboss.local_broker.state import BrokerState, build_state

KEY, SECRET = "replay-key", "replay-secret"
DEFAULTS: dict[str, Any] = {
    "fill_latency_ms": 0.0, "partial_fill_rate": 0.0, "rate_limit": 0, "clock": "stepped", "spread_bps": 0.0,
    "slippage_bps": 0.0, "cash": 1e9, "multiplier": 2,
}  # fmt: skip


@dataclass(frozen=True)
class OrderSpec:
    """One order as a signal would ask for it: placed after the close of the symbol's bar `bar`."""

    bar: int
    symbol: str
    side: Literal["buy", "sell"] = "buy"
    qty: int = 10
    type: Literal["market", "limit", "stop", "stop_limit", "trailing_stop"] = "market"
    time_in_force: Literal["day", "gtc"] = "day"
    limit_price: float | None = None
    stop_price: float | None = None
    trail_percent: float | None = None
    trail_price: float | None = None
    take_profit: float | None = None  # the take-profit leg's limit price
    stop_loss: float | None = None  # the stop-loss leg's stop price
    client_order_id: str | None = None


@dataclass(frozen=True)
class FillRecord:
    """A fill as the broker reports it, placed on the bar it happened in. `client_order_id` is the spec's (for a
    leg: its parent's); `leg` is None for the order itself, else "take_profit" or "stop_loss"."""

    order_id: str
    client_order_id: str
    leg: str | None
    symbol: str
    side: str
    bar: int
    timestamp: datetime  # the bar's stamp
    price: float
    qty: float


def daily_bars(symbol: str, ohlc: list[tuple[float, float, float, float]], start: str = "2024-01-02") -> pl.DataFrame:
    """Daily bars of (open, high, low, close) on consecutive NYSE sessions from `start`, stamped as Alpaca does."""
    days = schedule(start, date(date.fromisoformat(start).year + 2 + len(ohlc) // 250, 12, 31)).index[: len(ohlc)]
    stamps = [d.tz_localize(NY).tz_convert(UTC).to_pydatetime() for d in days]
    return pl.DataFrame(
        {
            "timestamp": stamps, "symbol": [symbol] * len(ohlc), "open": [float(x[0]) for x in ohlc],
            "high": [float(x[1]) for x in ohlc], "low": [float(x[2]) for x in ohlc],
            "close": [float(x[3]) for x in ohlc], "volume": [1000] * len(ohlc),
        }
    ).with_columns(pl.col("timestamp").dt.cast_time_unit("us"))  # fmt: skip


@contextmanager
def serve(bars: pl.DataFrame, **options: Any) -> Iterator[tuple[str, BrokerState]]:
    """A local broker on `bars`, in this process (uvicorn in a thread); yields (base_url, its state)."""
    with tempfile.TemporaryDirectory(prefix="mb-replay-") as tmp:
        data = Path(tmp) / "bars.jsonl"
        write_bars(bars, data)
        cfg = BrokerConfig(data=data, db=Path(tmp) / "broker.sqlite", key_id=KEY, secret_key=SECRET,
                           **{**DEFAULTS, **options})  # fmt: skip
        # IPPROTO_TCP, as `broker serve` does: asyncio turns Nagle off only on sockets that say they are TCP.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        state = build_state(cfg)
        server = uvicorn.Server(
            uvicorn.Config(BrokerApp(state, None, base_url), lifespan="on", log_level="warning", access_log=False,
                           loop="asyncio", http="httptools", ws="none")
        )  # fmt: skip
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError("the replay broker did not start")
                time.sleep(0.005)
            yield base_url, state
        finally:
            server.should_exit = True
            thread.join(30)
            sock.close()


def _request(o: OrderSpec) -> OrderRequest:
    legs: dict[str, Any] = {}
    if o.take_profit is not None or o.stop_loss is not None:
        both = o.take_profit is not None and o.stop_loss is not None
        legs["order_class"] = OrderClass.BRACKET if both else OrderClass.OTO
        if o.take_profit is not None:
            legs["take_profit"] = TakeProfitRequest(limit_price=o.take_profit)
        if o.stop_loss is not None:
            legs["stop_loss"] = StopLossRequest(stop_price=o.stop_loss)
    common: dict[str, Any] = {"symbol": o.symbol, "qty": o.qty, "side": o.side, "client_order_id": o.client_order_id,
                              "time_in_force": TimeInForce(o.time_in_force), **legs}  # fmt: skip
    if o.type == "market":
        return MarketOrderRequest(**common)
    if o.type == "limit":
        return LimitOrderRequest(limit_price=o.limit_price, **common)
    if o.type == "stop":
        return StopOrderRequest(stop_price=o.stop_price, **common)
    if o.type == "stop_limit":
        return StopLimitOrderRequest(stop_price=o.stop_price, limit_price=o.limit_price, **common)
    return TrailingStopOrderRequest(trail_percent=o.trail_percent, trail_price=o.trail_price, **common)


@dataclass(frozen=True)
class Replay:
    fills: list[FillRecord]
    status: dict[str, str]  # client_order_id -> the order's final status (legs: "<parent's id>:<leg>")


def replay_fills(bars: pl.DataFrame, orders: list[OrderSpec], **options: Any) -> list[FillRecord]:
    """Place `orders` on a local broker replaying `bars` (each after its bar's close), step the clock from close to
    close to the last bar's, and return every fill in the order the broker made them."""
    return replay(bars, orders, **options).fills


def replay(bars: pl.DataFrame, orders: list[OrderSpec], **options: Any) -> Replay:
    """replay_fills, and where every order ended (filled, expired, canceled, new ...)."""
    with serve(bars, **options) as (base_url, state):
        series = state.market.series
        for o in orders:
            if o.symbol not in series or not 0 <= o.bar < len(series[o.symbol].ends):
                raise ValueError(f"{o}: no bar {o.bar} of {o.symbol} in the bars")
        closes = sorted({end for s in series.values() for end in s.ends})
        placing: dict[int, list[OrderSpec]] = {}
        for o in orders:
            placing.setdefault(series[o.symbol].ends[o.bar], []).append(o)
        client = TradingClient(KEY, SECRET, paper=True, url_override=base_url)
        with httpx.Client(base_url=base_url, headers={"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET},
                          timeout=30) as http:  # fmt: skip
            for close in closes:
                r = http.post("/admin/clock", json={"timestamp": iso_z(close)})
                assert r.status_code == 200, r.text
                for o in placing.get(close, ()):
                    try:
                        client.submit_order(_request(o))
                    except APIError as exc:
                        raise AssertionError(f"{o} was refused: {exc.message}") from None
            return _outcome(http, state)


def _outcome(http: httpx.Client, state: BrokerState) -> Replay:
    """Every fill (the activities, oldest first), each joined to its order and, for a leg, to its parent."""
    owner: dict[str, tuple[str, str | None]] = {}  # order id -> (client_order_id of the spec, leg)
    status: dict[str, str] = {}
    for o in http.get("/v2/orders", params={"status": "all", "limit": 500, "nested": "true"}).json():
        owner[o["id"]] = (o["client_order_id"], None)
        status[o["client_order_id"]] = o["status"]
        for leg in o["legs"] or ():
            name = "take_profit" if leg["type"] == "limit" else "stop_loss"
            owner[leg["id"]] = (o["client_order_id"], name)
            status[f"{o['client_order_id']}:{name}"] = leg["status"]
    activities: list[dict[str, Any]] = []
    while True:
        params: dict[str, Any] = {"direction": "asc", "page_size": 100}
        if activities:
            params["page_token"] = activities[-1]["id"]
        page = http.get("/v2/account/activities/FILL", params=params).json()
        activities += page
        if len(page) < 100:
            break
    out = []
    for a in activities:
        s = state.market.series[a["symbol"]]
        t = parse_time(a["transaction_time"])
        i = bisect_right(s.starts, t) - 1
        assert i >= 0 and t < s.ends[i], f"fill {a['id']} at {a['transaction_time']} is outside {a['symbol']}'s bars"
        cid, leg = owner[a["order_id"]]
        out.append(
            FillRecord(
                order_id=a["order_id"], client_order_id=cid, leg=leg, symbol=a["symbol"], side=a["side"], bar=i,
                timestamp=datetime.fromtimestamp(s.stamps[i] / 1_000_000, UTC), price=float(a["price"]),
                qty=float(a["qty"]),
            )
        )  # fmt: skip
    return Replay(out, status)
