"""The book: order admission (buying power, shares), fills at the simulated quote, brackets, expiry and the account.

Buying power follows Alpaca's Reg T arithmetic: initial margin is gross position value / multiplier and
buying_power = (equity - initial_margin) * multiplier - reserved, where open orders that open or grow a
position reserve their cost (market buys at the ask plus `market_reserve_pct`, limits at their limit).
Multiplier 1 is a cash account (buying power = cash - reserved, no shorting); 2 is a margin account.
Orders that reduce a position need shares, not buying power: they may not exceed the position less what other
open orders already hold (no flipping long to short in one order, as at Alpaca).
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Any

from marketboss.local_broker.clock import MarketClock, Sessions, iso_z
from marketboss.local_broker.config import BrokerConfig
from marketboss.local_broker.errors import NOT_CANCELABLE, ApiError, forbidden, invalid, not_found
from marketboss.local_broker.marketdata import CENT, MarketData, Quote, round_price, tick
from marketboss.local_broker.orders import OrderRequest, parse_symbol
from marketboss.local_broker.store import Fill, Order, Position, Store
from marketboss.local_broker.views import asset_id, num

ZERO = Decimal(0)
NANO = Decimal("1e-9")
MICRO = Decimal("1e-6")
BPS = Decimal(10_000)
PARTIAL_MIN, PARTIAL_SPAN = 0.2, 0.6  # a partial fill takes 20-80% of what is left
RECENT = 4096  # closed orders kept in memory: polling a just-filled order needs no query


@dataclass(frozen=True)
class Valuation:
    cash: Decimal
    long_value: Decimal
    short_value: Decimal  # negative
    equity: Decimal
    initial_margin: Decimal
    maintenance_margin: Decimal
    reserved: Decimal
    buying_power: Decimal
    non_marginable_buying_power: Decimal


@dataclass(frozen=True)
class PositionView:
    position: Position
    price: Decimal
    lastday_price: Decimal
    held: Decimal


class Engine:
    def __init__(self, cfg: BrokerConfig, store: Store, market: MarketData, clock: MarketClock, sessions: Sessions):
        self.cfg = cfg
        self.store = store
        self.market = market
        self.clock = clock
        self.sessions = sessions
        self.latency = cfg.fill_latency_ms / 1000.0
        self.multiplier = Decimal(cfg.multiplier)
        self.reserve = 1 + Decimal(repr(cfg.market_reserve_pct)) / 100
        self.slippage = Decimal(repr(cfg.slippage_bps)) / BPS
        self.commission_bps = Decimal(repr(cfg.commission_bps)) / BPS
        self.commission_per_share = Decimal(repr(cfg.commission_per_share))
        self.reject_rate = cfg.faults.reject_rate
        self._seed = str(cfg.seed).encode()
        self._load()

    def _load(self) -> None:
        """The in-memory book (cash, positions, open orders) from the database: at start, and after a failed
        transaction, so memory never runs ahead of what was committed."""
        store, clock = self.store, self.clock
        with store.transaction():
            self.account_id = self._meta("account_id", lambda: str(uuid.uuid4()))
            self.account_number = self._meta("account_number", lambda: "PA" + uuid.uuid4().hex[:10].upper())
            self.created_at = int(self._meta("created_at", lambda: str(clock.now())))
            self.cash = Decimal(self._meta("cash", lambda: num(Decimal(repr(self.cfg.cash)).quantize(CENT))))
            self.last_equity = Decimal(self._meta("last_equity", lambda: num(self.cash)))
            self.processed = int(self._meta("processed_us", lambda: str(clock.now())))
        self.positions = {p.symbol: p for p in store.positions()}
        self.open: dict[str, Order] = {o.id: o for o in store.open_orders()}
        self.recent: OrderedDict[str, Order] = OrderedDict()
        self.order_seq = store.max_order_seq()
        self.fill_seq = store.max_fill_seq()

    @contextlib.contextmanager
    def _atomic(self) -> Iterator[None]:
        """One transaction; if anything fails inside, the database rolls back and memory is reloaded from it."""
        try:
            with self.store.transaction():
                yield
        except BaseException:
            self._load()
            raise

    def _meta(self, key: str, default: Any) -> str:
        value = self.store.get_meta(key)
        if value is None:
            value = default()
            self.store.set_meta(key, value)
        return value

    def _draw(self, seq: int, salt: str) -> float:
        """A uniform number fixed by (seed, order sequence, purpose): the same run gives the same partial fills."""
        h = hashlib.blake2b(b"%s:%s:%d" % (self._seed, salt.encode(), seq), digest_size=8).digest()
        return int.from_bytes(h, "big") / 2**64

    # ------------------------------------------------------------------------------------------ valuation

    def mark(self, symbol: str, t: int, fallback: Decimal) -> Decimal:
        p = self.market.price(symbol, t)
        return fallback if p is None else round_price(p)

    def valuation(self, t: int) -> Valuation:
        long_value = short_value = ZERO
        for p in self.positions.values():
            value = p.qty * self.mark(p.symbol, t, p.avg_entry_price)
            if p.qty > 0:
                long_value += value
            else:
                short_value += value
        equity = self.cash + long_value + short_value
        gross = long_value - short_value
        initial = (gross / self.multiplier).quantize(CENT)
        maintenance = (long_value * Decimal("0.25") - short_value * Decimal("0.30")).quantize(CENT)
        reserved = self.reserved()
        bp = ((equity - initial) * self.multiplier - reserved).quantize(CENT, ROUND_FLOOR)
        nmbp = (equity - gross - reserved).quantize(CENT, ROUND_FLOOR)
        return Valuation(
            self.cash, long_value, short_value, equity, initial, maintenance, reserved, max(bp, ZERO), max(nmbp, ZERO)
        )

    def reserved(self) -> Decimal:
        total = ZERO
        for o in self.open.values():
            if o.opening and o.reserve_price is not None:
                rem = o.remaining
                total += (o.notional or ZERO) if rem is None else rem * o.reserve_price
        return total

    def held(self, symbol: str, side: str) -> Decimal:
        """Shares that open closing orders on `side` already claim (an OCO pair counts once)."""
        total = ZERO
        for o in self.open.values():
            if o.symbol != symbol or o.side != side or o.opening or o.status == "held":
                continue
            if o.leg == "stop_loss" and o.order_class == "bracket":
                continue
            rem = o.remaining
            if rem is None:
                ref = Decimal(repr(self.market.reference_price(symbol, self.processed)))
                rem = (o.notional or ZERO) / ref
            total += rem
        return total

    def position_views(self, t: int) -> list[PositionView]:
        prev = self.sessions.previous_close(t)
        out = []
        for p in sorted(self.positions.values(), key=lambda p: p.symbol):
            price = self.mark(p.symbol, t, p.avg_entry_price)
            lastday = price if prev is None else self.mark(p.symbol, prev, price)
            held = self.held(p.symbol, "sell" if p.qty > 0 else "buy")
            out.append(PositionView(p, price, lastday, held))
        return out

    # ------------------------------------------------------------------------------------------ admission

    def submit(self, req: OrderRequest, now: int, wall: float) -> tuple[Order, list[Order]]:
        """Check and record an order (status accepted); the fill comes later from step()."""
        sym = req.symbol
        if not self.market.has(sym):
            raise invalid(f'asset "{sym}" not found')
        cid = req.client_order_id
        if cid is not None and self.store.client_id_taken(cid):
            raise invalid("client_order_id must be unique")
        quote = self.market.quote_at(self.market.reference_price(sym, now))
        pos = self.positions.get(sym)
        pos_qty = pos.qty if pos else ZERO
        buy = req.side == "buy"
        closing = pos_qty < 0 if buy else pos_qty > 0
        reserve_price: Decimal | None = None
        if closing:
            available = abs(pos_qty) - self.held(sym, req.side)
            wanted = req.qty if req.qty is not None else (req.notional or ZERO) / (quote.ask if buy else quote.bid)
            if wanted > available:
                raise forbidden(
                    f"insufficient qty available for order (requested: {num(wanted.quantize(NANO))}, "
                    f"available: {num(available)})",
                    symbol=sym, existing_qty=num(pos_qty), held_for_orders=num(abs(pos_qty) - available),
                    available=num(available),
                )  # fmt: skip
            intent = "buy_to_close" if buy else "sell_to_close"
        else:
            if not buy:
                if self.multiplier == 1:
                    raise forbidden("account is not allowed to short (cash account)")
                if req.qty is None or req.qty != req.qty.to_integral_value():
                    raise forbidden("fractional orders cannot be sold short")
            reserve_price = self._reserve_price(req, quote)
            cost = req.notional if req.qty is None else req.qty * reserve_price
            bp = self.valuation(now).buying_power
            if cost is not None and cost > bp:
                raise forbidden("insufficient buying power", buying_power=num(bp), cost_basis=num(cost.quantize(CENT)))
            intent = "buy_to_open" if buy else "sell_to_open"
        if req.order_class != "simple":
            self._check_bracket(req, quote)
        expires = self.sessions.day_order_expiry(now, req.extended_hours) if req.tif == "day" else None
        parent = self._new_order(req, cid or str(uuid.uuid4()), intent, reserve_price, now, wall, expires)
        legs = self._new_legs(req, parent, now)
        with self._atomic():
            for o in (parent, *legs):
                self.store.add_order(o)
        for o in (parent, *legs):
            self.open[o.id] = o
        return parent, legs

    def _reserve_price(self, req: OrderRequest, q: Quote) -> Decimal:
        if req.side == "buy":
            if req.type in ("limit", "stop_limit"):
                assert req.limit_price is not None
                return req.limit_price
            base = max(q.ask, req.stop_price or ZERO)
            return (base * self.reserve).quantize(tick(base), ROUND_CEILING)
        if req.type in ("limit", "stop_limit"):
            assert req.limit_price is not None
            return max(req.limit_price, q.bid)
        return max(q.bid, req.stop_price or ZERO)

    def _check_bracket(self, req: OrderRequest, q: Quote) -> None:
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

    def _new_order(
        self,
        req: OrderRequest,
        cid: str,
        intent: str,
        reserve: Decimal | None,
        now: int,
        wall: float,
        expires: int | None,
    ) -> Order:
        self.order_seq += 1
        return Order(
            id=str(uuid.uuid4()), seq=self.order_seq, client_order_id=cid, parent_id=None, leg=None,
            symbol=req.symbol, side=req.side, type=req.type, tif=req.tif, order_class=req.order_class, intent=intent,
            qty=req.qty, notional=req.notional, filled_qty=ZERO, filled_avg_price=None, limit_price=req.limit_price,
            stop_price=req.stop_price, extended_hours=req.extended_hours, status="accepted", created_at=now,
            updated_at=now, submitted_at=now, filled_at=None, expired_at=None, canceled_at=None, failed_at=None,
            expires_at=expires, triggered=False, reserve_price=reserve, commission=ZERO,
            eligible_wall=wall + self.latency, partial_done=False,
        )  # fmt: skip

    def _new_legs(self, req: OrderRequest, parent: Order, now: int) -> list[Order]:
        specs: list[tuple[str, str, Decimal | None, Decimal | None]] = []
        if req.take_profit is not None:
            specs.append(("take_profit", "limit", req.take_profit, None))
        if req.stop_loss_stop is not None:
            kind = "stop" if req.stop_loss_limit is None else "stop_limit"
            specs.append(("stop_loss", kind, req.stop_loss_limit, req.stop_loss_stop))
        side = "sell" if req.side == "buy" else "buy"
        legs = []
        for leg, kind, limit, stop in specs:
            self.order_seq += 1
            legs.append(
                Order(
                    id=str(uuid.uuid4()), seq=self.order_seq, client_order_id=str(uuid.uuid4()), parent_id=parent.id,
                    leg=leg, symbol=req.symbol, side=side, type=kind, tif=req.tif, order_class=req.order_class,
                    intent=f"{side}_to_close", qty=req.qty, notional=None, filled_qty=ZERO, filled_avg_price=None,
                    limit_price=limit, stop_price=stop, extended_hours=False, status="held", created_at=now,
                    updated_at=now, submitted_at=now, filled_at=None, expired_at=None, canceled_at=None,
                    failed_at=None, expires_at=parent.expires_at, triggered=False, reserve_price=None,
                    commission=ZERO, eligible_wall=float("inf"), partial_done=False,
                )
            )  # fmt: skip
        return legs

    # ------------------------------------------------------------------------------------------ cancels

    def get_order(self, order_id: str) -> Order | None:
        return self.open.get(order_id) or self.recent.get(order_id) or self.store.order(order_id)

    def _retire(self, o: Order) -> None:
        self.open.pop(o.id, None)
        self.recent[o.id] = o
        if len(self.recent) > RECENT:
            self.recent.popitem(last=False)

    def legs_of(self, parent_id: str) -> list[Order]:
        return self.store.legs(parent_id)

    def cancel(self, order_id: str, now: int, wall: float) -> Order:
        o = self.get_order(order_id)
        if o is None:
            raise not_found("order not found")
        if not o.is_open:
            raise ApiError(422, NOT_CANCELABLE, f'order is already in "{o.status}" state')
        with self._atomic():
            self._cancel_one(o, now, wall)
        return o

    def _cancel_one(self, o: Order, now: int, wall: float) -> None:
        if o.parent_id is not None:
            for sibling in self._group(o.parent_id):
                self._close(sibling, "canceled", now)
            self._close(o, "canceled", now)
        else:
            self._close(o, "canceled", now)
            self._parent_done(o, now, wall)

    def cancel_all(self, now: int, wall: float) -> list[Order]:
        """Every open order goes, legs included (legs of a partly filled parent are cancelled with it)."""
        done = []
        with self._atomic():
            for o in list(self.open.values()):
                if o.id in self.open:
                    self._cancel_one(o, now, wall)
                    done.append(o)
            for o in list(self.open.values()):
                self._close(o, "canceled", now)
                done.append(o)
        return done

    def _group(self, parent_id: str) -> list[Order]:
        return [o for o in self.open.values() if o.parent_id == parent_id]

    def _close(self, o: Order, status: str, t: int) -> None:
        if not o.is_open:
            return
        o.status = status
        o.updated_at = t
        if status == "canceled":
            o.canceled_at = t
        elif status == "expired":
            o.expired_at = t
        elif status == "rejected":
            o.failed_at = t
        self._retire(o)
        self.store.save_order(o)

    def _parent_done(self, parent: Order, t: int, wall: float) -> None:
        """A parent finished: its legs start working for what was filled, or go away with it."""
        for leg in self._group(parent.id):
            if leg.status != "held":
                continue
            if parent.filled_qty > 0:
                leg.qty = parent.filled_qty
                leg.status = "new"
                leg.updated_at = t
                leg.eligible_wall = wall + self.latency
                self.store.save_order(leg)
            else:
                self._close(leg, "canceled", t)

    # ------------------------------------------------------------------------------------------ positions

    def close_position(
        self, symbol_or_id: str, qty: Decimal | None, pct: Decimal | None, now: int, wall: float
    ) -> Order:
        sym = self._position_symbol(symbol_or_id)
        pos = self.positions[sym]
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

    def _position_symbol(self, symbol_or_id: str) -> str:
        for sym in self.positions:
            if symbol_or_id in (sym, asset_id(sym)):
                return sym
        try:
            sym = parse_symbol(symbol_or_id)
        except ApiError:
            sym = symbol_or_id
        if sym in self.positions:
            return sym
        raise not_found("position does not exist")

    # ------------------------------------------------------------------------------------------ time and fills

    def step(self, wall: float) -> int:
        """Bring the book to the clock's now: day orders expire at their close, eligible orders fill.

        When the clock jumped, every session open and expiry in between is visited in order, so an order
        queued overnight fills at the next open's price, not at wherever the clock landed.
        """
        now = self.clock.now()
        if not self.open and now == self.processed:
            return 0
        before = self.fill_seq
        with self._atomic():
            if now > self.processed:
                self._cross(self.processed, now, wall)
            self._expire(now, wall)
            self._evaluate(now, wall)
            if now != self.processed:
                self.processed = now
                self.store.set_meta("processed_us", str(now))
            if self.fill_seq != before:
                self.store.set_meta("cash", str(self.cash))
        return self.fill_seq - before

    def rewind(self, t: int) -> None:
        """The clock was set back: the book continues from t (nothing is undone)."""
        with self._atomic():
            self.processed = t
            self.store.set_meta("processed_us", str(t))

    def _cross(self, t0: int, t1: int, wall: float) -> None:
        events: set[int] = set()
        if self.open:
            events.update(self.sessions.opens_between(t0, t1))
            events.update(
                o.expires_at for o in self.open.values() if o.expires_at is not None and t0 < o.expires_at <= t1
            )
        last_close = self.sessions.last_close_between(t0, t1)
        if last_close is not None:
            events.add(last_close)
        for e in sorted(events):
            self._expire(e, wall)
            if self.open:
                self._evaluate(e, wall)
            if e == last_close:
                self.last_equity = self.valuation(e).equity
                self.store.set_meta("last_equity", str(self.last_equity))

    def _expire(self, t: int, wall: float) -> None:
        for o in list(self.open.values()):
            if o.expires_at is not None and o.expires_at <= t and o.status != "held" and o.id in self.open:
                self._close(o, "expired", o.expires_at)
                if o.parent_id is None:
                    self._parent_done(o, o.expires_at, wall)

    def _evaluate(self, t: int, wall: float) -> None:
        for o in list(self.open.values()):
            if o.status != "held" and wall >= o.eligible_wall and o.id in self.open:
                self._evaluate_order(o, t, wall)

    def _evaluate_order(self, o: Order, t: int, wall: float) -> None:
        if o.status == "accepted" and self.reject_rate > 0 and self._draw(o.seq, "reject") < self.reject_rate:
            self._close(o, "rejected", t)
            self._parent_done(o, t, wall)
            return
        immediate = o.tif in ("ioc", "fok")
        market_open = self.clock.is_open(t) or (o.extended_hours and self.sessions.is_extended(t))
        q = self.market.quote(o.symbol, t) if market_open else None
        if q is None:
            if immediate:
                self._close(o, "canceled", t)
            return
        routed, triggered = o.status == "accepted", o.triggered
        if routed:
            o.status = "new"
            o.updated_at = t
        if not self._try_fill(o, q, t, wall) and o.is_open:
            if immediate:
                self._close(o, "canceled", t)
            elif routed or o.triggered != triggered:
                self.store.save_order(o)

    def _try_fill(self, o: Order, q: Quote, t: int, wall: float) -> bool:
        """Fill what is marketable at quote q (saving the order); False when nothing traded."""
        buy = o.side == "buy"
        if o.type in ("stop", "stop_limit") and not o.triggered:
            assert o.stop_price is not None
            if not (q.price >= o.stop_price if buy else q.price <= o.stop_price):
                return False
            o.triggered = True
        if o.type in ("limit", "stop_limit"):
            assert o.limit_price is not None
            if not (q.ask <= o.limit_price if buy else q.bid >= o.limit_price):
                return False
        price = self._fill_price(o, q)
        qty = self._fill_qty(o, price)
        if qty <= 0:
            self._close(o, "canceled", t)
            return False
        self._fill(o, qty, price, t, wall)
        return True

    def _fill_price(self, o: Order, q: Quote) -> Decimal:
        if o.side == "buy":
            px = q.ask + q.ask * self.slippage
            px = px.quantize(tick(px), ROUND_CEILING)
            return min(px, o.limit_price) if o.limit_price is not None else px
        px = q.bid - q.bid * self.slippage
        px = max(px.quantize(tick(px), ROUND_FLOOR), tick(px))
        return max(px, o.limit_price) if o.limit_price is not None else px

    def _fill_qty(self, o: Order, price: Decimal) -> Decimal:
        rem = o.remaining
        if rem is None:  # notional: the shares are worked out at the fill price
            qty = ((o.notional or ZERO) / price).quantize(NANO, ROUND_DOWN)
            if o.side == "sell":
                pos = self.positions.get(o.symbol)
                qty = min(qty, pos.qty if pos and pos.qty > 0 else ZERO)
            return qty
        if (
            self.cfg.partial_fill_rate > 0
            and not o.partial_done
            and o.tif != "fok"
            and rem >= 2
            and rem == rem.to_integral_value()
            and self._draw(o.seq, "partial") < self.cfg.partial_fill_rate
        ):
            o.partial_done = True
            share = PARTIAL_MIN + PARTIAL_SPAN * self._draw(o.seq, "fraction")
            return max(Decimal(1), (rem * Decimal(repr(share))).to_integral_value(ROUND_DOWN))
        return rem

    def _fill(self, o: Order, qty: Decimal, price: Decimal, t: int, wall: float) -> None:
        buy = o.side == "buy"
        value = qty * price
        commission = (value * self.commission_bps + qty * self.commission_per_share).quantize(CENT, ROUND_HALF_UP)
        self.cash += (-value if buy else value).quantize(CENT, ROUND_HALF_EVEN) - commission
        self._move_position(o.symbol, qty if buy else -qty, price)
        filled = o.filled_qty + qty
        avg = price if o.filled_avg_price is None else (o.filled_avg_price * o.filled_qty + value) / filled
        o.filled_avg_price = avg.quantize(MICRO).normalize() if avg != price else price
        o.filled_qty = filled
        o.commission += commission
        o.updated_at = t
        done = o.qty is None or filled >= o.qty
        if done:
            o.status, o.filled_at = "filled", t
        elif o.tif == "ioc":
            o.status, o.canceled_at = "canceled", t
        else:
            o.status = "partially_filled"
            o.eligible_wall = wall + self.latency
        self.fill_seq += 1
        leaves = ZERO if o.qty is None or o.status == "canceled" else o.qty - filled
        self.store.add_fill(
            Fill(
                id=f"{iso_z(t)[:19].replace('-', '').replace(':', '').replace('T', '')}{t % 1_000_000:06d}000::"
                f"{uuid.uuid4()}",
                seq=self.fill_seq, order_id=o.id, symbol=o.symbol, side=o.side,
                type="fill" if done else "partial_fill", qty=qty, price=price, cum_qty=filled, leaves_qty=leaves,
                order_status=o.status, transaction_time=t, commission=commission,
            )
        )  # fmt: skip
        self.store.save_order(o)
        if not o.is_open:
            self._retire(o)
        if o.parent_id is not None:  # one leg traded: the other is cancelled (OCO)
            for sibling in self._group(o.parent_id):
                if sibling.id != o.id:
                    self._close(sibling, "canceled", t)
        elif not o.is_open:
            self._parent_done(o, t, wall)

    def _move_position(self, symbol: str, signed: Decimal, price: Decimal) -> None:
        p = self.positions.get(symbol) or Position(symbol, ZERO, ZERO)
        old, new = p.qty, p.qty + signed
        if old == 0 or (old > 0) == (signed > 0):
            p.avg_entry_price = ((abs(old) * p.avg_entry_price + abs(signed) * price) / abs(new)).quantize(MICRO)
        elif abs(signed) > abs(old):  # crossed through zero: the rest is a new position at this price
            p.avg_entry_price = price
        p.qty = new
        self.store.save_position(p)
        if new == 0:
            self.positions.pop(symbol, None)
        else:
            self.positions[symbol] = p

    # ------------------------------------------------------------------------------------------ housekeeping

    def next_deadline(self, wall: float) -> float | None:
        """The earliest wall time after `wall` at which an order's latency runs out (None: none is waiting).
        Orders already eligible but not fillable need no timer: only a clock move or a new order changes them."""
        waits: Iterable[float] = (o.eligible_wall for o in self.open.values() if wall < o.eligible_wall < float("inf"))
        return min(waits, default=None)

