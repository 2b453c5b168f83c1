"""Order submit -> fill event on the trade_updates stream of the local broker: the time from POST /v2/orders
(httpx, keep-alive) to alpaca-py's TradingStream handler receiving the order's `fill`, one order at a time,
p50 and p99 over --orders orders (the first --warmup not counted). Also the REST round-trip rate (POST, then
GET until filled) with and without a stream listening, which shows what publishing the events costs.
Run: .venv/bin/python benchmarks/bench_stream.py (--orders N, --warmup W).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from common import report
from marketboss.data.io import write_bars
from marketboss.data.synth import synth_bars
from marketboss.local_broker.process import LocalBroker, local_broker


class FillWatch:
    """TradingStream in a thread; `wait(order_id)` returns when its fill event has arrived (perf_counter time)."""

    def __init__(self, b: LocalBroker):
        from alpaca.trading.stream import TradingStream

        self.arrived: dict[str, float] = {}
        self.cond = threading.Condition()
        self.stream = TradingStream(b.key_id, b.secret_key, url_override=b.base_url.replace("http", "ws") + "/stream")
        self.stream.subscribe_trade_updates(self._on)
        self.thread = threading.Thread(target=self.stream.run, daemon=True)
        self.thread.start()

    async def _on(self, u: Any) -> None:
        if str(getattr(u.event, "value", u.event)) == "fill":
            with self.cond:
                self.arrived[str(u.order.id)] = time.perf_counter()
                self.cond.notify_all()

    def wait(self, order_id: str, timeout: float = 30.0) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: order_id in self.arrived, timeout):
                raise RuntimeError(f"no fill event for {order_id} within {timeout}s")
            return self.arrived[order_id]

    def stop(self) -> None:
        loop = self.stream._loop
        if loop is not None and loop.is_running():

            async def halt() -> None:
                await self.stream.stop_ws()
                await self.stream.close()

            asyncio.run_coroutine_threadsafe(halt(), loop).result(5)
        self.thread.join(10)


def _wait_listening(http: httpx.Client) -> None:
    deadline = time.monotonic() + 15
    while http.get("/admin/streams").json()["listening"] < 1:
        if time.monotonic() > deadline:
            raise RuntimeError("the stream did not start listening")
        time.sleep(0.02)


def _order(i: int) -> dict[str, Any]:
    return {"symbol": "AAPL", "qty": 1, "side": "buy" if i % 2 == 0 else "sell", "type": "market",
            "time_in_force": "day"}  # fmt: skip


def _round_trips(http: httpx.Client, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        order_id = http.post("/v2/orders", json=_order(i)).json()["id"]
        while http.get(f"/v2/orders/{order_id}").json()["status"] != "filled":
            pass
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--orders", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=50)
    args = ap.parse_args()
    logging.getLogger("alpaca").setLevel(logging.ERROR)  # its reconnect notice when the stream is stopped
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "bars.jsonl"
        write_bars(synth_bars(["AAPL"], "2024-01-01", "2024-03-31", "1Day", seed=3), data)
        with (
            local_broker(data, Path(tmp) / "bench.sqlite", fill_latency_ms=0, partial_fill_rate=0.0, rate_limit=0,
                         always_open=True) as b,
            httpx.Client(base_url=b.base_url, headers=b.headers, timeout=30.0) as http,
        ):  # fmt: skip
            _round_trips(http, args.warmup)  # warm the server and the connection
            quiet = statistics.median(_round_trips(http, args.orders // 4) for _ in range(3))
            watch = FillWatch(b)
            try:
                _wait_listening(http)
                latencies = []
                for i in range(args.warmup + args.orders):
                    t0 = time.perf_counter()
                    order_id = http.post("/v2/orders", json=_order(i)).json()["id"]
                    arrived = watch.wait(order_id)
                    if i >= args.warmup:
                        latencies.append(arrived - t0)
                listened = statistics.median(_round_trips(http, args.orders // 4) for _ in range(3))
            finally:
                watch.stop()
    latencies.sort()
    report(
        "stream_submit_to_fill_event",
        orders=len(latencies),
        p50_ms=latencies[len(latencies) // 2] * 1000,
        p99_ms=latencies[int(len(latencies) * 0.99)] * 1000,
        max_ms=latencies[-1] * 1000,
    )
    report("stream_publish_cost", round_trips_per_s_nobody_listening=quiet, round_trips_per_s_one_listener=listened)


if __name__ == "__main__":
    main()
