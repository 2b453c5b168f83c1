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
def id_text(keys: np.ndarray, ts: np.ndarray, codes: np.ndarray, prefix: np.ndarray, out: np.ndarray) -> None:
    # pragma: no cover - compiled
    """Row i of `out` (n x 20 bytes): the 4-byte prefix, then the 16 lower-case hex digits of
    splitmix(key ^ splitmix(ts ^ splitmix(code))) of signal i, most significant first."""
    for i in range(keys.shape[0]):
        h = splitmix(keys[i] ^ splitmix(np.uint64(ts[i]) ^ splitmix(np.uint64(codes[i]))))
        out[i, :4] = prefix
        for j in range(16):
            d = (h >> np.uint64(60 - 4 * j)) & np.uint64(0xF)
            out[i, 4 + j] = d + (48 if d < 10 else 87)  # '0'..'9', 'a'..'f'


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
