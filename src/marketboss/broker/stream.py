"""Order updates pushed by the broker: alpaca-py's TradingStream (`trade_updates`) in a background thread, for
Alpaca and the local broker alike (Alpaca calls the stream the recommended way to follow order state).

The stream keeps the latest state of every order it has heard of; `wait` blocks until an order has a newer one.
It says whether it is listening (`live`) and counts its connections (`generation`): while it is not live, or
after it reconnected (what happened in between was not heard), the caller looks orders up itself. Reconnection,
with exponential backoff and jitter (1 s to 30 s), is alpaca-py's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from alpaca.trading.stream import TradingStream

from marketboss.broker.base import Order
from marketboss.logging import get_logger

log = get_logger(__name__)
KEEP = 10_000  # orders whose latest state is kept
STOP_TIMEOUT = 5.0
#: alpaca-py's websocket options for both streams (orders here, bars in bars.py): a dead connection is noticed
#: within half a minute, a slow reader holds at most this many messages.
WEBSOCKET_PARAMS = {"ping_interval": 10, "ping_timeout": 20, "max_queue": 1024, "open_timeout": 5}


def stream_url(base_url: str) -> str:
    """The trading stream of a REST base URL: https://paper-api.alpaca.markets -> wss://.../stream."""
    return re.sub(r"^http", "ws", base_url.rstrip("/")) + "/stream"


class _Stream(TradingStream):
    """TradingStream that reports when it starts and stops listening (alpaca-py's own says nothing)."""

    def __init__(self, key_id: str, secret_key: str, url: str, owner: OrderStream):
        super().__init__(key_id, secret_key, url_override=url, websocket_params=WEBSOCKET_PARAMS)
        self._owner = owner

    async def _dispatch(self, msg: dict[str, Any]) -> None:
        if msg.get("stream") == "listening":
            data = msg.get("data") or {}
            self._owner._set_live("trade_updates" in (data.get("streams") or ()))
        await super()._dispatch(msg)

    async def close(self) -> None:
        self._owner._set_live(False)
        await super().close()

    async def halt(self) -> None:
        """Stop now: alpaca-py's stop_ws alone waits for the next message or a 5 s receive timeout."""
        await self.stop_ws()
        await self.close()


class StreamThread:
    """An alpaca-py stream client (`client`: its `run` blocks, its `halt` coroutine ends it) in a background
    thread: started, stopped at once, saying whether it is connected (`live`) and counting its connections
    (`generation`). The order stream and the bar stream (bars.py) are two of these."""

    def __init__(self, client: Any, url: str, name: str, events: tuple[str, str]):
        self.url = url
        self.live = False
        self.generation = 0  # connections made so far
        self._cond = threading.Condition()
        self._client = client
        self._name = name
        self._events = events  # the log events for "connected" and "down"
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._client.run, name=self._name, daemon=True)
        self._thread.start()

    def wait_live(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.live, timeout)

    def stop(self) -> None:
        thread = self._thread
        if thread is None:
            return
        deadline = time.monotonic() + STOP_TIMEOUT
        while self._client._loop is None and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        loop = self._client._loop
        if loop is not None and loop.is_running():
            with contextlib.suppress(Exception):  # the loop ended meanwhile: nothing to stop
                asyncio.run_coroutine_threadsafe(self._client.halt(), loop).result(STOP_TIMEOUT)
        thread.join(max(0.1, deadline - time.monotonic()))
        self._thread = None
        self._set_live(False)

    def _set_live(self, live: bool) -> None:
        with self._cond:
            if live == self.live:
                return
            self.live = live
            if live:
                self.generation += 1
            self._cond.notify_all()
        log.info(self._events[0] if live else self._events[1], url=self.url, generation=self.generation)


class OrderStream(StreamThread):
    """The account's trade updates, as the broker port's Orders (`convert` turns alpaca-py's into them)."""

    def __init__(self, key_id: str, secret_key: str, url: str, convert: Callable[[Any], Order]):
        super().__init__(_Stream(key_id, secret_key, url, self), url, "trade-updates",
                         ("order_stream_listening", "order_stream_down"))  # fmt: skip
        self._convert = convert
        self._orders: OrderedDict[str, tuple[int, Order]] = OrderedDict()
        self._seq = 0
        self.events = 0
        self.first_fill: dict[str, float] = {}  # client_order_id -> perf_counter of its first fill (oldest first)
        self._client.subscribe_trade_updates(self._on_update)
        # alpaca-py logs every reconnect with a traceback; the state changes are logged here instead
        logging.getLogger("alpaca.trading.stream").setLevel(logging.CRITICAL + 1)

    def wait(self, order_id: str, after: int, timeout: float) -> tuple[int, Order] | None:
        """The order's latest state if it is newer than update number `after` (waiting up to `timeout`); None
        when nothing newer came, or the stream stopped listening meanwhile."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = self._orders.get(order_id)
                if got is not None and got[0] > after:
                    return got
                remaining = deadline - time.monotonic()
                if not self.live or remaining <= 0:
                    return None
                self._cond.wait(remaining)


    async def _on_update(self, update: Any) -> None:
        try:
            order = self._convert(update.order)
        except Exception as exc:  # one odd event must not end the stream
            log.warning("order_stream_bad_event", error_type=type(exc).__name__, error=str(exc)[:200])
            return
        with self._cond:
            self._seq += 1
            self.events += 1
            self._orders[order.id] = (self._seq, order)
            self._orders.move_to_end(order.id)
            if len(self._orders) > KEEP:
                self._orders.popitem(last=False)
            if order.filled_qty > 0 and order.client_order_id not in self.first_fill:
                self.first_fill[order.client_order_id] = time.perf_counter()
                if len(self.first_fill) > KEEP:
                    del self.first_fill[next(iter(self.first_fill))]
            self._cond.notify_all()
