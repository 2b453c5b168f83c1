"""The local broker's websockets: one connection over ASGI (uvicorn), the message codecs, and the register of live
connections that /admin/streams can drop or refuse (to test a client's fallback when a stream goes away).

Paths: /stream is the trading stream (trade_stream.py); /v2/iex and /v2/sip are the market-data stream
(data_stream.py). Anything else is refused at the handshake with Alpaca's JSON 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from dataclasses import dataclass, field
from typing import Any, Literal

import msgpack
import orjson

from marketboss.local_broker.errors import NOT_FOUND

Codec = Literal["json", "msgpack"]
MAX_MESSAGE = 64 * 1024  # a client message larger than this is refused (alpaca-py's are a few hundred bytes)
AUTH_TIMEOUT_S = 10.0  # Alpaca closes a connection that has not authenticated within about 10 s
MAX_BAD_MESSAGES = 100  # malformed messages tolerated on one connection before it is closed
CLOSE_NORMAL, CLOSE_POLICY, CLOSE_GOING_AWAY, CLOSE_ERROR = 1000, 1008, 1001, 1011


class Closed(Exception):
    """The peer went away (or the server dropped it): stop serving this connection."""


class BadMessage(ValueError):
    """A client message that is not a JSON (or MessagePack) object."""


@dataclass(eq=False)
class Conn:
    """One websocket: receive decoded messages, send encoded ones; `codec` is what replies are written in."""

    scope: dict[str, Any]
    receive: Any
    send: Any
    codec: Codec = "json"
    binary: bool = True  # JSON in binary frames (the trading stream) or text frames (market data)
    closed: bool = False
    bad: int = 0

    def header(self, name: bytes) -> bytes | None:
        for k, v in self.scope.get("headers", ()):
            if k == name:
                return bytes(v)
        return None

    async def accept(self) -> None:
        msg = await self.receive()
        if msg["type"] != "websocket.connect":
            raise Closed
        await self.send({"type": "websocket.accept"})

    async def reject(self, status: int, body: dict[str, Any]) -> None:
        """Refuse the handshake with an HTTP answer (Alpaca's JSON error), or a bare 403 if the server cannot."""
        await self.receive()
        data = orjson.dumps(body)
        if "websocket.http.response" in self.scope.get("extensions", {}):
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
            await self.send({"type": "websocket.http.response.start", "status": status, "headers": headers})
            await self.send({"type": "websocket.http.response.body", "body": data})
        else:
            await self.send({"type": "websocket.close", "code": CLOSE_POLICY})
        self.closed = True

    async def recv(self) -> Any:
        """The next message, decoded; BadMessage for one that is not an object, Closed when the peer is gone."""
        msg = await self.receive()
        if msg["type"] == "websocket.disconnect":
            self.closed = True
            raise Closed
        raw = msg.get("bytes")
        if raw is None:
            raw = (msg.get("text") or "").encode()
        if len(raw) > MAX_MESSAGE:
            raise BadMessage(f"message larger than {MAX_MESSAGE} bytes")
        return decode(raw, self)

    async def write(self, payload: Any) -> None:
        if self.closed:
            raise Closed
        if self.codec == "msgpack":
            frame = {"type": "websocket.send", "bytes": msgpack.packb(payload, datetime=False)}
        else:
            data = orjson.dumps(payload)
            frame = {"type": "websocket.send", "bytes": data} if self.binary else \
                    {"type": "websocket.send", "text": data.decode()}  # fmt: skip
        try:
            await self.send(frame)
        except Exception as exc:  # uvicorn's ClientDisconnected, a reset socket: the peer is gone
            self.closed = True
            raise Closed from exc

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            await self.send({"type": "websocket.close", "code": code, "reason": reason[:120]})


def decode(raw: bytes, conn: Conn | None = None) -> Any:
    """JSON, or MessagePack when it is not JSON (then the connection answers in MessagePack too)."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            obj = msgpack.unpackb(raw, raw=False, strict_map_key=True)
        except Exception:
            raise BadMessage("message is neither JSON nor MessagePack") from None
        if conn is not None:
            conn.codec = "msgpack"
    if not isinstance(obj, dict):
        raise BadMessage("message must be an object")
    return obj


def keys_match(key: object, secret: object, key_id: bytes, secret_key: bytes) -> bool:
    if not isinstance(key, str) or not isinstance(secret, str):
        return False
    return hmac.compare_digest(key.encode(), key_id) & hmac.compare_digest(secret.encode(), secret_key)


@dataclass
class Registry:
    """Live websocket connections by path kind, so /admin/streams can drop them, or refuse new ones."""

    live: dict[Conn, str] = field(default_factory=dict)
    refuse: bool = False
    dropped: int = 0

    def count(self, kind: str) -> int:
        return sum(1 for k in self.live.values() if k == kind)

    async def drop_all(self) -> int:
        conns = list(self.live)
        for c in conns:
            await c.close(CLOSE_GOING_AWAY, "dropped by /admin/streams")
        self.dropped += len(conns)
        return len(conns)

    def view(self) -> dict[str, Any]:
        return {
            "trading": self.count("trading"),
            "market_data": self.count("data"),
            "refuse": self.refuse,
            "dropped": self.dropped,
        }


def not_found_body(path: str) -> dict[str, Any]:
    return {"code": NOT_FOUND, "message": f"endpoint {path[:80]} not found"}


async def serve_until_closed(*tasks: asyncio.Task[None]) -> None:
    """Run a connection's tasks until one ends (the peer left, or the session closed); cancel the others. An
    unexpected error in one is raised here (the caller logs it)."""
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for t, result in zip(tasks, results, strict=True):
        if t in done and isinstance(result, Exception) and not isinstance(result, Closed):
            raise result
