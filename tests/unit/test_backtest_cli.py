"""The command line: backtest a signals file or a strategy into runs/<name>/, compare runs, write a report."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from marketboss.backtest import load_run
from marketboss.backtest.metrics import buy_and_hold_equity, yearly_returns
from marketboss.data.io import read_bars, write_bars
from marketboss.data.market import Market
from marketboss.display import pct
from marketboss.signals import Signal, read_signals, write_signals
from tests.unit.cli_app import cli


def test_backtest_a_signals_file_writes_the_run_and_prints_the_metrics(
    data: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("signals", "generate", "--data", str(data), "--strategy", "ma_crossover",
               "--param", "fast=5", "--param", "slow=20", "--output", "data/signals.jsonl") == 0
    bars = data.read_bytes()  # its own bars file as the output: refused, the bars kept (before: overwritten)
    assert cli("signals", "generate", "--data", str(data), "--strategy", "ma_crossover", "--output", str(data)) == 2
    assert data.read_bytes() == bars and "is the bars file --data reads" in capsys.readouterr().err
    assert cli("backtest", "--data", str(data), "--signals", "data/signals.jsonl", "--cash", "100000",
               "--commission", "0.001", "--slippage-bps", "2", "--output-dir", "runs/ma",
               "--report", "runs/ma/report.html") == 0
    out = capsys.readouterr().out
    assert "Sharpe" in out and "Max drawdown %" in out and "Win rate %" in out
    run = load_run(workdir / "runs" / "ma")
    assert run.metrics["initial_equity"] == 100_000
    assert run.metrics["run"]["config"]["costs"]["slippage_bps"] == 2
    assert run.equity.columns == ["timestamp", "cash", "positions_value", "equity"]
    assert run.equity.height == data_times(data)
    assert run.metrics["final_equity"] == pytest.approx(run.equity["equity"][-1])
    ids = {s.id for s in read_signals(workdir / "data" / "signals.jsonl")}
    assert set(run.fills["signal_id"]) <= ids and run.fills.height == run.metrics["n_fills"] > 0
    assert set(run.trades.filter(pl.col("closed"))["exit_signal_id"]) <= ids
    assert run.rejections["status"].to_list() == ["expired"] * run.metrics["unfilled_orders"]
    assert run.fills.columns[:7] == ["timestamp", "signal_id", "symbol", "side", "qty", "price", "commission"]
    html = (workdir / "runs" / "ma" / "report.html").read_text()
    assert "<script src=" not in html and len(html) > 1_000_000  # plotly.js is inline: opens offline
    # equity + drawdown + buy & hold, yearly returns, rolling returns, fills on price, monthly returns
    assert html.count("Plotly.newPlot(") == 5
    assert "Monthly returns" in html and "fills on price" in html and "Rolling 1-year return" in html
    assert f"{run.trades.height:,} round trips" in html and html.count("<td data-v=") == run.trades.height * 11
    market = Market.from_bars(read_bars(data))
    bench = buy_and_hold_equity(market, 100_000.0)
    yearly = yearly_returns(run.equity["timestamp"], run.equity["equity"].to_numpy(), bench, 100_000.0)
    assert yearly["year"].to_list() == [2022, 2023]
    for year, a, b, d in yearly.iter_rows():  # the printed yearly table: the shared numbers, as display shows them
        assert re.search(rf"{year}\s*│\s*{re.escape(pct(a))}\s*│\s*{re.escape(pct(b))}\s*│\s*{re.escape(pct(d))}", out)
        assert f"<td>{year}</td><td>{pct(a)}</td><td>{pct(b)}</td><td>{pct(d)}</td>" in html


def data_times(path: Path) -> int:
    return pl.read_ndjson(path)["timestamp"].n_unique()


def test_strategy_runs_compare_side_by_side(data: Path, workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("momentum", "mean_reversion"):
        assert cli("backtest", "--data", str(data), "--strategy", name, "--output-dir", f"runs/{name}") == 0
    capsys.readouterr()
    assert cli("runs", "compare", "runs/momentum", "runs/mean_reversion") == 0
    out = capsys.readouterr().out
    assert "momentum" in out and "mean_reversion" in out and "Return %" in out and "Trades (closed)" in out
    signals = read_signals(workdir / "runs" / "momentum" / "signals.jsonl")
    assert {s.strategy for s in signals} == {"momentum"}


def test_a_long_only_strategy_short_of_cash_never_goes_short(
    data: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A user's case: ma_crossover (long-only by default) buying 100 shares a signal with $20,000. The buys cash
    cannot pay for are rejected; the sales of those shares used to fill anyway and open shorts (8 SHORT trades on
    these bars, 48 and equity $1,787 on `data synth`'s). Now a sale is cut to the shares held: none held, it does not
    trade and is listed (long_only). The same parameters long-short still go short."""
    assert cli("backtest", "--data", str(data), "--strategy", "ma_crossover", "--param", "quantity=100",
               "--cash", "20000", "--output-dir", "runs/lo") == 0
    err = capsys.readouterr().err
    run = load_run(workdir / "runs" / "lo")
    assert run.trades.height > 10 and set(run.trades["side"]) == {"LONG"}
    assert run.metrics["run"]["config"]["long_only"] is True
    assert run.equity["equity"].min() >= 0 and run.equity["cash"].min() >= 0
    assert run.metrics["max_drawdown_pct"] > -100
    cut = run.rejections.filter(pl.col("status") == "long_only")
    assert cut.height > 0 and set(cut["action"]) == {"SELL"}
    assert set(cut["reason"]) == {"long_only: no shares held to sell (never a short)"}
    assert f"{cut.height} sale(s) with no shares held not traded (long_only)" in " ".join(err.split())
    signed = pl.when(pl.col("side") == "BUY").then(pl.col("qty")).otherwise(-pl.col("qty"))
    held = run.fills.select(signed.cum_sum().over("symbol"))  # fills in fill order: each symbol's position after each
    assert held.to_series().min() == 0  # every sale sells at most what is held
    assert cli("backtest", "--data", str(data), "--strategy", "ma_crossover", "--param", "quantity=100",
               "--param", "long_only=false", "--cash", "20000", "--output-dir", "runs/ls") == 0
    long_short = load_run(workdir / "runs" / "ls")
    assert "SHORT" in set(long_short.trades["side"]) and long_short.metrics["run"]["config"]["long_only"] is False
    assert "long_only" not in set(long_short.rejections["status"])
    # the long-only run's signals as a file: it does not say long-only, so the sales short, unless --long-only
    for flag, out in (([], "file"), (["--long-only"], "file_lo")):
        assert cli("backtest", "--data", str(data), "--signals", str(workdir / "runs/lo/signals.jsonl"), "--cash",
                   "20000", *flag, "--output-dir", f"runs/{out}") == 0  # fmt: skip
    as_file = load_run(workdir / "runs/file")  # its sales with no shares held try to short: nothing borrowed,
    tried = as_file.rejections.filter(pl.col("action") == "SELL")  # the cash the purchase lacked holds no short
    assert tried.height > 0 and set(tried["reason"]) == {"insufficient cash"}
    assert load_run(workdir / "runs/file_lo").fills.equals(run.fills)


