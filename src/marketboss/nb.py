"""Compiled kernels for the top-level modules (numba): signal ids for signals.py."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def splitmix(x: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    """splitmix64's finaliser: a fixed bijection of 64-bit values that spreads every input bit."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def hex8(x: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    """The 8 lower-case hex digits of a 32-bit value as 8 ASCII bytes, most significant digit first in
    memory (little-endian): its nibbles spread one per byte in reverse order, then '0'..'9' or 'a'..'f'
    for every byte at once."""
    x = ((x & np.uint64(0xFFFF0000)) >> np.uint64(16)) | ((x & np.uint64(0x0000FFFF)) << np.uint64(32))
    x = ((x & np.uint64(0x0000FF000000FF00)) >> np.uint64(8)) | ((x & np.uint64(0x000000FF000000FF)) << np.uint64(16))
    x = ((x & np.uint64(0x00F000F000F000F0)) >> np.uint64(4)) | ((x & np.uint64(0x000F000F000F000F)) << np.uint64(8))
    letters = ((x + np.uint64(0x0606060606060606)) >> np.uint64(4)) & np.uint64(0x0101010101010101)
    return x + np.uint64(0x3030303030303030) + letters * np.uint64(0x27)


@njit(cache=True)
def id_text(
    keys: np.ndarray, ts: np.ndarray, codes: np.ndarray, prefix: np.uint32, slots: np.ndarray, views: np.ndarray
) -> None:  # pragma: no cover - compiled
    """For each signal, a 4-byte prefix + the 16 hex digits of splitmix(key ^ splitmix(ts ^ splitmix(code))).

    Signal i owns 24 bytes, slots[3i:3i+3]: 4 bytes of padding, the prefix, then the digits (8-aligned, so
    written as two 64-bit words); its text starts at byte 24i + 4. `views` gets each one's Arrow string-view
    entry (length, first 4 bytes, buffer 0, offset): the layout polars stores strings in, so the column is
    taken over without a conversion pass."""
    head = np.uint64(prefix) << np.uint64(32)
    for i in range(keys.shape[0]):
        h = splitmix(keys[i] ^ splitmix(np.uint64(ts[i]) ^ splitmix(np.uint64(codes[i]))))
        slots[3 * i] = head
        slots[3 * i + 1] = hex8(h >> np.uint64(32))
        slots[3 * i + 2] = hex8(h & np.uint64(0xFFFFFFFF))
        views[i, 0] = 20
        views[i, 1] = prefix
        views[i, 2] = 0
        views[i, 3] = 24 * i + 4
