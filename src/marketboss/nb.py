"""Compiled kernels for the top-level modules (numba): signal id text for signals.py."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def hex_ids(h: np.ndarray, prefix: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """Write prefix + 16 lower-case hex digits of each 64-bit value, back to back, into `out`."""
    digits = np.array([48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 97, 98, 99, 100, 101, 102], dtype=np.uint8)
    p = prefix.shape[0]
    width = p + 16
    for i in range(h.shape[0]):
        o = i * width
        for j in range(p):
            out[o + j] = prefix[j]
        x = h[i]
        for j in range(16):
            out[o + width - 1 - j] = digits[x & np.uint64(15)]
            x = x >> np.uint64(4)
