"""Replacing orders (PATCH /v2/orders/{id} through TradingClient.replace_order_by_id) and OCO exits, on a real
server: the replacement is a new order that `replaces` the old one, the old one ends "replaced"; an OCO's two
exits work at once and the one that trades cancels the other."""

from __future__ import annotations

from decimal import Decimal

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import OrderClass, OrderSide, OrderStatus, OrderType, TimeInForce
from alpaca.trading.requests import (
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
    TrailingStopOrderRequest,
)

from tests.integration.conftest import StartBroker, admin_client, check_books, set_clock, trading_client, wait_order

SESSION = "2024-11-05T15:00:00Z"  # 10:00 New York, a Tuesday session


def _last(client, symbol: str) -> Decimal:  # type: ignore[no-untyped-def]
    pos = client.get_open_position(symbol)
    return Decimal(pos.current_price)


def test_replace_makes_a_new_order_and_marks_the_old_one_replaced(start_broker: StartBroker) -> None:
    b = start_broker(spread_bps=0.0)
    client, http = trading_client(b), admin_client(b)
    set_clock(http, timestamp=SESSION)
    old = client.submit_order(LimitOrderRequest(symbol="AAPL", qty=10, side="buy", limit_price=1.0,
                                                time_in_force=TimeInForce.DAY, client_order_id="first"))  # fmt: skip
    wait_order(client, old.id, ("new",))
    bp_before = Decimal(client.get_account().buying_power)
    new = client.replace_order_by_id(old.id, ReplaceOrderRequest(qty=20, limit_price=2.0, client_order_id="second"))
    assert new.id != old.id and str(new.replaces) == str(old.id) and new.client_order_id == "second"
    assert (new.qty, new.limit_price, new.time_in_force) == ("20", "2", TimeInForce.DAY)
    gone = client.get_order_by_id(old.id)
    assert gone.status == OrderStatus.REPLACED and str(gone.replaced_by) == str(new.id)
    assert gone.replaced_at is not None
    wait_order(client, new.id, ("new",))
    # the buying power held back moves from 10 x $1 to 20 x $2
    assert Decimal(client.get_account().buying_power) == bp_before + 10 * 1 - 20 * 2
    # a replaced order is closed: neither replaced nor cancelled again
    with pytest.raises(APIError) as again:
        client.replace_order_by_id(old.id, ReplaceOrderRequest(limit_price=3.0))
    assert again.value.status_code == 422
    with pytest.raises(APIError) as dup:
        client.replace_order_by_id(new.id, ReplaceOrderRequest(client_order_id="first"))
    assert dup.value.status_code == 422 and "unique" in str(dup.value)
    # the replacement itself can be replaced, to gtc; open orders show only the live one
    third = client.replace_order_by_id(new.id, ReplaceOrderRequest(time_in_force=TimeInForce.GTC))
    assert third.time_in_force == TimeInForce.GTC and third.expires_at is None and third.limit_price == "2"
    open_ids = {str(o.id) for o in client.get_orders()}
    assert open_ids == {str(third.id)}
    check_books(http, multiplier=4)


def test_replace_follows_alpacas_rules(start_broker: StartBroker) -> None:
    b = start_broker()
    client, http = trading_client(b), admin_client(b)
    set_clock(http, timestamp=SESSION)
    limit = client.submit_order(LimitOrderRequest(symbol="AAPL", qty=5, side="buy", limit_price=1.0,
                                                  time_in_force=TimeInForce.GTC))  # fmt: skip
    wait_order(client, limit.id, ("new",))
    for change, needle in [
        (ReplaceOrderRequest(stop_price=2.0), "stop_price"),
        (ReplaceOrderRequest(trail=2.0), "trail"),
        (ReplaceOrderRequest(qty=10**7, limit_price=9000.0), "buying power"),
    ]:
        with pytest.raises(APIError) as exc:
            client.replace_order_by_id(limit.id, change)
        assert exc.value.status_code in (403, 422) and needle in str(exc.value)
    assert client.get_order_by_id(limit.id).status == OrderStatus.NEW  # a refused replace changes nothing
    r = http.patch(f"/v2/orders/{limit.id}", json={"qty": 1.5})
    assert r.status_code == 422 and "whole" in r.json()["message"]
    r = http.patch(f"/v2/orders/{limit.id}", json={"side": "sell"})
    assert r.status_code == 422 and "side" in r.json()["message"]
    filled = client.submit_order(MarketOrderRequest(symbol="AAPL", qty=5, side="buy", time_in_force=TimeInForce.DAY))
    wait_order(client, filled.id)
    with pytest.raises(APIError) as exc:
        client.replace_order_by_id(filled.id, ReplaceOrderRequest(qty=1))
    assert exc.value.status_code == 422 and "filled" in str(exc.value)
    notional = http.post("/v2/orders", json={"symbol": "MSFT", "notional": 100, "side": "buy", "type": "market",
                                             "time_in_force": "day"}).json()  # fmt: skip
    wait_order(client, notional["id"])
    # a sell may not be replaced beyond the shares held
    stop = client.submit_order(StopOrderRequest(symbol="AAPL", qty=5, side="sell", stop_price=1.0,
                                                time_in_force=TimeInForce.GTC))  # fmt: skip
    wait_order(client, stop.id, ("new",))
    with pytest.raises(APIError) as exc:
        client.replace_order_by_id(stop.id, ReplaceOrderRequest(qty=6))
    assert exc.value.status_code == 403 and "insufficient qty" in str(exc.value)
    moved = client.replace_order_by_id(stop.id, ReplaceOrderRequest(qty=5, stop_price=2.0))
    assert moved.stop_price == "2" and moved.qty == "5"
    check_books(http, multiplier=4)


