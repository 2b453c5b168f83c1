"""A backtest run on disk, runs/<name>/: written atomically by the CLI, read back by `runs compare` and the
dashboard (one loader for both).

metrics.json holds the metrics flat at the top level (keys of metrics.METRICS) plus "run": how it was made.
equity.jsonl (timestamp, cash, positions_value, equity), fills.jsonl (timestamp, signal_id, symbol, side,
qty, price, commission, signal_timestamp), trades.jsonl (round trips), rejections.jsonl (signals that did
not fill, with status and reason), signals.jsonl (the signals that drove the run).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from marketboss.backtest.engine import BacktestResult
from marketboss.backtest.metrics import json_safe
from marketboss.data.io import atomic_directory, atomic_open, atomic_write_bytes
from marketboss.data.schema import TIMESTAMP_DTYPE
from marketboss.errors import InputError
from marketboss.signals import write_signals

METRICS_FILE = "metrics.json"
FRAMES = ("equity", "fills", "trades", "rejections")
_TIME_COLUMNS = ("timestamp", "signal_timestamp", "entry_time", "exit_time")


@dataclass(frozen=True)
class Run:
    path: Path
    metrics: dict[str, Any]
    equity: pl.DataFrame
    fills: pl.DataFrame
    trades: pl.DataFrame
    rejections: pl.DataFrame

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def info(self) -> dict[str, Any]:
        run = self.metrics.get("run")
        return run if isinstance(run, dict) else {}

    @classmethod
    def from_result(cls, result: BacktestResult, path: Path, info: dict[str, Any]) -> Run:
        metrics = {**json_safe(result.metrics), "run": info}
        return cls(path, metrics, result.equity, result.fills, result.trades, result.rejections)


def _write_jsonl(df: pl.DataFrame, path: Path) -> None:
    """Atomically, straight from polars into the file (no copy of the text in memory)."""
    out = df.with_columns(
        pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%SZ") for c in _TIME_COLUMNS if c in df.columns
    )
    with atomic_open(path) as fh:
        out.write_ndjson(fh)


def save_run(
    result: BacktestResult, out_dir: str | Path, info: dict[str, Any], signals: pl.DataFrame | None = None
) -> Run:
    """Write the run whole: built in a temporary sibling and swapped into place, so an interrupted rewrite leaves
    the old run intact (never old metrics beside new frames) and a reader sees one complete run or the other."""
    path = Path(out_dir)
    run = Run.from_result(result, path, info)
    text = json.dumps(run.metrics, indent=2, allow_nan=False) + "\n"
    with atomic_directory(path) as stage:
        for name in FRAMES:
            _write_jsonl(getattr(run, name), stage / f"{name}.jsonl")
        if signals is not None:
            write_signals(stage / "signals.jsonl", signals)
        atomic_write_bytes(stage / METRICS_FILE, text.encode())
    return run


_TS = TIMESTAMP_DTYPE
_STR, _F64, _I64 = pl.String(), pl.Float64(), pl.Int64()
#: Columns of each frame, so that an empty file (no fills, no rejections) still reads as typed columns.
SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "equity": {"timestamp": _TS, "cash": _F64, "positions_value": _F64, "equity": _F64},
    "fills": {"timestamp": _TS, "signal_id": _STR, "symbol": _STR, "side": _STR, "qty": _F64, "price": _F64,
              "commission": _F64, "signal_timestamp": _TS},
    "trades": {"symbol": _STR, "side": _STR, "qty": _F64, "entry_time": _TS, "entry_price": _F64,
               "exit_time": _TS, "exit_price": _F64, "pnl": _F64, "return_pct": _F64, "entry_signal_id": _STR,
               "exit_signal_id": _STR, "duration_days": _F64, "bars": _I64, "closed": pl.Boolean()},
    "rejections": {"signal_id": _STR, "timestamp": _TS, "symbol": _STR, "action": _STR, "quantity": _F64,
                   "target_weight": _F64, "status": _STR, "reason": _STR},
}


def _read_frame(path: Path) -> pl.DataFrame:
    if not path.exists():
        raise InputError(path, "missing: not a complete backtest run directory")
    if path.stat().st_size == 0:
        return pl.DataFrame(schema=SCHEMAS.get(path.stem))
    try:
        df = pl.read_ndjson(path)
    except Exception:
        raise InputError(path, "not valid JSON Lines") from None
    return df.with_columns(
        pl.col(c).str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_unit="us", time_zone="UTC").cast(TIMESTAMP_DTYPE)
        for c in _TIME_COLUMNS
        if c in df.columns and df.schema[c] == pl.String
    )


def load_run(path: str | Path, frames: Collection[str] = FRAMES) -> Run:
    """A run directory written by `marketboss backtest --output-dir`; only `frames` are read (the others are
    empty), e.g. ("equity",) for a comparison of equity curves."""
    p = Path(path)
    mfile = p / METRICS_FILE
    if not mfile.exists():
        raise InputError(mfile, "missing: not a backtest run directory (run `marketboss backtest` first)")
    try:
        metrics = json.loads(mfile.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(mfile, f"invalid JSON ({exc.msg})", line=exc.lineno) from None
    if not isinstance(metrics, dict):
        raise InputError(mfile, "expected a JSON object")
    loaded = {
        name: _read_frame(p / f"{name}.jsonl") if name in frames else pl.DataFrame(schema=SCHEMAS[name])
        for name in FRAMES
    }
    return Run(p, metrics, **loaded)


def compare(runs: list[Run], keys: list[tuple[str, str]]) -> list[list[Any]]:
    """Rows of (label, value per run) for a side-by-side table."""
    return [[label, *[r.metrics.get(key) for r in runs]] for key, label in keys]
