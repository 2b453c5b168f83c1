"""Foreign layouts (Yahoo CSV, Alpaca-style Parquet) become contract bars, or a clear one-line error."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from marketboss.data.importers import import_bars
from marketboss.errors import InputError

YAHOO = """Date,Open,High,Low,Close,Adj Close,Volume
2024-01-04,182.15,183.09,180.88,181.91,90.955,71983600
2024-01-02,187.15,188.44,183.89,185.64,92.82,82488700
2024-01-03,184.22,185.88,183.43,184.25,92.125,58414500
"""


def test_yahoo_csv_dates_become_session_bars_sorted(tmp_path: Path) -> None:
    path = tmp_path / "aapl.csv"
    path.write_text(YAHOO)
    df = import_bars(path, symbol="aapl")
    assert df["symbol"].unique().to_list() == ["AAPL"]
    assert df["timestamp"].to_list()[0] == datetime(2024, 1, 2, 5, tzinfo=UTC)  # midnight New York
    assert df["close"].to_list() == [185.64, 184.25, 181.91]
    assert df["volume"].dtype == pl.Int64


@pytest.mark.parametrize("form", ["csv naive", "csv utc", "parquet pandas"])
def test_dates_stamped_at_midnight_are_their_sessions(tmp_path: Path, form: str) -> None:
    """A Yahoo file pandas saved (its Date index a datetime) or a CSV of `2024-01-02 00:00:00`: before, each
    bar was taken at midnight UTC, the evening before in New York, its date a day early (and Monday's bar,
    dated Sunday, dropped as a closed day's)."""
    import pandas as pd

    frame = pd.read_csv(pd.io.common.StringIO(YAHOO), parse_dates=["Date"]).set_index("Date")
    if form == "parquet pandas":
        path = tmp_path / "aapl.parquet"
        frame.to_parquet(path)
    else:
        path = tmp_path / "aapl.csv"
        stamp = "%Y-%m-%d %H:%M:%S" if form == "csv naive" else "%Y-%m-%dT%H:%M:%SZ"
        frame.to_csv(path, date_format=stamp)
    df = import_bars(path, symbol="aapl")
    assert df["timestamp"].to_list() == [datetime(2024, 1, d, 5, tzinfo=UTC) for d in (2, 3, 4)]
    assert df["close"].to_list() == [185.64, 184.25, 181.91]
    minute = tmp_path / "minute.csv"  # intraday stamps are times: kept as they are
    minute.write_text("timestamp,open,high,low,close,volume\n2024-01-02T14:30:00Z,1,1,1,1,5\n"
                      "2024-01-02T14:31:00Z,1,1,1,1,5\n")  # fmt: skip
    assert import_bars(minute, symbol="X")["timestamp"].to_list()[0] == datetime(2024, 1, 2, 14, 30, tzinfo=UTC)


def test_blank_lines_are_no_bars_and_the_other_lines_keep_their_numbers(tmp_path: Path) -> None:
    """A blank line, a line of commas (a spreadsheet's export), a trailing one: skipped, where each was a bar
    "missing" its timestamp that refused the file; a bad line after them is still named by its own number."""
    path = tmp_path / "x.csv"
    path.write_text(YAHOO.replace("\n2024-01-02", "\n\n,,,,,,\n2024-01-02") + "\n")
    assert import_bars(path, symbol="x")["close"].to_list() == [185.64, 184.25, 181.91]
    path.write_text(YAHOO.replace("\n2024-01-02", "\n\n2024-01-02").replace("184.25", "x"))
    with pytest.raises(InputError, match=r"x.csv:5: field 'close'"):
        import_bars(path, symbol="x")


def test_adj_close_is_read_only_to_adjust_by(tmp_path: Path) -> None:
    """Imported as it is, a bad Adj Close does not matter (it refused the file); with --adjust a missing one is
    named as such (it was said of 'open', the first price it scaled)."""
    path = tmp_path / "x.csv"
    path.write_text(YAHOO.replace("92.125", "n/a"))
    assert import_bars(path, symbol="x")["close"].to_list() == [185.64, 184.25, 181.91]
    with pytest.raises(InputError, match=r"x.csv:4: field 'adj_close': not a number"):
        import_bars(path, symbol="x", adjust=True)
    path.write_text(YAHOO.replace("92.125", ""))
    with pytest.raises(InputError, match=r"x.csv:4: field 'adj_close': missing: --adjust scales the prices by it"):
        import_bars(path, symbol="x", adjust=True)


@pytest.mark.parametrize("stamp", ["2024-01-02 09:30", "2024-01-02T09:30", "2024-01-02 09:30:00",
                                   "2024-01-02 14:30:00Z", "2024-01-02T14:30Z", "2024-01-02 09:30-05:00"])
def test_iso_timestamps_as_vendors_write_them(tmp_path: Path, stamp: str) -> None:
    """A space for the T, minutes without seconds: ISO 8601 still, refused as "not an ISO-8601 timestamp"."""
    path = tmp_path / "m.csv"
    later = stamp.replace("09:30", "09:31").replace("14:30", "14:31")
    path.write_text(f"timestamp,open,high,low,close,volume\n{stamp},1,1,1,1,5\n{later},1,1,1,1,5\n")
    assert import_bars(path, symbol="X")["timestamp"].to_list() == [datetime(2024, 1, 2, 14, m, tzinfo=UTC)
                                                                     for m in (30, 31)]  # fmt: skip


def test_adjust_scales_prices_by_adj_close(tmp_path: Path) -> None:
    path = tmp_path / "aapl.csv"
    path.write_text(YAHOO)
    df = import_bars(path, symbol="AAPL", adjust=True)
    assert df["close"].to_list() == [92.82, 92.125, 90.955]  # Adj Close as written, without the product's noise
    assert df["open"][0] == round(187.15 * 0.5, 6)


def test_alpaca_style_parquet_with_symbol_column(tmp_path: Path) -> None:
    path = tmp_path / "bars.parquet"
    pl.DataFrame(
        {
            "S": ["msft", "msft"],
            "t": [datetime(2024, 1, 2, 14, 30, tzinfo=UTC), datetime(2024, 1, 2, 14, 31, tzinfo=UTC)],
            "o": [370.0, 371.0], "h": [372.0, 371.5], "l": [369.0, 370.2], "c": [371.0, 370.5], "v": [1000, 900],
        }
    ).write_parquet(path)  # fmt: skip
    df = import_bars(path)
    assert df["symbol"].to_list() == ["MSFT", "MSFT"]
    assert df["high"].to_list() == [372.0, 371.5]


def test_missing_symbol_and_bad_numbers_are_named(tmp_path: Path) -> None:
    path = tmp_path / "aapl.csv"
    path.write_text(YAHOO)
    with pytest.raises(InputError, match="no symbol column: pass --symbol"):
        import_bars(path)
    path.write_text(YAHOO.replace("184.25,92.125", "n/a,92.125"))
    with pytest.raises(InputError) as exc:
        import_bars(path, symbol="AAPL")
    assert (exc.value.line, exc.value.field) == (4, "close")
    assert "not a number: 'n/a'" in str(exc.value)


def test_import_checks_rules_with_file_lines(tmp_path: Path) -> None:
    path = tmp_path / "aapl.csv"
    path.write_text(YAHOO.replace("187.15,188.44", "187.15,186.00"))  # line 3: high below open
    with pytest.raises(InputError) as exc:
        import_bars(path, symbol="AAPL")
    assert (exc.value.line, exc.value.field) == (3, "high")
