"""Order round trips per second on the local broker, with 1 and 4 concurrent clients, against the target of
1,000/s with 4 (issue 19). A round trip: POST /v2/orders (a market order for one share), then GET
/v2/orders/{id} until it shows the fill. Each client is its own process with one keep-alive loopback
connection through the standard library's http.client: a bot's HTTP stack costs the bot's CPU, and on this
2-core machine the clients share the cores with the server, so the lightest client measures the server (httpx
spends ~0.5 ms of CPU per request, more than the server does). alpaca-py's TradingClient is measured too, one
client, for what a bot on the SDK sees.

Wall-clock rates on a shared machine depend on what else runs, so the server's own CPU time per round trip is
reported as well: its inverse is what one core of server gives, whatever the load.
Run: .venv/bin/python benchmarks/bench_broker.py (--orders N per client per run, --runs R, --clients 1,4).
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import orjson
import psutil

sys.path.insert(0, str(Path(__file__).parent))
from common import report
from marketboss.data.io import write_bars
from marketboss.data.synth import synth_bars
from marketboss.local_broker.process import local_broker

SYMBOLS = ["AAPL", "MSFT", "JPM", "XOM"]
TARGET_CLIENTS = 4
TARGET = 1000.0  # round trips per second with TARGET_CLIENTS clients


class ClientRun(NamedTuple):
    start: float
    end: float
    latencies: list[float]
    gets: int


def _orders(base_url: str, headers: dict[str, str], worker: int, run: int, n: int) -> ClientRun:
    """One client: n round trips, alternating buy and sell of one share (never short, never out of cash)."""
    url = urlsplit(base_url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port)
    post_headers = {**headers, "Content-Type": "application/json"}

    def call(method: str, path: str, body: bytes | None = None) -> dict[str, str]:
        conn.request(method, path, body=body, headers=post_headers if body else headers)
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"{method} {path}: HTTP {response.status} {data[:200]!r}")
        return dict(orjson.loads(data))

    symbol = SYMBOLS[worker % len(SYMBOLS)]
    call("GET", "/v2/clock")  # connect before the clock starts
    latencies, gets = [], 0
    start = time.time()
    for i in range(n):
        t0 = time.perf_counter()
        body = orjson.dumps({"symbol": symbol, "qty": 1, "side": "buy" if i % 2 == 0 else "sell", "type": "market",
                             "time_in_force": "day", "client_order_id": f"bench-{run}-{worker}-{i}"})  # fmt: skip
        order_id = call("POST", "/v2/orders", body)["id"]
        while True:
            gets += 1
            if call("GET", f"/v2/orders/{order_id}")["status"] == "filled":
                break
        latencies.append(time.perf_counter() - t0)
    end = time.time()
    conn.close()
    return ClientRun(start, end, latencies, gets)


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
    ap.add_argument("--clients", default=f"1,{TARGET_CLIENTS}", help="comma-separated client counts")
    args = ap.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    medians: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "bars.jsonl"
        write_bars(synth_bars(SYMBOLS, "2024-01-01", "2024-03-31", "1Day", seed=3), data)
        with local_broker(data, Path(tmp) / "bench.sqlite", fill_latency_ms=0, partial_fill_rate=0.0, rate_limit=0,
                          always_open=True) as broker, ProcessPoolExecutor(max(counts)) as pool:  # fmt: skip
            server = psutil.Process(broker.process.pid)
            rates: dict[int, list[float]] = {c: [] for c in counts}
            lat: dict[int, list[float]] = {c: [] for c in counts}
            cpu: dict[int, list[float]] = {c: [] for c in counts}
            gets: dict[int, int] = dict.fromkeys(counts, 0)
            for run in range(args.runs + 1):  # the first round warms up and is not counted
                for clients in counts:  # interleaved, so a change in the machine's load touches every count alike
                    cpu0 = _cpu(server)
                    jobs = [pool.submit(_orders, broker.base_url, broker.headers, w, run * 100 + clients, args.orders)
                            for w in range(clients)]  # fmt: skip
                    results = [j.result() for j in jobs]
                    if run == 0:
                        continue
                    done = clients * args.orders
                    cpu[clients].append((_cpu(server) - cpu0) / done)
                    rates[clients].append(done / (max(r.end for r in results) - min(r.start for r in results)))
                    lat[clients] += [x for r in results for x in r.latencies]
                    gets[clients] += sum(r.gets for r in results)
            for clients in counts:
                ms = sorted(lat[clients])
                medians[clients] = statistics.median(rates[clients])
                report(
                    "broker_round_trips",
                    clients=clients,
                    orders_per_run=clients * args.orders,
                    runs=args.runs,
                    median_per_s=medians[clients],
                    min_per_s=min(rates[clients]),
                    max_per_s=max(rates[clients]),
                    p50_ms=ms[len(ms) // 2] * 1000,
                    p99_ms=ms[int(len(ms) * 0.99)] * 1000,
                    gets_per_round_trip=gets[clients] / len(ms),
                    server_cpu_us_per_round_trip=statistics.median(cpu[clients]) * 1e6,
                    server_capacity_per_core_per_s=1 / statistics.median(cpu[clients]),
                )
            sdk = [_sdk_orders(broker.base_url, broker.key_id, broker.secret_key, args.orders // 3)
                   for _ in range(3)]  # fmt: skip
            report("broker_round_trips_alpaca_py", clients=1, median_per_s=statistics.median(sdk))
    if TARGET_CLIENTS in medians:
        got = medians[TARGET_CLIENTS]
        report("broker_round_trips_vs_target", clients=TARGET_CLIENTS, marketboss_per_s=got, target_per_s=TARGET,
               ratio=got / TARGET, meets_target=got >= TARGET)  # fmt: skip


if __name__ == "__main__":
    main()
