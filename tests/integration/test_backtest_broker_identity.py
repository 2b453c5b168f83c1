"""What you backtest is what you trade: random orders of every type on random bar paths give the same fills in the
backtest (run_backtest of the signals) and on the local broker replaying the same bars through alpaca-py: the
same bar, side, quantity, leg and price, to the cent's rounding.

In the first test each symbol carries one order, so that several orders run side by side on one bar clock; the
second scales into one position with several entries on the same side, brackets among them: each bracket's legs
cover their own entry's shares, on both. Brackets are gtc, as the executor sends entries with exits. A trailing exit
(no leg at Alpaca: the executor places it once its entry filled) is checked through the executor's replay itself."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketboss.backtest import BacktestConfig, run_backtest
from marketboss.data.io import read_jsonl_records, write_bars
from marketboss.signals import ORDER_SCHEMA, SIGNAL_SCHEMA, Signal, read_signals_frame, signal_id, write_signals
from tests.integration.broker_replay import OrderSpec, daily_bars, replay_fills
from tests.integration.executor_fixtures import broker, executor
from tests.integration.test_broker_bar_rules import OHLC, bar_paths, cents

SYMBOLS = ("AAA", "BBB", "CCC")
KINDS = ("market", "limit", "stop", "stop_limit", "trailing_stop", "bracket")


@st.composite
def order(draw: st.DrawFn, symbol: str, bars: list[OHLC], buy: bool | None = None, kinds: tuple[str, ...] = KINDS,
          name: str = "") -> OrderSpec:
    """One valid order (the signal contract's rules) of one of `kinds` (buying or selling: `buy`, else drawn),
    placed after a bar that is not the last, priced around that bar's close."""
    t0 = draw(st.integers(0, len(bars) - 2))
    ref = bars[t0][3]
    buy = draw(st.booleans()) if buy is None else buy
    kind = draw(st.sampled_from(kinds))
    tif = draw(st.sampled_from(["day", "gtc"]))
    price = st.integers(-500, 500).map(lambda c: cents(ref + c / 100))
    spec: dict[str, Any] = {"bar": t0, "symbol": symbol, "side": "buy" if buy else "sell", "time_in_force": tif,
                            "client_order_id": f"sig-{symbol}{name}", "qty": draw(st.integers(1, 20))}  # fmt: skip
    if kind in ("limit", "stop"):
        spec |= {"type": kind, f"{kind}_price": draw(price)}
    elif kind == "stop_limit":
        stop, limit = draw(price), draw(price)
        spec |= {"type": kind, "stop_price": stop, "limit_price": max(stop, limit) if buy else min(stop, limit)}
    elif kind == "trailing_stop":
        spec |= {"type": kind, "trail_percent": draw(st.integers(1, 20)) / 2}
    elif kind == "bracket":
        entry = draw(st.sampled_from(["market", "limit"]))
        limit = draw(price) if entry == "limit" else None
        base = limit if limit is not None else ref
        up, down = draw(st.integers(1, 600)) / 100, draw(st.integers(1, 600)) / 100
        take, stop = (cents(base + up), cents(base - down)) if buy else (cents(base - up), cents(base + down))
        spec |= {"type": entry, "limit_price": limit, "time_in_force": "gtc"}
        if (take > base > stop) if buy else (take < base < stop):
            spec |= {"take_profit": take, "stop_loss": stop}
    return OrderSpec(**spec)


def signal(o: OrderSpec, bars: pl.DataFrame) -> dict[str, Any]:
    """The signal that asks for the order: stamped at its bar, priced at that bar's close, validated."""
    mine = bars.filter(pl.col("symbol") == o.symbol)
    row: dict[str, Any] = {
        "id": o.client_order_id, "timestamp": mine["timestamp"][o.bar], "symbol": o.symbol,
        "action": o.side.upper(), "quantity": float(o.qty), "strategy": "identity", "price": mine["close"][o.bar],
        "target_weight": None, "order_type": o.type, "time_in_force": o.time_in_force, "limit_price": o.limit_price,
        "stop_price": o.stop_price, "trail_percent": o.trail_percent, "take_profit": o.take_profit,
        "stop_loss": o.stop_loss,
    }  # fmt: skip
    Signal.model_validate(row)  # a signal the contract accepts
    return row


Fill = tuple[str, datetime, str, float, str | None, float]


def backtest_fills(bars: pl.DataFrame, orders: list[OrderSpec], buy_stop_collar: bool = True) -> list[Fill]:
    schema = {**SIGNAL_SCHEMA, **ORDER_SCHEMA}
    signals = pl.DataFrame([signal(o, bars) for o in orders], schema=schema).sort("timestamp", "symbol")
    res = run_backtest(bars, signals, BacktestConfig(cash=1e9, buy_stop_collar=buy_stop_collar))
    return sorted((r["symbol"], r["timestamp"], r["side"].lower(), r["qty"], r["leg"], round(r["price"], 6))
                  for r in res.fills.iter_rows(named=True))  # fmt: skip


def broker_fills(bars: pl.DataFrame, orders: list[OrderSpec], buy_stop_collar: bool = True) -> list[Fill]:
    return sorted((f.symbol, f.timestamp, f.side, f.qty, f.leg, round(f.price, 6))
                  for f in replay_fills(bars, orders, buy_stop_collar=buy_stop_collar))  # fmt: skip


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), n=st.integers(1, len(SYMBOLS)))
def test_the_backtest_and_the_local_broker_fill_every_order_type_the_same(data: st.DataObject, n: int) -> None:
    frames, orders = [], []
    length = data.draw(st.integers(3, 10))
    for symbol in SYMBOLS[:n]:
        path = data.draw(bar_paths().filter(lambda p: len(p) >= length).map(lambda p: p[:length]))
        frames.append(daily_bars(symbol, path))
        orders.append(data.draw(order(symbol, path)))
    bars = pl.concat(frames).sort("timestamp", "symbol")
    assert backtest_fills(bars, orders) == broker_fills(bars, orders)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), n=st.integers(2, 4), buy=st.booleans())
