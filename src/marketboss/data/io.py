"""Bars and JSON Lines on disk: format chosen by extension, atomic writes, fsynced append-only logs.

Reading takes a fast path (polars' native readers); only when that fails or a rule is broken does it
re-read the file line by line, so that the error names the exact line and field.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import io
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
import polars as pl

from marketboss.data.rules import (
    DuplicateKey,
    TextScan,
    check_csv_header,
    check_input_file,
    loads,
    number_from_text,
    shown,
)
from marketboss.data.schema import (
    BAR_COLUMNS,
    LINE,
    PRICE_COLUMNS,
    TIMESTAMP_DTYPE,
    finalize,
    parse_timestamps,
    validation_errors,
)
from marketboss.errors import InputError

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}
_RAW_SCHEMA = {
    "timestamp": pl.String,
    "symbol": pl.String,
    "open": pl.Float64,
    "high": pl.Float64,
    "low": pl.Float64,
    "close": pl.Float64,
    "volume": pl.Float64,
}


def file_format(path: str | Path) -> str:
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise InputError(path, f"unknown file type '{ext}': use one of {', '.join(sorted(FORMATS))}")
    return FORMATS[ext]


# ----------------------------------------------------------------------------------------------- writing


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Write to a temporary file beside `path`, fsync, then rename: readers see the old or the new file.

    The temporary name carries the writer's pid, so the next write beside it removes what a killed writer
    left (remove_stale_temps)."""
    target = Path(path)
    if target.is_dir():  # named now, not as the temporary file os.replace could not rename onto it
        raise IsADirectoryError(21, "Is a directory", str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; a written file gets the usual permissions
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Build a directory in a temporary sibling, then swap it into place whole (Linux renameat2 EXCHANGE):
    at every instant `path` is the complete old directory or the complete new one, even under kill -9."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise InputError(target, "exists and is not a directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmpdir", dir=target.parent))
    try:
        yield stage
        os.chmod(stage, 0o777 & ~_UMASK)
        _fsync_dir(stage)
        if target.exists():
            _exchange(stage, target)  # the stage now holds the old directory
        else:
            os.rename(stage, target)
        _fsync_dir(target.parent)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> None:
    """Swap two paths atomically; where the kernel cannot, two renames (a moment with `b` missing)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
            return
    except (AttributeError, OSError):
        pass
    old = Path(tempfile.mkdtemp(prefix=f".{b.name}.{os.getpid()}.", suffix=".tmpdir", dir=b.parent))
    os.rename(b, old / "old")
    os.rename(a, b)
    os.rename(old, a)


_STALE_SCANNED: set[Path] = set()


def remove_stale_temps(target: Path) -> None:
    """Delete the temporary siblings of `target` whose writer is dead (killed mid-write); once per directory
    and process, so a writer of many files pays for one scan."""
    parent = target.parent.resolve()
    key = parent / target.name
    if key in _STALE_SCANNED:
        return
    _STALE_SCANNED.add(key)
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(\d+)\.[A-Za-z0-9_]+\.(tmp|tmpdir)$")
    try:
        entries = list(parent.iterdir())
    except OSError:
        return
    for entry in entries:
        m = pattern.match(entry.name)
        if m is None or _alive(int(m[1])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path) as fh:
        fh.write(data)


def _default(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return format_ts(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# orjson writes datetimes itself (default= never sees them): UTC with Z, naive taken as UTC, as the contract says.
_DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def dumps(record: Mapping[str, Any]) -> bytes:
    return orjson.dumps(record, default=_default, option=_DUMPS_OPTIONS)


def format_ts(ts: datetime) -> str:
    """UTC ISO-8601 ending in Z, the contract's timestamp form."""
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    text = ts.isoformat(timespec="microseconds" if ts.microsecond else "seconds")
    return text + "Z"


def write_jsonl(path: str | Path, records: Iterable[Mapping[str, Any]]) -> int:
    """Atomically replace `path` with one JSON object a line."""
    n = 0
    with atomic_open(path) as fh:
        for rec in records:
            fh.write(dumps(rec) + b"\n")
            n += 1
    return n


class JsonlAppender:
    """An append-only JSON Lines log: each record is written whole, flushed and fsynced before returning."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_torn_tail()
        self._fh = open(self.path, "ab")  # noqa: SIM115 - closed in close()

    def _repair_torn_tail(self) -> None:
        """A crash mid-write can leave a partial last line; drop it so the log stays valid JSON Lines."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as fh:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) == b"\n":
                return
            fh.seek(0)
            keep = fh.read().rfind(b"\n") + 1
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())

    def append(self, record: Mapping[str, Any]) -> None:
        self._fh.write(dumps(record) + b"\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_jsonl_records(
    path: str | Path, *, tolerate_torn_tail: bool = True, on_torn: Callable[[int], None] | None = None
) -> list[dict[str, Any]]:
    """Objects of a JSON Lines file; a bad line is an InputError naming it (a torn last line, a write a crash cut
    short, is skipped: `on_torn` is told its line number, for a reader that says so)."""
    p = Path(path)
    check_input_file(p)
    lines = p.read_bytes().split(b"\n")
    out: list[dict[str, Any]] = []
    last = len(lines) - 1
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            obj = loads(raw)
        except orjson.JSONDecodeError as exc:
            if tolerate_torn_tail and i == last:
                if on_torn is not None:
                    on_torn(i + 1)
                break
            raise InputError(p, f"invalid JSON ({exc.args[0].split(':')[0]})", line=i + 1) from None
        except DuplicateKey as exc:
            raise InputError(p, str(exc), line=i + 1, field=exc.key[:40]) from None
        if not isinstance(obj, dict):
            raise InputError(p, "expected a JSON object", line=i + 1)
        obj[LINE] = i + 1
        out.append(obj)
    return out


