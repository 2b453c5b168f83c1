"""Shared by the executor tests: small market data, hand-made signals and a broker started per test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from marketboss.broker.alpaca import AlpacaBroker
from marketboss.data.io import write_bars
from marketboss.data.synth import synth_bars
from marketboss.execution.executor import Executor, ExecutorConfig
from marketboss.execution.replay import LocalReplay
from marketboss.local_broker.process import LocalBroker, local_broker
from marketboss.risk import RiskConfig
from marketboss.signals import Signal, signal_id, write_signals

SYMBOLS = ["AAPL", "MSFT", "JPM"]
#: A broker clock in the last session of make_bars' data, market open: every make_signals signal is stale there,
#: so a run without replay sends them only with allow_stale (the tests that are not about freshness).
AFTER_THE_SIGNALS = "2024-03-28T15:00:00Z"


def make_bars(tmp: Path) -> tuple[Path, pl.DataFrame]:
    bars = synth_bars(SYMBOLS, "2024-01-01", "2024-03-29", "1Day", seed=21)
    path = tmp / "bars.jsonl"
    write_bars(bars, path)
    return path, bars


def make_signals(tmp: Path, bars: pl.DataFrame, n: int = 12, qty: float = 10) -> tuple[Path, list[Signal]]:
    """Alternating BUY/SELL per symbol on successive bars: every order is affordable and fills."""
    stamps = bars["timestamp"].unique().sort().to_list()
    out: list[Signal] = []
    for i in range(n):
        sym = SYMBOLS[i % len(SYMBOLS)]
        ts = stamps[2 + i]
        action = "BUY" if (i // len(SYMBOLS)) % 2 == 0 else "SELL"
        close = bars.filter((pl.col("symbol") == sym) & (pl.col("timestamp") == ts))["close"][0]
        sid = signal_id("test", {"qty": qty}, sym, ts, action)
        out.append(Signal(id=sid, timestamp=ts, symbol=sym, action=action, quantity=qty, strategy="test", price=close))
    path = tmp / "signals.jsonl"
    write_signals(path, out)
    return path, out


@contextmanager
def broker(tmp: Path, data: Path, **options: Any) -> Iterator[LocalBroker]:
    options.setdefault("fill_latency_ms", 0.0)
    options.setdefault("partial_fill_rate", 0.0)
    with local_broker(data, tmp / "broker.sqlite", **options) as lb:
        yield lb


def executor(tmp: Path, lb: LocalBroker, signals: Path, data: Path, replay: bool = True, **cfg: Any) -> Executor:
    risk = cfg.pop("risk", RiskConfig())
    config = ExecutorConfig(
        signals=signals,
        trades_output=tmp / "trades.jsonl",
        equity_output=tmp / "equity.jsonl",
        order_interval=0.0,
        poll_interval=0.02,
        backoff_base=0.01,
        backoff_max=0.05,
        risk=risk,
        **cfg,
    )
    b = AlpacaBroker(lb.key_id, lb.secret_key, lb.base_url, data_url=lb.base_url, is_local=True, timeout=5)
    rep = LocalReplay(b, data, lb.key_id, lb.secret_key) if replay else None
    return Executor(config, b, replay=rep)


def broker_orders(lb: LocalBroker) -> list[dict[str, Any]]:
    import httpx

    r = httpx.get(f"{lb.base_url}/v2/orders", params={"status": "all", "limit": 500}, headers=lb.headers, timeout=10)
    r.raise_for_status()
    return list(r.json())
