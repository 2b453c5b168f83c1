"""Purged walk-forward splits never leak: no training label window touches a test window, and the embargo
gap is kept, for any data shape (property test)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketboss.errors import MarketBossError
from marketboss.ml.cv import MIN_TRAIN, purged_walk_forward


def _samples(n_times: int, n_symbols: int, horizon: int, missing: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(t, end) as features.samples builds them: each symbol's label ends at its h-th next bar."""
    rng = np.random.default_rng(seed)
    ts, ends = [], []
    for _ in range(n_symbols):
        rows = np.flatnonzero(rng.random(n_times) >= missing)
        ts.append(rows[:-horizon] if horizon else rows)
        ends.append(rows[horizon:])
    t, end = np.concatenate(ts), np.concatenate(ends)
    order = np.argsort(t, kind="stable")
    return t[order], end[order]


@settings(max_examples=150, deadline=None)
@given(
    n_times=st.integers(40, 400),
    n_symbols=st.integers(1, 4),
    horizon=st.integers(1, 15),
    extra_purge=st.integers(0, 5),
    embargo=st.integers(0, 15),
    folds=st.integers(2, 6),
    missing=st.sampled_from([0.0, 0.1, 0.3]),
    seed=st.integers(0, 2**16),
)
def test_purged_splits_never_leak(
    n_times: int, n_symbols: int, horizon: int, extra_purge: int, embargo: int, folds: int, missing: float, seed: int
) -> None:
    t, end = _samples(n_times, n_symbols, horizon, missing, seed)
    purge = horizon + extra_purge
    try:
        splits = purged_walk_forward(t, end, folds, purge, embargo)
    except MarketBossError as exc:  # refused only when a fold really is (nearly) empty
        times = np.unique(t)
        assert times.shape[0] < folds + 1 or "training rows" in str(exc)
        if times.shape[0] >= folds + 1:
            starts = [b[0] for b in np.array_split(times, folds + 1)[1:]]
            reach = np.maximum(end, t + purge)
            assert min(int(np.sum(reach + embargo < s)) for s in starts) < MIN_TRAIN
        return
    assert len(splits) == folds
    prev_end = -1
    for f in splits:
        lo, hi = f.test_start, f.test_end
        assert prev_end < lo <= hi  # test windows are disjoint and move forward
        prev_end = hi
        assert np.array_equal(f.test, np.flatnonzero((t >= lo) & (t <= hi)))
        tr_t, tr_end = t[f.train], end[f.train]
        assert f.train.shape[0] >= MIN_TRAIN
        # the training label window [t, t + horizon] (and its exact end) overlaps no test window ...
        assert np.all(np.maximum(tr_end, tr_t + horizon) < lo)
        assert not np.any((tr_t <= hi) & (np.maximum(tr_end, tr_t + horizon) >= lo))
        # ... and ends more than purge/embargo bars before it
        assert np.all(tr_t + purge + embargo < lo) and np.all(tr_end + embargo < lo)
        # nothing usable was thrown away: every row clear of the test window by purge and embargo trains
        clear = np.flatnonzero(np.maximum(end, t + purge) + embargo < lo)
        assert np.array_equal(f.train, clear)


def test_an_impossible_split_is_one_clear_error() -> None:
    t, end = _samples(60, 1, 5, 0.0, 1)
    with pytest.raises(MarketBossError, match="use fewer --folds"):
        purged_walk_forward(t, end, 10, 5, 30)
    with pytest.raises(MarketBossError, match="cannot make 100 walk-forward folds"):
        purged_walk_forward(t, end, 100, 5, 0)
