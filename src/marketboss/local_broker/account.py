"""The account: cash and positions, valued at the simulated market, and the buying power that leaves.

Buying power follows Alpaca's Reg T arithmetic: initial margin is gross position value / multiplier and
buying_power = (equity - initial_margin) * multiplier - reserved, where open orders that open or grow a
position reserve their cost (market buys at the ask plus `market_reserve_pct`, limits at their limit).
Multiplier 1 is a cash account (buying power = cash - reserved, no shorting); 2 is a margin account.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

from marketboss.local_broker.clock import MarketClock
from marketboss.local_broker.config import BrokerConfig
from marketboss.local_broker.errors import ApiError, not_found
from marketboss.local_broker.marketdata import CENT, MarketData, Quote, round_price, tick
from marketboss.local_broker.orders import OrderRequest, parse_symbol
from marketboss.local_broker.records import Position, asset_id, num
from marketboss.local_broker.store import Store, stored_meta

ZERO = Decimal(0)
MICRO = Decimal("1e-6")


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
    held: Decimal  # shares open closing orders already claim


class Account:
    """Loaded from the store (a new account is written to it first): identity, cash, last close's equity, positions."""

    def __init__(self, store: Store, market: MarketData, clock: MarketClock, cfg: BrokerConfig):
        self.store = store
        self.market = market
        self.multiplier = Decimal(cfg.multiplier)
        self.reserve = 1 + Decimal(repr(cfg.market_reserve_pct)) / 100
        self.account_id = stored_meta(store, "account_id", lambda: str(uuid.uuid4()))
        self.account_number = stored_meta(store, "account_number", lambda: "PA" + uuid.uuid4().hex[:10].upper())
        self.created_at = int(stored_meta(store, "created_at", lambda: str(clock.now())))
        self.cash = Decimal(stored_meta(store, "cash", lambda: num(Decimal(repr(cfg.cash)).quantize(CENT))))
        self.last_equity = Decimal(stored_meta(store, "last_equity", lambda: num(self.cash)))
        self.positions = {p.symbol: p for p in store.positions()}

    # ------------------------------------------------------------------------------------------ valuation

    def mark(self, symbol: str, t: int, fallback: Decimal) -> Decimal:
        p = self.market.price(symbol, t)
        return fallback if p is None else round_price(p)

    def _market_values(self, t: int) -> tuple[Decimal, Decimal]:
        long_value = short_value = ZERO
        for p in self.positions.values():
            value = p.qty * self.mark(p.symbol, t, p.avg_entry_price)
            if p.qty > 0:
                long_value += value
            else:
                short_value += value
        return long_value, short_value

    def valuation(self, t: int, reserved: Decimal) -> Valuation:
        """The account at t, with `reserved` held back for open orders that open or grow positions."""
        long_value, short_value = self._market_values(t)
        equity = self.cash + long_value + short_value
        gross = long_value - short_value
        initial = (gross / self.multiplier).quantize(CENT)
        maintenance = (long_value * Decimal("0.25") - short_value * Decimal("0.30")).quantize(CENT)
        bp = ((equity - initial) * self.multiplier - reserved).quantize(CENT, ROUND_FLOOR)
        nmbp = (equity - gross - reserved).quantize(CENT, ROUND_FLOOR)
        return Valuation(
            self.cash, long_value, short_value, equity, initial, maintenance, reserved, max(bp, ZERO), max(nmbp, ZERO)
        )

    def close_day(self, t: int) -> None:
        """A session closed at t: its equity is tomorrow's last_equity (the base of the day's P&L)."""
        long_value, short_value = self._market_values(t)
        self.last_equity = self.cash + long_value + short_value
        self.store.set_meta("last_equity", str(self.last_equity))

    def reserve_price(self, req: OrderRequest, q: Quote) -> Decimal:
        """What each share of an opening order holds of buying power until it fills (a trailing stop buy: as a
        stop at its distance above the ask)."""
        if req.type == "trailing_stop" and req.side == "buy":
            gap = q.ask * req.trail_percent / 100 if req.trail_percent is not None else req.trail_price or ZERO
            base = q.ask + gap
            return (base * self.reserve).quantize(tick(base), ROUND_CEILING)
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

    # ------------------------------------------------------------------------------------------ positions

    def qty(self, symbol: str) -> Decimal:
        """Signed shares held (negative when short, 0 when none)."""
        p = self.positions.get(symbol)
        return p.qty if p else ZERO

    def position_symbol(self, symbol_or_id: str) -> str:
        """The symbol of a held position named by symbol or asset id (404 when there is none)."""
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

    def settle(self, symbol: str, buy: bool, qty: Decimal, price: Decimal, commission: Decimal) -> None:
        """A fill: the cash moves by its value (rounded to the cent) less commission, and the position by its shares."""
        value = qty * price
        self.cash += (-value if buy else value).quantize(CENT, ROUND_HALF_EVEN) - commission
        self._move_position(symbol, qty if buy else -qty, price)

    def save_cash(self) -> None:
        self.store.set_meta("cash", str(self.cash))

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
