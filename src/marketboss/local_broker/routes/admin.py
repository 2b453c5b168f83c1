"""/admin/: the simulated clock (read it, move it), fault injection at run time, and the server's state. Never
subject to injected faults or the rate limit, so a test can always switch faults off again."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from marketboss.local_broker.clock import US, iso_et, iso_z, parse_time
from marketboss.local_broker.config import FaultConfig
from marketboss.local_broker.errors import invalid
from marketboss.local_broker.http import Req, Router
from marketboss.local_broker.records import num
from marketboss.local_broker.state import BrokerState


class AdminRoutes:
    def __init__(self, state: BrokerState, requests: Counter[int]):
        self.s = state
        self.requests = requests  # the HTTP layer's answers by status

    def register(self, router: Router) -> None:
        r = router.add
        r("/admin/clock", "GET", self.admin_clock)
        r("/admin/clock", "POST", self.admin_set_clock)
        r("/admin/faults", "GET", self.admin_faults)
        r("/admin/faults", "POST", self.admin_set_faults)
        r("/admin/state", "GET", self.admin_state)

    def _clock_view(self) -> dict[str, Any]:
        c, m, ses = self.s.clock, self.s.market, self.s.sessions
        t = c.now()
        nxt = m.next_bar_start(t)
        return {
            "timestamp": iso_z(t),
            "timestamp_et": iso_et(t),
            "mode": c.mode,
            "speed": c.speed,
            "always_open": c.always_open,
            "is_open": c.is_open(t),
            "next_open": iso_z(ses.next_open(t)),
            "next_close": iso_z(ses.next_close(t)),
            "next_bar": None if nxt is None else iso_z(nxt),
            "data_start": iso_z(m.first_start),
            "data_end": iso_z(m.last_end),
            "data_timeframe": str(m.native),  # the length of the bars the market-data stream sends
        }

    async def admin_clock(self, r: Req) -> tuple[int, Any]:
        return 200, self._clock_view()

    async def admin_set_clock(self, r: Req) -> tuple[int, Any]:
        """Body: exactly one of {"timestamp": T}, {"bar": STAMP} (the start of the bar stamped STAMP, e.g. a daily
        bar's session open), {"advance": "next_bar"|"bar_end"|"next_open"|"next_close"} or {"seconds": N};
        optionally "allow_backwards": true. At "bar_end" the bars starting there wait to open until the clock is
        set again (Engine.step's hold: a replay's cancel comes between a bar and the next)."""
        body = await r.json()
        if not isinstance(body, dict):
            raise invalid("body must be a JSON object")
        unknown = set(body) - {"timestamp", "bar", "advance", "seconds", "allow_backwards"}
        if unknown:
            raise invalid(f"unknown field(s): {', '.join(sorted(unknown))[:80]}")
        given = [k for k in ("timestamp", "bar", "advance", "seconds") if body.get(k) is not None]
        if len(given) != 1:
            raise invalid("give exactly one of timestamp, bar, advance or seconds")
        back = body.get("allow_backwards", False)
        if not isinstance(back, bool):
            raise invalid("allow_backwards must be a boolean")
        c, m, ses = self.s.clock, self.s.market, self.s.sessions
        now = c.now()
        target = self._clock_target(given[0], body[given[0]], now)
        if target < now and not back:
            raise invalid(f"the clock cannot move backwards (now {iso_z(now)}); send allow_backwards: true")
        if target > ses.last_close:
            raise invalid(f"{iso_z(target)} is beyond the NYSE calendar (last close {iso_z(ses.last_close)})")
        if target < m.first_start - 366 * 86_400 * US:
            raise invalid(f"{iso_z(target)} is more than a year before the data ({iso_z(m.first_start)})")
        c.set(target)
        e = self.s.engine
        if target < e.processed:
            e.rewind(target)
        self.s.save_clock()
        # a bar's end holds the opens there (a replay's cancel comes first); any other setting lets them go
        fills = e.step(time.time(), hold=given[0] == "advance" and body["advance"] == "bar_end")
        self.s.poke()
        self.s.clock_set()
        return 200, {**self._clock_view(), "fills": fills}

    def _clock_target(self, kind: str, value: Any, now: int) -> int:
        m, ses = self.s.market, self.s.sessions
        if kind in ("timestamp", "bar"):
            if not isinstance(value, str):
                raise invalid(f"{kind} must be an RFC 3339 timestamp string")
            try:
                t = parse_time(value)
            except (ValueError, OverflowError):
                raise invalid(f"invalid {kind} '{value[:40]}'") from None
            if kind == "timestamp":
                return t
            start = m.bar_starting_at_stamp(t)
            if start is None:
                raise invalid(f"no bar is stamped {iso_z(t)}")
            return start
        if kind == "seconds":
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 20 * 366 * 86_400:
                raise invalid("seconds must be a positive number (at most 20 years)")
            return now + int(value * US)
        choices: dict[str, Callable[[int], int | None]] = {
            "next_bar": m.next_bar_start,
            "bar_end": m.current_bar_end,
            "next_open": ses.next_open,
            "next_close": ses.next_close,
        }
        if not isinstance(value, str) or value not in choices:
            raise invalid(f"advance must be one of {', '.join(choices)}")
        found = choices[value](now)
        if found is None:
            raise invalid(f"no {value.replace('_', ' ')} after {iso_z(now)}")
        return found

    async def admin_faults(self, r: Req) -> tuple[int, Any]:
        return 200, {**self.s.faults.cfg.model_dump(mode="json"), "injected": dict(self.s.faults.injected)}

    async def admin_set_faults(self, r: Req) -> tuple[int, Any]:
        """The body replaces the whole fault configuration (missing fields: off); {} switches faults off."""
        body = await r.json()
        try:
            cfg = FaultConfig.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or "body"
            raise invalid(f"{where}: {first['msg']}"[:300]) from None
        self.s.faults.configure(cfg)
        self.s.engine.fills.reject_rate = cfg.reject_rate
        return 200, {**cfg.model_dump(mode="json"), "injected": dict(self.s.faults.injected)}

    async def admin_state(self, r: Req) -> tuple[int, Any]:
        e = self.s.engine
        v = e.valuation(self.s.clock.now())
        return 200, {
            "clock": self._clock_view(),
            "account": {"cash": num(v.cash), "equity": num(v.equity), "buying_power": num(v.buying_power)},
            "open_orders": len(e.book.open),
            **self.s.store.counts(),
            "requests": {str(k): n for k, n in sorted(self.requests.items())},
            "faults": self.s.faults.cfg.model_dump(mode="json"),
            "faults_injected": dict(self.s.faults.injected),
            "config": self.s.cfg.public(),
        }

