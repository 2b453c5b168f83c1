"""The market-data stream (/v2/iex and /v2/sip) as Alpaca speaks it, in MessagePack (alpaca-py's choice: it
connects with `Content-Type: application/msgpack`) or JSON (text frames, anyone else):

    <- [{"T": "success", "msg": "connected"}]
    -> {"action": "auth", "key": K, "secret": S}          (or the APCA-API-KEY-ID / -SECRET-KEY headers)
    <- [{"T": "success", "msg": "authenticated"}]
    -> {"action": "subscribe", "trades": ["AAPL"], "quotes": ["AAPL"], "bars": ["*"]}
    <- [{"T": "subscription", "trades": ["AAPL"], "quotes": ["AAPL"], "bars": ["*"], ...}]
    <- [{"T": "b", "S": "AAPL", "o": ..., "t": ...}, {"T": "t", ...}, {"T": "q", ...}]

What is sent, as the broker's clock passes it (the same clock orders fill on; checked every FEED_INTERVAL_S, and
at once when the clock is set):
- bars ("b"): the bars file's own bars, each once it is complete (at its end), stamped at its start, as the
  REST bars are;
- trades ("t") and quotes ("q"): SYNTHESISED, not recorded, by the one rule of ticks.py that GET
  /v2/stocks/{symbol}/trades and /quotes follow too (four trades a bar along open, low/high, close, each with a
  quote at the broker's spread): a bar's ticks are sent when the bar completes, with it, stamped at their own
  moments inside it, so the stream's trades of a bar are REST's (ids, prices, sizes, times) and none is sent
  before the clock has passed the whole bar (its path depends on the bar's low, high and close).
A clock jump sends at most MAX_BACKLOG_BARS bars per symbol, with their ticks: a client catches up, it is not
flooded. updatedBars, dailyBars, statuses, lulds, corrections and cancelErrors are acknowledged in the
subscription but never sent (the bars file has none).

Errors are Alpaca's: 400 invalid syntax, 401 not authenticated, 402 auth failed, 403 already authenticated,
404 auth timeout, 405 symbol limit exceeded, 406 connection limit exceeded (one authenticated connection per
feed, as on Alpaca's plans), 407 slow client.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

import msgpack

from marketboss.local_broker.clock import MarketClock, iso_z
from marketboss.local_broker.errors import ApiError
from marketboss.local_broker.marketdata import MarketData
from marketboss.local_broker.orders import parse_symbol
from marketboss.local_broker.ticks import bar_ticks, quote_fields, trade_fields
from marketboss.local_broker.ws import (
    AUTH_TIMEOUT_S,
    CLOSE_POLICY,
    MAX_BAD_MESSAGES,
    BadMessage,
    Conn,
    keys_match,
    serve_until_closed,
)
from marketboss.logging import get_logger

log = get_logger(__name__)

MAX_BACKLOG_BARS = 100
FEED_INTERVAL_S = 0.05
MAX_SYMBOLS = 10_000  # per connection and channel
SEND_LIMIT = 50_000  # messages a connection may fall behind before it is closed as a slow client
FRAME_MESSAGES = 1_000  # messages per frame at most
CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")


def _error(code: int, msg: str) -> list[dict[str, Any]]:
    return [{"T": "error", "code": code, "msg": msg}]


def bars_between(market: MarketData, symbol: str, t0: int, t1: int) -> list[int]:
    """Indexes of the symbol's bars that complete in (t0, t1] (the last MAX_BACKLOG_BARS of them)."""
    s = market.series.get(symbol)
    if s is None:
        return []
    lo, hi = bisect_right(s.ends, t0), bisect_right(s.ends, t1)
    return list(range(max(lo, hi - MAX_BACKLOG_BARS), hi))


