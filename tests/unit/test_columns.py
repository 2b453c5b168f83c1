"""String columns picked from a small table by code equal polars' own strings, nulls and long values included."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from marketboss.columns import text_column

TABLES = [
    ("SELL", "BUY"),
    ("AAPL", "MSFT", "A-SYMBOL-LONGER-THAN-TWELVE-BYTES"),
    ("filled", None, "insufficient cash", "x" * 12, "y" * 13, ""),
    ("only",),
    (None,),
]


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("n", [0, 1, 9, 1000])
def test_text_column_equals_the_values_it_picks(table: tuple[str | None, ...], n: int) -> None:
    codes = np.random.default_rng(n).integers(0, len(table), n)
    got = text_column("c", table, codes)
    want = pl.Series("c", [table[c] for c in codes], dtype=pl.String)
    assert got.dtype == pl.String and got.name == "c"
    assert got.equals(want)
    assert got.null_count() == want.null_count()
    assert pl.DataFrame({"c": got}).write_ndjson() == pl.DataFrame({"c": want}).write_ndjson()
