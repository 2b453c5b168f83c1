from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from marketboss.data.io import read_bars, write_bars


@pytest.mark.parametrize("ext", [".jsonl", ".csv", ".parquet"])
def test_round_trip_keeps_every_value(daily_bars: pl.DataFrame, tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"bars{ext}"
    write_bars(daily_bars, path)
    back = read_bars(path)
    assert back.equals(daily_bars.sort("timestamp", "symbol"))
