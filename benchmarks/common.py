"""Shared by the benchmark scripts: medians of repeated timings, peak memory, and a uniform report line."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from typing import Any


def median_time(fn: Callable[[], Any], repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of `repeat` calls after `warmup` calls: these machines are shared and noisy."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def interleaved(fns: list[Callable[[], Any]], repeat: int = 5, runs: list[int] | None = None) -> list[float]:
    """Median wall time of each function over `repeat` rounds, each round calling every function in turn
    (`runs[i]` times for function i, default once), after one warm-up round: on a shared machine the load of
    the moment falls on all of them alike, and a short function gets more samples."""
    counts = runs or [1] * len(fns)
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, k, ts in zip(fns, counts, times, strict=True):
            for _ in range(k):
                t0 = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t0)
    return [statistics.median(ts) for ts in times]


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(name: str, **figures: Any) -> None:
    parts = [f"{k}={v:,.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()]
    print(f"{name}: " + " ".join(parts), flush=True)
