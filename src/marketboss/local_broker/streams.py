"""Websocket connections to their session: /stream (trading), /v2/iex and /v2/sip (market data); and
/admin/streams, which counts them, drops them all ({"drop": true}) or refuses new ones ({"refuse": true}), so a
client's fallback when its stream goes away can be tested against the real server."""

from __future__ import annotations

import asyncio
from typing import Any

from marketboss.local_broker.data_stream import DataSession, MarketFeed
from marketboss.local_broker.errors import invalid
from marketboss.local_broker.events import EventHub
from marketboss.local_broker.http import Req, Router
from marketboss.local_broker.state import BrokerState
from marketboss.local_broker.trade_stream import TradingSession
from marketboss.local_broker.ws import CLOSE_ERROR, Closed, Conn, Registry, not_found_body
from marketboss.logging import get_logger

log = get_logger(__name__)

DATA_FEEDS = {"/v2/iex": "iex", "/v2/sip": "sip"}


class Streams:
    def __init__(self, state: BrokerState, hub: EventHub):
        self.hub = hub
        state.feed_wake = asyncio.Event()
        self.feed = MarketFeed(state.market, state.clock, state.feed_wake)
        self.registry = Registry()
        self._key = state.cfg.key_id.encode()
        self._secret = state.cfg.secret_key.get_secret_value().encode()

    def register(self, router: Router) -> None:
        router.add("/admin/streams", "GET", self.admin_streams)
        router.add("/admin/streams", "POST", self.admin_set_streams)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path: str = scope["path"].rstrip("/") or "/"
        conn = Conn(scope, receive, send)
        kind = "trading" if path == "/stream" else "data" if path in DATA_FEEDS else None
        if kind is None:
            await conn.reject(404, not_found_body(path))
            return
        if self.registry.refuse:
            await conn.reject(503, {"code": 50310000, "message": "streams refused (set by /admin/streams)"})
            return
        self.registry.live[conn] = kind
        try:
            await conn.accept()
            if kind == "trading":
                await TradingSession(conn, self.hub, self._key, self._secret).run()
            else:
                await DataSession(conn, self.feed, DATA_FEEDS[path], self._key, self._secret).run()
        except Closed:
            pass  # the peer left
        except Exception as exc:  # one connection's failure is logged and closes it; the server goes on
            log.error("stream_failed", path=path, error_type=type(exc).__name__, error=str(exc)[:500], exc_info=True)
            await conn.close(CLOSE_ERROR, "internal error")
        finally:
            self.registry.live.pop(conn, None)

    async def stop(self) -> None:
        await self.registry.drop_all()
        await self.feed.stop()

    def view(self) -> dict[str, Any]:
        subscribed = sum(1 for sub in self.feed.subscribers if any(sub.subs.values()))
        return {**self.registry.view(), "listening": len(self.hub.listeners), "subscribed": subscribed,
                "events_published": self.hub.published}  # fmt: skip

    async def admin_streams(self, r: Req) -> tuple[int, Any]:
        return 200, self.view()

    async def admin_set_streams(self, r: Req) -> tuple[int, Any]:
        """Body: {"drop": true} closes every stream connection now; {"refuse": true|false} refuses new ones."""
        body = await r.json()
        if not isinstance(body, dict) or not body or set(body) - {"drop", "refuse"}:
            raise invalid('body must be {"drop": true} and/or {"refuse": true|false}')
        for name in ("drop", "refuse"):
            if name in body and not isinstance(body[name], bool):
                raise invalid(f"{name} must be true or false")
        if "refuse" in body:
            self.registry.refuse = body["refuse"]
        dropped = await self.registry.drop_all() if body.get("drop") else 0
        return 200, {**self.view(), "dropped_now": dropped}
