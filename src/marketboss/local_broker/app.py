"""The local broker's server: the HTTP front (http.py) wired to the trading, market-data and admin routes, and
the matcher task that fills orders in the background.

Handlers run on the event loop thread and do their SQLite work without awaiting in between, so requests never
interleave inside a change: one writer. Changes are committed in batches (commits.py): each answer waits for the
commit of what it reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import orjson

from marketboss.data.io import atomic_write_bytes
from marketboss.local_broker.commits import GroupCommit
from marketboss.local_broker.http import HttpApp, Router
from marketboss.local_broker.routes.account_data import AccountDataRoutes
from marketboss.local_broker.routes.admin import AdminRoutes
from marketboss.local_broker.routes.market_data import MarketDataRoutes
from marketboss.local_broker.routes.trading import TradingRoutes
from marketboss.local_broker.state import BrokerState
from marketboss.local_broker.streams import Streams
from marketboss.logging import get_logger

log = get_logger(__name__)


class BrokerApp(HttpApp):
    """The ASGI app `marketboss broker serve` runs; `ready_file` gets {"base_url"} once it is up."""

    def __init__(self, state: BrokerState, ready_file: Path | None = None, base_url: str = ""):
        router = Router()
        secret = state.cfg.secret_key.get_secret_value()
        super().__init__(router, state.cfg.key_id, secret, state.faults, state.limiter, state.data_limiter)
        TradingRoutes(state).register(router)
        AccountDataRoutes(state).register(router)
        MarketDataRoutes(state).register(router)
        AdminRoutes(state, self.requests).register(router)
        self.streams = Streams(state, state.events)
        self.streams.register(router)
        self.s = state
        self.ready_file = ready_file
        self.base_url = base_url
        self._task: asyncio.Task[None] | None = None
        self.commits = GroupCommit(state.store, state.engine.reload, state.events)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await self.streams(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    def _startup(self) -> None:
        self.commits.start()
        self.s.wake = asyncio.Event()
        self._task = asyncio.create_task(self._matcher())
        if self.ready_file is not None:
            atomic_write_bytes(self.ready_file, orjson.dumps({"base_url": self.base_url}))

    async def _shutdown(self) -> None:
        await self.streams.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.s.save_clock()
        self.commits.stop()
        self.s.close()

    async def _settled(self) -> bool:
        return await self.commits.settled()

    async def _matcher(self) -> None:
        """Fills happen here, after the configured latency, never inside the request that placed the order."""
        wake = self.s.wake
        assert wake is not None
        loop = asyncio.get_running_loop()
        last_save = time.time()
        moving = self.s.clock.mode != "stepped"
        # Deadlines count from the wall time the last step ran at, not from now: a step that outlasts the
        # latency must still leave a timer for what it made eligible (a partial fill's remainder). 0.0 at
        # start: orders reloaded from the database are looked at once.
        stepped_at = 0.0
        while True:
            now = time.time()
            deadline = self.s.engine.next_deadline(stepped_at)
            timeout = None if deadline is None else max(0.0, deadline - now) + 0.0005
            if moving:
                timeout = 0.05 if timeout is None else min(timeout, 0.05)
            # A timer that sets the event, not wait_for: woken by a request, the step runs on the next loop turn,
            # in time to join that request's commit batch.
            timer = None if timeout is None else loop.call_later(timeout, wake.set)
            await wake.wait()
            if timer is not None:
                timer.cancel()
            wake.clear()
            try:
                stepped_at = time.time()
                self.s.engine.step(stepped_at)
            except Exception as exc:  # keep matching; the error is logged and the transaction rolled back
                log.error("broker_step_failed", error_type=type(exc).__name__, error=str(exc)[:500], exc_info=True)
                await asyncio.sleep(0.1)
            if moving and time.time() - last_save > 1.0:
                self.s.save_clock()
                last_save = time.time()
