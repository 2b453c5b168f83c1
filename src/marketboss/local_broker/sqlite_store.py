"""The broker's state in SQLite (WAL): account, orders, fills and positions survive a restart.

The Store the server runs on (store.py has the interface and the in-memory one the unit tests use), plus the
queries the HTTP routes page through.

One server owns a database (an exclusive lock file says so); every change happens inside one transaction, so
a crash leaves the state before or after a request, never half of it. The server groups its changes (group
commit, `batch_commits`): the changes made while one batch of requests is handled share one write transaction,
each change a savepoint of it, so a failed change is undone alone and the batch costs one commit; the server
answers none of those requests before that commit (commits.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import fields
from decimal import Decimal
from operator import attrgetter
from pathlib import Path
from typing import Any

from marketboss.errors import ConfigError
from marketboss.local_broker.records import OPEN_STATUSES, Fill, Order, Position

SCHEMA_VERSION = "3"

#: Open orders, as SQL: the index of them holds only these (an order leaves it as it closes, so it stays small
#: and a fill changes one small page, not a page of an index over every order ever placed).
_OPEN = f"status IN ({', '.join(repr(s) for s in OPEN_STATUSES)})"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, client_order_id TEXT NOT NULL UNIQUE,
    parent_id TEXT, leg TEXT, symbol TEXT NOT NULL, side TEXT NOT NULL, type TEXT NOT NULL,
    tif TEXT NOT NULL, order_class TEXT NOT NULL, intent TEXT NOT NULL, qty TEXT, notional TEXT,
    filled_qty TEXT NOT NULL, filled_avg_price TEXT, limit_price TEXT, stop_price TEXT,
    extended_hours INTEGER NOT NULL, status TEXT NOT NULL, created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL, submitted_at INTEGER NOT NULL, filled_at INTEGER, expired_at INTEGER,
    canceled_at INTEGER, failed_at INTEGER, expires_at INTEGER, triggered INTEGER NOT NULL,
    reserve_price TEXT, commission TEXT NOT NULL, eligible_wall REAL NOT NULL, partial_done INTEGER NOT NULL,
    trail_percent TEXT, trail_price TEXT, hwm REAL, live_from INTEGER NOT NULL DEFAULT 0,
    replaces TEXT, replaced_by TEXT, replaced_at INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS orders_by_time ON orders (submitted_at, seq);
DROP INDEX IF EXISTS orders_by_status;
CREATE INDEX IF NOT EXISTS orders_open ON orders (status) WHERE {OPEN};
CREATE TABLE IF NOT EXISTS fills (
    id TEXT NOT NULL UNIQUE, seq INTEGER PRIMARY KEY, order_id TEXT NOT NULL, symbol TEXT NOT NULL,
    side TEXT NOT NULL, type TEXT NOT NULL, qty TEXT NOT NULL, price TEXT NOT NULL, cum_qty TEXT NOT NULL,
    leaves_qty TEXT NOT NULL, order_status TEXT NOT NULL, transaction_time INTEGER NOT NULL, commission TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS fills_by_time ON fills (transaction_time, seq);
CREATE TABLE IF NOT EXISTS positions (
    symbol TEXT PRIMARY KEY, qty TEXT NOT NULL, avg_entry_price TEXT NOT NULL
) WITHOUT ROWID;
""".replace("{OPEN}", _OPEN)

#: Version 1 databases gain the trailing-stop and bar-matching columns (their open orders work from any bar).
_MIGRATE_1 = ("ALTER TABLE orders ADD COLUMN trail_percent TEXT", "ALTER TABLE orders ADD COLUMN trail_price TEXT",
              "ALTER TABLE orders ADD COLUMN hwm REAL",
              "ALTER TABLE orders ADD COLUMN live_from INTEGER NOT NULL DEFAULT 0")  # fmt: skip
#: Version 2 databases gain the replace links.
_MIGRATE_2 = ("ALTER TABLE orders ADD COLUMN replaces TEXT", "ALTER TABLE orders ADD COLUMN replaced_by TEXT",
              "ALTER TABLE orders ADD COLUMN replaced_at INTEGER")  # fmt: skip

