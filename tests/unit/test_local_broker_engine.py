"""The local broker's engine driven in memory (MemoryStore, stepped clock, no server): admission, fills, brackets,
expiry, partial fills, and what a failed write leaves behind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import polars as pl
import pytest

from marketboss.local_broker.errors import ApiError
from marketboss.local_broker.store import MemoryStore
from tests.unit.local_broker_world import World, daily_bars, session_open, sessions, world, world_of

D = Decimal


def test_market_buy_fills_at_the_fill_models_price_and_moves_cash_and_position() -> None:
    w = world({"AAPL": [100.0] * 5}, spread_bps=20, slippage_bps=10, commission_per_share=0.01)
    o = w.submit(symbol="AAPL", side="buy", qty="10", type="market", time_in_force="day")
    assert o.status == "accepted" and w.engine.account.positions == {}  # placing is not filling
    # reserved until it fills: the ask 100.10 plus 3% (market_reserve_pct), rounded up to the cent
    assert w.engine.valuation(w.clock.now()).reserved == D("1031.10")
    assert w.engine.step(0.0) == 1
    filled = w.order(o.id)
    # the backtest's fill price: 100 x (1 + (10 bps slippage + 20 bps spread / 2) / 10 000) = 100.20
    assert (filled.status, filled.filled_qty, filled.filled_avg_price) == ("filled", D(10), D("100.2"))
    assert filled.commission == D("0.10")
    assert w.engine.account.cash == D("98997.90")  # 100000 - 1002.00 - 0.10
    pos = w.engine.account.positions["AAPL"]
    assert (pos.qty, pos.avg_entry_price) == (D(10), D("100.2"))
    assert w.engine.valuation(w.clock.now()).reserved == 0
    assert w.store.meta["cash"] == "98997.90"
    assert [(f.type, f.qty, f.price) for f in w.store.fills] == [("fill", D(10), D("100.2"))]


def test_a_limit_order_waits_until_the_price_reaches_it() -> None:
    w = world({"AAPL": [100.0, 99.0, 95.0, 95.0, 95.0]})
    o = w.submit(symbol="AAPL", side="buy", qty="5", type="limit", limit_price="96", time_in_force="gtc")
    assert w.engine.step(0.0) == 0
    assert w.order(o.id).status == "new"
    assert w.go(1) == 0
    assert w.order(o.id).status == "new"
    assert w.go(2) == 1
    filled = w.order(o.id)
    assert (filled.status, filled.filled_avg_price, filled.filled_at) == ("filled", D(95), session_open(2))


def test_a_clock_jump_fills_at_the_first_open_that_reaches_the_limit() -> None:
    w = world({"AAPL": [100.0, 94.0, 99.0, 99.0, 99.0]})
    o = w.submit(symbol="AAPL", side="buy", qty="5", type="limit", limit_price="96", time_in_force="gtc")
    w.go(3)  # straight from day 0 to day 3: day 1's open is visited on the way
    filled = w.order(o.id)
    assert (filled.filled_avg_price, filled.filled_at) == (D(94), session_open(1))


def test_a_brackets_legs_cancel_each_other() -> None:
    w = world({"AAPL": [100.0, 100.0, 106.0, 90.0, 90.0]})
    exits = {"take_profit": {"limit_price": "105"}, "stop_loss": {"stop_price": "95"}}
    parent = w.submit(symbol="AAPL", side="buy", qty="10", type="market", time_in_force="gtc", order_class="bracket",
                      **exits)  # fmt: skip
    tp, sl = w.engine.legs_of(parent.id)
    assert (tp.leg, sl.leg, tp.status, sl.status) == ("take_profit", "stop_loss", "held", "held")
    w.engine.step(0.0)
    assert w.order(parent.id).status == "filled"
    assert (w.order(tp.id).status, w.order(sl.id).status) == ("new", "new")
    assert w.engine.held("AAPL", "sell") == 10  # the OCO pair claims the shares once
    w.go(1)
    assert (w.order(tp.id).status, w.order(sl.id).status) == ("new", "new")
    w.go(2)  # opens at 106, beyond the take-profit: the bar may still reach the stop, which would win
    assert (w.order(tp.id).status, w.order(sl.id).status) == ("new", "new")
    w.go(3)  # day 2 completed without reaching 95: the take-profit filled at its open
    assert (w.order(tp.id).status, w.order(tp.id).filled_avg_price) == ("filled", D(106))
    assert w.order(tp.id).filled_at == session_open(2)
    assert w.order(sl.id).status == "canceled"
    assert w.engine.account.positions == {}
    assert w.engine.account.cash == D(100060)
    w.go(4)  # day 3 reached the stop's price, but the stop is gone
    assert w.order(sl.id).filled_qty == 0


def test_a_bracket_is_checked_against_the_last_trade_before_it_the_close_before_a_bars_open() -> None:
    """Alpaca's rule: a buy's stop-loss at least a tick under the base price (the last trade), its take-profit a
    tick over. Placed at day 1's open (a gap from 100 to 90), the last trade is day 0's close: a stop at 95 is
    taken and trades at that open, as the live loop's bracket sent at the close does. Inside the day, at 90, the
    same bracket is refused; so is one whose take-profit is not over 100 at the open."""
    w = world({"AAPL": [100.0, 90.0, 90.0, 90.0, 90.0]})
    bracket = {"symbol": "AAPL", "side": "buy", "qty": "10", "type": "market", "time_in_force": "gtc",
               "order_class": "bracket", "take_profit": {"limit_price": "110"}, "stop_loss": {"stop_price": "95"}}
    w.clock.set(session_open(1))
    with pytest.raises(ApiError, match=r"take_profit.limit_price must be >= base_price \+ 0.01 \(base_price 100\)"):
        w.submit(**{**bracket, "take_profit": {"limit_price": "100"}})
    parent = w.submit(**bracket)
    w.engine.step(0.0)
    w.clock.set(session_open(1) + 60_000_000)
    with pytest.raises(ApiError, match=r"stop_loss.stop_price must be <= base_price - 0.01 \(base_price 90\)"):
        w.submit(**bracket)
    w.go(2)  # day 1 complete, its path known: the stop-loss traded at its open
    tp, sl = w.engine.legs_of(parent.id)
    assert (w.order(parent.id).filled_avg_price, w.order(sl.id).filled_avg_price) == (D(90), D(90))
    assert (w.order(sl.id).filled_at, w.order(tp.id).status) == (session_open(1), "canceled")
    assert w.engine.account.positions == {}


def test_cancelling_a_leg_cancels_its_sibling_and_an_unfilled_parent_takes_its_legs() -> None:
    w = world({"AAPL": [100.0] * 5})
    bracket = {"order_class": "bracket", "take_profit": {"limit_price": "110"}, "stop_loss": {"stop_price": "90"}}
    filled = w.submit(symbol="AAPL", side="buy", qty="10", type="market", time_in_force="gtc", **bracket)
    w.engine.step(0.0)
    tp, sl = w.engine.legs_of(filled.id)
    w.engine.cancel(sl.id, w.clock.now(), 0.0)
    assert (w.order(tp.id).status, w.order(sl.id).status) == ("canceled", "canceled")
    exits = {"take_profit": {"limit_price": "60"}, "stop_loss": {"stop_price": "40"}}
    waiting = w.submit(symbol="AAPL", side="buy", qty="10", type="limit", limit_price="50", time_in_force="gtc",
                       order_class="bracket", **exits)  # fmt: skip
    w.engine.cancel(waiting.id, w.clock.now(), 0.0)
    assert [leg.status for leg in w.engine.legs_of(waiting.id)] == ["canceled", "canceled"]
    with pytest.raises(ApiError, match='already in "canceled" state'):
        w.engine.cancel(waiting.id, w.clock.now(), 0.0)


def test_a_day_order_expires_at_the_close_and_frees_its_buying_power() -> None:
    w = world({"AAPL": [100.0] * 5})
    o = w.submit(symbol="AAPL", side="buy", qty="10", type="limit", limit_price="90", time_in_force="day")
    w.engine.step(0.0)
    assert w.engine.valuation(w.clock.now()).reserved == D(900)
    w.go(1)
    expired = w.order(o.id)
    close = sessions().next_close(session_open(0))
    assert (expired.status, expired.expired_at) == ("expired", close)
    assert w.engine.book.open == {}
    assert w.engine.valuation(w.clock.now()).reserved == 0
    assert w.engine.account.last_equity == D(100000)


def test_buying_power_rejects_an_order_it_cannot_cover() -> None:
    w = world({"AAPL": [100.0] * 5}, cash=1000.0, multiplier=1)
    with pytest.raises(ApiError, match="insufficient buying power") as exc:
        w.submit(symbol="AAPL", side="buy", qty="10", type="market", time_in_force="day")  # 10 x 103 reserved
    assert exc.value.status == 403
    assert exc.value.extra == {"buying_power": "1000", "cost_basis": "1030"}
    w.submit(symbol="AAPL", side="buy", qty="9", type="market", time_in_force="day")  # 927 of 1000
    with pytest.raises(ApiError, match="insufficient buying power"):  # what is left after the first one's reserve
        w.submit(symbol="AAPL", side="buy", qty="1", type="market", time_in_force="day")
    with pytest.raises(ApiError, match="not allowed to short"):
        w.submit(symbol="AAPL", side="sell", qty="1", type="market", time_in_force="day")
    assert len(w.store.orders) == 1


def test_without_a_fill_latency_a_partial_fills_rest_trades_at_once() -> None:
    """Nothing would wake the book for it (no latency to run out: no deadline), and a stepped clock waits for
    the executor, which waited for the order: a replay of `paper` sat out its five-minute fill timeout."""
    w = world({"AAPL": [100.0] * 5}, partial_fill_rate=1.0, fill_latency_ms=0)
    o = w.submit(symbol="AAPL", side="buy", qty="10", type="market", time_in_force="day", wall=0.0)
    w.engine.step(0.0)
    assert (w.order(o.id).status, w.order(o.id).filled_qty) == ("filled", D(10))
    first, rest = w.store.fills
    assert (first.type, rest.type, rest.cum_qty) == ("partial_fill", "fill", D(10))
    assert w.engine.next_deadline(0.0) is None


def test_a_closing_order_needs_shares_not_already_held_by_other_orders() -> None:
    w = world({"AAPL": [100.0] * 5})
    w.submit(symbol="AAPL", side="buy", qty="10", type="market", time_in_force="day")
    w.engine.step(0.0)
    w.submit(symbol="AAPL", side="sell", qty="6", type="limit", limit_price="200", time_in_force="gtc")
    with pytest.raises(ApiError, match=r"insufficient qty available for order \(requested: 5, available: 4\)"):
        w.submit(symbol="AAPL", side="sell", qty="5", type="market", time_in_force="day")
    assert w.submit(symbol="AAPL", side="sell", qty="4", type="market", time_in_force="day").intent == "sell_to_close"


def test_a_partial_fill_first_then_the_rest_after_the_latency() -> None:
    w = world({"AAPL": [100.0] * 5}, partial_fill_rate=1.0, fill_latency_ms=50)
    o = w.submit(symbol="AAPL", side="buy", qty="10", type="market", time_in_force="day", wall=0.0)
    assert w.engine.step(0.0) == 0  # the latency has not passed
    assert w.engine.next_deadline(0.0) == pytest.approx(0.05)
    assert w.engine.step(0.05) == 1
    part = w.order(o.id)
    assert part.status == "partially_filled" and 2 <= part.filled_qty <= 8
    assert w.engine.step(0.06) == 0  # the rest waits another latency
    assert w.engine.next_deadline(0.05) == pytest.approx(0.10)
    assert w.engine.step(0.10) == 1
    assert (w.order(o.id).status, w.order(o.id).filled_qty) == ("filled", D(10))
    first, rest = w.store.fills
    assert (first.type, first.leaves_qty, rest.type, rest.cum_qty) == ("partial_fill", 10 - first.qty, "fill", D(10))
    assert w.engine.account.positions["AAPL"].qty == 10


def test_a_failed_write_leaves_memory_as_the_store_last_committed(monkeypatch: pytest.MonkeyPatch) -> None:
    w = world({"AAPL": [100.0] * 5})
    o = w.submit(symbol="AAPL", side="buy", qty="10", type="market", time_in_force="day")

    def broken(fill: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(w.store, "add_fill", broken)
    with pytest.raises(OSError, match="disk full"):
        w.engine.step(0.0)
    assert w.engine.account.cash == D(100000) and w.engine.account.positions == {}
    assert w.store.held_positions == {}  # the position written before the fill was rolled back
    assert w.order(o.id).status == "accepted"
    monkeypatch.undo()
    assert w.engine.step(0.0) == 1
    assert w.engine.account.positions["AAPL"].qty == 10


def test_a_restarted_engine_continues_from_the_store() -> None:
    store = MemoryStore()
    w = world({"AAPL": [100.0] * 5}, store=store)
    w.submit(symbol="AAPL", side="buy", qty="10", type="market", time_in_force="day")
    w.engine.step(0.0)
    waiting = w.submit(symbol="AAPL", side="sell", qty="4", type="limit", limit_price="150", time_in_force="gtc")
    again = world({"AAPL": [100.0] * 5}, store=store)
    assert again.engine.account.account_id == w.engine.account.account_id
    assert again.engine.account.cash == D(99000)
    assert again.engine.account.positions["AAPL"].qty == 10
    assert list(again.engine.book.open) == [waiting.id]
    assert again.engine.book.order_seq == 2


def test_an_order_queued_at_the_close_fills_at_the_next_open_when_the_stepped_clock_jumps_past_its_latency() -> None:
    """The live loop's daily replay: an order placed at a session's close, then the clock set straight to the next
    close within the order's (wall-clock) latency. Simulated time has passed the latency many times over: the
    order trades at the next open, as the backtest fills it, instead of staying queued until it expires."""
    w = world({"AAPL": [100.0, 104.0, 104.0, 104.0, 104.0]}, fill_latency_ms=5_000)
    close0 = sessions().next_close(session_open(0))
    w.clock.set(close0)
    w.engine.step(0.0)
    o = w.submit(symbol="AAPL", side="buy", qty="10", type="market", time_in_force="day", wall=0.0)
    w.clock.set(sessions().next_close(session_open(1)))
    assert w.engine.step(0.001) == 1  # 1 ms of wall time: the order's latency has not passed on the wall clock
    filled = w.order(o.id)
    assert (filled.status, filled.filled_at, filled.filled_avg_price) == ("filled", session_open(1), D(104))
    late = w.submit(symbol="AAPL", side="sell", qty="10", type="market", time_in_force="day", wall=0.001)
    assert w.engine.step(0.002) == 0 and w.order(late.id).status == "accepted"  # no simulated time has passed


MINUTE = 60_000_000


def minute_bars(closes: dict[int, float]) -> pl.DataFrame:
    """Flat AAPL bars at these minutes of DAYS[1]'s session (minute index -> price)."""
    start = datetime.fromtimestamp(session_open(1) / 1e6, UTC)
    prices = list(closes.values())
    return pl.DataFrame({"symbol": "AAPL", "timestamp": [start + timedelta(minutes=i) for i in closes],
                         "open": prices, "high": prices, "low": prices, "close": prices, "volume": 1000}
                        ).with_columns(pl.col("timestamp").dt.cast_time_unit("us"))  # fmt: skip


