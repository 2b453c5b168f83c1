"""Is a signal still the one to trade now? A signal is decided on a bar's close, so it is fresh only while its bar
is the latest completed bar at the broker's clock: once a later bar has completed, the decision is stale (the
strategy would decide on that newer bar), and a bar that has not completed yet is in the future.

Bars follow the NYSE grid of the data's timeframe (data.calendar.bar_times): a daily bar completes at its
session's close (early closes included), an intraday bar at its start plus its length (or the session's
close). An intraday timestamp between grid points belongs to the bar that contains it; a daily one to the
session of its date.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

import numpy as np

from marketboss.data.calendar import Timeframe, bar_grid, infer_timeframe
from marketboss.data.io import read_bars
from marketboss.errors import MarketBossError


class Freshness(StrEnum):
    FRESH = "fresh"
    STALE = "stale"
    FUTURE = "future"


class Age(NamedTuple):
    """A signal's freshness at the broker's clock, and how many later bars have completed since its own."""

    freshness: Freshness
    bars_behind: int


def _us(t: datetime) -> np.datetime64:
    return np.datetime64(t.replace(tzinfo=None) - (t.utcoffset() or timedelta(0)), "us")


def ages(signal_times: list[datetime], now: datetime, timeframe: Timeframe) -> list[Age]:
    """The age of each signal (timezone-aware UTC datetimes) at the broker's clock `now`."""
    if not signal_times:
        return []
    ts = np.array([_us(t) for t in signal_times], dtype="datetime64[us]")
    now_us = _us(now)
    first = min(ts.min(), now_us).astype("datetime64[D]") - np.timedelta64(7, "D")
    last = max(ts.max(), now_us).astype("datetime64[D]") + np.timedelta64(10, "D")
    starts, ends = bar_grid(str(first), str(last), timeframe)
    completed = int(np.searchsorted(ends, now_us, side="right"))  # bars whose end is at or before now
    if timeframe.is_daily:  # a daily bar by its session's date: Alpaca's stamp (midnight New York) and 00:00Z alike
        own = np.searchsorted(starts.astype("datetime64[D]"), ts.astype("datetime64[D]"), side="right") - 1
    else:  # the bar holding each signal
        own = np.searchsorted(starts, ts, side="right") - 1
    out = []
    for k in own.tolist():
        behind = completed - 1 - k  # completed bars after the signal's own
        if behind < 0:
            out.append(Age(Freshness.FUTURE, 0))
        else:
            out.append(Age(Freshness.FRESH if behind == 0 else Freshness.STALE, behind))
    return out


def signals_timeframe(data: Path, signal_times: list[datetime]) -> Timeframe:
    """The signals' timeframe: the bars file's spacing, or daily when every signal is stamped at a day's start
    (midnight New York, as Alpaca stamps daily bars, or 00:00Z)."""
    if data.exists():
        return infer_timeframe(read_bars(data))
    ny = ZoneInfo("America/New_York")
    if all(t.astimezone(ny).time() == time(0) or t.time() == time(0) for t in signal_times):
        return Timeframe(1, "Day")
    raise MarketBossError(f"cannot tell the signals' timeframe without {data}: pass --timeframe (1Day, 5Min, ...)")
