"""The live loop's status file (default data/live_status.json): what a running `marketboss live` session is doing,
rewritten atomically after every bar (and on start, stream changes and stop) so the dashboard and a user's
`cat` always read one whole state. Times are RFC 3339 UTC text; `updated_at` is wall-clock time, the rest is the
broker's clock (a replay runs in the past)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
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
    # the account's equity as the session began (kept by a restart): an event strategy's run decides with it as its
    # cash (ctx.cash, ctx.equity), as reconcile backtests the session from the account's first equity
    start_equity: float | None = None
    bars_seen: int = 0
    signals_today: int = 0
    orders_submitted: int = 0
    stream: StreamHealth = field(default_factory=StreamHealth)
    account: dict[str, float] = field(default_factory=dict)  # equity, cash, buying_power
    positions: list[dict[str, Any]] = field(default_factory=list)  # symbol, qty, avg_entry_price, market_value
    open_orders: list[dict[str, Any]] = field(default_factory=list)  # id, client_order_id, symbol, side, type, ...
    stopped_by: str | None = None
    equity_log: str | None = None  # where this session snapshots equity (the dashboard draws its curve from it)
    signals_log: str | None = None  # where it logs its signals (the dashboard's "today's signals" read it)


def write_status(path: Path, status: LiveStatus) -> None:
    atomic_write_bytes(path, json.dumps(asdict(status), indent=1).encode() + b"\n")


def read_status(path: Path) -> LiveStatus | None:
    """The status a live session last wrote; None when there is none. A damaged file is an InputError naming the
    field (each of its kind: `"account": null` or `"bars_seen": "many"` failed in the dashboard's page)."""
    from pydantic import TypeAdapter, ValidationError

    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text())
    except ValueError as exc:
        raise InputError(path, f"not a live status file: not JSON ({str(exc)[:120]})") from None
    try:
        status = TypeAdapter(LiveStatus).validate_python(raw, strict=False)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        raise InputError(path, f"not a live status file: {err['msg']}", field=field) from None
    for name, value in (*((f, getattr(status, f)) for f in _TIMES), ("stream.last_message_at",
                                                                      status.stream.last_message_at)):  # fmt: skip
        try:
            if value is not None:
                datetime.fromisoformat(value)
        except ValueError:
            raise InputError(path, f"not a live status file: {value!r} is no RFC 3339 time", field=name) from None
    return status


_TIMES = ("started_at", "updated_at", "last_bar", "trading_from")
