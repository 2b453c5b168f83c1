"""A cancel decided on an intraday bar ends the order before the next bar opens, in paper as in the backtest.

Minute bars end as the next one starts: the replay moves the local broker's clock to the end of the cancel's
bar, where the broker completes that bar (an order still trades on it) and holds the next bar's open until the
clock moves again, so that a gap at that open through the order's price trades nothing once it is canceled."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from marketboss.backtest import BacktestConfig, run_backtest
from marketboss.data.io import read_jsonl_records, write_bars
from marketboss.signals import Signal, read_signals_frame, signal_id, write_signals
from tests.integration.executor_fixtures import broker, executor

OPEN = datetime.fromisoformat("2024-03-05T14:30:00+00:00")  # a Tuesday's 09:30 in New York


def minute_bars(paths: dict[str, list[tuple[float, float, float, float]]]) -> pl.DataFrame:
    rows = [{"timestamp": OPEN + timedelta(minutes=i), "symbol": sym, "open": o, "high": h, "low": lo, "close": c,
             "volume": 1000} for sym, path in paths.items() for i, (o, h, lo, c) in enumerate(path)]  # fmt: skip
    return pl.DataFrame(rows).with_columns(pl.col("timestamp").dt.cast_time_unit("us")).sort("timestamp", "symbol")


def _minute(text: str) -> datetime:
    """A fill's time to its bar's minute (the broker stamps a fill inside a bar at the bar's last microsecond)."""
    return datetime.fromisoformat(text).replace(second=0, microsecond=0)


def test_an_order_canceled_on_a_minute_bar_misses_the_gap_at_the_next_open_in_paper_as_in_the_backtest(
    tmp_path: Path,
) -> None:
    """AAA: a gtc stop sale of the position at 99 (placed at minute 3), canceled at minute 5; minute 6 opens at 95,
    through the stop: canceled, it trades nothing. BBB: the same stop, canceled at minute 5 too, but minute 5 itself
    trades down through it: it sells at 99 on that bar, before the cancel (which then finds it filled). CCC: a
    gtc limit buy at 98 canceled at minute 5, minute 6 gapping down to 96: nothing."""
    flat = (100.0, 100.2, 99.8, 100.0)
    gap = [(95.0, 95.2, 94.8, 95.0)] * 3
    paths = {
        "AAA": [*[flat] * 6, *gap],
        "BBB": [*[flat] * 5, (100.0, 100.2, 98.5, 99.5), *gap],
        "CCC": [*[flat] * 6, (96.0, 96.2, 95.8, 96.0), *[flat] * 2],
    }
    bars = minute_bars(paths)
    data = tmp_path / "bars.jsonl"
    write_bars(bars, data)
    minutes = bars["timestamp"].unique().sort()

    def sig(symbol: str, bar: int, action: str, **fields: Any) -> Signal:
        price = None if action == "CANCEL" else paths[symbol][bar][3]
        quantity = None if action == "CANCEL" else 10
        return Signal(id=signal_id("gap", fields, symbol, minutes[bar], action), timestamp=minutes[bar],
                      symbol=symbol, action=action, quantity=quantity, strategy="gap", price=price,
                      **fields)  # fmt: skip

    stop = {"order_type": "stop", "stop_price": 99.0, "time_in_force": "gtc"}
    stops = {s: sig(s, 3, "SELL", **stop) for s in ("AAA", "BBB")}
    limit = sig("CCC", 3, "BUY", order_type="limit", limit_price=98.0, time_in_force="gtc")
    signals = tmp_path / "signals.jsonl"
    write_signals(signals, [
        sig("AAA", 1, "BUY"), sig("BBB", 1, "BUY"), stops["AAA"], stops["BBB"], limit,
        sig("AAA", 5, "CANCEL", cancels=stops["AAA"].id), sig("BBB", 5, "CANCEL", cancels=stops["BBB"].id),
        sig("CCC", 5, "CANCEL", cancels=limit.id),
    ])  # fmt: skip
    res = run_backtest(bars, read_signals_frame(signals), BacktestConfig(cash=1e6))
    backtest = sorted((r["symbol"], r["timestamp"], r["side"], r["qty"], round(r["price"], 6))
                      for r in res.fills.iter_rows(named=True))  # fmt: skip
    with broker(tmp_path, data, spread_bps=0.0) as lb:
        executor(tmp_path, lb, signals, data).run()
    records = read_jsonl_records(tmp_path / "trades.jsonl")
    paper = sorted((t["symbol"], _minute(t["timestamp"]), t["side"], t["qty"],
                    round(t["filled_price"], 6)) for t in records if t["status"] == "filled")  # fmt: skip
    assert paper == backtest == sorted([
        ("AAA", minutes[2], "BUY", 10.0, 100.0), ("BBB", minutes[2], "BUY", 10.0, 100.0),
        ("BBB", minutes[5], "SELL", 10.0, 99.0),
    ])  # fmt: skip
    cancels = {t["symbol"]: t["status"] for t in records if t["side"] == "CANCEL"}
    assert cancels["AAA"] == cancels["CCC"] == "canceled"
