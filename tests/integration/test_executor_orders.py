"""Every order type through the executor, the local broker and alpaca-py: each order as the broker reports it
(type, prices, time in force, class, legs), exits dropped from a reducing order, exit fills logged under their
signal, trailing exits placed after the fill and again after a crash, and idempotent resumes with exits."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from marketboss.backtest import run_backtest
from marketboss.backtest.arrays import SKIPPED
from marketboss.backtest.engine import REASONS
from marketboss.broker.alpaca import AlpacaBroker
from marketboss.broker.base import Order
from marketboss.data.io import read_jsonl_records, write_bars
from marketboss.data.market import Market
from marketboss.data.synth import synth_bars
from marketboss.execution.executor import Executor
from marketboss.local_broker.process import LocalBroker
from marketboss.orders import buy_stop_limit
from marketboss.signals import Signal, signal_id, signals_to_frame, write_signals
from marketboss.signals.exits import Exits, with_exits
from tests.integration.executor_fixtures import SYMBOLS, broker, broker_orders, executor

#: AAPL falls 15% and MSFT rises 15% at the open of this bar (all prices from it on), JPM stays: exits that sit
#: 5% and 10% from the entries made just before are certain to trade, and nothing else can reach them first.
GAP_BAR = 7


def gap_bars(tmp: Path) -> tuple[Path, pl.DataFrame]:
    bars = synth_bars(SYMBOLS, "2024-01-01", "2024-03-29", "1Day", seed=21)
    cut = bars["timestamp"].unique().sort()[GAP_BAR]
    move = pl.col("symbol").replace_strict({"AAPL": 0.85, "MSFT": 1.15}, default=1.0, return_dtype=pl.Float64)
    factor = pl.when(pl.col("timestamp") >= cut).then(move).otherwise(1.0)
    bars = bars.with_columns(pl.col(c) * factor for c in ("open", "high", "low", "close"))
    path = tmp / "bars.jsonl"
    write_bars(bars, path)
    return path, bars


def signal(bars: pl.DataFrame, symbol: str, bar: int, action: str = "BUY", qty: float = 10, **orders: Any) -> Signal:
    ts = bars["timestamp"].unique().sort()[bar]
    close = bars.filter((pl.col("symbol") == symbol) & (pl.col("timestamp") == ts))["close"][0]
    sid = signal_id("test", {"qty": qty, **orders}, symbol, ts, action)
    return Signal(id=sid, timestamp=ts, symbol=symbol, action=action, quantity=qty, strategy="test", price=close,
                  **orders)  # fmt: skip


def close_of(bars: pl.DataFrame, symbol: str, bar: int) -> float:
    return float(signal(bars, symbol, bar).price or 0.0)


def sdk(lb: LocalBroker) -> AlpacaBroker:
    return AlpacaBroker(lb.key_id, lb.secret_key, lb.base_url, data_url=lb.base_url, is_local=True, timeout=5)


def by_coid(lb: LocalBroker, sig: Signal) -> Order:
    found = sdk(lb).order_by_client_id(f"mb-{sig.id}")
    assert found is not None
    return sdk(lb).get_order(found.id)  # nested: with its legs


def write(tmp: Path, signals: list[Signal]) -> Path:
    path = tmp / "signals.jsonl"
    write_signals(path, signals)
    return path


def r2(x: float) -> float:
    return round(x, 2)


# each case: the signal's order fields from the signal bar's close p; what the broker must report
CASES: dict[str, tuple[Any, dict[str, Any]]] = {
    "market_bracket": (lambda p: {"take_profit": r2(p * 1.3), "stop_loss": r2(p * 0.7)},
                       {"type": "market", "time_in_force": "gtc", "order_class": "bracket"}),
    "market_oto_stop_loss": (lambda p: {"stop_loss": r2(p * 0.7)},
                             {"type": "market", "time_in_force": "gtc", "order_class": "oto"}),
    "market_oto_take_profit": (lambda p: {"take_profit": r2(p * 1.3)},
                               {"type": "market", "time_in_force": "gtc", "order_class": "oto"}),
    "limit_day": (lambda p: {"order_type": "limit", "limit_price": r2(p * 0.5)},
                  {"type": "limit", "time_in_force": "day", "order_class": "simple"}),
    "limit_gtc_bracket": (lambda p: {"order_type": "limit", "limit_price": r2(p * 0.5), "time_in_force": "gtc",
                                     "take_profit": r2(p * 0.6), "stop_loss": r2(p * 0.4)},
                          {"type": "limit", "time_in_force": "gtc", "order_class": "bracket"}),
    "stop": (lambda p: {"order_type": "stop", "stop_price": r2(p * 1.5)},  # a buy stop: collared, as at Alpaca
             {"type": "stop_limit", "time_in_force": "day", "order_class": "simple"}),
    "stop_limit_gtc": (lambda p: {"order_type": "stop_limit", "stop_price": r2(p * 1.5), "limit_price": r2(p * 1.6),
                                  "time_in_force": "gtc"},
                       {"type": "stop_limit", "time_in_force": "gtc", "order_class": "simple"}),
    "trailing_stop": (lambda p: {"order_type": "trailing_stop", "trail_percent": 40.0, "time_in_force": "gtc"},
                      {"type": "trailing_stop", "time_in_force": "gtc", "order_class": "simple"}),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_each_order_type_reaches_the_broker_as_the_signal_says(tmp_path: Path, case: str) -> None:
    fields, want = CASES[case]
    data, bars = gap_bars(tmp_path)
    orders = fields(close_of(bars, "JPM", 2))
    sig = signal(bars, "JPM", 2, **orders)
    with broker(tmp_path, data) as lb:
        executor(tmp_path, lb, write(tmp_path, [sig]), data, fill_timeout=0.5).run()
        got = by_coid(lb, sig)
    assert {k: getattr(got, k) for k in want} == want
    assert (got.symbol, got.side, got.qty) == ("JPM", "buy", 10)
    collar = buy_stop_limit(orders["stop_price"]) if case == "stop" else None  # orders.nb's rule, the broker's
    assert got.limit_price == orders.get("limit_price", collar) and got.trail_percent == orders.get("trail_percent")
    if want["type"] != "trailing_stop":  # a trailing stop's stop_price is the broker's current level
        assert got.stop_price == orders.get("stop_price")
    legs = {leg.type: leg for leg in got.legs}
    expected_legs = {k: v for k, v in (("limit", orders.get("take_profit")), ("stop", orders.get("stop_loss")))
                     if v is not None}  # fmt: skip
    assert {t: (leg.limit_price if t == "limit" else leg.stop_price) for t, leg in legs.items()} == expected_legs
    assert all(leg.side == "sell" and leg.qty == 10 for leg in got.legs)
    trades = read_jsonl_records(tmp_path / "trades.jsonl")
    assert [(t["signal_id"], t["leg"]) for t in trades] == [(sig.id, None)]
    if want["type"] == "market":  # filled: the legs now work for the position
        assert got.status == "filled" and all(leg.status == "new" for leg in got.legs)


def test_a_reducing_order_carries_no_exits_and_cancels_the_open_ones(tmp_path: Path) -> None:
    data, bars = gap_bars(tmp_path)
    p2, p3 = close_of(bars, "JPM", 2), close_of(bars, "JPM", 3)
    buy = signal(bars, "JPM", 2, take_profit=r2(p2 * 1.3), stop_loss=r2(p2 * 0.7))
    sell = signal(bars, "JPM", 3, "SELL", take_profit=r2(p3 * 0.7), stop_loss=r2(p3 * 1.3))  # as with_exits puts
    with broker(tmp_path, data) as lb:
        executor(tmp_path, lb, write(tmp_path, [buy, sell]), data).run()
        entry, close = by_coid(lb, buy), by_coid(lb, sell)
        assert sdk(lb).positions() == {} and sdk(lb).open_orders() == []
    assert (close.order_class, close.legs, close.type, close.time_in_force) == ("simple", (), "market", "day")
    assert close.status == "filled" and close.qty == 10
    assert entry.order_class == "bracket" and {leg.status for leg in entry.legs} == {"canceled"}
    trades = read_jsonl_records(tmp_path / "trades.jsonl")
    assert [(t["signal_id"], t["status"], t["leg"]) for t in trades] == [(buy.id, "filled", None),
                                                                         (sell.id, "filled", None)]  # fmt: skip


def test_exit_fills_are_logged_under_their_signal_with_their_leg(tmp_path: Path) -> None:
    data, bars = gap_bars(tmp_path)
    down, up, later = signal(bars, "AAPL", 5), signal(bars, "MSFT", 5), signal(bars, "JPM", GAP_BAR + 3)
    exits = Exits(stop_loss_pct=5, take_profit_pct=10)
    with broker(tmp_path, data) as lb:
        summary = executor(tmp_path, lb, write(tmp_path, [down, up, later]), data, exits=exits).run()
        aapl, msft = by_coid(lb, down), by_coid(lb, up)
        positions = sdk(lb).positions()
    # AAPL stopped out, MSFT took its profit; JPM's stop-loss filled after its signal, the last: the replay ran on
    # to the end of the data, as the backtest does
    assert not positions
    legs = {(t["signal_id"], t["leg"]): t for t in read_jsonl_records(tmp_path / "trades.jsonl") if t["leg"]}
    backtest = run_backtest(Market.from_bars(bars), with_exits(signals_to_frame([down, up, later]), exits)).fills
    assert set(legs) == {(down.id, "stop_loss"), (up.id, "take_profit"), (later.id, "stop_loss")} == {
        (f["signal_id"], f["leg"]) for f in backtest.filter(pl.col("leg").is_not_null()).iter_rows(named=True)}
    stop, profit = legs[(down.id, "stop_loss")], legs[(up.id, "take_profit")]
    stop_price = round(float(down.price or 0) * 0.95, 2)
    assert stop["expected_price"] == stop_price and stop["filled_price"] <= stop_price
    assert profit["expected_price"] == round(float(up.price or 0) * 1.10, 2)
    assert profit["filled_price"] >= profit["expected_price"]
    assert all(t["qty"] == 10 and t["side"] == "SELL" and t["status"] == "filled" for t in legs.values())
    assert stop["client_order_id"] == next(g.client_order_id for g in aapl.legs if g.type == "stop")
    assert profit["client_order_id"] == next(g.client_order_id for g in msft.legs if g.type == "limit")
    assert {g.type: g.status for g in aapl.legs} == {"stop": "filled", "limit": "canceled"}
    assert summary.exits == {"stop_loss": 2, "take_profit": 1}


def test_a_crash_after_a_bracket_fill_resumes_without_a_second_order_and_follows_its_exits(tmp_path: Path) -> None:
    data, bars = gap_bars(tmp_path)
    down, later = signal(bars, "AAPL", 5), signal(bars, "JPM", GAP_BAR + 3)
    path = write(tmp_path, [down, later])
    exits = Exits(stop_loss_pct=5, take_profit_pct=10)
    with broker(tmp_path, data) as lb:
        first = executor(tmp_path, lb, path, data, exits=exits)
        crash_before_the_first_record(first)
        with pytest.raises(KeyboardInterrupt):
            first.run()
        trades_log = tmp_path / "trades.jsonl"
        assert not trades_log.exists() or read_jsonl_records(trades_log) == []
        executor(tmp_path, lb, path, data, exits=exits).run()
        orders = broker_orders(lb)
    parents = [o for o in orders if o["client_order_id"].startswith("mb-")]
    assert sorted(o["client_order_id"] for o in parents) == sorted([f"mb-{down.id}", f"mb-{later.id}"])
    trades = read_jsonl_records(tmp_path / "trades.jsonl")
    # the resumed entry first; its stop, filled by the time the clock reached JPM's bar, before JPM's order
    assert [(t["signal_id"], t["leg"]) for t in trades] == [(down.id, None), (down.id, "stop_loss"),
                                                            (later.id, None), (later.id, "stop_loss")]  # fmt: skip


def crash_before_the_first_record(ex: Executor) -> None:
    """The process dies after the broker filled the order and before the run wrote anything about it."""

    def die(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    ex._record = die  # type: ignore[method-assign]


# ------------------------------------------------------------------------------------------------ trailing exits
# These need the local broker to accept trailing_stop orders (branch h-broker); they hold against Alpaca as is.


def test_a_trailing_exit_is_placed_for_the_filled_quantity_after_the_entry(tmp_path: Path) -> None:
    data, bars = gap_bars(tmp_path)
    sig = signal(bars, "JPM", 2, trail_percent=40.0)  # JPM falls 30% from its high by the end: it holds
    with broker(tmp_path, data) as lb:
        executor(tmp_path, lb, write(tmp_path, [sig]), data).run()
        entry = by_coid(lb, sig)
        trail = sdk(lb).order_by_client_id(f"mb-{sig.id}-trail")
    assert entry.order_class == "simple" and entry.status == "filled" and entry.legs == ()
    assert trail is not None
    assert (trail.type, trail.side, trail.qty, trail.time_in_force, trail.trail_percent) == (
        "trailing_stop", "sell", 10, "gtc", 40.0)  # fmt: skip
    assert trail.status in ("new", "accepted")


def test_a_trailing_exit_a_crash_kept_from_being_placed_is_placed_on_restart(tmp_path: Path) -> None:
    data, bars = gap_bars(tmp_path)
    sig = signal(bars, "JPM", 2, trail_percent=30.0)
    path = write(tmp_path, [sig])
    with broker(tmp_path, data) as lb:
        first = executor(tmp_path, lb, path, data)

        def die(*args: Any, **kwargs: Any) -> None:
            raise KeyboardInterrupt

        first._place_exit = die  # type: ignore[method-assign]
        with pytest.raises(KeyboardInterrupt):
            first.run()
        assert sdk(lb).order_by_client_id(f"mb-{sig.id}-trail") is None
        assert [t["signal_id"] for t in read_jsonl_records(tmp_path / "trades.jsonl")] == [sig.id]
        again = executor(tmp_path, lb, path, data).run()
        trail = sdk(lb).order_by_client_id(f"mb-{sig.id}-trail")
        executor(tmp_path, lb, path, data).run()  # and once more: nothing new
        orders = broker_orders(lb)
    assert again.already_done == 1
    assert trail is not None and (trail.type, trail.qty, trail.time_in_force) == ("trailing_stop", 10, "gtc")
    assert sorted(o["client_order_id"] for o in orders) == sorted([f"mb-{sig.id}", f"mb-{sig.id}-trail"])


@pytest.mark.parametrize("kind", ["trailing_stop", "stop"])
def test_a_trailing_stop_or_collared_buy_stop_found_after_a_crash_is_adopted_not_refused(tmp_path: Path,
                                                                                         kind: str) -> None:
    """A trailing stop's stop_price is the broker's level; a buy stop comes back a stop-limit (the broker's
    collar, as Alpaca's): both are the intent's order."""
    data, bars = gap_bars(tmp_path)
    fields = ({"trail_percent": 40.0} if kind == "trailing_stop"
              else {"stop_price": r2(close_of(bars, "JPM", 2) * 1.5)})  # fmt: skip
    sig = signal(bars, "JPM", 2, order_type=kind, time_in_force="gtc", **fields)
    path = write(tmp_path, [sig])
    with broker(tmp_path, data) as lb:
        first = executor(tmp_path, lb, path, data, fill_timeout=0.5)
        crash_before_the_first_record(first)
        with pytest.raises(KeyboardInterrupt):
            first.run()
        executor(tmp_path, lb, path, data, fill_timeout=0.5).run()
        orders = broker_orders(lb)
    assert [o["client_order_id"] for o in orders] == [f"mb-{sig.id}"]
    trades = read_jsonl_records(tmp_path / "trades.jsonl")
    # adopted as the broker has it (canceled at the fill timeout, before the crash), not refused as "rejected"
    assert [(t["signal_id"], t["status"], t["reason"]) for t in trades] == [(sig.id, "canceled", None)]


def test_a_sell_after_its_stop_loss_fired_is_skipped_as_in_the_backtest(tmp_path: Path) -> None:
    """The strategy's own exit after its stop already closed the position: the stop's shares count toward it,
    so nothing is sold (no short opens), as the backtest skips it."""
    data, bars = gap_bars(tmp_path)
    entry, own_exit = signal(bars, "AAPL", 5), signal(bars, "AAPL", GAP_BAR + 2, action="SELL")
    with broker(tmp_path, data) as lb:
        executor(tmp_path, lb, write(tmp_path, [entry, own_exit]), data, exits=Exits(stop_loss_pct=5)).run()
        positions = sdk(lb).positions()
    assert "AAPL" not in positions  # flat: not short
    trades = {(t["signal_id"], t["leg"]): t for t in read_jsonl_records(tmp_path / "trades.jsonl")}
    assert trades[(entry.id, "stop_loss")]["status"] == "filled"
    skipped = trades[(own_exit.id, None)]
    assert skipped["status"] == "skipped" and skipped["reason"] == "its exit already traded it"


def test_a_stop_loss_partly_filled_inside_a_daily_bar_fills_its_rest_that_day(tmp_path: Path) -> None:
    """Partial fills on: the stop-loss that a daily bar reaches inside it (not at its open) fills at the bar's last
    microsecond, so its rest, after the fill latency, fell past the close: it traded at the next open, at another
    price. The rest fills that day, at the stop's price, as the backtest fills the whole."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    bars = synth_bars(SYMBOLS, "2024-01-01", "2024-03-29", "1Day", seed=21)
    stamps = bars["timestamp"].unique().sort()
    dip = pl.col("timestamp") == stamps[6]
    bars = bars.with_columns(pl.when(dip & (pl.col("symbol") == "AAPL")).then(pl.col("open") * 0.8)
                             .otherwise(pl.col("low")).alias("low"))  # fmt: skip
    data = tmp_path / "bars.jsonl"
    write_bars(bars, data)
    stop = round(close_of(bars, "AAPL", 2) * 0.9, 2)
    aapl = bars.filter(pl.col("symbol") == "AAPL")
    assert aapl["low"][3:6].min() > stop and aapl["open"][6] > stop > aapl["low"][6]  # reached inside bar 6 only
    entry, later = signal(bars, "AAPL", 2, stop_loss=stop), signal(bars, "JPM", 8)
    with broker(tmp_path, data, partial_fill_rate=1.0, fill_latency_ms=50.0) as lb:
        executor(tmp_path, lb, write(tmp_path, [entry, later]), data).run()
        fills = [f for f in sdk(lb)._trading.get("/account/activities/FILL", {"direction": "asc"})
                 if f["symbol"] == "AAPL" and f["side"] == "sell"]  # fmt: skip
    assert len(fills) == 2 and sum(float(f["qty"]) for f in fills) == 10  # partly, then the rest
    ny = ZoneInfo("America/New_York")
    day = stamps[6].astimezone(ny).date()
    assert {datetime.fromisoformat(f["transaction_time"]).astimezone(ny).date() for f in fills} == {day}
    assert len({f["price"] for f in fills}) == 1
    leg = next(t for t in read_jsonl_records(tmp_path / "trades.jsonl") if t["leg"] == "stop_loss")
    assert (leg["qty"], leg["status"]) == (10, "filled")


def _extreme(bars: pl.DataFrame, symbol: str, first: int, last: int, col: str) -> float:
    """The lowest low or highest high of the symbol's bars first..last (bar indices)."""
    stamps = bars["timestamp"].unique().sort()
    rows = bars.filter((pl.col("symbol") == symbol) & pl.col("timestamp").is_between(stamps[first], stamps[last]))
    return float(rows[col].min() if col == "low" else rows[col].max())  # type: ignore[arg-type]


def test_orders_working_past_their_first_bar_fill_in_a_replay_where_the_backtest_fills_them(tmp_path: Path) -> None:
    """A replay's clock moves on through the bars its working orders need: a gtc limit or stop that its next
    three bars do not reach fills at the later bar the backtest fills it on (before: the clock stood at the
    signal's next open, the order waited out --fill-timeout and was canceled, and nothing after the last signal
    ever traded); a day limit its bar does not reach expires; a gtc order nothing reaches is canceled when the
    data ends, saying so. Fill for fill the backtest's."""
    data, bars = gap_bars(tmp_path)
    limit = r2(_extreme(bars, "JPM", 3, 5, "low") * 0.995)  # below the lows of the 3 bars after the signal's
    stop = r2(_extreme(bars, "JPM", 16, 18, "low") * 0.995)  # a sale of those shares, below the next 3 bars' lows
    sigs = [
        signal(bars, "JPM", 2, order_type="limit", limit_price=limit, time_in_force="gtc"),
        signal(bars, "MSFT", 2, order_type="limit", limit_price=r2(close_of(bars, "MSFT", 2) * 0.5),
               time_in_force="gtc"),  # never reached
        signal(bars, "JPM", 15, action="SELL", order_type="stop", stop_price=stop, time_in_force="gtc"),
        signal(bars, "AAPL", 20, order_type="limit", limit_price=r2(_extreme(bars, "AAPL", 21, 21, "low") * 0.99)),
    ]  # fmt: skip
    with broker(tmp_path, data) as lb:
        executor(tmp_path, lb, write(tmp_path, sigs), data, fill_timeout=5).run()
    paper = {t["signal_id"]: t for t in read_jsonl_records(tmp_path / "trades.jsonl")}
    bt = run_backtest(Market.from_bars(bars), signals_to_frame(sigs), source="signals.jsonl")
    bt_fills = {f["signal_id"]: f for f in bt.fills.iter_rows(named=True)}
    stamps = bars["timestamp"].unique().sort().to_list()
    assert {s.id for s in sigs[::2]} == set(bt_fills)  # the JPM limit and stop filled in the backtest...
    for s in sigs[::2]:  # ... each at least 4 bars after its signal, and so in paper, on the same bar
        assert bt_fills[s.id]["timestamp"] >= stamps[stamps.index(s.timestamp) + 4]
        assert paper[s.id]["status"] == "filled" and paper[s.id]["qty"] == bt_fills[s.id]["qty"] == 10
        assert paper[s.id]["timestamp"][:10] == bt_fills[s.id]["timestamp"].astimezone(UTC).date().isoformat()
        assert paper[s.id]["filled_price"] == pytest.approx(bt_fills[s.id]["price"], rel=2e-3)
    assert bt.orders.filter(pl.col("signal_id") == sigs[1].id)["status"].to_list() == ["open"]
    assert (paper[sigs[1].id]["status"], paper[sigs[1].id]["qty"]) == ("expired", 0)
    assert paper[sigs[1].id]["reason"].startswith("still working when the replay's data ended")
    assert bt.orders.filter(pl.col("signal_id") == sigs[3].id)["status"].to_list() == ["day_ended"]
    assert (paper[sigs[3].id]["status"], paper[sigs[3].id]["qty"]) == ("expired", 0)


def _weight(bars: pl.DataFrame, symbol: str, bar: int, action: str, weight: float, **orders: Any) -> Signal:
    ts = bars["timestamp"].unique().sort()[bar]
    sid = signal_id("test", {"w": weight, **orders}, symbol, ts, action)
    return Signal(id=sid, timestamp=ts, symbol=symbol, action=action, target_weight=weight, strategy="test",
                  price=close_of(bars, symbol, bar), **orders)  # fmt: skip


def test_a_bars_sales_go_before_its_purchases_as_in_the_backtest(tmp_path: Path) -> None:
    """A rotation written purchase first: the sale of MSFT pays for the AAPL purchase on the same bar, as the
    backtest fills reductions first (before: the purchase went first, sized from the 10% of cash left)."""
    data, bars = gap_bars(tmp_path)
    sigs = [_weight(bars, "MSFT", 2, "BUY", 0.9), _weight(bars, "AAPL", 4, "BUY", 0.8),
            _weight(bars, "MSFT", 4, "SELL", 0.0)]  # fmt: skip
    with broker(tmp_path, data) as lb:
        executor(tmp_path, lb, write(tmp_path, sigs), data).run()
    paper = {t["signal_id"]: t for t in read_jsonl_records(tmp_path / "trades.jsonl")}
    bt = {f["signal_id"]: f for f in run_backtest(Market.from_bars(bars), signals_to_frame(sigs)).fills.iter_rows(
        named=True)}  # fmt: skip
    assert {t["status"] for t in paper.values()} == {"filled"} and set(paper) == set(bt)
    for s in sigs:  # sized at the quote, not the open: a share or two apart at most
        assert paper[s.id]["qty"] == pytest.approx(bt[s.id]["qty"], abs=2), s.symbol
    assert bt[sigs[1].id]["qty"] * close_of(bars, "AAPL", 4) > 0.7 * 1_000_000 / 10  # the purchase was paid for


def test_a_sale_that_trades_nothing_leaves_the_exits_working(tmp_path: Path) -> None:
    """A target-weight sale the position is already under (nothing to sell) is skipped and its bracket keeps
    working, as in the backtest, where only a sale that trades ends the exits (before: they were canceled first)."""
    data, bars = gap_bars(tmp_path)
    p = close_of(bars, "JPM", 2)
    entry = _weight(bars, "JPM", 2, "BUY", 0.3, take_profit=r2(p * 1.5), stop_loss=r2(p * 0.5))
    sigs = [entry, _weight(bars, "JPM", 6, "SELL", 0.5)]
    with broker(tmp_path, data) as lb:
        executor(tmp_path, lb, write(tmp_path, sigs), data).run()
        legs = by_coid(lb, entry).legs
    assert [leg.status for leg in legs] == ["new", "new"]  # both still working (before: canceled)
    records = read_jsonl_records(tmp_path / "trades.jsonl")
    assert [(t["status"], t["reason"]) for t in records][1] == ("skipped", REASONS[SKIPPED])


def test_an_entry_filled_bars_after_its_signal_gets_its_trailing_exit_from_the_bar_after_its_fill(
    tmp_path: Path,
) -> None:
    """A gtc limit entry with a trailing exit fills while the replay's clock goes to a later signal: the clock
    stops at each of the entry's bars, so the executor places the exit at the bar after the fill and it trails
    from there, as in the backtest (before: placed where the clock was going, many bars later)."""
    data, bars = gap_bars(tmp_path)
    limit = r2(_extreme(bars, "JPM", 3, 5, "low") * 0.995)
    entry = signal(bars, "JPM", 2, order_type="limit", limit_price=limit, time_in_force="gtc", trail_percent=3.0)
    sigs = [entry, signal(bars, "AAPL", 40)]
    with broker(tmp_path, data) as lb:
        executor(tmp_path, lb, write(tmp_path, sigs), data).run()
    paper = {(t["signal_id"], t["leg"]): t for t in read_jsonl_records(tmp_path / "trades.jsonl")}
    bt = {(f["signal_id"], f["leg"]): f for f in run_backtest(Market.from_bars(bars), signals_to_frame(sigs)).fills
          .iter_rows(named=True)}  # fmt: skip
    stamps = bars["timestamp"].unique().sort().to_list()
    exit_ = (entry.id, "trailing_stop")
    assert stamps.index(bt[exit_]["timestamp"]) < 40 - 1  # it trails out before the clock's next stop
    for key in ((entry.id, None), exit_):
        assert paper[key]["timestamp"][:10] == bt[key]["timestamp"].astimezone(UTC).date().isoformat(), key
        assert paper[key]["qty"] == bt[key]["qty"] == 10


def test_a_stop_entrys_take_profit_and_stop_loss_go_as_an_oco_once_it_fills(tmp_path: Path) -> None:
    """Alpaca takes a bracket on a market or limit entry only: a stop entry with a bracket was refused whole (HTTP
    422 "bracket orders must be market or limit orders", in paper and live) where the backtest traded it. The stop
    entry goes alone; once it fills, its exits go as one OCO, and trade where the backtest's legs do."""
    data, bars = gap_bars(tmp_path)
    entry = r2(_extreme(bars, "JPM", 3, 3, "high") * 0.999)  # reached inside the bar after the signal's
    floor = r2(_extreme(bars, "JPM", 3, 3, "low") - 1.0)  # below that bar's low: reached bars later
    sig = signal(bars, "JPM", 2, order_type="stop", stop_price=entry, time_in_force="gtc",
                 take_profit=r2(entry * 1.5), stop_loss=floor)  # fmt: skip
    with broker(tmp_path, data) as lb:
        executor(tmp_path, lb, write(tmp_path, [sig]), data).run()
        placed = by_coid(lb, sig)
        exits = sdk(lb).order_by_client_id(f"mb-{sig.id}-exits")
        assert exits is not None
        oco = sdk(lb).get_order(exits.id)
    paper = {(t["signal_id"], t["leg"]): t for t in read_jsonl_records(tmp_path / "trades.jsonl")}
    bt = run_backtest(Market.from_bars(bars), signals_to_frame([sig])).fills
    assert {(f["signal_id"], f["leg"]) for f in bt.iter_rows(named=True)} == set(paper) == {
        (sig.id, None), (sig.id, "stop_loss")}  # fmt: skip
    for f in bt.iter_rows(named=True):  # on the backtest's days, at its prices
        t = paper[(f["signal_id"], f["leg"])]
        assert (t["status"], t["qty"]) == ("filled", 10)
        assert t["timestamp"][:10] == f["timestamp"].astimezone(UTC).date().isoformat()
        assert t["filled_price"] == pytest.approx(f["price"], rel=2e-3)
    assert placed.order_class == "simple" and not placed.legs
    assert (oco.order_class, oco.type, oco.limit_price, oco.status) == ("oco", "limit", r2(entry * 1.5), "canceled")
    assert [(g.type, g.stop_price, g.status) for g in oco.legs] == [("stop", floor, "filled")]