def test_replacing_a_trailing_stop_changes_its_trail_and_keeps_its_mark(start_broker: StartBroker) -> None:
    b = start_broker()
    client, http = trading_client(b), admin_client(b)
    set_clock(http, timestamp=SESSION)
    entry = client.submit_order(MarketOrderRequest(symbol="MSFT", qty=3, side="buy", time_in_force=TimeInForce.DAY))
    wait_order(client, entry.id)
    trail = client.submit_order(TrailingStopOrderRequest(symbol="MSFT", qty=3, side="sell", trail_percent=5,
                                                         time_in_force=TimeInForce.GTC))  # fmt: skip
    trail = wait_order(client, trail.id, ("new",))
    hwm = Decimal(trail.hwm)
    wider = client.replace_order_by_id(trail.id, ReplaceOrderRequest(trail=10))
    assert (wider.trail_percent, Decimal(wider.hwm)) == ("10", hwm)
    # the level is 90% of the mark (the mark is shown rounded to the cent, so the level may differ by a cent)
    assert abs(Decimal(wider.stop_price) - hwm * Decimal("0.9")) <= Decimal("0.01")
    assert Decimal(trail.stop_price) > Decimal(wider.stop_price)


def test_an_oco_exit_works_both_legs_and_the_stop_that_trades_cancels_the_limit(start_broker: StartBroker) -> None:
    b = start_broker(spread_bps=0.0)
    client, http = trading_client(b), admin_client(b)
    set_clock(http, timestamp=SESSION)
    entry = client.submit_order(MarketOrderRequest(symbol="AAPL", qty=10, side="buy", time_in_force=TimeInForce.DAY))
    price = Decimal(wait_order(client, entry.id).filled_avg_price)
    with pytest.raises(APIError) as exc:  # an OCO is an exit: nothing to exit in MSFT
        client.submit_order(LimitOrderRequest(
            symbol="MSFT", qty=1, side="sell", time_in_force=TimeInForce.GTC, order_class=OrderClass.OCO,
            take_profit=TakeProfitRequest(limit_price=1000.0), stop_loss=StopLossRequest(stop_price=1.0)))  # fmt: skip
    assert exc.value.status_code == 403
    take, stop = float(round(price * 2, 2)), float(round(price * Decimal("1.5"), 2))  # the stop is already hit
    r = http.post("/v2/orders", json={"symbol": "AAPL", "qty": 10, "side": "sell", "type": "limit",
                                      "time_in_force": "gtc", "order_class": "oco",
                                      "take_profit": {"limit_price": stop}, "stop_loss": {"stop_price": take}})
    assert r.status_code == 422 and "take_profit.limit_price must be >" in r.json()["message"]
    oco = client.submit_order(LimitOrderRequest(
        symbol="AAPL", qty=10, side="sell", time_in_force=TimeInForce.GTC, order_class=OrderClass.OCO,
        take_profit=TakeProfitRequest(limit_price=take), stop_loss=StopLossRequest(stop_price=stop)))  # fmt: skip
    assert oco.order_class == OrderClass.OCO and oco.type == OrderType.LIMIT and oco.limit_price == str(take)
    assert oco.legs is not None and len(oco.legs) == 1 and oco.legs[0].type == OrderType.STOP
    assert oco.legs[0].side == OrderSide.SELL and oco.legs[0].stop_price == str(stop)
    leg = wait_order(client, oco.legs[0].id, ("filled",))  # the stop is above the price: it triggers at once
    assert client.get_order_by_id(oco.id).status == OrderStatus.CANCELED
    assert Decimal(leg.filled_qty) == 10
    with pytest.raises(APIError):
        client.get_open_position("AAPL")
    check_books(http, multiplier=4)


