"""Backtest vs paper: the join by signal id measures exactly the slippage that was put in, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from marketboss.backtest.costs import BacktestConfig, Costs
from marketboss.backtest.engine import run_backtest
from marketboss.data.io import write_bars, write_jsonl
from marketboss.data.market import Market
from marketboss.errors import MarketBossError
from marketboss.execution.reconcile import MISMATCH_LIMIT, compare_backtest_paper
from marketboss.execution.slippage import slippage_bps
from marketboss.signals import ORDER_SCHEMA, SIGNAL_SCHEMA, write_signals
from marketboss.strategies.registry import create
from tests.unit.cli_app import cli

SLIP_BPS = 10.0


def _paper_from_backtest(bars: pl.DataFrame, signals: pl.DataFrame, drop: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Paper logs as if every backtest fill had paid SLIP_BPS more, with one fill missed entirely."""
    bt = run_backtest(bars, signals)
    worse = pl.when(pl.col("side").str.to_uppercase() == "BUY").then(1 + SLIP_BPS / 1e4).otherwise(1 - SLIP_BPS / 1e4)
    trades = bt.fills.with_row_index("i").select(
        "timestamp", "signal_id", "symbol", pl.col("side").str.to_uppercase(),
        pl.when(pl.col("i") == drop).then(0.0).otherwise(pl.col("qty")).alias("qty"),
        pl.when(pl.col("i") == drop).then(None).otherwise(pl.col("price") * worse).alias("filled_price"),
        pl.when(pl.col("i") == drop).then(pl.lit("expired")).otherwise(pl.lit("filled")).alias("status"),
        pl.lit(0.0).alias("commission"),
    )  # fmt: skip
    equity = bt.equity.select("timestamp", (pl.col("equity") - 5.0).alias("portfolio_value"))
    equity = equity.with_row_index("i").with_columns(
        pl.when(pl.col("i") == 0).then(100_000.0).otherwise(pl.col("portfolio_value")).alias("portfolio_value")
    )
    return trades, equity.drop("i")


def test_join_measures_the_slippage_put_in_and_the_missed_fill(daily_bars: pl.DataFrame) -> None:
    signals = create("ma_crossover", {"fast": 5, "slow": 20}).signals(Market.from_bars(daily_bars))
    trades, equity = _paper_from_backtest(daily_bars, signals, drop=3)
    cmp = compare_backtest_paper(daily_bars, signals, trades, equity)
    s = cmp.summary
    assert s["avg_slippage_bps"] == pytest.approx(SLIP_BPS, rel=1e-6)
    assert s["missed_in_paper"] == 1 and s["filled_in_paper_only"] == 0 and s["other_quantity"] == 0
    assert s["paper_fills"] == trades.height - 1 == s["backtest_fills"] - 1
    halved = trades.with_columns(pl.when(pl.int_range(pl.len()) == 5).then(pl.col("qty") / 2).otherwise("qty"))
    assert compare_backtest_paper(daily_bars, signals, halved, equity).summary["other_quantity"] == 1
    filled = cmp.joined.filter(pl.col("status") == "filled")
    expected_usd = (filled["bt_price"] * SLIP_BPS / 1e4 * filled["paper_qty"]).sum()
    assert s["slippage_usd"] == pytest.approx(expected_usd, rel=1e-9)
    assert s["daily_return_correlation"] > 0.99  # the same curve, shifted by a constant
    assert s["return_difference_pct"] == pytest.approx(s["paper_return_pct"] - s["backtest_return_pct"])
    costly = compare_backtest_paper(daily_bars, signals, trades, equity, BacktestConfig(costs=Costs(commission=0.001)))
    notional = (costly.joined["bt_price"] * costly.joined["bt_qty"]).sum()
    assert costly.summary["backtest_commissions"] == pytest.approx(notional * 0.001, rel=1e-9) and notional > 0


