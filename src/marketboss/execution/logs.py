"""The paper-trading logs in the guide's formats, written by the executor and read by dashboard and CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from marketboss.data.io import read_jsonl_records

#: The guide's trade fields first, then the ones that join paper to backtest.
TRADE_FIELDS = (
    "timestamp", "signal_timestamp", "order_id", "symbol", "side", "qty", "filled_price", "status",
    "signal_id", "client_order_id", "expected_price", "slippage_bps", "commission", "requested_qty", "reason",
)  # fmt: skip
EQUITY_FIELDS = ("timestamp", "cash", "portfolio_value", "buying_power", "equity_multiplier")
#: Statuses that mean the signal is finished (a record with any of them is never redone).
FINAL_STATUSES = ("filled", "partially_filled", "expired", "canceled", "rejected", "blocked", "skipped")


def slippage_bps(side: str, expected: float | None, filled: float | None) -> float | None:
    """Positive is worse than expected: paid more on a buy, received less on a sell."""
    if not expected or not filled:
        return None
    sign = 1.0 if side.upper() == "BUY" else -1.0
    return sign * (filled - expected) / expected * 1e4


def done_signal_ids(trades_path: Path) -> set[str]:
    if not trades_path.exists():
        return set()
    return {str(r["signal_id"]) for r in read_jsonl_records(trades_path) if r.get("signal_id")}


def _frame(records: list[dict[str, Any]], fields: tuple[str, ...]) -> pl.DataFrame:
    rows = [{k: r.get(k) for k in fields} for r in records]
    df = pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame(schema=dict.fromkeys(fields, pl.String))
    if "timestamp" in df.columns and df.height:
        df = df.with_columns(pl.col("timestamp").str.to_datetime(time_zone="UTC", time_unit="us", strict=False))
    return df


def read_paper_trades(path: Path) -> pl.DataFrame:
    """The trades log as a frame (one row per finished signal); an InputError names a bad line."""
    return _frame(read_jsonl_records(path), TRADE_FIELDS)


def read_paper_equity(path: Path) -> pl.DataFrame:
    df = _frame(read_jsonl_records(path), EQUITY_FIELDS)
    return df.sort("timestamp") if df.height else df
