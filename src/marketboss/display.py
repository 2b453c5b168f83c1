"""How a single value reads to a person: in terminal tables, HTML reports and the dashboard alike. Missing or
undefined values (None, NaN, infinities) read "n/a"."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

NA = "n/a"
_NEW_YORK = ZoneInfo("America/New_York")


def _bad(v: Any) -> bool:
    return v is None or (isinstance(v, float) and not math.isfinite(v))


def value(v: Any) -> str:
    """Any value in a table: floats with 4 decimals below 10 and 2 above, dates without a midnight time, the rest
    as text."""
    if _bad(v):
        return NA
    if isinstance(v, float):
        return f"{v:,.4f}" if abs(v) < 10 else f"{v:,.2f}"
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M") if (v.hour or v.minute) else v.strftime("%Y-%m-%d")
    if isinstance(v, date):
        return v.isoformat()
    return str(v)


def money(v: Any) -> str:
    if _bad(v):
        return NA
    x = float(v)
    return f"-${-x:,.2f}" if x < 0 else f"${x:,.2f}"


def pct(v: Any, digits: int = 2) -> str:
    return NA if _bad(v) else f"{float(v):,.{digits}f}%"


def num(v: Any, digits: int = 2) -> str:
    return NA if _bad(v) else f"{float(v):,.{digits}f}"


def count(v: Any) -> str:
    return NA if _bad(v) else f"{int(v):,}"


def when(v: Any) -> str:
    """A UTC timestamp as "YYYY-MM-DD HH:MM:SS UTC" (datetimes or the files' ISO strings)."""
    if _bad(v):
        return NA
    if isinstance(v, str):
        try:
            v = datetime.fromisoformat(v)
        except ValueError:
            return v
    if isinstance(v, datetime):  # an offset's time in UTC (12:17:40-05:00 was shown as 12:17:40 UTC)
        return (v.astimezone(UTC) if v.tzinfo else v).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(v)


def day(v: Any) -> str:
    """The date part of a timestamp (as it reads in UTC)."""
    text = when(v)
    return text[:10] if text != NA else NA


def minute(v: Any) -> str:
    """A timestamp to the minute, short enough for a metric tile."""
    text = when(v)
    return text[:16] if text != NA and text.endswith(" UTC") else text


def stamp(v: Any) -> str:
    """A bar's time: its date alone for a daily bar (stamped at midnight New York, as Alpaca does), else the UTC
    time to the minute."""
    if _bad(v):
        return NA
    t = datetime.fromisoformat(v) if isinstance(v, str) else v
    if not isinstance(t, datetime) or t.tzinfo is None:
        return value(t)
    ny = t.astimezone(_NEW_YORK)
    if (ny.hour, ny.minute, ny.second) == (0, 0, 0):
        return ny.date().isoformat()
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def duration(seconds: Any) -> str:
    """An elapsed time as a person says it: "45 s", "12 min", "2 h 5 min", "3 d 4 h"."""
    if _bad(seconds):
        return NA
    s = max(0, int(seconds))
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    if s < 172_800:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def metric(key: str, v: Any) -> str:
    """A metric by its kind: start and end as bar times, durations (in days or bars) as whole numbers, the rest as
    any value."""
    if key in ("start", "end"):
        return stamp(v)
    if "duration" in key and not _bad(v) and isinstance(v, int | float):
        return f"{round(v):,}"
    return value(v)
