"""How orders fill: market orders at the price of the moment, working orders bar by bar by the backtest's rules
(marketboss.orders); partial fills, ioc/fok, brackets (OCO legs, the stop when a bar reaches both), shorts,
buying power, commission, slippage."""

from __future__ import annotations

import threading
import time
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import OrderClass, OrderStatus, TimeInForce
from alpaca.trading.models import TradeActivity
from alpaca.trading.requests import (
    LimitOrderRequest,
    MarketOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
)

from marketboss.data.io import read_bars
from tests.integration.conftest import (
    StartBroker,
    admin_client,
    check_books,
    set_clock,
    trading_client,
    wait_order,
)

NY = ZoneInfo("America/New_York")


def opens(data: Path, symbol: str) -> list[float]:
    return read_bars(data).filter(pl.col("symbol") == symbol)["open"].to_list()


def daily(data: Path, symbol: str) -> list[dict[str, Any]]:
    """The symbol's bars in order: day (New York), open, high, low."""
    df = read_bars(data).filter(pl.col("symbol") == symbol).sort("timestamp")
    days = df["timestamp"].dt.convert_time_zone(str(NY)).dt.date().to_list()
    return [{"day": d, "open": o, "high": h, "low": lo}
            for d, o, h, lo in zip(days, df["open"], df["high"], df["low"], strict=True)]  # fmt: skip


def day_of(t: datetime) -> date:
    return t.astimezone(NY).date()


def test_limit_fills_on_the_first_bar_whose_low_reaches_it(start_broker: StartBroker, broker_data: Path) -> None:
    b = start_broker(spread_bps=0.0)
    client, http = trading_client(b), admin_client(b)
    bars = daily(broker_data, "AAPL")
    limit = round(min(x["open"] for x in bars[1:6]) + 1.0, 2)  # below today's open, reached in the next days
    assert limit < bars[0]["open"]
    order = client.submit_order(LimitOrderRequest(symbol="AAPL", qty=5, side="buy", limit_price=limit,
                                                  time_in_force=TimeInForce.GTC))  # fmt: skip
    hit = next(x for x in bars if x["low"] <= limit)
    while client.get_order_by_id(order.id).status != OrderStatus.FILLED:
        assert client.get_order_by_id(order.id).status == OrderStatus.NEW
        set_clock(http, advance="next_bar")
    filled = client.get_order_by_id(order.id)
    assert day_of(filled.filled_at) == hit["day"]  # the bar that reached it, not one before
    assert float(filled.filled_avg_price) == min(hit["open"], limit)  # the better of its open and the limit


def test_stop_triggers_on_the_first_bar_that_reaches_it(start_broker: StartBroker, broker_data: Path) -> None:
    b = start_broker(spread_bps=0.0)
    client, http = trading_client(b), admin_client(b)
    wait_order(client, client.submit_order(MarketOrderRequest(symbol="AAPL", qty=10, side="buy",
                                                              time_in_force=TimeInForce.DAY)).id)  # fmt: skip
    bars = daily(broker_data, "AAPL")
    stop = round(bars[0]["open"] * 0.975, 2)
    order = client.submit_order(StopOrderRequest(symbol="AAPL", qty=10, side="sell", stop_price=stop,
                                                 time_in_force=TimeInForce.GTC))  # fmt: skip
    hit = next(x for x in bars if x["low"] <= stop)
    while client.get_order_by_id(order.id).status != OrderStatus.FILLED:
        assert client.get_order_by_id(order.id).status == OrderStatus.NEW
        set_clock(http, advance="next_bar")
    filled = client.get_order_by_id(order.id)
    assert day_of(filled.filled_at) == hit["day"]
    assert float(filled.filled_avg_price) == min(hit["open"], stop)  # the stop, or the open of a gap through it
    assert client.get_all_positions() == []


