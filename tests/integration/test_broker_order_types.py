"""Each order type through alpaca-py on hand-made daily bars, with the fill bar and price worked out by hand from the
rules the backtest uses (marketboss.orders): an order placed after bar t's close works from bar t+1."""

from __future__ import annotations

import httpx
import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderStatus, TimeInForce
from alpaca.trading.requests import MarketOrderRequest, TrailingStopOrderRequest

from marketboss.local_broker.clock import iso_z
from tests.integration.broker_replay import KEY, SECRET, OrderSpec, Replay, daily_bars, replay, serve

FLAT = (100.0, 101.0, 99.0, 100.0)


def fills_of(result: Replay) -> list[tuple[str, str | None, int, float]]:
    return [(f.client_order_id, f.leg, f.bar, f.price) for f in result.fills]


def test_market_fills_at_the_next_open_and_limits_at_the_better_of_open_and_limit() -> None:
    bars = daily_bars("AAPL", [FLAT, (100.0, 100.5, 98.5, 99.0), (98.0, 99.0, 97.5, 98.5), (98.5, 99.0, 98.0, 98.5)])
    result = replay(bars, [
        OrderSpec(bar=0, symbol="AAPL", client_order_id="market"),
        OrderSpec(bar=0, symbol="AAPL", type="limit", limit_price=99.0, client_order_id="below-open"),
        OrderSpec(bar=1, symbol="AAPL", type="limit", limit_price=99.5, client_order_id="gap"),
        OrderSpec(bar=0, symbol="AAPL", type="limit", limit_price=97.0, time_in_force="gtc", client_order_id="far"),
    ])  # fmt: skip
    assert sorted(fills_of(result)) == [
        ("below-open", None, 1, 99.0),  # the low (98.5) reached 99: filled at the limit
        ("gap", None, 2, 98.0),  # the bar opened below the limit: filled at the open
        ("market", None, 1, 100.0),  # the next bar's open
    ]
    assert result.status["far"] == "new"  # never reached (lows 98.5, 97.5, 98.0 > 97): still working


def test_a_stop_gapped_through_fills_at_the_open() -> None:
    bars = daily_bars("AAPL", [FLAT, (100.0, 100.5, 96.0, 97.0), (93.0, 94.0, 92.0, 93.5)])
    result = replay(bars, [
        OrderSpec(bar=0, symbol="AAPL", client_order_id="entry"),
        OrderSpec(bar=1, symbol="AAPL", side="sell", type="stop", stop_price=95.0, client_order_id="stop"),
        OrderSpec(bar=0, symbol="AAPL", type="stop", stop_price=100.4, client_order_id="buy-stop"),
    ])  # fmt: skip
    assert sorted(fills_of(result)) == [
        ("buy-stop", None, 1, 100.4),  # the high (100.5) crossed 100.4 after an open below it: at the stop
        ("entry", None, 1, 100.0),
        ("stop", None, 2, 93.0),  # opened at 93, below the stop at 95: the open, not the stop
    ]


def test_a_stop_limit_triggered_beyond_its_limit_waits_for_the_limit_from_the_next_bar() -> None:
    bars = daily_bars("AAPL", [FLAT, (103.0, 104.0, 102.4, 103.5), (103.0, 103.2, 102.2, 102.4)])
    spec = OrderSpec(bar=0, symbol="AAPL", type="stop_limit", stop_price=102.0, limit_price=102.5,
                     time_in_force="gtc", client_order_id="stop-limit")  # fmt: skip
    # bar 1 triggers it at its open (103, above the limit); its low 102.4 would fill a limit, but the trigger bar
    # fills only at the trigger price; from bar 2 it is a limit at 102.5: filled at min(open 103, 102.5)
    assert fills_of(replay(bars, [spec])) == [("stop-limit", None, 2, 102.5)]


