"""`marketboss sweep`, `walkforward` and `compare` from the command line: files written, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from marketboss.backtest import BacktestConfig, Costs
from marketboss.data.io import read_bars, read_jsonl_records
from marketboss.data.market import Market
from marketboss.research import LocalBackend, combinations, sweep
from marketboss.research.sweep import deflation
from marketboss.signals import read_signals_frame
from marketboss.strategies import create
from tests.unit.cli_app import cli


def test_sweep_writes_rows_summary_and_a_heatmap_report(
    data: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("sweep", "--data", str(data), "--strategy", "ma_crossover", "--grid", "fast=5:20:5",
               "--grid", "slow=20:60:20", "--metric", "sortino", "--top", "3", "--commission", "0.001",
               "--output", "out/sweep.parquet", "--report", "out/sweep.html", "--workers", "1") == 0
    out = capsys.readouterr().out
    assert "best 3 of 11 combinations by sortino" in out
    assert "1 invalid combination(s) skipped (e.g. fast (20) must be below slow (20))" in out
    rows = pl.read_parquet(workdir / "out" / "sweep.parquet")
    summary = pl.read_parquet(workdir / "out" / "sweep.summary.parquet")
    expected = sweep(Market.from_bars(read_bars(data)), combinations("ma_crossover", ["fast=5:20:5", "slow=20:60:20"]),
                     BacktestConfig(costs=Costs(commission=0.001)), backend=LocalBackend(1))
    assert rows.equals(expected.rows) and summary.equals(expected.summary)
    printed = [int(line.split("│")[1]) for line in out.splitlines() if line.startswith("│")]
    assert printed == expected.top("sortino", 3)["combo"].to_list()
    luck = deflation(expected, Market.from_bars(read_bars(data)))
    assert luck is not None and (f"best by Sharpe: combo {luck.combo}, Sharpe {luck.sharpe:.3f}; the best of "
                                 f"{luck.trials:,} skill-less trials would show {luck.expected_max_sharpe:.3f} by "
                                 f"luck alone: deflated Sharpe (DSR) {luck.dsr:.3f}") in " ".join(out.split())
    page = (workdir / "out" / "sweep.html").read_text()
    assert "Plotly.newPlot" in page and '"type":"heatmap"' in page and "Best 11 by sortino" in page
    assert '<script src="http' not in page  # self-contained: plotly.js is embedded


def test_sweep_writes_csv_too(data: Path, workdir: Path) -> None:
    assert cli("sweep", "--data", str(data), "--strategy", "momentum", "--grid", "lookback=10:30:10",
               "--output", "s.csv") == 0
    rows = pl.read_csv(workdir / "s.csv")
    assert rows.height == 3 * 3 and set(rows["symbol"]) == {"AAPL", "MSFT", "JPM"}
    assert pl.read_csv(workdir / "s.summary.csv")["lookback"].to_list() == [10, 20, 30]


@pytest.mark.parametrize(("args", "message"), [
    (["sweep", "--grid", "fast=5:x:5"], "error: --grid 'fast=5:x:5': a range is start:stop or start:stop:step"),
    (["sweep", "--grid", "fast=5", "--metric", "n_trades"], "error: --metric 'n_trades' cannot rank strategies"),
    (["sweep", "--grid", "fast=5", "--backend", "dask"], "error: --backend dask needs --scheduler tcp://HOST:8786"),
    (["sweep", "--grid", "fast=5", "--backend", "dask", "--scheduler", "tcp://127.0.0.1:9"],
     "error: cannot reach the dask scheduler at tcp://127.0.0.1:9"),
    (["sweep", "--grid", "fast=5", "--output", "x.txt"], "error: --output x.txt: the table is written as"),
    (["sweep", "--grid", "fast=5", "--report", "x.pdf"], "error: --report x.pdf: the report is written as HTML"),
    (["walkforward", "--grid", "fast=5", "--report", "w.pdf"], "error: --report w.pdf: the report is written as"),
    (["sweep", "--grid", "fast=5", "--commission", "0.5"], "error: --commission: Input should be less than 0.1"),
    (["walkforward", "--grid", "fast=5", "--train", "2000"], "error: not enough bars for one fold"),
    (["compare", "--param", "fast=5"], "error: --param 'fast=5' must look like strategy.key=value"),
    (["compare", "--strategies", "ma_crossover,nope"], "error: unknown strategy 'nope': choose one of"),
    (["compare", "--oos-start", "soon"], "error: --oos-start 'soon': expected a date like 2024-01-02"),
    (["compare", "--oos-start", "2023-01-02", "--oos-fraction", "0.5"],
     "error: give --oos-start or --oos-fraction, not both"),  # before: the fraction silently ignored
    (["compare", "--param", "ma_crossover.fast=5", "--param", "ma_crossover.fast=8"],
     "error: --param ma_crossover.fast is given twice (5 and 8)"),  # before: the last, without a word
    (["sweep", "--grid", "slow=40", "--param", "fast=5", "--param", "fast=8"],
     "error: --param fast is given twice (5 and 8)"),
    (["walkforward", "--grid", "fast=5", "--equity-output", "eq.parquet"],
     "error: --equity-output eq.parquet: the equity is written as JSON Lines"),  # before: JSON Lines named .parquet
    (["walkforward", "--grid", "fast=5", "--output", "w.csv", "--equity-output", "w.csv"],
     "error: --equity-output w.csv: the equity is written as JSON Lines"),  # before: it replaced the folds' table
    # what `backtest --fractional` refuses, a sweep, a walk-forward or a comparison ran (before)
    (["sweep", "--strategy", "mean_reversion", "--grid", "window=10,20", "--param", "trail_percent=4",
      "--fractional"], "error: --fractional: a target-weight order with exits (trail_percent=4) cannot be placed"),
    (["walkforward", "--grid", "fast=5", "--param", "sizing=weight", "--param", "stop_loss_pct=5", "--fractional"],
     "error: --fractional: a target-weight order with exits (stop_loss_pct=5) cannot be placed"),
    (["compare", "--strategies", "ma_crossover,mean_reversion", "--param", "mean_reversion.take_profit_pct=5",
      "--fractional"], "error: --fractional: a target-weight order with exits (take_profit_pct=5) cannot be placed"),
])
def test_mistakes_are_one_line_errors_and_write_nothing(
    data: Path, workdir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    before = {p for p in workdir.rglob("*")}
    assert cli(*args, "--data", str(data)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(message), err
    assert all(not line.startswith("Traceback") for line in err)
    written = {p for p in workdir.rglob("*")} - before
    assert not [p for p in written if p.suffix in (".parquet", ".csv", ".html", ".jsonl")]


def test_importing_a_file_of_no_bars_is_refused(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: exit 0, and an empty bars file written."""
    (workdir / "empty.csv").write_text("Date,Open,High,Low,Close,Volume\n")
    assert cli("data", "import", "empty.csv", "--symbol", "X", "--output", "x.jsonl") == 2
    assert capsys.readouterr().err == "error: empty.csv: no bars to import (no rows)\n"
    assert not (workdir / "x.jsonl").exists()


