"""The local broker's endpoints, driven by alpaca-py's own clients against a real server process."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import polars as pl
import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.requests import (
    StockBarsRequest,
    StockLatestBarRequest,
    StockLatestQuoteRequest,
    StockLatestTradeRequest,
    StockSnapshotRequest,
)
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from alpaca.trading.enums import OrderSide, OrderStatus, PositionSide, QueryOrderStatus, TimeInForce
from alpaca.trading.models import TradeActivity
from alpaca.trading.requests import (
    ClosePositionRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
)

from marketboss.data.io import read_bars, write_bars
from marketboss.data.synth import synth_bars
from marketboss.local_broker.process import LocalBroker
from tests.integration.conftest import (
    StartBroker,
    admin_client,
    data_client,
    set_clock,
    trading_client,
    wait_order,
)

FIRST_OPEN = datetime(2024, 11, 1, 13, 30, tzinfo=UTC)  # the first bar's session open: where the clock starts


def market(symbol: str, qty: float, side: str = "buy", **kw: object) -> MarketOrderRequest:
    return MarketOrderRequest(symbol=symbol, qty=qty, side=side, time_in_force=TimeInForce.DAY, **kw)


def limit(symbol: str, qty: float, price: float, side: str = "buy", **kw: object) -> LimitOrderRequest:
    return LimitOrderRequest(symbol=symbol, qty=qty, side=side, limit_price=price, time_in_force=TimeInForce.GTC, **kw)


@pytest.fixture(scope="module")
def shared(module_broker_factory: StartBroker) -> LocalBroker:
    """One server for the read-only checks and error cases of this module."""
    return module_broker_factory()


def test_account_parses_with_alpaca_fields_and_starting_cash(broker: LocalBroker) -> None:
    acct = trading_client(broker).get_account()
    assert acct.status.value == "ACTIVE" and acct.currency == "USD" and acct.account_number.startswith("PA")
    assert isinstance(acct.id, uuid.UUID)
    assert Decimal(acct.cash) == Decimal(acct.equity) == Decimal(acct.portfolio_value) == 100_000
    assert Decimal(acct.buying_power) == 400_000 and acct.multiplier == "4" and acct.shorting_enabled  # Alpaca paper
    assert Decimal(acct.daytrading_buying_power) == 400_000 and Decimal(acct.regt_buying_power) == 200_000
    raw = admin_client(broker).get("/v2/account").json()
    assert all(isinstance(raw[k], str) for k in ("cash", "equity", "buying_power", "long_market_value"))


def test_market_order_is_accepted_then_filled_at_the_open_plus_half_the_spread(broker: LocalBroker,
                                                                              broker_data: Path) -> None:  # fmt: skip
    client, data = trading_client(broker), data_client(broker)
    quote = data.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols="AAPL"))["AAPL"]
    first_open = read_bars(broker_data).filter(pl.col("symbol") == "AAPL")["open"][0]
    assert quote.bid_price < first_open < quote.ask_price  # the clock sits at the first open: price = that open
    assert quote.ask_price - quote.bid_price < first_open * 0.0003  # the default 2 bp spread, rounded to cents

    placed = client.submit_order(market("AAPL", 10, client_order_id="sig-aapl-1"))
    assert placed.status in (OrderStatus.ACCEPTED, OrderStatus.NEW) and placed.filled_avg_price is None
    assert placed.client_order_id == "sig-aapl-1" and placed.submitted_at == FIRST_OPEN
    filled = wait_order(client, placed.id)
    price = first_open * (1 + 0.0001)  # the backtest's fill price: the open moved up by half the 2 bp spread
    assert Decimal(filled.filled_qty) == 10 and float(filled.filled_avg_price) == price
    assert filled.filled_at == FIRST_OPEN

    pos = client.get_open_position("AAPL")
    assert pos.side == PositionSide.LONG and Decimal(pos.qty) == 10
    assert Decimal(pos.avg_entry_price) == Decimal(repr(price)).quantize(Decimal("1e-6"))
    acct = client.get_account()
    assert Decimal(acct.cash) == 100_000 - (10 * Decimal(repr(price))).quantize(Decimal("0.01"))
    assert Decimal(acct.equity) == Decimal(acct.cash) + Decimal(pos.market_value)

    fills = [TradeActivity(**a) for a in client.get("/account/activities/FILL")]
    assert [(f.symbol, f.qty, f.price, f.type.value, f.order_id) for f in fills] == [
        ("AAPL", 10.0, price, "fill", filled.id)
    ]


def test_orders_list_filters_and_lookups(broker: LocalBroker) -> None:
    client, http = trading_client(broker), admin_client(broker)
    a = client.submit_order(limit("AAPL", 1, 1.0, client_order_id="low-aapl"))  # far below: stays open
    b = client.submit_order(limit("MSFT", 2, 1.0, side="buy"))
    set_clock(http, seconds=60)
    c = wait_order(client, client.submit_order(market("JPM", 3)).id)
    set_clock(http, seconds=60)
    d = client.submit_order(limit("AAPL", 4, 1.0))
    client.cancel_order_by_id(d.id)

    def ids(**kw: object) -> list[uuid.UUID]:
        return [o.id for o in client.get_orders(GetOrdersRequest(**kw))]

    assert ids() == [b.id, a.id]  # default: open, newest first
    assert ids(status=QueryOrderStatus.CLOSED) == [d.id, c.id]
    assert ids(status=QueryOrderStatus.ALL, direction="asc") == [a.id, b.id, c.id, d.id]
    assert ids(status=QueryOrderStatus.ALL, limit=2) == [d.id, c.id]
    assert ids(status=QueryOrderStatus.ALL, symbols=["AAPL"]) == [d.id, a.id]
    assert ids(status=QueryOrderStatus.ALL, side=OrderSide.SELL) == []
    assert ids(status=QueryOrderStatus.ALL, after=datetime(2024, 11, 1, 13, 30, 30, tzinfo=UTC)) == [d.id, c.id]
    assert ids(status=QueryOrderStatus.ALL, until=datetime(2024, 11, 1, 13, 30, 30, tzinfo=UTC)) == [b.id, a.id]

    assert client.get_order_by_client_id("low-aapl").id == a.id
    assert client.get_order_by_id(d.id).status == OrderStatus.CANCELED
    r = http.get("/v2/orders", params={"limit": 501})
    assert r.status_code == 422 and r.json()["code"] == 40010001
    for path in (f"/v2/orders/{uuid.uuid4()}", "/v2/orders:by_client_order_id?client_order_id=nope"):
        miss = http.get(path)
        assert miss.status_code == 404 and miss.json()["code"] == 40410000


def test_cancel_one_and_all(broker: LocalBroker) -> None:
    client = trading_client(broker)
    a = client.submit_order(limit("AAPL", 1, 1.0))
    b = client.submit_order(limit("MSFT", 1, 1.0))
    client.cancel_order_by_id(a.id)
    got = client.get_order_by_id(a.id)
    assert got.status == OrderStatus.CANCELED and got.canceled_at is not None
    with pytest.raises(APIError) as again:
        client.cancel_order_by_id(a.id)
    assert again.value.status_code == 422 and again.value.code == 42210000
    with pytest.raises(APIError) as unknown:
        client.cancel_order_by_id(uuid.uuid4())
    assert unknown.value.status_code == 404
    responses = client.cancel_orders()
    assert [(r.id, r.status) for r in responses] == [(b.id, 200)]
    assert client.get_orders() == []


def test_positions_long_and_short_and_closing(broker: LocalBroker) -> None:
    client = trading_client(broker)
    wait_order(client, client.submit_order(market("AAPL", 10)).id)
    wait_order(client, client.submit_order(market("MSFT", 5, side="sell")).id)
    positions = {p.symbol: p for p in client.get_all_positions()}
    assert positions["AAPL"].side == PositionSide.LONG and positions["AAPL"].qty == "10"
    assert positions["MSFT"].side == PositionSide.SHORT and positions["MSFT"].qty == "-5"
    assert Decimal(positions["MSFT"].market_value) < 0
    acct = client.get_account()
    assert Decimal(acct.equity) == Decimal(acct.cash) + sum(Decimal(p.market_value) for p in positions.values())
    assert Decimal(acct.long_market_value) == Decimal(positions["AAPL"].market_value)
    assert Decimal(acct.short_market_value) == Decimal(positions["MSFT"].market_value)
    assert client.get_open_position(positions["AAPL"].asset_id).symbol == "AAPL"

    order = client.close_position("AAPL", ClosePositionRequest(qty="4"))
    assert order.side == OrderSide.SELL and order.qty == "4"
    wait_order(client, order.id)
    assert client.get_open_position("AAPL").qty == "6"
    with pytest.raises(APIError) as missing:
        client.get_open_position("JPM")
    assert missing.value.status_code == 404 and missing.value.code == 40410000

    client.submit_order(limit("JPM", 1, 1.0))  # an open order that close_all cancels
    closed = client.close_all_positions(cancel_orders=True)
    assert sorted((r.symbol, r.status) for r in closed) == [("AAPL", 200), ("MSFT", 200)]
    for r in closed:
        wait_order(client, r.order_id)
    assert client.get_all_positions() == [] and client.get_orders() == []


def test_clock_assets_and_calendar(shared: LocalBroker) -> None:
    client = trading_client(shared)
    clock = client.get_clock()
    assert clock.is_open and clock.timestamp == FIRST_OPEN
    assert clock.next_close == datetime(2024, 11, 1, 20, 0, tzinfo=UTC)
    assert clock.next_open == datetime(2024, 11, 4, 14, 30, tzinfo=UTC)  # Monday, after the DST change
    assets = client.get_all_assets()
    assert sorted(a.symbol for a in assets) == ["AAPL", "JPM", "MSFT"]
    aapl = client.get_asset("aapl")
    assert aapl.symbol == "AAPL" and aapl.tradable and aapl.shortable
    assert client.get_asset(aapl.id).symbol == "AAPL"
    with pytest.raises(APIError) as missing:
        client.get_asset("ZZZZ")
    assert missing.value.status_code == 404
    days = admin_client(shared).get("/v2/calendar", params={"start": "2024-12-23", "end": "2024-12-27"}).json()
    assert [(d["date"], d["close"], d["settlement_date"]) for d in days] == [
        ("2024-12-23", "16:00", "2024-12-24"), ("2024-12-24", "13:00", "2024-12-26"),
        ("2024-12-26", "16:00", "2024-12-27"), ("2024-12-27", "16:00", "2024-12-30"),
    ]  # fmt: skip  (T+1: the next session; it was the day itself)


def test_activities_pages_and_types(broker: LocalBroker) -> None:
    client, http = trading_client(broker), admin_client(broker)
    for i in range(5):
        wait_order(client, client.submit_order(market("AAPL", i + 1)).id)
        set_clock(http, seconds=60)
    everything = client.get("/account/activities", {"direction": "asc"})
    assert [a["qty"] for a in everything] == ["1", "2", "3", "4", "5"]
    pages, token = [], None
    while True:
        params = {"direction": "asc", "page_size": 2, **({"page_token": token} if token else {})}
        page = client.get("/account/activities/FILL", params)
        if not page:
            break
        pages.append([a["qty"] for a in page])
        token = page[-1]["id"]
    assert pages == [["1", "2"], ["3", "4"], ["5"]]
    assert client.get("/account/activities", {"activity_types": "DIV,FEE"}) == []
    assert client.get("/account/activities", {"date": "2024-11-01"}) != []
    assert client.get("/account/activities", {"date": "2024-11-02"}) == []
    bad = http.get("/account/activities/NOPE".replace("/account", "/v2/account"))
    assert bad.status_code == 422 and bad.json()["code"] == 40010001


def test_bars_only_up_to_the_clock_and_paginated(broker: LocalBroker, broker_data: Path) -> None:
    data, http = data_client(broker), admin_client(broker)
    everything = StockBarsRequest(symbol_or_symbols=["AAPL", "MSFT", "NOPE"], timeframe=TimeFrame.Day,
                                  start=datetime(2024, 1, 1))  # fmt: skip
    assert data.get_stock_bars(everything).data == {}  # at the first open no bar is complete yet
    set_clock(http, timestamp="2025-02-03T21:00:00Z")
    barset = data.get_stock_bars(everything).data
    want = read_bars(broker_data).filter(pl.col("symbol").is_in(["AAPL", "MSFT"]))
    assert sorted(barset) == ["AAPL", "MSFT"]
    got = [(b.timestamp, s, b.open, b.high, b.low, b.close, b.volume) for s, bars in barset.items() for b in bars]
    assert sorted(got, key=lambda r: (r[0], r[1])) == [
        (t, s, o, h, lo, c, float(v)) for t, s, o, h, lo, c, v in want.rows()
    ]

    pages, token = [], None
    while True:
        params = {"symbols": "AAPL,MSFT", "timeframe": "1Day", "limit": 25, "start": "2024-01-01",
                  **({"page_token": token} if token else {})}  # fmt: skip
        body = http.get("/v2/stocks/bars", params=params).json()
        pages.append(sum(len(v) for v in body["bars"].values()))
        token = body["next_page_token"]
        if token is None:
            break
    assert sum(pages) == want.height and max(pages) == 25 and len(pages) == -(-want.height // 25)

    weekly = data.get_stock_bars(StockBarsRequest(symbol_or_symbols="JPM", timeframe=TimeFrame.Week,
                                                  start=datetime(2024, 1, 1))).data["JPM"]  # fmt: skip
    daily = read_bars(broker_data).filter(pl.col("symbol") == "JPM")
    assert sum(b.volume for b in weekly) == daily["volume"].sum() and weekly[0].open == daily["open"][0]
    bad = http.get("/v2/stocks/bars", params={"symbols": "AAPL", "timeframe": "1Min"})
    assert bad.status_code == 400 and bad.json()["code"] == 40010000


def test_latest_bar_quote_and_trade(broker: LocalBroker, broker_data: Path) -> None:
    data, http = data_client(broker), admin_client(broker)
    set_clock(http, timestamp="2024-11-05T17:00:00Z")  # Tuesday, mid-session
    aapl = read_bars(broker_data).filter(pl.col("symbol") == "AAPL")
    monday = aapl.row(1, named=True)
    bar = data.get_stock_latest_bar(StockLatestBarRequest(symbol_or_symbols=["AAPL", "NOPE"]))
    assert list(bar) == ["AAPL"] and bar["AAPL"].close == monday["close"]  # the last complete bar, not today's
    quote = data.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols="AAPL"))["AAPL"]
    trade = data.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols="AAPL"))["AAPL"]
    tuesday = aapl.row(2, named=True)
    frac = (2.5 * 3600) / (6.5 * 3600)  # 12:00 ET in a 09:30-16:00 session
    expected = tuesday["open"] + (tuesday["close"] - tuesday["open"]) * frac
    assert quote.bid_price <= trade.price <= quote.ask_price and abs(trade.price - expected) <= 0.01
    one = http.get("/v2/stocks/AAPL/quotes/latest").json()
    assert one["symbol"] == "AAPL" and one["quote"]["ap"] == quote.ask_price
    assert http.get("/v2/stocks/AAPL/bars/latest").json()["bar"]["c"] == monday["close"]
    assert http.get("/v2/stocks/NOPE/trades/latest").status_code == 404


def test_errors_are_alpaca_shaped(shared: LocalBroker) -> None:
    client, http = trading_client(shared), admin_client(shared)
    with pytest.raises(APIError) as unauthorized:
        trading_client(LocalBroker(shared.base_url, "wrong", "keys", shared.process, shared.log_path,
                                   shared.config)).get_account()  # fmt: skip
    assert unauthorized.value.status_code == 401 and unauthorized.value.code == 40110000
    with pytest.raises(APIError) as rich:
        client.submit_order(market("AAPL", 100_000))
    assert rich.value.status_code == 403 and rich.value.code == 40310000
    assert "insufficient buying power" in rich.value.message
    with pytest.raises(APIError) as shares:
        client.submit_order(MarketOrderRequest(symbol="JPM", qty=0.5, side="sell", time_in_force="day"))
    assert shares.value.status_code == 403  # fractional short
    with pytest.raises(APIError) as unknown:
        client.submit_order(market("NOPE", 1))
    assert unknown.value.status_code == 422 and unknown.value.code == 40010001
    client.submit_order(limit("AAPL", 1, 1.0, client_order_id="dup-1"))
    with pytest.raises(APIError) as dup:
        client.submit_order(limit("AAPL", 1, 1.0, client_order_id="dup-1"))
    assert dup.value.status_code == 422 and "unique" in dup.value.message

    base = {"symbol": "AAPL", "qty": 1, "side": "buy", "type": "market", "time_in_force": "day"}
    for change in ({"qty": "abc"}, {"qty": -1}, {"qty": True}, {"side": "hold"}, {"type": "limit"},
                   {"time_in_force": None}, {"symbol": 5}, {"limit_price": 10.001, "type": "limit"},
                   {"notional": 10}, {"order_class": "bracket"}, {"type": "trailing_stop"}):  # fmt: skip
        r = http.post("/v2/orders", json={**base, **change})
        assert r.status_code == 422 and r.json()["code"] == 40010001, (change, r.text)
    for raw in (b"{not json", b"[1, 2]", b""):
        r = http.post("/v2/orders", content=raw)
        assert r.status_code == 422 and isinstance(r.json()["code"], int)
    huge = http.post("/v2/orders", content=b"{" + b" " * (2 << 20) + b"}")
    assert huge.status_code == 413 and huge.json()["code"] == 41310000
    nothing = http.get("/v2/nothing/here")
    assert nothing.status_code == 404 and nothing.json()["code"] == 40410000
    wrong = http.put("/v2/account")
    assert wrong.status_code == 405 and wrong.json()["code"] == 40510000
    slash = http.get("/v2/account/")  # never a redirect: alpaca-py does not follow them
    assert slash.status_code == 200
    noauth = httpx.get(f"{shared.base_url}/v2/account")
    assert noauth.status_code == 401 and noauth.json() == {"code": 40110000, "message": "request is not authorized"}


def test_rate_limit_answers_429_with_headers(start_broker: StartBroker) -> None:
    b = start_broker(rate_limit=3)
    http = admin_client(b)
    seen = [http.get("/v2/clock") for _ in range(4)]
    assert [r.status_code for r in seen] == [200, 200, 200, 429]
    assert [r.headers["x-ratelimit-remaining"] for r in seen] == ["2", "1", "0", "0"]
    assert all(r.headers["x-ratelimit-limit"] == "3" for r in seen)
    assert int(seen[0].headers["x-ratelimit-reset"]) > datetime.now(UTC).timestamp()
    assert seen[3].json()["code"] == 42910000
    client = trading_client(b)
    client._retry = 0  # alpaca-py would sleep 3 s and retry a 429 three times
    with pytest.raises(APIError) as limited:
        client.get_account()
    assert limited.value.status_code == 429 and limited.value.code == 42910000
    assert http.get("/admin/state").status_code == 200  # admin endpoints are outside the budget


def test_intraday_bars_price_path_and_aggregation(start_broker: StartBroker, tmp_path: Path) -> None:
    bars = synth_bars(["AAPL", "MSFT"], "2024-11-04", "2024-11-05", "5Min", seed=4)
    path = tmp_path / "intraday.jsonl"
    write_bars(bars, path)
    b = start_broker(data=path)
    http, data = admin_client(b), data_client(b)
    assert http.get("/admin/clock").json()["timestamp"] == "2024-11-04T14:30:00Z"  # the first bar's start
    set_clock(http, timestamp="2024-11-04T14:37:30Z")  # half way through the 14:35 bar
    bar = bars.filter(pl.col("symbol") == "AAPL").row(1, named=True)
    trade = http.get("/v2/stocks/AAPL/trades/latest").json()["trade"]["p"]
    assert abs(trade - (bar["open"] + bar["close"]) / 2) <= 0.01
    assert http.get("/v2/stocks/AAPL/bars/latest").json()["bar"]["t"] == "2024-11-04T14:30:00Z"  # last complete

    # mid-session Tuesday: bars asked for without a start are today's (Alpaca's default; before: every bar), and
    # the snapshot's dailyBar is today's so far, its prevDailyBar Monday's (before: Monday's and none)
    set_clock(http, timestamp="2024-11-05T15:02:00Z")
    today = bars.filter((pl.col("symbol") == "AAPL") & (pl.col("timestamp") >= datetime(2024, 11, 5, 5, tzinfo=UTC))
                        & (pl.col("timestamp") < datetime(2024, 11, 5, 15, tzinfo=UTC)))  # the 6 complete by 10:02
    got = data.get_stock_bars(StockBarsRequest(symbol_or_symbols="AAPL", timeframe=TimeFrame(5, TimeFrameUnit.Minute)))
    assert [b.timestamp for b in got.data["AAPL"]] == today["timestamp"].to_list() and today.height == 6
    snap = data.get_stock_snapshot(StockSnapshotRequest(symbol_or_symbols="AAPL"))["AAPL"]
    assert snap.daily_bar.timestamp == datetime(2024, 11, 5, 5, tzinfo=UTC)
    assert (snap.daily_bar.open, snap.daily_bar.close) == (today["open"][0], today["close"][-1])
    assert (snap.daily_bar.high, snap.daily_bar.low) == (today["high"].max(), today["low"].min())
    assert snap.daily_bar.volume == today["volume"].sum()
    monday = bars.filter((pl.col("symbol") == "AAPL") & (pl.col("timestamp") < datetime(2024, 11, 5, tzinfo=UTC)))
    assert snap.previous_daily_bar.timestamp == datetime(2024, 11, 4, 5, tzinfo=UTC)
    assert snap.previous_daily_bar.close == monday["close"][-1] and snap.previous_daily_bar.volume == monday[
        "volume"].sum()

    set_clock(http, timestamp="2024-11-06T00:00:00Z")
    fifteen = TimeFrame(15, TimeFrameUnit.Minute)
    both_days = datetime(2024, 11, 4, tzinfo=UTC)
    quarter = data.get_stock_bars(StockBarsRequest(symbol_or_symbols="AAPL", timeframe=fifteen, start=both_days)).data
    native = bars.filter(pl.col("symbol") == "AAPL")
    assert len(quarter["AAPL"]) == native.height // 3 and quarter["AAPL"][0].volume == native["volume"][:3].sum()
    assert quarter["AAPL"][0].high == max(native["high"][:3]) and quarter["AAPL"][0].close == native["close"][2]
    daily = data.get_stock_bars(StockBarsRequest(symbol_or_symbols=["AAPL", "MSFT"], timeframe=TimeFrame.Day,
                                                 start=both_days)).data  # fmt: skip
    days = [datetime(2024, 11, 4, 5, tzinfo=UTC), datetime(2024, 11, 5, 5, tzinfo=UTC)]  # midnight New York
    assert [b.timestamp for b in daily["AAPL"]] == days
    assert sum(b.volume for b in daily["MSFT"]) == bars.filter(pl.col("symbol") == "MSFT")["volume"].sum()
