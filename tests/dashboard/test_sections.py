"""Each section of the page with present, missing, empty and malformed inputs (streamlit's AppTest).

Values shown are checked against the shared functions' own results (read_bars + summary, run_backtest,
paper_metrics, compare_backtest_paper, load_run), formatted as the page formats them.
"""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from marketboss import display
from marketboss.backtest.costs import BacktestConfig, Costs
from marketboss.backtest.engine import run_backtest
from marketboss.backtest.metrics import METRICS
from marketboss.backtest.runs import load_run
from marketboss.dashboard.sections import SECTIONS
from marketboss.data.io import read_bars, read_jsonl_records, write_jsonl
from marketboss.data.stats import summary
from marketboss.errors import InputError
from marketboss.execution.logs import read_paper_equity, read_paper_trades
from marketboss.execution.reconcile import compare_backtest_paper, paper_metrics, reconcile_settings
from marketboss.signals import Signal, read_signals_frame, write_signals
from tests.dashboard.conftest import Dash, array, assert_clean, charts, messages, metrics, section, table
from tests.dashboard.demo import DECISIONS, Demo


def corrupt(src: Path, dst: Path, line: int, field: str, value: object) -> Path:
    """A copy of a JSON Lines file with one field of one line replaced."""
    lines = src.read_text().splitlines()
    rec = json.loads(lines[line - 1])
    rec[field] = value
    lines[line - 1] = json.dumps(rec)
    dst.write_text("\n".join(lines) + "\n")
    return dst


def empty(path: Path) -> Path:
    path.write_text("")
    return path


def input_error(fn: object, *args: object) -> str:
    """Where the reader says the input is bad (file, line, field): all the page shows of it."""
    with pytest.raises(InputError) as exc:
        fn(*args)  # type: ignore[operator]
    assert exc.value.reason not in exc.value.location
    return exc.value.location


def backtest_metrics(demo: Demo, signals: Path | None = None, **cfg: float) -> dict[str, object]:
    config = BacktestConfig(cash=cfg.get("cash", 100_000.0),
                            costs=Costs(commission=cfg.get("commission", 0.0), slippage_bps=cfg.get("slippage", 0.0)))
    return run_backtest(read_bars(demo.market_data), read_signals_frame(signals or demo.signals), config).metrics


# ---------------------------------------------------------------------------------------------- the page


