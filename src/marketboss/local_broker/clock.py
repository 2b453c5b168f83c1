"""Simulated time: NYSE sessions from exchange_calendars and a clock that is stepped, accelerated or wall-clock.

Times are integers of microseconds since the epoch (UTC) throughout the local broker: exact, cheap to compare and
to store, and free of the UTC-versus-Eastern confusion the API's users complain about.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from marketboss.data.calendar import NY, ny_midnight, nyse
from marketboss.local_broker.config import ClockMode

US = 1_000_000
DAY_US = 86_400 * US
WEEK_US = 7 * DAY_US
PRE_OPEN_US = (5 * 3600 + 1800) * US  # 04:00 ET before a 09:30 open
POST_CLOSE_US = 4 * 3600 * US  # 20:00 ET after a 16:00 close (17:00 on early-close days)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NY = ZoneInfo(NY)


def to_us(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


@lru_cache(maxsize=16_384)  # answers repeat the same few instants (a stepped clock stands still)
def iso_z(us: int) -> str:
    """RFC 3339 in UTC ending in Z, microseconds only when present (the form Alpaca and the contract use)."""
    dt = from_us(us).replace(tzinfo=None)
    return dt.isoformat(timespec="microseconds" if dt.microsecond else "seconds") + "Z"


def iso_et(us: int) -> str:
    """Eastern time with its offset, as /v2/clock answers."""
    dt = from_us(us).astimezone(_NY)
    return dt.isoformat(timespec="microseconds" if dt.microsecond else "seconds")


def parse_time(text: str) -> int:
    """RFC 3339 (Z or offset; naive means UTC) or a bare date (midnight UTC); ValueError when it is neither."""
    s = text.strip()
    if not s or len(s) > 64:
        raise ValueError(f"'{text[:64]}' is not an RFC 3339 timestamp")
    if len(s) == 10:
        d = date.fromisoformat(s)
        return to_us(datetime(d.year, d.month, d.day, tzinfo=UTC))
    dt = datetime.fromisoformat(s.replace("z", "Z").replace("Z", "+00:00"))
    return to_us(dt)


class Sessions:
    """Regular NYSE sessions (holidays and early closes included) as sorted open/close arrays."""

    def __init__(self) -> None:
        sched = nyse().schedule
        self.opens: list[int] = (sched["open"].dt.tz_convert(None).to_numpy().astype("datetime64[us]")
                                 .astype("int64").tolist())  # fmt: skip
        self.closes: list[int] = (sched["close"].dt.tz_convert(None).to_numpy().astype("datetime64[us]")
                                  .astype("int64").tolist())  # fmt: skip
        self.pre_opens = [o - PRE_OPEN_US for o in self.opens]
        self.post_closes = [c + POST_CLOSE_US for c in self.closes]
        self._by_day = {ny_midnight(o): i for i, o in enumerate(self.opens)}

    @property
    def last_close(self) -> int:
        return self.closes[-1]

    def _index(self, t: int) -> int:
        """The session whose open is at or before t (-1 before the first)."""
        return bisect_right(self.opens, t) - 1

    def is_open(self, t: int) -> bool:
        i = self._index(t)
        return i >= 0 and t < self.closes[i]

    def is_extended(self, t: int) -> bool:
        """Inside 04:00-20:00 ET of a session day (pre-market, regular or after-hours)."""
        i = bisect_right(self.pre_opens, t) - 1
        return i >= 0 and t < self.post_closes[i]

    def next_open(self, t: int) -> int:
        i = bisect_right(self.opens, t)
        return self.opens[i] if i < len(self.opens) else t + DAY_US

    def next_close(self, t: int) -> int:
        """The close of the session in progress, or of the next one."""
        i = bisect_right(self.closes, t)
        return self.closes[i] if i < len(self.closes) else t + DAY_US

    def day_order_expiry(self, t: int, extended: bool) -> int:
        """When a day order placed at t stops working: the close of its session (20:00 ET if extended)."""
        if extended:
            i = bisect_right(self.post_closes, t)
            return self.post_closes[i] if i < len(self.post_closes) else t + DAY_US
        return self.next_close(t)

    def opens_between(self, t0: int, t1: int) -> list[int]:
        """Opens in (t0, t1]."""
        return self.opens[bisect_right(self.opens, t0) : bisect_right(self.opens, t1)]

    def last_close_between(self, t0: int, t1: int) -> int | None:
        i = bisect_right(self.closes, t1) - 1
        return self.closes[i] if i >= 0 and self.closes[i] > t0 else None

    def previous_close(self, t: int) -> int | None:
        """The close before the current (or most recent) session's: the 'last day' of day P&L."""
        j = self._index(t)
        return self.closes[j - 1] if j >= 1 else None

    def span_of_day(self, midnight_us: int) -> tuple[int, int] | None:
        """(open, close) of the session on the New York day starting at `midnight_us`."""
        i = self._by_day.get(midnight_us)
        return None if i is None else (self.opens[i], self.closes[i])


class MarketClock:
    """The simulated now. Stepped: moves only when set. Accelerated: `speed` simulated seconds per wall second.
    Wall-clock: real time shifted by a fixed offset (whole weeks by default, so the hours of the day line up)."""

    def __init__(
        self,
        mode: ClockMode,
        sessions: Sessions,
        *,
        speed: float = 1.0,
        always_open: bool = False,
        wall: Callable[[], float] = time.time,
    ):
        self.mode = mode
        self.sessions = sessions
        self.speed = speed if mode == "accelerated" else 1.0
        self.always_open = always_open
        self._wall = wall
        self._anchor_sim = 0
        self._anchor_wall = wall()

    def now(self) -> int:
        if self.mode == "stepped":
            return self._anchor_sim
        return self._anchor_sim + int((self._wall() - self._anchor_wall) * self.speed * US)

    def set(self, t: int) -> None:
        self._anchor_sim = t
        self._anchor_wall = self._wall()

    def is_open(self, t: int) -> bool:
        return self.always_open or self.sessions.is_open(t)

    def offset_us(self) -> int:
        """Wall-clock mode: real time minus simulated time."""
        return int(self._anchor_wall * US) - self._anchor_sim

    def set_offset(self, offset: int) -> None:
        self._anchor_wall = self._wall()
        self._anchor_sim = int(self._anchor_wall * US) - offset

    def view(self, t: int) -> dict[str, object]:
        return {
            "timestamp": iso_et(t),
            "is_open": self.is_open(t),
            "next_open": iso_et(self.sessions.next_open(t)),
            "next_close": iso_et(self.sessions.next_close(t)),
        }


def week_aligned_offset(wall_us: int, target: int) -> int:
    """Offset of whole weeks that puts `wall_us` in [target, target + 1 week): weekday and time of day are kept."""
    weeks = max(0, (wall_us - target) // WEEK_US)
    return weeks * WEEK_US
