"""Trades and quotes synthesised from the bars: the bars file holds no ticks, so the local broker makes them up,
by this one rule for everything that serves ticks: the historical API (GET /v2/stocks/trades, /quotes) and the
market-data stream (data_stream.py), so a bot sees the same trades (ids, prices, sizes, times) on both.

Each bar gives four trades along the conventional path inside it: open at the bar's start, then the low and the
high (low first on a bar that closed at or above its open, high first otherwise) at a third and two thirds of
the way, and the close just before its end; the volume is split evenly among them (at least one share each).
Why this path: its trades rebuild the bar (first = open, extremes = high and low, last = close, sizes = volume),
as a bot aggregating trades into bars expects, and its path covers the bar's whole range, which is where the
fill rules (orders/nb.py) let a resting stop or limit order trade on that bar. Every trade comes with a quote
around its price (MarketData.quote_at: the configured spread). Only complete bars give ticks (the path depends
on the bar's low, high and close), so no tick reveals a price from the simulated future: REST serves a bar's
ticks once the bar is complete, and the stream sends them then, with the bar. These are not real ticks: they
are for exercising a client's code paths, not for studying microstructure.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import Any

from marketboss.local_broker.marketdata import MarketData, round_price

PER_BAR = 4
EXCHANGE, TAPE, QUOTE_SIZE = "V", "C", 1


@dataclass(frozen=True)
class Tick:
    t: int  # microseconds
    price: float  # on the tick grid
    size: int
    id: int  # unique within the symbol: bar index x 4 + position in the bar


def bar_ticks(market: MarketData, symbol: str, i: int) -> list[Tick]:
    """The four synthetic trades of bar i of `symbol`."""
    s = market.series[symbol]
    start, end = s.starts[i], s.ends[i]
    o, h, lo, c = s.opens[i], s.highs[i], s.lows[i], s.closes[i]
    middle = (lo, h) if c >= o else (h, lo)
    span = end - start
    times = (start, start + span // 3, start + 2 * span // 3, end - 1)
    base, extra = divmod(max(int(s.volumes[i]), 0), PER_BAR)
    sizes = [max(base + (1 if k < extra else 0), 1) for k in range(PER_BAR)]
    prices = (o, *middle, c)
    return [Tick(t, float(round_price(p)), n, i * PER_BAR + k)
            for k, (t, p, n) in enumerate(zip(times, prices, sizes, strict=True))]  # fmt: skip


def ticks_between(market: MarketData, symbol: str, start: int, end: int, now: int) -> list[Tick]:
    """Synthetic trades of `symbol` stamped in [start, end], from the bars complete at `now`, in time order."""
    s = market.series.get(symbol)
    if s is None:
        return []
    last = market.last_complete(symbol, now)
    if last is None:
        return []
    out: list[Tick] = []
    i = bisect_left(s.ends, start)  # the first bar that ends at or after start
    while i <= last and s.starts[i] <= end:
        out.extend(x for x in bar_ticks(market, symbol, i) if start <= x.t <= end)
        i += 1
    return out


def trade_fields(x: Tick) -> dict[str, Any]:
    """A synthetic trade as Alpaca shapes one, REST and stream alike (its time is added by each: text or binary)."""
    return {"x": EXCHANGE, "p": x.price, "s": x.size, "c": ["@"], "i": x.id, "z": TAPE}


def quote_fields(market: MarketData, x: Tick) -> dict[str, Any]:
    """The quote that comes with a synthetic trade: the broker's spread around its price."""
    q = market.quote_at(x.price)
    return {"ax": EXCHANGE, "ap": float(q.ask), "as": QUOTE_SIZE, "bx": EXCHANGE, "bp": float(q.bid),
            "bs": QUOTE_SIZE, "c": ["R"], "z": TAPE}  # fmt: skip
