"""Trade updates come from the engine's store, once per change, after the change commits (events.py)."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from typing import Any

import pytest

from marketboss.local_broker.events import EventHub, Listener, WatchedStore
from marketboss.local_broker.store import MemoryStore
from tests.unit.local_broker_world import World, world


def watched(prices: dict[str, list[float]], **options: Any) -> tuple[World, EventHub, WatchedStore]:
    hub = EventHub()
    store = WatchedStore(MemoryStore(), hub)
    w = world(prices, store=store, **options)  # type: ignore[arg-type]  # a Store by delegation
    store.position_of = lambda symbol: w.engine.account.qty(symbol)
    return w, hub, store


def drain(listener: Listener) -> list[dict[str, Any]]:
    out = []
    while not listener.queue.empty():
        out.append(listener.queue.get_nowait())
    return out


def names(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["event"], e["order"]["id"]) for e in events]


def test_each_change_is_announced_once_after_it_commits() -> None:
    async def run() -> None:
        w, hub, _ = watched({"AAPL": [100.0] * 5})
        listener = hub.listen()
        buy = w.submit(symbol="AAPL", side="buy", qty="10", type="market", time_in_force="day")
        assert drain(listener) == []  # accepted: not routed yet
        w.engine.step(0.0)
        new, fill = drain(listener)
        assert names([new, fill]) == [("new", buy.id), ("fill", buy.id)]
        assert new["order"]["status"] == "new" and new["order"]["filled_qty"] == "0"
        assert fill["order"]["status"] == "filled" and fill["qty"] == "10" and fill["price"] == "100"
        assert fill["position_qty"] == "10" and fill["timestamp"] == fill["order"]["filled_at"]
        waiting = w.submit(symbol="AAPL", side="sell", qty="4", type="limit", limit_price="150", time_in_force="day")
        w.engine.step(0.0)
        assert names(drain(listener)) == [("new", waiting.id)]
        w.engine.step(0.0)  # nothing changed: nothing said
        assert drain(listener) == []
        w.go(1)  # the day order expired at yesterday's close
        assert names(drain(listener)) == [("expired", waiting.id)]
        assert hub.published == 4

    asyncio.run(run())


def test_a_rolled_back_change_is_never_announced(monkeypatch: pytest.MonkeyPatch) -> None:
    async def run() -> None:
        w, hub, store = watched({"AAPL": [100.0] * 5})
        listener = hub.listen()
        o = w.submit(symbol="AAPL", side="buy", qty="10", type="market", time_in_force="day")

        def broken(fill: Any) -> None:
            raise OSError("disk full")

        monkeypatch.setattr(store.inner, "add_fill", broken)
        with pytest.raises(OSError):
            w.engine.step(0.0)
        assert drain(listener) == []
        monkeypatch.undo()
        w.engine.step(0.0)
        assert names(drain(listener)) == [("new", o.id), ("fill", o.id)]

    asyncio.run(run())


def test_partial_fills_and_cancels_carry_their_own_fields() -> None:
    async def run() -> None:
        w, hub, _ = watched({"AAPL": [100.0] * 5}, partial_fill_rate=1.0, fill_latency_ms=1000.0)
        listener = hub.listen()
        o = w.submit(symbol="AAPL", side="buy", qty="10", type="market", time_in_force="day")
        w.engine.step(0.5)  # the latency (1 s from wall 0) has not run out
        assert drain(listener) == []
        w.engine.step(2.0)
        new, part = drain(listener)
        assert (new["event"], part["event"]) == ("new", "partial_fill")
        assert part["order"]["status"] == "partially_filled" and D(part["qty"]) < 10
        assert part["position_qty"] == part["qty"] == part["order"]["filled_qty"]
        w.engine.cancel(o.id, w.clock.now(), 2.5)
        (cancel,) = drain(listener)
        assert cancel["event"] == "canceled" and cancel["order"]["filled_qty"] == part["qty"]

    asyncio.run(run())


def test_nobody_listening_builds_nothing() -> None:
    w, hub, store = watched({"AAPL": [100.0] * 5})
    w.submit(symbol="AAPL", side="buy", qty="10", type="market", time_in_force="day")
    w.engine.step(0.0)
    assert hub.published == 0 and store._pending.events == [] and store._status == {}


def test_a_replaced_order_is_announced_replaced_and_its_successor_new() -> None:
    """What PATCH /v2/orders/{id} writes (the old order replaced, a new one routed) is said as Alpaca says it."""

    async def run() -> None:
        w, hub, store = watched({"AAPL": [100.0] * 5})
        old = w.submit(symbol="AAPL", side="buy", qty="5", type="limit", limit_price="90", time_in_force="day")
        w.engine.step(0.0)
        listener = hub.listen()
        successor = w.submit(symbol="AAPL", side="buy", qty="5", type="limit", limit_price="95", time_in_force="day")
        replaced = w.order(old.id)
        with store.transaction():
            replaced.status = "replaced"
            store.save_order(replaced)
        w.engine.step(0.0)
        events = drain(listener)
        assert names(events) == [("replaced", old.id), ("new", successor.id)]
        assert events[0]["order"]["status"] == "replaced"

    asyncio.run(run())