def write_bars(df: pl.DataFrame, path: str | Path) -> None:
    """Write bars atomically in the format the extension names."""
    fmt = file_format(path)
    out = df.select(BAR_COLUMNS)
    if fmt == "parquet":
        with atomic_open(path) as fh:
            out.write_parquet(fh)
        return
    text = out.with_columns(pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    buf = io.BytesIO()
    if fmt == "csv":
        text.write_csv(buf)
    else:
        text.write_ndjson(buf)
    atomic_write_bytes(path, buf.getvalue())


# ----------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Rejected:
    line: int
    field: str
    reason: str


def read_bars(
    path: str | Path,
    *,
    skip_invalid: bool = False,
    rejects_path: str | Path | None = None,
) -> pl.DataFrame:
    """Validated bars sorted by time then symbol (a file read before comes from its validated copy: cache.py).

    With `skip_invalid`, bad rows are dropped and written with their reasons to `rejects_path`
    (default: `<file>.rejected.jsonl`); otherwise the first bad row raises an InputError.
    """
    from marketboss.data import cache

    p = Path(path)
    fmt = file_format(p)
    scan = check_input_file(p)
    key = None if skip_invalid else cache.content_key(p, fmt)
    if key is not None and (copy := cache.load(key)) is not None:
        return copy
    parsed, parse_rejects = _fast_parse(p, fmt, scan)
    if parsed is None:
        parsed, parse_rejects = _slow_parse(p, fmt)
    errors = validation_errors(parsed)
    if len(errors) and fmt != "parquet" and not parse_rejects and not _lines_exact(p, fmt, parsed):
        parsed, parse_rejects = _slow_parse(p, fmt)
        errors = validation_errors(parsed)
    bars = accept(parsed, parse_rejects + to_rejects(errors), p, skip_invalid, rejects_path, by_row=fmt == "parquet")
    if key is not None:
        store_copy(key, bars)
    return bars


def checked_bars(frame: Any, source: str = "bars frame") -> pl.DataFrame:
    """Bars given as a frame (a notebook's; a pandas one is converted) held to read_bars' rules but the order
    (Market sorts them), and sorted as it sorts them: the first bad row is an InputError naming it (rows counted
    from 1) and its field, as a file's would be (a NaN price, high under low: before, the backtest ran and its
    equity was NaN)."""
    if not isinstance(frame, pl.DataFrame):
        if type(frame).__module__.split(".")[0] != "pandas":
            raise InputError(source, f"a polars or pandas frame of bars, not a {type(frame).__name__}")
        frame = pl.from_pandas(frame, include_index=frame.index.name is not None)
    missing = [c for c in BAR_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(source, f"no column {', '.join(missing)}: bars have {', '.join(BAR_COLUMNS)} (columns "
                                 f"given: {', '.join(frame.columns)})", field=missing[0])  # fmt: skip
    try:
        parsed = _normalise(_with_lines(frame, 1))
    except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
        raise InputError(source, f"columns of the wrong type: {' '.join(str(exc).split())[:200]}") from None
    errors = validation_errors(parsed, order_by="timestamp")  # in any order: a frame is sorted, a file is not
    return accept(parsed, to_rejects(errors), Path(source), False, None, by_row=True)


def store_copy(key: str, frame: pl.DataFrame) -> None:
    """Store a validated frame under `key` in the cache (cache.py). Best effort: a full disk or a read-only
    cache directory costs the next command time, nothing else."""
    from marketboss.data import cache

    path = cache.entry(key)
    if path is None:
        return
    try:
        with atomic_open(path) as fh:
            frame.write_ipc(fh, compression="uncompressed")
        cache.evict()
    except (OSError, pl.exceptions.PolarsError):
        return


def to_rejects(errors: pl.DataFrame) -> list[Rejected]:
    return [Rejected(*r) for r in errors.iter_rows()]


def accept(
    parsed: pl.DataFrame,
    rejects: list[Rejected],
    path: Path,
    skip_invalid: bool,
    rejects_path: str | Path | None,
    *,
    by_row: bool = False,
) -> pl.DataFrame:
    """Raise on the first bad row, or drop the bad rows and record them with their reasons."""
    if rejects and not skip_invalid:
        first = min(rejects, key=lambda r: r.line)
        if by_row:
            raise InputError(path, f"row {first.line}: {first.reason}", field=first.field)
        raise InputError(path, first.reason, line=first.line, field=first.field)
    if rejects:
        parsed = parsed.filter(~pl.col(LINE).is_in([r.line for r in rejects]))
        _write_rejects(path, rejects, rejects_path, by_row)
    return finalize(parsed)


def default_rejects_path(path: Path) -> Path:
    return path.with_name(path.name + ".rejected.jsonl")


def _write_rejects(path: Path, rejects: list[Rejected], rejects_path: str | Path | None, by_row: bool) -> None:
    raw_lines = [] if by_row else path.read_bytes().split(b"\n")

    def raw(line: int) -> str:
        return raw_lines[line - 1].decode("utf-8", "replace") if 0 < line <= len(raw_lines) else ""

    write_jsonl(
        rejects_path or default_rejects_path(path),
        (
            {
                "file": str(path),
                ("row" if by_row else "line"): r.line,
                "field": r.field,
                "reason": r.reason,
                "raw": raw(r.line),
            }
            for r in sorted(rejects, key=lambda r: r.line)
        ),
    )


def _with_lines(df: pl.DataFrame, first_line: int) -> pl.DataFrame:
    return df.with_row_index(LINE, offset=first_line).with_columns(pl.col(LINE).cast(pl.Int64))


def _normalise(df: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in BAR_COLUMNS if c not in df.columns]
    if missing:
        raise pl.exceptions.ColumnNotFoundError(", ".join(missing))
    return df.select(
        pl.col(LINE),
        _timestamps(df["timestamp"]).alias("timestamp"),
        pl.col("symbol").cast(pl.String),
        *[pl.col(c).cast(pl.Float64) for c in (*PRICE_COLUMNS, "volume")],
    )


def _timestamps(ts: pl.Series) -> pl.Series:
    if isinstance(ts.dtype, pl.Datetime):
        utc = ts.dt.convert_time_zone("UTC") if ts.dtype.time_zone else ts.dt.replace_time_zone("UTC")
        return utc.dt.cast_time_unit("us")
    text = ts.cast(pl.String)
    # The contract's own form first; the general (slower) parser only when something is left over.
    canonical = text.str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_unit="us", time_zone="UTC", strict=False)
    if canonical.null_count() == text.null_count():
        return canonical
    return text.to_frame().select(parse_timestamps(pl.col(text.name))).to_series()


def _fast_parse(path: Path, fmt: str, scan: TextScan) -> tuple[pl.DataFrame | None, list[Rejected]]:
    try:
        if fmt == "jsonl":
            df = pl.read_ndjson(path, schema=_RAW_SCHEMA, ignore_errors=False)
            if not _plain_json(scan, df):
                return None, []  # a repeated key or a boolean: the line-by-line reader says where
            return _normalise(_with_lines(df, 1)), []
        if fmt == "csv":
            check_csv_header(path)
            df = pl.read_csv(path, schema_overrides=_RAW_SCHEMA, infer_schema_length=0)
            return _normalise(_with_lines(df, 2)), []
        df = pl.read_parquet(path)
        missing = [c for c in BAR_COLUMNS if c not in df.columns]
        if missing:
            raise InputError(path, f"missing column(s) {', '.join(missing)}", field=missing[0])
        return _normalise(_with_lines(df, 1)), []
    except InputError:
        raise
    except Exception:
        if fmt == "parquet":
            raise InputError(path, "not a readable Parquet file of bars") from None
        return None, []


def _plain_json(scan: TextScan, raw: pl.DataFrame) -> bool:
    """No repeated key (polars keeps the first, orjson the last): every colon in the file is a key's or one
    inside the timestamp and symbol text polars read. A line with a key more has a colon more; one with a key
    fewer has a null, which validation refuses anyway. Escaped text (\\u003a) could hide a colon: line by line."""
    if scan.backslash:
        return False
    inside = raw.select(pl.sum_horizontal(pl.col("timestamp", "symbol").str.count_matches(":").sum()))
    return scan.colons == len(BAR_COLUMNS) * raw.height + (inside.item() or 0)


def _lines_exact(path: Path, fmt: str, parsed: pl.DataFrame) -> bool:
    """The fast path numbers rows, not lines: equal only when the file has no blank lines."""
    data = path.read_bytes()
    n_lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    header = 1 if fmt == "csv" else 0
    return n_lines == len(parsed) + header and b"\n\n" not in data and b"\r\n\r\n" not in data


_NUMERIC = (*PRICE_COLUMNS, "volume")


def _check_record(obj: Mapping[str, Any], line: int) -> Rejected | None:
    for field in BAR_COLUMNS:
        if field not in obj or obj[field] is None or obj[field] == "":
            return Rejected(line, field, "missing")
    for field in ("timestamp", "symbol"):
        if not isinstance(obj[field], str):
            return Rejected(line, field, f"expected a string, got {type(obj[field]).__name__}")
    for field in _NUMERIC:
        v = obj[field]
        if isinstance(v, bool) or not isinstance(v, int | float):
            return Rejected(line, field, f"expected a number, got {shown(v)}")
    return None


def _slow_parse(path: Path, fmt: str) -> tuple[pl.DataFrame, list[Rejected]]:
    """Line by line, keeping true line numbers; malformed lines become Rejected entries."""
    rejects: list[Rejected] = []
    cols: dict[str, list[Any]] = {c: [] for c in (LINE, *BAR_COLUMNS)}
    for line, obj, err in _iter_raw(path, fmt):
        if err is not None:
            rejects.append(Rejected(line, err[0], err[1]))
            continue
        assert obj is not None
        bad = _check_record(obj, line)
        if bad:
            rejects.append(bad)
            continue
        cols[LINE].append(line)
        for c in BAR_COLUMNS:
            cols[c].append(obj[c])
    df = pl.DataFrame(
        cols,
        schema={
            LINE: pl.Int64,
            **{c: (pl.String if c in ("timestamp", "symbol") else pl.Float64) for c in BAR_COLUMNS},
        },
        strict=False,
    )
    return _normalise(df), rejects


def _iter_raw(path: Path, fmt: str) -> Iterator[tuple[int, dict[str, Any] | None, tuple[str, str] | None]]:
    if fmt == "jsonl":
        for i, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
            if not raw.strip():
                continue
            try:
                obj = loads(raw)
            except orjson.JSONDecodeError as exc:
                yield i, None, ("", f"invalid JSON ({str(exc).split(':')[0]})")
                continue
            except DuplicateKey as exc:
                yield i, None, (exc.key[:40], str(exc))
                continue
            if not isinstance(obj, dict):
                yield i, None, ("", "expected a JSON object")
                continue
            yield i, obj, None
        return
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        check_csv_header(path)
        missing = [c for c in BAR_COLUMNS if c not in header]
        if missing:
            raise InputError(path, f"missing column(s) {', '.join(missing)}", line=1, field=missing[0])
        for row in reader:
            line = reader.line_num
            if None in row:  # DictReader's fields past the header's: a stray one shifts the rest into other columns
                extra = row[None]
                yield line, None, ("", f"{len(header) + len(extra)} fields, the header has {len(header)}")
                continue
            rec: dict[str, Any] = dict(row)
            for field in _NUMERIC:
                v = rec.get(field)
                if v in (None, ""):
                    continue
                number = number_from_text(v)
                rec[field] = float(number) if number is not None else v
            yield line, rec, None


__all__ = [
    "TIMESTAMP_DTYPE",
    "JsonlAppender",
    "atomic_directory",
    "atomic_open",
    "atomic_write_bytes",
    "default_rejects_path",
    "dumps",
    "file_format",
    "format_ts",
    "read_bars",
    "read_jsonl_records",
    "write_bars",
    "write_jsonl",
]
