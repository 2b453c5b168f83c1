"""Fixtures of the unit tests that run commands: the guide's bars file in a clean working directory."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from marketboss.data.io import write_bars


@pytest.fixture
def data(daily_bars: pl.DataFrame, workdir: Path) -> Path:
    path = workdir / "data" / "market_data.jsonl"
    write_bars(daily_bars, path)
    return path
