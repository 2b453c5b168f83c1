"""Reused memory for a backtest's per-bar outputs.

Cash, positions value and equity per bar take 24 MB per million bars, and they live on, without a copy, in
the result's equity frame. Fresh memory of that size is expensive where pages are faulted in one by one
from the host (virtual machines): filling it cost more than the simulation that writes it, and the C
allocator hands freed blocks of that size back to the system. So blocks are kept here and handed out again
once nothing but this pool refers to them: the frames that used them (and every view of them) are gone.
Parameter sweeps, the dashboard and benchmarks run many backtests on one market.
"""

from __future__ import annotations

import sys
import threading

import numpy as np

_KEEP = 4  # blocks kept in all; more in use at once are allocated and left to the garbage collector
_lock = threading.Lock()
_blocks: list[np.ndarray] = []


def _free(i: int) -> bool:
    # Only the pool's list and getrefcount's own argument refer to block i. A view holds its base and a
    # frame holds its arrays: either keeps the block busy.
    return sys.getrefcount(_blocks[i]) == 2


def per_bar(rows: int, n: int) -> np.ndarray:
    """An uninitialised (rows, n) float64 block, reused when an earlier one of that shape is free."""
    with _lock:
        for i in range(len(_blocks)):
            if _blocks[i].shape == (rows, n) and _free(i):
                return _blocks[i]
        block = np.empty((rows, n))
        if len(_blocks) < _KEEP:
            _blocks.append(block)
        else:  # take the place of a free block (of another shape): the pool follows the markets in use
            for i in range(len(_blocks)):
                if _free(i):
                    _blocks[i] = block
                    break
        return block
