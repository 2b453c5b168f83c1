"""The input rules every reader and the local broker share: one symbol grammar, one number rule, one
timestamp range, strict JSON objects, and the size limits that refuse a file before it can exhaust memory.

Each rule exists once, in a scalar form (for line-by-line readers and the broker) and, where a vectorised
reader needs it, as the same pattern or bounds used in a polars expression.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NoReturn

import orjson

from marketboss.errors import InputError

# Alpaca's symbols: upper-case letters and digits, in parts joined by '.' (BRK.B) or '/' (BTC/USD).
SYMBOL_PATTERN = r"^[A-Z0-9]+(?:[./][A-Z0-9]+)*$"
MAX_SYMBOL_LENGTH = 21
_SYMBOL = re.compile(SYMBOL_PATTERN)

MIN_TIMESTAMP = datetime(1900, 1, 1, tzinfo=UTC)
MAX_TIMESTAMP = datetime(2200, 1, 1, tzinfo=UTC)
MAX_PRICE = 1e9  # dollars a share
MAX_QUANTITY = 1e9  # shares in one signal or order
MAX_VOLUME = 1e15  # shares in one bar

MAX_LINE_BYTES = 1 << 20  # 1 MiB: no bar or signal line is near this
MAX_INPUT_BYTES_ENV = "MARKETBOSS_MAX_INPUT_BYTES"
DEFAULT_MAX_INPUT_BYTES = 4 << 30  # 4 GiB: ~40 million bars of JSON Lines


def shown(value: object, limit: int = 24) -> str:
    """A value for an error message: short, so a 50 MB field never reaches the terminal."""
    if not isinstance(value, str):
        text = repr(value)
        return text[:limit] + "…" if len(text) > limit else text
    return repr(value[:limit] + "…" if len(value) > limit else value)


def symbol_error(value: object) -> str | None:
    """Why `value` is not a symbol, or None."""
    if not isinstance(value, str):
        return f"expected a string, got {type(value).__name__}"
    if not value:
        return "missing"
    if len(value) > MAX_SYMBOL_LENGTH or not _SYMBOL.match(value):
        return (
            f"symbol {shown(value)} is not a symbol: upper-case letters and digits, parts joined by '.' or '/', "
            f"at most {MAX_SYMBOL_LENGTH} characters"
        )
    return None


def number_error(value: object, low: float, high: float, *, low_open: bool = True) -> str | None:
    """Why `value` is not a JSON number in (low, high] (or [low, high]), or None. Booleans and text are not
    numbers here, whatever a lax parser would make of them (true -> 1, '١' -> 1)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"expected a number, got {shown(value)}"
    if not math.isfinite(value):
        return f"expected a finite number, got {value}"
    if value < low or (low_open and value == low) or value > high:
        return f"{value:g} is out of range: must be {'>' if low_open else '>='} {low:g} and <= {high:g}"
    return None


def timestamp_error(ts: datetime) -> str | None:
    aware = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
    if not MIN_TIMESTAMP <= aware < MAX_TIMESTAMP:
        return f"timestamp {ts.isoformat()} is out of range ({MIN_TIMESTAMP.year} to {MAX_TIMESTAMP.year - 1})"
    return None


_NUMBER_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,4})?", re.ASCII)


def number_from_text(text: str) -> Decimal | None:
    """Plain ASCII decimal text (CSV cells, Alpaca's string quantities), or None: no '١', '1_000', 'NaN',
    'Infinity', nor anything longer than any real number."""
    t = text.strip()
    if len(t) > 64 or not _NUMBER_TEXT.fullmatch(t):
        return None
    try:
        return Decimal(t)
    except InvalidOperation:  # pragma: no cover - the pattern admits only what Decimal parses
        return None


class DuplicateKey(ValueError):
    def __init__(self, key: str):
        super().__init__(f"duplicate key {shown(key)}")
        self.key = key


_KEY_END = re.compile(rb'"[ \t\r\n]*:')


def _keys(obj: Any) -> int:
    if isinstance(obj, dict):
        return len(obj) + sum(_keys(v) for v in obj.values())
    if isinstance(obj, list):
        return sum(_keys(v) for v in obj)
    return 0


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise DuplicateKey(k)
        out[k] = v
    return out


def loads(raw: bytes) -> Any:
    """orjson's parse, refusing duplicate keys (which orjson resolves silently: the last wins, while polars
    keeps the first). Every key in the text ends in `"` then `:`, so when those are no more than the keys
    parsed, none was repeated; only otherwise is the line parsed again, slowly, to find the repeat."""
    obj = orjson.loads(raw)
    if len(_KEY_END.findall(raw)) != _keys(obj):
        json.loads(raw, object_pairs_hook=_unique)
    return obj


def check_csv_header(path: Path) -> None:
    """A repeated column is ambiguous (readers differ on which one wins): refused, naming it."""
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        header = next(csv.reader(fh), [])
    seen: set[str] = set()
    for name in header:
        key = name.strip().lower()
        if key in seen:
            raise InputError(path, f"duplicate column {shown(name)}", line=1, field=name[:40])
        seen.add(key)


def max_input_bytes() -> int:
    text = os.environ.get(MAX_INPUT_BYTES_ENV, "").strip()
    return int(text) if text.isascii() and text.isdigit() else DEFAULT_MAX_INPUT_BYTES


@dataclass(frozen=True)
class TextScan:
    """What the size check saw on its way through a text file, so that a reader need not read it again."""

    colons: int = 0
    quotes: int = 0
    backslash: bool = False
    lines: int = 0  # newlines, plus one for a last line without its own


def check_input_file(path: Path) -> TextScan:
    """Refuse a file by its size and its longest line before it is read: a huge or sparse file (gigabytes of
    NUL bytes, one endless line) is an error naming the file, not a machine out of memory."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    limit = max_input_bytes()
    if size > limit:
        raise InputError(path, f"file is {size:,} bytes, over the {limit:,}-byte limit ({MAX_INPUT_BYTES_ENV})")
    if path.suffix.lower() == ".parquet":
        return TextScan()
    colons, quotes, newlines, backslash, carried, offset, ends_line = 0, 0, 0, False, 0, 0, True
    with open(path, "rb") as fh:
        while chunk := fh.read(MAX_LINE_BYTES):
            if b"\0" in chunk:
                _refuse(path, offset + chunk.index(b"\0"), "contains NUL bytes: not a text file")
            colons += chunk.count(b":")
            quotes += chunk.count(b'"')
            newlines += chunk.count(b"\n")
            backslash = backslash or b"\\" in chunk
            ends_line = chunk.endswith(b"\n")
            last = chunk.rfind(b"\n")
            if last < 0:
                carried += len(chunk)
            else:
                if carried + chunk.find(b"\n") > MAX_LINE_BYTES:
                    _refuse(path, offset, f"line longer than {MAX_LINE_BYTES:,} bytes")
                carried = len(chunk) - last - 1
            if carried > MAX_LINE_BYTES:
                _refuse(path, offset, f"line longer than {MAX_LINE_BYTES:,} bytes")
            offset += len(chunk)
    return TextScan(colons, quotes, backslash, newlines + (0 if ends_line else 1))


def _refuse(path: Path, offset: int, reason: str) -> NoReturn:
    """An InputError naming the line that holds byte `offset` (counted only now: the good path never counts)."""
    with open(path, "rb") as fh:
        line = fh.read(offset).count(b"\n") + 1
    raise InputError(path, reason, line=line)