def test_partial_fill_first_then_the_rest_after_the_latency(start_broker: StartBroker) -> None:
    b = start_broker(fill_latency_ms=400, partial_fill_rate=1.0)
    client = trading_client(b)
    order = client.submit_order(MarketOrderRequest(symbol="MSFT", qty=100, side="buy", time_in_force=TimeInForce.DAY))
    seen = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got = client.get_order_by_id(order.id)
        seen.append((got.status.value, Decimal(got.filled_qty)))
        if got.status == OrderStatus.FILLED:
            break
        time.sleep(0.02)
    statuses = [s for s, _ in seen]
    assert statuses[0] == "accepted" and statuses[-1] == "filled"
    partial = [q for s, q in seen if s == "partially_filled"]
    assert partial and 0 < partial[0] < 100 and len(set(partial)) == 1
    fills = [TradeActivity(**a) for a in client.get("/account/activities/FILL", {"direction": "asc"})]
    assert [f.type.value for f in fills] == ["partial_fill", "fill"]
    assert fills[0].qty == float(partial[0]) and fills[0].leaves_qty == 100 - fills[0].qty
    assert fills[1].cum_qty == 100 and fills[0].qty + fills[1].qty == 100


def test_ioc_and_fok(start_broker: StartBroker) -> None:
    b = start_broker(partial_fill_rate=1.0)
    client = trading_client(b)

    def submit(tif: TimeInForce, **kw: object) -> object:
        if "limit_price" in kw:
            return client.submit_order(LimitOrderRequest(symbol="JPM", qty=50, side="buy", time_in_force=tif, **kw))
        return client.submit_order(MarketOrderRequest(symbol="JPM", qty=50, side="buy", time_in_force=tif))

    ioc = wait_order(client, submit(TimeInForce.IOC).id, ("canceled",))  # type: ignore[attr-defined]
    assert 0 < Decimal(ioc.filled_qty) < 50  # what filled at once stays; the rest is cancelled
    # its fill as it left the order, partly filled (said canceled before the cancel came: its trade update too)
    (fill,) = [a for a in admin_client(b).get("/v2/account/activities/FILL").json() if a["order_id"] == str(ioc.id)]
    assert fill["order_status"] == "partially_filled" and fill["type"] == "partial_fill"
    assert Decimal(fill["leaves_qty"]) == 50 - Decimal(ioc.filled_qty)
    fok = wait_order(client, submit(TimeInForce.FOK).id)  # type: ignore[attr-defined]
    assert Decimal(fok.filled_qty) == 50  # never partly
    for tif in (TimeInForce.IOC, TimeInForce.FOK):
        missed = wait_order(client, submit(tif, limit_price=1.0).id, ("canceled",))  # type: ignore[attr-defined]
        assert Decimal(missed.filled_qty) == 0


def test_bracket_legs_start_after_the_parent_fills_and_cancel_each_other(start_broker: StartBroker,
                                                                         broker_data: Path) -> None:  # fmt: skip
    b = start_broker(spread_bps=0.0)
    client, http = trading_client(b), admin_client(b)
    o = opens(broker_data, "AAPL")
    take, stop = round(o[0] * 1.02, 2), round(o[0] * 0.975, 2)
    parent = client.submit_order(MarketOrderRequest(
        symbol="AAPL", qty=10, side="buy", time_in_force=TimeInForce.GTC, order_class=OrderClass.BRACKET,
        take_profit=TakeProfitRequest(limit_price=take), stop_loss=StopLossRequest(stop_price=stop),
    ))  # fmt: skip
    assert parent.order_class == OrderClass.BRACKET and len(parent.legs) == 2
    assert {leg.status for leg in parent.legs} == {OrderStatus.HELD}
    wait_order(client, parent.id)
    legs = {leg.type.value: leg for leg in client.get_order_by_id(parent.id).legs}
    assert set(legs) == {"limit", "stop"} and all(leg.status == OrderStatus.NEW for leg in legs.values())
    assert legs["limit"].limit_price == str(take) and legs["stop"].stop_price == str(stop)
    assert all(leg.side.value == "sell" and leg.qty == "10" for leg in legs.values())
    bars = daily(broker_data, "AAPL")
    exit_bar = next(x for x in bars if x["low"] <= stop or x["high"] >= take)  # the legs work from the entry's bar
    while client.get_all_positions():
        set_clock(http, advance="next_bar")
    done = {leg.type.value: leg for leg in client.get_order_by_id(parent.id).legs}
    winner = "stop" if exit_bar["low"] <= stop else "limit"  # a bar that reaches both takes the stop
    loser = "limit" if winner == "stop" else "stop"
    assert done[winner].status == OrderStatus.FILLED and done[loser].status == OrderStatus.CANCELED
    assert day_of(done[winner].filled_at) == exit_bar["day"]
    price = min(exit_bar["open"], stop) if winner == "stop" else max(exit_bar["open"], take)
    assert float(done[winner].filled_avg_price) == price
    nested = client.get_orders(filter=None)
    assert nested == []  # nothing left open