def test_a_sparse_equity_log_is_valued_bar_by_bar_from_the_paper_fills(daily_bars: pl.DataFrame) -> None:
    """A replay snapshots equity only at its start and its fills: the paper account is valued at every bar from
    its fills instead, as the backtest values its own, so paper filled exactly as the backtest has its Sharpe and
    drawdown (the snapshots alone, carried over the days between, made a flat curve without drawdowns). A record
    of another run's signal in the log does not count."""
    signals = create("ma_crossover", {"fast": 5, "slow": 20}).signals(Market.from_bars(daily_bars))
    bt = run_backtest(daily_bars, signals)
    trades = bt.fills.select(
        "timestamp", "signal_id", "symbol", pl.col("side").str.to_uppercase(), "qty",
        pl.col("price").alias("filled_price"), pl.lit("filled").alias("status"), "commission",
    )  # fmt: skip
    other = trades.head(1).with_columns(pl.lit("sig-of-another-run").alias("signal_id"), pl.lit(1e6).alias("qty"))
    start = bt.equity.head(1).select("timestamp", "cash", pl.col("equity").alias("portfolio_value"))
    cmp = compare_backtest_paper(daily_bars, signals, pl.concat([other, trades]), start)
    s = cmp.summary
    assert s["backtest_max_drawdown_pct"] < -0.5  # a curve with drawdowns to compare
    assert s["paper_max_drawdown_pct"] == pytest.approx(s["backtest_max_drawdown_pct"], rel=1e-9)
    assert s["paper_sharpe"] == pytest.approx(s["backtest_sharpe"], rel=1e-9)
    assert s["paper_return_pct"] == pytest.approx(s["backtest_return_pct"], rel=1e-9)
    assert s["daily_return_correlation"] == pytest.approx(1.0, abs=1e-12)
    assert s["paper_fills"] == s["backtest_fills"] == trades.height


def test_no_shared_signal_is_a_clear_error(daily_bars: pl.DataFrame) -> None:
    signals = create("ma_crossover", {"fast": 5, "slow": 20}).signals(Market.from_bars(daily_bars))
    trades, equity = _paper_from_backtest(daily_bars, signals, drop=0)
    with pytest.raises(MarketBossError, match="shares no signal id"):
        compare_backtest_paper(daily_bars, signals, trades.with_columns(pl.lit("other").alias("signal_id")), equity)


def test_a_signal_of_a_symbol_without_bars_paper_refused_is_left_out_of_the_backtest(daily_bars: pl.DataFrame
                                                                                       ) -> None:  # fmt: skip
    """Paper recorded the broker's refusal of a symbol it has no asset for; reconcile stopped on it ("signals:2:
    field 'symbol': symbol 'ZZZZ' has no bars", naming no file). The backtest leaves it out: no fill either side."""
    signals = create("ma_crossover", {"fast": 5, "slow": 20}).signals(Market.from_bars(daily_bars))
    trades, equity = _paper_from_backtest(daily_bars, signals, drop=3)
    ghost = signals.head(1).with_columns(pl.lit("sig-ghost").alias("id"), pl.lit("ZZZZ").alias("symbol"))
    refused = trades.head(1).with_columns(pl.lit("sig-ghost").alias("signal_id"), pl.lit("ZZZZ").alias("symbol"),
                                          pl.lit(0.0).alias("qty"), pl.lit(None, pl.Float64).alias("filled_price"),
                                          pl.lit("rejected").alias("status"))  # fmt: skip
    cmp = compare_backtest_paper(daily_bars, pl.concat([signals, ghost]), pl.concat([trades, refused]), equity)
    plain = compare_backtest_paper(daily_bars, signals, trades, equity)
    assert cmp.summary["backtest_fills"] == plain.summary["backtest_fills"]
    assert (cmp.summary["missed_in_paper"], cmp.summary["filled_in_paper_only"]) == (1, 0)  # the dropped fill only


def test_reconcile_and_the_paper_log_share_one_slippage_formula(daily_bars: pl.DataFrame) -> None:
    """The joined table's slippage is the paper log's formula with the backtest's fill as the reference."""
    signals = create("ma_crossover", {"fast": 5, "slow": 20}).signals(Market.from_bars(daily_bars))
    trades, equity = _paper_from_backtest(daily_bars, signals, drop=3)
    joined = compare_backtest_paper(daily_bars, signals, trades, equity).joined.filter(pl.col("paper_price") > 0)
    assert joined.height > 5
    for row in joined.iter_rows(named=True):
        assert row["slippage_bps"] == slippage_bps(row["bt_side"], row["bt_price"], row["paper_price"])


