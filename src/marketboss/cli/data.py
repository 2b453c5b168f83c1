"""`marketboss data ...`: make, import, fetch and inspect bars."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from marketboss.cli.common import SkipInvalid, console, get_settings, load_bars, print_table
from marketboss.errors import MarketBossError
from marketboss.logging import get_logger

if TYPE_CHECKING:  # loaded inside the commands that use them: `--help` needs none
    import polars as pl


app = typer.Typer(help="Make, import, fetch and inspect market data (bars).", no_args_is_help=True)
log = get_logger(__name__)


def _output(output: Path | None) -> Path:
    return output or get_settings().market_data


def _date(text: str, name: str, end_of_day: bool = False) -> datetime:
    """A date (YYYY-MM-DD: its New York day, where sessions and their daily bars are; with end_of_day, up to the
    day's end: `data fetch --end 2024-06-05` has that day's bar) or a time (UTC unless it says)."""
    try:
        d = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise MarketBossError(f"{name} '{text}' is not a date (YYYY-MM-DD)") from None
    if len(text.strip()) == 10:  # a bare date
        from zoneinfo import ZoneInfo

        from marketboss.data.calendar import NY

        day = d.replace(tzinfo=ZoneInfo(NY))
        return day + timedelta(days=1) - timedelta(microseconds=1) if end_of_day else day
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def _written(df: pl.DataFrame, path: Path, what: str) -> None:
    from marketboss.data.io import write_bars

    write_bars(df, path)
    log.info("bars_written", path=str(path), bars=len(df), symbols=df["symbol"].n_unique())
    console.print(f"wrote {len(df):,} bars for {df['symbol'].n_unique()} symbol(s) to {path} ({what})")


@app.command()
def synth(
    symbols: str = typer.Option("5", help="A count (5) or a list (AAPL,MSFT)."),
    start: str = typer.Option("2020-01-01", help="First calendar day (YYYY-MM-DD)."),
    end: str = typer.Option("2024-12-31", help="Last calendar day (YYYY-MM-DD)."),
    timeframe: str = typer.Option("1Day", help="1Day, or intraday 1Min, 5Min, 15Min, 1Hour (inside session hours)."),
    seed: int = typer.Option(7, min=0, help="Same seed, same bars."),
    output: Path = typer.Option(None, "--output", "-o", help="Default: data/market_data.jsonl (.csv/.parquet too)."),
) -> None:
    """Seeded synthetic OHLCV on the real NYSE calendar, with trending, mean-reverting and volatile regimes."""
    from marketboss.data.calendar import Timeframe
    from marketboss.data.synth import symbols_from, synth_bars

    _date(start, "--start"), _date(end, "--end")
    df = synth_bars(symbols_from(symbols), start, end, Timeframe.parse(timeframe), seed)
    _written(df, _output(output), f"synthetic, {timeframe}, seed {seed}")


@app.command("import")
def import_(
    file: Path = typer.Argument(
        ...,
        help="CSV or Parquet: Yahoo-style (Date, Open, ..., Adj Close, Volume), "
        "Alpaca-style (t, o, h, l, c, v) or ours.",
    ),
    symbol: str = typer.Option(None, help="The symbol, when the file has no symbol column."),
    adjust: bool = typer.Option(False, help="Scale OHLC by Adj Close / Close (Yahoo's split/dividend adjustment)."),
    output: Path = typer.Option(None, "--output", "-o", help="Default: data/market_data.jsonl. A file there keeps its "
                                "other symbols' bars; the imported symbols' bars replace theirs."),
    replace: bool = typer.Option(False, "--replace", help="Write the imported bars alone, the file there replaced."),
    skip_invalid: bool = SkipInvalid,
) -> None:
    """Convert a foreign bar file to the contract (validated; dates become NYSE sessions' bars; intraday bars the
    regular session's) and add it to the bars file."""
    from marketboss.data.calendar import NY, split_non_sessions
    from marketboss.data.importers import import_bars, session_bars
    from marketboss.data.io import default_rejects_path

    rejects = default_rejects_path(file)
    rejects.unlink(missing_ok=True)
    df = import_bars(file, symbol=symbol, adjust=adjust, skip_invalid=skip_invalid, rejects_path=rejects)
    if rejects.exists():
        console.print(f"[yellow]skipped invalid rows; reasons in {rejects}[/]")
    df, closed = split_non_sessions(df)
    if closed.height:
        days = closed["timestamp"].dt.convert_time_zone(NY).dt.strftime("%Y-%m-%d %a").unique(maintain_order=True)
        shown = ", ".join(days.head(5).to_list()) + (f" and {days.len() - 5} more" if days.len() > 5 else "")
        log.warning("bars_dropped_non_session", bars=closed.height, days=days.len())
        console.print(f"[yellow]dropped {closed.height:,} bar(s) on {days.len()} day(s) the NYSE was closed: "
                      f"{shown}[/]")
    if df.is_empty():  # a header-only file (or every row dropped): no bars file of nothing
        raise MarketBossError(f"{file}: no bars to import (no rows{', or every row skipped' if skip_invalid else ''})")
    df, outside = session_bars(df, file)
    if outside:
        _dropped_outside(outside, "the file's")
    if df.is_empty():
        raise MarketBossError(f"{file}: no bars to import: every bar is outside the regular session")
    out = _output(output)
    with _one_import_at_a_time(out):
        if replace or not out.exists():
            _written(df, out, f"imported from {file}")
            return
        from marketboss.data.importers import merged

        both = merged(load_bars(out), df, out, file)
        _written(both.bars, out, f"imported from {file}; " + (
            f"replaced {', '.join(both.replaced)}; " if both.replaced else "") + f"{both.kept} symbol(s) kept")


@contextmanager
def _one_import_at_a_time(out: Path) -> Iterator[None]:
    """Imports into one directory wait for each other (an flock of the directory: nothing is left behind), so that
    each adds to what the one before wrote (read, merged and written at once, two lost one's symbols)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # the lock with it


def _dropped_outside(n: int, whose: str) -> None:
    log.info("bars_dropped_outside_session", bars=n)
    console.print(f"[yellow]dropped {n:,} of {whose} bars outside the regular session (pre-market, after-hours): "
                  "the live loop trades the session's bars[/]")


@app.command()
def fetch(
    symbols: str = typer.Option(..., help="Comma-separated symbols, e.g. AAPL,MSFT."),
    start: str = typer.Option(..., help="Start (YYYY-MM-DD or RFC 3339)."),
    end: str = typer.Option(None, help="End, included (a date: its whole day; default: now)."),
    timeframe: str = typer.Option("1Day", help="1Min, 5Min, 15Min, 1Hour or 1Day (intraday: the regular session's "
                                  "bars; 1Hour from 9:30, made of Alpaca's 30-minute bars)."),
    feed: str = typer.Option("iex", help="iex (free plans) or sip."),
    adjustment: str = typer.Option("raw", help="raw, split, dividend or all."),
    output: Path = typer.Option(None, "--output", "-o", help="Default: data/market_data.jsonl."),
    skip_invalid: bool = SkipInvalid,
) -> None:
    """Real bars from Alpaca's market data API (needs APCA_API_KEY_ID / APCA_API_SECRET_KEY;
    APCA_API_DATA_URL overrides the base URL)."""
    import polars as pl

    from marketboss.data.alpaca_source import fetch_bars
    from marketboss.data.calendar import Timeframe
    from marketboss.data.grid import fetch_timeframe
    from marketboss.data.io import accept, default_rejects_path, to_rejects
    from marketboss.data.schema import LINE, validation_errors

    names = [s.strip().upper() for s in symbols.split(",") if s.strip()]
    if not names:
        raise MarketBossError("--symbols needs at least one symbol")
    tf = Timeframe.parse(timeframe)
    df, outside = fetch_bars(get_settings(), names, _date(start, "--start"),
                             _date(end, "--end", end_of_day=True) if end else datetime.now(UTC), tf, feed,
                             adjustment)  # fmt: skip
    if outside:
        _dropped_outside(outside, f"Alpaca's {fetch_timeframe(tf)}")
    if df.is_empty():
        raise MarketBossError(f"Alpaca returned no bars for {', '.join(names)} in that range")
    out = _output(output)
    checked = df.with_row_index(LINE, offset=1).with_columns(pl.col(LINE).cast(pl.Int64))
    df = accept(
        checked,
        to_rejects(validation_errors(checked)),
        Path(f"alpaca:{symbols}"),
        skip_invalid,
        default_rejects_path(out),
        by_row=True,
    )
    _written(df, out, f"Alpaca {feed} feed")


@app.command()
def show(
    data: Path = typer.Option(None, "--data", help="Bars file (default: data/market_data.jsonl)."),
    skip_invalid: bool = SkipInvalid,
) -> None:
    """Per symbol: bar count, date range, last close, mean and volatility of returns."""
    import polars as pl

    from marketboss.data.stats import bars_per_year, summary

    path = data or get_settings().market_data
    df = load_bars(path, skip_invalid)
    s = summary(df)
    if bars_per_year(df) <= 252:  # daily bars are stamped at midnight New York: show the session date
        s = s.with_columns(pl.col("first", "last").dt.convert_time_zone("America/New_York").dt.date())
    print_table(
        f"{path}: {len(df):,} bars, {s.height} symbol(s)",
        ["symbol", "bars", "first", "last", "last close", "mean ret", "volatility", "ann. return", "ann. vol"],
        s.select(
            "symbol",
            "bars",
            "first",
            "last",
            "last_close",
            "mean_return",
            "volatility",
            "annual_return",
            "annual_volatility",
        ).rows(),
    )
