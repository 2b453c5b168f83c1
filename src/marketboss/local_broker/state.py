"""What the local broker server runs on: config, calendar, bars, database, clock, engine, fault injector and
rate limiter, built and checked before it listens."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from marketboss.data.io import read_bars
from marketboss.local_broker.clock import US, MarketClock, Sessions, week_aligned_offset
from marketboss.local_broker.config import BrokerConfig
from marketboss.local_broker.engine import Engine
from marketboss.local_broker.events import EventHub, WatchedStore
from marketboss.local_broker.faults import FaultInjector, RateLimiter
from marketboss.local_broker.marketdata import MarketData
from marketboss.local_broker.sqlite_store import SqliteStore
from marketboss.logging import get_logger

log = get_logger(__name__)


@dataclass
class BrokerState:
    """Everything the server needs, built (and validated) before it starts listening."""

    cfg: BrokerConfig
    sessions: Sessions
    market: MarketData
    store: SqliteStore
    clock: MarketClock
    engine: Engine
    faults: FaultInjector
    limiter: RateLimiter
    data_limiter: RateLimiter
    wake: asyncio.Event | None = None  # set by the running app: poke() wakes its matcher
    events: EventHub = field(default_factory=EventHub)  # order events for the trading stream (events.py)
    feed_wake: asyncio.Event | None = None  # set by the market-data feed: a clock set sends its bars at once

    def close(self) -> None:
        self.store.close()

    def poke(self) -> None:
        """Something may fill now (an order came, the clock moved): the matcher should look without waiting."""
        if self.wake is not None:
            self.wake.set()

    def clock_set(self) -> None:
        """The clock was set: the market-data stream sends what it passed now, not at its next look."""
        if self.feed_wake is not None:
            self.feed_wake.set()

    def save_clock(self) -> None:
        """Where the clock is, so a restart resumes there (best effort: a failure here must not fail a request)."""
        with contextlib.suppress(Exception), self.store.transaction():
            self.store.set_meta("clock_us", str(self.clock.now()))
            if self.clock.mode == "wallclock":
                self.store.set_meta("clock_offset_us", str(self.clock.offset_us()))


def build_state(cfg: BrokerConfig) -> BrokerState:
    """Load the bars and the database; restore the clock where the last run left it."""
    bars = read_bars(cfg.data)
    sessions = Sessions()
    market = MarketData(bars, sessions, cfg.spread_bps)
    store = SqliteStore(cfg.db)
    try:
        clock = MarketClock(cfg.clock, sessions, speed=cfg.speed, always_open=cfg.always_open)
        start = int(cfg.start.timestamp() * US) if cfg.start else market.first_start
        saved, offset = store.get_meta("clock_us"), store.get_meta("clock_offset_us")
        with store.transaction():
            if cfg.clock == "wallclock":
                if offset is None:
                    offset = str(week_aligned_offset(int(time.time() * US), start))
                    store.set_meta("clock_offset_us", offset)
                clock.set_offset(int(offset))
            else:
                clock.set(int(saved) if saved is not None else start)
            store.set_meta("clock_us", str(clock.now()))
            known = store.get_meta("data_path")
            if known is not None and known != str(cfg.data.resolve()):
                log.warning("broker_data_changed", previous=known, now=str(cfg.data))
            store.set_meta("data_path", str(cfg.data.resolve()))
        events = EventHub()
        watched = WatchedStore(store, events)
        engine = Engine(cfg, watched, market, clock, sessions)
        watched.position_of = lambda symbol: engine.account.qty(symbol)
    except BaseException:
        store.close()
        raise
    return BrokerState(
        cfg,
        sessions,
        market,
        store,
        clock,
        engine,
        FaultInjector(cfg.faults, cfg.seed),
        RateLimiter(cfg.rate_limit),
        RateLimiter(cfg.rate_limit if cfg.data_rate_limit is None else cfg.data_rate_limit),
        events=events,
    )
