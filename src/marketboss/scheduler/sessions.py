"""When jobs fire: a wall-clock time on every NYSE session (exchange_calendars), never on weekends or holidays.

SessionTrigger is an APScheduler 3 trigger built on next_session_time, the one place the rule lives, so the
schedule can be computed (and tested) without running a scheduler or waiting for a clock.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
from apscheduler.triggers.base import BaseTrigger

from marketboss.data.calendar import nyse


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
