"""Polars string columns of values from a small table (symbols, sides, statuses), picked by integer codes.

The result tables have tens of thousands of rows and several such columns. A polars gather of a string
series costs several times what it takes to pick 16-byte Arrow string views with numpy: the views of the
table's values are built once, taken by code, and handed to polars without a copy (its own string layout).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import polars as pl
import pyarrow as pa

_INLINE = 12  # Arrow string views hold strings of up to 12 bytes inline, longer ones point into a buffer


@lru_cache(maxsize=256)
def _views(values: tuple[str | None, ...]) -> tuple[np.ndarray, np.ndarray, pa.Buffer]:
    """(views, validity per value, data buffer) of the table: a view is length, then the inline bytes, or
    the first 4 bytes, buffer 0 and the offset in it."""
    encoded = [b"" if v is None else v.encode() for v in values]
    views = np.zeros((len(values), 4), dtype=np.int32)
    raw = views.view(np.uint8)
    offset = 0
    for i, b in enumerate(encoded):
        views[i, 0] = len(b)
        if len(b) <= _INLINE:
            raw[i, 4 : 4 + len(b)] = np.frombuffer(b, dtype=np.uint8)
        else:
            raw[i, 4:8] = np.frombuffer(b[:4], dtype=np.uint8)
            views[i, 3] = offset
        offset += len(b)
    valid = np.array([v is not None for v in values])
    return views, valid, pa.py_buffer(b"".join(encoded))


def text_column(name: str, values: Sequence[str | None], codes: np.ndarray) -> pl.Series:
    """values[codes[i]] for every i, as a polars String series (None gives null)."""
    n = int(codes.shape[0])
    if len(values) == 1:  # one value (a one-symbol market): every row is it
        return pl.Series(name, [values[0]], dtype=pl.String).new_from_index(0, n)
    views, valid, data = _views(tuple(values))
    rows = np.take(views, codes, axis=0)
    validity = None if valid.all() else pa.py_buffer(np.packbits(np.take(valid, codes), bitorder="little"))
    out = pl.from_arrow(pa.Array.from_buffers(pa.string_view(), n, [validity, pa.py_buffer(rows), data]))
    assert isinstance(out, pl.Series)
    return out.alias(name)