def test_a_trailing_stop_follows_the_high_and_triggers_when_the_price_turns() -> None:
    bars = daily_bars("AAPL", [
        FLAT, (100.0, 102.0, 99.5, 101.0), (101.0, 106.0, 100.5, 105.0), (105.0, 110.0, 104.0, 109.0),
        (108.0, 108.5, 103.0, 104.0),
    ])  # fmt: skip
    with serve(bars) as (url, state):
        client = TradingClient(KEY, SECRET, paper=True, url_override=url)
        http = httpx.Client(base_url=url, headers={"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET})
        ends = state.market.series["AAPL"].ends

        def close_of(bar: int) -> None:
            assert http.post("/admin/clock", json={"timestamp": iso_z(ends[bar])}).status_code == 200

        close_of(0)
        client.submit_order(MarketOrderRequest(symbol="AAPL", qty=10, side="buy", time_in_force=TimeInForce.DAY))
        close_of(1)
        trail = client.submit_order(TrailingStopOrderRequest(symbol="AAPL", qty=10, side="sell", trail_percent=5,
                                                             time_in_force=TimeInForce.GTC))  # fmt: skip
        assert (trail.hwm, trail.stop_price, trail.trail_percent) == ("101", "95.95", "5")  # from bar 1's close
        close_of(3)
        working = client.get_order_by_id(trail.id)
        assert working.status == OrderStatus.NEW
        assert (working.hwm, working.stop_price) == ("110", "104.5")  # the high-water mark only rose
        close_of(4)
        done = client.get_order_by_id(trail.id)
        assert done.status == OrderStatus.FILLED and float(done.filled_avg_price) == 104.5  # 110 x 0.95 < open 108
        assert client.get_all_positions() == []
        http.close()


def test_a_trailing_price_stop_covering_a_short() -> None:
    bars = daily_bars("AAPL", [FLAT, (100.0, 100.5, 97.0, 97.5), (97.5, 99.5, 97.2, 99.0)])
    result = replay(bars, [
        OrderSpec(bar=0, symbol="AAPL", side="sell", client_order_id="short"),
        OrderSpec(bar=0, symbol="AAPL", type="trailing_stop", trail_price=2.0, time_in_force="gtc",
                  client_order_id="cover"),
    ])  # fmt: skip
    # the mark starts at bar 0's close (100): level 102, not reached on bar 1, whose low takes the mark to 97;
    # bar 2's high 99.5 crosses 99: filled at the level
    assert sorted(fills_of(result)) == [("cover", None, 2, 99.0), ("short", None, 1, 100.0)]


def test_a_bar_that_reaches_both_legs_of_a_bracket_takes_the_stop() -> None:
    bars = daily_bars("AAPL", [FLAT, (100.0, 100.5, 99.5, 100.0), (100.0, 106.0, 94.0, 100.0)])
    spec = OrderSpec(bar=0, symbol="AAPL", take_profit=105.0, stop_loss=95.0, time_in_force="gtc",
                     client_order_id="bracket")  # fmt: skip
    result = replay(bars, [spec])
    assert fills_of(result) == [("bracket", None, 1, 100.0), ("bracket", "stop_loss", 2, 95.0)]
    assert result.status["bracket:take_profit"] == "canceled"  # one-cancels-other


def test_legs_of_an_entry_at_the_open_work_on_that_bar() -> None:
    bars = daily_bars("AAPL", [FLAT, (100.0, 106.0, 99.5, 104.0)])
    result = replay(bars, [OrderSpec(bar=0, symbol="AAPL", take_profit=105.0, stop_loss=95.0, time_in_force="gtc",
                                     client_order_id="b")])  # fmt: skip
    assert fills_of(result) == [("b", None, 1, 100.0), ("b", "take_profit", 1, 105.0)]


def test_a_day_order_expires_after_its_first_session_and_a_gtc_order_stays() -> None:
    bars = daily_bars("AAPL", [FLAT, (100.0, 100.5, 99.0, 100.0), (99.0, 99.5, 94.0, 95.0)])
    result = replay(bars, [
        OrderSpec(bar=0, symbol="AAPL", type="limit", limit_price=96.0, client_order_id="day"),
        OrderSpec(bar=0, symbol="AAPL", type="limit", limit_price=96.0, time_in_force="gtc", client_order_id="gtc"),
    ])  # fmt: skip
    assert fills_of(result) == [("gtc", None, 2, 96.0)]
    assert result.status["day"] == "expired"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "exactly one of trail_percent or trail_price"),
        ({"trail_percent": 5, "trail_price": 1}, "exactly one of trail_percent or trail_price"),
        ({"trail_percent": 100}, "trail_percent must be > 0 and < 100"),
        ({"trail_price": 1.005}, "sub-penny"),
        ({"trail_percent": 5, "time_in_force": "ioc"}, "must be day or gtc"),
        ({"trail_percent": 5, "stop_price": 90}, "stop_price is not allowed"),
        ({"trail_percent": 5, "qty": 1.5}, "fractional orders must be market or limit day orders"),
    ],
)
def test_trailing_stop_requests_are_checked_as_alpaca_checks_them(body: dict[str, object], message: str) -> None:
    with serve(daily_bars("AAPL", [FLAT, FLAT])) as (url, _):
        order = {"symbol": "AAPL", "qty": 1, "side": "sell", "type": "trailing_stop", "time_in_force": "gtc", **body}
        r = httpx.post(f"{url}/v2/orders", json=order, headers={"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET})
        assert r.status_code == 422 and message in r.json()["message"], r.text


def test_partial_fills_fill_their_rest_on_the_same_bar_when_the_clock_jumps_close_to_close() -> None:
    """Partial fills on, the clock set from one daily close to the next (a live replay's): the entry's rest, due
    a fill latency after its partial fill at the open, trades then (it waited for the next event, the close, when
    the market had shut, and expired); the stop-loss reached inside bar 3 fills at the bar's last microsecond, and
    its rest, with no moment of the session left after the latency, at once (it traded at the next open)."""
    bars = daily_bars("AAA", [(100, 101, 99, 100), (100, 101, 99, 100), (100, 101, 99, 100), (99, 99.5, 90, 92),
                              (85, 86, 84, 85)])  # fmt: skip
    result = replay(bars, [OrderSpec(0, "AAA", stop_loss=95.0, time_in_force="gtc", client_order_id="e")],
                    partial_fill_rate=1.0, fill_latency_ms=50.0)  # fmt: skip
    entry = [(f.bar, f.price, f.qty) for f in result.fills if f.leg is None]
    stop = [(f.bar, f.price, f.qty) for f in result.fills if f.leg == "stop_loss"]
    assert len(entry) == 2 and {b for b, _, _ in entry} == {1} and sum(q for _, _, q in entry) == 10
    assert len(stop) == 2 and {b for b, _, _ in stop} == {3} and sum(q for _, _, q in stop) == 10
    assert len({p for _, p, _ in stop}) == 1
    assert result.status == {"e": "filled", "e:stop_loss": "filled"}


@pytest.mark.parametrize(("latency_ms", "delay_s"), [(0.0, 0.0), (50.0, 1.0), (500.0, 60.0), (50.0, 3600.0)])
def test_a_trailing_stop_placed_after_an_entry_filled_at_the_open_trails_that_whole_bar(
    latency_ms: float, delay_s: float
) -> None:
    """The live loop's case: a market buy waiting for bar 2's open fills there after the broker's fill latency and
    its trailing exit is placed later inside the bar. As the backtest sets the exit of an entry filled at the
    open (the whole bar follows the fill), the mark starts at that fill (the open, 100) and bar 2's high (104)
    moves it; bar 3's low (97) then reaches 104 x 0.95 = 98.80. Whatever the latency and the delay: from the last
    close (100) on bar 3 only, it would trail at 95 and hold (as it once did once the latency had passed)."""
    bars = daily_bars("AAPL", [FLAT, FLAT, (100.0, 104.0, 99.5, 103.0), (101.0, 101.5, 97.0, 98.0), FLAT])
    with serve(bars, fill_latency_ms=latency_ms) as (url, state):
        client = TradingClient(KEY, SECRET, paper=True, url_override=url)
        http = httpx.Client(base_url=url, headers={"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET})
        series = state.market.series["AAPL"]

        def clock(body: dict[str, object]) -> None:
            assert http.post("/admin/clock", json=body).status_code == 200

        clock({"timestamp": iso_z(series.starts[2])})  # the open, where the live loop's order goes
        entry = client.submit_order(MarketOrderRequest(symbol="AAPL", qty=10, side="buy",
                                                       time_in_force=TimeInForce.DAY))  # fmt: skip
        if delay_s:
            clock({"seconds": delay_s})
        filled = client.get_order_by_id(entry.id)
        assert filled.status == OrderStatus.FILLED and float(filled.filled_avg_price) == pytest.approx(100.0, abs=0.01)
        trail = client.submit_order(TrailingStopOrderRequest(symbol="AAPL", qty=10, side="sell", trail_percent=5,
                                                             time_in_force=TimeInForce.GTC))  # fmt: skip
        assert float(trail.hwm) == pytest.approx(100.0, abs=0.01)  # the entry's fill, not the close before
        clock({"timestamp": iso_z(series.ends[2])})
        assert client.get_order_by_id(trail.id).hwm == "104"  # the entry's bar moved it
        clock({"timestamp": iso_z(series.ends[3])})
        done = client.get_order_by_id(trail.id)
        assert done.status == OrderStatus.FILLED and float(done.filled_avg_price) == 98.8
        http.close()


def test_a_trailing_stop_placed_inside_a_bar_without_an_entry_at_its_open_starts_at_the_last_close() -> None:
    """A position bought the session before: a trailing stop placed an hour into bar 2 starts at bar 1's close and
    works from bar 3 (the backtest places a signal's order after its bar's close), bar 2's high not counted."""
    bars = daily_bars("AAPL", [FLAT, FLAT, (100.0, 104.0, 99.5, 103.0), (101.0, 101.5, 97.0, 98.0), FLAT])
    with serve(bars, fill_latency_ms=50.0) as (url, state):
        client = TradingClient(KEY, SECRET, paper=True, url_override=url)
        http = httpx.Client(base_url=url, headers={"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET})
        series = state.market.series["AAPL"]

        def clock(body: dict[str, object]) -> None:
            assert http.post("/admin/clock", json=body).status_code == 200

        clock({"timestamp": iso_z(series.starts[1])})
        client.submit_order(MarketOrderRequest(symbol="AAPL", qty=10, side="buy", time_in_force=TimeInForce.DAY))
        clock({"timestamp": iso_z(series.starts[2])})
        clock({"seconds": 3600})
        trail = client.submit_order(TrailingStopOrderRequest(symbol="AAPL", qty=10, side="sell", trail_percent=5,
                                                             time_in_force=TimeInForce.GTC))  # fmt: skip
        assert trail.hwm == "100"  # bar 1's close
        clock({"timestamp": iso_z(series.ends[3])})
        working = client.get_order_by_id(trail.id)
        assert working.status == OrderStatus.NEW and working.hwm == "101.5"  # bar 3's high only: 95 never reached
        http.close()
