"""NYSE sessions and bar times from exchange_calendars: holidays and early closes come from the exchange."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import numpy as np
import pandas as pd
import polars as pl

from marketboss.errors import MarketBossError

NY = "America/New_York"
_TF = re.compile(r"^(\d+)(Min|Hour|Day)$")


@dataclass(frozen=True)
class Timeframe:
    """Alpaca's timeframe spelling (1Min, 5Min, 1Hour, 1Day)."""

    amount: int
    unit: str

    @classmethod
    def parse(cls, text: str) -> Timeframe:
        m = _TF.match(text.strip())
        if not m or int(m.group(1)) <= 0:
            raise MarketBossError(f"timeframe '{text}' is not valid: use e.g. 1Min, 5Min, 15Min, 1Hour, 1Day")
        amount, unit = int(m.group(1)), m.group(2)
        if unit == "Day" and amount != 1:
            raise MarketBossError("only 1Day is supported for daily bars")
        return cls(amount, unit)

    @property
    def minutes(self) -> int:
        return self.amount * {"Min": 1, "Hour": 60, "Day": 390}[self.unit]

    @property
    def bars_per_session(self) -> int:
        """Bars in a full regular session (390 minutes): 1 for daily bars."""
        return max(1, 390 // self.minutes)

    @property
    def is_daily(self) -> bool:
        return self.unit == "Day"

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"


#: The first day of the sessions known here (they end a year ahead): exchange_calendars has NYSE's closures right
#: from then on (1963, 1968, 1977); from 1995, as before, a long daily history (imported from Yahoo) replayed on the
#: local broker found its market closed before then and every signal blocked.
CALENDAR_START = "1962-01-01"


@lru_cache(maxsize=1)
def nyse() -> xcals.ExchangeCalendar:
    return xcals.get_calendar("XNYS", start=CALENDAR_START)


def schedule(start: date | str, end: date | str) -> pd.DataFrame:
    """Sessions in [start, end] with their UTC open and close (early closes included)."""
    cal = nyse()
    first, last = pd.Timestamp(start), pd.Timestamp(end)
    if last < first:
        raise MarketBossError(f"end {last.date()} is before start {first.date()}")
    lo, hi = max(first, cal.first_session), min(last, cal.last_session)
    if hi < lo:  # wholly outside the calendar's years: no session (not exchange_calendars' DateOutOfBounds)
        return cal.schedule.iloc[:0][["open", "close"]]
    sessions = cal.sessions_in_range(lo, hi)
    return cal.schedule.loc[sessions, ["open", "close"]]


def check_in_calendar(start: date | str, end: date | str) -> None:
    """Refuse a range reaching past the calendar's sessions (1962 to a year ahead): what lies outside cannot be
    laid on the exchange's days, and cutting it off without a word would hand back a shorter range than asked."""
    first, last = date.fromisoformat(CALENDAR_START), nyse().last_session.date()
    for what, day in (("start", pd.Timestamp(start).date()), ("end", pd.Timestamp(end).date())):
        if not first <= day <= last:
            raise MarketBossError(f"{what} {day} is outside the NYSE calendar's days ({first} to {last})")


def bar_times(start: date | str, end: date | str, timeframe: Timeframe) -> tuple[np.ndarray, np.ndarray]:
    """(UTC bar start times as datetime64[us], session index of each bar).

    Daily bars are stamped at midnight New York time of the session, as Alpaca stamps them;
    intraday bars at their start, from the open up to (not including) the session's close.
    """
    sched = schedule(start, end)
    if sched.empty:
        return np.array([], dtype="datetime64[us]"), np.array([], dtype=np.int64)
    if timeframe.is_daily:
        midnight = sched.index.tz_localize(NY).tz_convert(None)
        return midnight.to_numpy().astype("datetime64[us]"), np.arange(len(sched), dtype=np.int64)
    step = np.timedelta64(timeframe.minutes, "m")
    opens = sched["open"].dt.tz_convert(None).to_numpy().astype("datetime64[us]")
    closes = sched["close"].dt.tz_convert(None).to_numpy().astype("datetime64[us]")
    counts = np.ceil((closes - opens) / step).astype(np.int64)
    session = np.repeat(np.arange(len(sched), dtype=np.int64), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    times = opens[session] + offsets * step
    return times, session


def bar_grid(start: date | str, end: date | str, timeframe: Timeframe) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) of every bar of the timeframe in [start, end] (datetime64[us], UTC): a daily bar ends at its
    session's close, an intraday bar after its length or at the session's close, whichever is first."""
    times, session = bar_times(start, end, timeframe)
    if not times.shape[0]:
        return times, times.copy()
    closes = schedule(start, end)["close"].dt.tz_convert(None).to_numpy().astype("datetime64[us]")[session]
    if timeframe.is_daily:
        return times, closes
    return times, np.minimum(times + np.timedelta64(timeframe.minutes, "m"), closes)


def start_of_last_bars(t_us: int, n: int, timeframe: Timeframe) -> int:
    """The start (epoch us) of the n-th last bar of the timeframe's grid closed by t_us: where n bars of history
    begin, the exchange's holidays and early closes counted (the calendar's first bar when it has fewer)."""
    day = pd.Timestamp(t_us, unit="us", tz="UTC").tz_convert(NY).date()
    lo = day - timedelta(days=int(n / timeframe.bars_per_session * 7 / 5 * 1.5) + 10)  # n sessions' bars and more
    starts, ends = bar_grid(lo, day, timeframe)
    closed = starts[ends <= np.datetime64(t_us, "us")]
    if not closed.shape[0]:
        return t_us
    return int(closed[max(closed.shape[0] - n, 0)].astype(np.int64))


#: Bars at least this far apart are daily bars, whatever the time of day they are stamped (a DST night is 23 hours).
DAILY_SPACING_US = 20 * 3600 * 1_000_000
_DAY_US = 86_400 * 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NY = ZoneInfo(NY)


def ny_midnight(us: int) -> int:
    """Midnight New York of the day `us` (epoch microseconds) falls on, in epoch microseconds (how Alpaca stamps
    daily bars)."""
    d = (_EPOCH + timedelta(microseconds=us)).astimezone(_NY).date()
    return (datetime(d.year, d.month, d.day, tzinfo=_NY) - _EPOCH) // timedelta(microseconds=1)


def daily_stamp(us: int) -> int:
    """A daily bar's stamp as Alpaca gives it, from any stamp of it (a CSV's 16:00 close, 21:00Z, or its date at
    midnight UTC, which in New York is the evening before): midnight New York of its day. The one rule by which
    the local broker serves a bars file's daily bars and a replay finds them there."""
    return ny_midnight(us + _DAY_US // 2) if us % _DAY_US == 0 else ny_midnight(us)


def smallest_spacing(stamps_us: pl.Series, symbols: pl.Series) -> int | None:
    """The smallest spacing of one symbol's bars in epoch microseconds (None: no symbol has two)."""
    gaps = (pl.DataFrame({"s": symbols, "t": stamps_us}).sort("s", "t")
            .select(pl.col("t").diff().over("s").alias("d")).filter(pl.col("d") > 0))  # fmt: skip
    return None if gaps.is_empty() else int(gaps["d"].min())  # type: ignore[arg-type]


def are_daily(stamps_us: pl.Series, spacing: int | None) -> bool:
    """Whether bars of this smallest spacing (smallest_spacing) are daily: at least DAILY_SPACING_US apart,
    whatever their time of day; one bar a symbol, when stamped at midnight New York."""
    if spacing is None:
        return all(ny_midnight(t) == t for t in stamps_us.head(2000).to_list())
    return spacing >= DAILY_SPACING_US


def served_stamps(stamps_us: pl.Series, daily: bool) -> pl.Series:
    """The bars' stamps as the local broker serves them: daily bars at daily_stamp, the others as they are."""
    if not daily:
        return stamps_us
    return stamps_us.replace_strict({t: daily_stamp(t) for t in stamps_us.unique().to_list()},
                                    return_dtype=pl.Int64)  # fmt: skip


def is_session(day: date | str) -> bool:
    return bool(nyse().is_session(pd.Timestamp(day)))


def infer_timeframe(bars: pl.DataFrame) -> Timeframe:
    """The bars' timeframe from their spacing: 1Day when every symbol has one bar a session, else the most common
    gap between a symbol's consecutive bars within a session (1Min, 5Min, 15Min, 1Hour ...)."""
    if bars.is_empty():
        raise MarketBossError("no bars to tell the timeframe from")
    day = pl.col("timestamp").dt.convert_time_zone(NY).dt.date()
    gaps = (
        bars.select("symbol", "timestamp", day.alias("day"))
        .sort("symbol", "timestamp")
        .select(pl.col("timestamp").diff().over("symbol", "day").dt.total_minutes().alias("gap"))
        .drop_nulls()
        .filter(pl.col("gap") > 0)
    )
    if gaps.is_empty():
        return Timeframe(1, "Day")
    minutes = int(gaps["gap"].mode().min())  # type: ignore[arg-type]
    return Timeframe(minutes // 60, "Hour") if minutes % 60 == 0 else Timeframe(minutes, "Min")


def split_non_sessions(bars: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(bars on NYSE sessions, bars on days the exchange was closed: weekends, holidays), by each bar's New York
    date. Days outside the calendar's range are kept: nothing says they were closed."""
    if bars.is_empty():
        return bars, bars.clear()
    day = bars["timestamp"].dt.convert_time_zone(NY).dt.date()
    cal = nyse()
    first, last = cal.first_session.date(), cal.last_session.date()
    known = (day >= first) & (day <= last)
    lo, hi = day.filter(known).min(), day.filter(known).max()
    open_days = (
        pl.Series([d.date() for d in cal.sessions_in_range(pd.Timestamp(lo), pd.Timestamp(hi))], dtype=pl.Date)
        if lo is not None
        else pl.Series([], dtype=pl.Date)
    )
    closed = known & ~day.is_in(open_days)
    return bars.filter(~closed), bars.filter(closed)
