"""Compiled kernels for the top-level modules (numba): signal ids for signals.py."""

from __future__ import annotations

import numpy as np
from numba import njit

#: "00" .. "ff": the two hex digits of every byte value.
_HEX_PAIRS = np.frombuffer("".join(f"{b:02x}" for b in range(256)).encode(), dtype=np.uint8).reshape(256, 2)


@njit(cache=True)
def splitmix(x: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    """splitmix64's finaliser: a fixed bijection of 64-bit values that spreads every input bit."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def id_text(
    keys: np.ndarray, ts: np.ndarray, codes: np.ndarray, prefix: np.ndarray, text: np.ndarray, views: np.ndarray
) -> None:  # pragma: no cover - compiled
    """For each signal, prefix + the 16 hex digits of splitmix(key ^ splitmix(ts ^ splitmix(code))), back
    to back in `text`, and its Arrow string-view entry in `views` (length, first 4 bytes, buffer 0, offset):
    the layout polars stores strings in, so the column is taken over without a conversion pass."""
    p = prefix.shape[0]
    width = p + 16
    head = views.view(np.uint8)
    for i in range(keys.shape[0]):
        h = splitmix(keys[i] ^ splitmix(np.uint64(ts[i]) ^ splitmix(np.uint64(codes[i]))))
        o = i * width
        for j in range(p):
            text[o + j] = prefix[j]
        for j in range(8):
            b = (h >> np.uint64(56 - 8 * j)) & np.uint64(255)
            text[o + p + 2 * j] = _HEX_PAIRS[b, 0]
            text[o + p + 2 * j + 1] = _HEX_PAIRS[b, 1]
        views[i, 0] = width
        for j in range(4):
            head[i, 4 + j] = text[o + j]
        views[i, 2] = 0
        views[i, 3] = o
