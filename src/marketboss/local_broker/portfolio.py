"""Portfolio history (GET /v2/account/portfolio/history): the account's equity over time, rebuilt from its fills
and the simulated market (the broker keeps no equity snapshots, and needs none: cash and positions at any time
follow from the fills, and prices from the bars).

Timeframes 1Min, 5Min, 15Min, 1H (points through each regular session, left-labelled, valued at the window's end)
and 1D (one point per session, stamped at midnight New York, valued at its close). The window is [start, end],
end defaulting to now and start to end less `period` (number + D, W, M or A; intraday "nD" means the last n
sessions); without a timeframe, as Alpaca: 1Min under 7 days, 15Min under 30, else 1D. P/L is from base_value,
the equity at the window's start.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from marketboss.local_broker.clock import US, Sessions, iso_et, ny_midnight
from marketboss.local_broker.errors import invalid
from marketboss.local_broker.marketdata import CENT, MarketData, round_price
from marketboss.local_broker.records import Fill

TIMEFRAMES = {"1Min": 60, "5Min": 300, "15Min": 900, "1H": 3600, "1D": 0}
_PERIOD = re.compile(r"^(\d{1,4})([DWMA])$")
_DAYS = {"D": 1, "W": 7, "M": 30, "A": 365}
MAX_POINTS = 50_000
DAY = 86_400 * US


@dataclass(frozen=True)
class Window:
    timeframe: str
    start: int
    end: int


def window(
    sessions: Sessions, now: int, timeframe: str | None, period: str | None, start: int | None, end: int | None
) -> Window:
    """The history's timeframe and [start, end] from the query, Alpaca's defaults filled in."""
    if timeframe is not None and timeframe not in TIMEFRAMES:
        raise invalid(f"invalid timeframe '{timeframe[:20]}': use one of {', '.join(TIMEFRAMES)}")
    n, unit = 1, "M"
    if period is not None:
        m = _PERIOD.match(period.strip().upper())
        if not m or int(m.group(1)) < 1:
            raise invalid(f"invalid period '{period[:20]}': a number and D, W, M or A (e.g. 1D, 2W, 3M, 1A)")
        n, unit = int(m.group(1)), m.group(2)
    elif (timeframe is not None and timeframe != "1D") or (start is not None and end is not None):
        n, unit = 1, "D"
    days = n * _DAYS[unit]
    if timeframe is None:
        span = days if start is None or end is None else (end - start) / DAY
        timeframe = "1Min" if span < 7 else "15Min" if span < 30 else "1D"
    end = now if end is None else min(end, now)
    if start is None:
        if unit == "D" and timeframe != "1D":
            opens = sessions.opens_between(end - (n + 10) * 2 * DAY, end)
            start = opens[-n] if len(opens) >= n else end - days * DAY
        else:
            start = end - days * DAY
    if end < start:
        raise invalid("end must not be before start")
    return Window(timeframe, start, end)


def _points(sessions: Sessions, w: Window) -> list[tuple[int, int]]:
    """(label, valued at) of each point: per session (midnight New York, its close) or per intraday window."""
    out: list[tuple[int, int]] = []
    step = TIMEFRAMES[w.timeframe] * US
    for o in sessions.opens_between(w.start - DAY, w.end):
        close = sessions.next_close(o)
        if step == 0:
            if close > w.start:
                out.append((ny_midnight(o), min(close, w.end)))
            continue
        t = o
        while t < close and t <= w.end:
            if t >= w.start:
                out.append((t, min(t + step, close, w.end)))
            t += step
        if len(out) > MAX_POINTS:
            raise invalid(f"more than {MAX_POINTS} points: narrow the window or use a longer timeframe")
    return out


def history(market: MarketData, sessions: Sessions, fills: list[Fill], cash_now: Decimal, w: Window) -> dict[str, Any]:
    """Alpaca's PortfolioHistory for the window: equity at each point from the fills up to then."""
    flows = [_flow(f) for f in fills]
    cash = cash_now - sum(flows, Decimal(0))  # the starting cash: now's less every fill's cash flow
    times = [f.transaction_time for f in fills]
    held: dict[str, Decimal] = {}
    last: dict[str, Decimal] = {}
    k = 0

    def equity_at(t: int) -> Decimal:
        nonlocal cash, k
        upto = bisect_right(times, t)
        while k < upto:
            f = fills[k]
            cash += flows[k]
            held[f.symbol] = held.get(f.symbol, Decimal(0)) + (f.qty if f.side == "buy" else -f.qty)
            last[f.symbol] = f.price
            k += 1
        value = cash
        for sym, qty in held.items():
            if qty:
                p = market.price(sym, t)
                value += qty * (last[sym] if p is None else round_price(p))
        return value.quantize(CENT, ROUND_HALF_EVEN)

    base = equity_at(w.start)
    stamps, equity, pl, pct = [], [], [], []
    for label, at in _points(sessions, w):
        e = equity_at(max(at, w.start))
        stamps.append(label // US)
        equity.append(float(e))
        pl.append(float(e - base))
        pct.append(float((e - base) / base) if base else None)
    return {"timestamp": stamps, "equity": equity, "profit_loss": pl, "profit_loss_pct": pct,
            "base_value": float(base), "base_value_asof": iso_et(w.start)[:10], "timeframe": w.timeframe,
            "cashflow": {}}  # fmt: skip


def _flow(f: Fill) -> Decimal:
    """A fill's cash flow, as Account.settle books it."""
    value = f.qty * f.price
    return (-value if f.side == "buy" else value).quantize(CENT, ROUND_HALF_EVEN) - f.commission