def test_scaling_in_with_brackets_fills_the_same_in_the_backtest_and_on_the_local_broker(
    data: st.DataObject, n: int, buy: bool
) -> None:
    """Entries on one side of one symbol (market, limit or bracketed), whichever bars they fill on: each bracket's
    legs trade its own entry's shares, those of the other entries untouched."""
    path = data.draw(bar_paths().filter(lambda p: len(p) >= 4))
    bars = daily_bars("AAA", path)
    orders = [data.draw(order("AAA", path, buy, ("market", "limit", "bracket"), f"-{i}")) for i in range(n)]
    orders.sort(key=lambda o: o.bar)  # signals in time order, as a strategy writes them
    assert backtest_fills(bars, orders) == broker_fills(bars, orders)


def test_two_brackets_on_one_position_each_close_their_own_entry() -> None:
    """10 shares with a take-profit at 110, then 5 with one at 106: bar 3 reaches 106 and sells the 5, bar 4
    reaches 110 and sells the 10 (the position's exits were once the last entry's, selling all 15 at 106)."""
    bars = daily_bars("AAA", [(100.0, 100.5, 99.5, 100.0), (100.0, 100.5, 99.5, 100.0), (101.0, 101.5, 100.5, 101.0),
                              (104.0, 107.0, 103.0, 105.0), (108.0, 111.0, 107.0, 109.0)])  # fmt: skip
    first = OrderSpec(bar=0, symbol="AAA", qty=10, take_profit=110.0, stop_loss=95.0, time_in_force="gtc",
                      client_order_id="a")  # fmt: skip
    second = OrderSpec(bar=1, symbol="AAA", qty=5, take_profit=106.0, stop_loss=97.0, time_in_force="gtc",
                       client_order_id="b")  # fmt: skip
    ts = bars["timestamp"]
    expected = sorted([("AAA", ts[1], "buy", 10.0, None, 100.0), ("AAA", ts[2], "buy", 5.0, None, 101.0),
                       ("AAA", ts[3], "sell", 5.0, "take_profit", 106.0),
                       ("AAA", ts[4], "sell", 10.0, "take_profit", 110.0)])  # fmt: skip
    assert backtest_fills(bars, [first, second]) == broker_fills(bars, [first, second]) == expected


@pytest.mark.parametrize("collar", [True, False])
def test_a_buy_stop_gapping_past_its_collar_waits_in_the_backtest_as_on_the_broker(collar: bool) -> None:
    """Alpaca's collar (on by default in both): bar 1 gaps to 110, beyond the stop 100.40's collar 102.91, so
    nothing is bought there and the order waits as a limit that bar 2 reaches; switched off in both, the stop
    buys at bar 1's open."""
    bars = daily_bars("AAA", [(100.0, 101.0, 99.0, 100.0), (110.0, 112.0, 109.0, 111.0),
                              (104.0, 105.0, 102.5, 103.0)])  # fmt: skip
    stop = OrderSpec(bar=0, symbol="AAA", type="stop", stop_price=100.4, time_in_force="gtc", client_order_id="s")
    bar, price = (2, 102.91) if collar else (1, 110.0)
    expected = [("AAA", bars["timestamp"][bar], "buy", 10.0, None, price)]
    assert backtest_fills(bars, [stop], collar) == broker_fills(bars, [stop], collar) == expected


def _daily_data(tmp_path: Path, paths: dict[str, list[OHLC]]) -> tuple[pl.DataFrame, Path, pl.Series]:
    """Daily bars of these paths, written for the broker: (bars, their file, the days)."""
    bars = pl.concat([daily_bars(sym, path) for sym, path in paths.items()]).sort("timestamp", "symbol")
    data = tmp_path / "bars.jsonl"
    write_bars(bars, data)
    return bars, data, bars["timestamp"].unique().sort()


