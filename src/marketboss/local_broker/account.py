"""The account: cash and positions, valued at the simulated market, and the buying power that leaves.

Buying power follows Alpaca's arithmetic. The multiplier in force is the configured one (1 cash, 2 Reg T margin,
4 pattern-day-trader margin, as Alpaca paper) capped by max_margin_multiplier, and by the equity: under $2,000
no margin and no shorting (1), under $25,000 at the last close at most 2.
- regt_buying_power = (equity - initial_margin) x min(multiplier, 2) - reserved, initial margin being the gross
  position value / min(multiplier, 2): Reg T's 50%.
- daytrading_buying_power (multiplier 4 only, else 0) = (last_equity - last_maintenance_margin) x 4 - what the
  day's still-held openings cost - reserved: set at the close, used up by the day's openings.
- buying_power is the day-trading one at multiplier 4, else the Reg T one (the cash less reservations at 1).
- non_marginable_buying_power = equity - gross position value - reserved (what is not borrowed).
Open orders that open or grow a position reserve their cost: buys at their limit or at the ask plus
`market_reserve_pct`, short sales at MAX(limit, ask plus `market_reserve_pct`) (Alpaca: 3% above the ask).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

from marketboss.local_broker.clock import MarketClock, iso_et
from marketboss.local_broker.config import BrokerConfig
from marketboss.local_broker.configurations import Configurations
from marketboss.local_broker.daytrades import DayTrades
from marketboss.local_broker.errors import ApiError, not_found
from marketboss.local_broker.marketdata import CENT, MarketData, Quote, round_price, tick
from marketboss.local_broker.orders import OrderRequest, parse_symbol
from marketboss.local_broker.records import MICRO, Position, asset_id, num
from marketboss.local_broker.store import Store, stored_meta

ZERO = Decimal(0)
MARGIN_FLOOR = Decimal(2_000)  # Alpaca: below this equity, no margin and no short selling
PDT_FLOOR = Decimal(25_000)  # below this equity at the last close: at most 2x, and the PDT protection applies


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
    regt_buying_power: Decimal = ZERO
    daytrading_buying_power: Decimal = ZERO
    multiplier: int = 1


@dataclass(frozen=True)
class PositionView:
    position: Position
    price: Decimal
    lastday_price: Decimal
    held: Decimal  # shares open closing orders already claim


def ny_day(t: int) -> str:
    """The New York date of t (the day a fill counts toward for day trades)."""
    return iso_et(t)[:10]


class Account:
    """Loaded from the store (a new account is written to it first): identity, cash, last close's equity, positions."""

    def __init__(self, store: Store, market: MarketData, clock: MarketClock, cfg: BrokerConfig):
        self.store = store
        self.market = market
        self.max_multiplier = cfg.multiplier
        self.reserve = 1 + Decimal(repr(cfg.market_reserve_pct)) / 100
        self.daytrades = DayTrades(store)
        self.configs = Configurations(store)
        self.account_id = stored_meta(store, "account_id", lambda: str(uuid.uuid4()))
        self.account_number = stored_meta(store, "account_number", lambda: "PA" + uuid.uuid4().hex[:10].upper())
        self.created_at = int(stored_meta(store, "created_at", lambda: str(clock.now())))
        self.cash = Decimal(stored_meta(store, "cash", lambda: num(Decimal(repr(cfg.cash)).quantize(CENT))))
        self.last_equity = Decimal(stored_meta(store, "last_equity", lambda: num(self.cash)))
        self.last_maintenance_margin = Decimal(stored_meta(store, "last_maintenance_margin", lambda: "0"))
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

    def multiplier(self, equity: Decimal) -> int:
        """The multiplier in force: the configured one, capped by max_margin_multiplier and by the equity."""
        m = min(self.max_multiplier, int(self.configs["max_margin_multiplier"]))
        if equity < MARGIN_FLOOR:
            return 1
        return min(m, 2) if self.last_equity < PDT_FLOOR else m

    def valuation(self, t: int, reserved: Decimal) -> Valuation:
        """The account at t, with `reserved` held back for open orders that open or grow positions."""
        long_value, short_value = self._market_values(t)
        equity = self.cash + long_value + short_value
        gross = long_value - short_value
        m = self.multiplier(equity)
        regt_m = Decimal(min(m, 2))
        initial = (gross / regt_m).quantize(CENT)
        maintenance = self._maintenance(long_value, short_value)
        regt = max(((equity - initial) * regt_m - reserved).quantize(CENT, ROUND_FLOOR), ZERO)
        dtbp = ZERO
        if m == 4:
            base = (self.last_equity - self.last_maintenance_margin) * 4
            dtbp = max((base - self.daytrades.opened_cost(ny_day(t)) - reserved).quantize(CENT, ROUND_FLOOR), ZERO)
        nmbp = max((equity - gross - reserved).quantize(CENT, ROUND_FLOOR), ZERO)
        bp = dtbp if m == 4 else regt
        return Valuation(
            self.cash, long_value, short_value, equity, initial, maintenance, reserved, bp, nmbp, regt, dtbp, m
        )

    @staticmethod
    def _maintenance(long_value: Decimal, short_value: Decimal) -> Decimal:
        return (long_value * Decimal("0.25") - short_value * Decimal("0.30")).quantize(CENT)

    def close_day(self, t: int) -> None:
        """A session closed at t: its equity and maintenance margin are tomorrow's last_equity (the base of the
        day's P&L) and last_maintenance_margin (the base of the day-trading buying power)."""
        long_value, short_value = self._market_values(t)
        self.last_equity = self.cash + long_value + short_value
        self.last_maintenance_margin = self._maintenance(long_value, short_value)
        self.store.set_meta("last_equity", str(self.last_equity))
        self.store.set_meta("last_maintenance_margin", str(self.last_maintenance_margin))

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
        short = (q.ask * self.reserve).quantize(tick(q.ask), ROUND_CEILING)  # Alpaca: 3% above the ask
        if req.type in ("limit", "stop_limit"):
            assert req.limit_price is not None
            return max(req.limit_price, short)
        return short

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

    def settle(
        self, symbol: str, buy: bool, qty: Decimal, price: Decimal, commission: Decimal, t: int | None = None
    ) -> None:
        """A fill: the cash moves by its value (rounded to the cent) less commission, and the position by its shares;
        at time t it counts toward the day's day trades."""
        if t is not None:
            held = self.qty(symbol)
            closing = min(qty, abs(held)) if (held < 0 if buy else held > 0) else ZERO
            self.daytrades.record(ny_day(t), symbol, qty - closing, closing, price)
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
