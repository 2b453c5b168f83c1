"""The live loop's status file (default data/live_status.json): what a running `marketboss live` session is doing,
rewritten atomically after every bar (and on start, stream changes and stop) so the dashboard and a user's
`cat` always read one whole state. Times are RFC 3339 UTC text; `updated_at` is wall-clock time, the rest is the
broker's clock (a replay runs in the past)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from marketboss.data.io import atomic_write_bytes
from marketboss.errors import InputError

State = Literal["warming_up", "running", "stopping", "stopped", "failed"]


@dataclass
class StreamHealth:
    connected: bool = False
    connections: int = 0  # connections made so far (1 = never dropped)
    gaps_backfilled: int = 0  # times bars missed by the stream were fetched from REST
    bars_backfilled: int = 0
    last_message_at: str | None = None  # wall clock of the last bar received


@dataclass
class LiveStatus:
    strategy: str
    symbols: list[str]
    timeframe: str
    broker: str
    mode: str  # "local", "paper" or "live"
    pid: int
    started_at: str
    updated_at: str
    state: State = "warming_up"
    last_bar: str | None = None  # start of the last closed bar the strategy ran on
    trading_from: str | None = None  # the session's first bar (kept by a restart): an event strategy trades from it
    bars_seen: int = 0
    signals_today: int = 0
    orders_submitted: int = 0
    stream: StreamHealth = field(default_factory=StreamHealth)
    account: dict[str, float] = field(default_factory=dict)  # equity, cash, buying_power
    positions: list[dict[str, Any]] = field(default_factory=list)  # symbol, qty, avg_entry_price, market_value
    open_orders: list[dict[str, Any]] = field(default_factory=list)  # id, client_order_id, symbol, side, type, ...
    stopped_by: str | None = None
    equity_log: str | None = None  # where this session snapshots equity (the dashboard draws its curve from it)


def write_status(path: Path, status: LiveStatus) -> None:
    atomic_write_bytes(path, json.dumps(asdict(status), indent=1).encode() + b"\n")


def read_status(path: Path) -> LiveStatus | None:
    """The status a live session last wrote; None when there is none. A damaged file is an InputError."""
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text())
        raw["stream"] = StreamHealth(**raw.get("stream", {}))
        return LiveStatus(**raw)
    except (ValueError, TypeError, AttributeError) as exc:  # not JSON, not an object, or not its fields
        raise InputError(path, f"not a live status file ({str(exc)[:120]})") from None
