"""The fill model: when an order may trade, what its fill costs, how much of it fills.

Where on a bar an order trades is matching.py's (marketboss.orders' rules); here that price is moved against
the order by `slippage_bps` plus half of `spread_bps`, with the backtest's formula (backtest.nb.fill_price,
Costs.slip), and kept within the limit. An order trades only once its `fill_latency_ms` has passed since it
was placed (or last partly filled); with `partial_fill_rate`, a whole-share order may first fill 20-80% of what
is left (the rest after the latency, or at once when the session has no moment left for it: engine._fill_on_bar).
Random choices are hashes of (seed, order sequence, purpose), so a run repeats exactly.
"""

from __future__ import annotations

import hashlib
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from marketboss.backtest.costs import Costs
from marketboss.backtest.nb import fill_price
from marketboss.local_broker.config import BrokerConfig
from marketboss.local_broker.marketdata import CENT
from marketboss.local_broker.records import MICRO, Order

ZERO = Decimal(0)
NANO = Decimal("1e-9")
BPS = Decimal(10_000)
PARTIAL_MIN, PARTIAL_SPAN = 0.2, 0.6  # a partial fill takes 20-80% of what is left


class FillModel:
    def __init__(self, cfg: BrokerConfig):
        self.latency = cfg.fill_latency_ms / 1000.0
        self.latency_us = int(self.latency * 1_000_000)  # the same, on the simulated clock
        self.slip = Costs(slippage_bps=cfg.slippage_bps, spread_bps=cfg.spread_bps).slip
        self.commission_bps = Decimal(repr(cfg.commission_bps)) / BPS
        self.commission_per_share = Decimal(repr(cfg.commission_per_share))
        self.partial_fill_rate = cfg.partial_fill_rate
        self.reject_rate = cfg.faults.reject_rate  # /admin/faults changes it while the server runs
        self._seed = str(cfg.seed).encode()

    def eligible(self, wall: float) -> float:
        """The wall time an order placed (or partly filled) at `wall` may next trade."""
        return wall + self.latency

    def draw(self, seq: int, salt: str) -> float:
        """A uniform number fixed by (seed, order sequence, purpose): the same run gives the same partial fills."""
        h = hashlib.blake2b(b"%s:%s:%d" % (self._seed, salt.encode(), seq), digest_size=8).digest()
        return int.from_bytes(h, "big") / 2**64

    def rejects(self, o: Order) -> bool:
        """The venue turns down an order it has just accepted (the injected reject_rate fault)."""
        return o.status == "accepted" and self.reject_rate > 0 and self.draw(o.seq, "reject") < self.reject_rate

    def price(self, o: Order, rule_price: float) -> Decimal:
        """The rule's price moved against the order by slippage and half the spread (the backtest's fill_price),
        never beyond the order's limit."""
        cap = float("nan") if o.limit_price is None else float(o.limit_price)
        price = fill_price(rule_price, 1.0 if o.side == "buy" else -1.0, self.slip, cap)
        return Decimal(repr(float(price))).quantize(MICRO).normalize()  # 312.751272, not the float's ...200000003

    def qty(self, o: Order, price: Decimal, position_qty: Decimal) -> Decimal:
        """Shares to fill now: a notional order's worth at `price` (a sell no more than the long position), else what
        is left, or part of it the first time the partial-fill draw says so. May be 0 (nothing to trade)."""
        rem = o.remaining
        if rem is None:  # notional: the shares are worked out at the fill price
            qty = ((o.notional or ZERO) / price).quantize(NANO, ROUND_DOWN)
            if o.side == "sell":
                qty = min(qty, position_qty if position_qty > 0 else ZERO)
            return qty
        if (
            self.partial_fill_rate > 0
            and not o.partial_done
            and o.tif != "fok"
            and rem >= 2
            and rem == rem.to_integral_value()
            and self.draw(o.seq, "partial") < self.partial_fill_rate
        ):
            o.partial_done = True
            share = PARTIAL_MIN + PARTIAL_SPAN * self.draw(o.seq, "fraction")
            return max(Decimal(1), (rem * Decimal(repr(share))).to_integral_value(ROUND_DOWN))
        return rem

    def commission(self, qty: Decimal, price: Decimal) -> Decimal:
        """Basis points of the value plus a per-share fee, rounded half up to the cent."""
        value = qty * price
        return (value * self.commission_bps + qty * self.commission_per_share).quantize(CENT, ROUND_HALF_UP)
