"""The bars file as the simulated market: the price of any moment, quotes around it, and Alpaca's bar queries.

A bar spans [start, end): intraday bars from their stamp for one bar length (cut at the session close), daily
bars over their session's open->close. Bars at least 20 hours apart are daily bars whatever the time of day they
are stamped (CSVs often stamp them at the 16:00 close); they are served stamped at midnight New York, as Alpaca
stamps them. Inside a bar the price moves linearly from
the open to the close; between bars it stays at the last close. Only complete bars are ever served, so a client
never sees a price from the simulated future.
"""

from __future__ import annotations

import base64
import binascii
import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from typing import Any

import polars as pl

from marketboss.data.calendar import NY, are_daily, served_stamps, smallest_spacing
from marketboss.local_broker.clock import US, Sessions, iso_z, ny_midnight
from marketboss.local_broker.errors import bad_request

CENT = Decimal("0.01")
SUBCENT = Decimal("0.0001")
_TF = re.compile(r"^(\d{1,3})(Min|T|Hour|H|Day|D|Week|W|Month|M)$")
_UNITS = {"T": "Min", "H": "Hour", "D": "Day", "W": "Week", "M": "Month"}
MAX_LIMIT = 10_000


def tick(price: Decimal) -> Decimal:
    """Alpaca's price increment: cents from $1 up, 1/100 cent below."""
    return CENT if price >= 1 else SUBCENT


