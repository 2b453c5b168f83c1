"""How a single value reads in a terminal table or an HTML report: one rule for every command and report."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any


def fmt(v: Any) -> str:
    """Missing and NaN read "-"; small numbers keep 4 decimals, larger ones 2; dates drop a midnight time."""
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != v:
            return "-"
        return f"{v:,.4f}" if abs(v) < 10 else f"{v:,.2f}"
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M") if (v.hour or v.minute) else v.strftime("%Y-%m-%d")
    if isinstance(v, date):
        return v.isoformat()
    return str(v)