def test_sections_in_the_guides_order_and_sidebar_defaults_as_the_guide(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no file at all (a fresh checkout): every section says what is missing; nothing raises."""
    from streamlit.testing.v1 import AppTest

    from tests.dashboard.conftest import APP

    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert_clean(at)
    assert [h.value for h in at.main.header] == [title for _, title in SECTIONS]
    side = {w.label: w.value for w in (*at.sidebar.text_input, *at.sidebar.number_input)}
    assert side["Market data JSONL"] == "data/market_data.jsonl"
    assert side["Signals JSONL"] == "data/signals.jsonl"
    assert side["Models dir"] == "models"
    assert side["Paper trading equity log"] == "data/paper_trading_equity.jsonl"
    assert side["Initial cash"] == 100_000.0
    assert side["Paper trades log"] == "data/paper_trading_trades.jsonl"
    assert side["Runs dir"] == "runs"
    assert side["Live status file"] == "data/live_status.json" and side["Live signals log"] == "data/live_signals.jsonl"
    assert side["Commission (fraction of notional)"] == 0.0 and side["Slippage (bps)"] == 0.0
    for key, _ in SECTIONS:
        shown = messages(section(at, key), "info")
        assert shown and "not found" in " ".join(shown), key
    assert not at.error


# ------------------------------------------------------------------------------------------- market data


def test_market_overview_shows_the_shared_summary_and_a_chart_per_symbol(dash: Dash, demo: Demo) -> None:
    at = dash()
    block = section(at, "market")
    bars = read_bars(demo.market_data)
    expected = summary(bars)
    m = metrics(block)
    assert m["Symbols"] == display.count(expected.height) and m["Bars"] == display.count(bars.height)
    assert m["From"] == display.day(bars["timestamp"].min()) and m["To"] == display.day(bars["timestamp"].max())
    shown = pl.from_pandas(block.dataframe[0].value)
    for col in ("mean_return", "volatility", "annual_return", "annual_volatility", "last_close"):
        assert shown[col].to_list() == pytest.approx(expected[col].to_list(), rel=1e-12), col
    assert shown["symbol"].to_list() == expected["symbol"].to_list()
    (price,) = charts(block)
    first = expected["symbol"][0]
    assert price["layout"]["title"]["text"].startswith(first)
    closes = bars.filter(pl.col("symbol") == first)["close"].to_list()
    assert array(price["data"][0]["y"]) == pytest.approx(closes)  # short series are not thinned
    at.selectbox(key="market_symbol").set_value("MSFT").run()
    assert charts(section(at, "market"))[0]["layout"]["title"]["text"].startswith("MSFT")


def test_a_sidebar_path_with_a_tilde_and_spaces_reads_the_file(dash: Dash, demo: Demo,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Before, the existence check expanded `~` and the reader did not: a valid file was "malformed input"."""
    at = dash()
    expected = metrics(section(at, "market"))
    monkeypatch.setenv("HOME", str(demo.market_data.parent))
    at.text_input(key="market_data").set_value(f"  ~/{demo.market_data.name} ").run()
    assert_clean(at)
    assert metrics(section(at, "market")) == expected and not at.error


def test_market_missing_file_is_information_and_the_rest_still_renders(dash: Dash, tmp_path: Path) -> None:
    at = dash(market_data=tmp_path / "nope.jsonl")
    (info,) = messages(section(at, "market"), "info")
    assert str(tmp_path / "nope.jsonl") in info and "not found" in info
    assert any("nope.jsonl" in m for m in messages(section(at, "backtest"), "info"))
    assert metrics(section(at, "signals"))["Signals"] != display.NA
    assert charts(section(at, "strategies")) and charts(section(at, "models"))


def test_market_empty_file_is_a_warning(dash: Dash, tmp_path: Path) -> None:
    at = dash(market_data=empty(tmp_path / "bars.jsonl"))
    (warning,) = messages(section(at, "market"), "warning")
    assert "bars.jsonl" in warning and "empty" in warning


def test_market_malformed_line_names_file_line_and_field(dash: Dash, demo: Demo, tmp_path: Path) -> None:
    bad = corrupt(demo.market_data, tmp_path / "bars.jsonl", 3, "close", "abc")
    at = dash(market_data=bad)
    (error,) = messages(section(at, "market"), "error")
    assert input_error(read_bars, bad) in error and ":3: field 'close'" in error
    assert "abc" not in error and "expected a number" not in error  # never the file's content
    assert messages(section(at, "backtest"), "error")  # the backtest needs the bars too
    assert metrics(section(at, "paper"))["Trades executed"] != display.NA


# ----------------------------------------------------------------------------------------------- signals


def test_signals_filters_by_symbol_action_strategy_and_date(dash: Dash, demo: Demo) -> None:
    at = dash()
    sig = read_signals_frame(demo.signals)
    m = metrics(section(at, "signals"))
    assert m["Signals"] == m["Matching"] == display.count(sig.height)
    at.multiselect(key="signals_symbol").set_value(["MSFT", "JPM"])
    at.multiselect(key="signals_action").set_value(["BUY"])
    at.multiselect(key="signals_strategy").set_value(["ma_crossover"])
    (dates,) = [d for d in at.date_input if d.label == "Date range"]  # keyed by the file's range
    dates.set_value((date(2023, 3, 1), date(2024, 6, 30)))
    at.run()
    assert_clean(at)
    want = sig.filter(
        pl.col("symbol").is_in(["MSFT", "JPM"]) & (pl.col("action") == "BUY")
        & pl.col("timestamp").dt.date().is_between(date(2023, 3, 1), date(2024, 6, 30))
    )  # fmt: skip
    block = section(at, "signals")
    m = metrics(block)
    assert m["Matching"] == display.count(want.height) and 0 < want.height < sig.height
    assert m["BUY"] == display.count(want.height) and m["SELL"] == "0"
    table = block.dataframe[0].value
    assert table["id"].tolist() == want["id"].to_list()
    assert set(table.columns) >= {"timestamp", "symbol", "action", "quantity", "strategy"}


def test_signals_tables_are_paged(dash: Dash, demo: Demo, tmp_path: Path) -> None:
    many = pl.concat([read_signals_frame(demo.signals).drop("_line")] * 12).with_columns(
        (pl.col("id") + "-" + pl.int_range(pl.len()).cast(pl.String)).alias("id")
    )
    write_signals(tmp_path / "many.jsonl", many)
    at = dash(signals=tmp_path / "many.jsonl")
    block = section(at, "signals")
    assert len(block.dataframe[0].value) == 500
    page = at.number_input(key="signals_page")
    page.set_value(3).run()
    table = section(at, "signals").dataframe[0].value
    assert table["id"].tolist() == many.sort("timestamp", maintain_order=True)["id"].to_list()[1000:1500]
    assert 1000 < many.height < 1500  # the third page: a part of one


@pytest.mark.parametrize("state", ["missing", "empty", "malformed"])
def test_signals_bad_file(dash: Dash, demo: Demo, tmp_path: Path, state: str) -> None:
    path = tmp_path / "signals.jsonl"
    if state == "empty":
        empty(path)
    elif state == "malformed":
        corrupt(demo.signals, path, 2, "action", "HOLD")
    at = dash(signals=path)
    block = section(at, "signals")
    if state == "missing":
        assert "not found" in messages(block, "info")[0] and str(path) in messages(block, "info")[0]
    elif state == "empty":
        assert "empty" in messages(block, "warning")[0]
    else:
        (error,) = messages(block, "error")
        assert input_error(read_signals_frame, path) in error and ":2: field 'action'" in error
        assert "HOLD" not in error
    assert metrics(section(at, "market"))["Bars"] != display.NA
    assert charts(section(at, "paper"))


# -------------------------------------------------------------------------------------------------- models


def test_model_metrics_latest_version_importance_folds_and_drift(dash: Dash, demo: Demo) -> None:
    at = dash()
    block = section(at, "models")
    meta = json.loads((demo.models_dir / "ridge_fwd5/v2/metadata.json").read_text())
    caption = " ".join(c.value for c in block.caption)
    assert "latest version **v2** of 2" in caption
    facts = " ".join(m.value for m in block.markdown)
    assert "**Model type** ridge" in facts and "**Features** 8" in facts and "**Horizon** 5" in facts
    importance, folds = charts(block)
    gain = meta["feature_importance"]["gain"]
    bars = dict(zip(array(importance["data"][0]["y"]), array(importance["data"][0]["x"]), strict=True))
    assert bars == pytest.approx(gain)
    assert array(importance["data"][0]["y"])[-1] == max(gain, key=gain.get)  # largest at the top
    folds_table = table(block, "rank_ic")
    assert folds_table["mse"].tolist() == pytest.approx([f["mse"] for f in meta["cv"]["per_fold"]])
    assert folds_table["ic"].tolist() == pytest.approx([f["ic"] for f in meta["cv"]["per_fold"]])
    assert array(folds["data"][1]["y"]) == pytest.approx([f["ic"] for f in meta["cv"]["per_fold"]])
    (warning,) = messages(block, "warning")
    assert "retraining triggered" in warning and "psi(vol_20) 0.31 > 0.25" in warning
    m = metrics(block)
    assert m["Rolling IC"] == "-0.0120" and m["Last retraining decision"] == "2024-08-01 21:00"
    drift = table(block, "psi")
    assert drift.set_index("feature")["psi"]["vol_20"] == 0.31
    at.radio(key="model_importance").set_value("permutation").run()
    perm = charts(section(at, "models"))[0]
    assert perm["layout"]["title"]["text"] == "Feature importance (permutation)"


def test_model_latest_pointer_or_newest_by_created_at(dash: Dash, demo: Demo, tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(demo.models_dir, models)
    (models / "ridge_fwd5/latest").write_text(json.dumps({"version": "v1"}))
    caption = " ".join(c.value for c in section(dash(models_dir=models), "models").caption)
    assert "latest version **v1**" in caption
    (models / "ridge_fwd5/latest").unlink()
    meta = json.loads((models / "ridge_fwd5/v1/metadata.json").read_text())
    meta["created_at"] = "2030-01-01T00:00:00Z"
    (models / "ridge_fwd5/v1/metadata.json").write_text(json.dumps(meta))
    caption = " ".join(c.value for c in section(dash(models_dir=models), "models").caption)
    assert "latest version **v1**" in caption and "2030-01-01" in caption


def test_model_kept_decision_is_a_green_status(dash: Dash, demo: Demo, tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(demo.models_dir, models)
    kept = {**DECISIONS[0], "timestamp": "2024-09-01T21:00:00Z"}
    write_jsonl(models / "ridge_fwd5/decisions.jsonl", [DECISIONS[1], kept])
    block = section(dash(models_dir=models), "models")
    (ok,) = messages(block, "success")
    assert "model kept" in ok and "2024-09-01" in ok
    assert metrics(block)["Last retraining decision"] == "2024-08-01 21:00"


@pytest.mark.parametrize("state", ["missing", "empty", "malformed_metadata", "malformed_decisions"])
def test_models_bad_input(dash: Dash, demo: Demo, tmp_path: Path, state: str) -> None:
    models = tmp_path / "models"
    if state == "empty":
        models.mkdir()
    elif state.startswith("malformed"):
        shutil.copytree(demo.models_dir, models)
    if state == "malformed_metadata":
        (models / "ridge_fwd5/v2/metadata.json").write_text('{"name": "ridge_fwd5",\n "version": }')
    if state == "malformed_decisions":
        corrupt(models / "ridge_fwd5/decisions.jsonl", models / "ridge_fwd5/decisions.jsonl", 2, "decision", "maybe")
    at = dash(models_dir=models)
    block = section(at, "models")
    if state in ("missing", "empty"):
        (info,) = messages(block, "info")
        assert str(models) in info and ("not found" in info if state == "missing" else "No model" in info)
    elif state == "malformed_metadata":
        (error,) = messages(block, "error")
        assert f"Malformed input: {models / 'ridge_fwd5/v2/metadata.json'}:2 (" in error
    else:
        (error,) = messages(block, "error")
        assert ":2: field 'decision'" in error and "decisions.jsonl" in error
        assert len(charts(block)) == 2  # the metadata part still shows
    assert charts(section(at, "backtest"))


# ------------------------------------------------------------------------------------------------ backtest


def test_quick_backtest_shows_run_backtest_metrics_for_the_sidebar_settings(dash: Dash, demo: Demo) -> None:
    at = dash()
    expected = backtest_metrics(demo)
    block = section(at, "backtest")
    m = metrics(block)
    assert m["P&L"] == display.money(expected["pnl"])
    assert m["Return %"] == display.pct(expected["total_return_pct"])
    assert m["Sharpe"] == display.num(expected["sharpe"])
    assert m["Max Drawdown"] == display.pct(expected["max_drawdown_pct"])
    assert m["Win rate"] == display.pct(expected["win_rate_pct"])
    assert m["Trades (closed)"] == display.count(expected["n_trades"])
    shown = table(block, "metric")
    assert shown["value"].tolist() == [display.metric(k, expected.get(k)) for k, _ in METRICS]
    curve = charts(block)[0]
    assert array(curve["data"][0]["y"])[-1] == pytest.approx(expected["final_equity"])
    at.sidebar.number_input(key="initial_cash").set_value(50_000.0)
    at.sidebar.number_input(key="commission").set_value(0.001)
    at.sidebar.number_input(key="slippage_bps").set_value(5.0)
    at.run()
    assert_clean(at)
    changed = backtest_metrics(demo, cash=50_000.0, commission=0.001, slippage=5.0)
    m = metrics(section(at, "backtest"))
    assert m["P&L"] == display.money(changed["pnl"]) != display.money(expected["pnl"])
    assert m["Commissions"] == display.money(changed["commissions"]) and changed["commissions"] > 0
    assert m["Final equity"] == display.money(changed["final_equity"])


def test_quick_backtest_shows_buy_and_hold_yearly_and_rolling_returns_and_trades(dash: Dash, demo: Demo) -> None:
    at = dash()
    block = section(at, "backtest")
    bars = read_bars(demo.market_data)
    result = run_backtest(bars, read_signals_frame(demo.signals), BacktestConfig(cash=100_000.0))
    # the benchmark by hand: 100,000 split over the symbols, each held from its first close to its last
    wide = bars.pivot(on="symbol", index="timestamp", values="close").sort("timestamp").fill_null(strategy="forward")
    closes = wide.drop("timestamp").to_numpy()
    by_hand = 100_000.0 * (closes / closes[0]).mean(axis=1)
    assert metrics(block)["Buy & hold"] == display.pct((by_hand[-1] / 100_000.0 - 1) * 100)
    equity, yearly, rolling = charts(block)
    (bench,) = [t for t in equity["data"] if t["name"] == "buy & hold (equal weight)"]
    assert array(bench["y"]) == pytest.approx(by_hand.tolist())  # short series are not thinned

    year_ends = pl.DataFrame({"t": wide["timestamp"], "s": result.equity["equity"], "b": by_hand}).group_by(
        pl.col("t").dt.year().alias("year"), maintain_order=True).agg(pl.col("s", "b").last())
    ends = {"s": [100_000.0, *year_ends["s"].to_list()], "b": [100_000.0, *year_ends["b"].to_list()]}
    pct = {k: [(v[i + 1] / v[i] - 1) * 100 for i in range(len(v) - 1)] for k, v in ends.items()}
    shown = table(block, "buy & hold %")
    assert shown["year"].tolist() == [str(y) for y in year_ends["year"].to_list()] == ["2023", "2024"]
    assert shown["strategy %"].tolist() == [display.pct(v) for v in pct["s"]]
    assert shown["buy & hold %"].tolist() == [display.pct(v) for v in pct["b"]]
    assert [array(t["y"]) for t in yearly["data"]] == [pytest.approx(pct["s"]), pytest.approx(pct["b"])]

    assert rolling["layout"]["title"]["text"] == "Rolling 1-year return (252 bars)"
    strategy = array(rolling["data"][0]["y"])
    eq = [100_000.0, *result.equity["equity"].to_list()]
    assert all(v is None or v != v for v in strategy[:251])  # NaN until a year of bars has passed
    assert strategy[251:] == pytest.approx([(eq[t + 1] / eq[t + 1 - 252] - 1) * 100 for t in range(251, len(eq) - 1)])

    trades = table(block, "P&L $")
    assert len(trades) == result.trades.height > 0
    assert trades["P&L $"].tolist() == pytest.approx(result.trades["pnl"].to_list())
    assert trades["symbol"].tolist() == result.trades["symbol"].to_list()
    assert set(trades["state"]) <= {"closed", "open (marked at the last close)"}
    assert (trades["state"] == "closed").sum() == result.metrics["n_trades"]


def test_quick_backtest_follows_a_changed_signals_file(dash: Dash, demo: Demo, tmp_path: Path) -> None:
    path = tmp_path / "signals.jsonl"
    shutil.copy(demo.signals, path)
    at = dash(signals=path)
    before = metrics(section(at, "backtest"))["P&L"]
    write_signals(path, read_signals_frame(demo.signals).head(20))
    at.run()
    assert_clean(at)
    assert metrics(section(at, "signals"))["Signals"] == "20"
    after = metrics(section(at, "backtest"))["P&L"]
    assert after == display.money(backtest_metrics(demo, path)["pnl"]) != before


def test_quick_backtest_says_why_orders_went_unfilled(dash: Dash, demo: Demo, tmp_path: Path) -> None:
    """As `backtest` lists them in rejections.jsonl (before: "left unfilled (no later bar)", whatever the reason)."""
    first = read_signals_frame(demo.signals).row(0, named=True)
    path = tmp_path / "signals.jsonl"
    write_signals(path, [Signal(id="never", timestamp=first["timestamp"], symbol=first["symbol"], action="BUY",
                                quantity=1, order_type="limit", limit_price=0.01)])  # fmt: skip
    captions = [c.value for c in section(dash(signals=path), "backtest").caption]
    assert "Orders not filled: a day order: its session ended before its price was reached (1)." in captions


@pytest.mark.parametrize("state", ["missing", "empty", "malformed"])
def test_quick_backtest_bad_signals(dash: Dash, demo: Demo, tmp_path: Path, state: str) -> None:
    path = tmp_path / "signals.jsonl"
    if state == "empty":
        empty(path)
    elif state == "malformed":
        corrupt(demo.signals, path, 4, "quantity", -5)
    block = section(dash(signals=path), "backtest")
    assert not block.metric and not charts(block)
    shown = messages(block, {"missing": "info", "empty": "warning", "malformed": "error"}[state])
    assert len(shown) == 1 and str(path) in shown[0]
    if state == "malformed":
        assert ":4: field 'quantity'" in shown[0]


# ------------------------------------------------------------------------------------------- paper trading


def test_paper_trading_shows_the_equity_log_and_trade_count(dash: Dash, demo: Demo) -> None:
    at = dash()
    trades, equity = read_paper_trades(demo.paper_trades), read_paper_equity(demo.paper_equity)
    expected = paper_metrics(trades, equity)
    block = section(at, "paper")
    m = metrics(block)
    assert m["Portfolio value"] == display.money(equity["portfolio_value"][-1])
    assert m["P&L"] == display.money(expected["pnl"]) and m["Return %"] == display.pct(expected["total_return_pct"])
    assert m["Trades executed"] == display.count(expected["filled_orders"]) == display.count(trades.height)
    assert m["Last update"] == display.when(equity["timestamp"].max())
    (curve,) = charts(block)
    assert array(curve["data"][0]["y"]) == pytest.approx(equity["portfolio_value"].to_list())
    assert len(table(block, "filled_price")) == 20


def test_paper_trading_follows_new_snapshots(dash: Dash, demo: Demo, tmp_path: Path) -> None:
    path = tmp_path / "equity.jsonl"
    shutil.copy(demo.paper_equity, path)
    at = dash(paper_equity=path)
    records = read_jsonl_records(path)
    new = {k: v for k, v in records[-1].items() if k != "_line"} | {"timestamp": "2031-05-06T07:08:09Z",
                                                                       "portfolio_value": 123456.78}
    with path.open("a") as fh:
        fh.write(json.dumps(new) + "\n")
    at.run()
    m = metrics(section(at, "paper"))
    assert m["Last update"] == "2031-05-06 07:08:09 UTC" and m["Portfolio value"] == "$123,456.78"


def test_a_torn_last_snapshot_is_left_out_and_said(dash: Dash, demo: Demo, tmp_path: Path) -> None:
    """A write cut short (a crash, or the writer midway): the line left out, as reconcile leaves it, and said
    (before: silently, the figures those before it)."""
    path = tmp_path / "equity.jsonl"
    shutil.copy(demo.paper_equity, path)
    n = len(read_jsonl_records(path))
    with path.open("a") as fh:
        fh.write('{"timestamp":"2031-05-06T07:08:09Z","cash":95')
    block = section(dash(paper_equity=path), "paper")
    (warning,) = messages(block, "warning")
    assert f"equity.jsonl`:{n + 1}: torn last line" in warning and "left out" in warning
    last = read_jsonl_records(demo.paper_equity)[-1]  # the last whole snapshot
    assert metrics(block)["Portfolio value"] == display.money(last["portfolio_value"])


@pytest.mark.parametrize("state", ["missing", "empty", "malformed"])
def test_paper_trading_bad_equity_log(dash: Dash, demo: Demo, tmp_path: Path, state: str) -> None:
    path = tmp_path / "equity.jsonl"
    if state == "empty":
        empty(path)
    elif state == "malformed":
        corrupt(demo.paper_equity, path, 5, "portfolio_value", "lots")
    at = dash(paper_equity=path)
    block = section(at, "paper")
    shown = messages(block, {"missing": "info", "empty": "warning", "malformed": "error"}[state])
    assert len(shown) == 1 and str(path) in shown[0]
    if state == "malformed":
        assert input_error(read_paper_equity, path) in shown[0] and ":5: field 'portfolio_value'" in shown[0]
    assert not block.metric
    assert metrics(section(at, "backtest"))["Sharpe"] != display.NA


def test_paper_trading_without_a_trades_log_still_shows_equity(dash: Dash, demo: Demo, tmp_path: Path) -> None:
    block = section(dash(paper_trades=tmp_path / "none.jsonl"), "paper")
    m = metrics(block)
    assert m["Trades executed"] == display.NA
    assert m["Return %"] == display.pct(paper_metrics(read_paper_trades(demo.paper_trades),
                                                 read_paper_equity(demo.paper_equity))["total_return_pct"])  # fmt: skip
    (info,) = messages(block, "info")
    assert info.startswith("Trades executed:") and "none.jsonl" in info


def test_paper_trading_malformed_trades_log_names_line(dash: Dash, demo: Demo, tmp_path: Path) -> None:
    bad = corrupt(demo.paper_trades, tmp_path / "trades.jsonl", 7, "qty", "ten")
    block = section(dash(paper_trades=bad), "paper")
    (error,) = messages(block, "error")
    assert ":7: field 'qty'" in error
    assert metrics(block)["Portfolio value"] != display.NA


# -------------------------------------------------------------------------------------- backtest vs paper


def test_comparison_shows_compare_backtest_paper(dash: Dash, demo: Demo) -> None:
    at = dash()
    cmp = compare_backtest_paper(read_bars(demo.market_data), read_signals_frame(demo.signals),
                                 read_paper_trades(demo.paper_trades), read_paper_equity(demo.paper_equity),
                                 BacktestConfig())  # fmt: skip
    s = cmp.summary
    block = section(at, "comparison")
    bt, paper, both = (metrics(c) for c in block.columns)
    assert bt["Return %"] == display.pct(s["backtest_return_pct"]) and bt["Sharpe"] == display.num(s["backtest_sharpe"])
    assert bt["Max Drawdown"] == display.pct(s["backtest_max_drawdown_pct"])
    assert bt["Win rate"] == display.pct(s["backtest_win_rate_pct"])
    assert paper["Return %"] == display.pct(s["paper_return_pct"]) and paper["P&L $"] == display.money(cmp.paper["pnl"])
    assert paper["Status"] == s["status"] == "⚠️ Below Initial"  # the demo's 40 signals lose a little
    assert paper["Win rate"] == display.pct(s["paper_win_rate_pct"]) != display.NA
    assert both["Return difference"] == display.pct(s["return_difference_pct"])
    slip = both["Avg slippage vs backtest fill (bps)"]
    assert slip == display.num(s["avg_slippage_bps"]) == "5.00"  # the demo's 3..7 bps
    assert both["Slippage impact"] == display.money(s["slippage_usd"])
    assert both["Fills (backtest / paper)"] == "40 / 40" and both["Missed in paper"] == "0"
    assert both["Daily return correlation"] == display.num(s["daily_return_correlation"])
    joined = table(block, "slippage_bps")
    assert sorted(joined["slippage_bps"].round(6)) == sorted(cmp.joined["slippage_bps"].round(6).to_list())
    assert len(charts(block)) == 1


def test_comparison_backtests_as_the_paper_runs_recorded_as_reconcile_does(dash: Dash, demo: Demo, tmp_path: Path
                                                                           ) -> None:  # fmt: skip
    """A journal beside the trades log recording the run's long-only and the local broker's 10 bps spread: the
    page's backtest takes them, as `marketboss reconcile` does (reconcile_settings, with the sidebar's commission
    and slippage); before, it took neither, and its figures were not the command's."""
    trades = shutil.copy(demo.paper_trades, tmp_path / "trades.jsonl")
    write_jsonl(tmp_path / "trades.journal.jsonl", [{"event": "run", "timeframe": "1Day", "long_only": True,
                                                     "costs": {"spread_bps": 10.0, "slippage_bps": 0.0}}])
    at = dash(paper_trades=trades)
    bt = metrics(section(at, "comparison").columns[0])
    said = [c for c in messages(section(at, "comparison"), "caption") if c.startswith("Settings as")]
    assert said == [f"Settings as the paper runs recorded them in `{tmp_path / 'trades.journal.jsonl'}`: --timeframe "
                    "1Day --long-only --spread-bps 10.0."]  # (it never said which it took; slippage: the sidebar's)
    settings = reconcile_settings(Path(trades), 0.0, slippage_bps=0.0)
    assert settings.config.long_only and settings.config.costs.spread_bps == 10.0
    recorded, plain = (compare_backtest_paper(read_bars(demo.market_data), read_signals_frame(demo.signals),
                                              read_paper_trades(Path(trades)), read_paper_equity(demo.paper_equity),
                                              cfg).summary["backtest_return_pct"]
                       for cfg in (settings.config, BacktestConfig()))  # fmt: skip
    assert bt["Return %"] == display.pct(recorded) != display.pct(plain)


@pytest.mark.parametrize("state", ["missing", "empty", "malformed", "unrelated"])
def test_comparison_bad_paper_trades(dash: Dash, demo: Demo, tmp_path: Path, state: str) -> None:
    path = tmp_path / "trades.jsonl"
    if state == "empty":
        empty(path)
    elif state == "malformed":
        corrupt(demo.paper_trades, path, 3, "timestamp", "yesterday")
    elif state == "unrelated":
        records = read_jsonl_records(demo.paper_trades)
        write_jsonl(path, [{**{k: v for k, v in r.items() if k != "_line"}, "signal_id": f"other-{i}"}
                           for i, r in enumerate(records)])  # fmt: skip
    block = section(dash(paper_trades=path), "comparison")
    assert not block.metric
    if state == "missing":
        assert "trades.jsonl" in messages(block, "info")[0]
    elif state == "empty":
        assert "empty" in messages(block, "warning")[0]
    elif state == "malformed":
        assert ":3: field 'timestamp'" in messages(block, "error")[0]
    else:
        assert "shares no signal id" in messages(block, "warning")[0]


# -------------------------------------------------------------------------------------- strategy comparison


def test_strategy_comparison_highlights_the_best_run(dash: Dash, demo: Demo) -> None:
    at = dash()
    runs = {p.name: load_run(p) for p in sorted(demo.runs_dir.iterdir())}
    best = max(runs, key=lambda n: runs[n].metrics["sharpe"])
    block = section(at, "strategies")
    (ok,) = messages(block, "success")
    assert f"Best by Sharpe: **{best}**" in ok
    table = block.dataframe[0].value
    assert list(table.columns) == list(runs)
    for name, run in runs.items():
        assert table.loc["Sharpe", name] == pytest.approx(run.metrics["sharpe"])
        assert table.loc["Return %", name] == pytest.approx(run.metrics["total_return_pct"])
    (curves,) = charts(block)
    widths = {t["name"]: t["line"]["width"] for t in curves["data"]}
    assert widths[f"{best} (best)"] > max(w for n, w in widths.items() if not n.endswith("(best)"))
    at.selectbox(key="runs_rank").set_value("Max drawdown %").run()
    least_dd = max(runs, key=lambda n: runs[n].metrics["max_drawdown_pct"])
    assert f"Best by Max drawdown %: **{least_dd}**" in messages(section(at, "strategies"), "success")[0]
    (picker,) = [m for m in at.multiselect if m.label == "Runs"]  # keyed by the runs there
    picker.set_value(["momentum"]).run()
    assert list(section(at, "strategies").dataframe[0].value.columns) == ["momentum"]


def test_runs_and_signals_added_while_the_page_is_open_are_in_it(dash: Dash, demo: Demo, tmp_path: Path) -> None:
    """Before, a run copied into runs/ was offered but not compared (nor could it be best), and a signal past the
    file's first date range was filtered out, though no filter was set."""
    runs, path = tmp_path / "runs", tmp_path / "signals.jsonl"
    shutil.copytree(demo.runs_dir, runs)
    first = sorted(runs.iterdir())[0]
    shutil.move(first, tmp_path / first.name)
    write_signals(path, read_signals_frame(demo.signals).head(20))
    at = dash(runs_dir=runs, signals=path)
    assert first.name not in list(section(at, "strategies").dataframe[0].value.columns)
    shutil.move(tmp_path / first.name, first)
    write_signals(path, read_signals_frame(demo.signals))
    at.run()
    assert_clean(at)
    assert list(section(at, "strategies").dataframe[0].value.columns) == sorted(p.name for p in runs.iterdir())
    m = metrics(section(at, "signals"))
    assert m["Signals"] == m["Matching"] == display.count(read_signals_frame(demo.signals).height)


@pytest.mark.parametrize("state", ["missing", "empty", "malformed"])
def test_strategy_comparison_bad_runs(dash: Dash, demo: Demo, tmp_path: Path, state: str) -> None:
    runs = tmp_path / "runs"
    if state == "empty":
        runs.mkdir()
    elif state == "malformed":
        shutil.copytree(demo.runs_dir, runs)
        (runs / "momentum/metrics.json").write_text('{"sharpe": 1.0,\n oops}')
    block = section(dash(runs_dir=runs), "strategies")
    if state == "malformed":
        (error,) = messages(block, "error")
        assert f"Malformed input: {runs / 'momentum/metrics.json'}:2 (" in error and "oops" not in error
        assert list(block.dataframe[0].value.columns) == ["ma_crossover", "mean_reversion"]
    else:
        (info,) = messages(block, "info")
        assert str(runs) in info
        assert not charts(block)


def test_a_small_initial_cash_renders_and_a_bad_setting_is_one_line(
    dash: Dash, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MARKETBOSS_INITIAL_CASH=0.5, which the settings and backtest take, was below the sidebar's minimum of 1: the
    page fell with StreamlitValueBelowMinError; an unparsable one showed pydantic's error as a traceback."""
    from streamlit.testing.v1 import AppTest

    from marketboss.config import get_settings
    from tests.dashboard.conftest import APP

    monkeypatch.setenv("MARKETBOSS_INITIAL_CASH", "0.5")
    at = dash()
    assert at.sidebar.number_input(key="initial_cash").value == 0.5
    monkeypatch.setenv("MARKETBOSS_INITIAL_CASH", "abc")
    get_settings.cache_clear()
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert_clean(at)
    assert [e.value for e in at.error] == ["MARKETBOSS_INITIAL_CASH (environment or .env): Input should be a valid "
                                           "number, unable to parse string as a number, got 'abc'"]  # fmt: skip
    get_settings.cache_clear()
