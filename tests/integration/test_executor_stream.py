"""The executor follows its orders on the broker's trade_updates stream, and falls back to polling when the
stream goes away (the local broker's /admin/streams drops and refuses it, as a network fault would); exits too."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from marketboss.broker.alpaca import AlpacaBroker
from marketboss.broker.base import OrderRequest
from marketboss.data.io import read_jsonl_records
from marketboss.execution.replay import LocalReplay
from marketboss.local_broker.process import LocalBroker
from marketboss.signals import Signal
from marketboss.signals.exits import Exits
from tests.integration.executor_fixtures import broker, executor, make_bars, make_signals
from tests.integration.stream_clients import streams_state
from tests.integration.test_executor_orders import GAP_BAR, gap_bars, signal, write


def _streams(lb: LocalBroker, **body: bool) -> None:
    r = httpx.post(f"{lb.base_url}/admin/streams", json=body, headers=lb.headers, timeout=10)
    assert r.status_code == 200, r.text


def test_the_executor_gets_its_fills_from_the_stream(tmp_path: Path) -> None:
    data, bars = make_bars(tmp_path)
    signals_path, signals = make_signals(tmp_path, bars, n=6)
    with broker(tmp_path, data) as lb:
        # a lookup only after 120 s of silence: every state below came from the stream
        summary = executor(tmp_path, lb, signals_path, data, stream_poll_interval=120.0).run()
        published = streams_state(lb)["events_published"]
    trades = read_jsonl_records(tmp_path / "trades.jsonl")
    assert [t["status"] for t in trades] == ["filled"] * len(signals)
    assert summary.updates["polled"] == 0
    assert summary.updates["stream"] >= len(signals)
    assert published >= 2 * len(signals)  # new and fill for each order


class DropStreamsAfter:
    """The replay, and after `n` signals the broker drops every stream connection and refuses new ones."""

    def __init__(self, replay: LocalReplay, lb: LocalBroker, n: int):
        self.replay, self.lb, self.n, self.seen = replay, lb, n, 0

    def check(self, signals: list[Signal], where: Path) -> None:
        self.replay.check(signals, where)

    def before(self, signal: Signal) -> bool:
        moved = self.replay.before(signal)
        self.seen += 1
        if self.seen == self.n + 1:
            _streams(self.lb, refuse=True, drop=True)
        return moved

    def through(self, signal: Signal) -> None:
        self.replay.through(signal)

    def when(self, signal: Signal) -> tuple[int, int]:
        return self.replay.when(signal)

    def finish(self, upto: Signal | None) -> bool:
        return self.replay.finish(upto)

    def stop_at_bars(self, symbols: Callable[[], set[str]], step: Callable[[], None]) -> None:
        self.replay.stop_at_bars(symbols, step)


def test_when_the_stream_drops_polling_takes_over(tmp_path: Path) -> None:
    data, bars = make_bars(tmp_path)
    signals_path, signals = make_signals(tmp_path, bars, n=6)
    with broker(tmp_path, data) as lb:
        ex = executor(tmp_path, lb, signals_path, data, stream_poll_interval=120.0)
        assert isinstance(ex.replay, LocalReplay)
        ex.replay = DropStreamsAfter(ex.replay, lb, 3)
        summary = ex.run()
        state = streams_state(lb)
    trades = read_jsonl_records(tmp_path / "trades.jsonl")
    assert [t["status"] for t in trades] == ["filled"] * len(signals)
    assert state["dropped"] == 1 and state["trading"] == 0
    assert summary.updates["stream"] >= 3  # the first three orders
    assert summary.updates["polled"] >= 3  # the last three


def test_the_order_stream_reconnects_and_resumes_after_a_drop(tmp_path: Path) -> None:
    data, _ = make_bars(tmp_path)
    with broker(tmp_path, data, always_open=True) as lb:
        b = AlpacaBroker(lb.key_id, lb.secret_key, lb.base_url, data_url=lb.base_url, is_local=True, timeout=5)
        stream = b.order_updates()
        stream.start()
        try:
            assert stream.wait_live(10) and stream.generation == 1
            _streams(lb, drop=True)
            deadline = time.monotonic() + 15  # alpaca-py reconnects after its backoff (about 1 s the first time)
            while not (stream.live and stream.generation == 2) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert stream.live and stream.generation == 2
            order = b.submit_order(OrderRequest("AAPL", 3, "buy", "mb-stream-test"))
            got = stream.wait(order.id, 0, 10)
            while got is not None and not got[1].is_terminal:
                got = stream.wait(order.id, got[0], 10)
            assert got is not None and got[1].status == "filled" and got[1].filled_qty == 3
        finally:
            stream.stop()
        assert not stream.live


def _stop_leg_followed(tmp_path: Path, drop: bool) -> tuple[Counter[str], list[dict[str, Any]], str]:
    """A bracketed AAPL entry, then the clock moved to the bar where AAPL gaps 15% down: its stop leg fills and
    its take-profit is canceled. Returns what `follow` counted (stream / polled), the trades and the entry id."""
    data, bars = gap_bars(tmp_path)
    entry = signal(bars, "AAPL", 5)
    with broker(tmp_path, data) as lb:
        ex = executor(tmp_path, lb, write(tmp_path, [entry]), data, exits=Exits(stop_loss_pct=5, take_profit_pct=10),
                      stream_poll_interval=120.0)  # fmt: skip
        assert isinstance(ex.replay, LocalReplay)
        ex.open_session()
        try:
            ex.execute(ex._signals())
            if drop:
                _streams(lb, refuse=True, drop=True)
                while ex.updates is not None and ex.updates.live:  # the client hears the close
                    time.sleep(0.01)
            before = Counter(ex.summary.updates)
            ex.replay.before(signal(bars, "AAPL", GAP_BAR - 1))  # the clock to the gap's open
            ex.follow()
            counted = Counter(ex.summary.updates)
            counted.subtract(before)
        finally:
            ex.close_session()
    return counted, read_jsonl_records(tmp_path / "trades.jsonl"), entry.id


def test_an_exit_fill_is_followed_on_the_stream(tmp_path: Path) -> None:
    counted, trades, entry_id = _stop_leg_followed(tmp_path, drop=False)
    assert [(t["signal_id"], t["leg"], t["status"]) for t in trades] == [
        (entry_id, None, "filled"), (entry_id, "stop_loss", "filled")]  # fmt: skip
    assert counted["stream"] == 2 and counted["polled"] == 0  # the stop's fill and the take-profit's cancel


def test_an_exit_fill_is_polled_when_the_stream_is_down(tmp_path: Path) -> None:
    counted, trades, entry_id = _stop_leg_followed(tmp_path, drop=True)
    assert [(t["signal_id"], t["leg"], t["status"]) for t in trades] == [
        (entry_id, None, "filled"), (entry_id, "stop_loss", "filled")]  # fmt: skip
    assert counted["polled"] == 2 and counted["stream"] == 0
