"""How a single value reads to a person: in terminal tables, HTML reports and the dashboard alike. Missing or
undefined values (None, NaN, infinities) read "n/a"."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

NA = "n/a"


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
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(v)


def day(v: Any) -> str:
    """The date part of a timestamp (as it reads in UTC)."""
    text = when(v)
    return text[:10] if text != NA else NA


def minute(v: Any) -> str:
    """A timestamp to the minute, short enough for a metric tile."""
    text = when(v)
    return text[:16] if text != NA and text.endswith(" UTC") else text
