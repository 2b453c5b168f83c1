"""The backtest report's numbers (buy-and-hold benchmark, calendar and rolling returns) against hand computations,
and the HTML report showing them with the trade list."""

from __future__ import annotations

import base64
import json
import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from marketboss import display
from marketboss.backtest import BacktestConfig, run_backtest
from marketboss.backtest.metrics import (
    buy_and_hold_equity,
    buy_and_hold_pct,
    calendar_returns,
    rolling_returns,
    rolling_window,
    yearly_returns,
)
from marketboss.backtest.report import render_report
from marketboss.backtest.runs import Run
from marketboss.data.market import Market
from marketboss.signals import SIGNAL_SCHEMA

#: Daily bars stamped at midnight New York (05:00 UTC in winter), across two year ends.
DAYS = ("2021-12-30", "2021-12-31", "2022-01-03", "2022-12-30", "2023-01-03")
#: A trades at every time; B only at times 2 and 3 (it starts late and stops early).
CLOSES = {"A": [10.0, 11.0, 12.0, 9.0, 15.0], "B": [None, None, 20.0, 25.0, None]}


def when(i: int) -> datetime:
    return datetime.fromisoformat(f"{DAYS[i]}T05:00:00+00:00")


def bars() -> pl.DataFrame:
    rows = [{"timestamp": when(i), "symbol": s, "open": c, "high": c, "low": c, "close": c, "volume": 100}
            for s, closes in CLOSES.items() for i, c in enumerate(closes) if c is not None]  # fmt: skip
    return pl.DataFrame(rows).with_columns(pl.col("timestamp").dt.cast_time_unit("us")).sort("timestamp", "symbol")


def signals(rows: list[tuple[int, str, str, float]]) -> pl.DataFrame:
    out = [{"id": f"s{k}", "timestamp": when(t), "symbol": sym, "action": action, "quantity": qty, "strategy": "test",
            "price": None, "target_weight": None} for k, (t, sym, action, qty) in enumerate(rows)]  # fmt: skip
    schema = {k: (pl.Datetime("us", "UTC") if k == "timestamp" else v) for k, v in SIGNAL_SCHEMA.items()}
    return pl.DataFrame(out, schema=schema)


# ------------------------------------------------------------------------------------ buy-and-hold benchmark


def test_buy_and_hold_splits_cash_equally_and_holds_each_symbol_from_its_first_to_its_last_close() -> None:
    market = Market.from_bars(bars())
    # 500 in A: 500 * close / 10. 500 in B: cash until its first close (20), then 500 * close / 20, then kept.
    a = [500 * c / 10 for c in (10, 11, 12, 9, 15)]
    b = [500.0, 500.0, 500.0, 500 * 25 / 20, 500 * 25 / 20]
    assert buy_and_hold_equity(market, 1000.0).tolist() == pytest.approx([x + y for x, y in zip(a, b, strict=True)])
    assert buy_and_hold_pct(market) == pytest.approx(((15 / 10 - 1) + (25 / 20 - 1)) / 2 * 100)  # 37.5
    assert buy_and_hold_equity(market, 1000.0, at=np.array([1, 3])).tolist() == pytest.approx([1050.0, 1075.0])


def test_the_backtests_buy_and_hold_metric_is_the_benchmark_lines_last_value(daily_bars: pl.DataFrame) -> None:
    market = Market.from_bars(daily_bars)
    by_hand = daily_bars.group_by("symbol").agg((pl.col("close").last() / pl.col("close").first() - 1.0).alias("r"))
    result = run_backtest(market, signals([]), BacktestConfig(cash=50_000.0))
    line = buy_and_hold_equity(market, 50_000.0)
    assert result.metrics["buy_hold_return_pct"] == pytest.approx(float(by_hand["r"].mean()) * 100, rel=1e-12)
    assert result.metrics["buy_hold_return_pct"] == pytest.approx((line[-1] / 50_000.0 - 1) * 100, rel=1e-12)


# ------------------------------------------------------------------------------------ calendar and rolling


def test_yearly_returns_run_from_each_years_last_value_to_the_next() -> None:
    ts = pl.Series([when(i) for i in range(5)])
    equity = np.array([1100.0, 1200.0, 1150.0, 1380.0, 1400.0])
    bench = np.array([1000.0, 1000.0, 900.0, 990.0, 1089.0])
    out = yearly_returns(ts, equity, bench, 1000.0)
    assert out["year"].to_list() == [2021, 2022, 2023]
    strategy = [20.0, (1380 / 1200 - 1) * 100, (1400 / 1380 - 1) * 100]
    hold = [0.0, -1.0, 10.0]
    assert out["strategy_pct"].to_list() == pytest.approx(strategy)
    assert out["buy_hold_pct"].to_list() == pytest.approx(hold)
    assert out["difference_pct"].to_list() == pytest.approx([a - b for a, b in zip(strategy, hold, strict=True)])
    monthly = calendar_returns(ts, {"r": equity}, 1000.0, "month")
    assert monthly.select("year", "month").rows() == [(2021, 12), (2022, 1), (2022, 12), (2023, 1)]
    assert monthly["r"].to_list() == pytest.approx([20.0, (1150 / 1200 - 1) * 100, 20.0, (1400 / 1380 - 1) * 100])