_ORDER_FIELDS = [f.name for f in fields(Order)]
_MUTABLE = ["qty", "filled_qty", "filled_avg_price", "status", "updated_at", "filled_at", "expired_at", "canceled_at",
            "failed_at", "triggered", "commission", "eligible_wall", "partial_done", "hwm", "live_from", "parent_id",
            "replaced_by", "replaced_at"]  # fmt: skip
_FILL_FIELDS = [f.name for f in fields(Fill)]
_DECIMALS = {"qty", "notional", "filled_qty", "filled_avg_price", "limit_price", "stop_price", "reserve_price",
             "commission", "price", "cum_qty", "leaves_qty", "avg_entry_price", "trail_percent",
             "trail_price"}  # fmt: skip
_BOOLS = {"extended_hours", "triggered", "partial_done"}


def _writer(names: Sequence[str]) -> Callable[[Any], list[Any]]:
    """A record's `names` as SQLite takes them: Decimals as text (bools bind as integers already). Built once per
    statement: this runs for every order written."""
    get = attrgetter(*names)
    decimals = [i for i, name in enumerate(names) if name in _DECIMALS]

    def values(record: Any) -> list[Any]:
        out = list(get(record))
        for i in decimals:
            if out[i] is not None:
                out[i] = str(out[i])
        return out

    return values


