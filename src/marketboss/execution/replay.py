"""Replay on the local broker: before each signal, move the broker's simulated clock to the start of the
symbol's next bar, where the backtest fills it (its open). The paper fill then differs from the backtest's
only by what execution adds (spread, slippage, partial fills, latency), which is what reconcile measures."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import polars as pl

from marketboss.broker.alpaca import AlpacaBroker
from marketboss.data.io import read_bars
from marketboss.logging import get_logger
from marketboss.signals import Signal

log = get_logger(__name__)


class LocalReplay:
    def __init__(self, broker: AlpacaBroker, bars: Path, key_id: str, secret_key: str):
        df = read_bars(bars).select("symbol", pl.col("timestamp").dt.epoch("us"))
        self._stamps = {
            sym: np.sort(g["timestamp"].to_numpy()) for (sym,), g in df.group_by("symbol", maintain_order=True)
        }
        self._http = httpx.Client(
            base_url=broker.base_url,
            headers={"APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret_key},
            timeout=10.0,
        )
        self._now_us = 0

    def before(self, signal: Signal) -> None:
        stamps = self._stamps.get(signal.symbol)
        if stamps is None:
            return
        t = int(signal.timestamp.timestamp() * 1_000_000)
        i = int(np.searchsorted(stamps, t, side="right"))
        if i >= len(stamps):
            log.warning("replay_no_next_bar", signal_id=signal.id, symbol=signal.symbol)
            return
        nxt = int(stamps[i])
        if nxt <= self._now_us:
            return  # the clock only moves forward; an earlier bar is already in the past
        stamp = np.datetime64(nxt, "us").astype(str) + "Z"
        r = self._http.post("/admin/clock", json={"bar": stamp})
        if r.status_code != 200:
            log.warning("replay_clock_not_set", signal_id=signal.id, status=r.status_code, body=r.text[:200])
            return
        self._now_us = nxt

    def close(self) -> None:
        self._http.close()