def test_a_trailing_exit_trails_from_its_entrys_open_on_the_entry_bar_in_paper_as_in_the_backtest(
    tmp_path: Path,
) -> None:
    """`--trail-percent` (3%) on market entries, paper-traded by the executor on the local broker's replay with a
    fill latency: the trailing stop it places once the entry filled at the bar's open works on that bar, its mark
    starting at the open and moved by the bar's high, as the backtest's exit does. AAA gaps up to 104: out at
    100.88 on the entry bar (from the last close, 100, it would trail at 97 and never trade); BBB's entry bar
    takes the mark to 110, the next bar trades 106.70; CCC gaps down to 95 and holds (from the last close it
    would sell at the open). The trailing stop was once working only from the next bar, marked at the last close."""
    flat = (100.0, 100.5, 99.5, 100.0)
    paths = {
        "AAA": [flat, flat, (104.0, 104.5, 100.5, 101.0), *[(101.0, 101.5, 100.5, 101.0)] * 7],
        "BBB": [*[flat] * 4, (100.0, 110.0, 99.0, 109.0), (108.0, 108.5, 105.0, 106.0),
                *[(106.0, 106.5, 105.5, 106.0)] * 4],
        "CCC": [*[flat] * 6, (95.0, 95.5, 94.0, 95.0), *[(95.0, 95.5, 94.5, 95.0)] * 3],
        "ZZZ": [flat] * 10,
    }  # fmt: skip
    bars, data, days = _daily_data(tmp_path, paths)

    def buy(symbol: str, bar: int, **exits: Any) -> Signal:
        ts = days[bar]
        return Signal(id=signal_id("trail", exits, symbol, ts, "BUY"), timestamp=ts, symbol=symbol, action="BUY",
                      quantity=10, strategy="trail", price=paths[symbol][bar][3], **exits)  # fmt: skip

    # each entry's trailing stop is placed just before the replay moves the clock on (ZZZ's moves it past the rest)
    signals = tmp_path / "signals.jsonl"
    write_signals(signals, [buy("AAA", 1, trail_percent=3.0), buy("BBB", 3, trail_percent=3.0),
                            buy("CCC", 5, trail_percent=3.0), buy("ZZZ", 8)])  # fmt: skip
    ny = ZoneInfo("America/New_York")
    res = run_backtest(bars, read_signals_frame(signals), BacktestConfig(cash=1e6))
    backtest = sorted((r["symbol"], r["timestamp"].astimezone(ny).date(), r["side"], r["qty"], r["leg"],
                       round(r["price"], 6)) for r in res.fills.iter_rows(named=True))  # fmt: skip
    with broker(tmp_path, data, spread_bps=0.0, fill_latency_ms=500.0) as lb:
        executor(tmp_path, lb, signals, data).run()
    paper = sorted((t["symbol"], datetime.fromisoformat(t["timestamp"]).astimezone(ny).date(), t["side"], t["qty"],
                    t["leg"], round(t["filled_price"], 6))
                   for t in read_jsonl_records(tmp_path / "trades.jsonl") if t["status"] == "filled")  # fmt: skip
    day = [d.astimezone(ny).date() for d in days]
    assert backtest == paper == sorted([
        ("AAA", day[2], "BUY", 10.0, None, 104.0), ("AAA", day[2], "SELL", 10.0, "trailing_stop", 100.88),
        ("BBB", day[4], "BUY", 10.0, None, 100.0), ("BBB", day[5], "SELL", 10.0, "trailing_stop", 106.7),
        ("CCC", day[6], "BUY", 10.0, None, 95.0), ("ZZZ", day[9], "BUY", 10.0, None, 100.0),
    ])  # fmt: skip


