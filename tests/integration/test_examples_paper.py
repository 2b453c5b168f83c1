"""The RSI-with-a-bracket example, as a new user runs it from docs/strategies.md: its signals generated with the
plug-in form, then paper-traded on the local broker (started by `marketboss paper` without credentials, real
server, replaying the bars): every entry and every stop-loss and take-profit leg fills as in the backtest of the
same signals, at the same prices."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from marketboss.data.io import read_jsonl_records, write_bars
from marketboss.data.synth import synth_bars
from marketboss.signals import read_signals_frame

ROOT = Path(__file__).resolve().parents[2]
RSI = f"{ROOT / 'examples' / 'rsi_bracket.py'}:RsiBracket"


def _marketboss(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "MARKETBOSS_"))}
    env["MARKETBOSS_LOG_LEVEL"] = "warning"
    proc = subprocess.run([sys.executable, "-m", "marketboss", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    return proc


def paper_and_backtest(cwd: Path, *generate: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`signals generate` of these arguments into data/signals.jsonl (of data/market_data.jsonl), paper-traded on
    the local broker and backtested at its spread (2 bps, half paid per side): (paper's filled trades, the
    backtest's fills)."""
    _marketboss(cwd, "signals", "generate", *generate, "--data", "data/market_data.jsonl", "--output",
                "data/signals.jsonl")  # fmt: skip
    _marketboss(cwd, "paper", "--signals", "data/signals.jsonl", "--order-interval", "0", "--poll-interval", "0.05")
    _marketboss(cwd, "backtest", "--signals", "data/signals.jsonl", "--data", "data/market_data.jsonl",
                "--spread-bps", "2", "--output-dir", "runs/bt")  # fmt: skip
    trades = pl.DataFrame(read_jsonl_records(cwd / "data" / "paper_trading_trades.jsonl"))
    return trades.filter(pl.col("status") == "filled"), pl.read_ndjson(cwd / "runs" / "bt" / "fills.jsonl")


def book(df: pl.DataFrame, price: str) -> pl.DataFrame:
    """Fills (paper's trades or the backtest's) by signal and leg, with their New York day and price."""
    ny = pl.col("timestamp").str.to_datetime(time_zone="UTC").dt.convert_time_zone("America/New_York")
    return df.select("signal_id", "symbol", "side", "qty", pl.col("leg").fill_null("entry"),
                     ny.dt.date().alias("day"), pl.col(price).alias("price")).sort("signal_id", "leg")  # fmt: skip


def test_rsi_bracket_example_paper_trades_on_the_local_broker_as_it_backtests(tmp_path: Path) -> None:
    write_bars(synth_bars(["AAPL", "MSFT", "JPM"], "2021-01-01", "2023-12-31", "1Day", seed=7),
               tmp_path / "data" / "market_data.jsonl")  # fmt: skip
    _marketboss(tmp_path, "signals", "generate", "--strategy", RSI, "--data", "data/market_data.jsonl",
                "--output", "data/signals.jsonl")  # fmt: skip
    signals = read_signals_frame(tmp_path / "data" / "signals.jsonl")
    assert set(signals["strategy"]) == {"rsi_bracket"} and signals["stop_loss"].drop_nulls().len() > 0
    paper = _marketboss(tmp_path, "paper", "--signals", "data/signals.jsonl", "--order-interval", "0",
                        "--poll-interval", "0.05")  # fmt: skip
    assert "started the local broker" in paper.stdout
    # the local broker's default costs: a 2 bps spread, half paid per side
    _marketboss(tmp_path, "backtest", "--signals", "data/signals.jsonl", "--data", "data/market_data.jsonl",
                "--spread-bps", "2", "--output-dir", "runs/bt")  # fmt: skip

    trades = pl.DataFrame(read_jsonl_records(tmp_path / "data" / "paper_trading_trades.jsonl"))
    traded = trades.filter(pl.col("status") == "filled")
    fills = pl.read_ndjson(tmp_path / "runs" / "bt" / "fills.jsonl")
    assert set(traded["leg"].drop_nulls()) == {"stop_loss", "take_profit"}  # both legs fired on this data

    paper_book, backtest_book = book(traded, "filled_price"), book(fills, "price")
    assert paper_book.drop("price").equals(backtest_book.drop("price"))  # same orders, legs, sizes and days
    assert paper_book["price"].to_list() == pytest.approx(backtest_book["price"].to_list(), rel=1e-9)
    skipped = trades.filter(pl.col("status") != "filled")["signal_id"].to_list()
    bt_orders = pl.read_ndjson(tmp_path / "runs" / "bt" / "rejections.jsonl")
    assert sorted(skipped) == sorted(bt_orders["signal_id"].to_list())  # the sells a leg had already done