def minute_world(store: MemoryStore) -> World:
    """AAPL minute bars from DAYS[1]'s open: two flat at 100, then one opening at 96 (a gap), flat after."""
    return world_of(minute_bars({0: 100.0, 1: 100.0, 2: 96.0, 3: 96.0}), session_open(1) + MINUTE, store)


@pytest.mark.parametrize("then", ["cancel", "release", "move_on"])
def test_the_clock_held_at_a_minute_bars_end_holds_the_next_bars_open_until_it_is_set_again(then: str) -> None:
    """A replay's cancel at a bar's end: the bar completes there, the next bar's open (a gap through a limit) waits,
    also for a restarted engine; a cancel then ends the order untraded. Let go (the clock set there again, or
    moved on), the open trades the order at the gap's price, at that open."""
    store = MemoryStore()
    w = minute_world(store)
    o = w.submit(symbol="AAPL", side="buy", qty="5", type="limit", limit_price="98", time_in_force="gtc")
    assert w.engine.step(0.0) == 0 and w.order(o.id).status == "new"
    gap = session_open(1) + 2 * MINUTE  # the second bar ends as the third starts
    w.clock.set(gap)
    assert w.engine.step(0.0, hold=True) == 0
    again = minute_world(store)  # restarted: still held
    again.clock.set(gap)
    assert again.engine.opens_held and again.engine.step(0.0) == 0 and again.order(o.id).status == "new"
    if then == "cancel":
        again.engine.cancel(o.id, gap, 0.0)
        again.clock.set(gap + 2 * MINUTE)
        assert again.engine.step(0.0) == 0 and again.order(o.id).status == "canceled"
        return
    if then == "move_on":
        again.clock.set(gap + MINUTE // 2)
    assert again.engine.step(0.0, hold=False if then == "release" else None) == 1
    filled = again.order(o.id)
    assert (filled.status, filled.filled_avg_price, filled.filled_at) == ("filled", D(96), gap)
    assert not again.engine.opens_held and store.meta["opens_held"] == ""


def test_an_order_placed_where_its_symbol_lacks_a_bar_fills_at_the_open_of_its_next_bar() -> None:
    """AAPL has no bar in the third minute (nothing traded): a market buy placed as the second ends waits for the
    fourth's open, where the backtest fills it (it filled at the second's close, the last price). A limit buy at 101
    placed there is not tested against that close either (it bought at 100): it buys at that open too."""
    # the clock at the second bar's end: no third bar starts
    w = world_of(minute_bars({0: 100.0, 1: 100.0, 3: 97.0}), session_open(1) + 2 * MINUTE)
    buy = w.submit(symbol="AAPL", side="buy", qty="5", type="market", time_in_force="day")
    limit = w.submit(symbol="AAPL", side="buy", qty="5", type="limit", limit_price="101", time_in_force="day")
    assert w.engine.step(0.0) == 0 and w.order(buy.id).status == w.order(limit.id).status == "accepted"
    w.clock.set(session_open(1) + 3 * MINUTE + MINUTE // 2)
    assert w.engine.step(0.0) == 2
    for o in (buy, limit):
        assert (w.order(o.id).filled_avg_price, w.order(o.id).filled_at) == (D(97), session_open(1) + 3 * MINUTE)


def test_a_day_order_waiting_for_its_symbols_next_bar_works_through_that_bars_session() -> None:
    """AAPL has no bar on the third day (halted, or a gap in the data): a day market buy placed at the second's
    close waits through the third (no price: nothing traded) and buys at the fourth's open, as the backtest's goes
    live on the symbol's next bar and ends with that bar's session (it expired at the third's close)."""
    bars = daily_bars({"AAPL": [100.0, 101.0, 102.0, 103.0, 104.0]}).filter(
        pl.col("timestamp") != pl.col("timestamp").sort().get(2))  # fmt: skip
    w = world_of(bars, sessions().next_close(session_open(1)))
    o = w.submit(symbol="AAPL", side="buy", qty="5", type="market", time_in_force="day")
    assert w.go(2) == 0
    w.clock.set(sessions().next_close(session_open(2)) + 1)
    assert w.engine.step(0.0) == 0 and w.order(o.id).status == "accepted"  # the third day's close: still working
    assert w.go(3) == 1
    assert (w.order(o.id).filled_avg_price, w.order(o.id).filled_at) == (D(103), session_open(3))