def test_exit_fills_join_by_signal_and_leg_and_logs_without_legs_still_join() -> None:
    from datetime import UTC, datetime

    from marketboss.execution.reconcile import join_fills

    t = datetime(2024, 1, 2, tzinfo=UTC)
    bt = pl.DataFrame({"timestamp": [t] * 3, "signal_id": ["a", "a", "b"], "leg": [None, "stop_loss", None],
                       "symbol": ["X", "X", "Y"], "side": ["buy", "sell", "buy"], "qty": [10.0, 10.0, 5.0],
                       "price": [100.0, 95.0, 50.0]})  # fmt: skip
    paper = pl.DataFrame({"signal_id": ["a", "a", "b"], "leg": [None, "stop_loss", None], "symbol": ["X", "X", "Y"],
                          "side": ["BUY", "SELL", "BUY"], "qty": [10.0, 10.0, 5.0], "filled_price": [100.1, 94.0, 50.0],
                          "status": ["filled"] * 3})  # fmt: skip
    j = join_fills(bt, paper).sort("signal_id", "leg", nulls_last=False)
    assert j.select("signal_id", "leg", "bt_price", "paper_price").rows() == [
        ("a", None, 100.0, 100.1), ("a", "stop_loss", 95.0, 94.0), ("b", None, 50.0, 50.0)]  # fmt: skip
    stop = j.filter(pl.col("leg") == "stop_loss")
    assert stop["slippage_bps"][0] == pytest.approx(slippage_bps("SELL", 95.0, 94.0))
    only_b = pl.col("signal_id") == "b"
    old = join_fills(bt.drop("leg").filter(only_b), paper.drop("leg").filter(only_b))  # logs from before exits
    assert old.select("signal_id", "leg", "paper_qty").rows() == [("b", None, 5.0)]


def test_a_fill_the_backtest_refused_is_counted_as_filled_in_paper_only(daily_bars: pl.DataFrame) -> None:
    """A purchase beyond the backtest's cash (the paper account's margin took it) shows as a fill of paper's alone."""
    signals = create("ma_crossover", {"fast": 5, "slow": 20}).signals(Market.from_bars(daily_bars))
    big = signals.filter(pl.col("action") == "BUY").head(1).with_columns(
        pl.lit("sig-big").alias("id"), pl.lit(1_000_000.0).alias("quantity"))  # fmt: skip
    both = pl.concat([signals, big]).sort("timestamp", maintain_order=True)
    trades, equity = _paper_from_backtest(daily_bars, signals, drop=-1)
    trades = pl.concat([trades, trades.head(1).with_columns(pl.lit("sig-big").alias("signal_id"),
                                                            pl.lit(1_000_000.0).alias("qty"))])  # fmt: skip
    cmp = compare_backtest_paper(daily_bars, both, trades, equity)
    assert cmp.summary["filled_in_paper_only"] == 1 and cmp.summary["missed_in_paper"] == 0
    big_row = cmp.joined.filter(pl.col("signal_id") == "sig-big")  # refused for cash in the backtest
    assert big_row["bt_qty"].to_list() == [None] and big_row["paper_qty"].to_list() == [1_000_000.0]


