"""Trades and quotes synthesised from the bars: the bars file holds no ticks, so the local broker makes them up,
the same way for the historical API (GET /v2/stocks/trades, /quotes) and anything else that needs ticks.

Each bar gives four trades along the conventional path inside it: open at the bar's start, then the low and the
high (low first on a bar that closed at or above its open, high first otherwise) at a third and two thirds of
the way, and the close just before its end; the volume is split evenly among them (at least one share each).
Every trade comes with a quote around its price (MarketData.quote_at: the configured spread). Only complete bars
give ticks, so no tick reveals a price from the simulated future. These are not real ticks: they are for
exercising a client's code paths, not for studying microstructure.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

from marketboss.local_broker.marketdata import MarketData, round_price

PER_BAR = 4


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

