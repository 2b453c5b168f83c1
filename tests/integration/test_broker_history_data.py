"""Portfolio history, snapshots, historical trades and quotes (synthesised from the bars) and watchlists, through
alpaca-py's TradingClient and StockHistoricalDataClient on a real server."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.requests import (
    StockBarsRequest,
    StockLatestTradeRequest,
    StockQuotesRequest,
    StockSnapshotRequest,
    StockTradesRequest,
)
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.enums import TimeInForce
from alpaca.trading.requests import (
    CreateWatchlistRequest,
    GetPortfolioHistoryRequest,
    MarketOrderRequest,
    UpdateWatchlistRequest,
)

from tests.integration.conftest import StartBroker, admin_client, data_client, set_clock, trading_client, wait_order


def test_portfolio_history_follows_the_equity_day_by_day_and_hour_by_hour(start_broker: StartBroker) -> None:
    b = start_broker(spread_bps=0.0)
    client, http = trading_client(b), admin_client(b)
    set_clock(http, timestamp="2024-11-05T15:00:00Z")  # Tuesday 10:00 New York
    buy = client.submit_order(MarketOrderRequest(symbol="AAPL", qty=100, side="buy", time_in_force=TimeInForce.DAY))
    wait_order(client, buy.id)
    set_clock(http, timestamp="2024-11-08T21:30:00Z")  # Friday, after the close
    equity_now = float(client.get_account().equity)
    daily = client.get_portfolio_history(GetPortfolioHistoryRequest(period="1W", timeframe="1D"))
    assert daily.timeframe == "1D" and len(daily.timestamp) == len(daily.equity) == 5  # Mon..Fri sessions
    days = [datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H") for t in daily.timestamp]
    assert days == ["2024-11-04 05", "2024-11-05 05", "2024-11-06 05", "2024-11-07 05", "2024-11-08 05"]  # midnight ET
    assert daily.equity[0] == daily.base_value == 100_000  # Monday: nothing held yet
    assert daily.equity[-1] == pytest.approx(equity_now, abs=0.01)  # Friday's close is the account now
    assert daily.profit_loss[-1] == pytest.approx(equity_now - 100_000, abs=0.01)
    assert daily.profit_loss_pct[-1] == pytest.approx((equity_now - 100_000) / 100_000, rel=1e-6)
    assert len(set(daily.equity[1:])) > 1  # the held shares move the equity day by day
    hourly = client.get_portfolio_history(GetPortfolioHistoryRequest(period="1D", timeframe="1H"))
    assert [b - a for a, b in zip(hourly.timestamp, hourly.timestamp[1:], strict=False)] == [3600] * 6
    assert hourly.equity[-1] == pytest.approx(equity_now, abs=0.01)  # 15:30 -> 16:00 ends at the close
    r = http.get("/v2/account/portfolio/history", params={"period": "1X"})
    assert r.status_code == 422 and "period" in r.json()["message"]


def test_snapshots_and_synthetic_trades_and_quotes_agree_with_the_bars(start_broker: StartBroker) -> None:
    b = start_broker(spread_bps=10.0)
    market, http = data_client(b), admin_client(b)
    set_clock(http, timestamp="2024-11-08T21:30:00Z")
    bars = market.get_stock_bars(StockBarsRequest(symbol_or_symbols="AAPL", timeframe=TimeFrame.Day,
                                                  start=datetime(2024, 11, 4, tzinfo=UTC))).data["AAPL"]  # fmt: skip
    assert len(bars) == 5
    snaps = market.get_stock_snapshot(StockSnapshotRequest(symbol_or_symbols=["AAPL", "MSFT"]))
    snap = snaps["AAPL"]
    assert set(snaps) == {"AAPL", "MSFT"}
    latest = market.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols="AAPL"))["AAPL"]
    assert snap.latest_trade.price == latest.price == pytest.approx(bars[-1].close, abs=0.005)
    assert snap.latest_quote.bid_price < snap.latest_trade.price < snap.latest_quote.ask_price
    assert snap.daily_bar.timestamp == bars[-1].timestamp and snap.previous_daily_bar.timestamp == bars[-2].timestamp
    assert snap.minute_bar is None  # the bars file holds daily bars only
    window = {"symbol_or_symbols": "AAPL", "start": datetime(2024, 11, 4, tzinfo=UTC),
              "end": datetime(2024, 11, 9, tzinfo=UTC)}  # fmt: skip
    trades = market.get_stock_trades(StockTradesRequest(**window)).data["AAPL"]
    assert len(trades) == 4 * len(bars)  # four synthetic trades a bar
    for i, bar in enumerate(bars):
        prices = [t.price for t in trades[4 * i : 4 * i + 4]]
        assert prices[0] == pytest.approx(bar.open, abs=0.005) and prices[-1] == pytest.approx(bar.close, abs=0.005)
        assert max(prices) == pytest.approx(bar.high, abs=0.005) and min(prices) == pytest.approx(bar.low, abs=0.005)
        assert sum(t.size for t in trades[4 * i : 4 * i + 4]) == bar.volume
    assert [t.timestamp for t in trades] == sorted(t.timestamp for t in trades)
    quotes = market.get_stock_quotes(StockQuotesRequest(**window)).data["AAPL"]
    assert [q.timestamp for q in quotes] == [t.timestamp for t in trades]
    assert all(q.bid_price <= t.price <= q.ask_price for q, t in zip(quotes, trades, strict=True))
    # pages of 3, followed by their tokens, give the whole list once, in order
    params = {"symbols": "AAPL,MSFT", "start": "2024-11-04T00:00:00Z", "end": "2024-11-09T00:00:00Z"}
    whole = http.get("/v2/stocks/trades", params={**params, "limit": 10_000}).json()
    paged: dict[str, list[dict[str, object]]] = {}
    token = None
    while True:
        page = http.get("/v2/stocks/trades", params={**params, "limit": 3, **({"page_token": token} if token else {})})
        body = page.json()
        for sym, rows in body["trades"].items():
            paged.setdefault(sym, []).extend(rows)
        token = body["next_page_token"]
        if token is None:
            break
    assert paged == whole["trades"] and len(paged["MSFT"]) == 20
    future = http.get("/v2/stocks/AAPL/trades", params={"start": "2024-11-11T00:00:00Z"}).json()
    assert future == {"symbol": "AAPL", "trades": [], "next_page_token": None}  # nothing after the simulated now
    # one symbol's bars in its own form (before: 404 where its trades, quotes and latest bar answered)
    daily = {"timeframe": "1Day", "start": "2024-11-04T00:00:00Z"}
    own = http.get("/v2/stocks/AAPL/bars", params=daily).json()
    assert own["symbol"] == "AAPL" and own["next_page_token"] is None
    assert own["bars"] == http.get("/v2/stocks/bars", params={**daily, "symbols": "AAPL"}).json()["bars"]["AAPL"]
    assert len(own["bars"]) == len(bars) and own["bars"][-1]["c"] == pytest.approx(bars[-1].close)
    assert http.get("/v2/stocks/ZZZZ/bars", params=daily).json()["bars"] == []


def test_watchlists_crud(start_broker: StartBroker) -> None:
    b = start_broker()
    client, http = trading_client(b), admin_client(b)
    w = client.create_watchlist(CreateWatchlistRequest(name="tech", symbols=["AAPL", "MSFT"]))
    assert w.name == "tech" and [a.symbol for a in w.assets] == ["AAPL", "MSFT"]
    with pytest.raises(APIError) as dup:
        client.create_watchlist(CreateWatchlistRequest(name="tech", symbols=[]))
    assert dup.value.status_code == 422
    with pytest.raises(APIError) as unknown:
        client.create_watchlist(CreateWatchlistRequest(name="other", symbols=["NOPE"]))
    assert unknown.value.status_code == 422 and "NOPE" in str(unknown.value)
    w = client.add_asset_to_watchlist_by_id(w.id, "JPM")
    assert [a.symbol for a in w.assets] == ["AAPL", "MSFT", "JPM"]
    w = client.remove_asset_from_watchlist_by_id(w.id, "MSFT")
    assert [a.symbol for a in w.assets] == ["AAPL", "JPM"]
    w = client.update_watchlist_by_id(w.id, UpdateWatchlistRequest(name="banks", symbols=["JPM"]))
    assert (w.name, [a.symbol for a in client.get_watchlist_by_id(w.id).assets]) == ("banks", ["JPM"])
    assert [x.name for x in client.get_watchlists()] == ["banks"]
    client.delete_watchlist_by_id(w.id)
    assert client.get_watchlists() == []
    assert http.get(f"/v2/watchlists/{w.id}").status_code == 404


def test_history_and_data_answer_bad_queries_with_4xx(start_broker: StartBroker) -> None:
    http = admin_client(start_broker())
    for path, params in [
        ("/v2/account/portfolio/history", {"timeframe": "2H"}),
        ("/v2/account/portfolio/history", {"start": "2024-11-08", "end": "2024-11-01"}),
        ("/v2/stocks/trades", {"symbols": "AAPL", "page_token": "!!"}),
        ("/v2/stocks/quotes", {"symbols": "AAPL", "limit": "0"}),
        ("/v2/stocks/snapshots", {}),
        ("/v2/stocks/%20/snapshot", {}),
    ]:
        r = http.get(path, params=params)
        assert 400 <= r.status_code < 500, (path, params, r.text)
        assert isinstance(r.json()["code"], int)
    assert Decimal(http.get("/v2/account").json()["cash"]) == 100_000
