"""The executor follows its orders on the broker's trade_updates stream, and falls back to polling when the
stream goes away (the local broker's /admin/streams drops and refuses it, as a network fault would)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from marketboss.broker.alpaca import AlpacaBroker
from marketboss.broker.base import OrderRequest
from marketboss.data.io import read_jsonl_records
from marketboss.execution.replay import LocalReplay
from marketboss.local_broker.process import LocalBroker
from marketboss.signals import Signal
from tests.integration.executor_fixtures import broker, executor, make_bars, make_signals
from tests.integration.stream_clients import streams_state


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

    def before(self, signal: Signal) -> None:
        self.replay.before(signal)
        self.seen += 1
        if self.seen == self.n + 1:
            _streams(self.lb, refuse=True, drop=True)


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
