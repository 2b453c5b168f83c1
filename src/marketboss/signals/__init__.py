"""Signals: the one file that drives both the backtest and the paper executor.

A line of data/signals.jsonl (ARCHITECTURE.md):
`{"id": "sig-…", "timestamp", "symbol", "action": "BUY"|"SELL", "quantity", "strategy", "price", "target_weight"}`

Semantics, shared by the backtest engine and the paper executor (both must implement exactly this):

- `timestamp` is the timestamp of the bar the decision was made on (the strategy saw that bar's close and
  nothing later). The order is placed after it: the backtest fills it at the next bar's open of that symbol
  by default (or, optimistically, at the signal bar's close with `--fill close`).
- With `quantity` (and `target_weight` null) the signal is an order for that many shares: BUY adds them to
  the position, SELL subtracts them; selling more than is held goes short (long-short strategies do this).
- With `target_weight` (and `quantity` null) the signal means "move the position in this symbol to
  target_weight x current equity" (a fraction in [-1, 1]; negative is short). The action says the direction
  at decision time: BUY when that increases the position, SELL when it decreases it. An executor never trades
  against the action: if reaching the target needs the opposite side, nothing is traded.
- `price` is the close the strategy saw at the signal bar: the expected price, for slippage measurement.
- `id` is deterministic: the same strategy, parameters, symbol, timestamp and action always give the same id
  (it becomes the broker's client_order_id, which joins backtest fills and paper trades). It is the first
  8 bytes of sha256(strategy, canonical parameters JSON, symbol) mixed with the timestamp (microseconds)
  and the action by a fixed 64-bit finaliser (splitmix64), vectorised so that a million signals get their
  ids in milliseconds. Ids are unique within a file; writing a file with a duplicate id is refused.

Orders (optional fields; a line without them is a market order, valid for the day, as before):
- `order_type`: market (default) | limit | stop | stop_limit | trailing_stop. A limit order needs
  `limit_price`, a stop order `stop_price`, a stop-limit both, a trailing stop `trail_percent` (of the best
  price since it was placed). The fill and trigger rules are marketboss.orders'.
- `time_in_force`: day (default: expires at the end of the session it first trades in) | gtc (stays working).
- `take_profit` (a limit price) and `stop_loss` (a stop price), absolute: a bracket on an entry (an order
  that opens or adds to a position), whose two exits are one-cancels-other and sell (or buy back) that
  entry's shares, as Alpaca's bracket legs do: entries scaling into a position keep a bracket each. An order
  that reduces or flips the position cancels all of them as it goes live (the paper executor cancels them before sending
  it). A buy's stop_loss lies below its take_profit and its reference price (limit, stop or `price`); a
  sell's above.
- `trail_percent` on an entry that is not itself a trailing stop: a trailing stop-loss leg, in place of
  `stop_loss`.

Cancels: an event strategy may cancel an order it placed on an earlier bar. The cancel is a line of its own, at
the bar it was decided on: `"action": "CANCEL"` with `"cancels": "<the order's signal id>"`, the order's
symbol, no quantity, target_weight or order field (its id is deterministic like any other). The order may trade
up to and including that bar, never after (the backtest, reading a file, cancels it there; the paper executor
cancels the broker order with client_order_id mb-<cancels>). A file without cancels has no `cancels` field
anywhere: old files read and write exactly as before. A cancel of an order the file does not hold, or not
after it, is an error naming its line.

Reading also accepts the guide's minimal form `{"timestamp", "action", "symbol", "quantity"}`: a missing id
is derived from the line's content (and its occurrence number among identical lines, so ids stay unique).
Bad lines raise an InputError naming file, line and field (or, with skip_invalid, go to a rejects file).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from marketboss.data import cache
from marketboss.data.io import (
    Rejected,
    atomic_open,
    default_rejects_path,
    read_jsonl_records,
    store_copy,
    write_jsonl,
)
from marketboss.data.rules import (
    MAX_PRICE,
    MAX_QUANTITY,
    MAX_SYMBOL_LENGTH,
    MAX_TIMESTAMP,
    MIN_TIMESTAMP,
    SYMBOL_PATTERN,
    check_input_file,
    number_error,
    shown,
    symbol_error,
    timestamp_error,
)
from marketboss.data.schema import LINE, TIMESTAMP_DTYPE
from marketboss.errors import InputError

SIGNAL_FIELDS = ("id", "timestamp", "symbol", "action", "quantity", "strategy", "price", "target_weight")
SIGNAL_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),
    "timestamp": TIMESTAMP_DTYPE,
    "symbol": pl.String(),
    "action": pl.String(),
    "quantity": pl.Float64(),
    "strategy": pl.String(),
    "price": pl.Float64(),
    "target_weight": pl.Float64(),
}
#: Why a trailing stop leg takes no take-profit beside it: paper and live could not place it (Alpaca's).
TRAIL_ALONE = ("a trailing stop goes without a take-profit: a broker gives an entry's shares to one exit order "
               "(Alpaca's bracket pairs a take-profit with a stop-loss only), so paper could not place both")

#: The optional order fields, after SIGNAL_FIELDS: a frame has them when any of its signals is not a plain
#: market order for the day (null where a signal does not use one).
ORDER_FIELDS = ("order_type", "time_in_force", "limit_price", "stop_price", "trail_percent", "take_profit", "stop_loss")
ORDER_SCHEMA: dict[str, pl.DataType] = {
    "order_type": pl.String(),
    "time_in_force": pl.String(),
    **{f: pl.Float64() for f in ORDER_FIELDS[2:]},
}
ORDER_TYPE_NAMES = ("market", "limit", "stop", "stop_limit", "trailing_stop")
#: A cancel's field (see the module's docstring), after the order fields: in a frame only when it has a cancel.
CANCELS = "cancels"
#: What a signal without an order field means: a market order for the day.
ORDER_DEFAULTS = {"order_type": "market", "time_in_force": "day"}
ACTION_CODES = {"BUY": 1, "SELL": 2, "CANCEL": 3}
ID_PREFIX = "sig-"
_PREFIX = np.frombuffer(ID_PREFIX.encode(), dtype=np.uint8)  # the id kernel writes exactly 4 bytes


_NUMBER_RANGES = {"quantity": (0.0, MAX_QUANTITY, True), "price": (0.0, MAX_PRICE, True),
                  "target_weight": (-1.0, 1.0, False), "trail_percent": (0.0, 50.0, True),
                  **{f: (0.0, MAX_PRICE, True) for f in ("limit_price", "stop_price", "take_profit", "stop_loss")}}
_NEEDS = {"limit_price": ("limit", "stop_limit"), "stop_price": ("stop", "stop_limit"),
          "trail_percent": ("trailing_stop",)}  # fmt: skip


class Signal(BaseModel):
    """One validated signal; `line` is where it came from (not written back)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
    timestamp: datetime
    symbol: str = Field(min_length=1)
    action: Literal["BUY", "SELL", "CANCEL"]
    quantity: float | None = Field(None, gt=0, allow_inf_nan=False)
    strategy: str | None = None
    price: float | None = Field(None, gt=0, allow_inf_nan=False)
    target_weight: float | None = Field(None, ge=-1, le=1, allow_inf_nan=False)
    order_type: Literal["market", "limit", "stop", "stop_limit", "trailing_stop"] = "market"
    time_in_force: Literal["day", "gtc"] = "day"
    # validate_default: the checks below name a field the order type needs but the line lacks
    limit_price: float | None = Field(None, validate_default=True)
    stop_price: float | None = Field(None, validate_default=True)
    trail_percent: float | None = Field(None, validate_default=True)
    take_profit: float | None = None
    stop_loss: float | None = None
    cancels: str | None = Field(None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$",
                                validate_default=True)
    line: int | None = Field(None, exclude=True)

    @field_validator("order_type", "time_in_force", mode="before")
    @classmethod
    def _lower_name(cls, v: Any, info: ValidationInfo) -> Any:
        """Case and spaces aside; null is the default (a frame's row without that order field)."""
        if v is None:
            return ORDER_DEFAULTS[info.field_name or ""]
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("action", mode="before")
    @classmethod
    def _upper_action(cls, v: Any) -> Any:
        return v.strip().upper() if isinstance(v, str) else v

    @field_validator("symbol")
    @classmethod
    def _symbol_grammar(cls, v: str) -> str:
        err = symbol_error(v)
        if err:
            raise ValueError(err)
        return v

    @field_validator("quantity", "price", "target_weight", *_NUMBER_RANGES.keys() - {"quantity", "price",
                     "target_weight"}, mode="before")  # fmt: skip
    @classmethod
    def _json_number(cls, v: Any, info: ValidationInfo) -> Any:
        """A JSON number in range: not true (1), not text ('5', '١'), not 1e300 (pydantic alone takes all)."""
        if v is None:
            return v
        low, high, low_open = _NUMBER_RANGES[info.field_name or ""]
        err = number_error(v, low, high, low_open=low_open)
        if err:
            raise ValueError(err)
        return v

    @field_validator("timestamp", mode="before")
    @classmethod
    def _timestamp_text(cls, v: Any) -> Any:
        if v is not None and not isinstance(v, str | datetime):
            raise ValueError(f"expected an ISO-8601 timestamp, got {shown(v)}")
        return v

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        err = timestamp_error(v)
        if err:
            raise ValueError(err)
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)

    @field_validator("limit_price", "stop_price", "trail_percent")
    @classmethod
    def _order_price(cls, v: float | None, info: ValidationInfo) -> float | None:
        """Each order type's own prices: present when it needs them, absent otherwise (a trail_percent on an entry
        is its trailing stop-loss leg)."""
        kind = info.data.get("order_type")
        if kind is None:  # the order type itself was invalid: that is the error to report
            return v
        needed = kind in _NEEDS[info.field_name or ""]
        if needed and v is None:
            raise ValueError(f"missing: a {kind} order needs it")
        if not needed and v is not None and info.field_name != "trail_percent":
            raise ValueError(f"not used by a {kind} order")
        if info.field_name == "stop_price" and kind == "stop_limit" and v is not None:
            limit = info.data.get("limit_price")
            buy = info.data.get("action") == "BUY"
            if limit is not None and (limit < v if buy else limit > v):
                raise ValueError(f"a stop_limit {'buy' if buy else 'sell'}'s limit_price ({limit:g}) must be "
                                 f"{'at or above' if buy else 'at or below'} its stop_price ({v:g})")
        return v

    @field_validator("limit_price", "stop_price", "take_profit", "stop_loss")
    @classmethod
    def _on_grid(cls, v: float | None) -> float | None:
        """An order price on the grid orders take (nb.tick): the backtest does not trade a price the broker
        refuses."""
        from marketboss.signals.kernels import ticks

        if v is not None and ticks(np.array([v]))[0] != v:
            raise ValueError(f"{v!r} is finer than the price grid orders take (cents from $1, hundredths of a "
                             "cent below; Alpaca refuses it): round it")  # fmt: skip
        return v

    @field_validator("take_profit", "stop_loss")
    @classmethod
    def _bracket(cls, v: float | None, info: ValidationInfo) -> float | None:
        """A bracket's legs on the right sides: a buy's take-profit above, its stop-loss below its reference
        price (the limit, the stop, else the signal's price), and its stop-loss below its take-profit; a sell's
        mirrored."""
        if v is None:
            return v
        d = info.data
        if d.get("order_type") == "trailing_stop":
            raise ValueError("a trailing_stop order takes no bracket")
        if info.field_name == "stop_loss" and d.get("trail_percent") is not None:
            raise ValueError("give one stop: stop_loss or trail_percent")
        if info.field_name == "take_profit" and d.get("trail_percent") is not None:
            raise ValueError(TRAIL_ALONE)
        buy = d.get("action") == "BUY"
        above = (info.field_name == "take_profit") == buy  # where the leg must lie from the reference
        ref_name = next((f for f in ("limit_price", "stop_price", "price") if d.get(f) is not None), None)
        ref = d.get(ref_name) if ref_name else None
        if ref is not None and (v <= ref if above else v >= ref):
            raise ValueError(f"a {'buy' if buy else 'sell'}'s {info.field_name} ({v:g}) must be "
                             f"{'above' if above else 'below'} its {ref_name} ({ref:g})")
        tp = d.get("take_profit")
        if info.field_name == "stop_loss" and tp is not None and (v >= tp if buy else v <= tp):
            raise ValueError(f"a {'buy' if buy else 'sell'}'s stop_loss ({v:g}) must be "
                             f"{'below' if buy else 'above'} its take_profit ({tp:g})")
        return v

    @field_validator("quantity", "target_weight", *ORDER_FIELDS)
    @classmethod
    def _nothing_to_trade(cls, v: Any, info: ValidationInfo) -> Any:
        """A cancel trades nothing: no size, no order field (each default is its absence)."""
        if info.data.get("action") == "CANCEL" and v not in (None, ORDER_DEFAULTS.get(info.field_name or "")):
            raise ValueError(f"a CANCEL trades nothing: no {info.field_name}")
        return v

    @field_validator("cancels")
    @classmethod
    def _cancels_an_order(cls, v: str | None, info: ValidationInfo) -> str | None:
        action = info.data.get("action")
        if action == "CANCEL" and v is None:
            raise ValueError("missing: a CANCEL names the signal id of the order it cancels")
        if action in ("BUY", "SELL") and v is not None:
            raise ValueError("only a CANCEL cancels: a BUY or SELL has no cancels field")
        return v

    @model_validator(mode="after")
    def _one_size(self) -> Signal:
        if self.action == "CANCEL":
            return self
        if (self.quantity is None) == (self.target_weight is None):
            raise ValueError("give exactly one of quantity (shares) or target_weight (fraction of equity)")
        return self


