"""The order book: open orders, their bracket / OTO legs, how orders close (filled, cancelled, expired,
rejected) and what they hold.

A bracket's legs wait ("held") until the parent closes: then they work for what the parent filled, or go with
it. The legs are one-cancels-other: when one trades, the other is cancelled. Day orders expire at their close.
Every change is written to the store; the caller holds the transaction.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from decimal import Decimal

from marketboss.local_broker.clock import iso_z
from marketboss.local_broker.orders import OrderRequest
from marketboss.local_broker.records import MICRO, Fill, Order
from marketboss.local_broker.store import Store

ZERO = Decimal(0)
RECENT = 4096  # closed orders kept in memory: polling a just-filled order needs no query


def reservation(o: Order) -> Decimal:
    """Buying power an open order holds back: what is left of an order that opens or grows a position."""
    if not o.opening or o.reserve_price is None:
        return ZERO
    rem = o.remaining
    return (o.notional or ZERO) if rem is None else rem * o.reserve_price


class Book:
    def __init__(self, store: Store):
        self.store = store
        self.open: dict[str, Order] = {o.id: o for o in store.open_orders()}
        self.recent: OrderedDict[str, Order] = OrderedDict()
        self.order_seq = store.max_order_seq()
        self.fill_seq = store.max_fill_seq()

    # ------------------------------------------------------------------------------------------ lookups

    def get(self, order_id: str) -> Order | None:
        return self.open.get(order_id) or self.recent.get(order_id) or self.store.order(order_id)

    def legs_of(self, parent_id: str) -> list[Order]:
        return self.store.legs(parent_id)

    def group(self, parent_id: str) -> list[Order]:
        """The open legs of a parent."""
        return [o for o in self.open.values() if o.parent_id == parent_id]

    def partners(self, o: Order) -> list[Order]:
        """The open orders that go when o trades or is cancelled: a leg's siblings, and both orders of an OCO."""
        if o.parent_id is not None:
            out = [x for x in self.group(o.parent_id) if x.id != o.id]
            parent = self.open.get(o.parent_id)
            return [*out, parent] if parent is not None and parent.order_class == "oco" else out
        return self.group(o.id) if o.order_class == "oco" else []

    def reserved(self) -> Decimal:
        """Buying power that open orders opening or growing a position hold back."""
        return sum((reservation(o) for o in self.open.values()), ZERO)

    def held(
        self, symbol: str, side: str, reference: Callable[[str], Decimal], exclude: str | None = None
    ) -> Decimal:
        """Shares that open closing orders on `side` already claim (an OCO pair counts once); a notional order
        counts at `reference(symbol)`. `exclude`: an order left out (the one being replaced), with its OCO
        partners: the pair's one claim is the replacement's (a bracket's stop-loss moved to breakeven was refused
        for the shares its own take-profit held)."""
        skip = set() if exclude is None else {exclude}
        if exclude is not None and (replaced := self.open.get(exclude)) is not None:
            skip.update(p.id for p in self.partners(replaced))
        total = ZERO
        for o in self.open.values():
            if o.symbol != symbol or o.side != side or o.opening or o.status == "held" or o.id in skip:
                continue
            if o.leg == "stop_loss" and o.order_class in ("bracket", "oco"):
                continue
            rem = o.remaining
            if rem is None:
                rem = (o.notional or ZERO) / reference(symbol)
            total += rem
        return total

    def next_deadline(self, wall: float) -> float | None:
        """The earliest wall time after `wall` at which an order's latency runs out (None: none is waiting).
        Orders already eligible but not fillable need no timer: only a clock move or a new order changes them."""
        waits: Iterable[float] = (o.eligible_wall for o in self.open.values() if wall < o.eligible_wall < float("inf"))
        return min(waits, default=None)

    # ------------------------------------------------------------------------------------------ new orders

    def place(
        self,
        req: OrderRequest,
        cid: str,
        intent: str,
        reserve: Decimal | None,
        now: int,
        eligible: float,
        expires: int | None,
        mark: float | None = None,
        live_from: int | None = None,
    ) -> tuple[Order, list[Order]]:
        """An accepted order and its legs (held until it closes), written to the store (the caller opens them
        once the transaction commits). `mark`: a trailing stop's starting mark; `live_from`: the start of the
        first bar it works on (default: bars starting from now)."""
        self.order_seq += 1
        parent = Order(
            id=str(uuid.uuid4()), seq=self.order_seq, client_order_id=cid, parent_id=None, leg=None,
            symbol=req.symbol, side=req.side, type=req.type, tif=req.tif, order_class=req.order_class, intent=intent,
            qty=req.qty, notional=req.notional, filled_qty=ZERO, filled_avg_price=None, limit_price=req.limit_price,
            stop_price=req.stop_price, extended_hours=req.extended_hours, status="accepted", created_at=now,
            updated_at=now, submitted_at=now, filled_at=None, expired_at=None, canceled_at=None, failed_at=None,
            expires_at=expires, triggered=False, reserve_price=reserve, commission=ZERO,
            eligible_wall=eligible, partial_done=False, trail_percent=req.trail_percent, trail_price=req.trail_price,
            hwm=mark, live_from=now if live_from is None else live_from,
        )  # fmt: skip
        legs = self._new_legs(req, parent, now, eligible)
        for o in (parent, *legs):
            self.store.add_order(o)
        return parent, legs

    def open_all(self, orders: Iterable[Order]) -> None:
        """Orders the store has committed join the book (after the transaction, so a rollback leaves it as it was)."""
        for o in orders:
            self.open[o.id] = o

    def _new_legs(self, req: OrderRequest, parent: Order, now: int, eligible: float) -> list[Order]:
        """A bracket's or OTO's exits (same size, other side, held until the parent closes); an OCO's stop-loss
        (its parent is the take-profit, both exits working at once)."""
        oco = req.order_class == "oco"
        if oco:
            parent.leg = "take_profit"
        specs: list[tuple[str, str, Decimal | None, Decimal | None]] = []
        if req.take_profit is not None and not oco:
            specs.append(("take_profit", "limit", req.take_profit, None))
        if req.stop_loss_stop is not None:
            kind = "stop" if req.stop_loss_limit is None else "stop_limit"
            specs.append(("stop_loss", kind, req.stop_loss_limit, req.stop_loss_stop))
        side = req.side if oco else "sell" if req.side == "buy" else "buy"
        legs = []
        for leg, kind, limit, stop in specs:
            self.order_seq += 1
            legs.append(
                Order(
                    id=str(uuid.uuid4()), seq=self.order_seq, client_order_id=str(uuid.uuid4()), parent_id=parent.id,
                    leg=leg, symbol=req.symbol, side=side, type=kind, tif=req.tif, order_class=req.order_class,
                    intent=f"{side}_to_close", qty=req.qty, notional=None, filled_qty=ZERO, filled_avg_price=None,
                    limit_price=limit, stop_price=stop, extended_hours=False, status="accepted" if oco else "held",
                    created_at=now, updated_at=now, submitted_at=now, filled_at=None, expired_at=None,
                    canceled_at=None, failed_at=None, expires_at=parent.expires_at, triggered=False,
                    reserve_price=None, commission=ZERO, eligible_wall=eligible if oco else float("inf"),
                    partial_done=False, live_from=now,
                )
            )  # fmt: skip
        return legs

    def replace(
        self, old: Order, req: OrderRequest, cid: str, intent: str, reserve: Decimal | None, now: int,
        eligible: float, expires: int | None,
    ) -> Order:
        """The order that replaces `old` (a new id, accepted, `replaces` old); old becomes "replaced" and its legs
        follow the new order. A trailing stop keeps its mark; a stop-limit keeps its trigger if the stop stays."""
        self.order_seq += 1
        new = dataclasses.replace(
            old, id=str(uuid.uuid4()), seq=self.order_seq, client_order_id=cid, tif=req.tif, intent=intent,
            qty=req.qty, filled_qty=ZERO, filled_avg_price=None, limit_price=req.limit_price,
            stop_price=req.stop_price, trail_percent=req.trail_percent, trail_price=req.trail_price, status="accepted",
            created_at=now, updated_at=now, submitted_at=now, filled_at=None, expired_at=None, canceled_at=None,
            failed_at=None, expires_at=expires, triggered=old.triggered and req.stop_price == old.stop_price,
            reserve_price=reserve, commission=ZERO, eligible_wall=eligible, partial_done=False, live_from=now,
            replaces=old.id, replaced_by=None, replaced_at=None,
        )  # fmt: skip
        self.store.add_order(new)
        for leg in self.group(old.id):
            leg.parent_id = new.id
            if leg.status == "held":
                leg.qty = new.qty
            leg.updated_at = now
            self.store.save_order(leg)
        old.replaced_by, old.replaced_at = new.id, now
        self.close(old, "replaced", now)
        return new

    # ------------------------------------------------------------------------------------------ closing

    def close(self, o: Order, status: str, t: int) -> None:
        """o leaves the book as `status` (canceled, expired or rejected); a closed order stays as it is."""
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

    def _retire(self, o: Order) -> None:
        self.open.pop(o.id, None)
        self.recent[o.id] = o
        if len(self.recent) > RECENT:
            self.recent.popitem(last=False)

    def parent_done(self, parent: Order, t: int, eligible: float) -> None:
        """A parent finished: its legs start working (from wall time `eligible`, on bars from t: the fill bar itself
        when the parent filled at its open) for what was filled, or go away."""
        for leg in self.group(parent.id):
            if leg.status != "held":
                continue
            if parent.filled_qty > 0:
                leg.qty = parent.filled_qty
                leg.status = "new"
                leg.updated_at = t
                leg.live_from = t
                leg.eligible_wall = eligible
                self.store.save_order(leg)
            else:
                self.close(leg, "canceled", t)

    def cancel(self, o: Order, t: int, eligible: float) -> None:
        """Cancelling a leg cancels its sibling; cancelling a parent lets its legs work for what it filled."""
        if o.grouped:
            for partner in self.partners(o):
                self.close(partner, "canceled", t)
            self.close(o, "canceled", t)
        else:
            self.close(o, "canceled", t)
            self.parent_done(o, t, eligible)

    def cancel_all(self, t: int, eligible: float) -> list[Order]:
        """Every open order goes, legs included (legs of a partly filled parent are cancelled with it)."""
        done = []
        for o in list(self.open.values()):
            if o.id in self.open:
                self.cancel(o, t, eligible)
                done.append(o)
        for o in list(self.open.values()):
            self.close(o, "canceled", t)
            done.append(o)
        return done

    def expire(self, t: int, eligible: float) -> None:
        """Orders whose expiry is at or before t expire then (their legs with them, or working for the filled part)."""
        for o in list(self.open.values()):
            if o.expires_at is not None and o.expires_at <= t and o.status != "held" and o.id in self.open:
                self.close(o, "expired", o.expires_at)
                if o.parent_id is None:
                    self.parent_done(o, o.expires_at, eligible)

    # ------------------------------------------------------------------------------------------ fills

    def fill(self, o: Order, qty: Decimal, price: Decimal, commission: Decimal, t: int, eligible: float) -> None:
        """Record qty at price on o (the account has already moved): the order's state, a fill record, and what
        follows: an ioc's rest is cancelled, a partly filled order works on from `eligible`, a filled leg
        cancels its sibling (OCO), a closed parent releases its legs."""
        filled = o.filled_qty + qty
        avg = price if o.filled_avg_price is None else (o.filled_avg_price * o.filled_qty + qty * price) / filled
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
            o.eligible_wall = eligible
        self.fill_seq += 1
        leaves = ZERO if o.qty is None else o.qty - filled  # as the fill left it (an ioc's rest is canceled after)
        self.store.add_fill(
            Fill(
                id=f"{iso_z(t)[:19].replace('-', '').replace(':', '').replace('T', '')}{t % 1_000_000:06d}000::"
                f"{uuid.uuid4()}",
                seq=self.fill_seq, order_id=o.id, symbol=o.symbol, side=o.side,
                type="fill" if done else "partial_fill", qty=qty, price=price, cum_qty=filled, leaves_qty=leaves,
                order_status="filled" if done else "partially_filled", transaction_time=t, commission=commission,
            )
        )  # fmt: skip
        self.store.save_order(o)
        if not o.is_open:
            self._retire(o)
        if o.grouped:  # one leg traded: the other is cancelled (OCO)
            for partner in self.partners(o):
                self.close(partner, "canceled", t)
        elif not o.is_open:
            self.parent_done(o, t, eligible)