def test_the_backtest_stops_where_the_paper_logs_end(daily_bars: pl.DataFrame) -> None:
    """A session that ended with a bracketed position open (the live loop's, at its --until): the bars go on, and
    the day after it the price falls through the stop-loss. Paper never traded that day, so the backtest does not
    either: nothing missed (before, the window took each symbol's next bar, and the stop's fill there counted as
    missed in paper)."""
    bars = daily_bars.filter(pl.col("symbol") == daily_bars["symbol"][0]).head(60)
    days, low, open_ = bars["timestamp"], bars["low"].to_numpy(), bars["open"].to_numpy()
    # the first day from 5 on whose low is the lowest since day 3 and which opened above it: the stop's day
    d = next(d for d in range(5, 60) if low[d] + 0.01 < min(open_[d], low[3:d].min()))
    stop = float(low[d]) + 0.01  # inside day d's range: its low goes through it
    row = {"id": "sig-a", "timestamp": days[2], "symbol": bars["symbol"][0], "action": "BUY", "quantity": 10.0,
           "strategy": "s", "price": bars["close"][2], "stop_loss": stop}
    signals = pl.DataFrame([row], schema={**SIGNAL_SCHEMA, **ORDER_SCHEMA})
    entry = run_backtest(bars.head(d), signals).fills  # the entry alone: paper stopped after day d - 1
    assert entry.height == 1
    trades = entry.select("timestamp", "signal_id", "symbol", pl.col("side").str.to_uppercase(), "qty",
                          pl.col("price").alias("filled_price"), pl.lit("filled").alias("status"), "commission")
    equity = pl.DataFrame({"timestamp": days[:d], "cash": [100_000.0] * d, "portfolio_value": [100_000.0] * d})
    assert run_backtest(bars, signals).fills["leg"].to_list() == [None, "stop_loss"]  # on the bars as they go on
    s = compare_backtest_paper(bars, signals, trades, equity).summary
    assert s["missed_in_paper"] == 0 and s["backtest_fills"] == s["paper_fills"] == 1