def test_bad_input_is_one_line_and_writes_nothing(
    data: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = workdir / "bad.jsonl"
    bad.write_text('{"timestamp": "2022-03-01T05:00:00Z", "action": "BUY", "symbol": "AAPL", "quantity": 1}\n'
                   '{"timestamp": "2022-03-02T05:00:00Z", "action": "BUY", "symbol": "AAPL", "quantity": "ten"}\n')
    assert cli("backtest", "--data", str(data), "--signals", str(bad), "--output-dir", "runs/bad") == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"error: {bad}:2: field 'quantity': expected a number, got 'ten'"]
    assert not (workdir / "runs" / "bad").exists()
    assert cli("backtest", "--data", str(data), "--strategy", "ma_crossover", "--commission", "-1") == 2
    assert "--commission" in capsys.readouterr().err
    assert cli("runs", "compare", "runs/nothing") == 2
    assert "metrics.json: missing" in capsys.readouterr().err


def test_a_second_command_line_run_loads_compiled_kernels_from_the_cache(data: Path, workdir: Path) -> None:
    # numba's own cache: the kernels the ahead-of-time module holds (backtest/kernels.py) are called through numba
    env = {**os.environ, "MARKETBOSS_LOG_LEVEL": "warning", "NUMBA_DEBUG_CACHE": "1", "MARKETBOSS_AOT": "off"}
    args = [sys.executable, "-m", "marketboss", "backtest", "--data", str(data), "--strategy", "ma_crossover"]
    subprocess.run(args, capture_output=True, text=True, env=env, timeout=300, check=True)
    second = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300, check=True)
    cache_lines = [x for x in second.stdout.splitlines() + second.stderr.splitlines() if x.startswith("[cache]")]
    assert any("data loaded" in x and "nb.simulate" in x for x in cache_lines)
    assert any("data loaded" in x and "nb.ma_cross" in x for x in cache_lines)
    assert not any("data saved" in x for x in cache_lines)
    metrics = json.loads((workdir / "runs" / "ma_crossover" / "metrics.json").read_text())
    assert metrics["run"]["strategies"] == ["ma_crossover"]


def test_a_run_without_signals_reads_back_typed_empty_frames(data: Path, workdir: Path) -> None:
    (workdir / "none.jsonl").write_text("")
    assert cli("backtest", "--data", str(data), "--signals", "none.jsonl", "--output-dir", "runs/none") == 0
    run = load_run(workdir / "runs" / "none")
    assert run.fills.height == run.trades.height == run.rejections.height == 0
    assert run.fills.schema["price"] == pl.Float64 and run.trades.schema["closed"] == pl.Boolean
    assert run.metrics["total_return_pct"] == 0 and run.metrics["sharpe"] is None  # 0/0: null in JSON