def test_walkforward_writes_folds_equity_and_report(
    data: Path, workdir: Path, capsys: pytest.CaptureFixture[str], daily_bars: pl.DataFrame
) -> None:
    assert cli("walkforward", "--data", str(data), "--strategy", "ma_crossover", "--grid", "fast=5,10",
               "--grid", "slow=20,40", "--train", "200", "--test", "100", "--output", "wf.csv",
               "--equity-output", "wf_equity.jsonl", "--report", "wf.html") == 0
    out = capsys.readouterr().out
    assert "walk-forward ma_crossover: 3 folds, train 200 bars, test 100 bars;" in out
    assert "deflated Sharpe (DSR, 4 trials/fold)" in out
    folds = pl.read_csv(workdir / "wf.csv")
    assert folds["fold"].to_list() == [0, 1, 2] and {"is_sharpe", "oos_sharpe", "is_dsr"} <= set(folds.columns)
    equity = read_jsonl_records(workdir / "wf_equity.jsonl")
    n = daily_bars["timestamp"].n_unique()  # 501: three 100-bar test windows; the last bar alone is no fold
    assert n == 501 and len(equity) == 300 and equity[0]["timestamp"].endswith("Z") and equity[-1]["fold"] == 2
    assert cli("walkforward", "--data", str(data), "--strategy", "ma_crossover", "--grid", "fast=5,10",
               "--grid", "slow=20,40", "--train", "200", "--test", "120") == 0  # 200-320, 320-440, 440-501
    assert "3 folds, train 200 bars, test 120 bars (the last 61: the data ends);" in capsys.readouterr().out
    assert "Stitched out-of-sample equity" in (workdir / "wf.html").read_text()