def test_exits_work_on_past_a_day_entrys_session_and_end_when_canceled_or_reduced_in_paper_as_in_the_backtest(
    tmp_path: Path,
) -> None:
    """Paper-traded by the executor on the local broker's replay, against the backtest of the same file:
    AAA, a day limit entry with a bracket, fills the next morning and its take-profit trades three sessions later
    (a day limit went as Alpaca's bracket, whose legs end with its session: they expired that evening, and the
    position was held on); CCC, the same entry, then a CANCEL of it once filled: its exits end and the price
    that reaches its take-profit later trades nothing (the CANCEL found no exits: "already filled"); BBB, a
    market bracket, then a resting gtc stop sale of the position far below: its exits end as the sale goes live
    (in paper the executor cancels them before sending it; the backtest ended them only when the sale filled);
    DDD, a day limit filled at the open whose take-profit trades on that bar (its exits are placed at the replay's
    stop there: without the broker's fill latency, which `paper` leaves out of a replay of its own)."""
    flat, up = (100.0, 100.5, 99.5, 100.0), (100.0, 111.0, 99.5, 110.0)
    paths = {
        "AAA": [*[flat] * 5, (100.0, 106.0, 99.5, 105.5), *[(105.5, 106.0, 105.0, 105.5)] * 4],
        "BBB": [*[flat] * 6, up, *[(110.0, 110.5, 109.5, 110.0)] * 3],
        "CCC": [*[flat] * 6, up, *[(110.0, 110.5, 109.5, 110.0)] * 3],
        "DDD": [flat, flat, (100.0, 106.0, 99.5, 105.5), *[(105.5, 106.0, 105.0, 105.5)] * 7],
        "ZZZ": [flat] * 10,
    }  # fmt: skip
    bars, data, days = _daily_data(tmp_path, paths)

    def sig(symbol: str, bar: int, action: str, **fields: Any) -> Signal:
        ts = days[bar]
        price = None if action == "CANCEL" else paths[symbol][bar][3]
        quantity = None if action == "CANCEL" else 10
        return Signal(id=signal_id("exits", fields, symbol, ts, action), timestamp=ts, symbol=symbol, action=action,
                      quantity=quantity, strategy="exits", price=price, **fields)  # fmt: skip

    day_limit = {"order_type": "limit", "limit_price": 100.5, "take_profit": 105.0, "stop_loss": 95.0}
    aaa, ccc = sig("AAA", 1, "BUY", **day_limit), sig("CCC", 1, "BUY", **{**day_limit, "take_profit": 110.0})
    signals = tmp_path / "signals.jsonl"
    write_signals(signals, [
        aaa, sig("BBB", 1, "BUY", take_profit=110.0, stop_loss=90.0), ccc, sig("DDD", 1, "BUY", **day_limit),
        sig("BBB", 3, "SELL", order_type="stop", stop_price=50.0, time_in_force="gtc"),
        sig("CCC", 3, "CANCEL", cancels=ccc.id), sig("ZZZ", 8, "BUY"),
    ])  # fmt: skip
    ny = ZoneInfo("America/New_York")
    res = run_backtest(bars, read_signals_frame(signals), BacktestConfig(cash=1e6))
    backtest = sorted((r["symbol"], r["timestamp"].astimezone(ny).date(), r["side"], r["qty"], r["leg"],
                       round(r["price"], 6)) for r in res.fills.iter_rows(named=True))  # fmt: skip
    with broker(tmp_path, data, spread_bps=0.0) as lb:
        executor(tmp_path, lb, signals, data).run()
    records = read_jsonl_records(tmp_path / "trades.jsonl")
    paper = sorted((t["symbol"], datetime.fromisoformat(t["timestamp"]).astimezone(ny).date(), t["side"], t["qty"],
                    t["leg"], round(t["filled_price"], 6)) for t in records if t["status"] == "filled")  # fmt: skip
    day = [d.astimezone(ny).date() for d in days]
    assert backtest == paper == sorted([
        ("AAA", day[2], "BUY", 10.0, None, 100.0), ("AAA", day[5], "SELL", 10.0, "take_profit", 105.0),
        ("BBB", day[2], "BUY", 10.0, None, 100.0), ("CCC", day[2], "BUY", 10.0, None, 100.0),
        ("DDD", day[2], "BUY", 10.0, None, 100.0), ("DDD", day[2], "SELL", 10.0, "take_profit", 105.0),
        ("ZZZ", day[9], "BUY", 10.0, None, 100.0),
    ])  # fmt: skip
    canceled = [t for t in records if t["side"] == "CANCEL"]
    assert [t["status"] for t in canceled] == ["canceled"] and "exits" in canceled[0]["reason"]


def test_a_signal_on_the_last_bar_of_the_data_expires_in_paper_as_in_the_backtest(tmp_path: Path) -> None:
    """Nothing in the replay's data comes after the last bar to fill it at: the backtest expires its signal, and
    paper records it expired without sending it. Before, it was sent at the clock's time, an earlier bar's (AAA
    bought at 100, three sessions before the signal that asked for it at 120)."""
    paths = {"AAA": [(100.0, 100.5, 99.5, 100.0)] * 3 + [(120.0, 120.5, 119.5, 120.0)] * 3,
             "BBB": [(50.0, 50.5, 49.5, 50.0)] * 6}  # fmt: skip
    bars, data, days = _daily_data(tmp_path, paths)
    buys = [Signal(id=signal_id("last", {}, sym, days[bar], "BUY"), timestamp=days[bar], symbol=sym, action="BUY",
                   quantity=10, strategy="last", price=paths[sym][bar][3]) for sym, bar in (("BBB", 1), ("AAA", 5))]
    signals = tmp_path / "signals.jsonl"
    write_signals(signals, buys)
    res = run_backtest(bars, read_signals_frame(signals), BacktestConfig(cash=1e6))
    assert res.fills["signal_id"].to_list() == [buys[0].id]
    assert res.orders.filter(pl.col("signal_id") == buys[1].id)["status"].to_list() == ["expired"]
    with broker(tmp_path, data, spread_bps=0.0) as lb:
        executor(tmp_path, lb, signals, data).run()
    records = {t["signal_id"]: t for t in read_jsonl_records(tmp_path / "trades.jsonl")}
    assert records[buys[0].id]["status"] == "filled"
    assert records[buys[1].id]["status"] == "expired" and records[buys[1].id]["qty"] == 0
    assert "no later bar of AAA" in records[buys[1].id]["reason"]


