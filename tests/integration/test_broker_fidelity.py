"""What the local broker refuses or reports as Alpaca does, through alpaca-py on a real server: the pattern-day-trader
protection and daytrade_count, the margin multiplier by equity with day-trading buying power, short sales (easy to
borrow only, reserved 3% above the ask, none under $2,000), buy stops collared into stop-limits, account
configurations, and separate rate-limit budgets for trading and market data."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.requests import StockLatestQuoteRequest
from alpaca.trading.enums import OrderType, TimeInForce
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest, StopOrderRequest

from tests.integration.broker_replay import OrderSpec, daily_bars, replay
from tests.integration.conftest import (
    StartBroker,
    admin_client,
    check_books,
    data_client,
    set_clock,
    trading_client,
    wait_order,
)

SESSION = "2024-11-05T15:00:00Z"  # 10:00 New York, a Tuesday session


def round_trip(client, symbol: str) -> None:  # type: ignore[no-untyped-def]
    for side in ("buy", "sell"):
        o = client.submit_order(MarketOrderRequest(symbol=symbol, qty=1, side=side, time_in_force=TimeInForce.DAY))
        wait_order(client, o.id)


def test_pdt_protection_counts_day_trades_and_refuses_a_fourth(start_broker: StartBroker) -> None:
    b = start_broker(cash=20_000)
    client, http = trading_client(b), admin_client(b)
    set_clock(http, timestamp=SESSION)
    acct = client.get_account()
    assert (acct.multiplier, acct.daytrade_count, acct.pattern_day_trader) == ("2", 0, False)  # under $25,000: 2x
    for _ in range(3):
        round_trip(client, "AAPL")
    assert client.get_account().daytrade_count == 3
    with pytest.raises(APIError) as entry:  # pdt_check "entry" (Alpaca's default): no new position
        client.submit_order(MarketOrderRequest(symbol="MSFT", qty=1, side="buy", time_in_force=TimeInForce.DAY))
    assert entry.value.status_code == 403 and entry.value.code == 40310100
    assert "pattern day trading" in str(entry.value)
    config = client.get_account_configurations()
    assert config.pdt_check == "entry"
    config.pdt_check = "exit"
    assert client.set_account_configurations(config).pdt_check == "exit"
    buy = client.submit_order(MarketOrderRequest(symbol="MSFT", qty=2, side="buy", time_in_force=TimeInForce.DAY))
    wait_order(client, buy.id)
    with pytest.raises(APIError) as exit_:  # now the exit of shares bought today is the one refused
        client.submit_order(MarketOrderRequest(symbol="MSFT", qty=1, side="sell", time_in_force=TimeInForce.DAY))
    assert exit_.value.status_code == 403 and exit_.value.code == 40310100
    # the next session: MSFT was bought yesterday, so selling it is no day trade; the count still holds 3
    set_clock(http, timestamp="2024-11-06T15:00:00Z")
    sell = client.submit_order(MarketOrderRequest(symbol="MSFT", qty=2, side="sell", time_in_force=TimeInForce.DAY))
    wait_order(client, sell.id)
    assert client.get_account().daytrade_count == 3
    # five sessions later the day trades have aged out
    set_clock(http, timestamp="2024-11-12T15:00:00Z")
    assert client.get_account().daytrade_count == 0


def test_pdt_protection_can_be_switched_off(start_broker: StartBroker) -> None:
    b = start_broker(cash=20_000, pdt_protection=False)
    client, http = trading_client(b), admin_client(b)
    set_clock(http, timestamp=SESSION)
    for _ in range(4):
        round_trip(client, "JPM")
    acct = client.get_account()
    assert acct.daytrade_count == 4 and acct.pattern_day_trader


def test_day_trading_buying_power_at_multiplier_4(start_broker: StartBroker) -> None:
    b = start_broker(spread_bps=0.0)
    client, http = trading_client(b), admin_client(b)
    set_clock(http, timestamp=SESSION)
    acct = client.get_account()
    assert acct.multiplier == "4"
    assert Decimal(acct.buying_power) == Decimal(acct.daytrading_buying_power) == 400_000
    assert (Decimal(acct.regt_buying_power), Decimal(acct.non_marginable_buying_power)) == (200_000, 100_000)
    buy = wait_order(client, client.submit_order(
        MarketOrderRequest(symbol="AAPL", qty=100, side="buy", time_in_force=TimeInForce.DAY)).id)  # fmt: skip
    cost = Decimal(buy.filled_avg_price) * 100
    acct = client.get_account()
    assert Decimal(acct.daytrading_buying_power) == (400_000 - cost).quantize(Decimal("0.01"), ROUND_FLOOR)
    assert Decimal(acct.buying_power) == Decimal(acct.daytrading_buying_power)
    config = client.get_account_configurations()
    config.max_margin_multiplier = "2"
    client.set_account_configurations(config)
    acct = client.get_account()
    assert acct.multiplier == "2" and acct.buying_power == acct.regt_buying_power
    assert Decimal(acct.daytrading_buying_power) == 0
    config.max_margin_multiplier = "1"  # a cash account by configuration: no short sale, and assets say so
    client.set_account_configurations(config)
    assert client.get_account().multiplier == "1" and client.get_asset("MSFT").shortable is False
    with pytest.raises(APIError) as short:
        client.submit_order(MarketOrderRequest(symbol="MSFT", qty=1, side="sell", time_in_force=TimeInForce.DAY))
    assert short.value.status_code == 403 and "max_margin_multiplier is 1" in str(short.value)  # not "equity below"


def test_short_sales_need_an_easy_to_borrow_asset_and_reserve_3pct_above_the_ask(start_broker: StartBroker) -> None:
    b = start_broker(hard_to_borrow=("JPM",))
    client, http, market = trading_client(b), admin_client(b), data_client(b)
    set_clock(http, timestamp=SESSION)
    jpm, aapl = client.get_asset("JPM"), client.get_asset("AAPL")
    assert (jpm.shortable, jpm.easy_to_borrow, aapl.shortable, aapl.easy_to_borrow) == (False, False, True, True)
    with pytest.raises(APIError) as htb:
        client.submit_order(MarketOrderRequest(symbol="JPM", qty=1, side="sell", time_in_force=TimeInForce.DAY))
    assert htb.value.status_code == 403 and "easy to borrow" in str(htb.value)
    ask = Decimal(str(market.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols="AAPL"))["AAPL"]
                      .ask_price))  # fmt: skip
    per_share = (ask * Decimal("1.03")).quantize(Decimal("0.01"), ROUND_CEILING)
    with pytest.raises(APIError) as big:
        client.submit_order(MarketOrderRequest(symbol="AAPL", qty=100_000, side="sell", time_in_force=TimeInForce.DAY))
    assert big.value.status_code == 403 and Decimal(big.value.response.json()["cost_basis"]) == 100_000 * per_share
    # a short limit below that reserves 3% above the ask too; one above it reserves its limit
    bp = Decimal(client.get_account().buying_power)
    low = client.submit_order(LimitOrderRequest(symbol="AAPL", qty=10, side="sell", limit_price=float(ask * 2),
                                                time_in_force=TimeInForce.GTC))  # fmt: skip
    wait_order(client, low.id, ("new",))
    assert Decimal(client.get_account().buying_power) == bp - 10 * ask * 2
    short = client.submit_order(MarketOrderRequest(symbol="AAPL", qty=5, side="sell", time_in_force=TimeInForce.DAY))
    assert Decimal(wait_order(client, short.id).filled_qty) == 5
    check_books(http, multiplier=4)


def test_no_margin_and_no_shorting_under_2000_of_equity(start_broker: StartBroker) -> None:
    b = start_broker(cash=1_500)
    client, http = trading_client(b), admin_client(b)
    set_clock(http, timestamp=SESSION)
    acct = client.get_account()
    assert acct.multiplier == "1" and not acct.shorting_enabled and Decimal(acct.buying_power) == 1_500
    with pytest.raises(APIError) as exc:
        client.submit_order(MarketOrderRequest(symbol="AAPL", qty=1, side="sell", time_in_force=TimeInForce.DAY))
    assert exc.value.status_code == 403 and "$2,000" in str(exc.value)


def test_account_configurations_suspend_trading_and_shorting(start_broker: StartBroker) -> None:
    b = start_broker()
    client, http = trading_client(b), admin_client(b)
    set_clock(http, timestamp=SESSION)
    r = http.patch("/v2/account/configurations", json={"no_shorting": True, "suspend_trade": "yes"})
    assert r.status_code == 422 and "suspend_trade" in r.json()["message"]
    assert http.get("/v2/account/configurations").json()["no_shorting"] is False  # all or nothing
    assert http.patch("/v2/account/configurations", json={"no_shorting": True}).status_code == 200
    assert not client.get_account().shorting_enabled and not client.get_asset("AAPL").shortable
    with pytest.raises(APIError) as short:
        client.submit_order(MarketOrderRequest(symbol="AAPL", qty=1, side="sell", time_in_force=TimeInForce.DAY))
    assert short.value.status_code == 403 and "no_shorting" in str(short.value)
    assert http.patch("/v2/account/configurations", json={"suspend_trade": True}).status_code == 200
    assert client.get_account().trade_suspended_by_user
    with pytest.raises(APIError) as suspended:
        client.submit_order(MarketOrderRequest(symbol="AAPL", qty=1, side="buy", time_in_force=TimeInForce.DAY))
    assert suspended.value.status_code == 403 and "suspended" in str(suspended.value)


def test_a_buy_stop_becomes_a_stop_limit_collared_above_the_stop(start_broker: StartBroker) -> None:
    plain = start_broker(buy_stop_collar=False)
    set_clock(admin_client(plain), timestamp=SESSION)
    as_is = trading_client(plain).submit_order(StopOrderRequest(symbol="AAPL", qty=1, side="buy", stop_price=5000.0,
                                                                time_in_force=TimeInForce.GTC))  # fmt: skip
    assert as_is.type == OrderType.STOP  # switched off (the backtest's --no-buy-stop-collar): a plain stop
    b = start_broker()  # on by default, as the backtest's
    client, http = trading_client(b), admin_client(b)
    set_clock(http, timestamp=SESSION)
    high = client.submit_order(StopOrderRequest(symbol="AAPL", qty=1, side="buy", stop_price=5000.0,
                                                time_in_force=TimeInForce.GTC))  # fmt: skip
    assert (high.type, high.stop_price, high.limit_price) == (OrderType.STOP_LIMIT, "5000", "5125")  # +2.5% from $50
    low = client.submit_order(StopOrderRequest(symbol="AAPL", qty=1, side="buy", stop_price=40.0,
                                               time_in_force=TimeInForce.GTC))  # fmt: skip
    assert (low.type, low.limit_price) == (OrderType.STOP_LIMIT, "41.6")  # +4% under $50
    sell = client.submit_order(StopOrderRequest(symbol="AAPL", qty=1, side="sell", stop_price=1.0,
                                                time_in_force=TimeInForce.GTC))  # fmt: skip
    assert sell.type == OrderType.STOP and sell.limit_price is None  # sell stops stay stops


def test_a_buy_stop_gapped_through_its_collar_waits_for_the_limit() -> None:
    bars = daily_bars("AAPL", [(100.0, 101.0, 99.0, 100.0), (110.0, 112.0, 109.0, 111.0),
                               (104.0, 105.0, 102.5, 103.0)])  # fmt: skip
    result = replay(bars, [OrderSpec(bar=0, symbol="AAPL", type="stop", stop_price=100.4, time_in_force="gtc",
                                     client_order_id="buy-stop")])  # fmt: skip
    # bar 1 gaps to 110, beyond the collar 100.4 x 1.025 = 102.91: no fill there (a plain stop would buy at 110);
    # bar 2's low reaches the limit: filled at 102.91
    assert [(f.bar, f.price) for f in result.fills] == [(2, 102.91)]


def test_trading_and_market_data_have_rate_limit_budgets_of_their_own(start_broker: StartBroker) -> None:
    b = start_broker(rate_limit=3, data_rate_limit=5)
    http = admin_client(b)
    trading = [http.get("/v2/account").status_code for _ in range(4)]
    data = [http.get("/v2/stocks/quotes/latest", params={"symbols": "AAPL"}) for _ in range(6)]
    assert trading == [200, 200, 200, 429]
    assert [r.status_code for r in data] == [200] * 5 + [429]
    assert data[0].headers["x-ratelimit-limit"] == "5" and data[4].headers["x-ratelimit-remaining"] == "0"

