"""Alpaca's market-data API (/v2/stocks/...): bars, the latest bar, quote and trade, snapshots, and historical
trades and quotes (synthesised from the bars: ticks.py), at the simulated now."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import QueryParams

from marketboss.local_broker.clock import US, iso_z, ny_midnight
from marketboss.local_broker.errors import ApiError, bad_request, not_found
from marketboss.local_broker.http import Req, Router, q_choice, q_int, q_symbols, q_time
from marketboss.local_broker.marketdata import MAX_LIMIT, BarFrame, decode_token, encode_token, parse_barframe
from marketboss.local_broker.orders import parse_symbol
from marketboss.local_broker.state import BrokerState
from marketboss.local_broker.ticks import Tick, quote_fields, ticks_between, trade_fields

FEEDS = ("iex", "sip", "otc", "delayed_sip", "boats", "overnight")
ADJUSTMENTS = ("raw", "split", "dividend", "spin-off", "all")


class MarketDataRoutes:
    def __init__(self, state: BrokerState):
        self.s = state

    def register(self, router: Router) -> None:
        r = router.add
        r("/v2/stocks/bars", "GET", self.bars)
        r("/v2/stocks/bars/latest", "GET", self.latest_bars)
        r("/v2/stocks/quotes/latest", "GET", self.latest_quotes)
        r("/v2/stocks/trades/latest", "GET", self.latest_trades)
        r("/v2/stocks/{symbol}/bars/latest", "GET", self.latest_bar)
        r("/v2/stocks/{symbol}/quotes/latest", "GET", self.latest_quote)
        r("/v2/stocks/{symbol}/trades/latest", "GET", self.latest_trade)
        r("/v2/stocks/trades", "GET", self.trades)
        r("/v2/stocks/quotes", "GET", self.quotes)
        r("/v2/stocks/{symbol}/trades", "GET", self.trades)
        r("/v2/stocks/{symbol}/quotes", "GET", self.quotes)
        r("/v2/stocks/snapshots", "GET", self.snapshots)
        r("/v2/stocks/{symbol}/snapshot", "GET", self.snapshot)
        r("/v2/stocks/{symbol}/bars", "GET", self.bars)

    def _data_params(self, q: QueryParams) -> list[str]:
        q_choice(q, "feed", FEEDS, "iex", bad_request)
        cur = q.get("currency")
        if cur and cur.upper() != "USD":
            raise bad_request("only USD prices are available from the local broker")
        return q_symbols(q, bad_request)

    async def bars(self, r: Req) -> tuple[int, Any]:
        """Bars of the symbols asked for, or of the path's one (its own form, as Alpaca's: the list, its symbol)."""
        q = r.query
        one, symbols = self._symbols_of(r)
        tf = q.get("timeframe")
        if not tf:
            raise bad_request("timeframe is required")
        frame = parse_barframe(tf)
        q_choice(q, "adjustment", ADJUSTMENTS, "raw", bad_request)
        start, end = self._window(q, self.s.clock.now())
        limit = q_int(q, "limit", 1000, 1, MAX_LIMIT, bad_request)
        descending = q_choice(q, "sort", ("asc", "desc"), "asc", bad_request) == "desc"
        known = [s for s in symbols if self.s.market.has(s)]
        bars, token = self.s.market.bars(
            known, frame, start, end, limit, q.get("page_token") or None, descending, self.s.clock.now()
        )
        if one is not None:
            return 200, {"symbol": symbols[0], "bars": bars.get(symbols[0], []), "next_page_token": token}
        return 200, {"bars": bars, "next_page_token": token}

    def _latest(self, q: QueryParams, one: str | None, kind: str) -> dict[str, Any]:
        symbols = [parse_symbol(one)] if one else self._data_params(q)
        if one:
            q_choice(q, "feed", FEEDS, "iex", bad_request)
        now, m = self.s.clock.now(), self.s.market
        out: dict[str, Any] = {}
        for sym in symbols:
            if not m.has(sym):
                continue
            if kind == "bars":
                i = m.last_complete(sym, now)
                if i is not None:
                    out[sym] = m.bar_json(sym, i)
                continue
            quote = m.quote(sym, now)
            if quote is None:
                continue
            if kind == "quotes":
                out[sym] = {"t": iso_z(now), "ax": "V", "ap": float(quote.ask), "as": 1, "bx": "V",
                            "bp": float(quote.bid), "bs": 1, "c": ["R"], "z": "C"}  # fmt: skip
            else:
                out[sym] = {"t": iso_z(now), "x": "V", "p": float(quote.price), "s": 100, "c": ["@"],
                            "i": now // US, "z": "C"}  # fmt: skip
        return out

    async def latest_bars(self, r: Req) -> tuple[int, Any]:
        return 200, {"bars": self._latest(r.query, None, "bars")}

    async def latest_quotes(self, r: Req) -> tuple[int, Any]:
        return 200, {"quotes": self._latest(r.query, None, "quotes")}

    async def latest_trades(self, r: Req) -> tuple[int, Any]:
        return 200, {"trades": self._latest(r.query, None, "trades")}

    async def _latest_one(self, r: Req, kind: str, key: str) -> tuple[int, Any]:
        try:
            sym = parse_symbol(r.params["symbol"])
        except ApiError:
            raise bad_request(f"invalid symbol '{r.params['symbol'][:40]}'") from None
        got = self._latest(r.query, sym, kind)
        if sym not in got:
            raise not_found(f"no {key} for {sym} at the simulated time")
        return 200, {"symbol": sym, key: got[sym]}

    async def latest_bar(self, r: Req) -> tuple[int, Any]:
        return await self._latest_one(r, "bars", "bar")

    async def latest_quote(self, r: Req) -> tuple[int, Any]:
        return await self._latest_one(r, "quotes", "quote")

    async def latest_trade(self, r: Req) -> tuple[int, Any]:
        return await self._latest_one(r, "trades", "trade")

    # ------------------------------------------------------------------------------------------ ticks

    def _ticks(self, r: Req, key: str) -> tuple[int, Any]:
        """Historical trades or quotes (`key`), synthesised from the complete bars; paged as bars are."""
        q = r.query
        one, symbols = self._symbols_of(r)
        now = self.s.clock.now()
        start, end = self._window(q, now)
        end = now if end is None else min(end, now)  # a window after now is empty: only complete bars give ticks
        limit = q_int(q, "limit", 1000, 1, MAX_LIMIT, bad_request)
        descending = q_choice(q, "sort", ("asc", "desc"), "asc", bad_request) == "desc"
        after = decode_token(q["page_token"]) if q.get("page_token") else None
        rows: list[tuple[str, Tick]] = []
        for sym in sorted(set(symbols)):
            if (after is not None and sym < after[0]) or not self.s.market.has(sym):
                continue
            ticks = ticks_between(self.s.market, sym, start, end, now)
            if descending:
                ticks.reverse()
            if after is not None and sym == after[0]:
                ticks = [x for x in ticks if (x.t <= after[1] if descending else x.t >= after[1])]
            rows += [(sym, x) for x in ticks]
            if len(rows) > limit:
                break
        token = encode_token(rows[limit][0], rows[limit][1].t) if len(rows) > limit else None
        out: dict[str, list[dict[str, Any]]] = {}
        for sym, x in rows[:limit]:
            fields = trade_fields(x) if key == "trades" else quote_fields(self.s.market, x)
            out.setdefault(sym, []).append({"t": iso_z(x.t), **fields})
        if one is not None:
            return 200, {"symbol": symbols[0], key: out.get(symbols[0], []), "next_page_token": token}
        return 200, {key: out, "next_page_token": token}

    @staticmethod
    def _window(q: QueryParams, now: int) -> tuple[int, int | None]:
        """A history query's start (Alpaca's default: the start of the current day) and end (None: none given)."""
        start, end = q_time(q, "start", bad_request), q_time(q, "end", bad_request)
        start = ny_midnight(now) if start is None else start
        if end is not None and end < start:
            raise bad_request("end should not be before start")
        return start, end

    def _symbols_of(self, r: Req) -> tuple[str | None, list[str]]:
        """(the path's symbol as given, or None; the symbols asked for): a one-symbol route's, or the query's."""
        one = r.params.get("symbol")
        if one is None:
            return None, self._data_params(r.query)
        q_choice(r.query, "feed", FEEDS, "iex", bad_request)
        return one, [self._path_symbol(one)]

    def _path_symbol(self, raw: str) -> str:
        try:
            return parse_symbol(raw)
        except ApiError:
            raise bad_request(f"invalid symbol '{raw[:40]}'") from None

    async def trades(self, r: Req) -> tuple[int, Any]:
        return self._ticks(r, "trades")

    async def quotes(self, r: Req) -> tuple[int, Any]:
        return self._ticks(r, "quotes")

    # ------------------------------------------------------------------------------------------ snapshots

    def _snapshot(self, sym: str, q: QueryParams) -> dict[str, Any] | None:
        """Latest trade and quote at now, the last complete native bar as the minute bar (intraday data only), and
        the daily bars: today's so far (Alpaca's dailyBar while the session goes on: of intraday data, its complete
        bars up to now) and the day before; with daily data, the last two complete days (today's bar is known only
        once the day is over: nothing from the future)."""
        m, now = self.s.market, self.s.clock.now()
        trade = self._latest(q, sym, "trades").get(sym)
        if trade is None:
            return None
        minute = None
        i = m.last_complete(sym, now)
        if not m.daily and i is not None:
            minute = m.bar_json(sym, i)
        days, _ = m.bars([sym], BarFrame(1, "Day"), None, None, 2, None, True, now)
        daily = days.get(sym, [])
        today = m.day_so_far(sym, now)
        if today is not None and (not daily or daily[0]["t"] != today["t"]):
            daily = [today, *daily]
        return {"latestTrade": trade, "latestQuote": self._latest(q, sym, "quotes").get(sym), "minuteBar": minute,
                "dailyBar": daily[0] if daily else None,
                "prevDailyBar": daily[1] if len(daily) > 1 else None}  # fmt: skip

    async def snapshots(self, r: Req) -> tuple[int, Any]:
        out: dict[str, Any] = {}
        for sym in self._data_params(r.query):
            if self.s.market.has(sym):
                snap = self._snapshot(sym, r.query)
                if snap is not None:
                    out[sym] = snap
        return 200, out

    async def snapshot(self, r: Req) -> tuple[int, Any]:
        sym = self._path_symbol(r.params["symbol"])
        q_choice(r.query, "feed", FEEDS, "iex", bad_request)
        snap = self._snapshot(sym, r.query) if self.s.market.has(sym) else None
        if snap is None:
            raise not_found(f"no snapshot for {sym} at the simulated time")
        return 200, {"symbol": sym, **snap}
