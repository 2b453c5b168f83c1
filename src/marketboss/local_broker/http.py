"""The local broker's HTTP plumbing: a plain ASGI application (Starlette's data structures, no framework router)
served by uvicorn, so that every answer, including 404, 405, 413 and unexpected failures, is Alpaca's
{"code", "message"} JSON and nothing ever redirects (alpaca-py does not follow redirects).

Here: routing, request bodies and query parameters, key checks, injected faults, the rate limit and its
headers, dropped connections. The endpoints are in routes/.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import date
from decimal import Decimal
from typing import Any

import orjson
from starlette.datastructures import QueryParams
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from marketboss.data.rules import DuplicateKey, loads, number_from_text
from marketboss.errors import ConfigError
from marketboss.local_broker import errors as E
from marketboss.local_broker.clock import parse_time
from marketboss.local_broker.errors import ApiError, invalid, not_found
from marketboss.local_broker.faults import FaultInjector, RateLimiter
from marketboss.local_broker.orders import parse_symbol
from marketboss.logging import get_logger

log = get_logger(__name__)

MAX_BODY = 1 << 20
JSON = (b"content-type", b"application/json")


class Drop(Exception):
    """Close the connection without answering (an injected network fault)."""


class Req:
    """What a handler sees of a request."""

    __slots__ = ("_query", "method", "params", "path", "receive", "scope")

    def __init__(self, scope: dict[str, Any], receive: Any, path: str, params: dict[str, str]):
        self.scope = scope
        self.receive = receive
        self.method: str = scope["method"]
        self.path = path
        self.params = params
        self._query: QueryParams | None = None

    @property
    def query(self) -> QueryParams:
        if self._query is None:
            self._query = QueryParams(self.scope["query_string"].decode("latin-1"))
        return self._query

    async def json(self) -> Any:
        length = _header(self.scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            raise ApiError(413, E.TOO_LARGE, f"request body larger than {MAX_BODY} bytes")
        chunks, size = [], 0
        while True:
            msg = await self.receive()
            if msg["type"] == "http.disconnect":
                raise Drop
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                raise ApiError(413, E.TOO_LARGE, f"request body larger than {MAX_BODY} bytes")
            chunks.append(chunk)
            if not msg.get("more_body", False):
                break
        raw = b"".join(chunks)
        if not raw.strip():
            raise invalid("request body is empty: expected a JSON object")
        try:
            return loads(raw)
        except orjson.JSONDecodeError:
            raise invalid("request body format is invalid: not JSON") from None
        except DuplicateKey as exc:
            raise invalid(f"request body format is invalid: {exc}") from None


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for k, v in scope["headers"]:
        if k == name:
            return str(v.decode("latin-1"))
    return None


Handler = Callable[[Req], Awaitable[tuple[int, Any]]]


class Router:
    """Paths to handlers per method: fixed paths by lookup, paths with {name} segments by pattern."""

    def __init__(self) -> None:
        self._static: dict[str, dict[str, Handler]] = {}
        self._patterns: list[tuple[re.Pattern[str], dict[str, Handler]]] = []

    def add(self, path: str, method: str, handler: Handler) -> None:
        if "{" not in path:
            self._static.setdefault(path, {})[method] = handler
            return
        regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$")
        for pattern, methods in self._patterns:
            if pattern.pattern == regex.pattern:
                methods[method] = handler
                return
        self._patterns.append((regex, {method: handler}))

    def resolve(self, path: str) -> tuple[dict[str, Handler], dict[str, str]] | None:
        methods = self._static.get(path)
        if methods is not None:
            return methods, {}
        for pattern, methods in self._patterns:
            m = pattern.match(path)
            if m:
                return methods, m.groupdict()
        return None


# ---------------------------------------------------------------------------------------------- parameters


def q_choice(
    q: QueryParams, name: str, allowed: tuple[str, ...], default: str | None, err: Any = invalid
) -> str | None:
    v = q.get(name)
    if v is None or v == "":
        return default
    if v.lower() not in allowed:
        raise err(f"invalid {name} '{v[:40]}': use one of {', '.join(allowed)}")
    return v.lower()


def q_int(q: QueryParams, name: str, default: int, lo: int, hi: int, err: Any = invalid) -> int:
    v = q.get(name)
    if v is None or v == "":
        return default
    if not re.fullmatch(r"-?\d{1,12}", v.strip()):
        raise err(f"invalid {name} '{v[:40]}': expected an integer")
    n = int(v)
    if not lo <= n <= hi:
        raise err(f"{name} must be between {lo} and {hi}")
    return n


def q_time(q: QueryParams, name: str, err: Any = invalid) -> int | None:
    v = q.get(name)
    if v is None or v == "":
        return None
    try:
        return parse_time(v)
    except (ValueError, OverflowError):
        raise err(f"invalid {name} '{v[:40]}': expected an RFC 3339 timestamp or a date") from None


def q_day(q: QueryParams, name: str) -> str | None:
    v = q.get(name)
    if v is None or v == "":
        return None
    try:
        return date.fromisoformat(v.strip()[:10]).isoformat()
    except ValueError:
        raise invalid(f"invalid {name} '{v[:40]}': expected a date (YYYY-MM-DD)") from None


def q_bool(q: QueryParams, name: str, default: bool) -> bool:
    v = q.get(name)
    if v is None or v == "":
        return default
    if v.lower() not in ("true", "false", "1", "0"):
        raise invalid(f"invalid {name} '{v[:40]}': expected true or false")
    return v.lower() in ("true", "1")


def q_decimal(q: QueryParams, name: str) -> Decimal | None:
    v = q.get(name)
    if v is None or v == "":
        return None
    d = number_from_text(v)
    if d is None or d <= 0 or d > 10**9:
        raise invalid(f"invalid {name} '{v[:40]}'")
    return d


def q_symbols(q: QueryParams, err: Any) -> list[str]:
    raw = q.get("symbols")
    if not raw:
        raise err("symbols is required")
    out = []
    for part in raw.split(","):
        if part.strip():
            try:
                out.append(parse_symbol(part))
            except ApiError:
                raise err(f"invalid symbol '{part[:40]}'") from None
    if not out:
        raise err("symbols is required")
    return out


# ---------------------------------------------------------------------------------------------- ASGI


class HttpApp:
    """Answers each request through the router: faults and the rate limit first (never on /admin/), then the
    keys, then the handler; errors become Alpaca's JSON, an injected drop closes the socket unanswered."""

    def __init__(
        self, router: Router, key_id: str, secret_key: str, faults: FaultInjector, limiter: RateLimiter,
        data_limiter: RateLimiter | None = None,
    ):  # fmt: skip
        self.router = router
        self._key = key_id.encode()
        self._secret = secret_key.encode()
        self.faults = faults
        self.limiter = limiter
        self.data_limiter = data_limiter or limiter  # market data (/v2/stocks/...) may have a budget of its own
        self.requests: Counter[int] = Counter()  # answers by status (0: dropped)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path: str = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/") or "/"
        method: str = scope["method"]
        admin = path.startswith("/admin/")
        limiter = self.data_limiter if path.startswith("/v2/stocks") else self.limiter
        limited = not admin and limiter.limit > 0
        headers: list[tuple[bytes, bytes]] = []
        status, body = 500, None
        try:
            try:
                if not admin:
                    decision = self.faults.decide(method, path)
                    if decision is not None:
                        if decision.latency_s:
                            await asyncio.sleep(decision.latency_s)
                        if decision.outcome == "drop":
                            raise Drop
                        if decision.outcome == "429":
                            raise ApiError(429, E.RATE_LIMITED, "rate limit exceeded")
                        if decision.outcome:
                            code = int(decision.outcome)
                            raise ApiError(code, code * 100_000 + 10_000, f"injected fault: HTTP {code}")
                found = self.router.resolve(path)
                if found is None:
                    raise not_found(f"endpoint {path[:80]} not found")
                methods, params = found
                handler = methods.get(method)
                if handler is None:
                    allow = ", ".join(sorted(methods)).encode()
                    headers.append((b"allow", allow))
                    raise ApiError(405, E.METHOD_NOT_ALLOWED, f"method {method[:10]} not allowed")
                if not self._authorized(scope):
                    raise ApiError(401, E.UNAUTHORIZED, "request is not authorized")
                if limited:
                    allowed, remaining, reset = limiter.hit(time.time())
                    headers += rate_headers(limiter.limit, remaining, reset)
                    if not allowed:
                        raise ApiError(429, E.RATE_LIMITED, "rate limit exceeded")
                status, body = await handler(Req(scope, receive, path, params))
            except ApiError as exc:
                status, body = exc.status, exc.body()
            except Drop:
                raise
            except Exception as exc:
                log.error("broker_unexpected_error", path=path, method=method, error_type=type(exc).__name__,
                          error=str(exc)[:500], exc_info=True)  # fmt: skip
                status, body = 500, {"code": E.SERVER_ERROR, "message": f"internal error: {type(exc).__name__}"}
        except Drop:
            self.requests[0] += 1
            drop_connection(send)
            return
        if not await self._settled():
            status, body = 500, {"code": E.SERVER_ERROR, "message": "internal error: the change could not be saved"}
        if limited and not any(k == b"x-ratelimit-limit" for k, _ in headers):
            remaining, reset = limiter.peek(time.time())
            headers += rate_headers(limiter.limit, remaining, reset)
        self.requests[status] += 1
        if body is None:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        data = orjson.dumps(body)
        headers += [JSON, (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        if isinstance(transport, CorkedTransport):
            transport.flush()  # head and body leave together, now

    def _authorized(self, scope: dict[str, Any]) -> bool:
        key = secret = None
        for k, v in scope["headers"]:
            if k == b"apca-api-key-id":
                key = v
            elif k == b"apca-api-secret-key":
                secret = v
        return (
            key is not None
            and secret is not None
            and hmac.compare_digest(key, self._key)
            and hmac.compare_digest(secret, self._secret)
        )

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    self._startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await self._shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _startup(self) -> None:
        """Runs when the server starts, before the first request (a subclass's)."""

    async def _settled(self) -> bool:
        """Waits, before each answer, until what the answer reports is durable; False: it could not be made so
        (the answer becomes a 500). A subclass's; here everything is."""
        return True

    async def _shutdown(self) -> None:
        """Runs when the server stops, after the last request (a subclass's)."""


def rate_headers(limit: int, remaining: int, reset: int) -> list[tuple[bytes, bytes]]:
    return [
        (b"x-ratelimit-limit", str(limit).encode()),
        (b"x-ratelimit-remaining", str(remaining).encode()),
        (b"x-ratelimit-reset", str(reset).encode()),
    ]


class CorkedTransport:
    """A connection's transport whose writes leave together: uvicorn writes a response's head and its body
    separately, and each write is a system call, a TCP segment and a wake-up of the client. Writes wait until
    `flush()` (HttpApp calls it once an answer is complete) or the end of the event loop's turn, whichever is first.
    """

    __slots__ = ("_loop", "_parts", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport = transport
        self._loop = loop
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._parts:
            self._loop.call_soon(self.flush)
        self._parts.append(data)

    def flush(self) -> None:
        if self._parts:
            data = b"".join(self._parts)
            self._parts.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._parts.clear()
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._parts))

    @property
    def raw(self) -> asyncio.Transport:
        return self._transport

    def __getattr__(self, name: str) -> Any:  # everything else is the transport's
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a CorkedTransport (`uvicorn.Config(http=HttpProtocol)`)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CorkedTransport(transport, self.loop))  # type: ignore[arg-type]

    def handle_websocket_upgrade(self) -> None:
        """A websocket gets the plain transport: its frames are not HTTP answers (and HttpApp does not flush them)."""
        if isinstance(self.transport, CorkedTransport):
            self.transport.flush()
            self.transport = self.transport.raw
        super().handle_websocket_upgrade()


def drop_connection(send: Any) -> None:
    """Close the socket under uvicorn's request cycle without writing a byte."""
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:  # not a uvicorn request cycle: nothing to drop, so fail loudly instead
        raise ConfigError("dropped connections need uvicorn's HTTP protocol (httptools or h11)")
    cycle.disconnected = True  # type: ignore[union-attr]