def _paper_and_backtest(tmp_path: Path, bars: pl.DataFrame, signals: list[Signal]) -> tuple[list[Any], list[Any]]:
    """The signals paper-traded on the local broker's replay of `bars`, and backtested: each one's fills as (symbol,
    New York day, side, qty, leg, price), sorted."""
    data, path = tmp_path / "bars.jsonl", tmp_path / "signals.jsonl"
    write_bars(bars, data)
    write_signals(path, signals)
    ny = ZoneInfo("America/New_York")
    res = run_backtest(bars, read_signals_frame(path), BacktestConfig(cash=1e6))
    backtest = sorted((r["symbol"], r["timestamp"].astimezone(ny).date(), r["side"], r["qty"], r.get("leg"),
                       round(r["price"], 6)) for r in res.fills.iter_rows(named=True))  # fmt: skip
    with broker(tmp_path, data, spread_bps=0.0) as lb:
        executor(tmp_path, lb, path, data).run()
    paper = sorted((t["symbol"], datetime.fromisoformat(t["timestamp"]).astimezone(ny).date(), t["side"], t["qty"],
                    t["leg"], round(t["filled_price"], 6))
                   for t in read_jsonl_records(tmp_path / "trades.jsonl") if t["status"] == "filled")  # fmt: skip
    return backtest, paper


def _order(days: pl.Series, paths: dict[str, list[OHLC]], symbol: str, bar: int, action: str, **fields: Any) -> Signal:
    return Signal(id=signal_id("t", fields, symbol, days[bar], action), timestamp=days[bar], symbol=symbol,
                  action=action, strategy="t", price=paths[symbol][bar][3], **{"quantity": 10, **fields})  # fmt: skip


def test_a_fraction_of_a_share_sold_short_is_refused_in_paper_as_in_the_backtest(tmp_path: Path) -> None:
    """Alpaca sells no fraction of a share short: AAA's 2.5 sold flat is refused; a flip of 1 share by 2.5 goes
    as its close and a rest of 1.5, refused; 2 whole shares sold short fill, and 0.5 more is refused. The
    backtest filled them all, shorts no broker takes."""
    flat = (100.0, 100.5, 99.5, 100.0)
    paths = {"AAA": [flat] * 12}
    bars = daily_bars("AAA", paths["AAA"])
    days = bars["timestamp"].unique().sort()
    orders = [(1, "SELL", 2.5), (3, "BUY", 1.0), (5, "SELL", 2.5), (7, "SELL", 2.0), (9, "SELL", 0.5)]
    signals = [_order(days, paths, "AAA", bar, side, quantity=qty) for bar, side, qty in orders]
    backtest, paper = _paper_and_backtest(tmp_path, bars, signals)
    assert [(side, qty) for _, _, side, qty, _, _ in backtest] == [("BUY", 1.0), ("SELL", 1.0), ("SELL", 2.0)]
    assert paper == [backtest[0], backtest[2]]  # the flip's close is recorded as its signal's partial fill
    records = {t["signal_id"]: t for t in read_jsonl_records(tmp_path / "trades.jsonl")}
    assert [(records[s.id]["status"], records[s.id]["qty"]) for s in signals] == [
        ("rejected", 0.0), ("filled", 1.0), ("partially_filled", 1.0), ("filled", 2.0), ("rejected", 0.0)]
    assert "fractional orders cannot be sold short" in records[signals[2].id]["reason"]
    res = run_backtest(bars, read_signals_frame(tmp_path / "signals.jsonl"), BacktestConfig(cash=1e6))
    assert res.orders["status"].to_list() == ["fractional_short", "filled", "filled", "filled", "fractional_short"]
    assert res.rejections["reason"].str.contains("brokers sell whole shares short").all()


