"""Order round trips per second on the local broker: POST /v2/orders, then GET /v2/orders/{id} until it shows
the fill, over loopback keep-alive connections (httpx), one client process per connection; plus the same
loop through alpaca-py's TradingClient. Medians of several runs.

Wall-clock rates on a shared 2-core machine depend on what else runs (the clients share the cores with the
server), so the server's own CPU time per round trip is reported too: its inverse is what one core of server
gives, whatever the load. Target: at least 500 round trips per second.
Run: .venv/bin/python benchmarks/bench_broker.py (--orders N per client per run, --runs R, --clients 1,2).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).parent))
from common import report
from marketboss.data.io import write_bars
from marketboss.data.synth import synth_bars
from marketboss.local_broker.process import local_broker

SYMBOLS = ["AAPL", "MSFT", "JPM", "XOM"]
TARGET = 500.0


def _orders(base_url: str, headers: dict[str, str], worker: int, run: int, n: int) -> tuple[float, float, list[float]]:
    """One client: n round trips, alternating buy and sell of one share (never short, never out of cash)."""
    symbol = SYMBOLS[worker % len(SYMBOLS)]
    latencies = []
    with httpx.Client(base_url=base_url, headers=headers, timeout=30.0) as http:
        http.get("/v2/clock")  # connect before the clock starts
        start = time.time()
        for i in range(n):
            t0 = time.perf_counter()
            body = {"symbol": symbol, "qty": 1, "side": "buy" if i % 2 == 0 else "sell", "type": "market",
                    "time_in_force": "day", "client_order_id": f"bench-{run}-{worker}-{i}"}  # fmt: skip
            order_id = http.post("/v2/orders", json=body).json()["id"]
            while http.get(f"/v2/orders/{order_id}").json()["status"] != "filled":
                pass
            latencies.append(time.perf_counter() - t0)
        return start, time.time(), latencies


def _sdk_orders(base_url: str, key: str, secret: str, n: int) -> float:
    from alpaca.trading.client import TradingClient
    from alpaca.trading.enums import OrderStatus
    from alpaca.trading.requests import MarketOrderRequest

    client = TradingClient(key, secret, paper=True, url_override=base_url)
    client.get_clock()
    t0 = time.perf_counter()
    for i in range(n):
        order = client.submit_order(
            MarketOrderRequest(symbol="AAPL", qty=1, side="buy" if i % 2 == 0 else "sell", time_in_force="day")
        )
        while client.get_order_by_id(order.id).status != OrderStatus.FILLED:
            pass
    return n / (time.perf_counter() - t0)


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--orders", type=int, default=1000, help="round trips per client per run")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--clients", default="1,2", help="comma-separated client counts")
    args = ap.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    best = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "bars.jsonl"
        write_bars(synth_bars(SYMBOLS, "2024-01-01", "2024-03-31", "1Day", seed=3), data)
        with local_broker(data, Path(tmp) / "bench.sqlite", fill_latency_ms=0, partial_fill_rate=0.0, rate_limit=0,
                          always_open=True) as broker, ProcessPoolExecutor(max(counts)) as pool:  # fmt: skip
            server = psutil.Process(broker.process.pid)
            for clients in counts:
                rates, lat, cpu = [], [], []
                for run in range(args.runs + 1):  # the first run warms up and is not counted
                    cpu0 = _cpu(server)
                    jobs = [pool.submit(_orders, broker.base_url, broker.headers, w, run * 100 + clients, args.orders)
                            for w in range(clients)]  # fmt: skip
                    results = [j.result() for j in jobs]
                    if run == 0:
                        continue
                    cpu.append((_cpu(server) - cpu0) / (clients * args.orders))
                    elapsed = max(r[1] for r in results) - min(r[0] for r in results)
                    rates.append(clients * args.orders / elapsed)
                    lat += [x for r in results for x in r[2]]
                lat.sort()
                median = statistics.median(rates)
                best = max(best, median)
                report(
                    "broker_round_trips_httpx",
                    clients=clients,
                    orders_per_run=clients * args.orders,
                    runs=args.runs,
                    median_per_s=median,
                    min_per_s=min(rates),
                    max_per_s=max(rates),
                    p50_ms=lat[len(lat) // 2] * 1000,
                    p99_ms=lat[int(len(lat) * 0.99)] * 1000,
                    server_cpu_us_per_round_trip=statistics.median(cpu) * 1e6,
                    server_capacity_per_core_per_s=1 / statistics.median(cpu),
                )
            sdk = [_sdk_orders(broker.base_url, broker.key_id, broker.secret_key, args.orders // 3)
                   for _ in range(3)]  # fmt: skip
            report("broker_round_trips_alpaca_py", clients=1, median_per_s=statistics.median(sdk))
    report("broker_round_trips_best", median_per_s=best, target_per_s=TARGET, meets_target=best >= TARGET)


if __name__ == "__main__":
    main()