def test_short_sale_and_cover(start_broker: StartBroker) -> None:
    b = start_broker()
    client = trading_client(b)
    sold = wait_order(client, client.submit_order(MarketOrderRequest(symbol="JPM", qty=5, side="sell",
                                                                     time_in_force=TimeInForce.DAY)).id)  # fmt: skip
    assert sold.position_intent.value == "sell_to_open"
    acct = client.get_account()
    assert Decimal(acct.cash) == 100_000 + (5 * Decimal(sold.filled_avg_price)).quantize(Decimal("0.01"))
    pos = client.get_open_position("JPM")
    assert pos.qty == "-5" and Decimal(acct.equity) == Decimal(acct.cash) + Decimal(pos.market_value)
    with pytest.raises(APIError) as flip:
        client.submit_order(MarketOrderRequest(symbol="JPM", qty=6, side="buy", time_in_force=TimeInForce.DAY))
    assert flip.value.status_code == 403 and "insufficient qty" in flip.value.message
    cover = wait_order(client, client.submit_order(MarketOrderRequest(symbol="JPM", qty=5, side="buy",
                                                                      time_in_force=TimeInForce.DAY)).id)  # fmt: skip
    assert cover.position_intent.value == "buy_to_close" and client.get_all_positions() == []


def test_cash_account_cannot_short_and_buys_with_cash(start_broker: StartBroker) -> None:
    client = trading_client(start_broker(multiplier=1))
    acct = client.get_account()
    assert acct.buying_power == "100000" and acct.multiplier == "1" and not acct.shorting_enabled
    with pytest.raises(APIError) as short:
        client.submit_order(MarketOrderRequest(symbol="JPM", qty=1, side="sell", time_in_force=TimeInForce.DAY))
    assert short.value.status_code == 403


def test_open_orders_reserve_buying_power_and_held_shares(start_broker: StartBroker) -> None:
    b = start_broker(multiplier=2)
    client = trading_client(b)
    lim = client.submit_order(LimitOrderRequest(symbol="AAPL", qty=100, side="buy", limit_price=200,
                                                time_in_force=TimeInForce.GTC))  # fmt: skip
    assert Decimal(client.get_account().buying_power) == 200_000 - 100 * 200
    with pytest.raises(APIError) as too_much:
        client.submit_order(LimitOrderRequest(symbol="MSFT", qty=1000, side="buy", limit_price=181,
                                              time_in_force=TimeInForce.GTC))  # fmt: skip
    assert too_much.value.status_code == 403 and Decimal(too_much.value.response.json()["buying_power"]) == 180_000
    client.cancel_order_by_id(lim.id)
    assert Decimal(client.get_account().buying_power) == 200_000

    wait_order(client, client.submit_order(MarketOrderRequest(symbol="AAPL", qty=10, side="buy",
                                                              time_in_force=TimeInForce.DAY)).id)  # fmt: skip
    client.submit_order(LimitOrderRequest(symbol="AAPL", qty=6, side="sell", limit_price=999,
                                          time_in_force=TimeInForce.GTC))  # fmt: skip
    assert client.get_open_position("AAPL").qty_available == "4"
    with pytest.raises(APIError) as shares:
        client.submit_order(MarketOrderRequest(symbol="AAPL", qty=5, side="sell", time_in_force=TimeInForce.DAY))
    body = shares.value.response.json()
    assert shares.value.status_code == 403 and body["available"] == "4" and body["held_for_orders"] == "6"


def test_commission_and_slippage(start_broker: StartBroker, broker_data: Path) -> None:
    b = start_broker(commission_bps=10, commission_per_share=0.01, slippage_bps=5)
    client = trading_client(b)
    order = wait_order(client, client.submit_order(MarketOrderRequest(symbol="AAPL", qty=10, side="buy",
                                                                      time_in_force=TimeInForce.DAY)).id)  # fmt: skip
    # the backtest's fill price: the open moved up by the slippage and half the (default 2 bp) spread
    price = Decimal(repr(opens(broker_data, "AAPL")[0] * (1 + 0.0006))).quantize(Decimal("1e-6"))  # (its digits)
    commission = (10 * price * Decimal("0.001") + Decimal("0.10")).quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert Decimal(order.filled_avg_price) == price
    assert Decimal(client.get_account().cash) == 100_000 - (10 * price).quantize(Decimal("0.01")) - commission
    raw = admin_client(b).get(f"/v2/orders/{order.id}").json()
    fill = client.get("/account/activities/FILL")[0]
    assert Decimal(raw["commission"]) == Decimal(fill["commission"]) == commission


