"""Bars on MarketBoss's grid: the regular session's, each intraday timeframe's bars starting at the open
(calendar.bar_grid: 9:30, 10:30, ... for 1Hour), as synth makes them and as the live loop trades them (its minute
stream aggregated onto the grid). Alpaca's bars are not: its intraday bars include the extended hours, and its
hourly bars are clock hours (the 9:00 bar holds 9:00-9:30's pre-market trades with 9:30-10:00's). History fetched
from it is put on the grid here, from bars that align with the open, so that a backtest runs on the bars the live
loop trades."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import polars as pl

from marketboss.data.calendar import NY, Timeframe, bar_grid
from marketboss.data.schema import BAR_DTYPES

#: Every supported intraday timeframe's grid starts at the open, 9:30: a bar of a length dividing 30 minutes
#: starts on a clock multiple of its length (what Alpaca's bars start on), others may not.
_OPEN_MINUTE = 30


#: A bar made of shorter ones (grouped, in time order): the first open, highest high, lowest low, last close, summed
#: volume (the live loop's stream bars in a grid bar too).
OHLCV = (pl.col("open").first(), pl.col("high").max(), pl.col("low").min(), pl.col("close").last(),
         pl.col("volume").sum())  # fmt: skip


class GridBars(NamedTuple):
    bars: pl.DataFrame
    outside: int  # bars dropped: outside the regular session (pre-market, after-hours), or on a non-session day


def fetch_timeframe(timeframe: Timeframe, native: Timeframe | None = None) -> Timeframe:
    """The bars to ask a source for, to put `timeframe` on the grid: itself when its bars start on the open's
    clock multiples (daily; 1, 5, 15, 30 minutes), else the longest length dividing both it and 30 minutes
    (1Hour: 30Min), made of the source's own bars (`native`: the local broker's data). A source whose bars cannot
    make those is asked for the timeframe itself (the local broker's hourly data: on the grid already)."""
    if timeframe.is_daily or _OPEN_MINUTE % timeframe.minutes == 0:
        return timeframe
    step = Timeframe(math.gcd(timeframe.minutes, _OPEN_MINUTE), "Min")
    if native is not None and (native.is_daily or step.minutes % native.minutes):
        return timeframe
    return step


def on_grid(bars: pl.DataFrame, timeframe: Timeframe) -> GridBars:
    """The regular session's bars aggregated onto the timeframe's grid: each bar that starts within a session's
    hours joins the grid bar it starts in (first open, highest high, lowest low, last close, summed volume); the
    rest (the extended hours) are dropped and counted. Daily bars are taken as they are."""
    if timeframe.is_daily or bars.is_empty():
        return GridBars(bars, 0)
    ts = bars["timestamp"]
    days = ts.dt.convert_time_zone(NY).dt.date()
    starts, ends = bar_grid(days.min(), days.max(), timeframe)  # type: ignore[arg-type]
    t = ts.dt.replace_time_zone(None).to_numpy().astype("datetime64[us]")
    slot = np.searchsorted(starts, t, side="right") - 1
    inside = (slot >= 0) & (t < ends[np.maximum(slot, 0)])
    kept = bars.filter(pl.Series(inside)).with_columns(
        pl.Series("slot", starts[slot[inside]]).dt.replace_time_zone("UTC").cast(BAR_DTYPES["timestamp"])
    )
    out = (
        kept.sort("timestamp")
        .group_by("symbol", "slot")
        .agg(*OHLCV)
        .rename({"slot": "timestamp"})
        .select(BAR_DTYPES.names())
        .cast(BAR_DTYPES)
        .sort("timestamp", "symbol")
    )
    return GridBars(out, bars.height - kept.height)
