"""Thinning long series for charts without hiding what matters: per bucket, the minimum and the maximum.

A plain stride would skip a crash that lasts a few bars; min/max per bucket keeps every extreme (the price
spike, the drawdown's trough), so the chart's envelope is exactly the full series' envelope. Vectorised
(one reshape, argmin/argmax per row): no Python loop, so no compiled kernel is needed.
"""

from __future__ import annotations

import numpy as np

MAX_POINTS = 4000


def minmax_indices(y: np.ndarray, max_points: int = MAX_POINTS) -> np.ndarray:
    """Sorted indices into `y` (at most `max_points`, first and last included) keeping each bucket's extremes.

    NaNs are never chosen as an extreme unless a whole bucket is NaN."""
    n = int(y.shape[0])
    if n <= max_points:
        return np.arange(n)
    buckets = max(1, (max_points - 2) // 2)
    size = -(-n // buckets)
    vals = np.asarray(y, dtype=np.float64)
    pad = buckets * size - n
    lo = np.concatenate([np.where(np.isnan(vals), np.inf, vals), np.full(pad, np.inf)]).reshape(buckets, size)
    hi = np.concatenate([np.where(np.isnan(vals), -np.inf, vals), np.full(pad, -np.inf)]).reshape(buckets, size)
    base = np.arange(buckets) * size
    idx = np.concatenate([[0, n - 1], base + lo.argmin(axis=1), base + hi.argmax(axis=1)])
    return np.unique(np.minimum(idx, n - 1))
