"""The local broker's websockets, driven by alpaca-py's own TradingStream and StockDataStream (and a plain
websocket client where the protocol itself is the subject): trade_updates for every order change with
Alpaca's fields, and bars, trades and quotes as the broker's clock passes them, in MessagePack and JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgpack
import pytest
from alpaca.data.requests import (
    StockBarsRequest,
    StockLatestTradeRequest,
    StockQuotesRequest,
    StockTradesRequest,
)
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.enums import OrderClass, OrderSide, TimeInForce
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest, StopLossRequest, TakeProfitRequest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from marketboss.data.io import write_bars
from marketboss.data.synth import synth_bars
from marketboss.local_broker.process import LocalBroker
from tests.integration.conftest import (
    StartBroker,
    admin_client,
    all_fills,
    data_client,
    set_clock,
    trading_client,
    wait_order,
)
from tests.integration.stream_clients import (
    ev,
    events_of,
    market_stream,
    streams_state,
    trade_updates,
    ws_url,
)


def has_event(order_id: Any, event: str) -> Any:
    return lambda items: event in events_of(items, order_id)


# ---------------------------------------------------------------------------------------------- trade_updates


def test_a_market_order_is_announced_new_then_fill_with_alpacas_fields(start_broker: StartBroker) -> None:
    b = start_broker()
    client = trading_client(b)
    with trade_updates(b) as got:
        order = client.submit_order(MarketOrderRequest(symbol="AAPL", qty=7, side="buy", time_in_force="day"))
        items = got.wait_for(has_event(order.id, "fill"))
    done = wait_order(client, order.id)
    mine = [u for u in items if u.order.id == order.id]
    assert [ev(u) for u in mine] == ["new", "fill"]
    new, fill = mine
    assert new.order.status.value == "new" and Decimal(new.order.filled_qty) == 0
    assert fill.order.status.value == "filled" and fill.order.filled_qty == done.filled_qty
    assert Decimal(str(fill.qty)) == 7 and fill.price == float(done.filled_avg_price)
    assert fill.position_qty == float(client.get_open_position("AAPL").qty) == 7
    assert fill.timestamp == done.filled_at
    (activity,) = [a for a in all_fills(admin_client(b)) if str(a.order_id) == str(order.id)]
    assert activity.id.endswith(str(fill.execution_id))


def test_partial_fills_carry_the_running_position(start_broker: StartBroker) -> None:
    b = start_broker(partial_fill_rate=1.0, fill_latency_ms=50)  # the remainder trades 50 ms after the part
    client = trading_client(b)
    with trade_updates(b) as got:
        first = client.submit_order(MarketOrderRequest(symbol="MSFT", qty=40, side="buy", time_in_force="day"))
        got.wait_for(has_event(first.id, "fill"))
        second = client.submit_order(MarketOrderRequest(symbol="MSFT", qty=30, side="sell", time_in_force="day"))
        items = got.wait_for(has_event(second.id, "fill"))
    position = 0.0
    for order, sign in ((first, 1), (second, -1)):
        fills = [u for u in items if u.order.id == order.id and ev(u) in ("partial_fill", "fill")]
        assert [ev(u) for u in fills] == ["partial_fill", "fill"]
        assert sum(Decimal(str(u.qty)) for u in fills) == Decimal(str(order.qty))
        for u in fills:
            position += sign * u.qty
            assert u.position_qty == position
    assert float(trading_client(b).get_open_position("MSFT").qty) == position == 10


def test_cancel_expiry_and_rejection_are_announced(start_broker: StartBroker) -> None:
    b = start_broker()
    client = trading_client(b)
    http = admin_client(b)
    low = LimitOrderRequest(symbol="JPM", qty=1, side="buy", time_in_force="day", limit_price=1.00)
    with trade_updates(b) as got:
        canceled = client.submit_order(low)
        got.wait_for(has_event(canceled.id, "new"))
        client.cancel_order_by_id(canceled.id)
        expiring = client.submit_order(low)
        got.wait_for(has_event(expiring.id, "new"))
        set_clock(http, advance="next_close")
        assert http.post("/admin/faults", json={"reject_rate": 1.0}).status_code == 200
        rejected = client.submit_order(MarketOrderRequest(symbol="JPM", qty=1, side="buy", time_in_force="gtc"))
        items = got.wait_for(
            lambda items: "rejected" in events_of(items, rejected.id) and "expired" in events_of(items, expiring.id)
        )
    assert events_of(items, canceled.id) == ["new", "canceled"]
    assert events_of(items, expiring.id) == ["new", "expired"]
    assert events_of(items, rejected.id) == ["rejected"]
    for order_id, status in ((canceled.id, "canceled"), (expiring.id, "expired"), (rejected.id, "rejected")):
        last = [u for u in items if u.order.id == order_id][-1]
        rest = client.get_order_by_id(order_id)
        assert last.order.status.value == rest.status.value == status
        assert last.timestamp == rest.updated_at


def test_a_replaced_order_is_announced_replaced_and_its_replacement_new(start_broker: StartBroker) -> None:
    """PATCH /v2/orders/{id} through alpaca-py: the old order's `replaced` event points at the new order, which
    is announced `new`, each as REST then shows it."""
    from alpaca.trading.requests import ReplaceOrderRequest

    b = start_broker()
    client = trading_client(b)
    with trade_updates(b) as got:
        old = client.submit_order(LimitOrderRequest(symbol="JPM", qty=3, side="buy", time_in_force="gtc",
                                                    limit_price=1.00))  # fmt: skip
        got.wait_for(has_event(old.id, "new"))
        new = client.replace_order_by_id(old.id, ReplaceOrderRequest(qty=5, limit_price=1.5))
        items = got.wait_for(lambda items: "replaced" in events_of(items, old.id) and "new" in events_of(items, new.id))
    assert events_of(items, old.id) == ["new", "replaced"]
    (replaced,) = [u for u in items if u.order.id == old.id and ev(u) == "replaced"]
    rest_old, rest_new = client.get_order_by_id(old.id), client.get_order_by_id(new.id)
    assert replaced.order.status.value == rest_old.status.value == "replaced"
    assert str(replaced.order.replaced_by) == str(rest_old.replaced_by) == str(new.id)
    assert str(rest_new.replaces) == str(old.id) and Decimal(rest_new.qty) == 5
    (announced,) = [u for u in items if u.order.id == new.id and ev(u) == "new"]
    assert float(announced.order.limit_price) == 1.5


def test_bracket_legs_are_announced_as_they_start_and_go(start_broker: StartBroker) -> None:
    b = start_broker()
    client = trading_client(b)
    with trade_updates(b) as got:
        latest = data_client(b).get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols="AAPL"))
        price = float(latest["AAPL"].price)
        parent = client.submit_order(
            MarketOrderRequest(
                symbol="AAPL", qty=5, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, order_class=OrderClass.BRACKET,
                take_profit=TakeProfitRequest(limit_price=round(price * 1.5, 2)),
                stop_loss=StopLossRequest(stop_price=round(price * 0.5, 2)),
            )
        )  # fmt: skip
        got.wait_for(has_event(parent.id, "fill"))
        legs = client.get_order_by_id(parent.id).legs
        assert legs is not None and len(legs) == 2
        got.wait_for(lambda items: all("new" in events_of(items, leg.id) for leg in legs))
        client.cancel_order_by_id(legs[0].id)  # one-cancels-other: the sibling goes with it
        items = got.wait_for(lambda items: all("canceled" in events_of(items, leg.id) for leg in legs))
    assert events_of(items, parent.id) == ["new", "fill"]
    fill = [u for u in items if u.order.id == parent.id][-1]
    assert fill.order.legs is not None and {leg.id for leg in fill.order.legs} == {leg.id for leg in legs}
    for leg in legs:
        assert events_of(items, leg.id) == ["new", "canceled"]


def test_wrong_keys_get_alpacas_unauthorized_answer_and_the_connection_closes(broker: LocalBroker) -> None:
    with connect(ws_url(broker, "/stream")) as ws:
        ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        frame = ws.recv(timeout=10)
        assert isinstance(frame, bytes)  # Alpaca's paper stream sends binary frames
        assert json.loads(frame) == {"stream": "authorization", "data": {"action": "listen", "status": "unauthorized"}}
        ws.send(json.dumps({"action": "authenticate", "data": {"key_id": broker.key_id, "secret_key": "wrong"}}))
        reply = json.loads(ws.recv(timeout=10))
        assert reply["stream"] == "authorization"
        assert reply["data"]["status"] == "unauthorized" and reply["data"]["action"] == "authenticate"
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
    with connect(ws_url(broker, "/stream")) as ws:
        ws.send(msgpack.packb({"action": "auth", "key": broker.key_id, "secret": broker.secret_key}))
        assert msgpack.unpackb(ws.recv(timeout=10)) == {
            "stream": "authorization", "data": {"action": "authenticate", "status": "authorized"}
        }  # fmt: skip
        ws.send(msgpack.packb({"action": "listen", "data": {"streams": ["trade_updates", "nope"]}}))
        assert msgpack.unpackb(ws.recv(timeout=10)) == {"stream": "listening", "data": {"streams": ["trade_updates"]}}


# ---------------------------------------------------------------------------------------------- market data


@pytest.fixture(scope="module")
def minute_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("minute-data") / "bars.jsonl"
    write_bars(synth_bars(["AAPL", "MSFT"], "2024-11-04", "2024-11-05", "1Min", seed=5), path)
    return path


def test_stock_data_stream_gets_bars_trades_and_quotes_as_the_clock_passes_them(
    start_broker: StartBroker, minute_data: Path
) -> None:
    """Replayed in steps (a bar, two bars at once, then half a bar): the stream's bars, trades and quotes are
    exactly what GET bars, trades and quotes give for the same stretch (one rule for synthetic ticks, ticks.py),
    and nothing of the bar still in progress is sent."""
    b = start_broker(data=minute_data)
    http = admin_client(b)
    start = http.get("/admin/clock").json()["timestamp"]
    with market_stream(b, bars=("AAPL",), trades=("AAPL",), quotes=("AAPL",)) as got:
        for step in (60, 120, 60, 60, 30):
            end = set_clock(http, seconds=step)["timestamp"]
        items = got.wait_for(lambda items: sum(type(x).__name__ == "Bar" for x in items) == 5
                             and sum(type(x).__name__ == "Trade" for x in items) == 20
                             and sum(type(x).__name__ == "Quote" for x in items) == 20)  # fmt: skip
    bars = [x for x in items if type(x).__name__ == "Bar"]
    trades = [x for x in items if type(x).__name__ == "Trade"]
    quotes = [x for x in items if type(x).__name__ == "Quote"]
    assert {x.symbol for x in items} == {"AAPL"}
    t0, t1 = _dt(start), _dt(end)
    market = data_client(b)
    window = {"symbol_or_symbols": "AAPL", "start": t0, "end": t1}
    rest = market.get_stock_bars(StockBarsRequest(timeframe=TimeFrame.Minute, **window))["AAPL"]
    assert [(x.timestamp, x.open, x.high, x.low, x.close, x.volume) for x in bars] == [
        (x.timestamp, x.open, x.high, x.low, x.close, x.volume) for x in rest
    ]
    rest_trades = market.get_stock_trades(StockTradesRequest(**window))["AAPL"]
    rest_quotes = market.get_stock_quotes(StockQuotesRequest(**window))["AAPL"]
    assert len(rest_trades) == 4 * len(rest) == 20  # the half bar at the end gives none yet
    assert [(x.id, x.timestamp, x.price, x.size, x.exchange, x.conditions, x.tape) for x in trades] == [
        (x.id, x.timestamp, x.price, x.size, x.exchange, x.conditions, x.tape) for x in rest_trades
    ]
    assert [(x.timestamp, x.bid_price, x.bid_size, x.ask_price, x.ask_size) for x in quotes] == [
        (x.timestamp, x.bid_price, x.bid_size, x.ask_price, x.ask_size) for x in rest_quotes
    ]
    for i, bar in enumerate(bars):  # each bar's four trades rebuild it, inside its minute
        four = trades[4 * i : 4 * i + 4]
        assert all(bar.timestamp <= x.timestamp < bar.timestamp + timedelta(minutes=1) for x in four)
        assert (four[0].price, four[-1].price) == pytest.approx((bar.open, bar.close), abs=0.005)
        assert max(x.price for x in four) == pytest.approx(bar.high, abs=0.005)
        assert min(x.price for x in four) == pytest.approx(bar.low, abs=0.005)
    assert all(q.bid_price <= t.price <= q.ask_price for q, t in zip(quotes, trades, strict=True))


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _recv(ws: ClientConnection) -> list[dict[str, Any]]:
    frame = ws.recv(timeout=10)
    assert isinstance(frame, str)  # JSON clients get text frames, as from Alpaca's data stream
    return list(json.loads(frame))


def test_json_clients_get_text_frames_and_alpacas_errors(start_broker: StartBroker, minute_data: Path) -> None:
    b = start_broker(data=minute_data)
    http = admin_client(b)
    url = ws_url(b, "/v2/sip")
    with connect(url) as ws:
        assert _recv(ws) == [{"T": "success", "msg": "connected"}]
        ws.send(json.dumps({"action": "subscribe", "bars": ["AAPL"]}))
        assert _recv(ws) == [{"T": "error", "code": 401, "msg": "not authenticated"}]
        ws.send(json.dumps({"action": "auth", "key": b.key_id, "secret": "nope"}))
        assert _recv(ws) == [{"T": "error", "code": 402, "msg": "auth failed"}]
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
    with connect(url) as ws:
        _recv(ws)
        ws.send(json.dumps({"action": "auth", "key": b.key_id, "secret": b.secret_key}))
        assert _recv(ws) == [{"T": "success", "msg": "authenticated"}]
        with connect(url) as second:
            assert _recv(second) == [{"T": "success", "msg": "connected"}]
            second.send(json.dumps({"action": "auth", "key": b.key_id, "secret": b.secret_key}))
            assert _recv(second) == [{"T": "error", "code": 406, "msg": "connection limit exceeded"}]
        ws.send(json.dumps({"action": "auth", "key": b.key_id, "secret": b.secret_key}))
        assert _recv(ws) == [{"T": "error", "code": 403, "msg": "already authenticated"}]
        ws.send("{not json")
        assert _recv(ws) == [{"T": "error", "code": 400, "msg": "invalid syntax"}]
        ws.send(json.dumps({"action": "subscribe", "bars": ["AAPL", "MSFT"], "quotes": ["MSFT"]}))
        (ack,) = _recv(ws)
        assert ack["T"] == "subscription" and ack["bars"] == ["AAPL", "MSFT"] and ack["quotes"] == ["MSFT"]
        assert ack["trades"] == [] and ack["corrections"] == []
        ws.send(json.dumps({"action": "unsubscribe", "quotes": ["MSFT"], "bars": ["MSFT"]}))
        (ack,) = _recv(ws)
        assert ack["bars"] == ["AAPL"] and ack["quotes"] == []
        set_clock(http, seconds=60)
        (bar,) = _recv(ws)
    rest = http.get("/v2/stocks/bars", params={"symbols": "AAPL", "timeframe": "1Min", "limit": 1}).json()
    assert bar == {"T": "b", "S": "AAPL", **rest["bars"]["AAPL"][0]}
    assert streams_state(b)["market_data"] == 0
