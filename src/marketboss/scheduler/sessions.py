"""When jobs fire: a wall-clock time on every NYSE session (exchange_calendars), never on weekends or holidays.

SessionTrigger is an APScheduler 3 trigger built on next_session_time, the one place the rule lives, so the
schedule can be computed (and tested) without running a scheduler or waiting for a clock. The live loop's times
come from the exchange's own open and close instead (session_window, LiveTrigger): an early close stops it early.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
from apscheduler.triggers.base import BaseTrigger

from marketboss.data.calendar import NY, nyse


def next_session_time(after: datetime, at: time, tz: ZoneInfo) -> datetime | None:
    """The first `at` (wall clock in tz) on an NYSE session that is at or after `after`; None past the
    calendar's last known session."""
    sessions = nyse().sessions
    i = int(sessions.searchsorted(pd.Timestamp(after.astimezone(tz).date())))
    while i < len(sessions):
        fire = datetime.combine(sessions[i].date(), at, tzinfo=tz)
        if fire >= after:
            return fire
        i += 1
    return None


def session_times(at: time, tz: ZoneInfo, start: date, end: date) -> list[datetime]:
    """Every fire time of a job at `at` on the sessions from start to end (inclusive)."""
    out = []
    t = next_session_time(datetime.combine(start, time(0), tzinfo=tz), at, tz)
    while t is not None and t.date() <= end:
        out.append(t)
        t = next_session_time(t + timedelta(microseconds=1), at, tz)
    return out


class SessionTrigger(BaseTrigger):
    def __init__(self, at: time, tz: ZoneInfo):
        self.at = at
        self.tz = tz

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        after = now if previous_fire_time is None else min(now, previous_fire_time + timedelta(microseconds=1))
        return next_session_time(after, self.at, self.tz)

    def __str__(self) -> str:
        return f"nyse sessions at {self.at:%H:%M} {self.tz.key}"


@dataclass(frozen=True)
class SessionWindow:
    """One session of the live loop: started at `start` (the open less the warm-up), asked to stop by itself after
    `close` (`--until close`), stopped by signal at `stop` (the close plus the grace). Times in the job's zone."""

    session: date
    start: datetime
    open: datetime
    close: datetime
    stop: datetime


def session_window(after: datetime, warmup: timedelta, grace: timedelta, tz: ZoneInfo) -> SessionWindow | None:
    """The first NYSE session whose close is after `after` (the one in progress, or the next), with its open and
    close from the exchange calendar (early closes included); None past the calendar's last known session."""
    cal = nyse()
    sched = cal.schedule
    i = int(sched.index.searchsorted(pd.Timestamp(after.astimezone(ZoneInfo(NY)).date())))
    while i < len(sched):
        row = sched.iloc[i]
        open_ = row["open"].to_pydatetime().astimezone(tz)
        close = row["close"].to_pydatetime().astimezone(tz)
        if close > after:
            return SessionWindow(sched.index[i].date(), open_ - warmup, open_, close, close + grace)
        i += 1
    return None


class LiveTrigger(BaseTrigger):
    """Fires at each session's start (the open less the warm-up); started during a session (after its start,
    before its close), it fires at once, so a scheduler started at 11:00 still runs the day's live loop."""

    def __init__(self, warmup: timedelta, grace: timedelta, tz: ZoneInfo):
        self.warmup = warmup
        self.grace = grace
        self.tz = tz

    def window(self, after: datetime) -> SessionWindow | None:
        return session_window(after, self.warmup, self.grace, self.tz)

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        if previous_fire_time is None:
            w = self.window(now)
            return None if w is None else max(w.start, now)
        w = self.window(previous_fire_time)  # the session that fire belonged to, or a later one
        while w is not None and w.start <= previous_fire_time:
            w = self.window(w.close + timedelta(microseconds=1))
        return None if w is None else w.start

    def __str__(self) -> str:
        return f"nyse sessions from {self.warmup} before the open to {self.grace} after the close"
