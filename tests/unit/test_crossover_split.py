"""The crossover kernel's restarts and its split over two cores: the same crosses as one pass, bit for bit,
and the research sweep's averages the same as the kernel's."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketboss import worker
from marketboss.data.market import Market
from marketboss.research.nb import average_table
from marketboss.strategies import create
from marketboss.strategies.ma_crossover import join_crosses
from marketboss.strategies.nb import RESTART, ma_cross
from tests.unit.test_strategies import one_symbol


def running_sums(x: np.ndarray, n: int, restart: int) -> np.ndarray:
    """Window sums as documented: running, updated by x[i] - x[i-n], and summed afresh (oldest first) at
    every multiple of `restart` from n on. NaN before the window is full."""
    out = np.full(x.shape[0], np.nan)
    s = 0.0
    for i in range(x.shape[0]):
        if i < n:
            s += x[i]
        elif i % restart == 0:
            s = 0.0
            for q in range(i + 1 - n, i + 1):
                s += x[q]
        else:
            s += x[i] - x[i - n]
        if i >= n - 1:
            out[i] = s
    return out


def reference_crosses(x: np.ndarray, fast: int, slow: int, restart: int) -> tuple[list[int], int]:
    """(cross bars, first side) by the rule: a tie or NaN keeps the side, the first side is not a cross."""
    f = running_sums(x, fast, restart) * (1.0 / fast)
    s = running_sums(x, slow, restart) * (1.0 / slow)
    side, first, crosses = -1, -1, []
    for i in range(slow - 1, x.shape[0]):
        now = 1 if f[i] > s[i] else 0 if f[i] < s[i] else side
        if side >= 0 and now != side:
            crosses.append(i)
        if first < 0 and now >= 0:
            first = now
        side = now
    return crosses, first


def one_pass(x: np.ndarray, fast: int, slow: int, restart: int) -> tuple[list[int], int]:
    idx = np.empty(x.shape[0], dtype=np.int64)
    k, _, first, _ = ma_cross(x, fast, slow, False, 0, x.shape[0], restart, idx)
    return idx[:k].tolist(), first


def two_parts(x: np.ndarray, fast: int, slow: int, restart: int, mid: int) -> list[int]:
    n = x.shape[0]
    a, b = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    k, _, _, last = ma_cross(x, fast, slow, False, 0, mid, restart, a)
    k_b, bar_b, first_b, _ = ma_cross(x, fast, slow, False, mid, n, restart, b)
    return join_crosses(a[:k], last, b[:k_b], bar_b, first_b).tolist()


LEVELS = [1.0, 1.5, 2.0, 2.25, 3.1, 0.7, 0.1]


def check(x: np.ndarray, fast: int, slow: int, restart: int) -> None:
    crosses, first = reference_crosses(x, fast, slow, restart)
    assert one_pass(x, fast, slow, restart) == (crosses, first)
    for mid in range(restart * ((slow + restart - 1) // restart), x.shape[0], restart):
        assert two_parts(x, fast, slow, restart, mid) == crosses, mid


@settings(max_examples=300, deadline=None)
@given(
    x=st.lists(st.sampled_from(LEVELS), max_size=160).map(np.array),  # exact ties common, at split points too
    fast=st.integers(1, 6),
    extra=st.integers(1, 12),
    restart=st.one_of(st.integers(1, 3), st.integers(1, 40)),
)
def test_crosses_follow_the_documented_sums_and_any_split_gives_the_same(
    x: np.ndarray, fast: int, extra: int, restart: int
) -> None:
    check(x, fast, fast + extra, restart)


def test_where_only_rounding_decides_the_sums_are_exactly_the_documented_ones() -> None:
    """A repeating pattern whose period divides both windows: the averages are equal in exact arithmetic at
    every bar, so each side is decided by the rounding of the sums alone, which sums computed in any other
    way than documented (a running update where a fresh sum is due, or the reverse) get wrong somewhere."""
    rng = np.random.default_rng(0)
    decided = 0
    for _ in range(3000):
        pattern = rng.choice(LEVELS, int(rng.integers(1, 5)))
        a, b = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        x = np.resize(pattern, int(rng.integers(0, 160)))
        fast, slow = len(pattern) * a, len(pattern) * (a + b)
        restart = int(rng.integers(1, 7))
        check(x, fast, slow, restart)
        decided += len(reference_crosses(x, fast, slow, restart)[0]) > 0
    assert decided > 20  # rounding alone made crosses: the cases can tell sums apart


def test_a_long_series_is_split_over_two_cores_with_the_result_of_one_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(3)
    n = 2 * RESTART + 12_345
    close = np.round(100 + np.cumsum(rng.normal(0, 0.05, n)), 1)  # coarse prices: ties at many bars
    strat = create("ma_crossover", ["fast=3", "slow=7", "long_only=false"])
    market = one_symbol(close)
    crosses, first = one_pass(market.symbol_bars(0).close, 3, 7, RESTART)
    calls: list[int] = []
    start = worker.start

    def counted(fn, *args):  # type: ignore[no-untyped-def]
        calls.append(args[4])
        return start(fn, *args)

    monkeypatch.setattr(worker, "start", counted)
    sig = strat.signals(market)
    assert calls == [RESTART]  # the later half, from the restart point nearest the middle, went to the worker
    times = market.symbol_bars(0).times
    assert sig["timestamp"].dt.epoch("us").to_list() == [int(times[i]) for i in crosses]
    sides = ["SELL" if first == 1 else "BUY", "BUY" if first == 1 else "SELL"]
    assert sig["action"].to_list() == [sides[q % 2] for q in range(len(crosses))]
    assert len(crosses) > 1000


def test_the_sweeps_averages_are_the_crossovers_bit_for_bit_across_restarts() -> None:
    rng = np.random.default_rng(8)
    n = RESTART + 5_000
    x = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    windows = np.array([4, 9, 40], dtype=np.int64)
    table = np.empty((3, n))
    average_table(x, n, windows, np.zeros(3, dtype=np.bool_), table)
    for w, m in enumerate(windows):
        np.testing.assert_array_equal(table[w, m - 1 :], (running_sums(x, int(m), RESTART) * (1.0 / m))[m - 1 :])


def test_without_a_second_core_the_work_runs_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "_cores", lambda: 1)
    main = worker.start(lambda: __import__("threading").current_thread().name)()
    assert not main.startswith("marketboss-worker")


def test_the_workers_exception_reaches_the_caller() -> None:
    def fail() -> None:
        raise ValueError("inside")

    join = worker.start(fail)
    with pytest.raises(ValueError, match="inside"):
        join()


def test_a_backtest_on_one_core_is_the_same_as_on_two(monkeypatch: pytest.MonkeyPatch) -> None:
    from marketboss.backtest import run_strategy

    rng = np.random.default_rng(4)
    market: Market = one_symbol(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 3_000))))
    strat = create("ma_crossover", ["fast=5", "slow=20", "long_only=false"])
    two, _ = run_strategy(market, strat)
    monkeypatch.setattr(worker, "_cores", lambda: 1)
    one, _ = run_strategy(market, strat)
    for name in ("equity", "fills", "trades", "orders"):
        assert getattr(one, name).equals(getattr(two, name)), name
    assert one.metrics.keys() == two.metrics.keys()
    for key, value in two.metrics.items():
        assert one.metrics[key] == value or (value != value and one.metrics[key] != one.metrics[key]), key
    assert two.fills.height > 50
