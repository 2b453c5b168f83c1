"""Reused memory for large result arrays: a backtest's per-bar outputs, its fills and trades, a strategy's
crossing buffers.

Cash, positions value and equity per bar take 24 MB per million bars, and they, like the fills and trades
columns, live on in the result's frames without a copy. Fresh memory is expensive where pages are faulted
in one by one from the host (virtual machines): faulting the arrays in cost more than the simulation that
fills them, and the C allocator hands large freed blocks back to the system. So blocks are kept here and
handed out again once nothing but this pool refers to them: the frames that used them, and every view of
them, are gone. Parameter sweeps, the dashboard and benchmarks run many backtests on one market.
"""

from __future__ import annotations

import sys
import threading

import numpy as np

_KEEP = 16  # blocks kept (a backtest takes 7); more in use at once are left to the garbage collector
_MAX_BYTES = 1 << 30  # and at most this much memory, free or in use, held by the pool
_lock = threading.Lock()
_blocks: list[np.ndarray] = []


def _free(i: int) -> bool:
    # Only the pool's list and getrefcount's own argument refer to block i. A view holds its base and a
    # frame holds its arrays: either keeps the block busy.
    return sys.getrefcount(_blocks[i]) == 2


def take(shape: tuple[int, ...], dtype: type[np.generic] = np.float64) -> np.ndarray:
    """An uninitialised array, reused when an earlier one of that shape and type is free."""
    with _lock:
        for i in range(len(_blocks)):
            if _blocks[i].shape == shape and _blocks[i].dtype == dtype and _free(i):
                return _blocks[i]
        block = np.empty(shape, dtype=dtype)
        held = sum(b.nbytes for b in _blocks)
        if len(_blocks) < _KEEP and held + block.nbytes <= _MAX_BYTES:
            _blocks.append(block)
            return block
        for i in range(len(_blocks)):  # take the place of a free block: the pool follows the work in hand
            if _free(i) and held - _blocks[i].nbytes + block.nbytes <= _MAX_BYTES:
                _blocks[i] = block
                break
        return block
