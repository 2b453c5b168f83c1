"""The account's other endpoints: configurations (GET/PATCH /v2/account/configurations), watchlists
(/v2/watchlists CRUD) and portfolio history (GET /v2/account/portfolio/history)."""

from __future__ import annotations

from typing import Any

from marketboss.local_broker.clock import iso_z
from marketboss.local_broker.http import Req, Router, q_choice, q_time
from marketboss.local_broker.portfolio import TIMEFRAMES, history, window
from marketboss.local_broker.state import BrokerState
from marketboss.local_broker.views import asset_json
from marketboss.local_broker.watchlists import Watchlists


class AccountDataRoutes:
    def __init__(self, state: BrokerState):
        self.s = state
        self.watchlists = Watchlists(state.store, set(state.market.symbols))

    def register(self, router: Router) -> None:
        r = router.add
        r("/v2/account/configurations", "GET", self.configurations)
        r("/v2/account/configurations", "PATCH", self.set_configurations)
        r("/v2/account/portfolio/history", "GET", self.portfolio_history)
        r("/v2/watchlists", "GET", self.list_watchlists)
        r("/v2/watchlists", "POST", self.create_watchlist)
        r("/v2/watchlists/{watchlist_id}", "GET", self.get_watchlist)
        r("/v2/watchlists/{watchlist_id}", "PUT", self.update_watchlist)
        r("/v2/watchlists/{watchlist_id}", "POST", self.add_to_watchlist)
        r("/v2/watchlists/{watchlist_id}", "DELETE", self.delete_watchlist)
        r("/v2/watchlists/{watchlist_id}/{symbol}", "DELETE", self.remove_from_watchlist)

    # ------------------------------------------------------------------------------------------ configurations

    async def configurations(self, r: Req) -> tuple[int, Any]:
        return 200, dict(self.s.engine.account.configs.values)

    async def set_configurations(self, r: Req) -> tuple[int, Any]:
        body = await r.json()
        configs = self.s.engine.account.configs
        before = dict(configs.values)
        try:
            with self.s.store.transaction():
                return 200, configs.patch(body)
        except BaseException:
            configs.values = before
            raise

    # ------------------------------------------------------------------------------------------ portfolio history

    async def portfolio_history(self, r: Req) -> tuple[int, Any]:
        q = r.query
        tf = q.get("timeframe") or None
        if tf is not None:
            tf = {k.lower(): k for k in TIMEFRAMES}.get(tf.lower(), tf)
        q_choice(q, "intraday_reporting", ("market_hours", "extended_hours", "continuous"), None)
        q_choice(q, "pnl_reset", ("per_day", "no_reset"), None)
        end = q_time(q, "end")
        date_end = q_time(q, "date_end")
        if end is None and date_end is not None:
            end = date_end + 86_400 * 1_000_000 - 1
        now = self.s.clock.now()
        w = window(self.s.sessions, now, tf, q.get("period") or None, q_time(q, "start"), end)
        fills = self.s.store.query_fills(after=None, until=w.end + 1, descending=False, page_after=None,
                                         limit=1 << 62)  # fmt: skip
        return 200, history(self.s.market, self.s.sessions, fills, self.s.engine.account.cash, w)

    # ------------------------------------------------------------------------------------------ watchlists

    def _json(self, w: dict[str, Any], assets: bool = True) -> dict[str, Any]:
        shortable = self.s.engine.shortable
        return {"id": w["id"], "account_id": self.s.engine.account.account_id, "name": w["name"],
                "created_at": w["created_at"], "updated_at": w["updated_at"],
                "assets": [asset_json(s, shortable(s)) for s in w["symbols"]] if assets else None}  # fmt: skip

    def _change(self, fn: Any, *args: Any) -> dict[str, Any]:
        """One watchlist change in one transaction; on failure the lists are reloaded from the store."""
        try:
            with self.s.store.transaction():
                return dict(fn(*args))
        except BaseException:
            self.watchlists = Watchlists(self.s.store, self.watchlists.known)
            raise

    def _now(self) -> str:
        return iso_z(self.s.clock.now())

    async def list_watchlists(self, r: Req) -> tuple[int, Any]:
        return 200, [self._json(w, assets=False) for w in self.watchlists.lists.values()]

    async def create_watchlist(self, r: Req) -> tuple[int, Any]:
        body = await r.json()
        return 200, self._json(self._change(self.watchlists.create, body, self._now()))

    async def get_watchlist(self, r: Req) -> tuple[int, Any]:
        return 200, self._json(self.watchlists.get(r.params["watchlist_id"]))

    async def update_watchlist(self, r: Req) -> tuple[int, Any]:
        body = await r.json()
        return 200, self._json(self._change(self.watchlists.update, r.params["watchlist_id"], body, self._now()))

    async def add_to_watchlist(self, r: Req) -> tuple[int, Any]:
        body = await r.json()
        return 200, self._json(self._change(self.watchlists.add, r.params["watchlist_id"], body, self._now()))

    async def delete_watchlist(self, r: Req) -> tuple[int, Any]:
        self._change(self.watchlists.delete, r.params["watchlist_id"])
        return 204, None

    async def remove_from_watchlist(self, r: Req) -> tuple[int, Any]:
        p = r.params
        return 200, self._json(self._change(self.watchlists.remove, p["watchlist_id"], p["symbol"], self._now()))
