"""The backtest engine: exact accounting on hand-made bars, honest fills, rejections, and properties."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import marketboss
from marketboss.backtest import BacktestConfig, Costs, FillMode, run_backtest, run_strategy
from marketboss.data.market import Market, SymbolBars
from marketboss.errors import InputError
from marketboss.orders import buy_stop_limit
from marketboss.signals import ORDER_DEFAULTS, ORDER_FIELDS, ORDER_SCHEMA, SIGNAL_SCHEMA, Signal
from marketboss.strategies import Strategy, create

T0 = np.datetime64("2024-01-02T05:00", "us")
DAY = np.timedelta64(1, "D")


def make_bars(
    prices: dict[str, list[tuple[float, float]]], missing: dict[str, list[int]] | None = None
) -> pl.DataFrame:
    """Daily bars from (open, close) pairs per symbol; `missing` drops some bar indices of a symbol."""
    rows = []
    for sym, oc in prices.items():
        for i, (o, c) in enumerate(oc):
            if missing and i in missing.get(sym, []):
                continue
            rows.append({"timestamp": (T0 + i * DAY).item(), "symbol": sym, "open": o, "high": max(o, c) * 1.01,
                         "low": min(o, c) * 0.99, "close": c, "volume": 1000})
    return pl.DataFrame(rows).with_columns(pl.col("timestamp").dt.replace_time_zone("UTC")).sort("timestamp", "symbol")


def make_signals(rows: list[dict[str, object]]) -> pl.DataFrame:
    """Signals at bar indices: {"t": 0, "symbol", "action", "quantity" | "target_weight"}, and the order fields
    (marketboss.signals.ORDER_FIELDS) when any row has them."""
    orders = any(f in r for r in rows for f in ORDER_FIELDS)
    schema = {**SIGNAL_SCHEMA, **(ORDER_SCHEMA if orders else {}), "timestamp": pl.Datetime("us")}
    out = []
    for k, r in enumerate(rows):
        out.append({"id": f"sig-{k:04d}", "timestamp": (T0 + int(r["t"]) * DAY).item(),  # type: ignore[call-overload]
                    "symbol": r["symbol"], "action": r["action"], "quantity": r.get("quantity"),
                    "strategy": "test", "price": r.get("price"), "target_weight": r.get("target_weight"),
                    **({f: r.get(f, ORDER_DEFAULTS.get(f)) for f in ORDER_FIELDS} if orders else {})})
    df = pl.DataFrame(out, schema=schema)
    return df.with_columns(pl.col("timestamp").dt.replace_time_zone("UTC"))



AAPL = [(100.0, 101.0), (102.0, 104.0), (103.0, 99.0), (98.0, 97.0), (96.0, 105.0)]


def test_a_round_trip_is_accounted_to_the_cent() -> None:
    costs = Costs(commission=0.001, commission_per_share=0.01, commission_min=1.0, slippage_bps=10, spread_bps=4)
    sig = make_signals([{"t": 0, "symbol": "AAPL", "action": "BUY", "quantity": 10},
                        {"t": 2, "symbol": "AAPL", "action": "SELL", "quantity": 10}])
    res = run_backtest(make_bars({"AAPL": AAPL}), sig, BacktestConfig(cash=10_000, costs=costs))
    slip = (10 + 4 / 2) / 10_000
    buy_px = 102.0 * (1 + slip)  # next bar's open, moved against the buyer
    buy_comm = max(0.001 * 10 * buy_px + 0.01 * 10, 1.0)
    sell_px = 98.0 * (1 - slip)
    sell_comm = max(0.001 * 10 * sell_px + 0.01 * 10, 1.0)
    f = res.fills
    assert f["signal_id"].to_list() == ["sig-0000", "sig-0001"]
    assert f["timestamp"].dt.replace_time_zone(None).to_list() == [(T0 + DAY).item(), (T0 + 3 * DAY).item()]
    assert f["price"].to_list() == pytest.approx([buy_px, sell_px], rel=1e-15)
    assert f["commission"].to_list() == pytest.approx([buy_comm, sell_comm], rel=1e-15)
    cash_in = 10_000 - 10 * buy_px - buy_comm
    eq = res.equity
    assert eq["cash"].to_list() == pytest.approx([10_000, cash_in, cash_in, cash_in + 10 * sell_px - sell_comm,
                                                  cash_in + 10 * sell_px - sell_comm])
    assert eq["positions_value"].to_list() == pytest.approx([0, 10 * 104.0, 10 * 99.0, 0, 0])
    t = res.trades.row(0, named=True)
    pnl = 10 * (sell_px - buy_px) - buy_comm - sell_comm
    assert (t["side"], t["qty"], t["closed"], t["bars"]) == ("LONG", 10.0, True, 2)
    assert t["pnl"] == pytest.approx(pnl)
    assert t["return_pct"] == pytest.approx(pnl / (10 * buy_px) * 100)
    assert (t["entry_signal_id"], t["exit_signal_id"]) == ("sig-0000", "sig-0001")
    assert res.metrics["final_equity"] == pytest.approx(10_000 + pnl)
    assert res.metrics["commissions"] == pytest.approx(buy_comm + sell_comm)
    assert res.metrics["exposure_pct"] == pytest.approx(40.0)  # held at the close of bars 1 and 2


def test_fill_at_close_is_the_signal_bars_close() -> None:
    sig = make_signals([{"t": 1, "symbol": "AAPL", "action": "BUY", "quantity": 5}])
    res = run_backtest(make_bars({"AAPL": AAPL}), sig, BacktestConfig(cash=1_000, fill=FillMode.CLOSE))
    assert res.fills["price"].to_list() == [104.0]
    assert res.equity["equity"].to_list() == pytest.approx([1000, 1000, 1000 - 25, 1000 - 35, 1000 + 5])


def test_orders_cash_cannot_cover_are_rejected_whole_and_reported() -> None:
    sig = make_signals([{"t": 0, "symbol": "AAPL", "action": "BUY", "quantity": 10},
                        {"t": 0, "symbol": "AAPL", "action": "BUY", "quantity": 1},
                        {"t": 4, "symbol": "AAPL", "action": "SELL", "quantity": 1}])
    res = run_backtest(make_bars({"AAPL": AAPL}), sig, BacktestConfig(cash=500))
    assert res.orders["status"].to_list() == ["rejected", "filled", "expired"]
    assert res.rejections["reason"].to_list() == ["insufficient cash", "no later bar of the symbol to fill at"]
    assert res.fills["qty"].to_list() == [1.0]  # never resized to what cash allows
    assert (res.metrics["rejected_orders"], res.metrics["unfilled_orders"]) == (1, 1)
    assert res.equity["cash"].min() >= 0


def test_target_weights_size_against_equity_at_the_fill_bars_open() -> None:
    bars = make_bars({"AAPL": AAPL, "MSFT": [(50.0, 50.0), (50.0, 51.0), (52.0, 52.0), (53.0, 53.0), (54.0, 54.0)]})
    sig = make_signals([{"t": 0, "symbol": "AAPL", "action": "BUY", "target_weight": 0.5},
                        {"t": 1, "symbol": "MSFT", "action": "BUY", "target_weight": 0.25},
                        {"t": 2, "symbol": "AAPL", "action": "SELL", "target_weight": 0.0},
                        {"t": 3, "symbol": "MSFT", "action": "BUY", "target_weight": 0.1}])
    res = run_backtest(bars, sig, BacktestConfig(cash=10_000))
    aapl = int(0.5 * 10_000 / 102.0)  # 49 whole shares at bar 1's open
    equity_bar2 = 10_000 - aapl * 102.0 + aapl * 103.0  # AAPL marked at bar 2's open, before the fill
    msft = int(0.25 * equity_bar2 / 52.0)
    assert res.fills["qty"].to_list() == [aapl, msft, aapl]
    assert res.orders["status"].to_list() == ["filled", "filled", "filled", "skipped"]  # BUY that would sell
    frac = run_backtest(bars, sig, BacktestConfig(cash=10_000, fractional=True))
    assert frac.fills["qty"][0] == pytest.approx(0.5 * 10_000 / 102.0)


def test_a_weight_purchase_is_sized_to_equity_after_costs_and_to_the_cash_left() -> None:
    """All in with commission buys what equity pays for fees included; a second purchase gets the cash left,
    not a rejection; with no cash left for a share it is rejected for cash."""
    bars = make_bars({"AAPL": AAPL, "MSFT": [(50.0, 50.0), (50.0, 51.0), (52.0, 52.0), (53.0, 53.0), (54.0, 54.0)]})
    costs = Costs(commission=0.01, commission_min=2.0, slippage_bps=10)
    sig = make_signals([{"t": 0, "symbol": "AAPL", "action": "BUY", "target_weight": 1.0}])
    res = run_backtest(bars, sig, BacktestConfig(cash=10_000, costs=costs))
    fp = 102.0 * 1.001
    shares = int(10_000 / (fp * 1.01))  # shares plus their 1% commission fit in equity
    assert res.fills["qty"].to_list() == [shares] and res.fills["price"][0] == pytest.approx(fp)
    assert 0 <= res.equity["cash"][1] < fp * 1.01  # within a share of all in
    both = make_signals([{"t": 0, "symbol": "AAPL", "action": "BUY", "target_weight": 0.7},
                         {"t": 0, "symbol": "MSFT", "action": "BUY", "target_weight": 0.7},
                         {"t": 1, "symbol": "MSFT", "action": "BUY", "target_weight": 0.9}])
    res = run_backtest(bars, both, BacktestConfig(cash=10_000))
    aapl = int(0.7 * 10_000 / 102.0)
    msft = int((10_000 - aapl * 102.0) / 50.0)  # the cash left, not 70% of equity
    assert res.fills["qty"].to_list() == [aapl, msft]
    assert res.orders["status"].to_list() == ["filled", "filled", "rejected"]  # no cash for one more share
    assert res.equity["cash"].min() >= 0


def test_short_positions_and_flips_are_matched_fifo() -> None:
    sig = make_signals([{"t": 0, "symbol": "AAPL", "action": "SELL", "quantity": 10},
                        {"t": 1, "symbol": "AAPL", "action": "BUY", "quantity": 15},
                        {"t": 2, "symbol": "AAPL", "action": "SELL", "quantity": 5}])
    res = run_backtest(make_bars({"AAPL": AAPL}), sig, BacktestConfig(cash=3_000))  # the short's collateral
    tr = res.trades
    assert tr["side"].to_list() == ["SHORT", "LONG"]
    assert tr["qty"].to_list() == [10.0, 5.0]
    assert tr["pnl"].to_list() == pytest.approx([10 * (102.0 - 103.0), 5 * (98.0 - 103.0)])
    assert res.equity["positions_value"].to_list() == pytest.approx([0, -1040, 495, 0, 0])


def test_nothing_is_borrowed_a_short_holds_twice_its_value_in_cash() -> None:
    """On 10,000 of cash a short of 98 at 102 (9,996) fills and one of 99 (10,098) is rejected: the short's
    proceeds and as much again must stay in cash (gross exposure at most the equity, backtesting.py's
    margin=1). A sale of 100,000 shares is rejected whole, and equity never goes negative; closing the short
    needs no collateral."""
    bars = make_bars({"AAPL": AAPL})
    for qty, status in ((98, "filled"), (99, "rejected"), (100_000, "rejected")):
        sig = make_signals([{"t": 0, "symbol": "AAPL", "action": "SELL", "quantity": qty},
                            {"t": 2, "symbol": "AAPL", "action": "BUY", "target_weight": 0.0}])  # the cover
        res = run_backtest(bars, sig, BacktestConfig(cash=10_000))
        assert res.orders["status"].to_list() == [status, "filled" if status == "filled" else "skipped"], qty
        assert res.equity["equity"].min() > 0
    assert res.rejections["reason"].to_list()[0] == "insufficient cash"


def test_a_short_elsewhere_holds_cash_that_a_purchase_may_not_spend() -> None:
    """A short of AAPL (50 at 102: 5,100) credits 5,100 to cash (15,100) and holds 10,200 of it: MSFT's
    purchase of 60 at 100 (6,000) would spend the collateral, and is rejected; 48 (4,800) fill. Without the
    short, the 60 fill."""
    bars = make_bars({"AAPL": AAPL, "MSFT": [(100.0, 100.0)] * 5})
    for qty, status in ((60, "rejected"), (48, "filled")):
        sig = make_signals([{"t": 0, "symbol": "AAPL", "action": "SELL", "quantity": 50},
                            {"t": 0, "symbol": "MSFT", "action": "BUY", "quantity": qty}])
        res = run_backtest(bars, sig, BacktestConfig(cash=10_000))
        assert res.orders["status"].to_list() == ["filled", status], qty
    alone = run_backtest(bars, make_signals([{"t": 0, "symbol": "MSFT", "action": "BUY", "quantity": 60}]),
                         BacktestConfig(cash=10_000))
    assert alone.orders["status"].to_list() == ["filled"]


def test_a_target_weights_short_is_sized_within_the_collateral_left() -> None:
    """All in short (-1.0) on 10,000 at 102: 98 shares, its collateral 2 x 9,996 of the 19,996 of cash; MSFT's
    short of -0.5 on the same bar finds 4 of cash free, no share's collateral: rejected for cash (no borrowing:
    it would have shorted 100 before). A weight short with room left is cut to it."""
    bars = make_bars({"AAPL": AAPL, "MSFT": [(50.0, 50.0)] * 5})
    sig = make_signals([{"t": 0, "symbol": "AAPL", "action": "SELL", "target_weight": -1.0},
                        {"t": 0, "symbol": "MSFT", "action": "SELL", "target_weight": -0.5}])
    res = run_backtest(bars, sig, BacktestConfig(cash=10_000))
    assert res.fills["qty"].to_list() == [98.0]
    assert res.orders["status"].to_list() == ["filled", "rejected"]
    half = make_signals([{"t": 0, "symbol": "AAPL", "action": "SELL", "target_weight": -0.7},
                         {"t": 0, "symbol": "MSFT", "action": "SELL", "target_weight": -0.5}])
    res = run_backtest(bars, half, BacktestConfig(cash=10_000))
    aapl = int(0.7 * 10_000 / 102.0)  # 68: 6,936
    free = 10_000 + aapl * 102.0 - 2 * aapl * 102.0  # 3,064
    assert res.fills["qty"].to_list() == [aapl, int(free / 50.0)]  # 61, not 100: -0.5 cut to what is free
    assert (res.equity["equity"] > 0).all()


def test_a_reduction_is_never_refused_and_a_flip_is_checked_as_an_opening() -> None:
    """A short of XYZ that quadruples (100 to 400) needs more than the account's cash to cover: the cover fills
    all the same (cash below zero, equity still positive: a broker's margin call would close it, not refuse it),
    and so does the short's stop-loss leg; before, both were refused. A flip through zero opens a short and needs
    its collateral: in an account whose other short (ABC, 50 to 80) has eaten it, it is refused whole while the
    plain close fills."""
    bars = make_bars({"XYZ": [(100.0, 100.0), (100.0, 100.0), (400.0, 400.0), (400.0, 400.0), (400.0, 400.0)],
                      "ABC": [(50.0, 50.0)] * 5})
    cover = make_signals([{"t": 0, "symbol": "ABC", "action": "BUY", "quantity": 100},
                          {"t": 0, "symbol": "XYZ", "action": "SELL", "quantity": 25},
                          {"t": 2, "symbol": "XYZ", "action": "BUY", "target_weight": 0.0}])
    res = run_backtest(bars, cover, BacktestConfig(cash=10_000))
    assert res.orders["status"].to_list() == ["filled", "filled", "filled"]
    assert res.equity["cash"][-1] == pytest.approx(10_000 - 5_000 + 2_500 - 10_000)  # -2,500: its cover's cost
    assert res.equity["equity"][-1] == pytest.approx(2_500)
    stop = make_signals([{"t": 0, "symbol": "ABC", "action": "BUY", "quantity": 100},
                         {"t": 0, "symbol": "XYZ", "action": "SELL", "quantity": 25, "stop_loss": 150.0}])
    res = run_backtest(bars, stop, BacktestConfig(cash=10_000))
    assert res.fills.filter(pl.col("symbol") == "XYZ").select("side", "qty", "price", "leg").rows() == [
        ("SELL", 25.0, 100.0, None), ("BUY", 25.0, 400.0, "stop_loss")]  # the gap's open
    rising = make_bars({"XYZ": [(100.0, 100.0)] * 5, "ABC": [(50.0, 50.0), (50.0, 80.0), (80.0, 80.0),
                                                            (80.0, 80.0), (80.0, 80.0)]})
    for qty, status in ((80, "rejected"), (50, "filled")):
        sig = make_signals([{"t": 0, "symbol": "ABC", "action": "SELL", "quantity": 100},
                            {"t": 0, "symbol": "XYZ", "action": "BUY", "quantity": 50},
                            {"t": 1, "symbol": "XYZ", "action": "SELL", "quantity": qty}])
        res = run_backtest(rising, sig, BacktestConfig(cash=10_000))
        assert res.orders["status"].to_list() == ["filled", "filled", status], qty


def test_fractional_shares_are_bought_but_a_short_is_whole() -> None:
    """--fractional buys millionths of a share; a weight's short is sized in whole shares (a broker sells no
    fraction short: Alpaca refuses it)."""
    bars = make_bars({"AAPL": AAPL, "MSFT": [(50.0, 50.0)] * 5})
    sig = make_signals([{"t": 0, "symbol": "AAPL", "action": "SELL", "target_weight": -0.5},
                        {"t": 0, "symbol": "MSFT", "action": "BUY", "target_weight": 0.301}])
    res = run_backtest(bars, sig, BacktestConfig(cash=10_000, fractional=True))
    assert res.fills["qty"].to_list() == [int(5_000 / 102.0), pytest.approx(0.301 * 10_000 / 50.0, abs=1e-6)]  # 60.2
    smaller = make_signals([{"t": 0, "symbol": "AAPL", "action": "SELL", "target_weight": -0.5},
                            {"t": 2, "symbol": "AAPL", "action": "BUY", "target_weight": -0.2}])  # short less
    res = run_backtest(bars, smaller, BacktestConfig(cash=10_000, fractional=True))
    assert [q == int(q) for q in res.fills["qty"]] == [True, True] and res.fills.height == 2  # whole, still short


def test_open_positions_at_the_end_are_marked_and_flagged() -> None:
    sig = make_signals([{"t": 0, "symbol": "AAPL", "action": "BUY", "quantity": 2}])
    res = run_backtest(make_bars({"AAPL": AAPL}), sig, BacktestConfig(cash=1_000))
    t = res.trades.row(0, named=True)
    assert (t["closed"], t["exit_price"], t["exit_signal_id"]) == (False, 105.0, None)
    assert res.metrics["n_trades"] == 0 and res.metrics["open_trades"] == 1


def test_a_symbol_without_a_bar_fills_at_its_next_bar_and_keeps_its_last_close() -> None:
    bars = make_bars({"AAPL": AAPL, "MSFT": [(50.0, 51.0)] * 5}, missing={"AAPL": [1, 2]})
    sig = make_signals([{"t": 0, "symbol": "AAPL", "action": "BUY", "quantity": 1}])
    res = run_backtest(bars, sig, BacktestConfig(cash=1_000))
    assert res.fills["timestamp"].dt.replace_time_zone(None).to_list() == [(T0 + 3 * DAY).item()]
    close_sig = make_signals([{"t": 1, "symbol": "AAPL", "action": "BUY", "quantity": 1}])
    res2 = run_backtest(bars, close_sig, BacktestConfig(cash=1_000, fill=FillMode.CLOSE))
    assert res2.orders["status"].to_list() == ["no_bar"]


def test_unknown_symbols_name_the_signal_line() -> None:
    sig = make_signals([{"t": 0, "symbol": "ZZZ", "action": "BUY", "quantity": 1}]).with_columns(
        pl.lit(7).alias("_line"))
    with pytest.raises(InputError, match=r"signals.jsonl:7: field 'symbol': symbol 'ZZZ' has no bars"):
        run_backtest(make_bars({"AAPL": AAPL}), sig, source="signals.jsonl")


def test_strategy_and_its_signals_file_give_the_same_backtest(daily_bars: pl.DataFrame) -> None:
    market = Market.from_bars(daily_bars)
    cfg = BacktestConfig(costs=Costs(commission=0.001, slippage_bps=2))
    res, sig = run_strategy(market, create("ma_crossover", []), cfg)
    # time order counts, not file order (a bar's orders keep theirs: they trade in it)
    again = run_backtest(market, sig.sort("timestamp", descending=True, maintain_order=True), cfg)
    assert again.equity.equals(res.equity)
    assert again.fills.sort("timestamp", "symbol").equals(res.fills.sort("timestamp", "symbol"))
    assert res.metrics["n_fills"] == sig.height > 20


def test_a_later_backtest_never_writes_into_an_earlier_results_equity(daily_bars: pl.DataFrame) -> None:
    """Per-bar output memory is reused only once nothing refers to it: a column taken from a dropped
    result stays as it was while more backtests of the same length run than the pool keeps blocks."""
    market = Market.from_bars(daily_bars)
    first, _ = run_strategy(market, create("ma_crossover", []), BacktestConfig())
    column = first.equity["equity"]
    values = column.to_numpy().copy()
    del first
    for fast in (3, 4, 5, 6, 7):
        other, _ = run_strategy(market, create("ma_crossover", [f"fast={fast}", "slow=9"]), BacktestConfig())
        assert not np.array_equal(other.equity["equity"].to_numpy(), values)  # an overwrite would show
    assert np.array_equal(column.to_numpy(), values)
    again, _ = run_strategy(market, create("ma_crossover", []), BacktestConfig())
    assert np.array_equal(again.equity["equity"].to_numpy(), values)

# ------------------------------------------------------------------------------------------ properties


@dataclass
class Case:
    bars: pl.DataFrame
    signals: pl.DataFrame
    n_bars: int


def order_fields(draw: st.DrawFn, buy: bool, c: float) -> dict[str, object]:
    """A valid set of order fields (marketboss.signals.Signal checks them) around the signal bar's close c."""
    kind = draw(st.sampled_from(["market", "limit", "stop", "stop_limit", "trailing_stop"]))
    off = draw(st.floats(0.0, 0.08))
    up, down = round(c * (1 + off), 2), round(c * (1 - off), 2)
    f: dict[str, object] = {"order_type": kind, "time_in_force": draw(st.sampled_from(["day", "gtc"])), "price": c}
    if kind == "limit":
        f["limit_price"] = down if buy else up
    elif kind == "stop":
        f["stop_price"] = up if buy else down
    elif kind == "stop_limit":
        f["stop_price"] = up if buy else down
        f["limit_price"] = round(f["stop_price"] * (1.01 if buy else 0.99), 2)  # type: ignore[operator]
    elif kind == "trailing_stop":
        f["trail_percent"] = draw(st.sampled_from([1.0, 3.0, 8.0]))
    if kind != "trailing_stop" and draw(st.booleans()):
        ref = f.get("limit_price", f.get("stop_price", c))
        tp, sl = draw(st.floats(0.01, 0.15)), draw(st.floats(0.01, 0.15))
        sign = 1 if buy else -1
        if draw(st.booleans()):  # a trailing stop leg goes alone (a broker gives the shares to one exit order)
            f["trail_percent"] = draw(st.sampled_from([2.0, 5.0]))
        else:
            f["take_profit"] = round(ref * (1 + sign * tp), 2) if draw(st.booleans()) else None  # type: ignore[operator]
            f["stop_loss"] = round(ref * (1 - sign * sl), 2)  # type: ignore[operator]
    Signal.model_validate({"id": "x", "timestamp": "2024-01-02T00:00:00Z", "symbol": "S", "action": "BUY" if buy
                           else "SELL", "quantity": 1, **f})  # the contract's own check: a valid order
    return f


