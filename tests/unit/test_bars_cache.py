"""The validated copies of a bars file (its frame, its market panel) and of the backtest's signals file: the same
result without parsing again, never a stale or wrong one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import marketboss.data.io as io_mod
import marketboss.data.market as market_mod
import marketboss.signals as signals_mod
from marketboss.data import cache
from marketboss.data.io import read_bars, write_bars
from marketboss.data.market import FIELDS, Market, read_market
from marketboss.errors import InputError
from marketboss.signals import read_signals_frame, write_signals
from marketboss.strategies import create


def _no_parsing(*args: object, **kwargs: object) -> None:
    raise AssertionError("the file was parsed again")


@pytest.mark.parametrize("name", ["bars.jsonl", "bars.csv", "bars.parquet"])
def test_a_file_read_before_comes_back_equal_without_parsing(
    tmp_path: Path, daily_bars: pl.DataFrame, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    path = tmp_path / name
    write_bars(daily_bars, path)
    first = read_bars(path)
    monkeypatch.setattr(io_mod, "_fast_parse", _no_parsing)
    monkeypatch.setattr(io_mod, "_slow_parse", _no_parsing)
    again = read_bars(path)
    assert again.schema == first.schema and again.equals(first)


def test_an_edited_file_is_read_and_validated_again(tmp_path: Path, daily_bars: pl.DataFrame) -> None:
    path = tmp_path / "bars.jsonl"
    write_bars(daily_bars, path)
    read_bars(path)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[4] = lines[4].replace(b'"high":', b'"high":-', 1)
    path.write_bytes(b"".join(lines))
    with pytest.raises(InputError) as err:
        read_bars(path)
    assert "bars.jsonl:5: field 'high'" in str(err.value)


def test_an_unreadable_copy_is_a_miss_not_an_error(tmp_path: Path, daily_bars: pl.DataFrame) -> None:
    path = tmp_path / "bars.csv"
    write_bars(daily_bars, path)
    want = read_bars(path)
    copy = cache.entry(cache.content_key(path, "csv"))
    assert copy is not None and copy.exists()
    bad = copy.with_suffix(".tmp")
    bad.write_bytes(b"not arrow")
    bad.replace(copy)  # as every copy is written: whole, by a rename (the frame above still maps the old one)
    assert read_bars(path).equals(want)


def test_the_same_bytes_in_another_format_are_another_entry(tmp_path: Path) -> None:
    a, b = tmp_path / "x.jsonl", tmp_path / "x.csv"
    a.write_bytes(b"same")
    b.write_bytes(b"same")
    assert cache.content_key(a, "jsonl") != cache.content_key(b, "csv")


def test_off_keeps_no_copy_and_entries_are_bounded(
    tmp_path: Path, daily_bars: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(cache.CACHE_DIR_ENV, "off")
    path = tmp_path / "bars.parquet"
    write_bars(daily_bars, path)
    read_bars(path)
    assert cache.entry("k") is None
    monkeypatch.setenv(cache.CACHE_DIR_ENV, str(tmp_path / "c"))
    for i in range(cache.MAX_ENTRIES + 3):
        write_bars(daily_bars.head(10 + i), path)
        read_bars(path)
    assert len(list((tmp_path / "c" / "bars").glob("*.arrow"))) == cache.MAX_ENTRIES


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    drop=st.floats(0.0, 0.6),
    picks=st.sets(st.sampled_from(["AAPL", "MSFT", "JPM"]), min_size=1),
    seed=st.integers(0, 99),
)
def test_a_selection_is_the_market_of_those_symbols_bars(
    daily_bars: pl.DataFrame, drop: float, picks: set[str], seed: int
) -> None:
    """Market.select (what --symbols does to a cached panel) equals from_bars of those symbols' bars alone:
    the same times, prices and bars per year, with bars missing here and there."""
    bars = daily_bars.sample(fraction=1 - drop, seed=seed).sort("timestamp", "symbol") if drop else daily_bars
    whole = Market.from_bars(bars)
    want = Market.from_bars(bars.filter(pl.col("symbol").is_in(sorted(picks))))
    got = whole.select(sorted(picks, reverse=True))
    assert got.symbols == want.symbols and np.array_equal(got.times, want.times)
    assert got.bars_per_year == want.bars_per_year
    for f in FIELDS:
        assert np.array_equal(getattr(got, f), getattr(want, f), equal_nan=True)


def test_a_market_read_before_comes_back_equal_from_its_panel(
    tmp_path: Path, daily_bars: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bars.jsonl"
    write_bars(daily_bars.sample(fraction=0.8, seed=3).sort("timestamp", "symbol"), path)
    first = read_market(path)
    monkeypatch.setattr(market_mod, "read_bars", _no_parsing)
    again = read_market(path)
    assert again.symbols == first.symbols and again.bars_per_year == first.bars_per_year
    for f in ("times", *FIELDS):
        assert np.array_equal(getattr(again, f), getattr(first, f), equal_nan=True)
    assert all(getattr(again, f).flags.writeable for f in FIELDS)


@pytest.mark.parametrize("orders", [False, True], ids=["market orders", "brackets"])
def test_a_signals_file_kept_comes_back_equal_without_parsing(
    tmp_path: Path, daily_bars: pl.DataFrame, monkeypatch: pytest.MonkeyPatch, orders: bool
) -> None:
    params = ["stop_loss_pct=5", "take_profit_pct=10"] if orders else []
    path = tmp_path / "signals.jsonl"
    write_signals(path, create("ma_crossover", params).signals(Market.from_bars(daily_bars)))
    first = read_signals_frame(path, keep_copy=True)
    assert first.height > 10
    monkeypatch.setattr(signals_mod, "_ndjson_frame", _no_parsing)
    monkeypatch.setattr(signals_mod, "read_jsonl_records", _no_parsing)
    again = read_signals_frame(path, keep_copy=True)
    assert again.schema == first.schema and again.equals(first)
    with pytest.raises(AssertionError, match="parsed again"):  # without keep_copy: no copy taken
        read_signals_frame(path)


def test_an_edited_signals_file_is_validated_again(tmp_path: Path, daily_bars: pl.DataFrame) -> None:
    path = tmp_path / "signals.jsonl"
    write_signals(path, create("ma_crossover").signals(Market.from_bars(daily_bars)))
    read_signals_frame(path, keep_copy=True)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"action":"', b'"action":"X', 1)
    path.write_bytes(b"".join(lines))
    with pytest.raises(InputError) as err:
        read_signals_frame(path, keep_copy=True)
    assert "signals.jsonl:3: field 'action'" in str(err.value)
