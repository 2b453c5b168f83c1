"""The local broker's parts on their own: the fill model's prices and quantities, the rules on a bar, the
account's margin arithmetic, and MemoryStore's transactions."""

from __future__ import annotations

import math
import sqlite3
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from marketboss.local_broker.config import BrokerConfig
from marketboss.local_broker.fills import FillModel
from marketboss.local_broker.marketdata import Bar
from marketboss.local_broker.matching import leg_to_fill, rule_price
from marketboss.local_broker.records import Order, Position
from marketboss.local_broker.sqlite_store import SqliteStore
from marketboss.local_broker.store import MemoryStore
from tests.unit.local_broker_world import world

D = Decimal


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


def test_fill_prices_move_against_the_order_by_slippage_and_half_spread_within_the_limit() -> None:
    m = model(slippage_bps=10, spread_bps=20)  # the backtest's slip: (10 + 20 / 2) / 10 000 = 0.2%
    assert m.price(order(), 100.0) == D(repr(100.0 * 1.002))
    assert m.price(order(side="sell"), 100.0) == D(repr(100.0 * (1 - 0.002)))
    assert m.price(order(type="limit", limit_price=D("100.15")), 100.0) == D("100.15")  # capped at the limit
    assert m.price(order(side="sell", type="limit", limit_price=D("99.85")), 100.0) == D("99.85")
    assert model(spread_bps=0).price(order(), 100.25) == D("100.25")  # no costs: the rule's price itself


def test_the_rules_on_a_bar_and_at_a_moment() -> None:
    bar = Bar(start=0, end=10, open=100.0, high=104.0, low=97.0)
    assert rule_price(order(type="limit", limit_price=D(98)), bar, moves=True) == 98.0  # low reaches it
    assert math.isnan(rule_price(order(type="limit", limit_price=D(96)), bar, moves=True))
    assert rule_price(order(side="sell", type="stop", stop_price=D(101)), bar, moves=True) == 100.0  # gap: the open
    stop_limit = order(type="stop_limit", stop_price=D(103), limit_price=D(102))
    assert math.isnan(rule_price(stop_limit, bar, moves=True))  # triggered at 103, above its limit: no fill here
    assert stop_limit.triggered and stop_limit.live_from == 1  # ... a limit from the next bar on
    trailing = order(side="sell", type="trailing_stop", trail_percent=D(5), hwm=100.0)
    assert math.isnan(rule_price(trailing, Bar.moment(0, 100.0), moves=False)) and trailing.hwm == 100.0
    assert math.isnan(rule_price(trailing, bar, moves=True)) and trailing.hwm == 104.0  # level 95 not reached
    assert rule_price(trailing, Bar(10, 20, 99.0, 99.0, 98.0), moves=True) == 98.8  # 104 x 0.95
    legs = [order(side="sell", type="limit", leg="take_profit", limit_price=D(103), parent_id="p"),
            order(side="sell", type="stop", leg="stop_loss", stop_price=D(98), parent_id="p")]  # fmt: skip
    hit = leg_to_fill(legs, bar)
    assert hit is not None and (hit[0].leg, hit[1]) == ("stop_loss", 98.0)  # both reached: the stop
    assert leg_to_fill(legs, Bar(0, 10, 104.0, 104.0, 104.0), stop_only=True) is None  # at the open: not the profit


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
    w = world({"AAPL": [110.0] * 5}, multiplier=2)
    a = w.engine.account
    a.settle("AAPL", True, D(10), D(100), D(0))
    a.settle("AAPL", False, D(15), D(110), D(0))
    p = a.positions["AAPL"]
    assert (p.qty, p.avg_entry_price) == (D(-5), D(110))  # the rest is a new short at this price
    assert a.cash == D(100650)
    v = a.valuation(w.clock.now(), D(100))
    assert (v.short_value, v.equity, v.initial_margin) == (D(-550), D(100100), D(275))
    assert v.maintenance_margin == D(165)  # 30% of a short
    assert v.buying_power == v.regt_buying_power == D(199550)  # (100100 - 275) x 2 - 100 reserved
    assert (v.multiplier, v.daytrading_buying_power) == (2, 0)
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


def test_a_schema_2_database_gains_the_replace_links(tmp_path: Path) -> None:
    path = tmp_path / "broker.sqlite"
    store = SqliteStore(path)
    with store.transaction():
        store.add_order(order())
    store.close()
    db = sqlite3.connect(path)  # back to version 2: no replace columns
    for col in ("replaces", "replaced_by", "replaced_at"):
        db.execute(f"ALTER TABLE orders DROP COLUMN {col}")
    db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    store = SqliteStore(path)
    try:
        assert store.get_meta("schema_version") == "3"
        old = store.order("o1")
        assert old is not None and (old.replaces, old.replaced_by, old.replaced_at) == (None, None, None)
        with store.transaction():
            store.save_order(replace(old, status="replaced", replaced_by="o2", replaced_at=5))
        assert (store.order("o1").replaced_by, store.order("o1").replaced_at) == ("o2", 5)  # type: ignore[union-attr]
    finally:
        store.close()