@dataclass(eq=False)
class Subscriber:
    """One authenticated connection's subscriptions and its queue of outgoing messages."""

    conn: Conn
    subs: dict[str, set[str]] = field(default_factory=lambda: {c: set() for c in CHANNELS})
    queue: asyncio.Queue[list[dict[str, Any]]] = field(default_factory=asyncio.Queue)
    queued: int = 0
    slow: bool = False

    def wants(self, channel: str, symbol: str) -> bool:
        s = self.subs[channel]
        return symbol in s or "*" in s

    def symbols(self, channel: str, market: MarketData) -> list[str]:
        s = self.subs[channel]
        return market.symbols if "*" in s else sorted(x for x in s if market.has(x))

    def push(self, messages: list[dict[str, Any]]) -> None:
        if self.slow or not messages:
            return
        if self.queued + len(messages) > SEND_LIMIT:
            self.slow = True
            self.queue.put_nowait(_error(407, "slow client"))
            return
        self.queued += len(messages)
        for i in range(0, len(messages), FRAME_MESSAGES):
            self.queue.put_nowait(messages[i : i + FRAME_MESSAGES])


class MarketFeed:
    """Sends each subscriber what the clock passed since the last look; runs only while someone subscribes."""

    def __init__(self, market: MarketData, clock: MarketClock, wake: asyncio.Event | None = None):
        self.market = market
        self.clock = clock
        self.wake = wake  # set when the clock is set (admin): look at once
        self.subscribers: set[Subscriber] = set()
        self.feeds: dict[str, Conn] = {}  # one connection per feed (iex, sip)
        self._task: asyncio.Task[None] | None = None
        self._last = 0

    def join(self, sub: Subscriber) -> None:
        self.subscribers.add(sub)
        if self._task is None or self._task.done():
            self._last = self.clock.now()
            self._task = asyncio.create_task(self._run())

    def leave(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while self.subscribers:
            if self.wake is None:
                await asyncio.sleep(FEED_INTERVAL_S)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), FEED_INTERVAL_S)
                self.wake.clear()
            try:
                self.step(self.clock.now())
            except Exception as exc:  # keep the feed alive; the error is logged
                log.error("market_feed_failed", error_type=type(exc).__name__, error=str(exc)[:500], exc_info=True)

    def step(self, now: int) -> None:
        t0 = self._last
        self._last = now
        if now <= t0:  # the clock stood still or was set back: carry on from there
            return
        for sub in list(self.subscribers):
            sub.push(self.messages(sub, t0, now))

    def messages(self, sub: Subscriber, t0: int, t1: int) -> list[dict[str, Any]]:
        m = self.market
        out: list[tuple[int, int, dict[str, Any]]] = []
        for sym in sub.symbols("bars", m):
            s = m.series[sym]
            for i in bars_between(m, sym, t0, t1):
                out.append((s.ends[i], 0, {"T": "b", "S": sym, "o": s.opens[i], "h": s.highs[i], "l": s.lows[i],
                                           "c": s.closes[i], "v": s.volumes[i], "t": s.stamps[i], "n": None,
                                           "vw": None}))  # fmt: skip
        trades, quotes = set(sub.symbols("trades", m)), set(sub.symbols("quotes", m))
        for sym in sorted(trades | quotes):
            for i in bars_between(m, sym, t0, t1):
                for tick in bar_ticks(m, sym, i):
                    if sym in quotes:
                        out.append((tick.t, 1, {"T": "q", "S": sym, "t": tick.t, **quote_fields(m, tick)}))
                    if sym in trades:
                        out.append((tick.t, 2, {"T": "t", "S": sym, "t": tick.t, **trade_fields(tick)}))
        out.sort(key=lambda x: (x[0], x[1]))
        return [msg for _, _, msg in out]


