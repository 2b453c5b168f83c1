"""A local-broker engine in memory for unit tests: hand-made daily bars, a stepped clock, a MemoryStore.

Each bar opens and closes at the same price, so the price is that number all session long and every expected
fill can be worked out by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from marketboss.local_broker.clock import MarketClock, Sessions, to_us
from marketboss.local_broker.config import BrokerConfig
from marketboss.local_broker.engine import Engine
from marketboss.local_broker.marketdata import MarketData
from marketboss.local_broker.orders import parse_order
from marketboss.local_broker.records import Order
from marketboss.local_broker.store import MemoryStore

DAYS = ["2024-12-02", "2024-12-03", "2024-12-04", "2024-12-05", "2024-12-06"]  # Monday to Friday, no holiday
FAST: dict[str, Any] = {"fill_latency_ms": 0.0, "partial_fill_rate": 0.0, "spread_bps": 0.0}


@cache
def sessions() -> Sessions:
    """The NYSE calendar, built once (it never changes)."""
    return Sessions()


def daily_bars(prices: dict[str, list[float]]) -> pl.DataFrame:
    """One flat bar a day per symbol, stamped at midnight New York as daily bars are."""
    ny = ZoneInfo("America/New_York")
    rows = [
        {"symbol": sym, "timestamp": datetime.fromisoformat(DAYS[i]).replace(tzinfo=ny).astimezone(UTC),
         "open": p, "high": p, "low": p, "close": p, "volume": 1000}
        for sym, series in prices.items() for i, p in enumerate(series)
    ]  # fmt: skip
    return pl.DataFrame(rows).with_columns(pl.col("timestamp").dt.cast_time_unit("us"))


def session_open(day: int) -> int:
    """The session open of DAYS[day] (microseconds)."""
    midnight = to_us(datetime.fromisoformat(DAYS[day]).replace(tzinfo=ZoneInfo("America/New_York")))
    span = sessions().span_of_day(midnight)
    assert span is not None
    return span[0]


@dataclass
class World:
    engine: Engine
    store: MemoryStore
    clock: MarketClock
    market: MarketData

    def go(self, day: int, wall: float = 0.0) -> int:
        """Move the clock to DAYS[day]'s open and step the engine there; the number of fills it made."""
        self.clock.set(session_open(day))
        return self.engine.step(wall)

    def submit(self, wall: float = 0.0, **body: Any) -> Order:
        """Place an order given as the JSON body of POST /v2/orders (checked by the same parser)."""
        order, _ = self.engine.submit(parse_order(body), self.clock.now(), wall)
        return order

    def order(self, order_id: str) -> Order:
        o = self.engine.get_order(order_id)
        assert o is not None
        return o


def world(prices: dict[str, list[float]], store: MemoryStore | None = None, **options: Any) -> World:
    """An engine over `prices` (one per day of DAYS), its clock at the first day's open."""
    return world_of(daily_bars(prices), session_open(0), store, **options)


def world_of(bars: pl.DataFrame, now: int, store: MemoryStore | None = None, **options: Any) -> World:
    """An engine over these bars, its clock at `now`."""
    cfg = BrokerConfig(data=Path("bars.jsonl"), db=Path("broker.sqlite"), **{**FAST, **options})
    market = MarketData(bars, sessions(), cfg.spread_bps)
    clock = MarketClock("stepped", sessions())
    store = store if store is not None else MemoryStore()
    clock.set(now)
    return World(Engine(cfg, store, market, clock, sessions()), store, clock, market)