def test_strategies_list_shows_names_params_and_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("strategies", "list") == 0
    out = capsys.readouterr().out
    for text in ("ma_crossover", "momentum", "mean_reversion", "fast", "slow", "sma|ema", "lookback", "rsi_period"):
        assert text in out


def test_buy_stops_are_collared_unless_no_buy_stop_collar(workdir: Path) -> None:
    """A buy stop at 100.40 under a gap to 110 (beyond its collar 102.91): by default it waits and buys at the
    collar on the next bar, as the local broker does; --no-buy-stop-collar buys at the gap's open."""
    t0 = datetime(2024, 1, 2, 5, tzinfo=UTC)
    ohlc = [(100.0, 101.0, 99.0, 100.0), (110.0, 112.0, 109.0, 111.0), (104.0, 105.0, 102.5, 103.0)]
    write_bars(pl.DataFrame({"timestamp": [t0 + timedelta(days=i) for i in range(3)], "symbol": ["AAA"] * 3,
                             **{k: [b[i] for b in ohlc] for i, k in enumerate(("open", "high", "low", "close"))},
                             "volume": [1000] * 3}), workdir / "bars.jsonl")  # fmt: skip
    write_signals(workdir / "signals.jsonl", [Signal(id="s1", timestamp=t0, symbol="AAA", action="BUY", quantity=10,
                                                     strategy="t", price=100.0, order_type="stop", stop_price=100.4,
                                                     time_in_force="gtc")])  # fmt: skip
    prices = {}
    for name, flags in (("default", ()), ("plain", ("--no-buy-stop-collar",))):
        assert cli("backtest", "--data", "bars.jsonl", "--signals", "signals.jsonl", *flags,
                   "--output-dir", f"runs/{name}") == 0  # fmt: skip
        prices[name] = load_run(workdir / "runs" / name).fills["price"].to_list()
    assert prices == {"default": [102.91], "plain": [110.0]}


@pytest.mark.parametrize(("args", "line"), [
    (["backtest", "--fill", "open"], "error: Invalid value for '--fill': Value error, 'open' is not one of "
                                     "'next_open', 'close'. (see marketboss backtest --help)"),
    (["backtest", "--nope"], "error: No such option: --nope (see marketboss backtest --help)"),
    (["nosuch"], "error: No such command 'nosuch'. (see marketboss --help)"),
])  # fmt: skip
def test_a_mistyped_option_or_command_is_one_line(args: list[str], line: str, capsys: pytest.CaptureFixture[str]
                                                  ) -> None:  # fmt: skip
    """click's own errors as ours: one line and exit 2 (before: a usage line, a hint and a box of four lines)."""
    assert cli(*args) == 2
    assert capsys.readouterr().err == line + "\n"


def test_an_output_path_in_the_way_is_one_line_naming_it(data: Path, workdir: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """Before: `unexpected FileExistsError` (exit 1), and a report path that is a directory named as the temporary
    file written beside it."""
    (workdir / "afile").write_text("")
    (workdir / "adir.html").mkdir()
    strategy = ("--strategy", "ma_crossover", "--param", "fast=5", "--param", "slow=20")
    assert cli("backtest", "--data", str(data), *strategy, "--output-dir", "afile/sub") == 2
    assert capsys.readouterr().err == "error: afile: a file is in the way of the directory to make there\n"
    assert cli("backtest", "--data", str(data), *strategy, "--output-dir", "runs/r", "--report", "adir.html") == 2
    assert capsys.readouterr().err.endswith("error: adir.html: is a directory: give a file\n")
    assert cli("data", "synth", "--seed", "-1", "--output", "s.jsonl") == 2 and not (workdir / "s.jsonl").exists()


def test_signals_at_no_bar_of_their_symbol_are_said(data: Path, workdir: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """Another data file's signals (or a finer timeframe's) traded at each symbol's next bar without a word: a
    2,500 bps 'slippage' the user had to find out. Said on stderr; the run is the same."""
    import polars as pl

    from marketboss.signals import read_signals_frame

    assert cli("signals", "generate", "--data", str(data), "--strategy", "ma_crossover", "--param", "fast=5",
               "--param", "slow=20", "--output", "s.jsonl") == 0
    assert cli("backtest", "--data", str(data), "--signals", "s.jsonl", "-o", "runs/a") == 0
    assert "at no bar of their symbol" not in capsys.readouterr().err
    sig = read_signals_frame(workdir / "s.jsonl")
    write_signals(workdir / "late.jsonl", [Signal.model_validate({**r, "timestamp": r["timestamp"].isoformat()})
                                           for r in sig.with_columns(pl.col("timestamp") + pl.duration(minutes=7))
                                           .drop("_line", strict=False).iter_rows(named=True)])  # fmt: skip
    assert cli("backtest", "--data", str(data), "--signals", "late.jsonl", "-o", "runs/b") == 0
    assert f"{sig.height:,} of {sig.height:,} signals are at no bar of their symbol" in capsys.readouterr().err
