"""Bars as they close: alpaca-py's StockDataStream (`bars` channel) in a background thread, for Alpaca and the
local broker alike. Each bar is queued as it arrives; the live loop takes them from `get`. The stream says whether
it is connected (`live`) and counts its connections (`generation`), so bars missed while it was down are fetched
from REST by the caller. Reconnection, with exponential backoff and jitter (1 s to 30 s), is alpaca-py's own.
"""

from __future__ import annotations

import logging
import queue
import re
import time
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from alpaca.data.enums import DataFeed
from alpaca.data.live.stock import StockDataStream

from marketboss.broker.stream import WEBSOCKET_PARAMS, StreamThread
from marketboss.logging import get_logger

log = get_logger(__name__)
STOP_TIMEOUT = 5.0


class LiveBar(NamedTuple):
    symbol: str
    start_us: int  # the bar's start (its stamp), epoch microseconds UTC
    open: float
    high: float
    low: float
    close: float
    volume: float
    received: float  # time.perf_counter() when it arrived (latency measurements)


def data_stream_url(data_url: str | None, feed: str, is_local: bool = False) -> str | None:
    """The market-data stream beside a REST data URL: http://127.0.0.1:8765 -> ws://127.0.0.1:8765/v2/iex (the
    local broker, or another Alpaca-compatible server); None for Alpaca's own data host, whose stream lives on
    another host (stream.data.alpaca.markets: alpaca-py's default)."""
    host = urlsplit(data_url or "").hostname or ""
    if data_url is None or (not is_local and (host == "alpaca.markets" or host.endswith(".alpaca.markets"))):
        return None
    return re.sub(r"^http", "ws", data_url.rstrip("/")) + f"/v2/{feed}"


def epoch_us(t: datetime) -> int:
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp() * 1_000_000)


class _Stream(StockDataStream):
    """StockDataStream that reports when it is connected (alpaca-py's own says nothing)."""

    def __init__(self, key_id: str, secret_key: str, url: str | None, feed: str, owner: BarStream):
        super().__init__(key_id, secret_key, feed=DataFeed(feed), url_override=url,
                         websocket_params=WEBSOCKET_PARAMS)
        self._owner = owner

    async def _auth(self) -> None:
        await super()._auth()  # raises unless authenticated
        self._owner._set_live(True)

    async def close(self) -> None:
        self._owner._set_live(False)
        await super().close()

    async def halt(self) -> None:
        await self.stop_ws()
        await self.close()


class BarStream(StreamThread):
    """The closed bars of some symbols, in arrival order."""

    def __init__(self, key_id: str, secret_key: str, url: str | None, feed: str, symbols: list[str]):
        super().__init__(_Stream(key_id, secret_key, url, feed, self), url or f"alpaca {feed}", "bar-stream",
                         ("bar_stream_connected", "bar_stream_down"))  # fmt: skip
        self.bars: queue.Queue[LiveBar] = queue.Queue()
        self._client.subscribe_bars(self._on_bar, *symbols)
        # alpaca-py logs every reconnect with a traceback; the state changes are logged here instead
        logging.getLogger("alpaca.data.live.websocket").setLevel(logging.CRITICAL + 1)

    def get(self, timeout: float) -> LiveBar | None:
        try:
            return self.bars.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    async def _on_bar(self, bar: Any) -> None:
        try:
            b = LiveBar(str(bar.symbol), epoch_us(bar.timestamp), float(bar.open), float(bar.high), float(bar.low),
                        float(bar.close), float(bar.volume), time.perf_counter())  # fmt: skip
        except Exception as exc:  # one odd message must not end the stream
            log.warning("bar_stream_bad_bar", error_type=type(exc).__name__, error=str(exc)[:200])
            return
        self.bars.put(b)
