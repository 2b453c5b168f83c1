"""Day trades, counted as FINRA counts them for the pattern-day-trader rule, and what the day's openings used of
the day-trading buying power.

A day trade is an opening fill followed later the same New York day by a closing fill of the same symbol: buy,
buy, sell is one; buy, sell, buy, sell is two; buy then five sells is one. Positions carried overnight closed today
are not day trades. The ledger lives in the store's meta (one JSON value), written with each fill's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import orjson

from marketboss.local_broker.store import Store

ZERO = Decimal(0)
KEY = "daytrades"
KEEP_DAYS = 10  # counts older than this many trading days no longer matter (the rule looks at 5)


@dataclass
class Opened:
    """Shares of a symbol opened today and still held, their cost, and whether the last fill opened or closed."""

    qty: Decimal
    cost: Decimal
    last_opened: bool


class DayTrades:
    def __init__(self, store: Store):
        self.store = store
        raw = store.get_meta(KEY)
        data = orjson.loads(raw) if raw else {}
        self.day: str = data.get("day", "")
        self.counts: dict[str, int] = {str(k): int(v) for k, v in data.get("counts", {}).items()}
        self.opened: dict[str, Opened] = {
            s: Opened(Decimal(q), Decimal(c), bool(last)) for s, (q, c, last) in data.get("opened", {}).items()
        }

    def record(self, day: str, symbol: str, opening: Decimal, closing: Decimal, price: Decimal) -> None:
        """A fill on New York date `day`: `closing` shares reduced the position first, `opening` shares opened or
        grew it."""
        if day != self.day:
            self.day, self.opened = day, {}
            for old in sorted(self.counts)[:-KEEP_DAYS]:
                del self.counts[old]
        st = self.opened.get(symbol)
        if closing > 0 and st is not None and st.qty > 0:
            if st.last_opened:
                self.counts[day] = self.counts.get(day, 0) + 1
            used = min(closing, st.qty)
            st.cost -= st.cost * used / st.qty
            st.qty -= used
            st.last_opened = False
        if opening > 0:
            st = self.opened.setdefault(symbol, Opened(ZERO, ZERO, True))
            st.qty += opening
            st.cost += opening * price
            st.last_opened = True
        self._save()

    def count(self, days: list[str]) -> int:
        """Day trades on the given New York dates (the last five sessions)."""
        return sum(self.counts.get(d, 0) for d in days)

    def opened_today(self, symbol: str, day: str) -> Decimal:
        st = self.opened.get(symbol) if day == self.day else None
        return ZERO if st is None else st.qty

    def opened_cost(self, day: str) -> Decimal:
        """What today's still-held openings cost: the day-trading buying power they use."""
        return sum((st.cost for st in self.opened.values()), ZERO) if day == self.day else ZERO

    def _save(self) -> None:
        opened = {s: [str(st.qty), str(st.cost), st.last_opened] for s, st in self.opened.items() if st.qty > 0}
        self.store.set_meta(KEY, orjson.dumps({"day": self.day, "counts": self.counts, "opened": opened}).decode())
