"""The crossover kernel's crosses follow its documented running sums (ties and rounding included), and the
research sweep's averages are the kernel's bit for bit."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from marketboss.research.nb import average_table
from marketboss.strategies.nb import ma_cross


def running_sums(x: np.ndarray, n: int) -> np.ndarray:
    """Window sums as documented: running, updated by x[i] - x[i-n]. NaN before the window is full."""
    out = np.full(x.shape[0], np.nan)
    s = 0.0
    for i in range(x.shape[0]):
        s = s + x[i] if i < n else s + (x[i] - x[i - n])
        if i >= n - 1:
            out[i] = s
    return out


def reference_crosses(x: np.ndarray, fast: int, slow: int) -> tuple[list[int], int]:
    """(cross bars, first side) by the rule: a tie or NaN keeps the side, the first side is not a cross."""
    f = running_sums(x, fast) * (1.0 / fast)
    s = running_sums(x, slow) * (1.0 / slow)
    side, first, crosses = -1, -1, []
    for i in range(slow - 1, x.shape[0]):
        now = 1 if f[i] > s[i] else 0 if f[i] < s[i] else side
        if side >= 0 and now != side:
            crosses.append(i)
        if first < 0 and now >= 0:
            first = now
        side = now
    return crosses, first


def one_pass(x: np.ndarray, fast: int, slow: int) -> tuple[list[int], int]:
    idx = np.empty(x.shape[0], dtype=np.int64)
    k, first = ma_cross(x, fast, slow, False, idx)
    return idx[:k].tolist(), first


LEVELS = [1.0, 1.5, 2.0, 2.25, 3.1, 0.7, 0.1]


@settings(max_examples=300, deadline=None)
@given(
    x=st.lists(st.sampled_from(LEVELS), max_size=160).map(np.array),  # exact ties common
    fast=st.integers(1, 6),
    extra=st.integers(1, 12),
)
def test_crosses_follow_the_documented_sums(x: np.ndarray, fast: int, extra: int) -> None:
    assert one_pass(x, fast, fast + extra) == reference_crosses(x, fast, fast + extra)


def test_the_sweeps_averages_are_the_crossovers_bit_for_bit() -> None:
    rng = np.random.default_rng(8)
    n = 70_000
    x = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    windows = np.array([4, 9, 40], dtype=np.int64)
    table = np.empty((3, n))
    average_table(x, n, windows, np.zeros(3, dtype=np.bool_), table)
    for w, m in enumerate(windows):
        np.testing.assert_array_equal(table[w, m - 1 :], (running_sums(x, int(m)) * (1.0 / m))[m - 1 :])