def test_reconcile_fractional_sizes_the_backtests_weights_as_the_paper_run_did(
    daily_bars: pl.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A paper run with --fractional bought fractions of a share for its target weights: `reconcile --fractional`
    backtests them so, and no fill shows at another quantity; without it, the backtest's whole shares differ from
    every one of paper's."""
    signals = create("ma_crossover", {"fast": 5, "slow": 20, "sizing": "weight", "weight": 0.3}).signals(
        Market.from_bars(daily_bars))  # fmt: skip
    bt = run_backtest(daily_bars, signals, BacktestConfig(fractional=True))
    trades = bt.fills.select("timestamp", "signal_id", "symbol", pl.col("side").str.to_uppercase(), "qty",
                             pl.col("price").alias("filled_price"), pl.lit("filled").alias("status"),
                             pl.lit(0.0).alias("commission"))  # fmt: skip
    assert (trades["qty"] != trades["qty"].floor()).all()
    paths = {name: tmp_path / f"{name}.jsonl" for name in ("bars", "signals", "trades", "equity")}
    write_bars(daily_bars, paths["bars"])
    write_signals(paths["signals"], signals)
    write_jsonl(paths["trades"], trades.with_columns(pl.col("timestamp").dt.to_string("%Y-%m-%dT%H:%M:%SZ")).to_dicts())
    start = {"timestamp": "2022-01-03T00:00:00Z", "portfolio_value": 100_000.0, "cash": 100_000.0}
    write_jsonl(paths["equity"], [start])
    args = [f"--{name if name != 'bars' else 'data'}={path}" for name, path in paths.items()]
    counts: dict[str, int] = {}
    for flag in ("--fractional", "--no-fractional"):
        assert cli("reconcile", *args, flag, "--show-trades", "0") == 0
        out = capsys.readouterr().out
        counts[flag] = int(next(ln for ln in out.splitlines() if "another quantity" in ln).split("│")[3])
    assert counts == {"--fractional": 0, "--no-fractional": trades.height}


def test_the_status_is_not_positive_when_paper_missed_the_fills(daily_bars: pl.DataFrame) -> None:
    """A paper account that filled nothing (or few of the backtest's fills) has kept its cash: its P&L >= 0 said
    "✅ Positive" for a run that traded none of the signals. The fills decide first; within MISMATCH_LIMIT the P&L."""
    signals = create("ma_crossover", {"fast": 5, "slow": 20}).signals(Market.from_bars(daily_bars))
    trades, equity = _paper_from_backtest(daily_bars, signals, drop=3)
    flat = equity.with_columns(pl.lit(100_000.0).alias("portfolio_value"))  # made and lost nothing
    n = trades.height
    nothing = trades.with_columns(pl.lit(0.0).alias("qty"), pl.lit(None, pl.Float64).alias("filled_price"),
                                  pl.lit("expired").alias("status"))  # fmt: skip
    s = compare_backtest_paper(daily_bars, signals, nothing, flat).summary
    assert s["missed_in_paper"] == n and s["paper_fills"] == 0
    assert s["status"] == f"❌ Nothing filled in paper ({n} backtest fills)"
    few = max(2, int(MISMATCH_LIMIT * n) + 1)  # just over the limit
    missing = trades.with_row_index("i").with_columns(
        pl.when(pl.col("i") < few).then(0.0).otherwise(pl.col("qty")).alias("qty")).drop("i")  # fmt: skip
    s = compare_backtest_paper(daily_bars, signals, missing, flat).summary
    assert s["missed_in_paper"] == few
    assert s["status"] == (f"⚠️ Fills differ ({few} missed in paper, 0 filled in paper only, 0 at another quantity, "
                           f"of {n})")
    # filled in both, at another quantity: as many other positions as missed fills leave
    last = pl.int_range(pl.len()) >= n - few
    halved = trades.with_columns(pl.when(last).then(pl.col("qty") / 2).otherwise(pl.col("qty")).alias("qty"))
    s = compare_backtest_paper(daily_bars, signals, halved, flat).summary
    assert s["other_quantity"] == few and s["missed_in_paper"] == 1  # the one _paper_from_backtest dropped
    assert s["status"] == (f"⚠️ Fills differ (1 missed in paper, 0 filled in paper only, {few} at another quantity, "
                           f"of {n})")
    one = compare_backtest_paper(daily_bars, signals, trades, flat).summary  # 1 missed: within the limit
    assert one["missed_in_paper"] == 1 and MISMATCH_LIMIT * n >= 1 and one["status"] == "✅ Positive"


@pytest.mark.parametrize(("settings", "said"), [
    ({"long_only": "maybe"}, ":2: field 'long_only': expected true or false, got 'maybe'"),
    ({"costs": {"spread_bps": "x"}}, ":2: field 'costs.spread_bps': expected a number >= 0, got 'x'"),
    ({"costs": {"slippage_bps": -1}}, ":2: field 'costs.slippage_bps': expected a number >= 0, got -1"),
    ({"costs": 2.0}, ":2: field 'costs': expected the broker's costs, an object, got 2.0"),
    ({"timeframe": 15}, ":2: field 'timeframe': expected a timeframe such as 1Day, got 15"),
])  # fmt: skip
def test_a_journals_run_of_a_wrong_kind_is_named(tmp_path: Path, settings: dict[str, object], said: str) -> None:
    """Before: "maybe" was taken as long-only, a spread of "x" failed in the backtest's settings."""
    from marketboss.errors import InputError
    from marketboss.execution.journal import Journal, journal_path
    from marketboss.execution.reconcile import run_settings

    trades = tmp_path / "trades.jsonl"
    j = Journal(journal_path(trades))
    j.run(timeframe="1Day", long_only=True, costs=None)
    j.run(**{"timeframe": "1Day", "long_only": True, "costs": None, **settings})
    j.close()
    with pytest.raises(InputError, match=re.escape(f"{journal_path(trades)}{said}")):
        run_settings(trades)


def test_runs_that_traded_other_settings_ask_for_the_option(tmp_path: Path, daily_bars: pl.DataFrame) -> None:
    """The journal's run records decide reconcile's defaults only when the runs agree; the signals' bars must
    be made of the data's (no 1Day from daily data's 15Min, nor 15Min from daily bars)."""
    from marketboss.data.calendar import Timeframe
    from marketboss.execution.journal import Journal, journal_path
    from marketboss.execution.reconcile import on_timeframe, run_settings

    trades = tmp_path / "trades.jsonl"
    j = Journal(journal_path(trades))
    j.run(timeframe="1Day", long_only=True, costs={"spread_bps": 2.0, "slippage_bps": 0.0})
    assert run_settings(trades) == {"timeframe": "1Day", "long_only": True, "spread_bps": 2.0, "slippage_bps": 0.0}
    j.run(timeframe="1Day", long_only=True, costs=None)  # an Alpaca run: its spread unknown, none modelled
    j.close()
    with pytest.raises(MarketBossError, match=r"its runs traded with spread_bps 0.0 and 2.0: give --spread-bps"):
        run_settings(trades)
    # the option the error asks for, given, settles it (it was asked for again, whatever was given)
    assert run_settings(trades, ["spread_bps"]) == {"timeframe": "1Day", "long_only": True, "slippage_bps": 0.0}
    j = Journal(journal_path(trades))
    j.run(timeframe="1Day", long_only=True, costs=None, exits={"stop_loss_pct": 5.0})  # the demo's paper run
    j.run(timeframe="1Day", long_only=True, costs=None, exits={})  # the guide's paper command, on the same logs
    j.close()
    with pytest.raises(MarketBossError, match=r"traded with exits none and stop_loss_pct=5: give --stop-loss-pct"):
        run_settings(trades, ["spread_bps"])
    assert "exits" not in run_settings(trades, ["spread_bps", "exits"])
    assert run_settings(tmp_path / "none.jsonl") == {}
    assert on_timeframe(daily_bars, Timeframe.parse("1Day")) is daily_bars
    with pytest.raises(MarketBossError, match="the signals' bars are 15Min, the data's 1Day, which make no 15Min"):
        on_timeframe(daily_bars, Timeframe.parse("15Min"))


def test_the_exits_and_fractional_sizing_a_run_traded_with_are_reconciles_unless_given(tmp_path: Path) -> None:
    """The demo's paper run puts a 5% stop on its signals: a bare reconcile backtests them with it (before, it
    backtested them without, and said 10 fills were missed and 10 filled in paper only); options given win."""
    from marketboss.errors import InputError
    from marketboss.execution.journal import Journal, journal_path
    from marketboss.execution.reconcile import reconcile_settings
    from marketboss.signals.exits import Exits

    trades = tmp_path / "trades.jsonl"
    j = Journal(journal_path(trades))
    j.run(timeframe="1Day", long_only=True, costs=None, exits={"stop_loss_pct": 5.0}, fractional=True)
    j.close()
    recorded = reconcile_settings(trades)
    assert recorded.exits == Exits(stop_loss_pct=5.0) and recorded.config.fractional
    assert recorded.recorded["exits"] == (("stop_loss_pct", 5.0),)
    given = reconcile_settings(trades, fractional=False, exits=Exits(take_profit_pct=8.0))
    assert given.exits == Exits(take_profit_pct=8.0) and not given.config.fractional
    j = Journal(journal_path(trades))
    j.run(timeframe="1Day", long_only=True, costs=None, exits={"stop_loss_pct": "five"})
    j.close()
    with pytest.raises(InputError, match=r"field 'exits.stop_loss_pct': expected a percent > 0, got 'five'"):
        reconcile_settings(trades)


def test_a_torn_last_line_of_the_trades_log_is_left_out_saying_so(
    daily_bars: pl.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A crash mid-write leaves half a record at the end of the log: the run that resumes truncates it and redoes
    its signal, so reconcile leaves it out too, but says so on stderr (it was silent: exit 0, nothing said)."""
    signals = create("ma_crossover", {"fast": 5, "slow": 20}).signals(Market.from_bars(daily_bars))
    trades, _ = _paper_from_backtest(daily_bars, signals, drop=3)
    paths = {name: tmp_path / f"{name}.jsonl" for name in ("bars", "signals", "trades", "equity")}
    write_bars(daily_bars, paths["bars"])
    write_signals(paths["signals"], signals)
    write_jsonl(paths["trades"], trades.with_columns(pl.col("timestamp").dt.to_string("%Y-%m-%dT%H:%M:%SZ")).to_dicts())
    write_jsonl(paths["equity"], [{"timestamp": "2022-01-03T00:00:00Z", "portfolio_value": 1e5, "cash": 1e5}])
    with paths["trades"].open("a") as fh:
        fh.write('{"timestamp": "2022-06-01T14:30:00Z", "signal_id": "sig-')  # cut short
    args = [f"--{name if name != 'bars' else 'data'}={path}" for name, path in paths.items()]
    assert cli("reconcile", *args, "--show-trades", "0") == 0
    err = capsys.readouterr().err
    assert f"{paths['trades']}:{trades.height + 1}: torn last line" in " ".join(err.split())
