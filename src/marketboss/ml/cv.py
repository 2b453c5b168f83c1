"""Purged walk-forward cross-validation with an embargo.

The distinct sample times are cut into folds + 1 contiguous blocks; fold k tests on block k + 1 and trains
on samples before it (an expanding window, as the model would be used: trained on the past, applied later).
Labels look ahead (a row at t is labelled with the return up to its label end, t + horizon bars of its
symbol), so training rows next to a test block would carry test-period returns into training:

- purge: a training row is dropped when its label window [t, max(end, t + purge)] reaches the test block.
  purge is at least the horizon (default: the horizon); the exact label end covers symbols with gaps.
- embargo: a further `embargo` bars are left out between the purged training set and the test block, for
  features and labels that stay correlated beyond the horizon.

So for every fold: every training row's label window ends more than `embargo` rows before the test block
starts, and never overlaps it (the property test checks exactly this).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from marketboss.errors import MarketBossError

SCHEME = "purged_walk_forward"
MIN_TRAIN = 20


@dataclass(frozen=True)
class Fold:
    index: int
    train: np.ndarray  # sample indices
    test: np.ndarray
    test_start: int  # market rows, inclusive
    test_end: int


def purged_walk_forward(t: np.ndarray, end: np.ndarray, folds: int, purge: int, embargo: int) -> list[Fold]:
    """Folds over samples with times `t` and label ends `end` (market rows; end >= t)."""
    if folds < 1:
        raise MarketBossError(f"folds must be at least 1, got {folds}")
    if purge < 0 or embargo < 0:
        raise MarketBossError("purge and embargo must not be negative")
    times = np.unique(t)
    if times.shape[0] < folds + 1:
        raise MarketBossError(f"{times.shape[0]} distinct bar times cannot make {folds} walk-forward folds")
    reach = np.maximum(end, t + purge)
    out = []
    for k, block in enumerate(np.array_split(times, folds + 1)[1:]):
        lo, hi = int(block[0]), int(block[-1])
        train = np.flatnonzero(reach + embargo < lo)
        if train.shape[0] < MIN_TRAIN:
            raise MarketBossError(
                f"fold {k + 1} of {folds} has only {train.shape[0]} training rows after purge and embargo: "
                "use fewer --folds, a smaller --embargo, or more data"
            )
        test = np.flatnonzero((t >= lo) & (t <= hi))
        out.append(Fold(k, train, test, lo, hi))
    return out
