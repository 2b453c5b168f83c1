"""The local broker's parts on their own: the fill model's prices and quantities, the account's margin arithmetic,
and MemoryStore's transactions."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from marketboss.local_broker.config import BrokerConfig
from marketboss.local_broker.fills import FillModel
from marketboss.local_broker.marketdata import Quote
from marketboss.local_broker.records import Order, Position
from marketboss.local_broker.store import MemoryStore
from tests.unit.local_broker_world import world

D = Decimal
QUOTE = Quote(bid=D("99.90"), ask=D("100.10"), price=D(100))


def model(**options: float) -> FillModel:
    return FillModel(BrokerConfig(data=Path("bars.jsonl"), db=Path("broker.sqlite"), **options))


def order(**changes: object) -> Order:
    base = Order(
        id="o1", seq=1, client_order_id="c1", parent_id=None, leg=None, symbol="AAPL", side="buy", type="market",
        tif="day", order_class="simple", intent="buy_to_open", qty=D(10), notional=None, filled_qty=D(0),
        filled_avg_price=None, limit_price=None, stop_price=None, extended_hours=False, status="new", created_at=0,
        updated_at=0, submitted_at=0, filled_at=None, expired_at=None, canceled_at=None, failed_at=None,
        expires_at=None, triggered=False, reserve_price=None, commission=D(0), eligible_wall=0.0, partial_done=False,
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


def test_fill_prices_move_against_the_order_by_the_slippage_within_the_limit() -> None:
    m = model(slippage_bps=10)
    assert m.price(order(), QUOTE) == D("100.21")  # 100.10 + 0.1001, up to the cent
    assert m.price(order(side="sell"), QUOTE) == D("99.80")  # 99.90 - 0.0999, down to the cent
    assert m.price(order(type="limit", limit_price=D("100.15")), QUOTE) == D("100.15")
    assert m.price(order(side="sell", type="limit", limit_price=D("99.85")), QUOTE) == D("99.85")
    assert model().price(order(), QUOTE) == D("100.10")  # no slippage: the ask


def test_limits_and_stops_are_marketable_only_at_their_price() -> None:
    m = model()
    assert not m.marketable(order(type="limit", limit_price=D("100.09")), QUOTE)  # buy: the ask must be <= limit
    assert m.marketable(order(type="limit", limit_price=D("100.10")), QUOTE)
    assert not m.marketable(order(side="sell", type="limit", limit_price=D("99.91")), QUOTE)
    stop = order(side="sell", type="stop_limit", stop_price=D(100), limit_price=D("99.95"))
    assert not m.marketable(stop, QUOTE)  # crossed the stop (price <= 100) but the bid is below the limit
    assert stop.triggered  # ... and stays triggered for later quotes
    assert not m.marketable(order(side="sell", type="stop", stop_price=D("99.99")), QUOTE)


def test_quantities_partial_notional_and_commission() -> None:
    m = model(partial_fill_rate=1.0, commission_bps=10, commission_per_share=0.005)
    o = order()
    part = m.qty(o, D(100), D(0))
    assert 2 <= part <= 8 and o.partial_done
    assert m.qty(o, D(100), D(0)) == 10  # one partial fill per order: then what is left
    assert m.qty(order(tif="fok"), D(100), D(0)) == 10  # fill-or-kill is never split
    assert model(partial_fill_rate=1.0).qty(order(), D(100), D(0)) == part  # the same seed draws the same part
    bought = m.qty(order(qty=None, notional=D(1000)), D("100.21"), D(0))
    assert bought * D("100.21") <= 1000 < (bought + D("1e-9")) * D("100.21")
    assert m.qty(order(side="sell", qty=None, notional=D(1000)), D(100), D(3)) == 3  # no more than is held
    assert m.commission(D(10), D(100)) == D("1.05")  # 10 bps of 1000 + 10 x 0.005
    assert m.eligible(1.0) == 1.0 + 0.05  # the default 50 ms latency


def test_account_crosses_through_zero_and_values_a_short_with_margin() -> None:
    w = world({"AAPL": [110.0] * 5})
    a = w.engine.account
    a.settle("AAPL", True, D(10), D(100), D(0))
    a.settle("AAPL", False, D(15), D(110), D(0))
    p = a.positions["AAPL"]
    assert (p.qty, p.avg_entry_price) == (D(-5), D(110))  # the rest is a new short at this price
    assert a.cash == D(100650)
    v = a.valuation(w.clock.now(), D(100))
    assert (v.short_value, v.equity, v.initial_margin) == (D(-550), D(100100), D(275))
    assert v.maintenance_margin == D(165)  # 30% of a short
    assert v.buying_power == D(199550)  # (100100 - 275) x 2 - 100 reserved
    assert w.store.held_positions["AAPL"].qty == -5
    a.settle("AAPL", True, D(5), D(110), D(0))
    assert a.positions == {} and w.store.held_positions == {}


def test_memory_store_copies_records_and_rolls_back_a_failed_transaction() -> None:
    s = MemoryStore()
    o = order()
    s.add_order(o)
    o.status = "filled"  # not saved: the store keeps what it was given
    assert s.order("o1").status == "new"  # type: ignore[union-attr]
    with pytest.raises(RuntimeError), s.transaction():
        s.save_order(o)
        s.save_position(Position("AAPL", D(10), D(100)))
        s.set_meta("cash", "0")
        raise RuntimeError
    assert s.order("o1").status == "new"  # type: ignore[union-attr]
    assert (s.positions(), s.get_meta("cash")) == ([], None)
    with s.transaction():
        s.save_order(o)
    assert s.open_orders() == [] and s.max_order_seq() == 1


def test_the_rate_limit_reset_is_never_before_the_window_turns() -> None:
    """X-Ratelimit-Reset is whole seconds: rounded up, a client that waits until it is never a moment early."""
    from marketboss.local_broker.faults import RateLimiter

    limiter = RateLimiter(2)
    assert limiter.hit(100.3) == (True, 1, 161)  # the window opened at 100.3 turns at 160.3
    assert limiter.hit(150.0) == (True, 0, 161)
    assert limiter.hit(160.2) == (False, 0, 161)
    assert limiter.hit(160.3)[0] and limiter.peek(160.4) == (1, 221)
