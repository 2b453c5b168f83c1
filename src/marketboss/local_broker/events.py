"""Trade updates: the one place the local broker says what happened to an order, for the `trade_updates` stream.

The engine writes every order change through its Store inside one transaction (engine.py). `WatchedStore` sits
in that path: it notes each change as Alpaca's event for it (new, fill, partial_fill, canceled, expired,
replaced, rejected) and hands the events to the `EventHub` once the transaction commits, so a listener never
hears of a change that was rolled back, and hears them in the order they happened. With nobody listening it
only keeps each open order's last status (a dictionary write per change); no event is built.

Event shapes follow Alpaca's (`{"event", "execution_id", "order", "position_qty", "price", "qty",
"timestamp"}`, numbers as strings); times are the simulated clock's.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from marketboss.local_broker.clock import iso_z
from marketboss.local_broker.records import OPEN_STATUSES, Fill, Order, num
from marketboss.local_broker.store import Store
from marketboss.local_broker.views import order_json

#: The event a status change is announced as (a change into "new" from accepted or held is "new").
CLOSING_EVENTS = {"canceled": "canceled", "expired": "expired", "rejected": "rejected", "replaced": "replaced"}
BEFORE_NEW = ("accepted", "pending_new", "held")
QUEUE_LIMIT = 10_000  # events a connection may fall behind before it is dropped as too slow


class Listener:
    """One connection's queue of encoded events; `overflowed` once it fell QUEUE_LIMIT behind."""

    __slots__ = ("overflowed", "queue")

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.overflowed = False


@dataclass
class EventHub:
    """Trade updates to the connections listening; publish is a no-op while nobody listens."""

    listeners: set[Listener] = field(default_factory=set)
    loop: asyncio.AbstractEventLoop | None = None
    loop_thread: int = 0
    published: int = 0
    held: list[dict[str, Any]] | None = None  # a group commit is open: its events wait for it (commits.py)

    @property
    def active(self) -> bool:
        return bool(self.listeners)

    def listen(self) -> Listener:
        if self.loop is None:
            self.loop, self.loop_thread = asyncio.get_running_loop(), threading.get_ident()
        listener = Listener()
        self.listeners.add(listener)
        return listener

    def leave(self, listener: Listener) -> None:
        self.listeners.discard(listener)

    def publish(self, events: list[dict[str, Any]]) -> None:
        if not events or not self.listeners:
            return
        loop = self.loop
        if loop is not None and threading.get_ident() != self.loop_thread:  # an engine on another thread
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody to tell
                loop.call_soon_threadsafe(self._deliver, events)
            return
        self._deliver(events)

    def hold(self) -> None:
        """A batch of changes opened: what it announces is sent once it is committed (`release`)."""
        if self.held is None:
            self.held = []

    def release(self, committed: bool) -> None:
        """The batch was committed (send its events) or rolled back (its changes never happened: drop them)."""
        held, self.held = self.held, None
        if held and committed:
            self._deliver(held)

    def _deliver(self, events: list[dict[str, Any]]) -> None:
        if self.held is not None:
            self.held.extend(events)
            return
        self.published += len(events)
        for listener in list(self.listeners):
            if listener.overflowed:
                continue
            if listener.queue.qsize() + len(events) > QUEUE_LIMIT:
                listener.overflowed = True
                listener.queue.put_nowait({})  # wakes the connection, which closes
                continue
            for e in events:
                listener.queue.put_nowait(e)


@dataclass
class _Pending:
    """What a transaction has changed so far: events to publish and statuses to remember once it commits."""

    events: list[dict[str, Any]] = field(default_factory=list)
    statuses: dict[str, str | None] = field(default_factory=dict)
    fills: dict[str, list[tuple[Fill, Decimal]]] = field(default_factory=dict)


