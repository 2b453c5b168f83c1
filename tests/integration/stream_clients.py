"""alpaca-py's own websocket clients (TradingStream, StockDataStream) run in a thread against a local broker,
collecting what they receive; stopped at once when the block ends."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from alpaca.data.live import StockDataStream
from alpaca.trading.stream import TradingStream

from marketboss.local_broker.process import LocalBroker


def ws_url(b: LocalBroker, path: str) -> str:
    return b.base_url.replace("http://", "ws://") + path


def ev(update: Any) -> str:
    """TradeUpdate.event is TradeEvent | str in alpaca-py (pydantic keeps the plain string)."""
    return str(getattr(update.event, "value", update.event))


def events_of(updates: list[Any], order_id: Any) -> list[str]:
    return [ev(u) for u in updates if u.order.id == order_id]


class Collected:
    """Messages a handler received, with a wait for a condition on them."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._cond = threading.Condition()

    async def handler(self, item: Any) -> None:
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def wait_for(self, pred: Callable[[list[Any]], bool], timeout: float = 15.0) -> list[Any]:
        with self._cond:
            if not self._cond.wait_for(lambda: pred(self.items), timeout):
                raise AssertionError(f"not received within {timeout}s; got {len(self.items)}: {self.items[-5:]}")
            return list(self.items)


def streams_state(b: LocalBroker) -> dict[str, Any]:
    r = httpx.get(f"{b.base_url}/admin/streams", headers=b.headers, timeout=10)
    r.raise_for_status()
    return dict(r.json())


def wait_streams(b: LocalBroker, key: str, n: int, timeout: float = 15.0) -> None:
    """Until the broker counts n connections as `key` (listening: trade_updates; subscribed: market data)."""
    deadline = time.monotonic() + timeout
    while streams_state(b)[key] != n:
        if time.monotonic() > deadline:
            raise AssertionError(f"{key} is {streams_state(b)[key]}, not {n}, after {timeout}s")
        time.sleep(0.02)


def _stop(client: Any, thread: threading.Thread) -> None:
    deadline = time.monotonic() + 5
    while client._loop is None and time.monotonic() < deadline:
        time.sleep(0.01)
    loop = client._loop
    if loop is not None and loop.is_running():

        async def halt() -> None:
            await client.stop_ws()
            await client.close()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(halt(), loop).result(5)
    thread.join(10)
    assert not thread.is_alive(), "the stream client did not stop"


@contextlib.contextmanager
def trade_updates(b: LocalBroker, **kw: Any) -> Iterator[Collected]:
    """TradingStream subscribed to trade_updates; yields once the broker counts its connection as listening."""
    got = Collected()
    stream = TradingStream(kw.pop("key", b.key_id), kw.pop("secret", b.secret_key), url_override=ws_url(b, "/stream"))
    stream.subscribe_trade_updates(got.handler)
    before = streams_state(b)["listening"]
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    try:
        if kw.get("wait", True):
            wait_streams(b, "listening", before + 1)
        yield got
    finally:
        _stop(stream, thread)


@contextlib.contextmanager
def market_stream(b: LocalBroker, feed: str = "iex", raw: bool = False, **subs: tuple[str, ...]) -> Iterator[Collected]:
    """StockDataStream (MessagePack, alpaca-py's default) subscribed to bars/trades/quotes of the given symbols."""
    got = Collected()
    stream = StockDataStream(b.key_id, b.secret_key, raw_data=raw, url_override=ws_url(b, f"/v2/{feed}"))
    for channel, symbols in subs.items():
        getattr(stream, f"subscribe_{channel}")(got.handler, *symbols)
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    try:
        wait_streams(b, "subscribed", 1)
        yield got
    finally:
        _stop(stream, thread)