def round_price(p: float | Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    d = p if isinstance(p, Decimal) else Decimal(repr(float(p)))
    return d.quantize(tick(d), rounding=rounding)


@dataclass(frozen=True)
class Quote:
    bid: Decimal
    ask: Decimal
    price: Decimal  # the mid ("last") price, on the tick grid


@dataclass(frozen=True)
class Bar:
    """A complete bar of one symbol: [start, end) and the prices the rules look at."""

    start: int
    end: int
    open: float
    high: float
    low: float

    @classmethod
    def moment(cls, t: int, price: float) -> Bar:
        """The price of one moment as a bar."""
        return cls(t, t + 1, price, price, price)

    def stamp(self, price: float) -> int:
        """When a fill on this bar happened: at the start if it traded at the open, else at the bar's last
        microsecond (the path inside the bar is unknown; the fill is known once the bar is complete)."""
        return self.start if price == self.open else self.end - 1


@dataclass
class Series:
    """One symbol's bars as parallel lists (bisect on plain lists beats numpy for single lookups)."""

    stamps: list[int]
    starts: list[int]
    ends: list[int]
    opens: list[float]
    highs: list[float]
    lows: list[float]
    closes: list[float]
    volumes: list[int]


@dataclass(frozen=True)
class BarFrame:
    """A requested timeframe: native bars or an aggregation of them (Alpaca's 1Min..59Min, 1..23Hour, 1Day,
    1Week, 1..12Month spellings)."""

    amount: int
    unit: str

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"


def parse_barframe(text: str) -> BarFrame:
    m = _TF.match(text.strip())
    if not m:
        raise bad_request(f"invalid timeframe '{text[:40]}'")
    amount, unit = int(m.group(1)), _UNITS.get(m.group(2), m.group(2))
    limits = {"Min": 59, "Hour": 23, "Day": 1, "Week": 1, "Month": 12}
    if not 1 <= amount <= limits[unit] or (unit == "Month" and amount not in (1, 2, 3, 4, 6, 12)):
        raise bad_request(f"invalid timeframe '{text[:40]}'")
    return BarFrame(amount, unit)


class MarketData:
    def __init__(self, bars: pl.DataFrame, sessions: Sessions, spread_bps: float):
        if bars.is_empty():
            raise ValueError("the bars file has no bars")
        self.sessions = sessions
        self.half_spread = Decimal(repr(spread_bps)) / Decimal(20_000)
        ts = bars["timestamp"].dt.epoch("us")
        step = smallest_spacing(ts, bars["symbol"])
        self.daily = are_daily(ts, step)  # whatever the time of day they are stamped (16:00 ET is a daily bar too)
        self.step_us = 0 if self.daily else step or 60 * US
        ts = served_stamps(ts, self.daily)  # daily: as Alpaca stamps them, midnight New York of the session's day
        self.series: dict[str, Series] = {}
        for (sym,), g in bars.with_columns(_t=ts).sort("symbol", "_t").group_by("symbol", maintain_order=True):
            st = g["_t"].to_list()
            spans = [self._span(t) for t in st]
            self.series[str(sym)] = Series(
                st,
                [s for s, _ in spans],
                [e for _, e in spans],
                g["open"].to_list(),
                g["high"].to_list(),
                g["low"].to_list(),
                g["close"].to_list(),
                g["volume"].to_list(),
            )
        self.symbols = sorted(self.series)
        self.first_start = min(s.starts[0] for s in self.series.values())
        self.last_end = max(s.ends[-1] for s in self.series.values())
        self.native = BarFrame(1, "Day") if self.daily else BarFrame(self.step_us // (60 * US), "Min")
        self._frame = pl.DataFrame(
            {
                "symbol": [s for s, ser in self.series.items() for _ in ser.stamps],
                "t": [t for ser in self.series.values() for t in ser.stamps],
                "end": [e for ser in self.series.values() for e in ser.ends],
                "o": [x for ser in self.series.values() for x in ser.opens],
                "h": [x for ser in self.series.values() for x in ser.highs],
                "l": [x for ser in self.series.values() for x in ser.lows],
                "c": [x for ser in self.series.values() for x in ser.closes],
                "v": [x for ser in self.series.values() for x in ser.volumes],
            },
            schema={"symbol": pl.String, "t": pl.Int64, "end": pl.Int64, "o": pl.Float64, "h": pl.Float64,
                    "l": pl.Float64, "c": pl.Float64, "v": pl.Int64},
        )  # fmt: skip

    def _span(self, stamp: int) -> tuple[int, int]:
        if self.daily:
            span = self.sessions.span_of_day(stamp)
            # Not a session (odd data): assume 09:30-16:00 New York of that day.
            return span or (stamp + (9 * 3600 + 1800) * US, stamp + 16 * 3600 * US)
        close = self.sessions.next_close(stamp)
        end = stamp + self.step_us
        return stamp, min(end, close) if self.sessions.is_open(stamp) else end

    # ------------------------------------------------------------------------------------------ prices

    def has(self, symbol: str) -> bool:
        return symbol in self.series

    def price(self, symbol: str, t: int) -> float | None:
        """The simulated price at t: open->close along the bar in progress, else the last close; None before
        the symbol's first bar."""
        s = self.series.get(symbol)
        if s is None:
            return None
        i = bisect_right(s.starts, t) - 1
        if i < 0:
            return None
        end = s.ends[i]
        if t >= end:
            return s.closes[i]
        start = s.starts[i]
        frac = (t - start) / (end - start)
        return s.opens[i] + (s.closes[i] - s.opens[i]) * frac

    def bar_in_progress(self, symbol: str, t: int) -> Bar | None:
        """The symbol's bar that started at or before t and has not ended (None: between its bars, or none)."""
        s = self.series.get(symbol)
        i = -1 if s is None else bisect_right(s.starts, t) - 1
        if s is None or i < 0 or t >= s.ends[i]:
            return None
        return self.bar(symbol, i)

    def price_before(self, symbol: str, t: int) -> float:
        """The last price before t: at a bar's first instant, the close before it (its open trades at or after an
        order placed then, which Alpaca checks against the last trade: the live loop's, sent at that close)."""
        p = self.price(symbol, t - 1)
        return self.reference_price(symbol, t) if p is None else p

    def between_bars(self, symbol: str, t: int) -> bool:
        """Whether t falls after one of the symbol's bars ends and before its next starts (a minute, or a day,
        without a trade of it)."""
        s = self.series.get(symbol)
        if s is None:
            return False
        i = bisect_right(s.starts, t) - 1
        return 0 <= i < len(s.starts) - 1 and t >= s.ends[i]

    def next_start(self, symbol: str, t: int) -> int | None:
        """The start of the symbol's first bar after t; None without one."""
        starts = self.series[symbol].starts
        i = bisect_right(starts, t)
        return starts[i] if i < len(starts) else None

    def reference_price(self, symbol: str, t: int) -> float:
        """The price at t, or the first open when t is before the data (a stand-in for buying-power checks)."""
        p = self.price(symbol, t)
        return self.series[symbol].opens[0] if p is None else p

    def bar(self, symbol: str, i: int) -> Bar:
        s = self.series[symbol]
        return Bar(s.starts[i], s.ends[i], s.opens[i], s.highs[i], s.lows[i])

    def bar_ends_between(self, symbol: str, t0: int, t1: int) -> list[tuple[int, int]]:
        """(index, end) of the symbol's bars that complete in (t0, t1]."""
        ends = self.series[symbol].ends
        lo, hi = bisect_right(ends, t0), bisect_right(ends, t1)
        return [(i, ends[i]) for i in range(lo, hi)]

    def bar_starts_between(self, symbol: str, t0: int, t1: int) -> list[tuple[int, int]]:
        """(index, start) of the symbol's bars that start in (t0, t1]."""
        starts = self.series[symbol].starts
        lo, hi = bisect_right(starts, t0), bisect_right(starts, t1)
        return [(i, starts[i]) for i in range(lo, hi)]

    def last_close(self, symbol: str, t: int) -> float:
        """The close of the last bar complete at t (the price an order placed at t is placed at, as the backtest
        sees it), or the reference price before the first bar ends."""
        i = self.last_complete(symbol, t)
        return self.reference_price(symbol, t) if i is None else self.series[symbol].closes[i]

    def quote(self, symbol: str, t: int) -> Quote | None:
        p = self.price(symbol, t)
        if p is None:
            return None
        return self.quote_at(p)

    def quote_at(self, p: float) -> Quote:
        mid = Decimal(repr(p))
        half = mid * self.half_spread
        bid = (mid - half).quantize(tick(mid), rounding=ROUND_FLOOR)
        ask = (mid + half).quantize(tick(mid), rounding=ROUND_CEILING)
        return Quote(max(bid, tick(mid)), ask, round_price(mid))

    def last_complete(self, symbol: str, t: int) -> int | None:
        """Index of the last bar that ended at or before t."""
        s = self.series.get(symbol)
        if s is None:
            return None
        i = bisect_right(s.ends, t) - 1
        return i if i >= 0 else None

    def day_so_far(self, symbol: str, t: int) -> dict[str, Any] | None:
        """The New York day's bar t falls in, of its intraday bars complete by t (what a snapshot's dailyBar shows
        during the session); None with daily data, or before the day's first bar is complete."""
        s = self.series.get(symbol)
        if self.daily or s is None:
            return None
        day = ny_midnight(t)
        lo, hi = bisect_left(s.stamps, day), bisect_right(s.ends, t)
        if hi <= lo:
            return None
        return {"t": iso_z(day), "o": s.opens[lo], "h": max(s.highs[lo:hi]), "l": min(s.lows[lo:hi]),
                "c": s.closes[hi - 1], "v": sum(s.volumes[lo:hi]), "n": None, "vw": None}  # fmt: skip

    def bar_json(self, symbol: str, i: int) -> dict[str, Any]:
        s = self.series[symbol]
        return {"t": iso_z(s.stamps[i]), "o": s.opens[i], "h": s.highs[i], "l": s.lows[i], "c": s.closes[i],
                "v": s.volumes[i], "n": None, "vw": None}  # fmt: skip

    def bar_starting_at_stamp(self, stamp: int) -> int | None:
        """The start of the span of the bar stamped `stamp` (any symbol)."""
        for s in self.series.values():
            i = bisect_right(s.stamps, stamp) - 1
            if i >= 0 and s.stamps[i] == stamp:
                return s.starts[i]
        return None

    def next_bar_start(self, t: int) -> int | None:
        """The earliest bar start after t over all symbols."""
        best: int | None = None
        for s in self.series.values():
            i = bisect_right(s.starts, t)
            if i < len(s.starts) and (best is None or s.starts[i] < best):
                best = s.starts[i]
        return best

    def current_bar_end(self, t: int) -> int | None:
        """The end of the bar in progress at t (earliest over symbols), None between bars."""
        best: int | None = None
        for s in self.series.values():
            i = bisect_right(s.starts, t) - 1
            if i >= 0 and t < s.ends[i] and (best is None or s.ends[i] < best):
                best = s.ends[i]
        return best

    # ------------------------------------------------------------------------------------------ bar queries

    @lru_cache(maxsize=16)  # noqa: B019 - one MarketData per server, kept for its lifetime
    def _aggregated(self, frame: BarFrame) -> pl.DataFrame:
        df = self._frame
        if frame == self.native:
            return df.rename({"end": "complete_at"})
        if frame.unit in ("Min", "Hour"):
            width = frame.amount * (60 if frame.unit == "Min" else 3600) * US
            if self.daily or width % self.step_us:
                raise bad_request(f"timeframe {frame} is finer than or not a multiple of the data's {self.native}")
            bucket = (pl.col("t") // width) * width
        else:
            local = pl.from_epoch(pl.col("t"), time_unit="us").dt.replace_time_zone("UTC").dt.convert_time_zone(NY)
            every = {"Day": "1d", "Week": "1w", "Month": f"{frame.amount}mo"}[frame.unit]
            bucket = local.dt.truncate(every).dt.convert_time_zone("UTC").dt.epoch("us")
        return (
            df.with_columns(bucket.alias("b"))
            .group_by("symbol", "b")
            .agg(
                pl.col("o").sort_by("t").first(),
                pl.col("h").max(),
                pl.col("l").min(),
                pl.col("c").sort_by("t").last(),
                pl.col("v").sum(),
                pl.col("end").max().alias("complete_at"),
            )
            .rename({"b": "t"})
            .sort("symbol", "t")
        )

    def bars(
        self,
        symbols: list[str],
        frame: BarFrame,
        start: int | None,
        end: int | None,
        limit: int,
        page_token: str | None,
        descending: bool,
        now: int,
    ) -> tuple[dict[str, list[dict[str, Any]]], str | None]:
        """Alpaca's GET /v2/stocks/bars: sorted by symbol then time; `limit` counts bars across symbols."""
        df = self._aggregated(frame).filter(pl.col("symbol").is_in(symbols) & (pl.col("complete_at") <= now))
        if start is not None:
            df = df.filter(pl.col("t") >= start)
        if end is not None:
            df = df.filter(pl.col("t") <= end)
        df = df.sort(["symbol", "t"], descending=[False, descending])
        if page_token:
            sym, t = decode_token(page_token)
            after = (pl.col("symbol") > sym) | (
                (pl.col("symbol") == sym) & ((pl.col("t") <= t) if descending else (pl.col("t") >= t))
            )
            df = df.filter(after)
        page = df.head(limit + 1)
        nxt = encode_token(page["symbol"][limit], int(page["t"][limit])) if page.height > limit else None
        out: dict[str, list[dict[str, Any]]] = {}
        for sym, t, o, h, lo, c, v in page.head(limit).select("symbol", "t", "o", "h", "l", "c", "v").iter_rows():
            out.setdefault(sym, []).append(
                {"t": iso_z(t), "o": o, "h": h, "l": lo, "c": c, "v": v, "n": None, "vw": None}
            )
        return out, nxt


def encode_token(symbol: str, t: int) -> str:
    return base64.urlsafe_b64encode(f"{symbol}|{t}".encode()).decode().rstrip("=")


def decode_token(token: str) -> tuple[str, int]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        sym, t = raw.rsplit("|", 1)
        return sym, int(t)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise bad_request("invalid page_token") from None
