"""The live loop's latency against the local broker: a session of 1-minute bars replayed through `marketboss live`'s
own loop (execution/live.py: stream bars, strategy, signals log, executor, trade_updates), measuring per order
  - bar close -> order accepted: from the moment the bar closes (the broker's clock is set to its end) to the
    broker's answer accepting the order decided on it;
  - bar close -> fill event: to the order's fill arriving on the trade_updates websocket;
p50 and p99. The broker fills after --fill-latency-ms (0: what the loop and the broker add, nothing simulated), and
answers each request (but the replay clock's) after --request-latency-ms (0: loopback; a round trip to Alpaca is
tens of ms).
Run: .venv/bin/python benchmarks/bench_live.py (--symbols N, --bars N, --fill-latency-ms X, --request-latency-ms X).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import report
from marketboss.alerts import Alerter
from marketboss.broker.alpaca import AlpacaBroker
from marketboss.data.io import write_bars
from marketboss.data.synth import symbols_from, synth_bars
from marketboss.execution.executor import Executor, ExecutorConfig
from marketboss.execution.live import LiveConfig, LiveLoop
from marketboss.execution.replay import ReplayClock
from marketboss.local_broker.process import local_broker
from marketboss.risk import RiskConfig
from marketboss.strategies.registry import create


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=10)
    ap.add_argument("--bars", type=int, default=390)
    ap.add_argument("--fill-latency-ms", type=float, default=0.0)
    ap.add_argument("--request-latency-ms", type=float, default=0.0)
    args = ap.parse_args()
    logging.getLogger().setLevel(logging.WARNING)
    symbols = symbols_from(str(args.symbols))
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        write_bars(synth_bars(symbols, "2024-03-04", "2024-03-06", "1Min", seed=3), t / "bars.jsonl")
        with local_broker(t / "bars.jsonl", t / "broker.sqlite", rate_limit=0, partial_fill_rate=0.0,
                          fill_latency_ms=args.fill_latency_ms,
                          faults={"latency_ms": args.request_latency_ms}) as lb:  # fmt: skip
            broker = AlpacaBroker(lb.key_id, lb.secret_key, lb.base_url, data_url=lb.base_url, is_local=True)
            replay = ReplayClock(lb.base_url, lb.key_id, lb.secret_key)
            replay.begin("2024-03-06")
            exe = Executor(ExecutorConfig(signals=t / "live.jsonl", trades_output=t / "trades.jsonl",
                                          equity_output=t / "equity.jsonl", order_interval=0.0, park_after=0.5,
                                          timeframe="1Min", risk=RiskConfig(require_market_open=False)),
                           broker, Alerter([]))  # fmt: skip
            cfg = LiveConfig(symbols=tuple(symbols), timeframe="1Min", warmup_bars=200, max_bars=args.bars,
                             signals_output=t / "live.jsonl", status_output=t / "status.json")  # fmt: skip
            strategy = create("ma_crossover", ["fast=2", "slow=5", "sizing=weight", "weight=0.05"])
            loop = LiveLoop(cfg, strategy, broker, exe, mode="local", broker_display=lb.base_url, replay=replay)
            t0 = time.perf_counter()
            s = loop.run()
            wall = time.perf_counter() - t0
    sub, fill = np.array(s.to_submit_ms), np.array(s.to_fill_ms)
    report("live bar close -> order accepted (ms)", orders=len(sub), p50=float(np.percentile(sub, 50)),
           p99=float(np.percentile(sub, 99)))  # fmt: skip
    report("live bar close -> fill event (ms)", fills=len(fill), p50=float(np.percentile(fill, 50)),
           p99=float(np.percentile(fill, 99)), broker_fill_latency_ms=args.fill_latency_ms,
           request_latency_ms=args.request_latency_ms)  # fmt: skip
    report("live session", symbols=len(symbols), bars=s.bars, signals=s.signals, seconds=wall,
           ms_per_bar=wall / max(1, s.bars) * 1000)  # fmt: skip


if __name__ == "__main__":
    main()
