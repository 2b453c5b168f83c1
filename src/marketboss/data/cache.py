"""Validated copies of input files, keyed by the file's content: a command that reads the same bars file (JSONL,
CSV or Parquet) or signals file (the backtest command's) as the one before gets its validated frame (io.read_bars,
signals.read_signals_frame) or its market panel (market.read_market) back without parsing, validating or
building it again.

The key is a 128-bit xxHash (XXH3) of the file's bytes, what is read of it and the reader's version
(READER_VERSION: bump it when parsing, validation or the copies' form change), so an edited file, or a file
read by another version of the rules, is a miss. XXH3 hashes at memory speed (a 165 MB file in about 0.01 s,
where SHA-256 took 0.1 s of a 1 s command); nobody chooses these files to collide. Frames are Arrow IPC files,
uncompressed (bars memory-mapped back: no parsing, no copy), panels numpy .npz files; both are written atomically
(io.store_copy, market.read_market), and this module serves them with names, look-ups and eviction (the
MAX_ENTRIES most recently used stay). The cache only ever saves time: a copy that cannot be read or written is
a miss, never an error. MARKETBOSS_CACHE_DIR moves it (default: $XDG_CACHE_HOME/marketboss, else
~/.cache/marketboss); MARKETBOSS_CACHE_DIR=off turns it off.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from pathlib import Path

import polars as pl
import xxhash

from marketboss.errors import InputError

CACHE_DIR_ENV = "MARKETBOSS_CACHE_DIR"
#: 2: keys by XXH3; 3: weekly and monthly bars annualised by their number a year; 4: a CSV row of more fields
#: than its header refused.
READER_VERSION = 4
MAX_ENTRIES = 8


def cache_dir() -> Path | None:
    """Where validated copies live; None when the cache is off."""
    configured = os.environ.get(CACHE_DIR_ENV, "").strip()
    if configured.lower() == "off":
        return None
    if configured:
        return Path(configured).expanduser() / "bars"
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "marketboss" / "bars"


def content_key(path: Path, kind: str) -> str:
    """The key of what `kind` (the reader's format, or what is built of the file) makes of this file's bytes.
    It is the first read of the file on a cached path (market.read_market), so a missing file is the readers'
    one-line InputError here, not an OSError for the error boundary."""
    digest = xxhash.xxh3_128(f"bars v{READER_VERSION} {kind}\n".encode())
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    with fh:
        if os.fstat(fh.fileno()).st_size:  # mapped: hashed where the page cache holds it, no copy
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as view:
                digest.update(view)
    return digest.hexdigest()


def entry(key: str, suffix: str = ".arrow") -> Path | None:
    """Where the copy under `key` lives (None when the cache is off)."""
    root = cache_dir()
    return None if root is None else root / f"{key}{suffix}"


def load(key: str, mapped: bool = True) -> pl.DataFrame | None:
    """The validated frame stored under `key`, or None. `mapped`: memory-mapped through pyarrow (bars: no copy
    of a large frame); else read whole by polars (a signals frame: small, and pyarrow's import would cost more
    than the copy)."""
    path = entry(key)
    if path is None:
        return None
    if not mapped:
        try:
            whole = pl.read_ipc(path)
            os.utime(path)
        except (OSError, pl.exceptions.PolarsError):
            return None
        return whole
    import pyarrow as pa  # here: a command that reads only a panel (.npz) never loads it

    try:
        # Memory-mapped, zero copy: pages are read as the columns are used (polars' read_ipc copies the file).
        # The map stays open as long as the frame's buffers refer to it (closing it here would pull the
        # pages from under them); the file itself is only ever replaced by a rename, never rewritten.
        table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
        frame = pl.from_arrow(table, rechunk=False)
        os.utime(path)  # recently used: evicted last
    except (OSError, pa.ArrowException, pl.exceptions.PolarsError):
        return None
    return frame if isinstance(frame, pl.DataFrame) else None


def evict() -> None:
    """Keep the MAX_ENTRIES most recently used copies."""
    root = cache_dir()
    if root is None:
        return
    with contextlib.suppress(OSError):
        entries = sorted((p for p in root.iterdir() if p.suffix in (".arrow", ".npz")),
                         key=lambda p: p.stat().st_mtime, reverse=True)  # fmt: skip
        for old in entries[MAX_ENTRIES:]:
            old.unlink(missing_ok=True)