@st.composite
def cases(draw: st.DrawFn, weights: bool = True, orders: bool = False) -> Case:
    n_sym = draw(st.integers(1, 3))
    n = draw(st.integers(3, 30))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    prices: dict[str, list[tuple[float, float]]] = {}
    missing: dict[str, list[int]] = {}
    for s in range(n_sym):
        c = 50 * np.exp(np.cumsum(rng.normal(0, 0.05, n)))
        o = c * np.exp(rng.normal(0, 0.01, n))
        prices[f"S{s}"] = list(zip(o.round(4).tolist(), c.round(4).tolist(), strict=True))
        missing[f"S{s}"] = sorted(set(rng.integers(1, n, size=draw(st.integers(0, n // 3))).tolist()))
    sigs = []
    for _ in range(draw(st.integers(0, 25))):
        sym = f"S{draw(st.integers(0, n_sym - 1))}"
        row: dict[str, object] = {"t": draw(st.integers(0, n - 1)), "symbol": sym,
                                  "action": draw(st.sampled_from(["BUY", "SELL"]))}
        if weights and draw(st.booleans()):
            w = draw(st.floats(0, 0.6))
            row["target_weight"] = w if row["action"] == "BUY" else -w * draw(st.sampled_from([0, 1]))
        else:
            row["quantity"] = draw(st.sampled_from([1, 3, 10, 2.5]))
        if orders and draw(st.integers(0, 4)) > 0:
            row.update(order_fields(draw, row["action"] == "BUY", prices[sym][int(row["t"])][1]))  # type: ignore[call-overload]
        sigs.append(row)
    sigs.sort(key=lambda r: r["t"])  # type: ignore[arg-type, return-value]
    return Case(make_bars(prices, missing), make_signals(sigs), n)


def any_orders(weights: bool = True) -> st.SearchStrategy[Case]:
    """Cases of market orders only, or of every order type (limit, stop, stop-limit, trailing stop, brackets)."""
    return st.booleans().flatmap(lambda orders: cases(weights=weights, orders=orders))


def _positions_value(case: Case, res_fills: pl.DataFrame) -> np.ndarray:
    """Independent mark-to-market: positions from the fills, times each symbol's last close."""
    market = Market.from_bars(case.bars)
    pos = np.zeros((market.n_times, market.n_symbols))
    fill_t = np.searchsorted(market.times, res_fills["timestamp"].dt.epoch("us").to_numpy())
    for (sym, side, qty), t in zip(res_fills.select("symbol", "side", "qty").iter_rows(), fill_t, strict=True):
        pos[t:, market.symbol_index(sym)] += qty if side == "BUY" else -qty
    last = pl.DataFrame(market.close).fill_null(strategy="forward").fill_nan(None).fill_null(strategy="forward")
    closes = np.nan_to_num(last.to_numpy())
    return (pos * closes).sum(axis=1)


@settings(max_examples=60, deadline=None)
@given(case=any_orders(), at_close=st.booleans(), commission=st.sampled_from([0.0, 0.002]))
def test_equity_is_cash_plus_marked_positions_at_every_bar(case: Case, at_close: bool, commission: float) -> None:
    cfg = BacktestConfig(cash=2_000, fill=FillMode.CLOSE if at_close else FillMode.NEXT_OPEN,
                         costs=Costs(commission=commission, slippage_bps=5))
    res = run_backtest(case.bars, case.signals, cfg)
    eq = res.equity
    np.testing.assert_allclose(eq["equity"], eq["cash"] + eq["positions_value"], rtol=1e-12)
    np.testing.assert_allclose(eq["positions_value"], _positions_value(case, res.fills), rtol=1e-9, atol=1e-7)
    # cash moves only by fills: start cash minus what they cost
    signed = pl.when(pl.col("side") == "BUY").then(pl.col("qty")).otherwise(-pl.col("qty"))
    f = res.fills.with_columns(signed.alias("q"))
    spent = (f["q"] * f["price"] + f["commission"]).sum()
    assert eq["cash"][-1] == pytest.approx(2_000 - spent, rel=1e-9, abs=1e-7)
    assert eq["cash"].min() >= -1e-6


@settings(max_examples=60, deadline=None)
@given(case=any_orders(), cut=st.floats(0, 1), seed=st.integers(0, 2**31), at_close=st.booleans())
def test_changing_bars_after_t_never_changes_equity_up_to_t(case: Case, cut: float, seed: int, at_close: bool) -> None:
    cfg = BacktestConfig(cash=2_000, fill=FillMode.CLOSE if at_close else FillMode.NEXT_OPEN,
                         costs=Costs(commission=0.001))
    times = case.bars["timestamp"].unique().sort()
    t = times[int(cut * (len(times) - 1))]
    factor = pl.Series(np.exp(np.random.default_rng(seed).normal(0, 0.3, case.bars.height)))
    later = pl.col("timestamp") > t
    changed = case.bars.with_columns(
        pl.when(later).then(pl.col(c) * factor).otherwise(pl.col(c)).alias(c) for c in ("open", "high", "low", "close")
    )
    a = run_backtest(case.bars, case.signals, cfg)
    b = run_backtest(changed, case.signals, cfg)
    upto = pl.col("timestamp") <= t
    assert a.equity.filter(upto).equals(b.equity.filter(upto))
    assert a.fills.filter(upto).equals(b.fills.filter(upto))


@settings(max_examples=60, deadline=None)
@given(case=any_orders(weights=False), commission=st.floats(0, 0.01), per_share=st.floats(0, 0.05),
       minimum=st.floats(0, 2), slippage=st.floats(0, 50), spread=st.floats(0, 20), at_close=st.booleans())
def test_adding_costs_never_improves_the_result(
    case: Case, commission: float, per_share: float, minimum: float, slippage: float, spread: float, at_close: bool
) -> None:
    """Same orders (quantity signals, cash to spare so nothing is rejected): costs only ever take away."""
    fill = FillMode.CLOSE if at_close else FillMode.NEXT_OPEN
    free = run_backtest(case.bars, case.signals, BacktestConfig(cash=1e9, fill=fill))
    costly = run_backtest(case.bars, case.signals, BacktestConfig(
        cash=1e9, fill=fill, costs=Costs(commission=commission, commission_per_share=per_share,
                                         commission_min=minimum, slippage_bps=slippage, spread_bps=spread)))
    assert costly.fills["qty"].to_list() == free.fills["qty"].to_list()
    assert (costly.equity["equity"] <= free.equity["equity"] + 1e-6).all()


@settings(max_examples=30, deadline=None)
@given(case=cases())
def test_no_signals_give_flat_equity(case: Case) -> None:
    res = run_backtest(case.bars, case.signals.clear(), BacktestConfig(cash=12_345))
    assert (res.equity["equity"] == 12_345).all() and (res.equity["positions_value"] == 0).all()
    assert res.fills.height == 0 and res.trades.height == 0
    assert res.metrics["total_return_pct"] == 0 and res.metrics["max_drawdown_pct"] == 0
    assert res.metrics["exposure_pct"] == 0


@settings(max_examples=60, deadline=None)
@given(case=cases(), at_close=st.booleans())
def test_a_one_symbol_book_is_the_same_beside_an_idle_symbol(case: Case, at_close: bool) -> None:
    """The kernels keep a one-symbol book's position without the held set's bookkeeping: the same symbol and
    signals, beside a second symbol that is never traded (so through the held set), give the same results."""
    bars = case.bars.filter(pl.col("symbol") == "S0")
    signals = case.signals.filter(pl.col("symbol") == "S0")
    idle = bars.with_columns(pl.lit("ZZZ").alias("symbol"), pl.col("close") * 3)
    cfg = BacktestConfig(cash=2_000, fill=FillMode.CLOSE if at_close else FillMode.NEXT_OPEN,
                         costs=Costs(commission=0.001, slippage_bps=5))
    alone = run_backtest(bars, signals, cfg)
    beside = run_backtest(pl.concat([bars, idle]).sort("timestamp", "symbol"), signals, cfg)
    assert alone.equity.equals(beside.equity)
    assert alone.fills.equals(beside.fills) and alone.trades.equals(beside.trades)
    assert alone.orders.equals(beside.orders)
    same = {k: v for k, v in alone.metrics.items() if k not in ("buy_hold_return_pct", "run")}
    np.testing.assert_equal(same, {k: beside.metrics[k] for k in same})  # NaN (no trades) equals NaN


@pytest.mark.parametrize("weight", [0.45, 0.5])
def test_a_monthly_rotation_sells_before_it_buys_on_the_same_bar(weight: float) -> None:
    """Top 2 of 5 by 20-bar momentum at each month's first bar, 45% (or all in: 50%) each, everything held sold
    first: the signals list each month's buys before its sells, and still no buy is rejected, because the bar's
    sales pay for it (all in, no cash is left before they do)."""
    from marketboss.data.synth import synth_bars

    market = Market.from_bars(synth_bars(["AAA", "BBB", "CCC", "DDD", "EEE"], "2022-01-01", "2023-12-31", "1Day",
                                         seed=5))  # fmt: skip
    stamps = market.timestamps()
    months = stamps.dt.strftime("%Y-%m")
    rows, held, k = [], set(), 0
    for t in range(21, market.n_times):
        if months[t] == months[t - 1]:
            continue
        mom = market.close[t] / market.close[t - 20] - 1
        top = {int(s) for s in np.argsort(-mom)[:2]}
        orders = [(s, "BUY", weight) for s in sorted(top)] + [(s, "SELL", 0.0) for s in sorted(held)]
        for s, action, w in orders:
            rows.append({"id": f"sig-{k:04d}", "timestamp": stamps[t], "symbol": market.symbols[s], "action": action,
                         "quantity": None, "strategy": "rotation", "price": None, "target_weight": w})  # fmt: skip
            k += 1
        held = top
    signals = pl.DataFrame(rows, schema=SIGNAL_SCHEMA)
    result = run_backtest(market, signals, BacktestConfig(costs=Costs(commission=0.001, slippage_bps=2)))
    statuses = result.orders["status"].value_counts()
    assert "rejected" not in statuses["status"].to_list(), statuses
    sold = result.orders.filter((pl.col("action") == "SELL") & (pl.col("status") == "filled"))
    assert sold.height > 10  # the rotation really happened, month after month
    assert result.metrics["rejected_orders"] == 0


@settings(max_examples=80, deadline=None)
@given(case=cases(orders=True), at_close=st.booleans())
def test_every_order_type_fills_within_its_bar_only_where_its_price_is_reached(case: Case, at_close: bool) -> None:
    """Without slippage a fill lies within its bar's [low, high]; a limit fills at its limit or better and a stop
    at its stop or worse, never on a bar that does not reach them; nothing fills before the bar after its
    signal (a market order at the close: on its signal bar); an exit fills only after its entry."""
    assume("order_type" in case.signals.columns)
    res = run_backtest(case.bars, case.signals, BacktestConfig(cash=1e6, fill=FillMode.CLOSE if at_close
                                                               else FillMode.NEXT_OPEN))  # fmt: skip
    sig = case.signals.select("id", pl.col("timestamp").alias("signal_ts"), "order_type", "limit_price",
                              "stop_price", "take_profit", "stop_loss")  # fmt: skip
    f = res.fills.join(sig, left_on="signal_id", right_on="id").join(case.bars, on=["timestamp", "symbol"])
    assert f.height == res.fills.height  # every fill on a bar of its symbol
    eps = 1e-9
    assert ((f["price"] >= f["low"] - eps) & (f["price"] <= f["high"] + eps)).all()
    own = f.filter(pl.col("leg").is_null())
    at_signal_bar = (own["order_type"] == "market") & at_close
    assert ((own["timestamp"] > own["signal_ts"]) | (at_signal_bar & (own["timestamp"] == own["signal_ts"]))).all()
    buy = pl.col("side") == "BUY"

    def holds(frame: pl.DataFrame, expr: pl.Expr) -> bool:
        return bool(frame.select(expr.all()).item()) if frame.height else True

    lim, limit = own.filter(pl.col("order_type").is_in(["limit", "stop_limit"])), pl.col("limit_price")
    assert holds(lim, pl.when(buy).then(pl.col("price") <= limit + eps).otherwise(pl.col("price") >= limit - eps))
    assert holds(lim, pl.when(buy).then(pl.col("low") <= limit).otherwise(pl.col("high") >= limit))
    stops, stop = own.filter(pl.col("order_type") == "stop"), pl.col("stop_price")
    sells = stops.filter(~buy)  # a sell stop: at its stop or worse, on a bar that reaches it
    assert holds(sells, (pl.col("price") <= stop + eps) & (pl.col("low") <= stop))
    # a buy stop is collared as Alpaca collars it (orders.nb.buy_stop_limit): triggered, it buys at the collar or
    # better, on a bar that reaches it
    buys = stops.filter(buy).with_columns(collar=stop.map_elements(buy_stop_limit, return_dtype=pl.Float64))
    assert holds(buys, (pl.col("price") <= pl.col("collar") + eps) & (pl.col("low") <= pl.col("collar")))
    legs = f.filter(pl.col("leg").is_not_null())
    tp, sl = legs.filter(pl.col("leg") == "take_profit"), legs.filter(pl.col("leg") == "stop_loss")
    price, tpx, slx = pl.col("price"), pl.col("take_profit"), pl.col("stop_loss")
    assert holds(tp, pl.when(buy).then(price <= tpx + eps).otherwise(price >= tpx - eps))  # a limit: it or better
    assert holds(sl, pl.when(buy).then(price >= slx - eps).otherwise(price <= slx + eps))  # a stop: it or worse
    entry_time = own.select("signal_id", pl.col("timestamp").alias("entry_ts"))
    assert legs.join(entry_time, on="signal_id").select((pl.col("timestamp") >= pl.col("entry_ts")).all()).item()


def test_a_sell_after_its_stop_loss_fired_closes_nothing_more() -> None:
    """Quantity signals with exits: the exit's shares count toward the next order on its side, so a long-only
    strategy's own sell after its stop fired is skipped (no short opens), and a long-short flip sells only what
    is left to sell."""
    bars = make_bars({"AAPL": [(100.0, 100.0), (100.0, 101.0), (90.0, 88.0), (87.0, 86.0), (86.0, 85.0)]})
    sig = make_signals([
        {"t": 0, "symbol": "AAPL", "action": "BUY", "quantity": 10, "price": 100.0, "order_type": "market",
         "stop_loss": 95.0},
        {"t": 3, "symbol": "AAPL", "action": "SELL", "quantity": 10},
    ])  # fmt: skip
    res = run_backtest(bars, sig, BacktestConfig(cash=10_000))
    assert res.fills.select("side", "qty", "leg").rows() == [("BUY", 10.0, None), ("SELL", 10.0, "stop_loss")]
    assert res.orders["status"].to_list() == ["filled", "skipped"] and res.equity["positions_value"][-1] == 0
    flip = make_signals([
        {"t": 0, "symbol": "AAPL", "action": "BUY", "quantity": 10, "price": 100.0, "order_type": "market",
         "stop_loss": 95.0},
        {"t": 3, "symbol": "AAPL", "action": "SELL", "quantity": 20},
    ])  # fmt: skip
    res = run_backtest(bars, flip, BacktestConfig(cash=10_000))
    assert res.fills.select("side", "qty", "leg").rows()[-1] == ("SELL", 10.0, None)  # short 10: the intended -1


def test_a_flips_exits_go_on_the_shares_it_opens() -> None:
    """Long 10, then a sale of 20 with a stop at 105 and a target at 90: the 10 short past zero carry them (the
    executor sends them with the flip's rest), and the stop buys those 10 back when a bar reaches 105. Before, a
    flip's exits were dropped: the short it opened ran unprotected to the end. The event path's flips, whose
    orders carry the parameters' exits, alike."""
    bars = make_bars({"AAA": [(100.0, 100.0)] * 5 + [(101.0, 105.0), (95.0, 94.0)]})  # bar 5's high: 106.05
    flip = make_signals([
        {"t": 0, "symbol": "AAA", "action": "BUY", "quantity": 10, "price": 100.0},
        {"t": 2, "symbol": "AAA", "action": "SELL", "quantity": 20, "price": 100.0, "order_type": "market",
         "stop_loss": 105.0, "take_profit": 90.0},
    ])  # fmt: skip
    res = run_backtest(bars, flip, BacktestConfig(cash=10_000))
    assert res.fills.select("side", "qty", "price", "leg").rows() == [
        ("BUY", 10.0, 100.0, None), ("SELL", 20.0, 100.0, None), ("BUY", 10.0, 105.0, "stop_loss")]  # fmt: skip
    assert res.equity["positions_value"][-1] == 0

    class Flip(marketboss.EventStrategy[marketboss.EventParams]):
        name = "flip"

        def on_bar(self, ctx: marketboss.Context) -> None:
            if ctx.t == 0:
                ctx.buy(10)
            if ctx.t == 2:
                ctx.sell(20)

    events = marketboss.run(Flip(long_only=False, stop_loss_pct=5.0), bars, cash=10_000)
    assert events.fills.select("side", "qty", "price", "leg").rows() == res.fills.select(
        "side", "qty", "price", "leg").rows()  # fmt: skip


class LongBars1To4(Strategy):
    """Long one unit from bar 1 to bar 4, flat otherwise (10 shares a unit: the default sizing)."""

    def exposure(self, bars: SymbolBars) -> np.ndarray:
        out = np.zeros(bars.close.shape[0])
        out[1:5] = 1.0
        return out


def test_a_long_only_strategys_sale_with_no_shares_held_does_not_trade_nor_open_a_short() -> None:
    """The cash (500) cannot pay for the BUY of 10 at 100: rejected. The strategy's SELL of those 10 finds no
    shares held when it fills: a long-only strategy (the default) never shorts, so it does not trade (status
    long_only, said in the rejections), as the paper executor skips it. A long-short one shorts as before (at 40:
    its collateral within the cash), and so do the same signals run as a file (no strategy), unless the config
    says long_only."""
    bars = make_bars({"AAA": [(100.0, 100.0)] * 6 + [(40.0, 40.0)] * 2})
    res = marketboss.run(LongBars1To4, bars, cash=500)
    assert res.orders.select("action", "status").rows() == [("BUY", "rejected"), ("SELL", "long_only")]
    assert res.rejections["reason"].to_list() == ["insufficient cash",
                                                  "long_only: no shares held to sell (never a short)"]
    assert res.fills.height == 0 and res.trades.height == 0 and res.config.long_only
    assert res.equity["equity"].to_list() == [500.0] * 8
    assert (res.metrics["rejected_orders"], res.metrics["unfilled_orders"], res.metrics["final_equity"]) == (1, 0, 500)
    short = marketboss.run(LongBars1To4, bars, {"long_only": False}, cash=500)  # exposure >= 0: the same signals
    assert short.orders["status"].to_list() == ["rejected", "filled"] and not short.config.long_only
    assert short.trades["side"].to_list() == ["SHORT"]
    _, sig = run_strategy(Market.from_bars(bars), LongBars1To4(), BacktestConfig(cash=500))
    as_file = run_backtest(bars, sig, BacktestConfig(cash=500))  # a signals file trades its sales whole
    assert as_file.trades["side"].to_list() == ["SHORT"] and not as_file.config.long_only
    cut = run_backtest(bars, sig, BacktestConfig(cash=500, long_only=True))
    assert cut.orders["status"].equals(res.orders["status"]) and cut.trades.height == 0


def test_a_long_only_sale_is_cut_to_the_shares_held_when_it_fills() -> None:
    """Under long_only a sale sells what is held at its fill, never through zero: a quantity sale of 10 holding 4
    sells 4 (filled, its fill says 4); a target weight below zero closes the position; a sale after the position
    is gone does not trade. Purchases are untouched; without long_only the same signals go short."""
    sig = make_signals([{"t": 0, "symbol": "AAPL", "action": "BUY", "quantity": 4},
                        {"t": 1, "symbol": "AAPL", "action": "SELL", "quantity": 10},
                        {"t": 2, "symbol": "AAPL", "action": "BUY", "quantity": 3},
                        {"t": 3, "symbol": "AAPL", "action": "SELL", "target_weight": -0.5}])
    bars = make_bars({"AAPL": AAPL})
    res = run_backtest(bars, sig, BacktestConfig(cash=1_000, long_only=True))
    assert res.orders["status"].to_list() == ["filled"] * 4
    assert res.fills.select("side", "qty").rows() == [("BUY", 4.0), ("SELL", 4.0), ("BUY", 3.0), ("SELL", 3.0)]
    assert res.trades["side"].to_list() == ["LONG", "LONG"] and res.equity["positions_value"][-1] == 0
    both = make_signals([{"t": 0, "symbol": "AAPL", "action": "SELL", "quantity": 5},
                         {"t": 1, "symbol": "AAPL", "action": "SELL", "target_weight": -0.5}])
    res = run_backtest(bars, both, BacktestConfig(cash=1_000, long_only=True))
    assert res.orders["status"].to_list() == ["long_only", "long_only"] and res.fills.height == 0
    res = run_backtest(bars, sig, BacktestConfig(cash=1_000))
    assert res.fills.select("side", "qty").rows()[:2] == [("BUY", 4.0), ("SELL", 10.0)]
    assert "SHORT" in res.trades["side"].to_list()


def test_a_resting_order_through_zero_fills_as_the_positions_close_a_market_one_whole() -> None:
    """Alpaca refuses a resting order through zero, so the paper executor sends its close alone (a market one goes
    as two orders): a gtc stop selling 11 of 10 held sells the 10 (a strategy's stop sized from its shares where
    the account holds fewer); a market sale of 25 of 10 goes short 15, as before."""
    bars = make_bars({"AAPL": AAPL})
    sig = make_signals([{"t": 0, "symbol": "AAPL", "action": "BUY", "quantity": 10},
                        {"t": 1, "symbol": "AAPL", "action": "SELL", "quantity": 11, "order_type": "stop",
                         "stop_price": 99.0, "time_in_force": "gtc"}])  # fmt: skip
    res = run_backtest(bars, sig, BacktestConfig(cash=10_000))
    assert res.fills.select("side", "qty").rows() == [("BUY", 10.0), ("SELL", 10.0)]
    assert res.orders["status"].to_list() == ["filled", "filled"] and res.equity["positions_value"][-1] == 0
    flip = make_signals([{"t": 0, "symbol": "AAPL", "action": "BUY", "quantity": 10},
                         {"t": 1, "symbol": "AAPL", "action": "SELL", "quantity": 25}])
    assert run_backtest(bars, flip, BacktestConfig(cash=10_000)).fills["qty"].to_list() == [10.0, 25.0]


def test_each_bracket_closes_its_own_entry_and_a_trim_ends_them() -> None:
    """Alpaca's bracket legs are the entry's own orders for its own shares, and the paper executor cancels a
    position's exits before an order that reduces it: AAA adds 5 plain shares to a bracketed 10, and the
    take-profit sells the 10; BBB trims 4 of its bracketed 10, and the 6 left have no exits; CCC's two brackets
    each stop out their own 10, and the sale of 20 after them finds nothing left (skipped); DDD, short, covers
    the second entry's 5 at its own take-profit and keeps the first's 10."""
    flat = [(100.0, 100.0)] * 3
    bars = make_bars({"AAA": [*flat, (108.0, 112.0), (111.0, 111.0)], "BBB": [*flat, (108.0, 112.0), (111.0, 111.0)],
                      "CCC": [*flat, (90.0, 89.0), (89.0, 89.0)], "DDD": [*flat, (96.0, 93.0), (94.0, 94.0)]})

    def buy(t: int, sym: str, qty: float, **exits: float) -> dict[str, object]:
        return {"t": t, "symbol": sym, "action": "BUY", "quantity": qty, "price": 100.0, **exits}

    def sell(t: int, sym: str, qty: float, **exits: float) -> dict[str, object]:
        return {**buy(t, sym, qty, **exits), "action": "SELL"}

    sig = make_signals([
        buy(0, "AAA", 10, take_profit=110.0, stop_loss=90.0), buy(1, "AAA", 5),
        buy(0, "BBB", 10, take_profit=110.0, stop_loss=90.0), sell(1, "BBB", 4),
        buy(0, "CCC", 10, stop_loss=95.0), buy(1, "CCC", 10, stop_loss=93.0), sell(3, "CCC", 20),
        sell(0, "DDD", 10, take_profit=90.0, stop_loss=110.0), sell(1, "DDD", 5, take_profit=95.0, stop_loss=108.0),
    ])  # fmt: skip
    res = run_backtest(bars, sig, BacktestConfig(cash=100_000))
    exits = res.fills.filter(pl.col("leg").is_not_null()).sort("symbol", "signal_id")
    by_id = dict(zip(sig["id"], sig["symbol"] + ":" + sig["quantity"].cast(pl.Int64).cast(pl.String), strict=True))
    rows = [(by_id[r["signal_id"]], r["side"], r["qty"], r["leg"], r["price"]) for r in exits.iter_rows(named=True)]
    assert rows == [("AAA:10", "SELL", 10.0, "take_profit", 110.0),
                    ("CCC:10", "SELL", 10.0, "stop_loss", 90.0), ("CCC:10", "SELL", 10.0, "stop_loss", 90.0),
                    ("DDD:5", "BUY", 5.0, "take_profit", 95.0)]  # fmt: skip
    held = res.trades.filter(~pl.col("closed")).group_by("symbol").agg(pl.col("qty").sum()).sort("symbol").rows()
    assert held == [("AAA", 5.0), ("BBB", 6.0), ("DDD", 10.0)]
    assert res.orders.filter(pl.col("symbol") == "CCC")["status"].to_list() == ["filled", "filled", "skipped"]


def test_the_kernel_stays_inside_its_arrays(tmp_path: Path) -> None:
    """With numba's bounds checks on, in a process of its own (its own kernel cache): orders that never go live
    (market orders filled at the close, signalled between bars) ahead of working trailing-stop and stop-limit
    orders, whose per-order state is indexed by their row. A kernel that sized that state by the live orders
    only read and wrote past its end, and its results then depended on whatever memory lay there."""
    import json
    import os
    import subprocess
    import sys

    from marketboss.data.io import write_bars
    from marketboss.data.synth import synth_bars

    bars = synth_bars(["AAA"], "2023-01-02", "2023-03-31", "1Day", seed=3)
    write_bars(bars, tmp_path / "bars.parquet")
    times = bars["timestamp"].to_list()
    rows = [{"id": f"m{i}", "timestamp": times[3 + i].replace(hour=12).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "symbol": "AAA", "action": "BUY", "quantity": 1} for i in range(5)]  # fmt: skip
    at = times[10].strftime("%Y-%m-%dT%H:%M:%SZ")
    price = float(bars["close"][10])
    rows += [{"id": "trail", "timestamp": at, "symbol": "AAA", "action": "BUY", "quantity": 1,
              "order_type": "trailing_stop", "trail_percent": 2.0, "time_in_force": "gtc"},
             {"id": "stoplimit", "timestamp": at, "symbol": "AAA", "action": "BUY", "quantity": 1,
              "order_type": "stop_limit", "stop_price": round(price * 1.01, 2), "limit_price": round(price * 1.03, 2),
              "time_in_force": "gtc"}]  # fmt: skip
    # scaling in with exits (each entry's own, per row) and a trim ending them
    rows += [{"id": f"b{i}", "timestamp": times[12 + i].strftime("%Y-%m-%dT%H:%M:%SZ"), "symbol": "AAA",
              "action": "BUY", "quantity": 1, "take_profit": round(price * 1.2, 2), "stop_loss": round(price * 0.8, 2)}
             for i in range(3)]  # fmt: skip
    rows += [{"id": "t", "timestamp": times[16].strftime("%Y-%m-%dT%H:%M:%SZ"), "symbol": "AAA", "action": "BUY",
              "quantity": 1, "trail_percent": 3.0},
             {"id": "s", "timestamp": times[18].strftime("%Y-%m-%dT%H:%M:%SZ"), "symbol": "AAA", "action": "SELL",
              "quantity": 1}]  # fmt: skip
    (tmp_path / "signals.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    code = """
import sys
from marketboss.backtest import BacktestConfig, FillMode, run_backtest
from marketboss.data.io import read_bars
from marketboss.signals import read_signals_frame
r = run_backtest(read_bars(sys.argv[1]), read_signals_frame(sys.argv[2]), BacktestConfig(fill=FillMode.CLOSE))
print("statuses", sorted(r.orders["status"].to_list()))
"""
    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path / "numba"),
           "MARKETBOSS_CACHE_DIR": "off"}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "bars.parquet"), str(tmp_path / "signals.jsonl")],
                         env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("no_bar") == 5, out.stdout
