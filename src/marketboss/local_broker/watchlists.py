"""Watchlists (/v2/watchlists): named, ordered lists of the replayed symbols, kept in the store's meta as one JSON
value (an account has a handful). Names are unique; symbols must be assets the broker replays."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from marketboss.local_broker.errors import invalid, not_found
from marketboss.local_broker.orders import parse_symbol
from marketboss.local_broker.store import Store

KEY = "watchlists"
MAX_NAME = 64
MAX_LISTS = 200
MAX_SYMBOLS = 1000


class Watchlists:
    def __init__(self, store: Store, known: set[str]):
        self.store = store
        self.known = known
        raw = store.get_meta(KEY)
        self.lists: dict[str, dict[str, Any]] = orjson.loads(raw) if raw else {}

    def get(self, wid: str) -> dict[str, Any]:
        w = self.lists.get(wid)
        if w is None:
            raise not_found("watchlist not found")
        return w

    def create(self, body: Any, now: str) -> dict[str, Any]:
        name, symbols = self._fields(body, None)
        if len(self.lists) >= MAX_LISTS:
            raise invalid(f"at most {MAX_LISTS} watchlists")
        wid = str(uuid.uuid4())
        w: dict[str, Any] = {"id": wid, "name": name, "symbols": symbols or [], "created_at": now, "updated_at": now}
        self.lists[wid] = w
        self._save()
        return w

    def update(self, wid: str, body: Any, now: str) -> dict[str, Any]:
        w = self.get(wid)
        name, symbols = self._fields(body, wid)
        w["name"] = name
        if symbols is not None:
            w["symbols"] = symbols
        w["updated_at"] = now
        self._save()
        return w

    def add(self, wid: str, body: Any, now: str) -> dict[str, Any]:
        w = self.get(wid)
        if not isinstance(body, dict):
            raise invalid("request body must be a JSON object")
        sym = self._symbol(body.get("symbol"))
        if sym in w["symbols"]:
            raise invalid(f"{sym} is already in the watchlist")
        if len(w["symbols"]) >= MAX_SYMBOLS:
            raise invalid(f"at most {MAX_SYMBOLS} symbols in a watchlist")
        w["symbols"].append(sym)
        w["updated_at"] = now
        self._save()
        return w

    def remove(self, wid: str, symbol: str, now: str) -> dict[str, Any]:
        w = self.get(wid)
        sym = symbol.strip().upper()
        if sym not in w["symbols"]:
            raise not_found(f"{sym[:40]} is not in the watchlist")
        w["symbols"].remove(sym)
        w["updated_at"] = now
        self._save()
        return w

    def delete(self, wid: str) -> dict[str, Any]:
        w = self.get(wid)
        del self.lists[wid]
        self._save()
        return w

    def _fields(self, body: Any, wid: str | None) -> tuple[str, list[str] | None]:
        if not isinstance(body, dict):
            raise invalid("request body must be a JSON object")
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise invalid("name is required")
        if len(name) > MAX_NAME or not name.isprintable():
            raise invalid(f"name must be printable and at most {MAX_NAME} characters")
        if any(w["name"] == name and w["id"] != wid for w in self.lists.values()):
            raise invalid(f"a watchlist named {name!r} already exists")
        raw = body.get("symbols")
        if raw is None:
            return name, None
        if not isinstance(raw, list) or len(raw) > MAX_SYMBOLS:
            raise invalid(f"symbols must be a list of at most {MAX_SYMBOLS} symbols")
        symbols: list[str] = []
        for s in raw:
            sym = self._symbol(s)
            if sym not in symbols:
                symbols.append(sym)
        return name, symbols

    def _symbol(self, v: object) -> str:
        sym = parse_symbol(v)
        if sym not in self.known:
            raise invalid(f'asset "{sym}" not found')
        return sym

    def _save(self) -> None:
        self.store.set_meta(KEY, orjson.dumps(self.lists).decode())