def test_a_sale_of_a_position_with_exits_trades_before_them_at_a_gap_in_paper_as_in_the_backtest(
    tmp_path: Path,
) -> None:
    """AAA bought with a stop-loss at 95, then sold at market on day 3: day 4 opens at 90, through the stop. The
    backtest sells at that open by the order (its exits end as it goes live); paper cancels the exits at day 3's
    close, where the live loop sends the sale, and sells by the order too. Before, the replay moved the clock to
    day 4's open first: the stop-loss sold there and the sale was skipped ("its exit already traded it")."""
    flat = (100.0, 100.5, 99.5, 100.0)
    paths = {"AAA": [flat] * 4 + [(90.0, 90.5, 89.5, 90.0)] * 3, "BBB": [flat] * 7}
    bars = pl.concat([daily_bars(sym, path) for sym, path in paths.items()]).sort("timestamp", "symbol")
    days = bars["timestamp"].unique().sort()
    signals = [_order(days, paths, "AAA", 1, "BUY", stop_loss=95.0), _order(days, paths, "AAA", 3, "SELL")]
    backtest, paper = _paper_and_backtest(tmp_path, bars, signals)
    day = [d.astimezone(ZoneInfo("America/New_York")).date() for d in days]
    assert paper == backtest == [("AAA", day[2], "BUY", 10.0, None, 100.0), ("AAA", day[4], "SELL", 10.0, None, 90.0)]


def test_signals_whose_symbols_lack_bars_fill_on_their_own_next_bars_in_paper_as_in_the_backtest(
    tmp_path: Path,
) -> None:
    """AAA has no bars on days 3 to 5: its buy decided on day 2 fills on day 6, after BBB's buy decided on day 2
    (filling on day 3) and CCC's decided on day 3 (on day 4). The replay trades them in that order, each at its
    own bar's open, as the backtest does; before, it went in the file's order and the clock, moved on to AAA's
    bar first, filled the others there."""
    rising = [(100.0 + i, 100.5 + i, 99.5 + i, 100.0 + i) for i in range(8)]
    paths = {"AAA": rising, "BBB": rising, "CCC": rising}
    bars = pl.concat([daily_bars(sym, path) for sym, path in paths.items()]).sort("timestamp", "symbol")
    days = bars["timestamp"].unique().sort()
    bars = bars.filter((pl.col("symbol") != "AAA") | ~pl.col("timestamp").is_in(days[3:6].implode()))
    signals = [_order(days, paths, "AAA", 2, "BUY"), _order(days, paths, "BBB", 2, "BUY"),
               _order(days, paths, "CCC", 3, "BUY")]  # fmt: skip
    backtest, paper = _paper_and_backtest(tmp_path, bars, signals)
    day = [d.astimezone(ZoneInfo("America/New_York")).date() for d in days]
    assert paper == backtest == [("AAA", day[6], "BUY", 10.0, None, 106.0), ("BBB", day[3], "BUY", 10.0, None, 103.0),
                                 ("CCC", day[4], "BUY", 10.0, None, 104.0)]  # fmt: skip


def test_a_trailing_exit_of_an_entry_filled_inside_a_bar_trails_from_that_bars_close_in_paper_as_in_the_backtest(
    tmp_path: Path,
) -> None:
    """Buy stops at 101 with a 5% trailing exit trigger inside day 2 (high 104, close 100): the exit goes on from day
    3, where the executor places it once the bar shows the fill, its mark starting at day 2's close (the broker's
    last close), as the backtest's now does. AAA: day 3 opens lower, highs 100.5 and lows 95.5: the stop at 95.47
    holds (from the fill's 101, the backtest sold there at 95.95), and sells on day 4. BBB: day 3 runs to 106 and
    a CANCEL of BBB's other order comes that day, at its end: the exit, placed at day 3's open (the replay steps
    there first), trails to 106 and sells at 100.7 on day 4 (placed at day 3's end, it trailed from 105)."""
    flat = (100.0, 100.5, 99.5, 100.0)
    fill_day = (100.0, 104.0, 99.5, 100.0)
    paths = {"AAA": [flat, flat, fill_day, (97.0, 100.5, 95.5, 96.0), (96.0, 96.5, 90.0, 91.0),
                     (91.0, 91.5, 90.5, 91.0)],
             "BBB": [flat, flat, fill_day, (102.5, 106.0, 102.0, 105.0), (104.0, 104.5, 99.0, 100.0),
                     (100.0, 100.5, 99.5, 100.0)]}  # fmt: skip
    bars = pl.concat([daily_bars(sym, path) for sym, path in paths.items()]).sort("timestamp", "symbol")
    days = bars["timestamp"].unique().sort()
    stop = {"order_type": "stop", "stop_price": 101.0, "time_in_force": "gtc", "trail_percent": 5.0}
    far = _order(days, paths, "BBB", 1, "BUY", order_type="limit", limit_price=80.0, time_in_force="gtc")
    cancel = Signal(id=signal_id("t", {}, "BBB", days[3], "CANCEL"), timestamp=days[3], symbol="BBB", action="CANCEL",
                    strategy="t", cancels=far.id)  # fmt: skip
    signals = [_order(days, paths, "AAA", 1, "BUY", **stop), _order(days, paths, "BBB", 1, "BUY", **stop), far, cancel]
    backtest, paper = _paper_and_backtest(tmp_path, bars, signals)
    day = [d.astimezone(ZoneInfo("America/New_York")).date() for d in days]
    assert paper == backtest == [
        ("AAA", day[2], "BUY", 10.0, None, 101.0), ("AAA", day[4], "SELL", 10.0, "trailing_stop", 95.47),
        ("BBB", day[2], "BUY", 10.0, None, 101.0), ("BBB", day[4], "SELL", 10.0, "trailing_stop", 100.7),
    ]  # fmt: skip