def test_rolling_returns_look_back_window_bars_counting_the_start_value() -> None:
    eq = np.array([110.0, 121.0, 100.0, 150.0])
    two = rolling_returns(eq, 100.0, 2)
    assert math.isnan(two[0])
    assert two[1:].tolist() == pytest.approx([21.0, (100 / 110 - 1) * 100, (150 / 121 - 1) * 100])
    four = rolling_returns(eq, 100.0, 4)
    assert np.isnan(four[:3]).all() and four[3] == pytest.approx(50.0)
    assert np.isnan(rolling_returns(eq, 100.0, 5)).all()
    assert rolling_window(252.0) == 252 and rolling_window(252.0 * 390) == 98_280


# ------------------------------------------------------------------------------------------- the report


def plots(page: str) -> list[list[dict[str, Any]]]:
    """The traces of every Plotly.newPlot call of a page, numeric arrays decoded."""
    out = []
    for m in re.finditer(r'Plotly\.newPlot\(\s*"[^"]+",\s*', page):
        traces, _ = json.JSONDecoder().raw_decode(page, m.end())
        out.append(traces)
    return out


def values(v: Any) -> list[float]:
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).tolist()
    return list(v)


def test_the_report_shows_the_benchmark_yearly_and_rolling_returns_and_the_trade_list(tmp_path: Path) -> None:
    market = Market.from_bars(bars())
    # Buy 10 A on day 0 (filled at day 1's open, 11), sell them on day 2 (filled at day 3's open, 9).
    result = run_backtest(market, signals([(0, "A", "BUY", 10.0), (2, "A", "SELL", 10.0)]), BacktestConfig(cash=1000.0))
    page = render_report(Run.from_result(result, tmp_path / "hand", {"name": "hand"}), market, "Backtest hand")

    equity, yearly, rolling = plots(page)[:3]
    (bench,) = [t for t in equity if t["name"] == "buy & hold (equal weight)"]
    assert values(bench["y"]) == pytest.approx([1000.0, 1050.0, 1100.0, 1075.0, 1375.0])
    (strategy,) = [t for t in equity if t["name"] == "equity"]
    assert values(strategy["y"]) == pytest.approx([1000.0, 1000.0, 1010.0, 980.0, 980.0])

    # Strategy: 1000 at the end of 2021, 980 at the end of 2022 and 2023. Benchmark: 1050, 1075, 1375.
    strategy_years = [0.0, -2.0, 0.0]
    bench_years = [5.0, (1075 / 1050 - 1) * 100, (1375 / 1075 - 1) * 100]
    assert [values(t["y"]) for t in yearly] == [pytest.approx(strategy_years), pytest.approx(bench_years)]
    table = page[page.index("<table class='metrics yearly'>"):]
    for year, a, b in zip((2021, 2022, 2023), strategy_years, bench_years, strict=True):
        cells = f"<tr><td>{year}</td><td>{display.pct(a)}</td><td>{display.pct(b)}</td><td>{display.pct(a - b)}</td>"
        assert cells in table

    assert [t["name"] for t in rolling] == ["strategy", "buy & hold"]
    assert np.isnan(values(rolling[0]["y"])).all()  # five bars: shorter than a 252-bar year
    assert "fewer than one year (252)" in page

    trades = page[page.index("<table class='metrics sortable'>"):]
    row = re.findall(r"<tr>(.*?)</tr>", trades)[1]
    cells = re.findall(r">([^<]*)</td>", row)
    assert cells == ["A", "LONG", "10.00", "2021-12-31", "11.00", "2022-12-30", "9.0000", "-$20.00",
                     display.pct((9 / 11 - 1) * 100), "364", "closed"]  # fmt: skip
    assert "1 round trips (1 closed)" in page
    sort_keys = re.findall(r"data-v='([^']*)'", row)
    assert float(sort_keys[3]) == when(1).timestamp() and float(sort_keys[7]) == pytest.approx(-20.0)


def test_an_open_trade_is_listed_as_open_and_a_run_without_trades_says_so(tmp_path: Path) -> None:
    market = Market.from_bars(bars())
    result = run_backtest(market, signals([(0, "A", "BUY", 10.0)]), BacktestConfig(cash=1000.0))
    page = render_report(Run.from_result(result, tmp_path / "open", {}), market, "open")
    assert "open, marked at the last close</td>" in page and "1 round trips (0 closed)" in page
    idle = run_backtest(market, signals([]), BacktestConfig(cash=1000.0))
    page = render_report(Run.from_result(idle, tmp_path / "idle", {}), market, "idle")
    assert "No round trips: the run made no trades." in page and "class='metrics sortable'" not in page