class WatchedStore:
    """A Store that announces order changes on an EventHub after each commit (everything else passes through).

    `position_of(symbol)` is the account's position, read when a fill is written (the account has moved by
    then), which is the fill event's position_qty."""

    def __init__(self, inner: Store, hub: EventHub, position_of: Callable[[str], Decimal] | None = None):
        self.inner = inner
        self.hub = hub
        self.position_of = position_of
        self._status: dict[str, str] = {o.id: o.status for o in inner.open_orders()}
        self._depth = 0
        self._pending = _Pending()

    def __getattr__(self, name: str) -> Any:  # the routes' queries and anything else a Store offers
        return getattr(self.inner, name)

    # ------------------------------------------------------------------------------------------ transactions

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._depth += 1
        committed = False
        try:
            with self.inner.transaction():
                yield
            committed = True
        finally:
            self._depth -= 1
            if self._depth == 0:
                pending, self._pending = self._pending, _Pending()
                if committed:
                    self._commit(pending)

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        return self._transaction()

    def _commit(self, pending: _Pending) -> None:
        for order_id, status in pending.statuses.items():
            if status is None:
                self._status.pop(order_id, None)
            else:
                self._status[order_id] = status
        self.hub.publish(pending.events)

    def _autocommit(self) -> None:
        if self._depth == 0:
            pending, self._pending = self._pending, _Pending()
            self._commit(pending)

    # ------------------------------------------------------------------------------------------ writes

    def add_order(self, order: Order) -> None:
        self.inner.add_order(order)
        self._changed(order, None)
        self._autocommit()

    def save_order(self, order: Order) -> None:
        self.inner.save_order(order)
        p = self._pending
        before = p.statuses[order.id] if order.id in p.statuses else self._status.get(order.id)
        self._changed(order, before)
        self._autocommit()

    def add_fill(self, fill: Fill) -> None:
        self.inner.add_fill(fill)
        if self.hub.active:
            pos = self.position_of(fill.symbol) if self.position_of is not None else Decimal(0)
            self._pending.fills.setdefault(fill.order_id, []).append((fill, pos))

    def _changed(self, o: Order, before: str | None) -> None:
        p = self._pending
        p.statuses[o.id] = o.status if o.status in OPEN_STATUSES else None
        fills = p.fills.pop(o.id, ())
        if not self.hub.active:
            return
        routed = (before in BEFORE_NEW and (fills or o.status not in (*BEFORE_NEW, *CLOSING_EVENTS))) or (
            before is None and o.status == "new"
        )  # it went to the venue (and may have traded at once)
        closing = CLOSING_EVENTS.get(o.status) if o.status != before else None
        if not fills and not routed and closing is None:
            return
        view = order_json(o, self.inner.legs(o.id) if o.order_class != "simple" and o.parent_id is None else None)
        if routed:  # the order as it was when routed: new, nothing filled yet
            unfilled = {**view, "status": "new", "filled_qty": "0", "filled_avg_price": None, "filled_at": None}
            p.events.append(_event("new", view if o.status == "new" and not fills else unfilled, o.updated_at))
        for f, pos in fills:
            at_fill = view if f.order_status == o.status else {**view, "status": f.order_status}
            fill = {"execution_id": _execution_id(f.id), "price": num(f.price), "qty": num(f.qty),
                    "position_qty": num(pos)}  # fmt: skip
            p.events.append(_event(f.type, at_fill, f.transaction_time, **fill))
        if closing is not None:
            p.events.append(_event(closing, view, o.updated_at))


def _event(name: str, order: dict[str, Any], t: int, **extra: Any) -> dict[str, Any]:
    return {"event": name, "timestamp": iso_z(t), "order": order, **extra}


def _execution_id(fill_id: str) -> str:
    """A fill's id ends in a UUID (activities' form, "<time>::<uuid>"): the event's execution_id is that UUID."""
    tail = fill_id.rsplit("::", 1)[-1]
    try:
        return str(uuid.UUID(tail))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_OID, fill_id))