def _row(names: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, v in zip(names, row, strict=True):
        if v is not None and name in _DECIMALS:
            v = Decimal(v)
        elif name in _BOOLS:
            v = bool(v)
        out[name] = v
    return out


class SqliteStore:
    """The database file of `broker serve --db`: one writer (an exclusive lock file), WAL, a transaction per change."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fh = open(f"{path}.lock", "a+")  # noqa: SIM115 - held for the server's lifetime
        try:
            fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_fh.close()
            raise ConfigError(f"{path} is in use by another broker server (lock {path}.lock)") from None
        try:
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            # WAL + NORMAL: a commit is a WAL append without fsync (durable across a process crash; an OS
            # crash may lose the last transactions, never corrupt). The exclusive lock spares the per-transaction
            # file-lock calls (this process is the database's only user anyway); checkpoints (which fsync) come
            # every ~40 MB of WAL rather than every 4 MB, and at shutdown.
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self.db.execute("PRAGMA wal_autocheckpoint=10000")
            self.db.execute("PRAGMA temp_store=MEMORY")
            self.db.execute("PRAGMA cache_size=-16000")
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self._lock_fh.close()
            raise ConfigError(f"{path}: not a broker database ({exc})") from None
        self._run = self.db.cursor().execute  # writes: one cursor, not a new one per statement
        self._in_change = False
        self._batch_open = False  # a batch's BEGIN was issued and its COMMIT not yet
        self._on_batch: Callable[[], None] | None = None
        version = self.get_meta("schema_version")
        if version is None:
            self.set_meta("schema_version", SCHEMA_VERSION)
        elif version in ("1", "2"):
            with self.transaction():
                for sql in (*(_MIGRATE_1 if version == "1" else ()), *_MIGRATE_2):
                    self.db.execute(sql)
                self.set_meta("schema_version", SCHEMA_VERSION)
        elif version != SCHEMA_VERSION:
            raise ConfigError(f"{path}: schema version {version}, this server writes {SCHEMA_VERSION}")

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.commit()
        with contextlib.suppress(sqlite3.Error):
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.db.close()
        self._lock_fh.close()  # the lock file stays: deleting it could let two servers lock two different files

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One change, all-or-nothing; nested uses join the outer change. Committed at its end, or with its batch
        when commits are batched."""
        if self._in_change:
            yield
            return
        batched = self._on_batch is not None
        first = not (batched and self._batch_open)  # begins a transaction (else: a savepoint in the batch's)
        if first:
            self._run("BEGIN IMMEDIATE")
            if self._on_batch is not None:
                self._batch_open = True
                self._on_batch()
        else:
            self._run("SAVEPOINT change")
        self._in_change = True
        try:
            yield
        except BaseException:
            if first:
                self._batch_open = False
                self._run("ROLLBACK")
            else:
                self._run("ROLLBACK TO change")
                self._run("RELEASE change")
            raise
        else:
            if not batched:
                self._run("COMMIT")
            elif not first:
                self._run("RELEASE change")
        finally:
            self._in_change = False

    def batch_commits(self, on_batch: Callable[[], None] | None) -> None:
        """Group commit: from now on changes join one open write transaction until `commit()`; `on_batch` is called
        when a change opens a new one (it arranges that commit). None: back to one commit per change (a batch
        still open is committed first)."""
        if on_batch is None:
            self.commit()
        self._on_batch = on_batch

    @property
    def uncommitted(self) -> bool:
        """A batch holds changes not yet committed."""
        return self._batch_open

    def commit(self) -> None:
        """Commit the open batch, if any; if that fails it is rolled back (the error is raised)."""
        if not self._batch_open:
            return
        self._batch_open = False
        try:
            self._run("COMMIT")
        except sqlite3.Error:
            with contextlib.suppress(sqlite3.Error):
                self._run("ROLLBACK")
            raise

    # ------------------------------------------------------------------------------------------ meta

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._run("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # ------------------------------------------------------------------------------------------ orders

    _ORDER_SQL = (
        f"INSERT INTO orders ({', '.join(_ORDER_FIELDS)}) VALUES ({', '.join('?' * len(_ORDER_FIELDS))})"
    )
    _ORDER_COLS = ", ".join(_ORDER_FIELDS)
    _order_values = staticmethod(_writer(_ORDER_FIELDS))

    def add_order(self, order: Order) -> None:
        self._run(self._ORDER_SQL, self._order_values(order))

    _UPDATE_SQL = f"UPDATE orders SET {', '.join(f'{n} = ?' for n in _MUTABLE)} WHERE id = ?"
    _update_values = staticmethod(_writer([*_MUTABLE, "id"]))

    def save_order(self, order: Order) -> None:
        """Write what can change after creation (unchanged indexed columns leave their indexes alone)."""
        self._run(self._UPDATE_SQL, self._update_values(order))

    def _orders(self, sql: str, args: Sequence[Any] = ()) -> list[Order]:
        return [Order(**_row(_ORDER_FIELDS, r)) for r in self.db.execute(sql, args)]

    def order(self, order_id: str) -> Order | None:
        got = self._orders(f"SELECT {self._ORDER_COLS} FROM orders WHERE id = ?", (order_id,))
        return got[0] if got else None

    def order_by_client_id(self, client_order_id: str) -> Order | None:
        got = self._orders(f"SELECT {self._ORDER_COLS} FROM orders WHERE client_order_id = ?", (client_order_id,))
        return got[0] if got else None

    def client_id_taken(self, client_order_id: str) -> bool:
        row = self.db.execute("SELECT 1 FROM orders WHERE client_order_id = ?", (client_order_id,)).fetchone()
        return row is not None

    def legs(self, parent_id: str) -> list[Order]:
        return self._orders(f"SELECT {self._ORDER_COLS} FROM orders WHERE parent_id = ? ORDER BY seq", (parent_id,))

    def open_orders(self) -> list[Order]:
        return self._orders(f"SELECT {self._ORDER_COLS} FROM orders WHERE {_OPEN} ORDER BY seq")

    def query_orders(
        self,
        *,
        statuses: Sequence[str] | None,
        exclude_statuses: Sequence[str] | None,
        after: int | None,
        until: int | None,
        symbols: Sequence[str] | None,
        side: str | None,
        top_level_only: bool,
        descending: bool,
        limit: int,
    ) -> list[Order]:
        where: list[str] = []
        args: list[Any] = []
        if statuses is not None and tuple(statuses) == OPEN_STATUSES:
            where.append(_OPEN)  # as written, so the index of open orders serves it
        elif statuses is not None:
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            args += list(statuses)
        if exclude_statuses is not None:
            where.append(f"status NOT IN ({', '.join('?' * len(exclude_statuses))})")
            args += list(exclude_statuses)
        if after is not None:
            where.append("submitted_at > ?")
            args.append(after)
        if until is not None:
            where.append("submitted_at < ?")
            args.append(until)
        if symbols:
            where.append(f"symbol IN ({', '.join('?' * len(symbols))})")
            args += list(symbols)
        if side is not None:
            where.append("side = ?")
            args.append(side)
        if top_level_only:
            where.append("parent_id IS NULL")
        direction = "DESC" if descending else "ASC"
        sql = f"SELECT {self._ORDER_COLS} FROM orders"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY submitted_at {direction}, seq {direction} LIMIT ?"
        return self._orders(sql, [*args, limit])

    def max_order_seq(self) -> int:
        row = self.db.execute("SELECT MAX(seq) FROM orders").fetchone()
        return int(row[0] or 0)

    # ------------------------------------------------------------------------------------------ fills

    _FILL_SQL = f"INSERT INTO fills ({', '.join(_FILL_FIELDS)}) VALUES ({', '.join('?' * len(_FILL_FIELDS))})"

    _fill_values = staticmethod(_writer(_FILL_FIELDS))

    def add_fill(self, fill: Fill) -> None:
        self._run(self._FILL_SQL, self._fill_values(fill))

    def max_fill_seq(self) -> int:
        row = self.db.execute("SELECT MAX(seq) FROM fills").fetchone()
        return int(row[0] or 0)

    def first_fill(self, symbol: str, side: str, t0: int, t1: int, placed_by: int) -> int | None:
        sql = ("SELECT MIN(f.transaction_time) FROM fills f JOIN orders o ON o.id = f.order_id"  # by fills_by_time
               " WHERE f.transaction_time BETWEEN ? AND ? AND f.symbol = ? AND f.side = ? AND o.created_at <= ?")
        row = self.db.execute(sql, (t0, t1, symbol, side, placed_by)).fetchone()
        return None if row[0] is None else int(row[0])

    def query_fills(
        self, *, after: int | None, until: int | None, descending: bool, page_after: tuple[int, int] | None, limit: int
    ) -> list[Fill]:
        where: list[str] = []
        args: list[Any] = []
        if after is not None:
            where.append("transaction_time > ?")
            args.append(after)
        if until is not None:
            where.append("transaction_time < ?")
            args.append(until)
        if page_after is not None:
            op = "<" if descending else ">"
            where.append(f"(transaction_time, seq) {op} (?, ?)")
            args += list(page_after)
        direction = "DESC" if descending else "ASC"
        sql = f"SELECT {', '.join(_FILL_FIELDS)} FROM fills"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY transaction_time {direction}, seq {direction} LIMIT ?"
        return [Fill(**_row(_FILL_FIELDS, r)) for r in self.db.execute(sql, [*args, limit])]

    def fill_position(self, fill_id: str) -> tuple[int, int] | None:
        row = self.db.execute("SELECT transaction_time, seq FROM fills WHERE id = ?", (fill_id,)).fetchone()
        return None if row is None else (int(row[0]), int(row[1]))

    # ------------------------------------------------------------------------------------------ positions

    def positions(self) -> list[Position]:
        rows = self.db.execute("SELECT symbol, qty, avg_entry_price FROM positions ORDER BY symbol")
        return [Position(s, Decimal(q), Decimal(a)) for s, q, a in rows]

    def save_position(self, p: Position) -> None:
        if p.qty == 0:
            self._run("DELETE FROM positions WHERE symbol = ?", (p.symbol,))
        else:
            self._run(
                "INSERT OR REPLACE INTO positions (symbol, qty, avg_entry_price) VALUES (?, ?, ?)",
                (p.symbol, str(p.qty), str(p.avg_entry_price)),
            )

    def counts(self) -> dict[str, int]:
        one = self.db.execute
        return {
            "orders": int(one("SELECT COUNT(*) FROM orders").fetchone()[0]),
            "fills": int(one("SELECT COUNT(*) FROM fills").fetchone()[0]),
            "positions": int(one("SELECT COUNT(*) FROM positions").fetchone()[0]),
        }
