"""Compiled kernels for the top-level modules (numba): signal ids for signals.py; a prefetch hint for the
backtest kernel."""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


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


@njit(cache=True, nogil=True)
def id_text(
    keys: np.ndarray, ts: np.ndarray, codes: np.ndarray, prefix: np.uint32, slots: np.ndarray, views: np.ndarray
) -> None:  # pragma: no cover - compiled
    """For each signal, a 4-byte prefix + the 16 hex digits of splitmix(key ^ splitmix(ts ^ splitmix(code))).

    Signal i owns 24 bytes, slots[3i:3i+3]: 4 bytes of padding, the prefix, then the digits (8-aligned, so
    written as two 64-bit words); its text starts at byte 24i + 4. `views` gets each one's Arrow string-view
    entry (length, first 4 bytes, buffer 0, offset): the layout polars stores strings in, so the column is
    taken over without a conversion pass. The hashes come first, in a loop of their own that the compiler
    vectorises (the text's scattered stores would stop it). Without the GIL: a backtest builds the ids while
    its worker thread fills the orders, and that thread needs the GIL for a moment when it is done."""
    n = keys.shape[0]
    hashes = np.empty(n, dtype=np.uint64)
    for i in range(n):
        hashes[i] = splitmix(keys[i] ^ splitmix(np.uint64(ts[i]) ^ splitmix(np.uint64(codes[i]))))
    head = np.uint64(prefix) << np.uint64(32)
    for i in range(n):
        h = hashes[i]
        slots[3 * i] = head
        slots[3 * i + 1] = hex8(h >> np.uint64(32))
        slots[3 * i + 2] = hex8(h & np.uint64(0xFFFFFFFF))
        views[i, 0] = 20
        views[i, 1] = prefix
        views[i, 2] = 0
        views[i, 3] = 24 * i + 4


def _prefetch(typingctx: Any, arr: Any, idx: Any) -> Any:
    tuple_index = isinstance(idx, types.UniTuple)
    index_type = idx.dtype if tuple_index else idx
    dims = idx.count if tuple_index else 1
    if not (isinstance(arr, types.Array) and arr.ndim == dims and isinstance(index_type, types.Integer)):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        raw = cgutils.unpack_tuple(builder, args[1], dims) if tuple_index else [args[1]]
        ptr = cgutils.get_item_pointer2(
            context, builder, data=ary.data, shape=cgutils.unpack_tuple(builder, ary.shape),
            strides=cgutils.unpack_tuple(builder, ary.strides), layout=aryty.layout,
            inds=[context.cast(builder, v, index_type, types.intp) for v in raw],
        )
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0"
        )
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(2), i32(1)])  # read, into L2 (not L1), data
        return context.get_dummy_value()

    return types.void(arr, idx), codegen


#: prefetch(arr, i) or prefetch(arr, (i, j)) in compiled code: ask the CPU to bring that element into its L2
#: cache (llvm.prefetch) without waiting for it, for loads known well ahead that would otherwise each stall a
#: loop on a cache miss (into L2, not L1: measured faster, as L1 is small and the lines are wanted later).
#: The index must be in bounds (it is not checked).
prefetch: Any = intrinsic(_prefetch)
