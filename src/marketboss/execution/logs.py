"""The paper-trading logs in the guide's formats, written by the executor and read by dashboard and CLI."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from marketboss.data.io import read_jsonl_records
from marketboss.data.schema import LINE
from marketboss.errors import InputError

#: The guide's trade fields first, then the ones that join paper to backtest. An exit's fill (a bracket leg or
#: a trailing stop) carries its parent's signal_id and names itself in `leg` (null for the order itself).
TRADE_FIELDS = (
    "timestamp", "signal_timestamp", "order_id", "symbol", "side", "qty", "filled_price", "status",
    "signal_id", "client_order_id", "expected_price", "slippage_bps", "commission", "requested_qty", "reason",
    "leg",
)  # fmt: skip
EQUITY_FIELDS = ("timestamp", "cash", "portfolio_value", "buying_power", "equity_multiplier")
#: Statuses that mean the signal is finished (a record with any of them is never redone).
FINAL_STATUSES = ("filled", "partially_filled", "expired", "canceled", "rejected", "blocked", "skipped")


def done_signal_ids(trades_path: Path) -> set[str]:
    if not trades_path.exists():
        return set()
    return {str(r["signal_id"]) for r in read_jsonl_records(trades_path) if r.get("signal_id")}


def _is_timestamp(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        datetime.fromisoformat(v)
    except ValueError:
        return False
    return True


def _check(
    path: Path,
    records: list[dict[str, Any]],
    *,
    strings: tuple[str, ...] = (),
    numbers: tuple[str, ...] = (),
    required: tuple[str, ...] = (),
) -> None:
    """Readers (dashboard, reconcile) name the bad line and field instead of failing later on a bad value.
    `numbers` may be null; `required` must be finite numbers (an equity below zero is an account's: a short that
    ran away)."""
    for r in records:
        line = r.get(LINE)
        if not _is_timestamp(r.get("timestamp")):
            raise InputError(path, "missing or not an ISO-8601 timestamp", line=line, field="timestamp")
        for f in strings:
            if not isinstance(r.get(f), str) or not r[f]:
                raise InputError(path, f"expected a string, got {r.get(f)!r}", line=line, field=f)
        for f in (*numbers, *required):
            v = r.get(f)
            if v is None and f in numbers:
                continue
            if isinstance(v, bool) or not isinstance(v, int | float) or (f in required and not math.isfinite(v)):
                rule = "a finite number" if f in required else "a number"
                raise InputError(path, f"expected {rule}, got {v!r}", line=line, field=f)


def _frame(records: list[dict[str, Any]], fields: tuple[str, ...]) -> pl.DataFrame:
    rows = [{k: r.get(k) for k in fields} for r in records]
    df = pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame(schema=dict.fromkeys(fields, pl.String))
    if "timestamp" in df.columns and df.height:
        df = df.with_columns(pl.col("timestamp").str.to_datetime(time_zone="UTC", time_unit="us", strict=False))
    return df


def read_paper_trades(path: Path, on_torn: Callable[[int], None] | None = None) -> pl.DataFrame:
    """The trades log as a frame (one row per finished signal, and one per exit fill); an InputError names a bad
    line; `on_torn` hears of a torn last line (read_jsonl_records)."""
    records = read_jsonl_records(path, on_torn=on_torn)
    _check(
        path,
        records,
        strings=("symbol", "side", "status"),  # signal_id too is ours: the guide's own lines have none
        numbers=("qty", "filled_price", "commission", "slippage_bps", "expected_price"),
    )
    for r in records:  # what reconcile counts and prices: a wrong one was a wrong result, not an error
        line, qty, price = r.get(LINE), r.get("qty"), r.get("filled_price")
        if str(r["side"]).upper() not in ("BUY", "SELL", "CANCEL"):  # CANCEL: an event strategy's cancel's record
            raise InputError(path, f"expected BUY, SELL or CANCEL, got {r['side']!r}", line=line, field="side")
        if qty is None or qty < 0:
            raise InputError(path, f"expected the shares filled, a number >= 0, got {qty!r}", line=line, field="qty")
        if qty > 0 and not (price is not None and price > 0):
            raise InputError(path, f"a fill of {qty:g} shares needs its price, a number > 0, got {price!r}", line=line,
                             field="filled_price")  # fmt: skip
    return _frame(records, TRADE_FIELDS)


def read_paper_equity(path: Path, on_torn: Callable[[int], None] | None = None) -> pl.DataFrame:
    records = read_jsonl_records(path, on_torn=on_torn)
    _check(path, records, numbers=("cash", "buying_power", "equity_multiplier"), required=("portfolio_value",))
    df = _frame(records, EQUITY_FIELDS)
    return df.sort("timestamp") if df.height else df
