"""Day trades counted as FINRA counts them, and the day-trading buying power they use (local broker)."""

from __future__ import annotations

from decimal import Decimal as D

from marketboss.local_broker.daytrades import DayTrades
from marketboss.local_broker.store import MemoryStore
from tests.unit.local_broker_world import world

DAY, NEXT = "2024-01-02", "2024-01-03"


def trades(*fills: tuple[str, str, int, int]) -> DayTrades:
    """(day, symbol, opened, closed) fills at $10 on a fresh ledger."""
    d = DayTrades(MemoryStore())
    for day, sym, opened, closed in fills:
        d.record(day, sym, D(opened), D(closed), D(10))
    return d


def test_finra_examples() -> None:
    assert trades((DAY, "A", 250, 0), (DAY, "A", 250, 0), (DAY, "A", 0, 500)).count([DAY]) == 1  # buy, buy, sell
    assert trades((DAY, "A", 100, 0), (DAY, "A", 0, 100), (DAY, "A", 100, 0), (DAY, "A", 0, 100)).count([DAY]) == 2
    assert trades((DAY, "A", 500, 0), *[(DAY, "A", 0, 100)] * 5).count([DAY]) == 1  # one buy, five sells
    # a position carried overnight and closed today is not a day trade; counts stay with their day
    carried = trades((DAY, "A", 100, 0), (NEXT, "A", 0, 100), (NEXT, "B", 10, 0), (NEXT, "B", 0, 10))
    assert (carried.count([DAY]), carried.count([NEXT]), carried.count([DAY, NEXT])) == (0, 1, 1)


def test_the_ledger_survives_a_reload_and_tracks_what_the_days_openings_cost() -> None:
    store = MemoryStore()
    d = DayTrades(store)
    d.record(DAY, "A", D(10), D(0), D(100))
    d.record(DAY, "A", D(0), D(4), D(120))
    again = DayTrades(store)
    assert again.count([DAY]) == 1 and again.opened_today("A", DAY) == 6
    assert again.opened_cost(DAY) == 600 and again.opened_cost(NEXT) == 0  # a new day starts from nothing


def test_multiplier_4_gives_day_trading_buying_power_used_up_by_the_days_openings() -> None:
    w = world({"AAPL": [100.0] * 5})
    a, t = w.engine.account, w.clock.now()
    v = a.valuation(t, D(0))
    assert (v.multiplier, v.buying_power, v.daytrading_buying_power, v.regt_buying_power) == (4, 400_000, 400_000,
                                                                                             200_000)  # fmt: skip
    a.settle("AAPL", True, D(100), D(100), D(0), t)
    v = a.valuation(t, D(0))
    assert v.daytrading_buying_power == v.buying_power == 400_000 - 10_000
    assert v.regt_buying_power == (100_000 - 5_000) * 2 and v.non_marginable_buying_power == 90_000  # the cash left
    a.settle("AAPL", False, D(100), D(100), D(0), t)
    assert a.valuation(t, D(0)).buying_power == 400_000 and a.daytrades.count([a.daytrades.day]) == 1


def test_equity_caps_the_multiplier() -> None:
    for cash, m in ((24_000.0, 2), (1_999.0, 1), (25_000.0, 4)):
        w = world({"AAPL": [100.0] * 5}, cash=cash)
        v = w.engine.account.valuation(w.clock.now(), D(0))
        assert v.multiplier == m
        assert v.buying_power == (D(repr(cash)) * (m if m < 4 else 4))
