"""Scaling in with brackets, then trimming: an event strategy (a plug-in file, as a user writes one) adds 10
shares with a bracket of its own every third bar until it holds 30, then sells 5. Paper-traded on the local broker
(`marketboss paper`) and backtested, the same orders fill: each bracket's legs for their own entry's 10 shares,
none left after a trim (the executor cancels a position's exits before a sale; the backtest ends them), and what
one skips the other skips. (On these bars the local broker's partial-fill draw, deterministic, splits
none of the orders: a split fill ends on a later bar, which reconcile measures, not this test.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from marketboss.data.io import read_jsonl_records, write_bars
from marketboss.data.synth import synth_bars
from tests.integration.test_examples_paper import _marketboss, book, paper_and_backtest

STRATEGY = '''
from marketboss.strategies.events import Context, EventParams, EventStrategy


class ScaleIn(EventStrategy[EventParams]):
    name = "scale_in"
    params_model = EventParams

    def start(self, ctx: Context) -> None:
        self.bars = 0

    def on_bar(self, ctx: Context) -> None:
        self.bars += 1
        if self.bars % 3:
            return
        for s in range(len(ctx.symbols)):
            px = ctx.price(s)
            if ctx.position(s) < 30:
                ctx.buy(10, s, take_profit=round(px * 1.03, 2), stop_loss=round(px * 0.98, 2))
            else:
                ctx.sell(5, s)
'''


def test_scaling_in_with_brackets_paper_trades_as_it_backtests(tmp_path: Path) -> None:
    write_bars(synth_bars(["AAPL"], "2022-01-01", "2022-03-28", "1Day", seed=10),
               tmp_path / "data" / "market_data.jsonl")  # fmt: skip
    (tmp_path / "scale_in.py").write_text(STRATEGY)
    traded, fills = paper_and_backtest(tmp_path, "--strategy", "scale_in.py:ScaleIn")

    paper_book, backtest_book = book(traded, "filled_price"), book(fills, "price")
    legs = backtest_book.filter(pl.col("leg") != "entry")
    assert set(legs["leg"]) == {"stop_loss", "take_profit"} and set(legs["qty"]) == {10.0}  # each its entry's
    sells = backtest_book.filter((pl.col("leg") == "entry") & (pl.col("side") == "SELL"))
    assert sells.height > 0 and set(sells["qty"]) <= {5.0}  # trims happened (some partly done by an exit)
    assert paper_book.drop("price").equals(backtest_book.drop("price"))  # same orders, legs, sizes and days
    assert paper_book["price"].to_list() == pytest.approx(backtest_book["price"].to_list(), rel=1e-9)
    trades = pl.DataFrame(read_jsonl_records(tmp_path / "data" / "paper_trading_trades.jsonl"))
    skipped = trades.filter(pl.col("status") != "filled")["signal_id"].to_list()
    rejected = read_jsonl_records(tmp_path / "runs" / "bt" / "rejections.jsonl")
    assert sorted(skipped) == sorted(r["signal_id"] for r in rejected)


def test_paper_on_the_local_broker_it_starts_replays_without_waiting_out_a_rate_limit(tmp_path: Path) -> None:
    """Eight months of the strategy on two symbols, ~90 signals and several hundred requests: more than the 200 a
    minute Alpaca allows (and a broker served with its defaults enforces). The broker `paper` starts for a replay
    has no wall-clock limit, as the live loop's: nothing pauses, every signal is traded."""
    write_bars(synth_bars(["AAPL", "MSFT"], "2022-01-01", "2022-08-31", "1Day", seed=3),
               tmp_path / "data" / "market_data.jsonl")  # fmt: skip
    (tmp_path / "scale_in.py").write_text(STRATEGY)
    _marketboss(tmp_path, "signals", "generate", "--strategy", "scale_in.py:ScaleIn", "--data",
                "data/market_data.jsonl", "--output", "data/signals.jsonl")  # fmt: skip
    n_signals = len(read_jsonl_records(tmp_path / "data" / "signals.jsonl"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "MARKETBOSS_"))}
    env["MARKETBOSS_LOG_LEVEL"] = "info"
    proc = subprocess.run([sys.executable, "-m", "marketboss", "paper", "--signals", "data/signals.jsonl",
                           "--order-interval", "0", "--poll-interval", "0.05"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "started the local broker" in proc.stdout and "rate_limit_pause" not in proc.stderr
    entries = [t for t in read_jsonl_records(tmp_path / "data" / "paper_trading_trades.jsonl") if not t.get("leg")]
    assert n_signals > 80 and len({t["signal_id"] for t in entries}) == n_signals