def test_compare_selects_the_best_and_writes_its_signals_for_paper_trading(
    data: Path, workdir: Path, capsys: pytest.CaptureFixture[str], daily_bars: pl.DataFrame
) -> None:
    assert cli("compare", "--data", str(data), "--strategies", "ma_crossover,momentum,mean_reversion,ml",
               "--param", "ma_crossover.fast=5", "--param", "ma_crossover.slow=20", "--commission", "0.001") == 2
    captured = capsys.readouterr()  # ml has no model here: the others are compared, and the exit says so
    err_lines = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(err_lines) == 2 and err_lines[0].startswith("error: strategy 'ml': ")
    assert err_lines[1].startswith("error: 1 of 4 strategies could not be run (above): the comparison is of the "
                                   "others, and no signals were written to data/signals.jsonl")
    assert "strategy 'ml': strategy 'ml'" not in err_lines[0]
    table = pl.read_csv(workdir / "runs" / "compare.csv")  # each one's status: why ml could not run
    assert not table["selected"].any() and not (workdir / "data" / "signals.jsonl").exists()
    assert table.filter(pl.col("strategy") == "ml")["status"][0].startswith("no model")
    assert cli("compare", "--data", str(data), "--strategies", "ma_crossover,momentum,mean_reversion",
               "--param", "ma_crossover.fast=5", "--param", "ma_crossover.slow=20", "--commission", "0.001") == 0
    captured = capsys.readouterr()
    table = pl.read_csv(workdir / "runs" / "compare.csv")
    best = table.filter(pl.col("selected"))
    assert best.height == 1 and best["oos_sharpe"][0] == table.filter(pl.col("status") == "ok")["oos_sharpe"].max()
    name = best["strategy"][0]
    assert f"best by out-of-sample sharpe: {name}" in captured.out
    written = read_signals_frame(workdir / "data" / "signals.jsonl")  # the default: the guide's signals file
    params = json.loads(best["params"][0])
    expected = create(name, params).signals(Market.from_bars(daily_bars))
    assert written["id"].to_list() == expected["id"].to_list() and written.height > 0
    assert set(written["strategy"]) == {name}


MOMENTUM_LOOKBACK_X = "error: strategy 'momentum': invalid parameter lookback='x': Input should be a valid integer"


@pytest.mark.parametrize(("args", "message"), [
    (["compare", "--strategies", "ma_crossover,momentum", "--param", "momentum.lookback=x"], MOMENTUM_LOOKBACK_X),
    (["compare", "--strategies", "ma_crossover,momentum", "--param", "ma_crossover.fastt=3"],
     "error: strategy 'ma_crossover' has no parameter 'fastt'; valid: sizing (quantity|weight, default quantity)"),
    (["compare", "--strategies", "ma_crossover,ml", "--param", "ml.threshold=x"],  # before the model is looked for
     "error: strategy 'ml': invalid parameter threshold='x': Input should be a valid number"),
    (["compare", "--strategies", "ma_crossover", "--param", "momentum.lookback=5"],
     "error: --param for 'momentum', which is not in --strategies"),
    (["backtest", "--strategy", "momentum", "--param", "lookback=x"], MOMENTUM_LOOKBACK_X),
    (["backtest", "--strategy", "momentum", "--param", "rebalance=daily"],
     "error: strategy 'momentum': invalid parameter rebalance='daily': expected weekly | monthly | int | None;"),
    (["backtest", "--strategy", "momentum", "--param", "rebalance=0"],  # an int, below 1: not "'weekly' or ..."
     "error: strategy 'momentum': invalid parameter rebalance='0': Input should be greater than or equal to 1;"),
    (["signals", "generate", "--strategy", "momentum", "--param", "lookback=x"], MOMENTUM_LOOKBACK_X),
    (["sweep", "--strategy", "momentum", "--param", "lookback=x", "--grid", "threshold=0,0.1"], MOMENTUM_LOOKBACK_X),
    (["sweep", "--strategy", "momentum", "--param", "lookback=1", "--grid", "threshold=0,0.1"],
     "error: strategy 'momentum': invalid parameter lookback='1': Input should be greater than or equal to 2"),
    (["walkforward", "--strategy", "momentum", "--param", "lookback=x", "--grid", "threshold=0,0.1"],
     MOMENTUM_LOOKBACK_X),
])
def test_a_bad_parameter_stops_the_command_before_anything_runs(
    data: Path, workdir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    """One line naming the strategy and the parameter (compare once printed it with the strategy named twice,
    ran the other strategies and exited 0), and no file written."""
    before = set(workdir.rglob("*"))
    out = {"backtest": ["--output-dir", "out/run"], "sweep": ["--output", "out/s.csv"],
           "walkforward": ["--output", "out/wf.csv"]}.get(args[0], ["--output", "out/signals.jsonl"])
    assert cli(*args, "--data", str(data), *out) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(message), err
    assert set(workdir.rglob("*")) == before


def test_schedule_refuses_a_bad_signals_parameter_before_any_job(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = workdir / "schedule.toml"
    cfg.write_text('[refresh]\nsource = "synth"\nsymbols = "2"\nstart = "2025-01-01"\n[retrain]\nenabled = false\n'
                   '[paper]\nenabled = false\n[signals]\nstrategy = "momentum"\nparams = ["lookback=x"]\n')
    assert cli("schedule", "--once", "--config", str(cfg)) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {cfg}: signals.params: {MOMENTUM_LOOKBACK_X[7:]}"), err
    assert not (workdir / "data").exists()  # the refresh job did not run
