"""An event strategy's cancel reaches the broker: the order it placed on one bar and canceled two bars later is
sent, then canceled at the local broker (alpaca-py's TradingClient sees it canceled), the outcome recorded under
the cancel's id, and a restart does neither twice."""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

import polars as pl
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderStatus

from marketboss.backtest.engine import run_backtest
from marketboss.data.io import read_jsonl_records
from marketboss.data.market import Market
from marketboss.execution.logs import read_paper_trades
from marketboss.signals import read_signals, write_signals
from marketboss.strategies.events import Context, EventParams, EventStrategy
from tests.integration.executor_fixtures import broker, executor, make_bars

PLACE_AT, CANCEL_AT = 10, 12


class LimitThenCancel(EventStrategy[EventParams]):
    """A gtc limit buy of AAPL far below the market on one bar, canceled two bars later."""

    name: ClassVar[str] = "limit_then_cancel"
    summary: ClassVar[str] = "test"

    def on_bar(self, ctx: Context) -> None:
        if ctx.t == PLACE_AT:
            ctx.buy(5, "AAPL", limit_price=round(ctx.price("AAPL") * 0.8, 2), time_in_force="gtc")
        elif ctx.t == CANCEL_AT:
            ctx.cancel_all("AAPL")


def test_a_cancel_decided_two_bars_later_cancels_the_sent_order_at_the_broker(tmp_path: Path) -> None:
    data, bars = make_bars(tmp_path)
    signals = LimitThenCancel(EventParams()).signals(Market.from_bars(bars))
    path = tmp_path / "signals.jsonl"
    write_signals(path, signals)
    buy, cancel = read_signals(path)
    assert (buy.action, buy.order_type, cancel.action, cancel.cancels) == ("BUY", "limit", "CANCEL", buy.id)
    stamps = bars["timestamp"].unique().sort()
    assert (buy.timestamp, cancel.timestamp) == (stamps[PLACE_AT], stamps[CANCEL_AT])
    with broker(tmp_path, data) as lb:
        client = TradingClient(lb.key_id, lb.secret_key, paper=True, url_override=lb.base_url)
        ex = executor(tmp_path, lb, path, data)
        ex.open_session()
        try:
            ex.execute([buy], park_after=0.0)  # bar by bar, as the live loop sends them: the order is left working
            ex.follow()
            assert client.get_order_by_client_id(f"mb-{buy.id}").status in (OrderStatus.NEW, OrderStatus.ACCEPTED)
            ex.execute([cancel], park_after=0.0)
            deadline = time.monotonic() + 60
            while ex.working and time.monotonic() < deadline:  # its end reaches follow by the stream, soon
                ex.follow()
                time.sleep(0.05)
        finally:
            ex.close_session()
        assert client.get_order_by_client_id(f"mb-{buy.id}").status == OrderStatus.CANCELED
        trades = read_jsonl_records(tmp_path / "trades.jsonl")
        by_id = {t["signal_id"]: t for t in trades}
        assert by_id[cancel.id]["status"] == "canceled" and by_id[cancel.id]["side"] == "CANCEL"
        assert by_id[cancel.id]["client_order_id"] == f"mb-{buy.id}" and by_id[cancel.id]["qty"] == 0
        assert by_id[buy.id]["status"] == "canceled" and by_id[buy.id]["qty"] == 0
        assert read_paper_trades(tmp_path / "trades.jsonl").height == len(trades)  # reconcile's and the dashboard's
        rows = dict(ex.summary.as_rows(signals_file=False))  # the order canceled once (before: "orders canceled 2")
        assert (rows["orders canceled"], rows["CANCEL lines canceled"]) == (1, 1)
        # a restart finds both recorded: nothing is sent or canceled again
        again = executor(tmp_path, lb, path, data)
        again.open_session()
        try:
            again.execute([buy, cancel], park_after=0.0)
            again.follow()
        finally:
            again.close_session()
        assert read_jsonl_records(tmp_path / "trades.jsonl") == trades
        orders = client.get_orders(filter=None)
        assert [o.client_order_id for o in orders if o.symbol == "AAPL"] == []  # no open order left


def test_a_cancel_of_an_order_that_already_filled_is_recorded_skipped(tmp_path: Path) -> None:
    data, bars = make_bars(tmp_path)
    signals = LimitThenCancel(EventParams()).signals(Market.from_bars(bars))
    buy_row = signals.filter(pl.col("action") == "BUY").row(0, named=True)
    # the same order priced to fill at once: by its cancel's bar there is nothing left to cancel
    signals = signals.with_columns(pl.when(pl.col("action") == "BUY").then(round(buy_row["price"] * 1.2, 2))
                                   .otherwise(pl.col("limit_price")).alias("limit_price"))  # fmt: skip
    path = tmp_path / "signals.jsonl"
    write_signals(path, signals)
    buy, cancel = read_signals(path)
    with broker(tmp_path, data) as lb:
        ex = executor(tmp_path, lb, path, data, park_after=60.0)
        ex.open_session()
        try:
            ex.execute([buy])
            ex.execute([cancel])
        finally:
            ex.close_session()
    by_id = {t["signal_id"]: t for t in read_jsonl_records(tmp_path / "trades.jsonl")}
    assert by_id[buy.id]["status"] == "filled"
    assert by_id[cancel.id]["status"] == "skipped" and "already filled" in by_id[cancel.id]["reason"]



