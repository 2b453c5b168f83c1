"""Alpaca's market-data API (/v2/stocks/...): bars, and the latest bar, quote and trade, at the simulated now."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import QueryParams

from marketboss.local_broker.clock import US, iso_z
from marketboss.local_broker.errors import ApiError, bad_request, not_found
from marketboss.local_broker.http import Req, Router, q_choice, q_int, q_symbols, q_time
from marketboss.local_broker.marketdata import MAX_LIMIT, parse_barframe
from marketboss.local_broker.orders import parse_symbol
from marketboss.local_broker.state import BrokerState

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

    def _data_params(self, q: QueryParams) -> list[str]:
        q_choice(q, "feed", FEEDS, "iex", bad_request)
        cur = q.get("currency")
        if cur and cur.upper() != "USD":
            raise bad_request("only USD prices are available from the local broker")
        return q_symbols(q, bad_request)

    async def bars(self, r: Req) -> tuple[int, Any]:
        q = r.query
        symbols = self._data_params(q)
        tf = q.get("timeframe")
        if not tf:
            raise bad_request("timeframe is required")
        frame = parse_barframe(tf)
        q_choice(q, "adjustment", ADJUSTMENTS, "raw", bad_request)
        start, end = q_time(q, "start", bad_request), q_time(q, "end", bad_request)
        if start is not None and end is not None and end < start:
            raise bad_request("end should not be before start")
        limit = q_int(q, "limit", 1000, 1, MAX_LIMIT, bad_request)
        descending = q_choice(q, "sort", ("asc", "desc"), "asc", bad_request) == "desc"
        known = [s for s in symbols if self.s.market.has(s)]
        bars, token = self.s.market.bars(
            known, frame, start, end, limit, q.get("page_token") or None, descending, self.s.clock.now()
        )
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
