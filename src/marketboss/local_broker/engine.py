"""The matching engine: admits orders and brings the book to the clock's now, coordinating the order book
(book.py), the account (account.py), the rules on bars (matching.py) and the fill model (fills.py) inside one
store transaction per change. Working orders are tested as bars open and complete; market orders (and stops that
triggered) trade at the price of the moment.

Admission: orders that open or grow a position need buying power (account.py); orders that reduce a position
need shares, not buying power: they may not exceed the position less what other open orders already hold (no
flipping long to short in one order, as at Alpaca).
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import math
import uuid
from collections.abc import Iterator
from decimal import ROUND_DOWN, Decimal

from marketboss.local_broker.account import PDT_FLOOR, Account, PositionView, Valuation, ny_day
from marketboss.local_broker.book import Book, reservation
from marketboss.local_broker.clock import US, MarketClock, Sessions
from marketboss.local_broker.config import BrokerConfig
from marketboss.local_broker.errors import NOT_CANCELABLE, PDT_DENIED, ApiError, forbidden, invalid, not_found
from marketboss.local_broker.fills import FillModel
from marketboss.local_broker.marketdata import CENT, Bar, MarketData, Quote, round_price, tick
from marketboss.local_broker.matching import leg_to_fill, rule_price
from marketboss.local_broker.orders import OrderRequest, ReplaceRequest
from marketboss.local_broker.records import Order, num
from marketboss.local_broker.store import Store, stored_meta
from marketboss.orders import buy_stop_limit

ZERO = Decimal(0)
NANO = Decimal("1e-9")


class Engine:
    def __init__(self, cfg: BrokerConfig, store: Store, market: MarketData, clock: MarketClock, sessions: Sessions):
        self.cfg = cfg
        self.store = store
        self.market = market
        self.clock = clock
        self.sessions = sessions
        self.fills = FillModel(cfg)
        self._load()

    def _load(self) -> None:
        """The account and the book from the store: at start, and after a failed transaction, so memory never
        runs ahead of what was committed."""
        with self.store.transaction():
            self.account = Account(self.store, self.market, self.clock, self.cfg)
            self.processed = int(stored_meta(self.store, "processed_us", lambda: str(self.clock.now())))
            self.opens_held = stored_meta(self.store, "opens_held", lambda: "") == "1"
        self.book = Book(self.store)

    def reload(self) -> None:
        """Memory back to what the store holds (after the server's batch commit failed: commits.py)."""
        self._load()

    @contextlib.contextmanager
    def _atomic(self) -> Iterator[None]:
        """One transaction; if anything fails inside, the store rolls back and memory is reloaded from it."""
        try:
            with self.store.transaction():
                yield
        except BaseException:
            self._load()
            raise

    # ------------------------------------------------------------------------------------------ views

    def valuation(self, t: int) -> Valuation:
        return self.account.valuation(t, self.book.reserved())

    def held(self, symbol: str, side: str) -> Decimal:
        """Shares that open closing orders on `side` already claim; notional ones at the last processed price."""
        return self.book.held(symbol, side, self._reference)

    def _reference(self, symbol: str) -> Decimal:
        return Decimal(repr(self.market.reference_price(symbol, self.processed)))

    def position_views(self, t: int) -> list[PositionView]:
        prev = self.sessions.previous_close(t)
        out = []
        for p in sorted(self.account.positions.values(), key=lambda p: p.symbol):
            price = self.account.mark(p.symbol, t, p.avg_entry_price)
            lastday = price if prev is None else self.account.mark(p.symbol, prev, price)
            held = self.held(p.symbol, "sell" if p.qty > 0 else "buy")
            out.append(PositionView(p, price, lastday, held))
        return out

    def get_order(self, order_id: str) -> Order | None:
        return self.book.get(order_id)

    def legs_of(self, parent_id: str) -> list[Order]:
        return self.book.legs_of(parent_id)

    # ------------------------------------------------------------------------------------------ admission

    def submit(self, req: OrderRequest, now: int, wall: float) -> tuple[Order, list[Order]]:
        """Check and record an order (status accepted); the fill comes later from step()."""
        if self.cfg.buy_stop_collar:
            req = collar_buy_stop(req)
        if not self.market.has(req.symbol):
            raise invalid(f'asset "{req.symbol}" not found')
        cid = req.client_order_id
        if cid is not None and self.store.client_id_taken(cid):
            raise invalid("client_order_id must be unique")
        quote = self.market.quote_at(self.market.reference_price(req.symbol, now))
        intent, reserve_price = self._admit(req, quote, now, None)
        if req.order_class == "oco" and intent.endswith("_to_open"):
            raise forbidden("oco orders must exit an existing position")
        if req.order_class in ("bracket", "oto"):  # at a bar's open, against the close before it
            _check_bracket(req, self.market.quote_at(self.market.price_before(req.symbol, now)))
        expires = self.sessions.day_order_expiry(now, req.extended_hours) if req.tif == "day" else None
        mark, live_from = self._trailing_mark(req, now) if req.type == "trailing_stop" else (None, now)
        with self._atomic():
            parent, legs = self.book.place(
                req, cid or str(uuid.uuid4()), intent, reserve_price, now, self.fills.eligible(wall), expires, mark,
                live_from,
            )
        self.book.open_all((parent, *legs))
        return parent, legs

    def _trailing_mark(self, req: OrderRequest, now: int) -> tuple[float, int]:
        """Where a trailing stop placed at `now` starts its mark, and the first bar it works on (its start), as the
        backtest sets a trailing exit's. After an entry (the other side) of the symbol that filled at the open of
        the bar in progress, an order waiting for that open (the trailing exit the executor places once its entry
        filled, whatever the fill latency and the delay before it is placed): the price of that fill, before
        costs, and this whole bar, which follows the fill (its high or low moves the mark). Else right after the
        account traded the symbol at this very moment, that moment's price; else the last close (the backtest
        places a signal's order after its bar's close, where a replay sends it at the next bar's open); both from
        the next bar."""
        sym, entry = req.symbol, "buy" if req.side == "sell" else "sell"
        bar = self.market.bar_in_progress(sym, now)
        # a fill on the bar's prices is stamped at its start (the open) or its last microsecond (inside it)
        opened = None if bar is None else self.store.first_fill(sym, entry, bar.start, min(now, bar.end - 2), bar.start)
        if bar is not None and opened is not None:
            return self.market.reference_price(sym, opened), bar.start
        if self.store.first_fill(sym, entry, now, now, now) is not None:
            return self.market.reference_price(sym, now), now
        return self.market.last_close(sym, now), now

    def _admit(self, req: OrderRequest, quote: Quote, now: int, replacing: Order | None) -> tuple[str, Decimal | None]:
        """The order's intent and the price each share reserves of buying power; raises when Alpaca would refuse
        it: a closing order beyond the shares not yet claimed, an opening one beyond the buying power (`replacing`:
        the order being replaced, whose claim and reservation are released for the check)."""
        sym = req.symbol
        acct = self.account
        if acct.configs["suspend_trade"]:
            raise forbidden("new orders are rejected: trading is suspended by the account configuration")
        fractional = req.notional is not None or (req.qty is not None and req.qty != req.qty.to_integral_value())
        if fractional and not acct.configs["fractional_trading"]:
            raise forbidden("fractional trading is disabled by the account configuration")
        pos_qty = acct.qty(sym)
        buy = req.side == "buy"
        closing = pos_qty < 0 if buy else pos_qty > 0
        self._check_pdt(sym, closing, now)
        if closing:
            claimed = self.book.held(sym, req.side, self._reference, None if replacing is None else replacing.id)
            available = abs(pos_qty) - claimed
            wanted = req.qty if req.qty is not None else (req.notional or ZERO) / (quote.ask if buy else quote.bid)
            if wanted > available:
                raise forbidden(
                    f"insufficient qty available for order (requested: {num(wanted.quantize(NANO))}, "
                    f"available: {num(available)})",
                    symbol=sym, existing_qty=num(pos_qty), held_for_orders=num(abs(pos_qty) - available),
                    available=num(available),
                )  # fmt: skip
            return ("buy_to_close" if buy else "sell_to_close"), None
        v = self.valuation(now)
        if not buy:
            self._check_short(req, v)
        reserve_price = acct.reserve_price(req, quote)
        cost = req.notional if req.qty is None else req.qty * reserve_price
        bp = v.buying_power + (ZERO if replacing is None else reservation(replacing))
        if cost is not None and cost > bp:
            raise forbidden("insufficient buying power", buying_power=num(bp), cost_basis=num(cost.quantize(CENT)))
        return ("buy_to_open" if buy else "sell_to_open"), reserve_price

    def _check_short(self, req: OrderRequest, v: Valuation) -> None:
        """Alpaca's short sales: a margin account with at least $2,000 of equity, an easy-to-borrow asset,
        whole shares, and shorting not switched off in the account configurations."""
        if self.cfg.multiplier == 1:
            raise forbidden("account is not allowed to short (cash account)")
        if self.account.configs["max_margin_multiplier"] == "1":
            raise forbidden("account is not allowed to short: max_margin_multiplier is 1 in the account configurations")
        if v.multiplier == 1:
            raise forbidden("account is not allowed to short: equity is below the $2,000 margin minimum")
        if self.account.configs["no_shorting"]:
            raise forbidden("account is not allowed to short: no_shorting is set in the account configurations")
        if not self.easy_to_borrow(req.symbol):
            raise forbidden(f"asset {req.symbol} is not easy to borrow: it cannot be sold short")
        if req.qty is None or req.qty != req.qty.to_integral_value():
            raise forbidden("fractional orders cannot be sold short")

    def easy_to_borrow(self, symbol: str) -> bool:
        return symbol not in self.cfg.hard_to_borrow

    def shortable(self, symbol: str) -> bool:
        """What GET /v2/assets says: a margin account that may short (as configured), and an easy-to-borrow
        asset."""
        configs = self.account.configs
        return (self.cfg.multiplier > 1 and configs["max_margin_multiplier"] != "1" and not configs["no_shorting"]
                and self.easy_to_borrow(symbol))  # fmt: skip

    def daytrade_count(self, now: int) -> int:
        """Day trades over the last five sessions (today's included)."""
        opens = self.sessions.opens_between(now - 10 * 86_400 * US, now)[-5:]
        return self.account.daytrades.count([ny_day(o) for o in opens])

    def _check_pdt(self, symbol: str, closing: bool, now: int) -> None:
        """Alpaca's pattern-day-trader protection: under $25,000 at the last close, with 3 day trades in the last
        five sessions, an order that could make a fourth is refused (403): per pdt_check, an entry (any opening
        order) and/or an exit of shares opened today."""
        if not self.cfg.pdt_protection or self.account.last_equity >= PDT_FLOOR:
            return
        check = self.account.configs["pdt_check"]
        if closing:
            if check == "entry" or self.account.daytrades.opened_today(symbol, ny_day(now)) <= 0:
                return
        elif check == "exit":
            return
        if self.daytrade_count(now) >= 3:
            raise ApiError(403, PDT_DENIED, "trade denied due to pattern day trading protection")

    # ------------------------------------------------------------------------------------------ replace

    def replace(self, order_id: str, change: ReplaceRequest, now: int, wall: float) -> Order:
        """Alpaca's PATCH /v2/orders/{id}: a new order (new id, `replaces` the old) with the changed fields; the
        old one is "replaced". Only working orders (new, partially filled) of whole shares can be replaced; a
        partly filled order's replacement trades `qty` (default: what was left)."""
        old = self.get_order(order_id)
        if old is None:
            raise not_found("order not found")
        if old.status not in ("new", "partially_filled"):
            raise ApiError(422, NOT_CANCELABLE, f'order is in "{old.status}" state and cannot be replaced')
        if old.notional is not None:
            raise invalid("notional orders cannot be replaced")
        if change.qty is not None and old.qty is not None and old.qty != old.qty.to_integral_value():
            raise invalid("the qty of a fractional order cannot be changed")
        _check_replace(old, change)
        cid = change.client_order_id
        if cid is not None and self.store.client_id_taken(cid):
            raise invalid("client_order_id must be unique")
        trail_pct = change.trail if change.trail is not None and old.trail_percent is not None else old.trail_percent
        trail_px = change.trail if change.trail is not None and old.trail_price is not None else old.trail_price
        if trail_pct is not None and trail_pct >= 100:
            raise invalid("trail_percent must be > 0 and < 100")
        tif = change.tif or old.tif
        if old.extended_hours and tif != "day":
            raise invalid("extended hours order must be DAY limit orders")
        req = OrderRequest(
            symbol=old.symbol, side=old.side, type=old.type, tif=tif, qty=change.qty or old.remaining, notional=None,
            limit_price=change.limit_price or old.limit_price, stop_price=change.stop_price or old.stop_price,
            extended_hours=old.extended_hours, client_order_id=cid, order_class="simple", take_profit=None,
            stop_loss_stop=None, stop_loss_limit=None, trail_percent=trail_pct, trail_price=trail_px,
        )  # fmt: skip
        quote = self.market.quote_at(self.market.reference_price(old.symbol, now))
        intent, reserve_price = self._admit(req, quote, now, old)
        if tif == old.tif:
            expires = old.expires_at
        else:
            expires = self.sessions.day_order_expiry(now, old.extended_hours) if tif == "day" else None
        with self._atomic():
            new = self.book.replace(
                old, req, cid or str(uuid.uuid4()), intent, reserve_price, now, self.fills.eligible(wall), expires
            )
        self.book.open_all((new,))
        return new

    # ------------------------------------------------------------------------------------------ cancels

    def cancel(self, order_id: str, now: int, wall: float) -> Order:
        o = self.get_order(order_id)
        if o is None:
            raise not_found("order not found")
        if not o.is_open:
            raise ApiError(422, NOT_CANCELABLE, f'order is already in "{o.status}" state')
        with self._atomic():
            self.book.cancel(o, now, self.fills.eligible(wall))
        return o

    def cancel_all(self, now: int, wall: float) -> list[Order]:
        """Every open order goes, legs included (legs of a partly filled parent are cancelled with it)."""
        with self._atomic():
            return self.book.cancel_all(now, self.fills.eligible(wall))

    # ------------------------------------------------------------------------------------------ positions

    def close_position(
        self, symbol_or_id: str, qty: Decimal | None, pct: Decimal | None, now: int, wall: float
    ) -> Order:
        """A market day order for all of a position, `qty` shares of it or `pct` percent of it."""
        sym = self.account.position_symbol(symbol_or_id)
        pos = self.account.positions[sym]
        if qty is not None and pct is not None:
            raise invalid("only one of qty or percentage may be given")
        size = abs(pos.qty)
        if pct is not None:
            if not 0 < pct <= 100:
                raise invalid("percentage must be in (0, 100]")
            size = (size * pct / 100).quantize(NANO, ROUND_DOWN)
        elif qty is not None:
            size = qty
        if size <= 0:
            raise invalid("nothing to close at that percentage")
        req = OrderRequest(
            symbol=sym, side="sell" if pos.qty > 0 else "buy", type="market", tif="day", qty=size, notional=None,
            limit_price=None, stop_price=None, extended_hours=False, client_order_id=None, order_class="simple",
            take_profit=None, stop_loss_stop=None, stop_loss_limit=None,
        )  # fmt: skip
        order, _ = self.submit(req, now, wall)
        return order

    # ------------------------------------------------------------------------------------------ time and fills

    def step(self, wall: float, hold: bool | None = None) -> int:
        """Bring the book to the clock's now: day orders expire at their close, eligible orders fill.

        When the clock jumped, every session open and expiry in between is visited in order, so an order
        queued overnight fills at the next open's price, not at wherever the clock landed.

        `hold` (the clock set to a bar's end, where a replay sends a cancel the backtest applies after that bar):
        the bars ending now complete, and the opens of those starting now wait, with the orders placed meanwhile,
        until the clock is set again (False) or moves on. Intraday one bar ends as the next starts: without the
        hold a gap at that open would trade an order before its cancel arrived.
        """
        now = self.clock.now()
        release = self.opens_held and (now > self.processed or hold is False)
        if now == self.processed and not release and (self.opens_held or not self.book.open):
            return 0
        hold_now = bool(hold) and now > self.processed and bool(self.book.open) and self._bar_starts(now)
        before = self.book.fill_seq
        with self._atomic():
            if now > self.processed or release:
                self._cross(self.processed, now, wall, opened_t0=not self.opens_held, open_t1=not hold_now)
            if not hold_now:
                self.book.expire(now, self.fills.eligible(wall))
                self._evaluate(now, wall)
            if now != self.processed:
                self.processed = now
                self.store.set_meta("processed_us", str(now))
            if hold_now != self.opens_held:
                self.opens_held = hold_now
                self.store.set_meta("opens_held", "1" if hold_now else "")
            if self.book.fill_seq != before:
                self.account.save_cash()
        return self.book.fill_seq - before

    def _bar_starts(self, t: int) -> bool:
        """Whether a bar of some symbol starts at t."""
        return self.market.next_bar_start(t - 1) == t

    def rewind(self, t: int) -> None:
        """The clock was set back: the book continues from t (nothing is undone)."""
        with self._atomic():
            self.processed, self.opens_held = t, False
            self.store.set_meta("processed_us", str(t))
            self.store.set_meta("opens_held", "")

    def next_deadline(self, wall: float) -> float | None:
        """The earliest wall time after `wall` at which an order's latency runs out (None: none is waiting)."""
        return self.book.next_deadline(wall)

    def _cross(self, t0: int, t1: int, wall: float, opened_t0: bool = True, open_t1: bool = True) -> None:
        """Visit every event in (t0, t1] in time order, an order's fill latency running out among them (one placed
        at t0 is routed then, before its bar ends). At one instant: the bars that end there (a fill on a bar comes
        before the close that ends it), expiries, the opens of the bars that start there, then the orders that
        start working or trade at market then; a session's last close ends the day. Not `opened_t0`: t0's opens
        were held (step's hold), and are visited first; not `open_t1`: t1's are held."""
        events: set[int] = set() if opened_t0 else {t0}
        first_start = t0 if opened_t0 else t0 - 1
        ends: dict[int, list[tuple[str, int]]] = {}
        starts: dict[int, list[tuple[str, int]]] = {}
        if self.book.open:
            events.update(self._ready_between(t0, t1))  # an order placed at t0 is routed when its latency runs out
            events.update(self.sessions.opens_between(t0, t1))
            events.update(
                o.expires_at for o in self.book.open.values() if o.expires_at is not None and t0 < o.expires_at <= t1
            )
            for sym in {o.symbol for o in self.book.open.values()}:
                for i, end in self.market.bar_ends_between(sym, t0, t1):
                    ends.setdefault(end, []).append((sym, i))
                for i, start in self.market.bar_starts_between(sym, first_start, t1):
                    starts.setdefault(start, []).append((sym, i))
        events.update(ends)
        events.update(starts)
        last_close = self.sessions.last_close_between(t0, t1)
        if last_close is not None:
            events.add(last_close)
        queue = sorted(events)
        while queue:
            e = heapq.heappop(queue)
            for sym, i in ends.get(e, ()):
                self._bar(sym, i, wall, at_open=False)
            self.book.expire(e, self.fills.eligible(wall))
            if e == t1 and not open_t1:
                if e == last_close:
                    self.account.close_day(e)
                break
            for sym, i in starts.get(e, ()):
                self._bar(sym, i, wall, at_open=True)
            if self.book.open:
                self._evaluate(e, wall)
                for r in self._ready_between(e, t1):  # a partial fill's rest: traded when its latency has run
                    if r not in events:  # out, not at the next event (a jump from close to close: the market shut)
                        events.add(r)
                        heapq.heappush(queue, r)
            if e == last_close:
                self.account.close_day(e)

    def _ready_between(self, t0: int, t1: int) -> list[int]:
        """When the open orders that may not trade yet at t0 (their fill latency runs) may, within (t0, t1]."""
        ready = (o.updated_at + self.fills.latency_us for o in self.book.open.values() if o.status != "held")
        return [r for r in ready if t0 < r <= t1]

    def _bar(self, symbol: str, i: int, wall: float, at_open: bool) -> None:
        """Test the orders working on a bar of `symbol`, reductions first, then the bracket legs (those of an entry
        that filled at the bar's open included). At the bar's open only its open is known: what the open goes
        through trades there (a gap), and of the legs only the stop-loss, which wins whatever else the bar does.
        Once the bar is complete, the rest are tested on its open, high and low."""
        bar = self.market.bar(symbol, i)
        seen = Bar.moment(bar.start, bar.open) if at_open else bar
        for o in sorted(self._working(symbol, bar.start, legs=False), key=lambda o: o.opening):
            if o.id in self.book.open:
                self._test(o, seen, wall, moves=not at_open)
        groups: dict[str, list[Order]] = {}
        for o in self._working(symbol, bar.start, legs=True):
            groups.setdefault(o.parent_id or o.id, []).append(o)
        for legs in groups.values():
            marks = [(leg.triggered, leg.live_from) for leg in legs]
            hit = leg_to_fill(legs, seen, stop_only=at_open)
            if hit is not None:
                self._fill_on_bar(hit[0], hit[1], seen.stamp(hit[1]), wall)
            for leg, before in zip(legs, marks, strict=True):
                if leg.is_open and (leg.triggered, leg.live_from) != before:
                    self.store.save_order(leg)

    def _working(self, symbol: str, start: int, legs: bool) -> list[Order]:
        """Open orders of `symbol` that work on a bar starting at `start` (routed, not held, not at market)."""
        return [
            o for o in self.book.open.values()
            if o.symbol == symbol and o.grouped == legs and o.status not in ("accepted", "held")
            and o.live_from <= start and not o.at_market
        ]  # fmt: skip

    def _test(self, o: Order, bar: Bar, wall: float, moves: bool) -> bool:
        """Test o on a bar (or a moment) and fill it if the rule says so; a changed trigger or mark is saved."""
        before = (o.triggered, o.hwm, o.live_from)
        price = rule_price(o, bar, moves)
        if not math.isnan(price) and self._fill_on_bar(o, price, bar.stamp(price), wall):
            return True
        if o.is_open and (o.triggered, o.hwm, o.live_from) != before:
            self.store.save_order(o)
        return False

    def _evaluate(self, t: int, wall: float) -> None:
        """The moment t: orders that start working now are tested at its price, orders at market fill at it."""
        open_ = self.book.open
        latency_us = self.fills.latency_us
        for o in sorted(open_.values(), key=lambda o: o.opening):  # reductions first: sales pay for purchases
            # its latency has run out in wall time, or in simulated time: a stepped clock moved past it (a clock
            # set from the close to the next close must not leave an order queued overnight behind at the open)
            ready = wall >= o.eligible_wall or (o.eligible_wall != float("inf") and t >= o.updated_at + latency_us)
            if o.status != "held" and ready and o.id in open_:
                self._evaluate_order(o, t, wall)

    def _evaluate_order(self, o: Order, t: int, wall: float) -> None:
        routing = o.status == "accepted"
        if not routing and not o.at_market:
            return  # working orders are tested bar by bar (_bar)
        if self.fills.rejects(o):
            self.book.close(o, "rejected", t)
            self.book.parent_done(o, t, self.fills.eligible(wall))
            return
        immediate = o.tif in ("ioc", "fok")
        market_open = self.clock.is_open(t) or (o.extended_hours and self.sessions.is_extended(t))
        p = self.market.price(o.symbol, t) if market_open else None
        if p is not None and self.sessions.is_open(t) and self.market.between_bars(o.symbol, t):
            p = None  # in the session, but no bar of it now (nothing traded): on at its next bar's open, as in the
            # backtest (at the last close, the live loop's orders of a symbol lacking a minute filled a bar early)
            self._session_of_next_bar(o, t)
        if p is None:
            if immediate:
                self.book.close(o, "canceled", t)
            return
        if routing:  # it works on bars from its placement (live_from), as a bracket's legs do from their release:
            o.status, o.updated_at = "new", t  # its latency delays its first test, not the bar it starts on
        if not self._test(o, Bar.moment(t, p), wall, moves=False) and o.is_open:
            if immediate:
                self.book.close(o, "canceled", t)
            elif routing:
                self.store.save_order(o)

    def _session_of_next_bar(self, o: Order, t: int) -> None:
        """A day order waiting for its symbol's next bar works through that bar's session (and its legs): the
        backtest's goes live on the bar and ends with its session. (Alpaca's would end with today's: a symbol
        without a bar for the rest of the day, halted, did not trade; the backtest cannot know why.)"""
        nxt = self.market.next_start(o.symbol, t)
        if o.tif != "day" or o.expires_at is None or nxt is None:
            return
        later = self.sessions.day_order_expiry(nxt, o.extended_hours)
        for x in (o, *self.book.legs_of(o.id)):
            if x.expires_at is not None and later > x.expires_at:
                x.expires_at = later
                self.store.save_order(x)

    def _fill_on_bar(self, o: Order, rule_price: float, t: int, wall: float) -> bool:
        """_try_fill, and a partial fill's rest at once when no moment of the session is left for it after the fill
        latency: a fill inside a bar is stamped at its last microsecond (the path is unknown), so on a session's
        last bar (a daily bar's) the rest waited for the next open, at its price, where it trades that session.
        Without a latency, at once too: nothing would wake the book for it (a stepped clock waited for the
        executor, which waited for the order)."""
        if not self._try_fill(o, rule_price, t, wall):
            return False
        latency = self.fills.latency_us
        if o.is_open and o.filled_qty > 0 and (latency == 0 or not self.clock.is_open(t + latency)):
            self._try_fill(o, rule_price, t, wall)
        return True

    def _try_fill(self, o: Order, rule_price: float, t: int, wall: float) -> bool:
        """Fill o at the rule's price (plus costs) at time t, saving the order; False when nothing traded."""
        price = self.fills.price(o, rule_price)
        qty = self.fills.qty(o, price, self.account.qty(o.symbol))
        if qty <= 0:
            self.book.close(o, "canceled", t)
            return False
        if o.type in ("stop", "trailing_stop"):
            o.triggered = True  # what a partial fill leaves trades at market
        commission = self.fills.commission(qty, price)
        self.account.settle(o.symbol, o.side == "buy", qty, price, commission, t)
        self.book.fill(o, qty, price, commission, t, self.fills.eligible(wall))
        return True


def _check_bracket(req: OrderRequest, q: Quote) -> None:
    """Alpaca's rule: take-profit at least a tick beyond the base price, stop-loss at least a tick inside it."""
    base = req.limit_price if req.type == "limit" and req.limit_price is not None else q.price
    step = tick(base)
    up = req.side == "buy"
    tp, sl = req.take_profit, req.stop_loss_stop
    if tp is not None and (tp < base + step if up else tp > base - step):
        raise invalid(f"take_profit.limit_price must be {'>=' if up else '<='} base_price "
                      f"{'+' if up else '-'} {num(step)} (base_price {num(base)})")  # fmt: skip
    if sl is not None and (sl > base - step if up else sl < base + step):
        raise invalid(f"stop_loss.stop_price must be {'<=' if up else '>='} base_price "
                      f"{'-' if up else '+'} {num(step)} (base_price {num(base)})")  # fmt: skip
    lim = req.stop_loss_limit
    if sl is not None and lim is not None and (lim > sl if up else lim < sl):
        raise invalid(f"stop_loss.limit_price must be {'<=' if up else '>='} stop_loss.stop_price")


def collar_buy_stop(req: OrderRequest) -> OrderRequest:
    """Alpaca turns a buy stop order into a stop-limit order (the limit: orders.nb.buy_stop_limit, the backtest's
    rule too), so a gap through the stop does not buy at any price; sell stops stay stops."""
    if req.type != "stop" or req.side != "buy" or req.stop_price is None:
        return req
    return dataclasses.replace(req, type="stop_limit", limit_price=round_price(buy_stop_limit(float(req.stop_price))))


def _check_replace(old: Order, change: ReplaceRequest) -> None:
    """Each price may change only on the order types that have it."""
    if change.limit_price is not None and old.type not in ("limit", "stop_limit"):
        raise invalid(f"limit_price cannot be replaced on a {old.type} order")
    if change.stop_price is not None and old.type not in ("stop", "stop_limit"):
        raise invalid(f"stop_price cannot be replaced on a {old.type} order")
    if change.trail is not None and old.type != "trailing_stop":
        raise invalid(f"trail cannot be replaced on a {old.type} order")
