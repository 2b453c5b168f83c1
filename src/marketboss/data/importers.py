"""CSV/Parquet files in common layouts (Yahoo-style, Alpaca-style, or already ours) to validated bars."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

import polars as pl

from marketboss.data.calendar import (
    DAILY_SPACING_US,
    NY,
    Timeframe,
    infer_timeframe,
    served_stamps,
    smallest_spacing,
)
from marketboss.data.grid import GridBars, on_grid
from marketboss.data.io import Rejected, accept, file_format, to_rejects
from marketboss.data.rules import check_csv_header, check_input_file
from marketboss.data.schema import BAR_COLUMNS, LINE, PRICE_COLUMNS, parse_timestamps, validation_errors
from marketboss.errors import InputError

# Lower-cased, underscore-joined header -> contract column.
ALIASES = {
    "timestamp": "timestamp", "t": "timestamp", "date": "timestamp", "datetime": "timestamp", "time": "timestamp",
    "symbol": "symbol", "ticker": "symbol", "s": "symbol",
    "open": "open", "o": "open", "high": "high", "h": "high", "low": "low", "l": "low",
    "close": "close", "c": "close", "volume": "volume", "v": "volume",
    "adj_close": "adj_close", "adjclose": "adj_close", "adjusted_close": "adj_close",
}  # fmt: skip


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def import_bars(
    path: Path,
    symbol: str | None = None,
    adjust: bool = False,
    skip_invalid: bool = False,
    rejects_path: Path | None = None,
) -> pl.DataFrame:
    """Read a foreign layout; date-only timestamps, and a file's timestamps all at midnight UTC or without a zone
    (dates), become the session's midnight in New York (Alpaca's stamp); other times without a zone are New
    York's (the exchange's), as vendors' intraday files give them.

    With `adjust`, OHLC are scaled by Adj Close / Close (splits and dividends), as Yahoo's data needs.
    """
    fmt = file_format(path)
    if fmt == "jsonl":
        raise InputError(path, "import takes CSV or Parquet; JSON Lines bars are read directly")
    check_input_file(path)
    try:
        raw = (
            pl.read_csv(path, infer_schema_length=0, truncate_ragged_lines=False)
            if fmt == "csv"
            else pl.read_parquet(path)
        )
    except Exception as exc:
        raise InputError(path, f"not a readable {fmt.upper()} file ({type(exc).__name__})") from None
    if fmt == "csv":
        check_csv_header(path)
    raw = _date_and_time(raw)
    renamed: dict[str, str] = {}
    for col in raw.columns:
        target = ALIASES.get(_key(col))
        if target and target not in renamed.values():
            renamed[col] = target
    df = raw.select(list(renamed)).rename(renamed)
    if "symbol" not in df.columns:
        if not symbol:
            raise InputError(path, "the file has no symbol column: pass --symbol", line=1, field="symbol")
        df = df.with_columns(pl.lit(symbol.upper()).alias("symbol"))
    elif symbol:
        raise InputError(path, "the file has a symbol column: --symbol is not needed", line=1, field="symbol")
    missing = [c for c in BAR_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(path, f"no column for {', '.join(missing)}", line=1, field=missing[0])
    first = 2 if fmt == "csv" else 1
    df = df.with_row_index(LINE, offset=first).with_columns(pl.col(LINE).cast(pl.Int64))
    blank = pl.all_horizontal([pl.col(c).is_null() | (pl.col(c).cast(pl.String).str.strip_chars() == "")
                               for c in df.columns if c not in (LINE, "symbol" if symbol else "")])  # fmt: skip
    df = df.filter(~blank)  # a blank line, or one of commas (a spreadsheet's last rows): no bar, not a bad one
    parsed, rejects = _parse(df, path, adjust)
    # Foreign files are often newest-first: sort, then judge order (and duplicates) on the sorted rows.
    parsed = parsed.sort("symbol", "timestamp", maintain_order=True).with_row_index("_pos")
    errors = validation_errors(parsed, order_by="_pos")
    return accept(
        parsed.drop("_pos"), rejects + to_rejects(errors), path, skip_invalid, rejects_path, by_row=fmt == "parquet"
    )


def _date_and_time(raw: pl.DataFrame) -> pl.DataFrame:
    """A date column and a time-of-day column (vendors' intraday files: Date,Time,Open,...) as one timestamp column,
    "date time" (the time was ignored: a day's bars became duplicates of its first)."""
    keys = {_key(c): c for c in raw.columns}
    if "date" not in keys or "time" not in keys or any(k in keys for k in ("timestamp", "t", "datetime")):
        return raw
    date, time = keys["date"], keys["time"]
    t = pl.col(time).cast(pl.String).str.strip_chars()
    t = pl.when(t.str.contains(r"^\d{1,2}:\d{2}$")).then(t + ":00").otherwise(t).str.zfill(8)  # 9:30 is 09:30:00
    joined = pl.concat_str(pl.col(date).cast(pl.String).str.strip_chars(), pl.lit(" "), t)
    return raw.with_columns(joined.alias(date)).drop(time)


def _parse(df: pl.DataFrame, path: Path, adjust: bool) -> tuple[pl.DataFrame, list[Rejected]]:
    ts = df["timestamp"]
    if isinstance(ts.dtype, pl.Date):
        ts_expr, written = _ny_midnight(pl.col("timestamp")), pl.col("timestamp")
    elif isinstance(ts.dtype, pl.Datetime):
        ts_expr = (
            pl.col("timestamp").dt.convert_time_zone("UTC")
            if ts.dtype.time_zone
            else _ny_time(pl.col("timestamp"))
        ).dt.cast_time_unit("us")
        written = pl.col("timestamp").dt.date()  # in the column's own zone
    else:
        # ISO 8601 as vendors also write it: a space for the T, minutes without seconds ("2024-01-02 09:30")
        text = (pl.col("timestamp").cast(pl.String).str.strip_chars()
                .str.replace(r"^(\d{4}-\d{2}-\d{2}) (\d)", "${1}T${2}")
                .str.replace(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2})($|Z|[+-])", "${1}:00${2}"))  # fmt: skip
        date_only = text.str.contains(r"^\d{4}-\d{2}-\d{2}$")
        zoned = text.str.contains(r"(Z|[+-]\d{2}:?\d{2})$")
        ts_expr = (
            pl.when(date_only)
            .then(_ny_midnight(text.str.to_date("%Y-%m-%d", strict=False)))
            .when(zoned)
            .then(parse_timestamps(text))
            .otherwise(_ny_time(parse_timestamps(text).dt.replace_time_zone(None)))
        )
        written = text.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
    # Adj Close is read only to adjust by (a bad one refused a file imported as it is)
    numeric = [c for c in (*PRICE_COLUMNS, "volume", *(("adj_close",) if adjust else ())) if c in df.columns]
    out = df.with_columns(
        ts_expr.alias("timestamp"),
        written.alias(_WRITTEN),
        pl.col("symbol").cast(pl.String).str.strip_chars().str.to_uppercase(),
        *[pl.col(c).cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False).alias(c) for c in numeric],
    )
    out = _daily_on_their_dates(out).drop(_WRITTEN)
    rejects = [
        Rejected(line, c, f"not a number: {value!r}")
        for c in numeric
        for line, value in df.select(LINE, pl.col(c).cast(pl.String))
        .filter(pl.col(c).is_not_null() & out[c].is_null())
        .iter_rows()
    ]
    if adjust:
        if "adj_close" not in out.columns:
            raise InputError(path, "--adjust needs an Adj Close column", line=1, field="adj_close")
        rejects += [Rejected(line, "adj_close", "missing: --adjust scales the prices by it") for line in
                    out.filter(pl.col("adj_close").is_null() & df["adj_close"].is_null())[LINE].to_list()]  # fmt: skip
        factor = pl.col("adj_close") / pl.col("close")
        # to a millionth (vendors give adjusted prices to 6 decimals): 231.01200000000003 was the product's noise
        out = out.with_columns(*[(pl.col(c) * factor).round(6).alias(c) for c in PRICE_COLUMNS])
    bad = {r.line for r in rejects}
    return out.filter(~pl.col(LINE).is_in(list(bad))).select(LINE, *BAR_COLUMNS), rejects


_DAY_US = 86_400 * 1_000_000
_WRITTEN = "_written_date"  # a row's date as its stamp is written (in its own zone)


def _daily_on_their_dates(out: pl.DataFrame) -> pl.DataFrame:
    """Daily bars (a symbol's at least DAILY_SPACING_US apart; one bar a symbol: all at midnight UTC) stamped at
    the New York midnight of the date each stamp is written with, in its own zone: a date at midnight UTC, a
    16:00 close, Tokyo's midnight (2024-01-02T00:00+09:00, the evening before in New York) are each that date's
    session. Before, the New York date of the instant was taken: Tokyo's midnights a session early, and a file's
    midnight-UTC dates too when one stamp was not exactly at midnight."""
    present = out.filter(pl.col("timestamp").is_not_null())
    if present.is_empty():
        return out
    spacing = smallest_spacing(present["timestamp"].dt.epoch("us"), present["symbol"])
    at_midnight = (present["timestamp"].dt.truncate("1d") == present["timestamp"]).all()
    if not (at_midnight if spacing is None else spacing >= DAILY_SPACING_US):
        return out
    return out.with_columns(pl.when(pl.col("timestamp").is_not_null()).then(_ny_midnight(pl.col(_WRITTEN)))
                            .alias("timestamp"))  # fmt: skip


def _ny_midnight(d: pl.Expr) -> pl.Expr:
    return d.cast(pl.Datetime("us")).dt.replace_time_zone(NY).dt.convert_time_zone("UTC")


def _ny_time(t: pl.Expr) -> pl.Expr:
    """A time without a zone as the exchange's: New York's (an hour that does not exist there, on the night clocks
    go forward, is no time: null, a bad row; one that comes twice, the first)."""
    return t.dt.replace_time_zone(NY, ambiguous="earliest", non_existent="null").dt.convert_time_zone("UTC")


def session_bars(bars: pl.DataFrame, path: Path) -> GridBars:
    """Bars as the live loop trades them, of one timeframe (every symbol's): daily bars stamped at their New York
    date's midnight (a file stamped at the close, 21:00Z, would put a second bar beside another file's on each
    day); intraday bars the regular session's (the extended hours' dropped and counted, as `data fetch` drops
    Alpaca's), each starting on the session's grid (grid.on_grid); bars that do not (clock hours, whose 9:00 bar
    holds pre-market trades) are refused: on the grid they would be other bars."""
    timeframe = _one_timeframe(bars, path)
    spacing = smallest_spacing(bars["timestamp"].dt.epoch("us"), bars["symbol"])
    if spacing is not None and spacing >= 5 * _DAY_US:  # Yahoo's 1wk and 1mo: their holidays' bars were dropped
        raise InputError(path, f"its bars are at least {spacing // _DAY_US} days apart: weekly or monthly bars are no "
                               "timeframe MarketBoss trades (1Min to 1Day): import daily bars", field="timestamp")
    if timeframe.is_daily:
        day = pl.col("timestamp").dt.convert_time_zone(NY).dt.date()
        return GridBars(bars.with_columns(_ny_midnight(day).alias("timestamp")), 0)
    grid = on_grid(bars, timeframe)
    on = pl.col("timestamp").is_in(grid.bars["timestamp"].implode())
    if grid.bars.height + grid.outside != bars.height or bars.filter(~on).height > grid.outside:
        ny = pl.col("timestamp").dt.convert_time_zone(NY)
        since_open = (ny - ny.dt.truncate("1d")).dt.total_microseconds() / 60e6 - 570  # minutes after 9:30
        off = bars.filter(~on & (since_open >= 0) & (since_open < 390) & (since_open % timeframe.minutes != 0))
        first = (off if off.height else bars.filter(~on))["timestamp"].min()
        at = first.astimezone(ZoneInfo(NY))  # type: ignore[union-attr]
        shown_at = at.strftime("%Y-%m-%d %H:%M" + (":%S.%f" if at.second or at.microsecond else ""))
        raise InputError(path, f"its {timeframe} bars do not start on the session's grid (9:30, then one every "
                               f"{timeframe}; a bar at {shown_at} New York time does not): bars of 1, 5, 15 or 30 "
                               "minutes start on whole multiples of their length, hourly ones at 9:30, 10:30, ...",
                         field="timestamp")  # fmt: skip
    return grid


def _one_timeframe(bars: pl.DataFrame, path: Path) -> Timeframe:
    """The bars' timeframe, every symbol's the same (one file, one timeframe)."""
    each = {sym: infer_timeframe(part) for (sym,), part in bars.group_by("symbol", maintain_order=True)}
    kinds = {str(tf): sym for sym, tf in each.items()}
    if len(kinds) > 1:
        (a, sa), (b, sb) = list(kinds.items())[:2]
        raise InputError(path, f"its symbols' bars are of different timeframes ({sa}: {a}, {sb}: {b}): one file holds "
                               "one timeframe", field="timestamp")  # fmt: skip
    return next(iter(each.values()))


class Merged(NamedTuple):
    bars: pl.DataFrame
    replaced: list[str]  # each symbol whose bars the imported ones replaced: "AAPL's 252 bars by 4"
    kept: int  # the symbols kept as they were


def merged(existing: pl.DataFrame, new: pl.DataFrame, existing_path: Path, new_path: Path) -> Merged:
    """The bars of a file with those imported added: an imported symbol's bars replace all of its own (one source
    per symbol: no adjusted series spliced onto a raw one), the others are kept. Both must be of one timeframe."""
    if existing.is_empty():  # nothing to keep
        return Merged(new, [], 0)
    have, got = infer_timeframe(existing), infer_timeframe(new)
    if have != got:
        raise InputError(existing_path, f"holds {have} bars and {new_path} {got}: one file holds one timeframe (import "
                                        "into another with --output, or replace it with --replace)")  # fmt: skip
    symbols = new["symbol"].unique()
    kept = existing.filter(~pl.col("symbol").is_in(symbols.implode()))
    if have.is_daily:  # its own stamps (midnight UTC, a 16:00 close) as the imported ones are: one bar a session
        stamps = served_stamps(kept["timestamp"].dt.epoch("us"), True)
        kept = kept.with_columns(stamps.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
                                 .cast(new.schema["timestamp"]).alias("timestamp"))  # fmt: skip
    had = existing.filter(pl.col("symbol").is_in(symbols.implode()))["symbol"].value_counts(name="n")
    now = dict(new["symbol"].value_counts(name="n").iter_rows())
    replaced = [f"{sym}'s {n:,} bars by {now[sym]:,}" for sym, n in sorted(had.iter_rows())]
    both = pl.concat([kept.select(BAR_COLUMNS), new.select(BAR_COLUMNS)]).sort("timestamp", "symbol")
    return Merged(both, replaced, kept["symbol"].n_unique())