def test_notional_buy_gets_fractional_shares(start_broker: StartBroker) -> None:
    client = trading_client(start_broker())
    order = wait_order(client, client.submit_order(MarketOrderRequest(symbol="MSFT", notional=1000, side="buy",
                                                                      time_in_force=TimeInForce.DAY)).id)  # fmt: skip
    qty, price = Decimal(order.filled_qty), Decimal(order.filled_avg_price)
    assert order.qty is None and order.notional == "1000"
    assert qty != qty.to_integral_value() and 1000 - price * Decimal("1e-9") <= qty * price <= 1000
    assert Decimal(client.get_open_position("MSFT").qty) == qty


def test_concurrent_clients_keep_the_books_straight(start_broker: StartBroker) -> None:
    b = start_broker(partial_fill_rate=0.5, fill_latency_ms=5)
    statuses: list[int] = []

    def client_run(worker: int) -> None:
        with admin_client(b) as http:
            for i in range(15):
                side = "buy" if (worker + i) % 3 else "sell"
                body = {"symbol": ["AAPL", "MSFT", "JPM"][(worker + i) % 3], "qty": 1 + (i % 4), "side": side,
                        "type": "market", "time_in_force": "day", "client_order_id": f"w{worker}-{i}"}  # fmt: skip
                statuses.append(http.post("/v2/orders", json=body).status_code)
            same = http.post("/v2/orders", json={**body, "client_order_id": "everyone"})
            statuses.append(same.status_code)

    threads = [threading.Thread(target=client_run, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses.count(500) == 0 and statuses.count(200) >= 8 * 15 - 20  # a few sells may lack shares (403)
    with admin_client(b) as http:
        deadline = time.monotonic() + 20
        while http.get("/v2/orders").json() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert http.get("/v2/orders").json() == []
        everyone = http.get("/v2/orders", params={"status": "all", "limit": 500}).json()
        assert sum(o["client_order_id"] == "everyone" for o in everyone) == 1  # one winner; the rest got 422
        check_books(http, multiplier=2)


def test_oto_stop_limit_leg_and_bracket_price_rules(start_broker: StartBroker, broker_data: Path) -> None:
    b = start_broker()
    client, http = trading_client(b), admin_client(b)
    o = opens(broker_data, "MSFT")
    stop, floor = round(o[0] * 0.97, 2), round(o[0] * 0.96, 2)
    parent = client.submit_order(MarketOrderRequest(
        symbol="MSFT", qty=4, side="buy", time_in_force=TimeInForce.DAY, order_class=OrderClass.OTO,
        stop_loss=StopLossRequest(stop_price=stop, limit_price=floor),
    ))  # fmt: skip
    assert parent.order_class == OrderClass.OTO and [leg.type.value for leg in parent.legs] == ["stop_limit"]
    wait_order(client, parent.id)
    leg = client.get_order_by_id(parent.id).legs[0]
    assert leg.status == OrderStatus.NEW and leg.stop_price == str(stop) and leg.limit_price == str(floor)
    assert client.get_open_position("MSFT").qty_available == "0"  # the leg holds the shares

    base = {"symbol": "JPM", "qty": 2, "type": "market", "time_in_force": "gtc", "order_class": "bracket"}
    price = opens(broker_data, "JPM")[0]
    short_wrong = {**base, "side": "sell", "take_profit": {"limit_price": round(price * 1.05, 2)},
                   "stop_loss": {"stop_price": round(price * 1.10, 2)}}  # fmt: skip
    r = http.post("/v2/orders", json=short_wrong)
    assert r.status_code == 422 and "take_profit.limit_price must be <=" in r.json()["message"]
    short_ok = {**base, "side": "sell", "take_profit": {"limit_price": round(price * 0.95, 2)},
                "stop_loss": {"stop_price": round(price * 1.05, 2)}}  # fmt: skip
    placed = http.post("/v2/orders", json=short_ok).json()
    assert [(leg["side"], leg["type"], leg["status"]) for leg in placed["legs"]] == [
        ("buy", "limit", "held"), ("buy", "stop", "held")
    ]  # fmt: skip
    wait_order(client, placed["id"])
    assert client.get_open_position("JPM").qty == "-2"