LIMIT_THEN_CANCEL = '''
from marketboss import Context, EventParams, EventStrategy


class LimitThenCancel(EventStrategy[EventParams]):
    """Day limit buys with a bracket; three bars later a cancel of the (filled) entry ends its exits; a close."""

    def start(self, ctx: Context) -> None:
        self.entries = {}

    def on_bar(self, ctx: Context) -> None:
        for s in range(len(ctx.symbols)):
            p = ctx.price(s)
            if ctx.t % 40 == 5 and ctx.position(s) == 0:
                self.entries[s] = ctx.buy(10, s, limit_price=round(p * 1.01, 2), stop_loss=round(p * 0.97, 2),
                                          take_profit=round(p * 1.03, 2))
            elif ctx.t % 40 == 8 and s in self.entries and s % 2 == 0:
                ctx.cancel(self.entries.pop(s))
            elif ctx.t % 40 == 30 and ctx.position(s) > 0:
                ctx.close(s)
'''


def test_day_limit_entries_with_brackets_and_cancels_paper_trade_as_they_backtest(tmp_path: Path) -> None:
    """A user's event strategy, day limit entries with a bracket (`paper` placing their exits once they fill, at
    the replay's stop on the fill bar: its own broker has no fill latency), half of them canceled once filled:
    paper on the local broker `paper` starts gives the backtest's fills, legs, days and prices. Before: the
    bracket's legs expired with the entry's session, the cancels found nothing ("already filled"), and exits
    that trade on the fill bar came a bar late."""
    write_bars(synth_bars(["AAPL", "MSFT", "JPM", "XOM"], "2021-01-01", "2022-12-31", "1Day", seed=7),
               tmp_path / "data" / "market_data.jsonl")  # fmt: skip
    (tmp_path / "limits.py").write_text(LIMIT_THEN_CANCEL)
    _marketboss(tmp_path, "signals", "generate", "--strategy", "limits.py:LimitThenCancel", "--data",
                "data/market_data.jsonl", "--output", "data/signals.jsonl")  # fmt: skip
    signals = read_signals_frame(tmp_path / "data" / "signals.jsonl")
    assert (signals["action"] == "CANCEL").sum() > 10 and set(signals["order_type"].drop_nulls()) == {"limit", "market"}
    _marketboss(tmp_path, "paper", "--signals", "data/signals.jsonl", "--order-interval", "0", "--poll-interval",
                "0.05")  # fmt: skip
    _marketboss(tmp_path, "backtest", "--signals", "data/signals.jsonl", "--data", "data/market_data.jsonl",
                "--spread-bps", "2", "--output-dir", "runs/bt")  # fmt: skip
    trades = pl.DataFrame(read_jsonl_records(tmp_path / "data" / "paper_trading_trades.jsonl"))
    traded = trades.filter(pl.col("status") == "filled")
    paper_book, backtest_book = book(traded, "filled_price"), book(pl.read_ndjson(tmp_path / "runs" / "bt" /
                                                                                  "fills.jsonl"), "price")  # fmt: skip
    assert set(traded["leg"].drop_nulls()) == {"stop_loss", "take_profit"}
    assert paper_book.drop("price").equals(backtest_book.drop("price"))
    assert paper_book["price"].to_list() == pytest.approx(backtest_book["price"].to_list(), rel=1e-9)
    cancels = trades.filter(pl.col("side") == "CANCEL")
    assert cancels.height > 10 and set(cancels["status"]) == {"canceled"}  # each ended its entry's exits