def test_a_cancel_of_a_filled_bracket_order_cancels_its_exits_at_the_broker_and_in_the_backtest(tmp_path: Path
                                                                                                 ) -> None:  # fmt: skip
    """A CANCEL naming an order that filled with a bracket ends what of it still works, its exits (the rule the
    live loop's restart applies to the exits its stop canceled, nb.cancel_row): at the broker and in the
    backtest of the file, where its take-profit would have filled later."""
    data, bars = make_bars(tmp_path)
    signals = LimitThenCancel(EventParams()).signals(Market.from_bars(bars))
    stamps = bars["timestamp"].unique().sort()
    aapl = bars.filter(pl.col("symbol") == "AAPL").sort("timestamp")
    limit = round(max(aapl["close"][PLACE_AT], aapl["open"][PLACE_AT + 1]) * 1.005, 2)  # fills at the next open
    later_high = aapl["high"][CANCEL_AT + 1 :].max()
    assert later_high > limit * 1.01  # a take-profit under it fills later, unless canceled
    is_buy = pl.col("action") == "BUY"
    signals = signals.with_columns(pl.when(is_buy).then(limit).otherwise(pl.col("limit_price")).alias("limit_price"),
                                   pl.when(is_buy).then(round(later_high * 0.999, 2)).alias("take_profit"),
                                   pl.when(is_buy).then(round(limit * 0.5, 2)).alias("stop_loss"))  # fmt: skip
    path = tmp_path / "signals.jsonl"
    write_signals(path, signals)
    buy, cancel = read_signals(path)
    kept = run_backtest(bars, signals.filter(is_buy)).fills
    canceled = run_backtest(bars, signals).fills
    assert kept["leg"].to_list() == [None, "take_profit"] and canceled["leg"].to_list() == [None]
    with broker(tmp_path, data) as lb:
        client = TradingClient(lb.key_id, lb.secret_key, paper=True, url_override=lb.base_url)
        ex = executor(tmp_path, lb, path, data, park_after=60.0)
        ex.open_session()
        try:
            ex.execute([buy])
            assert {o.order_type for o in client.get_orders(filter=None) if o.symbol == "AAPL"}  # its exits work
            ex.execute([cancel])
        finally:
            ex.close_session()
        assert [o for o in client.get_orders(filter=None) if o.symbol == "AAPL"] == []
        assert float(client.get_open_position("AAPL").qty) == 5
    by_id = {t["signal_id"]: t for t in read_jsonl_records(tmp_path / "trades.jsonl") if t["leg"] is None}
    assert by_id[buy.id]["status"] == "filled" and by_id[cancel.id]["status"] == "canceled"
    assert by_id[cancel.id]["reason"] == f"canceled the exits of mb-{buy.id} (stop_loss, take_profit)"
    assert stamps[CANCEL_AT] == cancel.timestamp

PLUGIN = '''
from marketboss.strategies.events import Context, EventParams, EventStrategy


class LimitThenCancelAt(EventStrategy[EventParams]):
    """A gtc limit buy of AAPL far below the market at 15:00, canceled two bars later."""

    name = "limit_then_cancel_at"
    summary = "test"

    def on_bar(self, ctx: Context) -> None:
        minute = ctx.time.strftime("%H:%M")
        if minute == "15:00":
            ctx.buy(5, "AAPL", limit_price=round(ctx.price("AAPL") * 0.8, 2), time_in_force="gtc")
        elif minute == "15:02":
            ctx.cancel_all("AAPL")
'''


def test_the_live_loop_sends_an_event_strategys_cancel_at_the_bar_it_decided_it(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from marketboss.data.io import write_bars
    from marketboss.data.synth import synth_bars

    data = tmp_path / "bars.jsonl"
    write_bars(synth_bars(["AAPL", "MSFT"], "2024-03-04", "2024-03-05", "1Min", seed=5), data)
    plugin = tmp_path / "cancel_plugin.py"
    plugin.write_text(PLUGIN)
    with broker(tmp_path, data, rate_limit=0) as lb:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "MARKETBOSS_"))}
        env.update(MARKETBOSS_LOG_LEVEL="warning", MARKETBOSS_BROKER_KEY_ID=lb.key_id,
                   MARKETBOSS_BROKER_SECRET_KEY=lb.secret_key)  # fmt: skip
        cmd = [sys.executable, "-m", "marketboss", "live", "--strategy", f"{plugin}:LimitThenCancelAt",
               "--symbols", "AAPL,MSFT", "--timeframe", "1Min", "--broker-url", lb.base_url,
               "--replay-from", "2024-03-05", "--until", "2024-03-05T15:10:00Z",
               "--signals-output", str(tmp_path / "live_signals.jsonl"), "--trades-output",
               str(tmp_path / "trades.jsonl"), "--equity-output", str(tmp_path / "equity.jsonl"),
               "--status-output", str(tmp_path / "status.json"), "--grace", "2",
               "--on-stop", "keep"]  # fmt: skip
        # --on-stop keep: the session's end cancels nothing itself; only the strategy's cancel can
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        buy, cancel = read_signals(tmp_path / "live_signals.jsonl")
        assert (buy.action, cancel.action, cancel.cancels) == ("BUY", "CANCEL", buy.id)
        assert (buy.timestamp.strftime("%H:%M"), cancel.timestamp.strftime("%H:%M")) == ("15:00", "15:02")
        client = TradingClient(lb.key_id, lb.secret_key, paper=True, url_override=lb.base_url)
        order = client.get_order_by_client_id(f"mb-{buy.id}")
        assert order.status == OrderStatus.CANCELED and float(order.filled_qty or 0) == 0
    by_id = {t["signal_id"]: t for t in read_jsonl_records(tmp_path / "trades.jsonl")}
    assert by_id[cancel.id]["status"] == "canceled" and by_id[buy.id]["status"] == "canceled"
