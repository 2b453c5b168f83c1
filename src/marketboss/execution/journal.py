"""The run's memory across crashes.

Before an order is sent, its intent (client_order_id, side, quantity) is fsynced here; the trades log is the
record of what finished. On restart: a signal with a trade record is done; a signal with an intent but no
record is reconciled by looking its client_order_id up at the broker (never sent blindly again); anything
else has not started. Because client_order_id is derived from the signal id, even a lost journal cannot
make the broker accept the same order twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from marketboss.broker.base import Side
from marketboss.data.io import JsonlAppender, read_jsonl_records


@dataclass(frozen=True)
class Intent:
    signal_id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: float


@dataclass
class JournalState:
    intents: dict[str, Intent] = field(default_factory=dict)
    order_ids: dict[str, str] = field(default_factory=dict)  # signal_id -> broker order id
    stops: dict[str, str] = field(default_factory=dict)  # symbol -> open protective stop order id
    kill_switch: dict[str, str] = field(default_factory=dict)  # session date -> reason


def journal_path(trades_output: Path) -> Path:
    return trades_output.with_name(trades_output.stem + ".journal.jsonl")


class Journal:
    def __init__(self, path: Path):
        self.path = path
        self.state = self._load(path)
        self._log = JsonlAppender(path)

    @staticmethod
    def _load(path: Path) -> JournalState:
        st = JournalState()
        if not path.exists():
            return st
        for r in read_jsonl_records(path):
            kind = r.get("event")
            if kind == "intent":
                st.intents[r["signal_id"]] = Intent(
                    r["signal_id"], r["client_order_id"], r["symbol"], r["side"], r["qty"]
                )
            elif kind == "submitted":
                st.order_ids[r["signal_id"]] = r["order_id"]
            elif kind == "stop_placed":
                st.stops[r["symbol"]] = r["order_id"]
            elif kind == "stop_cleared":
                st.stops.pop(r["symbol"], None)
            elif kind == "kill_switch":
                st.kill_switch[r["date"]] = r["reason"]
        return st

    def _append(self, **record: Any) -> None:
        self._log.append(record)

    def intent(self, i: Intent) -> None:
        self._append(event="intent", signal_id=i.signal_id, client_order_id=i.client_order_id, symbol=i.symbol,
                     side=i.side, qty=i.qty)  # fmt: skip
        self.state.intents[i.signal_id] = i

    def submitted(self, signal_id: str, order_id: str) -> None:
        self._append(event="submitted", signal_id=signal_id, order_id=order_id)
        self.state.order_ids[signal_id] = order_id

    def stop_placed(self, symbol: str, order_id: str) -> None:
        self._append(event="stop_placed", symbol=symbol, order_id=order_id)
        self.state.stops[symbol] = order_id

    def stop_cleared(self, symbol: str) -> None:
        self._append(event="stop_cleared", symbol=symbol)
        self.state.stops.pop(symbol, None)

    def kill(self, session: date, reason: str) -> None:
        self._append(event="kill_switch", date=session.isoformat(), reason=reason)
        self.state.kill_switch[session.isoformat()] = reason

    def close(self) -> None:
        self._log.close()