# ------------------------------------------------------------------------------------------------ ids


def canonical_params(params: Mapping[str, Any]) -> str:
    """Parameters as sorted, compact JSON: equal parameters give equal text, hence equal ids."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


def id_key(strategy: str, params_json: str, symbol: str) -> int:
    """The per-(strategy, parameters, symbol) half of an id: 8 bytes of sha256."""
    digest = hashlib.sha256(f"{strategy}\x1f{params_json}\x1f{symbol}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def signal_ids(keys: np.ndarray, ts_us: np.ndarray, action_codes: np.ndarray) -> pl.Series:
    """Ids for many signals at once (keys from id_key, timestamps in epoch microseconds): the hashing and
    the text in one compiled pass (no Python object per id)."""
    from marketboss.signals.kernels import id_text  # compiled ahead of time, else numba: see marketboss.aot

    k, t, a = np.broadcast_arrays(np.asarray(keys, dtype=np.uint64), np.asarray(ts_us, dtype=np.int64),
                                  np.asarray(action_codes, dtype=np.int64))
    text = np.empty((k.shape[0], len(ID_PREFIX) + 16), dtype=np.uint8)
    id_text(np.ascontiguousarray(k), np.ascontiguousarray(t), np.ascontiguousarray(a), _PREFIX, text)
    return pl.Series("id", text.view(f"S{text.shape[1]}").ravel()).cast(pl.String)


def epoch_us(ts: datetime) -> int:
    ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts
    delta = ts - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def signal_id(strategy: str, params: Mapping[str, Any] | str, symbol: str, timestamp: datetime, action: str) -> str:
    """The id of one signal; the same function as the vectorised path, applied to one element."""
    params_json = params if isinstance(params, str) else canonical_params(params)
    key = np.array([id_key(strategy, params_json, symbol)], dtype=np.uint64)
    ts = np.array([epoch_us(timestamp)], dtype=np.int64)
    return str(signal_ids(key, ts, np.array([ACTION_CODES[action]]))[0])


# ------------------------------------------------------------------------------------------------ reading


def is_plain(sig: Signal) -> bool:
    """A market order for the day without exits: what every signal was before the order fields."""
    return all(getattr(sig, f) in (None, ORDER_DEFAULTS.get(f)) for f in ORDER_FIELDS)


def _first_error(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or ""
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "missing":
        msg = "missing"
    return field, msg


_PLACEHOLDER = "pending"


def parse_signal(obj: Mapping[str, Any], path: str | Path, line: int) -> Signal:
    """Validate one raw record (id may be missing: it is derived by the caller)."""
    raw = dict(obj)
    raw.pop(LINE, None)
    if raw.get("id") is None:
        raw["id"] = _PLACEHOLDER
    if isinstance(raw.get("timestamp"), str) and raw["timestamp"].strip() == "":
        raw["timestamp"] = None
    try:
        return Signal.model_validate({**raw, "line": line})
    except ValidationError as exc:
        field, msg = _first_error(exc)
        raise InputError(path, msg, line=line, field=field or None) from None


def read_signals(
    path: str | Path,
    *,
    skip_invalid: bool = False,
    rejects_path: str | Path | None = None,
) -> list[Signal]:
    """Validated signals in file order, each with its id (derived for the guide's minimal form).

    A bad line raises an InputError naming file, line and field; with skip_invalid it is dropped and recorded
    with its reason in `rejects_path` (default `<file>.rejected.jsonl`). Duplicate ids are always an error.
    """
    p = Path(path)
    out, rejects = _validated(read_jsonl_records(p, tolerate_torn_tail=False), p, skip_invalid)
    if rejects:
        raw = p.read_bytes().split(b"\n")
        write_jsonl(
            rejects_path or default_rejects_path(p),
            (
                {"file": str(p), "line": r.line, "field": r.field, "reason": r.reason,
                 "raw": raw[r.line - 1].decode("utf-8", "replace")}
                for r in rejects
            ),
        )
    return out


def _validated(records: Iterable[Mapping[str, Any]], path: str | Path, skip_invalid: bool
               ) -> tuple[list[Signal], list[Rejected]]:  # fmt: skip
    """Records (each with its LINE) as signals, each with its id; a bad one raises (or, with skip_invalid, is
    left out, with its reason)."""
    out: list[Signal] = []
    rejects: list[Rejected] = []
    seen: dict[tuple[Any, ...], int] = {}
    ids: dict[str, int] = {}
    by_id: dict[str, Signal] = {}
    for obj in records:
        line = int(obj[LINE])
        try:
            sig = parse_signal(obj, path, line)
            if sig.id == _PLACEHOLDER:
                sig = sig.model_copy(update={"id": _derived_id(sig, seen)})
            if sig.id in ids:
                raise InputError(path, f"duplicate id '{sig.id}' (first on line {ids[sig.id]})", line=line, field="id")
            if sig.cancels is not None:
                _check_cancel(path, sig, by_id.get(sig.cancels))
        except InputError as exc:
            if not skip_invalid:
                raise
            rejects.append(Rejected(line, exc.field or "", exc.reason))
            continue
        ids[sig.id] = line
        by_id[sig.id] = sig
        out.append(sig)
    return out, rejects


def checked_frame(frame: pl.DataFrame, source: str = "signals frame") -> pl.DataFrame:
    """A signals frame as the backtest takes it. One a strategy or read_signals_frame made (its columns of the
    contract's types) is taken as it is; any other (a user's own: no ids, text timestamps, a column missing) goes
    through Signal's rules row by row, as a file's lines do, the first bad row an error naming it (its row
    number, from 1) and its field."""
    schema = frame.schema
    if all(schema.get(f) == _FRAME_SCHEMA[f] for f in SIGNAL_FIELDS) and all(
            schema.get(f, _FRAME_SCHEMA[f]) == _FRAME_SCHEMA[f] for f in (*ORDER_FIELDS, CANCELS, LINE)):
        return frame
    records = [{**r, LINE: i} for i, r in enumerate(frame.to_dicts(), start=1)]
    return signals_to_frame(_validated(records, source, False)[0])


def _check_cancel(path: str | Path, sig: Signal, target: Signal | None) -> None:
    """A cancel names an order of an earlier line, of its symbol, decided no later than the cancel."""
    why = ("cancels no order on an earlier line" if target is None or target.action == "CANCEL"
           else f"cancels an order of {target.symbol}, not {sig.symbol}" if target.symbol != sig.symbol
           else "is before the order it cancels" if sig.timestamp < target.timestamp else None)  # fmt: skip
    if why:
        raise InputError(path, f"CANCEL {why} ('{sig.cancels}')", line=sig.line, field=CANCELS)


def _derived_id(sig: Signal, seen: dict[tuple[Any, ...], int]) -> str:
    """Minimal-form lines: id from content, plus the occurrence number so identical lines differ."""
    orders = {} if is_plain(sig) else {f: getattr(sig, f) for f in ORDER_FIELDS}
    if sig.cancels is not None:
        orders[CANCELS] = sig.cancels
    content = (sig.strategy, sig.symbol, sig.timestamp, sig.action, sig.quantity, sig.target_weight,
               *orders.values())  # fmt: skip
    n = seen.get(content, 0)
    seen[content] = n + 1
    params = {"quantity": sig.quantity, "target_weight": sig.target_weight, "occurrence": n, **orders}
    return signal_id(sig.strategy or "", params, sig.symbol, sig.timestamp, sig.action)


def signals_to_frame(signals: Sequence[Signal]) -> pl.DataFrame:
    """Columnar signals (SIGNAL_SCHEMA, then ORDER_SCHEMA when any signal is not plain, plus `_line`), as the
    engine consumes them."""
    fields: tuple[str, ...] = SIGNAL_FIELDS if all(is_plain(s) for s in signals) else (*SIGNAL_FIELDS, *ORDER_FIELDS)
    if any(s.cancels is not None for s in signals):
        fields = (*fields, CANCELS)
    cols: dict[str, list[Any]] = {f: [] for f in (*fields, LINE)}
    for s in signals:
        for f in fields:
            cols[f].append(getattr(s, f))
        cols[LINE].append(s.line)
    return pl.DataFrame(cols, schema={f: _FRAME_SCHEMA[f] for f in (*fields, LINE)})


_FRAME_SCHEMA = {**SIGNAL_SCHEMA, **ORDER_SCHEMA, CANCELS: pl.String(), LINE: pl.Int64()}


def read_signals_frame(
    path: str | Path, *, skip_invalid: bool = False, rejects_path: str | Path | None = None, keep_copy: bool = False,
    on_torn: Callable[[int], None] | None = None,
) -> pl.DataFrame:
    """read_signals as a frame. Files that are plainly valid take a vectorised path (100,000 signals in a
    fraction of a second); anything else, or any doubt, goes through read_signals, which names the bad line.
    `keep_copy`: keep a validated copy of the file (data/cache.py), and take the copy when the file was read
    so before: no parsing, no validation (for a file read again and again: the backtest command's signals;
    not for a log that grows, whose every version would push a bars file's copy out of the cache). `on_torn`: a
    log being appended to (the live loop's), whose torn last line, a write a crash cut short, is left out and
    its number told (else it is an error, as any bad line of a file of signals to trade)."""
    if skip_invalid:
        return signals_to_frame(read_signals(path, skip_invalid=True, rejects_path=rejects_path))
    p = Path(path)
    key = cache.content_key(p, "signals") if keep_copy and p.is_file() else None
    if key is not None and (copy := cache.load(key, mapped=False)) is not None:
        return copy
    raw = _ndjson_frame(p)
    if raw is None:
        raw = _records_frame(read_jsonl_records(p, tolerate_torn_tail=on_torn is not None, on_torn=on_torn))
    frame = None if raw is None else _valid_frame(raw)
    if frame is None:
        frame = signals_to_frame(read_signals(p))
    if key is not None:
        store_copy(key, frame)
    return frame


_STR, _NUM = frozenset({str}), frozenset({int, float})
#: The JSON types the vectorised path accepts per field (bool is not a number here; pydantic decides those).
_FAST_TYPES = {
    "id": _STR, "timestamp": _STR, "symbol": _STR, "action": _STR, "strategy": _STR | {type(None)},
    "quantity": _NUM | {type(None)}, "price": _NUM | {type(None)}, "target_weight": _NUM | {type(None)},
    "order_type": _STR | {type(None)}, "time_in_force": _STR | {type(None)},
    **{f: _NUM | {type(None)} for f in ORDER_FIELDS[2:]},
    CANCELS: frozenset({type(None)}),  # a cancel: the per-record path (it checks what it cancels)
}  # fmt: skip
_ID_RE = r"^[A-Za-z0-9._:-]{1,128}$"
_TS_RE = r"^\d{4}-\d\d-\d\dT([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,9})?Z$"  # chrono alone is more lenient


#: A signals file's fields as read before validation: the timestamp still text.
_RAW_SCHEMA = {
    f: (pl.String if f in ("id", "timestamp") else _FRAME_SCHEMA[f]) for f in (*SIGNAL_FIELDS, *ORDER_FIELDS)
}
_TEXT_FIELDS = tuple(f for f, t in _RAW_SCHEMA.items() if t == pl.String)


def _ndjson_frame(path: Path) -> pl.DataFrame | None:
    """The raw frame by polars' reader, when the file's text shows that polars hid nothing: every line one
    object with each signal field and the order fields it sets (a key more, repeated or unknown, is a colon
    more), text only where text belongs (a number read into a text field has no quotes: the quotes fall
    short), no escapes, no blank lines. Anything else: None, and the per-record reader decides."""
    scan = check_input_file(path)
    if scan.backslash or scan.lines == 0:
        return None
    try:
        df = pl.read_ndjson(path, schema=_RAW_SCHEMA)
    except Exception:  # a type polars will not read as the schema's (a boolean, a string number): per record
        return None
    if df.height != scan.lines:
        return None
    n = df.height
    keys, texts, inner = df.select(
        pl.sum_horizontal(pl.lit(len(SIGNAL_FIELDS) * n), *(pl.col(f).count() for f in ORDER_FIELDS)).alias("k"),
        pl.sum_horizontal(pl.col(f).count() for f in _TEXT_FIELDS).alias("t"),
        pl.sum_horizontal(pl.col(f).str.count_matches(":").sum() for f in _TEXT_FIELDS).alias("c"),
    ).row(0)
    if scan.colons != keys + inner or scan.quotes != 2 * (keys + texts):
        return None
    return df.with_row_index(LINE, offset=1).with_columns(pl.col(LINE).cast(pl.Int64))


def _records_frame(records: list[dict[str, Any]]) -> pl.DataFrame | None:
    """The raw frame of parsed records, when each field holds a JSON type the contract allows."""
    for field, allowed in _FAST_TYPES.items():
        if not {type(r.get(field)) for r in records} <= allowed:
            return None
    return pl.DataFrame(records, schema={**_RAW_SCHEMA, LINE: pl.Int64})


def _valid_frame(df: pl.DataFrame) -> pl.DataFrame | None:
    """The frame signals_to_frame would give, when every row passes Signal's rules in their plain form
    (ids present, canonical UTC timestamps, upper-case actions and symbols); None when any row needs the
    per-record path: normalising, id derivation or an error message."""
    plain = df.select(pl.all_horizontal(pl.col(f).is_null().all() for f in ORDER_FIELDS)).item()
    fields = SIGNAL_FIELDS if plain else (*SIGNAL_FIELDS, *ORDER_FIELDS)
    ts = pl.col("timestamp").str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", time_unit="us", time_zone="UTC", strict=False)
    sym = pl.col("symbol")
    ok = df.select(
        # required fields present: polars' all() passes nulls, and an unknown key can stand in for a missing one
        # in _ndjson_frame's colon and quote counts ({"orders": {}} in place of "id")
        pl.all_horizontal(pl.col(f).is_not_null().all() for f in ("id", "timestamp", "symbol", "action"))
        & pl.col("id").str.contains(_ID_RE).all()
        & pl.col("id").is_unique().all()
        & (pl.col("timestamp").str.contains(_TS_RE) & ts.is_not_null()).all()
        & pl.col("action").is_in(["BUY", "SELL"]).all()
        & (sym.str.len_bytes().is_between(1, MAX_SYMBOL_LENGTH) & sym.str.contains(SYMBOL_PATTERN)).all()
        & ts.is_between(MIN_TIMESTAMP, MAX_TIMESTAMP, closed="left").all()
    ).item()
    if not ok or not valid_orders(df).all():
        return None
    if not plain:
        df = df.with_columns(pl.col("order_type").fill_null("market"), pl.col("time_in_force").fill_null("day"))
        plain = df.select(pl.all_horizontal(pl.col(f).is_null().all() for f in ORDER_FIELDS[2:])
                          & (pl.col("order_type") == "market").all() & (pl.col("time_in_force") == "day").all()).item()
    return df.with_columns(ts.alias("timestamp")).select(*(SIGNAL_FIELDS if plain else fields), LINE)


@functools.cache
def _rule_tables() -> tuple[np.ndarray, np.ndarray]:
    """rules_pass's ranges (per RULE_FIELDS column: low, high, low open; as Signal's _json_number checks them) and
    needs (per order type: does it need a limit price, a stop price, a trail percent; Signal's _order_price)."""
    from marketboss.signals.kernels import RULE_FIELDS

    ranges = np.array([_NUMBER_RANGES[f] for f in RULE_FIELDS], dtype=np.float64)
    needs = np.array([[k in _NEEDS[f] for f in ("limit_price", "stop_price", "trail_percent")]
                      for k in ORDER_TYPE_NAMES])  # fmt: skip
    return ranges, needs


def rules_pass(buy: np.ndarray, kind: np.ndarray, gtc: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per BUY or SELL, whether its size and order fields pass Signal's rules: the check of many rows at once (a
    frame read from a file, an event run's orders), a compiled kernel, where the model checks one. kind:
    ORDER_TYPE_NAMES' index (-1: not one), gtc: 1 gtc, 0 day, -1 neither; values: the columns of
    signals.kernels.RULE_FIELDS, NaN where absent (a NaN given as a value: an infinity, out of every range)."""
    from marketboss.signals.kernels import rules_pass as kernel

    ranges, needs = _rule_tables()
    return kernel(np.ascontiguousarray(buy, dtype=np.bool_), np.ascontiguousarray(kind, dtype=np.int8),
                  np.ascontiguousarray(gtc, dtype=np.int8), np.ascontiguousarray(values, dtype=np.float64), ranges,
                  needs)  # fmt: skip


def valid_orders(frame: pl.DataFrame) -> np.ndarray:
    """Per row of a signals frame of BUYs and SELLs (the order fields optional: absent, a plain market order for
    the day), whether its size and order fields pass Signal's rules (rules_pass): a frame built in code or read
    from a file is checked without a model per row."""
    from marketboss.signals.kernels import RULE_FIELDS

    n, cols = frame.height, frame.columns

    def code(f: str, names: Sequence[str]) -> np.ndarray:
        if f not in cols:
            return np.zeros(n, dtype=np.int8)
        col = frame[f].fill_null(ORDER_DEFAULTS[f])
        return col.replace_strict(names, range(len(names)), default=-1, return_dtype=pl.Int8).to_numpy()

    def num(f: str) -> np.ndarray:
        return frame[f].cast(pl.Float64).fill_nan(np.inf).to_numpy() if f in cols else np.full(n, np.nan)

    buy = (frame["action"] == "BUY").fill_null(False).to_numpy()
    values = np.column_stack([num(f) for f in RULE_FIELDS]) if n else np.empty((0, len(RULE_FIELDS)))
    return rules_pass(buy, code("order_type", ORDER_TYPE_NAMES), code("time_in_force", ("day", "gtc")), values)


class OrderArrays(NamedTuple):
    """A frame's order fields as the backtest kernels read them, per row: the type (index in ORDER_TYPE_NAMES:
    marketboss.orders' codes), limit and stop prices, trail percent, gtc (else day), take-profit and stop-loss
    (NaN where absent)."""

    kind: np.ndarray
    limit: np.ndarray
    stop: np.ndarray
    trail: np.ndarray
    gtc: np.ndarray
    take_profit: np.ndarray
    stop_loss: np.ndarray


@dataclass(frozen=True)
class SignalRows:
    """A signals frame (marketboss.signals' schema, in time order) and, per row, what a backtest reads from
    it: the signal time (epoch microseconds), the market's index of the decision bar and of the symbol, the
    side, the size (shares, NaN for a target-weight signal, or target weight), and the order fields (None:
    plain market orders). A strategy has these in hand; from a signals file the backtest derives them (looking
    up bars and symbols)."""

    frame: pl.DataFrame
    time: np.ndarray
    bar: np.ndarray
    symbol: np.ndarray
    buy: np.ndarray
    quantity: np.ndarray
    weight: np.ndarray
    orders: OrderArrays | None = None


def order_arrays(frame: pl.DataFrame) -> OrderArrays | None:
    """The order fields of a signals frame (None when it has none: every signal a plain market order)."""
    if "order_type" not in frame.columns:
        return None
    kinds = frame["order_type"].fill_null("market").replace_strict(
        ORDER_TYPE_NAMES, range(len(ORDER_TYPE_NAMES)), return_dtype=pl.Int8
    )

    def num(f: str) -> np.ndarray:
        return frame[f].cast(pl.Float64).fill_null(np.nan).to_numpy()

    return OrderArrays(kinds.to_numpy(), num("limit_price"), num("stop_price"), num("trail_percent"),
                       (frame["time_in_force"] == "gtc").fill_null(False).to_numpy(), num("take_profit"),
                       num("stop_loss"))  # fmt: skip


# ------------------------------------------------------------------------------------------------ writing


def write_signals(path: str | Path, signals: pl.DataFrame | Sequence[Signal]) -> int:
    """Atomically write signals as JSON Lines in the contract's field order; refuses duplicate ids."""
    df = signals if isinstance(signals, pl.DataFrame) else signals_to_frame(signals)
    dup = df.filter(pl.col("id").is_duplicated())
    if dup.height:
        raise InputError(path, f"refusing to write duplicate signal id '{dup['id'][0]}'", field="id")
    rows = _file_rows(df)
    with atomic_open(path) as fh:
        for part in rows.iter_slices(100_000):  # the text of a part at a time in memory
            fh.write(_ndjson(part))
    return rows.height


def signal_records(df: pl.DataFrame) -> list[dict[str, Any]]:
    """Signals as the objects a signals file holds, line by line (for a log appended as signals come)."""
    return [json.loads(line) for line in _ndjson(_file_rows(df)).splitlines()]


def _file_rows(df: pl.DataFrame) -> pl.DataFrame:
    return df.select(*SIGNAL_FIELDS, *(f for f in (*ORDER_FIELDS, CANCELS) if f in df.columns)).with_columns(
        pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ").str.replace(r"\.0+Z$", "Z")
    )


def _ndjson(rows: pl.DataFrame) -> bytes:
    """The rows as a signals file holds them, one a line, encoded by polars (0.08 s for the 140,000 orders of a
    500-symbol event backtest, 0.5 s row by row): each row with the contract's fields and those of its shape (the
    optional order fields that say more than a market order for the day, so that old files keep their form, a
    cancel's id; a whole quantity written as an integer)."""
    optional = [f for f in (*ORDER_FIELDS, CANCELS) if f in rows.columns]
    q = pl.col("quantity")
    flags = [q.is_finite() & (q == q.round()),
             *((pl.col(f).is_not_null() & (pl.col(f) != ORDER_DEFAULTS[f] if f in ORDER_DEFAULTS else True))
               for f in optional)]  # fmt: skip
    shape = pl.sum_horizontal(f.fill_null(False).cast(pl.Int64) * (1 << i) for i, f in enumerate(flags))

    def fields(code: int) -> list[Any]:
        size = q.cast(pl.Int64, strict=False) if code & 1 else q
        return [*SIGNAL_FIELDS[:4], size, *SIGNAL_FIELDS[5:], *(f for i, f in enumerate(optional, 1) if code >> i & 1)]

    codes = rows.select(shape.unique()).to_series().to_list()
    lines = pl.coalesce(pl.when(shape == c).then(pl.struct(fields(c)).struct.json_encode()) for c in codes)
    return (rows.select(lines.str.join("\n")).item() + "\n").encode() if rows.height else b""


__all__ = [
    "ACTION_CODES",
    "CANCELS",
    "ORDER_DEFAULTS",
    "ORDER_FIELDS",
    "ORDER_SCHEMA",
    "ORDER_TYPE_NAMES",
    "SIGNAL_FIELDS",
    "SIGNAL_SCHEMA",
    "OrderArrays",
    "Signal",
    "canonical_params",
    "epoch_us",
    "id_key",
    "is_plain",
    "order_arrays",
    "parse_signal",
    "read_signals",
    "read_signals_frame",
    "signal_id",
    "signal_ids",
    "signals_to_frame",
    "valid_orders",
    "write_signals",
]