def test_a_bracket_entry_whose_next_open_gaps_through_its_stop_trades_in_paper_as_in_the_backtest(
    tmp_path: Path,
) -> None:
    """AAA's bracketed buy (stop-loss 95, take-profit 110) is decided at day 1's close, 100; day 2 opens at 90,
    through the stop. The live loop sends it at that close, where Alpaca takes it (the stop is under the last
    price); it buys at the open and its stop-loss sells there, as in the backtest. BBB's, the same on a day 2 that
    opens at 112, through the take-profit: bought and sold at the open. Before, the replay sent both at day 2's
    open, where the broker refused them: a stop-loss over the price (a take-profit under it) cannot be placed."""
    flat = (100.0, 100.5, 99.5, 100.0)
    paths = {"AAA": [flat, flat, *[(90.0, 90.5, 89.5, 90.0)] * 3],
             "BBB": [flat, flat, *[(112.0, 112.5, 111.5, 112.0)] * 3]}
    bars = pl.concat([daily_bars(sym, path) for sym, path in paths.items()]).sort("timestamp", "symbol")
    days = bars["timestamp"].unique().sort()
    signals = [_order(days, paths, sym, 1, "BUY", stop_loss=95.0, take_profit=110.0) for sym in paths]
    backtest, paper = _paper_and_backtest(tmp_path, bars, signals)
    day = [d.astimezone(ZoneInfo("America/New_York")).date() for d in days]
    assert paper == backtest == [
        ("AAA", day[2], "BUY", 10.0, None, 90.0), ("AAA", day[2], "SELL", 10.0, "stop_loss", 90.0),
        ("BBB", day[2], "BUY", 10.0, None, 112.0), ("BBB", day[2], "SELL", 10.0, "take_profit", 112.0),
    ]  # fmt: skip


def _legs_day(paper: list[Any], days: pl.Series) -> list[tuple[str, int, str, float, str | None, float]]:
    """_paper_and_backtest's fills as (side, the day's index in `days`, symbol, qty, leg, price)."""
    ny = ZoneInfo("America/New_York")
    index = {d.astimezone(ny).date(): i for i, d in enumerate(days)}
    return [(side, index[day], sym, qty, leg, price) for sym, day, side, qty, leg, price in paper]


def test_an_order_that_fills_against_another_entrys_position_ends_its_exits_in_paper_as_in_the_backtest(
    tmp_path: Path,
) -> None:
    """A buy stop with a stop-loss at 97 and a gtc sell limit at 102, both sent flat: the stop buys on day 1, the
    limit sells on day 2. The backtest ends the entry's exits at that sale; paper left the stop-loss working (placed
    after the buy's fill, never canceled) and it sold 10 more on day 4: a naked short."""
    paths = {"AAA": [(100, 101, 99, 100), (100, 101, 99.5, 100), (100, 103, 99.5, 102.5), (102, 102.5, 99, 99.5),
                     (99.5, 100, 95, 96), (96, 97, 95, 96), (96, 97, 95, 96)]}  # fmt: skip
    bars = daily_bars("AAA", paths["AAA"])
    days = bars["timestamp"].unique().sort()
    signals = [_order(days, paths, "AAA", 0, "BUY", order_type="stop", stop_price=100.5, stop_loss=97.0,
                      time_in_force="gtc"),
               _order(days, paths, "AAA", 0, "SELL", order_type="limit", limit_price=102.0, time_in_force="gtc")]
    backtest, paper = _paper_and_backtest(tmp_path, bars, signals)
    assert paper == backtest
    assert _legs_day(paper, days) == [("BUY", 1, "AAA", 10.0, None, 100.5), ("SELL", 2, "AAA", 10.0, None, 102.0)]


def test_a_cover_its_exits_credit_skips_leaves_the_positions_other_exits_in_paper_as_in_the_backtest(
    tmp_path: Path,
) -> None:
    """Short 20 (stop-loss 110) and short 5 (stop-loss 102, which covers on day 1); a cover of 5 on day 2 finds its
    shares already bought by that stop (the credit) and trades nothing. Paper canceled the short 20's exits before
    finding that out: the account stayed short 20 unprotected, and day 4's stop at 110 never traded."""
    paths = {"AAA": [(100, 101, 99, 100), (100, 103, 99.5, 101), (101, 102, 100, 101), (101, 102, 100, 101.5),
                     (101.5, 112, 101, 111), (111, 112, 110, 111), (111, 112, 110, 111)]}  # fmt: skip
    bars = daily_bars("AAA", paths["AAA"])
    days = bars["timestamp"].unique().sort()
    signals = [_order(days, paths, "AAA", 0, "SELL", quantity=20, take_profit=80.0, stop_loss=110.0),
               _order(days, paths, "AAA", 0, "SELL", quantity=5, take_profit=90.0, stop_loss=102.0),
               _order(days, paths, "AAA", 2, "BUY", quantity=5)]
    backtest, paper = _paper_and_backtest(tmp_path, bars, signals)
    assert paper == backtest
    assert sorted(_legs_day(paper, days)) == [("BUY", 1, "AAA", 5.0, "stop_loss", 102.0),
                                              ("BUY", 4, "AAA", 20.0, "stop_loss", 110.0),
                                              ("SELL", 1, "AAA", 5.0, None, 100.0),
                                              ("SELL", 1, "AAA", 20.0, None, 100.0)]  # fmt: skip


