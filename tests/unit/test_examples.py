"""The strategies in examples/, each run as a user runs it (`marketboss backtest --strategy examples/x.py:Class`),
and its results checked against what the strategy says it does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from marketboss.backtest import load_run
from marketboss.backtest.metrics import buy_and_hold_equity
from marketboss.data.io import read_bars, write_bars
from marketboss.data.market import Market
from marketboss.data.synth import synth_bars
from marketboss.indicators import bollinger, rsi, zscore
from marketboss.signals import read_signals_frame
from marketboss.signals.nb import tick
from tests.unit.cli_app import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RSI = f"{EXAMPLES / 'rsi_bracket.py'}:RsiBracket"
ROTATION = f"{EXAMPLES / 'momentum_rotation.py'}:MomentumRotation"
BUY_HOLD = f"{EXAMPLES / 'buy_and_hold.py'}:BuyAndHold"
BOLLINGER = f"{EXAMPLES / 'bollinger_reversion.py'}:BollingerReversion"
SYMBOLS = ["AAPL", "MSFT", "JPM", "XOM", "KO"]


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return synth_bars(SYMBOLS, "2021-01-01", "2023-12-31", "1Day", seed=7)


@pytest.fixture
def data(bars: pl.DataFrame, workdir: Path) -> Path:
    path = workdir / "data" / "market_data.jsonl"
    write_bars(bars, path)
    return path


def _bar_open(market: Market, symbol: str, at: pl.Series) -> np.ndarray:
    """Each time's open of the symbol (the fill bar's)."""
    s = market.symbols.index(symbol)
    t = np.searchsorted(market.times, at.dt.epoch("us").to_numpy())
    return market.open[t, s]


def test_rsi_bracket_enters_on_oversold_and_its_stops_lose_at_most_five_percent(data: Path, workdir: Path) -> None:
    slip_bps = 5.0
    assert cli("backtest", "--strategy", RSI, "--data", str(data), "--slippage-bps", str(slip_bps),
               "--output-dir", "runs/rsi") == 0
    run = load_run(workdir / "runs" / "rsi")
    market = Market.from_bars(read_bars(data))
    sig = read_signals_frame(workdir / "runs" / "rsi" / "signals.jsonl")
    buys = sig.filter(pl.col("action") == "BUY")
    assert buys.height > 0
    for row in buys.iter_rows(named=True):  # each entry: RSI below 30 at its bar, a 5% stop and a 10% target
        s = market.symbols.index(row["symbol"])
        t = int(np.searchsorted(market.times, row["timestamp"].timestamp() * 1e6))
        assert rsi(market.close[:, s], 14)[t] < 30
        assert row["stop_loss"] == pytest.approx(row["price"] * 0.95, abs=0.01)
        assert row["take_profit"] == pytest.approx(row["price"] * 1.10, abs=0.01)
    legs = run.fills.filter(pl.col("leg").is_not_null()).join(
        buys.select(pl.col("id").alias("signal_id"), pl.col("price").alias("entry"), "stop_loss", "take_profit"),
        on="signal_id")  # fmt: skip
    stops, targets = legs.filter(pl.col("leg") == "stop_loss"), legs.filter(pl.col("leg") == "take_profit")
    assert stops.height > 0 and targets.height > 0  # both legs were exercised on this data
    slip = slip_bps / 10_000
    for row in stops.iter_rows(named=True):
        opened = _bar_open(market, row["symbol"], pl.Series([row["timestamp"]]))[0]
        if opened >= row["stop_loss"]:  # reached within the bar: filled at the stop, 5% below the entry
            assert row["price"] == pytest.approx(row["stop_loss"] * (1 - slip))
            assert row["price"] >= row["entry"] * 0.95 * (1 - slip) - 0.01
        else:  # gapped through the stop: filled at the open, below it
            assert row["price"] == pytest.approx(opened * (1 - slip))
    for row in targets.iter_rows(named=True):
        assert row["price"] >= row["entry"] * 1.10 * (1 - slip) - 0.01
    assert run.metrics["n_trades"] == run.trades.filter(pl.col("closed")).height > 0


def test_rotation_holds_top_k_symbols_after_each_monthly_rebalance(data: Path, workdir: Path) -> None:
    k = 2
    assert cli("backtest", "--strategy", ROTATION, "--param", f"top_k={k}", "--param", "lookback=40",
               "--data", str(data), "--output-dir", "runs/rot") == 0
    run = load_run(workdir / "runs" / "rot")
    market = Market.from_bars(read_bars(data))
    sig = read_signals_frame(workdir / "runs" / "rot" / "signals.jsonl")
    assert set(sig["target_weight"].unique()) <= {0.0, 1.0 / k}
    days = sig["timestamp"].dt.date().unique().sort()
    months = market.timestamps().dt.strftime("%Y-%m")
    first_of_month = set(market.timestamps().filter(months != months.shift(1)).dt.date().to_list())
    assert set(days.to_list()) <= first_of_month and len(days) >= 20  # trades on month starts only
    fills = run.fills.with_columns(
        signed=pl.when(pl.col("side") == "BUY").then(pl.col("qty")).otherwise(-pl.col("qty")))
    held = fills.sort("timestamp").with_columns(pos=pl.col("signed").cum_sum().over("symbol"))
    for day in fills["timestamp"].unique().sort():
        after = held.filter(pl.col("timestamp") <= day).group_by("symbol").agg(pl.col("pos").last())
        top = after.filter(pl.col("pos").abs() > 1e-9)
        assert top.height == k, (day, after)
        i = int(np.searchsorted(market.times, day.timestamp() * 1e6))  # the fill bar: the day after the rebalance
        lb = market.close[i - 1] / market.close[i - 1 - 40] - 1.0
        best = {market.symbols[j] for j in np.argsort(-lb)[:k]}
        assert set(top["symbol"]) == best  # the k best lookback returns as of the rebalance bar


def test_buy_and_hold_equity_is_the_reports_buy_and_hold_line(data: Path, workdir: Path) -> None:
    """By default (weight 1.0: the whole portfolio, in equal weight; before, 1.0 a symbol: all in the first symbol
    and the rest rejected for cash, +107% against the report's buy and hold line's -1.8%)."""
    assert cli("backtest", "--strategy", BUY_HOLD, "--fill", "close", "--fractional", "--data", str(data),
               "--output-dir", "runs/bh") == 0  # fmt: skip
    run = load_run(workdir / "runs" / "bh")
    market = Market.from_bars(read_bars(data))
    line = buy_and_hold_equity(market, 100_000.0)
    # to the share grid's precision (fractional shares in millionths, nb.SHARE_PARTS: a dollar-millionth in 1e5)
    np.testing.assert_allclose(run.equity["equity"].to_numpy(), line, rtol=1e-8)
    assert run.metrics["total_return_pct"] == pytest.approx(run.metrics["buy_hold_return_pct"], rel=1e-8)
    assert run.fills.height == len(SYMBOLS) and set(run.fills["side"]) == {"BUY"}


def test_bollinger_buys_below_the_lower_band_and_exits_at_the_middle(data: Path, workdir: Path) -> None:
    assert cli("backtest", "--strategy", BOLLINGER, "--param", "window=20", "--param", "k=2",
               "--data", str(data), "--output-dir", "runs/bb") == 0
    market = Market.from_bars(read_bars(data))
    sig = read_signals_frame(workdir / "runs" / "bb" / "signals.jsonl")
    assert sig.height > 10 and set(sig["action"]) == {"BUY", "SELL"}
    for symbol, rows in sig.group_by("symbol"):
        s = market.symbols.index(str(symbol[0]))
        band = bollinger(market.close[:, s], 20, 2.0)
        t = np.searchsorted(market.times, rows["timestamp"].dt.epoch("us").to_numpy())
        close = market.close[t, s]
        buy = (rows["action"] == "BUY").to_numpy()
        assert (close[buy] < band.lower[t[buy]]).all()
        assert (close[~buy] >= band.middle[t[~buy]]).all()
        assert buy[0] and (buy[1:] != buy[:-1]).all()  # long only: in, out, in, out


def test_rsi_bracket_runs_through_sweep_and_compare(
    data: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("sweep", "--strategy", RSI, "--grid", "lower=20,30", "--grid", "stop_loss_pct=3,5",
               "--data", str(data), "--output", "out/rsi.parquet", "--workers", "1") == 0
    summary = pl.read_parquet(workdir / "out" / "rsi.summary.parquet")
    assert summary.height == 4 and summary["n_trades"].sum() > 0
    assert cli("backtest", "--strategy", RSI, "--param", "lower=30", "--param", "stop_loss_pct=3",
               "--data", str(data), "--output-dir", "runs/one") == 0
    one = load_run(workdir / "runs" / "one").metrics
    row = summary.filter((pl.col("lower") == 30) & (pl.col("stop_loss_pct") == 3)).row(0, named=True)
    assert row["final_equity"] == pytest.approx(one["final_equity"]) and row["n_trades"] == one["n_trades"]

    capsys.readouterr()
    assert cli("compare", "--strategies", f"{RSI},ma_crossover", "--param", f"{RSI}.take_profit_pct=8",
               "--data", str(data), "--table", "out/compare.csv", "--output", "out/best.jsonl") == 0
    table = pl.read_csv(workdir / "out" / "compare.csv")
    assert table["strategy"].to_list() == [RSI, "ma_crossover"] and set(table["status"]) == {"ok"}
    params = json.loads(table.filter(pl.col("strategy") == RSI)["params"][0])
    assert params["take_profit_pct"] == 8 and params["stop_loss_pct"] == 5
    best = read_signals_frame(workdir / "out" / "best.jsonl")
    selected = table.filter(pl.col("selected"))["strategy"][0]
    assert set(best["strategy"]) == {"rsi_bracket" if selected == RSI else "ma_crossover"}


def test_time_trailing_stop_exits_by_its_trail_or_after_its_holding_time(data: Path, workdir: Path) -> None:
    """The event-driven example through the CLI as a file plug-in: entries only on a breakout, every position
    left either by its trailing stop leg or by the time stop, never held much past `hold_bars`."""
    hold = 7
    spec = f"{EXAMPLES / 'time_trailing_stop.py'}:TimeTrailingStop"
    assert cli("backtest", "--strategy", spec, "--param", f"hold_bars={hold}", "--param", "trail_percent=4",
               "--data", str(data), "--output-dir", "runs/tts") == 0  # fmt: skip
    run = load_run(workdir / "runs" / "tts")
    market = Market.from_bars(read_bars(data))
    sig = read_signals_frame(workdir / "runs" / "tts" / "signals.jsonl")
    buys = sig.filter(pl.col("action") == "BUY")
    assert buys.height > 0 and (buys["trail_percent"] == 4).all()
    for row in buys.iter_rows(named=True):  # a breakout: the close above the 20 closes before it
        s = market.symbols.index(row["symbol"])
        t = int(np.searchsorted(market.times, row["timestamp"].timestamp() * 1e6))
        assert t >= 20 and market.close[t, s] > np.nanmax(market.close[t - 20 : t, s])
    closed = run.trades.filter(pl.col("closed"))
    exits = run.fills.filter(pl.col("side") == "SELL")
    by_trail, by_time = exits.filter(pl.col("leg") == "trailing_stop").height, exits.filter(pl.col("leg").is_null())
    assert by_trail > 0 and by_time.height > 0  # both exits were exercised on this data
    # the time stop is decided on the hold_bars-th bar after the entry's fill and fills at the next open
    assert (closed["bars"] <= hold + 1).all() and (closed["bars"] == hold + 1).sum() == by_time.height


def test_breakeven_stop_moves_each_armed_stop_to_the_entry_price(data: Path, workdir: Path) -> None:
    """The event-driven example through the CLI (its compiled path): each trade up arm_pct has its bracket
    canceled (a CANCEL line naming its entry, no leg of it filling after that) and a gtc sell stop at the entry
    price (on the tick grid) in its place; its signals file backtests to the very same fills."""
    spec = f"{EXAMPLES / 'breakeven_stop.py'}:BreakevenStop"
    assert cli("backtest", "--strategy", spec, "--param", "arm_pct=3", "--data", str(data),
               "--output-dir", "runs/be") == 0  # fmt: skip
    run = load_run(workdir / "runs" / "be")
    sig = read_signals_frame(workdir / "runs" / "be" / "signals.jsonl")
    buys = {r["id"]: r for r in sig.filter(pl.col("action") == "BUY").iter_rows(named=True)}
    cancels = sig.filter(pl.col("action") == "CANCEL")
    stops = sig.filter((pl.col("action") == "SELL") & (pl.col("order_type") == "stop"))
    assert cancels.height >= 5 and stops.height == cancels.height
    by_bar = {(r["timestamp"], r["symbol"]): r for r in stops.iter_rows(named=True)}
    for cancel in cancels.iter_rows(named=True):
        entry = buys[cancel["cancels"]]
        stop = by_bar[(cancel["timestamp"], entry["symbol"])]  # placed at the bar of the cancel
        assert stop["stop_price"] == tick(entry["price"]) and stop["time_in_force"] == "gtc"
        assert cancel["timestamp"] > entry["timestamp"]
        legs = run.fills.filter((pl.col("signal_id") == entry["id"]) & pl.col("leg").is_not_null())
        assert (legs["timestamp"] <= cancel["timestamp"]).all()  # its bracket trades no more
    assert run.fills.filter(pl.col("signal_id").is_in(stops["id"].to_list())).height > 0  # some stopped out even
    assert cli("backtest", "--signals", str(workdir / "runs" / "be" / "signals.jsonl"), "--data", str(data),
               "--output-dir", "runs/be2") == 0  # fmt: skip
    assert load_run(workdir / "runs" / "be2").fills.equals(run.fills)


def test_pairs_trades_the_two_legs_against_each_other_on_the_spreads_z_score(data: Path, workdir: Path) -> None:
    """The whole-market indicator example through the CLI: each entry, on a bar where the log spread's z-score
    (computed here again) is beyond entry_z, sells the rich leg and buys the cheap one by target weight, and no
    other symbol trades; each pair is closed where the z-score is back within exit_z or at the time stop."""
    spec = f"{EXAMPLES / 'pairs_events.py'}:PairsEvents"
    assert cli("backtest", "--strategy", spec, "--param", "a=JPM", "--param", "b=KO", "--param", "entry_z=1.5",
               "--param", "hold_bars=15", "--data", str(data), "--output-dir", "runs/pairs") == 0  # fmt: skip
    market = Market.from_bars(read_bars(data))
    a, b = market.symbols.index("JPM"), market.symbols.index("KO")
    z = zscore(np.log(market.close[:, a]) - np.log(market.close[:, b]), 40)
    sig = read_signals_frame(workdir / "runs" / "pairs" / "signals.jsonl")
    assert set(sig["symbol"]) == {"JPM", "KO"}
    bar = np.searchsorted(market.times, sig["timestamp"].dt.epoch("us").to_numpy())
    entries = sig.with_columns(pl.Series("bar", bar)).filter(pl.col("target_weight") != 0)
    assert entries.height >= 6  # three pairs or more
    exits = sig.with_columns(pl.Series("bar", bar)).filter(pl.col("target_weight") == 0)
    entered = -1
    for t, legs in entries.group_by("bar", maintain_order=True):
        t = int(t[0])
        rich = "JPM" if z[t] > 0 else "KO"
        assert abs(z[t]) > 1.5 and t > entered
        assert sorted(legs.select("symbol", "action", "target_weight").rows()) == sorted(
            [(rich, "SELL", -0.4), ({"JPM": "KO", "KO": "JPM"}[rich], "BUY", 0.4)])
        out = exits.filter(pl.col("bar") > t)["bar"]
        if out.len():  # closed where the spread reverted, else at the time stop
            assert abs(z[out[0]]) < 0.5 or out[0] - t == 15
        entered = t
    run = load_run(workdir / "runs" / "pairs")
    assert run.trades.height >= 6 and set(run.trades["side"]) == {"LONG", "SHORT"}
    assert run.equity["equity"].min() > 0
