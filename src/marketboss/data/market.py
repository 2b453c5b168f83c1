"""Bars as dense (time x symbol) arrays: what strategies and the backtest kernel read.

Built once per data set and reused by every strategy and backtest on it (parameter sweeps included).
A symbol without a bar at a time holds NaN there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from marketboss.data import cache
from marketboss.data.io import atomic_open, file_format, read_bars
from marketboss.data.schema import TIMESTAMP_DTYPE
from marketboss.data.stats import sessions_bars_per_year
from marketboss.errors import MarketBossError

FIELDS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class SymbolBars:
    """One symbol's own bars, in time order; `rows` are their indices in the market's time axis."""

    symbol: str
    rows: np.ndarray
    times: np.ndarray  # epoch microseconds, UTC
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return int(self.rows.shape[0])


def read_only(a: np.ndarray) -> np.ndarray:
    """A view a strategy cannot write through: `c /= c[-1]` meant as `c = c / c[-1]` would change the market's
    prices for the rest of the run (and for every later run on the same Market)."""
    v = a.view()
    v.flags.writeable = False
    return v


@dataclass(frozen=True, eq=False)
class Market:
    symbols: tuple[str, ...]
    times: np.ndarray  # (T,) epoch microseconds, UTC, strictly increasing
    open: np.ndarray  # (T, S)
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    bars_per_year: float
    # the data ends inside its last session (the live loop's history while the session goes on): that session's
    # day orders work on past its last bar, instead of ending there as at a session's close
    inside_last_session: bool = False

    @classmethod
    def from_bars(cls, bars: pl.DataFrame) -> Market:
        """Dense arrays from validated bars (marketboss.data.io.read_bars' frame)."""
        if bars.is_empty():
            raise MarketBossError("no bars: the data file is empty (after filtering)")
        if not bars["timestamp"].is_sorted():
            bars = bars.sort("timestamp", "symbol")
        symbols = tuple(bars["symbol"].unique().sort().to_list())
        sidx = bars["symbol"].cast(pl.Enum(symbols)).to_physical().to_numpy().astype(np.intp)
        ts = bars["timestamp"].dt.epoch("us").to_numpy()
        n = ts.shape[0]
        new = np.empty(n, dtype=bool)
        new[0] = True
        np.not_equal(ts[1:], ts[:-1], out=new[1:])
        if len(symbols) > 1:
            same = ~new[1:] & (sidx[1:] == sidx[:-1])
            if same.any():
                i = int(np.flatnonzero(same)[0]) + 1
                raise MarketBossError(f"duplicate bar for {symbols[sidx[i]]} at row {i + 1}")
        elif not new[1:].all():
            raise MarketBossError("duplicate or unsorted bars: timestamps must increase per symbol")
        tidx = np.cumsum(new) - 1
        times = ts[new]
        n_symbols = len(symbols)
        shape = (times.shape[0], n_symbols)
        # Every symbol at every time (sorted by time, then symbol): the column is the panel, row by row.
        complete = n == shape[0] * n_symbols and bool((sidx.reshape(shape) == np.arange(n_symbols)).all())
        cells = None if complete else tidx * n_symbols + sidx
        arrays: dict[str, Any] = {}  # (Any: beside the arrays, Market takes a flag)
        for f in FIELDS:
            # a copy in numpy's memory either way: writable, and large arrays get huge pages (fewer TLB misses)
            values = bars[f].cast(pl.Float64).to_numpy()
            if complete:
                arrays[f] = np.array(values).reshape(shape)
                continue
            a = np.full(shape, np.nan)
            a.reshape(-1)[cells] = values
            arrays[f] = a
        return cls(symbols, times, bars_per_year=sessions_bars_per_year(times, tidx, sidx), **arrays)

    @property
    def n_times(self) -> int:
        return int(self.times.shape[0])

    @property
    def n_symbols(self) -> int:
        return len(self.symbols)

    @cached_property
    def _rows(self) -> list[np.ndarray]:
        present = ~np.isnan(self.close)
        return [
            np.arange(self.n_times) if present[:, s].all() else np.flatnonzero(present[:, s])
            for s in range(self.n_symbols)
        ]

    def rows(self, s: int) -> np.ndarray:
        return self._rows[s]

    def symbol_bars(self, s: int) -> SymbolBars:
        r = self.rows(s)
        full = r.shape[0] == self.n_times

        def col(a: np.ndarray) -> np.ndarray:
            if full:  # a view when there is one symbol, else one contiguous copy
                return read_only(np.ascontiguousarray(a[:, s]))
            return a[r, s]

        return SymbolBars(
            self.symbols[s], r, read_only(self.times) if full else self.times[r], col(self.open), col(self.high),
            col(self.low), col(self.close), col(self.volume),
        )

    def head(self, n: int) -> Market:
        """Its first n times (views), every symbol kept (NaN where one has no bar yet), its annualisation kept: the
        market as it was at bar n - 1."""
        return self._with(lambda a: a[:n])

    def read_only(self) -> Market:
        """The same market through read-only views: what a strategy's own code is given (see read_only)."""
        return self._with(read_only)

    def _with(self, view: Callable[[np.ndarray], np.ndarray]) -> Market:
        """The market of view(a) of each of its arrays (times too): its symbols and annualisation kept."""
        return Market(self.symbols, view(self.times), view(self.open), view(self.high), view(self.low),
                      view(self.close), view(self.volume), self.bars_per_year)  # fmt: skip

    def is_full(self, s: int) -> bool:
        """True when the symbol has a bar at every time of the market."""
        return self.rows(s).shape[0] == self.n_times

    def timestamps(self) -> pl.Series:
        return self._timestamps

    @cached_property
    def _timestamps(self) -> pl.Series:
        """Built once: every backtest's equity frame starts with it (polars columns are immutable, so the
        frames can share it)."""
        return pl.Series("timestamp", self.times).cast(TIMESTAMP_DTYPE)

    @cached_property
    def session_end(self) -> np.ndarray:
        """Per bar, the index of the last bar of its session (its New York date): where a day order placed on
        that session expires; past the data (n_times) for the last session's when the data ends inside it."""
        days = self.timestamps().dt.convert_time_zone("America/New_York").dt.date().to_physical().to_numpy()
        end = np.searchsorted(days, days, side="right") - 1
        if self.inside_last_session and days.shape[0]:
            end[days == days[-1]] = self.n_times
        return end

    def symbol_index(self, symbol: str) -> int:
        return self.symbols.index(symbol)

    def select(self, symbols: Sequence[str]) -> Market:
        """The market of some of its symbols, as from_bars makes it of their bars alone: the times at which
        any of them has a bar, their own bars per year."""
        cols = sorted({self.symbol_index(s) for s in symbols})
        if cols == list(range(self.n_symbols)):
            return self
        present = ~np.isnan(self.close[:, cols])
        keep = present.any(axis=1)
        tidx, sidx = np.nonzero(present[keep])
        arrays: dict[str, Any] = {f: np.ascontiguousarray(getattr(self, f)[keep][:, cols]) for f in FIELDS}
        times = self.times[keep]
        return Market(tuple(self.symbols[c] for c in cols), times,
                      bars_per_year=sessions_bars_per_year(times, tidx, sidx), **arrays)  # fmt: skip


def read_market(path: Path, *, skip_invalid: bool = False, rejects_path: Path | None = None) -> Market:
    """The market of a bars file. A file read before comes back from its cached panel (data/cache.py): no
    parsing, no validation, no frame in memory beside the panel."""
    key = None if skip_invalid else cache.content_key(path, f"market {file_format(path)}")
    if key is not None and (copy := _load_panel(key)) is not None:
        return copy
    bars = read_bars(path, skip_invalid=skip_invalid, rejects_path=rejects_path)
    if bars.is_empty():
        raise MarketBossError(f"{path}: no bars: the file is empty" + (" (after the invalid rows were skipped)"
                                                                       if skip_invalid else ""))  # fmt: skip
    market = Market.from_bars(bars)
    if key is not None and (target := cache.entry(key, ".npz")) is not None:
        _keep_panel(market, target)
    return market


def _load_panel(key: str) -> Market | None:
    path = cache.entry(key, ".npz")
    if path is None:
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {f: npz[f] for f in FIELDS}
            market = Market(tuple(str(s) for s in npz["symbols"]), npz["times"],
                            bars_per_year=float(npz["bars_per_year"]), **arrays)  # fmt: skip
        os.utime(path)  # recently used: evicted last
    except (OSError, ValueError, KeyError):
        return None
    return market


def _keep_panel(market: Market, path: Path) -> None:
    """Best effort, as every cached copy."""
    try:
        with atomic_open(path) as fh:
            panel = {f: getattr(market, f) for f in FIELDS}
            np.savez(fh, symbols=np.array(market.symbols), times=market.times,
                     bars_per_year=np.float64(market.bars_per_year), **panel)  # fmt: skip
        cache.evict()
    except OSError:
        return
