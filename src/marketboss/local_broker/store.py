"""Where the engine writes: the Store interface, and MemoryStore, which keeps it in dicts.

The engine keeps its working state (cash, positions, open orders) in memory and writes every change through a
Store inside one transaction; when a transaction fails, it reloads from the Store. The server runs on
SqliteStore (sqlite_store.py); unit tests run the engine on MemoryStore, with no file and no server.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Protocol

from marketboss.local_broker.records import Fill, Order, Position


class Store(Protocol):
    """What the engine reads and writes (the HTTP routes' paged queries are SqliteStore's own)."""

    def transaction(self) -> AbstractContextManager[None]:
        """All-or-nothing; nested uses join the outer transaction."""
        ...

    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def add_order(self, order: Order) -> None: ...
    def save_order(self, order: Order) -> None: ...
    def order(self, order_id: str) -> Order | None: ...
    def client_id_taken(self, client_order_id: str) -> bool: ...
    def legs(self, parent_id: str) -> list[Order]: ...
    def open_orders(self) -> list[Order]: ...
    def max_order_seq(self) -> int: ...
    def add_fill(self, fill: Fill) -> None: ...
    def max_fill_seq(self) -> int: ...
    def first_fill(self, symbol: str, side: str, t0: int, t1: int, placed_by: int) -> int | None:
        """When the first fill of `symbol` on `side` stamped in [t0, t1] happened, of an order placed at or before
        `placed_by` (None: no such fill)."""
        ...

    def positions(self) -> list[Position]: ...
    def save_position(self, p: Position) -> None: ...


def stored_meta(store: Store, key: str, default: Callable[[], str]) -> str:
    """The value under `key`, written first from `default()` when the store has none (a new account)."""
    value = store.get_meta(key)
    if value is None:
        value = default()
        store.set_meta(key, value)
    return value


class MemoryStore:
    """A Store in dicts. Records are copied in and out, as a database would, so the engine's objects and the
    stored ones never alias, and a failed transaction leaves the store as it was before it."""

    def __init__(self) -> None:
        self.meta: dict[str, str] = {}
        self.orders: dict[str, Order] = {}
        self.fills: list[Fill] = []
        self.held_positions: dict[str, Position] = {}
        self._in_tx = False

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        if self._in_tx:
            yield
            return
        saved = (dict(self.meta), dict(self.orders), list(self.fills), dict(self.held_positions))
        self._in_tx = True
        try:
            yield
        except BaseException:
            self.meta, self.orders, self.fills, self.held_positions = saved
            raise
        finally:
            self._in_tx = False

    def get_meta(self, key: str) -> str | None:
        return self.meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        self.meta[key] = value

    def add_order(self, order: Order) -> None:
        self.orders[order.id] = copy.copy(order)

    def save_order(self, order: Order) -> None:
        self.orders[order.id] = copy.copy(order)

    def order(self, order_id: str) -> Order | None:
        o = self.orders.get(order_id)
        return None if o is None else copy.copy(o)

    def client_id_taken(self, client_order_id: str) -> bool:
        return any(o.client_order_id == client_order_id for o in self.orders.values())

    def legs(self, parent_id: str) -> list[Order]:
        return sorted((copy.copy(o) for o in self.orders.values() if o.parent_id == parent_id), key=lambda o: o.seq)

    def open_orders(self) -> list[Order]:
        return sorted((copy.copy(o) for o in self.orders.values() if o.is_open), key=lambda o: o.seq)

    def max_order_seq(self) -> int:
        return max((o.seq for o in self.orders.values()), default=0)

    def add_fill(self, fill: Fill) -> None:
        self.fills.append(copy.copy(fill))

    def max_fill_seq(self) -> int:
        return max((f.seq for f in self.fills), default=0)

    def first_fill(self, symbol: str, side: str, t0: int, t1: int, placed_by: int) -> int | None:
        return min((f.transaction_time for f in self.fills if f.symbol == symbol and f.side == side
                    and t0 <= f.transaction_time <= t1 and self.orders[f.order_id].created_at <= placed_by),
                   default=None)  # fmt: skip

    def positions(self) -> list[Position]:
        return [copy.copy(p) for _, p in sorted(self.held_positions.items())]

    def save_position(self, p: Position) -> None:
        if p.qty == 0:
            self.held_positions.pop(p.symbol, None)
        else:
            self.held_positions[p.symbol] = copy.copy(p)
