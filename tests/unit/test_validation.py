"""Each bar rule, with a bad input and the message the user sees (file, line, field)."""

from __future__ import annotations

from pathlib import Path

import orjson
import polars as pl
import pytest

from marketboss.data.io import read_bars, write_bars
from marketboss.errors import InputError

GOOD = [
    {"timestamp": "2024-01-02T05:00:00Z", "symbol": "AAPL", "open": 10.0, "high": 11.0, "low": 9.5, "close": 10.5,
     "volume": 100},
    {"timestamp": "2024-01-03T05:00:00Z", "symbol": "AAPL", "open": 10.5, "high": 11.5, "low": 10.0, "close": 11.0,
     "volume": 200},
    {"timestamp": "2024-01-04T05:00:00Z", "symbol": "AAPL", "open": 11.0, "high": 12.0, "low": 10.8, "close": 11.5,
     "volume": 300},
]  # fmt: skip


def _write(path: Path, rows: list[dict[str, object] | str]) -> Path:
    path.write_bytes(b"".join((r.encode() if isinstance(r, str) else orjson.dumps(r)) + b"\n" for r in rows))
    return path


def _with(i: int, **changes: object) -> list[dict[str, object] | str]:
    rows: list[dict[str, object] | str] = [dict(r) for r in GOOD]
    row = rows[i]
    assert isinstance(row, dict)
    for k, v in changes.items():
        if v is _DROP:
            del row[k]
        else:
            row[k] = v
    return rows


_DROP = object()

CASES = [
    (_with(1, open=0.0), 2, "open", "price must be > 0"),
    (_with(1, close=-1.0, low=-2.0), 2, "low", "price must be > 0"),
    (_with(1, high=10.9), 2, "high", "high 10.9 is below max(open, close) = 11.0"),
    (_with(2, low=11.2), 3, "low", "low 11.2 is above min(open, close) = 11.0"),
    (_with(0, volume=-5), 1, "volume", "volume must be >= 0"),
    (_with(2, timestamp="2024-01-03T05:00:00Z"), 3, "timestamp", "duplicate bar for AAPL"),
    (_with(2, timestamp="2024-01-01T05:00:00Z"), 3, "timestamp", "not sorted"),
    (_with(1, symbol="aapl"), 2, "symbol", "is not a symbol: upper-case letters and digits"),
    (_with(1, close=_DROP), 2, "close", "missing"),
    (_with(1, high="11.5"), 2, "high", "expected a number"),
    (_with(0, timestamp="yesterday"), 1, "timestamp", "not an ISO-8601 timestamp"),
    (_with(0, symbol=""), 1, "symbol", "missing"),
]


@pytest.mark.parametrize(("rows", "line", "field", "reason"), CASES)
def test_each_rule_names_file_line_and_field(
    tmp_path: Path, rows: list[dict[str, object] | str], line: int, field: str, reason: str
) -> None:
    path = _write(tmp_path / "bars.jsonl", rows)
    with pytest.raises(InputError) as exc:
        read_bars(path)
    err = exc.value
    assert (err.line, err.field) == (line, field)
    assert reason in err.reason
    assert str(err).startswith(f"{path}:{line}: field '{field}':")


def test_invalid_json_line_is_named(tmp_path: Path) -> None:
    rows: list[dict[str, object] | str] = [GOOD[0], '{"timestamp": "2024-01-03T05:00:00Z", "symbol":', GOOD[2]]
    with pytest.raises(InputError, match=r"bars.jsonl:2: invalid JSON"):
        read_bars(_write(tmp_path / "bars.jsonl", rows))


def test_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    rows: list[dict[str, object] | str] = [GOOD[0], "", "", *_with(1, high=1.0)[1:]]
    with pytest.raises(InputError) as exc:
        read_bars(_write(tmp_path / "bars.jsonl", rows))
    assert exc.value.line == 4


def test_csv_errors_count_the_header_line(tmp_path: Path) -> None:
    good = pl.DataFrame(GOOD).with_columns(pl.col("timestamp").str.to_datetime(time_zone="UTC", time_unit="us"))
    path = tmp_path / "bars.csv"
    write_bars(good, path)
    text = path.read_text().splitlines()
    text[2] = text[2].replace("11.5", "1.5", 1)  # line 3 = second bar: high 1.5 < close 11.0
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(InputError) as exc:
        read_bars(path)
    assert (exc.value.line, exc.value.field) == (3, "high")


@pytest.mark.parametrize(("where", "fields"), [(5, 8), (7, 8)])
def test_a_csv_row_of_more_fields_than_its_header_is_refused(tmp_path: Path, where: int, fields: int) -> None:
    """A stray value between close and volume (or one after volume): the row's fields past the header's were
    dropped, the stray value read as the volume."""
    good = pl.DataFrame(GOOD).with_columns(pl.col("timestamp").str.to_datetime(time_zone="UTC", time_unit="us"))
    path = tmp_path / "bars.csv"
    write_bars(good, path)
    text = path.read_text().splitlines()
    cells = text[2].split(",")
    text[2] = ",".join([*cells[:where], "12", *cells[where:]])
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(InputError, match=rf"bars.csv:3: {fields} fields, the header has 7") as exc:
        read_bars(path)
    assert exc.value.line == 3


def test_parquet_errors_name_the_row(tmp_path: Path) -> None:
    bad = pl.DataFrame(_with(1, volume=-1)).with_columns(
        pl.col("timestamp").str.to_datetime(time_zone="UTC", time_unit="us")
    )
    path = tmp_path / "bars.parquet"
    bad.write_parquet(path)
    with pytest.raises(InputError, match=r"row 2: volume must be >= 0") as exc:
        read_bars(path)
    assert exc.value.field == "volume"


def test_unknown_extension_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"unknown file type '\.txt'"):
        read_bars(tmp_path / "bars.txt")
    with pytest.raises(InputError, match="file not found"):
        read_bars(tmp_path / "nope.jsonl")


def test_timestamps_with_offsets_are_converted_to_utc(tmp_path: Path) -> None:
    rows = _with(0, timestamp="2024-01-02T00:00:00-05:00")
    df = read_bars(_write(tmp_path / "bars.jsonl", rows))
    assert df["timestamp"][0].isoformat() == "2024-01-02T05:00:00+00:00"


def test_skip_invalid_keeps_good_rows_and_records_reasons(tmp_path: Path) -> None:
    rows: list[dict[str, object] | str] = [*_with(1, high=1.0), "not json"]
    path = _write(tmp_path / "bars.jsonl", rows)
    rejects = tmp_path / "rejects.jsonl"
    df = read_bars(path, skip_invalid=True, rejects_path=rejects)
    assert df["close"].to_list() == [10.5, 11.5]
    records = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
    assert [(r["line"], r["field"]) for r in records] == [(2, "high"), (4, "")]
    assert "below max(open, close)" in records[0]["reason"]
    assert records[0]["raw"].startswith('{"timestamp":"2024-01-03')
    assert records[1]["reason"].startswith("invalid JSON")
