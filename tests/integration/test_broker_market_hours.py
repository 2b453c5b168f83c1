"""Market hours from the NYSE calendar: orders queued outside hours, day orders expiring at the close, holidays
and early closes, extended hours, always-open demos, and the three clock modes."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from alpaca.data.requests import StockLatestQuoteRequest
from alpaca.trading.enums import OrderStatus, TimeInForce
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

from marketboss.data.io import read_bars
from marketboss.local_broker.process import LocalBroker
from tests.integration.conftest import StartBroker, admin_client, data_client, set_clock, trading_client, wait_order


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def day_bar(data: Path, symbol: str, day: str) -> dict[str, float]:
    df = read_bars(data).filter(pl.col("symbol") == symbol)
    df = df.filter(pl.col("timestamp").dt.convert_time_zone("America/New_York").dt.date().cast(pl.String) == day)
    return df.row(0, named=True)


def market(symbol: str, qty: float, tif: TimeInForce = TimeInForce.DAY) -> MarketOrderRequest:
    return MarketOrderRequest(symbol=symbol, qty=qty, side="buy", time_in_force=tif)


def limit(symbol: str, qty: float, price: float, tif: TimeInForce = TimeInForce.DAY, **kw: object) -> LimitOrderRequest:
    return LimitOrderRequest(symbol=symbol, qty=qty, side="buy", limit_price=price, time_in_force=tif, **kw)


@pytest.fixture(scope="module")
def shared_hours(module_broker_factory: StartBroker) -> LocalBroker:
    return module_broker_factory()


@pytest.fixture
def hours(shared_hours: LocalBroker) -> LocalBroker:
    """One server for the module; each test cancels what is left open and sets the clock where it starts."""
    with admin_client(shared_hours) as http:
        assert http.delete("/v2/orders").status_code == 207
    return shared_hours


def test_market_order_on_a_weekend_waits_for_monday_open(hours: LocalBroker, broker_data: Path) -> None:
    client, http = trading_client(hours), admin_client(hours)
    set_clock(http, timestamp="2024-11-02T16:00:00Z", allow_backwards=True)  # Saturday
    assert not client.get_clock().is_open
    order = client.submit_order(market("AAPL", 3))
    time.sleep(0.3)
    assert client.get_order_by_id(order.id).status == OrderStatus.ACCEPTED  # queued, as at Alpaca
    state = set_clock(http, advance="next_open")
    assert state["timestamp"] == "2024-11-04T14:30:00Z" and state["is_open"]
    filled = wait_order(client, order.id)
    assert filled.filled_at == utc(2024, 11, 4, 14, 30)
    monday_open = day_bar(broker_data, "AAPL", "2024-11-04")["open"]
    assert abs(float(filled.filled_avg_price) - monday_open) <= monday_open * 0.0002 + 0.01


def test_a_clock_jump_fills_queued_orders_at_the_next_open_not_where_it_lands(hours: LocalBroker,
                                                                               broker_data: Path) -> None:  # fmt: skip
    client, http = trading_client(hours), admin_client(hours)
    set_clock(http, timestamp="2024-11-08T22:00:00Z", allow_backwards=True)  # Friday after the close
    order = client.submit_order(market("MSFT", 2))
    set_clock(http, timestamp="2024-11-12T17:00:00Z")  # Tuesday noon
    filled = wait_order(client, order.id)
    assert filled.filled_at == utc(2024, 11, 11, 14, 30)  # Monday's open
    monday_open = day_bar(broker_data, "MSFT", "2024-11-11")["open"]
    assert abs(float(filled.filled_avg_price) - monday_open) <= monday_open * 0.0002 + 0.01


def test_day_orders_expire_at_the_close_and_gtc_orders_stay(hours: LocalBroker) -> None:
    client, http = trading_client(hours), admin_client(hours)
    set_clock(http, timestamp="2024-11-11T15:00:00Z", allow_backwards=True)
    day = client.submit_order(limit("AAPL", 1, 1.0))
    gtc = client.submit_order(limit("AAPL", 1, 1.0, TimeInForce.GTC))
    assert day.expires_at == utc(2024, 11, 11, 21, 0)
    set_clock(http, timestamp="2024-11-11T20:59:59Z")
    assert client.get_order_by_id(day.id).status == OrderStatus.NEW
    set_clock(http, advance="next_close")
    expired = client.get_order_by_id(day.id)
    assert expired.status == OrderStatus.EXPIRED and expired.expired_at == utc(2024, 11, 11, 21, 0)
    assert client.get_order_by_id(gtc.id).status == OrderStatus.NEW
    set_clock(http, timestamp="2024-11-11T23:00:00Z")
    late = client.submit_order(limit("AAPL", 1, 1.0))  # after the close: works the next session
    assert late.expires_at == utc(2024, 11, 12, 21, 0)


def test_holidays_and_early_closes_come_from_the_exchange_calendar(hours: LocalBroker) -> None:
    client, http = trading_client(hours), admin_client(hours)
    for closed_day, reopen in (
        ("2024-11-28T17:00:00Z", utc(2024, 11, 29, 14, 30)),  # Thanksgiving
        ("2024-12-25T17:00:00Z", utc(2024, 12, 26, 14, 30)),  # Christmas
        ("2025-01-09T17:00:00Z", utc(2025, 1, 10, 14, 30)),  # national day of mourning
    ):
        set_clock(http, timestamp=closed_day, allow_backwards=True)
        clock = client.get_clock()
        assert not clock.is_open and clock.next_open == reopen
    set_clock(http, timestamp="2025-01-09T17:00:00Z", allow_backwards=True)
    queued = client.submit_order(market("JPM", 1))
    set_clock(http, timestamp="2025-01-10T16:00:00Z")
    assert wait_order(client, queued.id).filled_at == utc(2025, 1, 10, 14, 30)

    set_clock(http, timestamp="2024-12-24T15:00:00Z", allow_backwards=True)  # Christmas Eve closes at 13:00 ET
    assert client.get_clock().next_close == utc(2024, 12, 24, 18, 0)
    day = client.submit_order(limit("AAPL", 1, 1.0))
    assert day.expires_at == utc(2024, 12, 24, 18, 0)
    set_clock(http, timestamp="2024-12-24T18:30:00Z")
    assert not client.get_clock().is_open and client.get_order_by_id(day.id).status == OrderStatus.EXPIRED


def test_outside_hours_ioc_is_cancelled_and_extended_hours_limits_trade(hours: LocalBroker, broker_data: Path) -> None:
    client, http = trading_client(hours), admin_client(hours)
    set_clock(http, timestamp="2024-11-11T23:00:00Z", allow_backwards=True)  # 18:00 ET: after-hours
    ioc = client.submit_order(market("AAPL", 1, TimeInForce.IOC))
    assert wait_order(client, ioc.id, ("canceled",)).filled_qty == "0"
    close = day_bar(broker_data, "AAPL", "2024-11-11")["close"]
    price = round(close * 1.01, 2)
    extended = client.submit_order(limit("AAPL", 2, price, extended_hours=True))
    regular = client.submit_order(limit("AAPL", 2, price))
    filled = wait_order(client, extended.id)
    assert abs(float(filled.filled_avg_price) - close) <= close * 0.0002 + 0.01  # after-hours price: the last close
    assert client.get_order_by_id(regular.id).status == OrderStatus.ACCEPTED  # waits for the regular session
    bad = http.post("/v2/orders", json={"symbol": "AAPL", "qty": 1, "side": "buy", "type": "market",
                                        "time_in_force": "day", "extended_hours": True})  # fmt: skip
    assert bad.status_code == 422 and "DAY limit" in bad.json()["message"]


def test_always_open_fills_on_a_sunday_at_the_last_close(start_broker: StartBroker, broker_data: Path) -> None:
    b = start_broker(always_open=True, start=datetime(2024, 11, 3, 18, tzinfo=UTC))
    client = trading_client(b)
    assert client.get_clock().is_open
    filled = wait_order(client, client.submit_order(market("AAPL", 1)).id)
    friday_close = day_bar(broker_data, "AAPL", "2024-11-01")["close"]
    assert filled.filled_at == utc(2024, 11, 3, 18)
    assert abs(float(filled.filled_avg_price) - friday_close) <= friday_close * 0.0002 + 0.01


def test_accelerated_clock_runs_at_its_speed(start_broker: StartBroker) -> None:
    b = start_broker(clock="accelerated", speed=3600)
    http = admin_client(b)
    t0, w0 = datetime.fromisoformat(http.get("/admin/clock").json()["timestamp"]), time.monotonic()
    time.sleep(0.5)
    t1, w1 = datetime.fromisoformat(http.get("/admin/clock").json()["timestamp"]), time.monotonic()
    ratio = (t1 - t0).total_seconds() / (w1 - w0)
    assert 2700 < ratio < 4500
    client = trading_client(b)
    set_clock(http, timestamp="2024-11-04T15:00:00Z")  # re-anchor inside Monday's session
    order = wait_order(client, client.submit_order(market("JPM", 1)).id)
    assert order.filled_at >= utc(2024, 11, 4, 15)


def test_wallclock_keeps_the_weekday_and_time_of_day(start_broker: StartBroker) -> None:
    b = start_broker(clock="wallclock")
    state = admin_client(b).get("/admin/clock").json()
    now = datetime.now(UTC)
    sim = datetime.fromisoformat(state["timestamp"])
    shift = (now - sim).total_seconds()
    assert abs(shift / (7 * 86400) - round(shift / (7 * 86400))) * 7 * 86400 < 5  # whole weeks, give or take
    start = datetime.fromisoformat(state["data_start"])
    assert start <= sim < datetime(2024, 11, 8, 13, 30, tzinfo=UTC)
    assert state["mode"] == "wallclock"


def test_admin_clock_moves(hours: LocalBroker) -> None:
    http = admin_client(hours)
    assert set_clock(http, bar="2024-11-05T05:00:00Z", allow_backwards=True)["timestamp"] == "2024-11-05T14:30:00Z"
    assert set_clock(http, advance="bar_end")["timestamp"] == "2024-11-05T21:00:00Z"
    assert set_clock(http, advance="next_bar")["timestamp"] == "2024-11-06T14:30:00Z"
    assert set_clock(http, seconds=90)["timestamp"] == "2024-11-06T14:31:30Z"
    assert set_clock(http, advance="next_close")["timestamp"] == "2024-11-06T21:00:00Z"
    for body in ({"timestamp": "2024-11-01T14:00:00Z"}, {"timestamp": "2031-01-01T00:00:00Z"}, {"bar": "2024-11-05"},
                 {"advance": "tomorrow"}, {"seconds": -5}, {}, {"timestamp": 5}, {"timestamp": "x", "seconds": 1},
                 {"nope": 1}):  # fmt: skip
        r = http.post("/admin/clock", json=body)
        assert r.status_code == 422 and r.json()["code"] == 40010001, (body, r.text)
    back = set_clock(http, timestamp="2024-11-04T14:30:00Z", allow_backwards=True)
    assert back["timestamp"] == "2024-11-04T14:30:00Z"
    quote = data_client(hours).get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols="AAPL"))["AAPL"]
    assert quote.timestamp == utc(2024, 11, 4, 14, 30) and Decimal(str(quote.bid_price)) > 0