class DataSession:
    def __init__(self, conn: Conn, feed: MarketFeed, name: str, key_id: bytes, secret_key: bytes):
        self.conn = conn
        self.feed = feed
        self.name = name
        self._keys = (key_id, secret_key)
        self.sub: Subscriber | None = None

    async def run(self) -> None:
        conn = self.conn
        ctype = (conn.header(b"content-type") or b"").lower()
        conn.codec = "msgpack" if b"msgpack" in ctype else "json"
        conn.binary = conn.codec == "msgpack"
        try:
            await self._send([{"T": "success", "msg": "connected"}])
            await self._session()
        finally:
            if self.feed.feeds.get(self.name) is conn:
                del self.feed.feeds[self.name]
            if self.sub is not None:
                self.feed.leave(self.sub)
            await conn.close()

    async def _session(self) -> None:
        key, secret = self.conn.header(b"apca-api-key-id"), self.conn.header(b"apca-api-secret-key")
        if key is not None or secret is not None:
            if not keys_match((key or b"").decode("latin-1"), (secret or b"").decode("latin-1"), *self._keys):
                await self._send(_error(402, "auth failed"))
                return
            if not await self._authorized():
                return
        reader = asyncio.create_task(self._read())
        writer = asyncio.create_task(self._write())
        await serve_until_closed(reader, writer)

    async def _authorized(self) -> bool:
        """Take the feed's one connection slot (False: another connection holds it, 406) and start the feed."""
        if self.name in self.feed.feeds:
            await self._send(_error(406, "connection limit exceeded"))
            return False
        self.feed.feeds[self.name] = self.conn
        self.sub = Subscriber(self.conn)
        self.feed.join(self.sub)
        await self._send([{"T": "success", "msg": "authenticated"}])
        return True

    async def _read(self) -> None:
        deadline = time.monotonic() + AUTH_TIMEOUT_S
        while True:
            try:
                if self.sub is not None:
                    msg = await self.conn.recv()
                else:
                    msg = await asyncio.wait_for(self.conn.recv(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                await self._send(_error(404, "auth timeout"))
                return
            except BadMessage:
                if not await self._bad(_error(400, "invalid syntax")):
                    return
                continue
            if not await self._handle(msg):
                return

    async def _handle(self, msg: dict[str, Any]) -> bool:
        action = msg.get("action")
        if action == "auth":
            if self.sub is not None:
                return await self._bad(_error(403, "already authenticated"))
            if not keys_match(msg.get("key"), msg.get("secret"), *self._keys):
                await self._send(_error(402, "auth failed"))
                return False
            return await self._authorized()
        if action in ("subscribe", "unsubscribe"):
            if self.sub is None:
                return await self._bad(_error(401, "not authenticated"))
            change = _channels(msg)
            if change is None:
                return await self._bad(_error(400, "invalid syntax"))
            subs = self.sub.subs
            for ch, symbols in change.items():
                if action == "subscribe":
                    if len(subs[ch] | symbols) > MAX_SYMBOLS:
                        return await self._bad(_error(405, "symbol limit exceeded"))
                    subs[ch] |= symbols
                else:
                    subs[ch] -= symbols
            await self._send([self._subscription()])
            return True
        return await self._bad(_error(400, "invalid syntax"))

    def _subscription(self) -> dict[str, Any]:
        assert self.sub is not None
        lists = {ch: sorted(self.sub.subs[ch]) for ch in CHANNELS}
        return {"T": "subscription", **lists, "corrections": lists["trades"], "cancelErrors": lists["trades"]}

    async def _bad(self, reply: list[dict[str, Any]]) -> bool:
        self.conn.bad += 1
        if self.conn.bad > MAX_BAD_MESSAGES:
            await self.conn.close(CLOSE_POLICY, "too many invalid messages")
            return False
        await self._send(reply)
        return True

    async def _send(self, messages: list[dict[str, Any]]) -> None:
        await self.conn.write(_encode_times(messages, self.conn.codec))

    async def _write(self) -> None:
        while self.sub is None:
            await asyncio.sleep(0.05)
        sub = self.sub
        while True:
            batch = await sub.queue.get()
            sub.queued -= len(batch)
            await self._send(batch)
            if sub.slow and batch and batch[0].get("T") == "error":
                await self.conn.close(CLOSE_POLICY, "slow client")
                return


def _channels(msg: dict[str, Any]) -> dict[str, set[str]] | None:
    """The channels and symbols of a (un)subscribe message; None when it is malformed."""
    out: dict[str, set[str]] = {}
    for ch in CHANNELS:
        v = msg.get(ch)
        if v is None:
            continue
        if not isinstance(v, list) or len(v) > MAX_SYMBOLS:
            return None
        syms = set()
        for s in v:
            if s == "*":
                syms.add("*")
                continue
            try:
                syms.add(parse_symbol(s))
            except ApiError:
                return None
        out[ch] = syms
    return out


def _encode_times(messages: list[dict[str, Any]], codec: str) -> list[dict[str, Any]]:
    """Times are microseconds inside; on the wire RFC 3339 text (JSON) or MessagePack timestamps."""
    out = []
    for m in messages:
        t = m.get("t")
        if isinstance(t, int):
            m = {**m, "t": msgpack.Timestamp.from_unix_nano(t * 1000) if codec == "msgpack" else iso_z(t)}
        out.append(m)
    return out
