"""The trading stream (/stream) as Alpaca speaks it: authenticate with the account's keys, `listen` to
`trade_updates`, then receive every order event of the account (bracket legs included) as it happens.

    -> {"action": "authenticate", "data": {"key_id": K, "secret_key": S}}   (or {"action": "auth", "key", "secret"})
    <- {"stream": "authorization", "data": {"action": "authenticate", "status": "authorized"}}
    -> {"action": "listen", "data": {"streams": ["trade_updates"]}}
    <- {"stream": "listening", "data": {"streams": ["trade_updates"]}}
    <- {"stream": "trade_updates", "data": {"event": "fill", "order": {...}, "price": ..., ...}}

Replies are JSON in binary frames, as Alpaca's paper stream sends them (MessagePack if the client wrote
MessagePack). Wrong keys get Alpaca's "unauthorized" answer and the connection is closed; so is one that has
not authenticated within AUTH_TIMEOUT_S, one that sends MAX_BAD_MESSAGES malformed messages, and one that falls
QUEUE_LIMIT events behind. Malformed messages are answered {"stream": "error", "data": {"message": ...}} (Alpaca
documents no shape for them).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from marketboss.local_broker.events import EventHub, Listener
from marketboss.local_broker.ws import (
    AUTH_TIMEOUT_S,
    CLOSE_POLICY,
    MAX_BAD_MESSAGES,
    BadMessage,
    Conn,
    keys_match,
    serve_until_closed,
)

STREAMS = ("trade_updates",)


class TradingSession:
    def __init__(self, conn: Conn, hub: EventHub, key_id: bytes, secret_key: bytes):
        self.conn = conn
        self.hub = hub
        self._keys = (key_id, secret_key)
        self.authorized = False
        self.listener: Listener | None = None
        self._ready = asyncio.Event()  # set while listening

    async def run(self) -> None:
        try:
            reader = asyncio.create_task(self._read())
            writer = asyncio.create_task(self._write())
            await serve_until_closed(reader, writer)
        finally:
            self._stop_listening()
            await self.conn.close()

    async def _read(self) -> None:
        deadline = time.monotonic() + AUTH_TIMEOUT_S
        while True:
            try:
                if self.authorized:
                    msg = await self.conn.recv()
                else:
                    msg = await asyncio.wait_for(self.conn.recv(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                await self._reply("authorization", {"action": "authenticate", "status": "unauthorized",
                                                    "message": "authentication timeout"})  # fmt: skip
                return
            except BadMessage as exc:
                if not await self._bad(str(exc), None):
                    return
                continue
            if not await self._handle(msg):
                return

    async def _handle(self, msg: dict[str, Any]) -> bool:
        """Answer one message; False when the connection is to close."""
        action = msg.get("action")
        data = msg.get("data")
        if action in ("authenticate", "auth"):
            creds = data if isinstance(data, dict) else {}
            key = creds.get("key_id", msg.get("key"))
            secret = creds.get("secret_key", msg.get("secret"))
            if not keys_match(key, secret, *self._keys):
                await self._reply("authorization", {"action": "authenticate", "status": "unauthorized",
                                                    "message": "access key verification failed"})  # fmt: skip
                return False
            self.authorized = True
            await self._reply("authorization", {"action": "authenticate", "status": "authorized"})
            return True
        if action == "listen":
            if not self.authorized:
                await self._reply("authorization", {"action": "listen", "status": "unauthorized"})
                return True
            streams = data.get("streams") if isinstance(data, dict) else None
            if not isinstance(streams, list):
                return await self._bad("listen needs data.streams, a list of stream names", action)
            wanted = [s for s in STREAMS if s in streams]
            if wanted and self.listener is None:
                self.listener = self.hub.listen()
                self._ready.set()
            elif not wanted:
                self._stop_listening()
            await self._reply("listening", {"streams": wanted})
            return True
        return await self._bad(f"unknown action {str(action)[:40]!r}", action)

    async def _bad(self, message: str, action: object) -> bool:
        self.conn.bad += 1
        if self.conn.bad > MAX_BAD_MESSAGES:
            await self.conn.close(CLOSE_POLICY, "too many invalid messages")
            return False
        await self._reply("error", {"action": action if isinstance(action, str) else None, "message": message})
        return True

    async def _reply(self, stream: str, data: dict[str, Any]) -> None:
        await self.conn.write({"stream": stream, "data": data})

    def _stop_listening(self) -> None:
        if self.listener is not None:
            self.hub.leave(self.listener)
            self.listener.queue.put_nowait({})  # wakes the writer waiting on it
            self.listener = None
            self._ready.clear()

    async def _write(self) -> None:
        """Events to the client as the hub delivers them; a client that fell too far behind is closed."""
        while True:
            await self._ready.wait()
            listener = self.listener
            if listener is None:
                continue
            event = await listener.queue.get()
            if listener.overflowed:
                await self.conn.close(CLOSE_POLICY, "slow client")
                return
            if event and self.listener is listener:
                await self.conn.write({"stream": "trade_updates", "data": event})