def test_an_exits_credit_outlives_an_order_that_did_not_fill_in_paper_as_in_the_backtest(tmp_path: Path) -> None:
    """A long of 10 is sold by its stop-loss on day 2; a day limit buy far below expires unfilled; then a sale of
    10 comes: its shares were already sold by the stop (the credit, which only a fill ends), so it trades nothing.
    Paper ended the credit when the limit was sent, and the sale opened a short of 10."""
    paths = {"AAA": [(100, 101, 99, 100), (100, 101, 99.5, 100), (100, 100.5, 94, 95), (95, 96, 94, 95),
                     (95, 96, 94, 95.5), (95.5, 96, 94, 95), (95, 96, 94, 95)]}  # fmt: skip
    bars = daily_bars("AAA", paths["AAA"])
    days = bars["timestamp"].unique().sort()
    signals = [_order(days, paths, "AAA", 0, "BUY", stop_loss=97.0),
               _order(days, paths, "AAA", 2, "BUY", order_type="limit", limit_price=80.0),
               _order(days, paths, "AAA", 4, "SELL")]
    backtest, paper = _paper_and_backtest(tmp_path, bars, signals)
    assert paper == backtest
    assert _legs_day(paper, days) == [("BUY", 1, "AAA", 10.0, None, 100.0), ("SELL", 2, "AAA", 10.0, "stop_loss", 97.0)]
    records = {t["signal_id"]: t for t in read_jsonl_records(tmp_path / "trades.jsonl") if t["leg"] is None}
    assert records[signals[2].id]["status"] == "skipped" and records[signals[1].id]["status"] == "expired"


def test_a_cancel_of_a_filled_order_records_no_fill_of_its_own(tmp_path: Path) -> None:
    """A CANCEL of an order that had filled: its record carried that fill (qty, price), which reconcile counted as a
    second fill, in paper only, and valued as a sale of the shares."""
    paths = {"AAA": [(100, 101, 99, 100)] * 5}
    bars = daily_bars("AAA", paths["AAA"])
    days = bars["timestamp"].unique().sort()
    buy = _order(days, paths, "AAA", 0, "BUY")
    cancel = Signal(id=signal_id("t", {}, "AAA", days[2], "CANCEL"), timestamp=days[2], symbol="AAA", action="CANCEL",
                    strategy="t", cancels=buy.id)  # fmt: skip
    backtest, paper = _paper_and_backtest(tmp_path, bars, [buy, cancel])
    assert paper == backtest and len(paper) == 1
    records = {t["signal_id"]: t for t in read_jsonl_records(tmp_path / "trades.jsonl")}
    assert records[cancel.id]["status"] == "skipped" and "already filled" in records[cancel.id]["reason"]
    assert records[cancel.id]["qty"] == 0.0 and records[cancel.id]["filled_price"] is None


def test_an_entry_gapping_through_its_take_profit_exits_there_at_the_open_in_paper_as_in_the_backtest(
    tmp_path: Path,
) -> None:
    """A sell stop at 198 (take-profit 196, stop-loss 206) triggers at day 2's open of 194, a bar that then runs up
    to 208: paper places the exits after the fill, where the take-profit buy is already through and fills at the
    open; the backtest took the stop at 206 (both legs reached: the stop), 120 dollars apart."""
    paths = {"AAA": [(200, 202, 198, 200), (200, 202, 199, 200), (194, 208, 192, 200), (200, 202, 198, 201),
                     (201, 202, 198, 200)]}  # fmt: skip
    bars = daily_bars("AAA", paths["AAA"])
    days = bars["timestamp"].unique().sort()
    signals = [_order(days, paths, "AAA", 0, "SELL", order_type="stop", stop_price=198.0, take_profit=196.0,
                      stop_loss=206.0, time_in_force="gtc")]  # fmt: skip
    backtest, paper = _paper_and_backtest(tmp_path, bars, signals)
    assert paper == backtest
    assert sorted(_legs_day(paper, days)) == [("BUY", 2, "AAA", 10.0, "take_profit", 194.0),
                                              ("SELL", 2, "AAA", 10.0, None, 194.0)]  # fmt: skip