def test_an_oco_claims_the_shares_once_and_cancelling_one_cancels_both(start_broker: StartBroker) -> None:
    b = start_broker()
    client, http = trading_client(b), admin_client(b)
    set_clock(http, timestamp=SESSION)
    entry = client.submit_order(MarketOrderRequest(symbol="JPM", qty=10, side="buy", time_in_force=TimeInForce.DAY))
    price = Decimal(wait_order(client, entry.id).filled_avg_price)
    oco = client.submit_order(LimitOrderRequest(
        symbol="JPM", qty=10, side="sell", time_in_force=TimeInForce.GTC, order_class=OrderClass.OCO,
        take_profit=TakeProfitRequest(limit_price=float(round(price * 2, 2))),
        stop_loss=StopLossRequest(stop_price=float(round(price / 2, 2)))))  # fmt: skip
    wait_order(client, oco.id, ("new",))
    assert client.get_open_position("JPM").qty_available == "0"  # the pair claims the 10 shares once
    client.cancel_order_by_id(oco.legs[0].id)
    assert client.get_order_by_id(oco.id).status == OrderStatus.CANCELED
    assert client.get_open_position("JPM").qty_available == "10"
    check_books(http, multiplier=4)


def test_replacing_a_bracket_entry_carries_its_legs(start_broker: StartBroker) -> None:
    b = start_broker()
    client, http = trading_client(b), admin_client(b)
    set_clock(http, timestamp=SESSION)
    entry = client.submit_order(LimitOrderRequest(
        symbol="AAPL", qty=10, side="buy", limit_price=2.0, time_in_force=TimeInForce.GTC,
        order_class=OrderClass.BRACKET, take_profit=TakeProfitRequest(limit_price=3.0),
        stop_loss=StopLossRequest(stop_price=1.0)))  # fmt: skip
    wait_order(client, entry.id, ("new",))
    moved = client.replace_order_by_id(entry.id, ReplaceOrderRequest(qty=4, limit_price=2.5))
    assert moved.order_class == OrderClass.BRACKET and moved.legs is not None
    assert {str(leg.id) for leg in moved.legs} == {str(leg.id) for leg in entry.legs or []}  # the same legs
    assert all(leg.qty == "4" and leg.status == OrderStatus.HELD for leg in moved.legs)  # sized to the new entry
    client.cancel_order_by_id(moved.id)
    assert all(client.get_order_by_id(leg.id).status == OrderStatus.CANCELED for leg in moved.legs)


def test_a_brackets_or_an_ocos_stop_leg_moves_as_its_take_profit_does(start_broker: StartBroker) -> None:
    """A stop moved to breakeven: the pair claims its shares once, so the replacement is no new sale beside the
    take-profit (before: 403 insufficient qty, the shares its own sibling held counted against it)."""
    b = start_broker()
    client, http = trading_client(b), admin_client(b)
    set_clock(http, timestamp=SESSION)
    entry = client.submit_order(MarketOrderRequest(
        symbol="JPM", qty=10, side="buy", time_in_force=TimeInForce.GTC, order_class=OrderClass.BRACKET,
        take_profit=TakeProfitRequest(limit_price=1000.0), stop_loss=StopLossRequest(stop_price=1.0)))  # fmt: skip
    price = Decimal(wait_order(client, entry.id).filled_avg_price)
    legs = {leg.type: leg for leg in client.get_order_by_id(entry.id).legs or []}
    half = round(price / 2, 2)
    moved = client.replace_order_by_id(legs[OrderType.STOP].id, ReplaceOrderRequest(stop_price=float(half)))
    assert Decimal(moved.stop_price or "0") == half and moved.qty == "10"
    taken = client.replace_order_by_id(legs[OrderType.LIMIT].id, ReplaceOrderRequest(limit_price=999.0))
    assert Decimal(taken.limit_price or "0") == 999
    assert client.get_open_position("JPM").qty_available == "0"  # still one claim of the 10 shares
    with pytest.raises(APIError) as exc:  # a stop for more than the pair holds: refused still
        client.replace_order_by_id(moved.id, ReplaceOrderRequest(qty=11))
    assert exc.value.status_code == 403
    client.cancel_orders()
    oco = client.submit_order(LimitOrderRequest(
        symbol="JPM", qty=10, side="sell", time_in_force=TimeInForce.GTC, order_class=OrderClass.OCO,
        take_profit=TakeProfitRequest(limit_price=1000.0), stop_loss=StopLossRequest(stop_price=1.0)))  # fmt: skip
    wait_order(client, oco.id, ("new",))
    assert oco.legs is not None
    third = round(price / 3, 2)
    stop = client.replace_order_by_id(oco.legs[0].id, ReplaceOrderRequest(stop_price=float(third)))
    assert Decimal(stop.stop_price or "0") == third
    check_books(http, multiplier=4)
