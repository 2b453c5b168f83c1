"""The data commands as a user runs them: a real process, stdout tables, files on disk."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from marketboss.data.io import read_bars

SRC = Path(__file__).resolve().parents[2] / "src"


def _mb(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # this tree's sources, not whichever marketboss the interpreter has installed
    env = {"PATH": "/usr/bin:/bin", "MARKETBOSS_LOG_LEVEL": "warning", "PYTHONPATH": str(SRC),
           "MARKETBOSS_CACHE_DIR": str(workdir / ".cache")}
    cmd = [sys.executable, "-m", "marketboss", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, env=env, timeout=120)


def test_synth_then_show_prints_one_row_per_symbol_with_session_dates(workdir: Path) -> None:
    made = _mb(workdir, "data", "synth", "--symbols", "AAPL,SPY", "--start", "2024-07-01", "--end", "2024-07-31")
    assert made.returncode == 0, made.stderr
    assert "wrote 44 bars for 2 symbol(s) to data/market_data.jsonl" in made.stdout
    assert len(read_bars(workdir / "data/market_data.jsonl")) == 44
    shown = _mb(workdir, "data", "show")
    assert shown.returncode == 0, shown.stderr
    rows = [line for line in shown.stdout.splitlines() if line.startswith("│")]
    assert [r.split("│")[1].strip() for r in rows] == ["AAPL", "SPY"]
    assert all("2024-07-01" in r and "2024-07-31" in r and "22" in r for r in rows)


@pytest.mark.parametrize(("start", "end", "message"), [
    ("1950-01-01", "1950-01-10", "error: start 1950-01-01 is outside the NYSE calendar's days (1962-01-01 to "),
    ("1961-06-01", "1962-01-10", "error: start 1961-06-01 is outside the NYSE calendar's days (1962-01-01 to "),
    ("2020-01-01", "2199-12-31", "error: end 2199-12-31 is outside the NYSE calendar's days (1962-01-01 to "),
    ("2024-07-06", "2024-07-07", "error: no NYSE sessions between 2024-07-06 and 2024-07-07"),
])
def test_synth_outside_the_calendar_is_one_line_and_writes_nothing(workdir: Path, start: str, end: str,
                                                                    message: str) -> None:
    """Years the calendar lacks were cut off without a word (1994-1996 gave 1995-1996 when it began in 1995), or
    raised exchange_calendars' own error as "unexpected DateOutOfBounds" (wholly outside)."""
    made = _mb(workdir, "data", "synth", "--symbols", "1", "--start", start, "--end", end)
    assert made.returncode == 2 and made.stderr.splitlines() == [made.stderr.strip()], made.stderr
    assert made.stderr.startswith(message), made.stderr
    assert not (workdir / "data").exists() or not any((workdir / "data").iterdir())


def test_skip_invalid_on_the_command_line(workdir: Path) -> None:
    assert (
        _mb(workdir, "data", "synth", "--symbols", "1", "--start", "2024-07-01", "--end", "2024-07-10").returncode == 0
    )
    path = workdir / "data/market_data.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace('"volume":', '"volume":-')
    path.write_text("\n".join(lines) + "\n")
    strict = _mb(workdir, "data", "show")
    assert strict.returncode == 2 and "data/market_data.jsonl:3: field 'volume'" in strict.stderr
    lenient = _mb(workdir, "data", "show", "--skip-invalid")
    assert lenient.returncode == 0 and "skipped 1 invalid row(s)" in lenient.stderr
    assert (workdir / "data/market_data.jsonl.rejected.jsonl").read_text().count("\n") == 1


def test_version_flag(workdir: Path) -> None:
    from marketboss import __version__

    out = _mb(workdir, "--version")
    assert out.returncode == 0 and out.stdout.strip() == f"marketboss {__version__}"


def test_import_drops_and_reports_bars_on_days_the_exchange_was_closed(workdir: Path) -> None:
    csv = workdir / "aapl.csv"
    csv.write_text("Date,Open,High,Low,Close,Volume\n"
                   "2024-07-03,10,11,9,10.5,100\n2024-07-04,10.5,11,10,10.8,100\n"  # Independence Day
                   "2024-07-05,10.8,11.2,10.6,11,100\n2024-07-06,11,11.5,10.9,11.2,100\n"  # a Saturday
                   "2024-07-08,11.2,11.4,11,11.3,100\n")  # fmt: skip
    out = _mb(workdir, "data", "import", "aapl.csv", "--symbol", "AAPL")
    assert out.returncode == 0, out.stderr
    assert "dropped 2 bar(s) on 2 day(s) the NYSE was closed: 2024-07-04 Thu, 2024-07-06 Sat" in out.stdout
    bars = read_bars(workdir / "data/market_data.jsonl")
    assert bars["close"].to_list() == [10.5, 11.0, 11.3]


def test_imports_add_symbols_to_the_bars_file_and_replace_their_own(workdir: Path) -> None:
    """A file of bars a symbol, imported one after the other, makes one file of them all (the second no longer
    replaces the first); a symbol imported again replaces its own bars wholly; --replace writes the import alone;
    another timeframe is one line naming the file, which is left as it was."""
    day = "Date,Open,High,Low,Close,Volume\n2024-07-03,10,11,9,{c},100\n2024-07-05,10.8,11.2,10.6,11,100\n"
    for sym, c in (("aapl", 10.5), ("msft", 10.0), ("aapl2", 10.9)):
        (workdir / f"{sym}.csv").write_text(day.format(c=c))
    assert _mb(workdir, "data", "import", "aapl.csv", "--symbol", "AAPL").returncode == 0
    out = _mb(workdir, "data", "import", "msft.csv", "--symbol", "MSFT")
    assert out.returncode == 0 and "1 symbol(s) kept" in out.stdout, out.stderr
    out = _mb(workdir, "data", "import", "aapl2.csv", "--symbol", "AAPL")
    assert "replaced AAPL's 2 bars by 2; 1 symbol(s) kept" in " ".join(out.stdout.split())
    bars = read_bars(workdir / "data/market_data.jsonl")
    assert bars.select("symbol", "close").rows() == [("AAPL", 10.9), ("MSFT", 10.0), ("AAPL", 11.0), ("MSFT", 11.0)]
    before = (workdir / "data/market_data.jsonl").read_bytes()
    (workdir / "m1.csv").write_text("t,o,h,l,c,v\n2024-07-03T13:31:00Z,1,1,1,1,1\n2024-07-03T13:32:00Z,1,1,1,1,1\n")
    out = _mb(workdir, "data", "import", "m1.csv", "--symbol", "XYZ")
    assert out.returncode == 2 and out.stderr.strip().splitlines()[-1] == (
        "error: data/market_data.jsonl: holds 1Day bars and m1.csv 1Min: one file holds one timeframe (import into "
        "another with --output, or replace it with --replace)")
    assert (workdir / "data/market_data.jsonl").read_bytes() == before
    assert _mb(workdir, "data", "import", "msft.csv", "--symbol", "MSFT", "--replace").returncode == 0
    assert read_bars(workdir / "data/market_data.jsonl")["symbol"].unique().to_list() == ["MSFT"]


def test_an_intraday_import_keeps_the_regular_sessions_bars_on_its_grid(workdir: Path) -> None:
    """Minute bars from 9:00 to 16:30 New York time (summer: UTC-4) keep 9:30-15:59, as `data fetch` keeps
    Alpaca's, the rest dropped and counted; clock-hour bars (10:00, 11:00: not the session's 9:30, 10:30 grid)
    are one line naming the first bar off it, nothing written."""
    rows = [f"2024-07-09T{13 + m // 60:02d}:{m % 60:02d}:00Z,1,1,1,1,1" for m in range(450)]  # 9:00 to 16:29
    (workdir / "m1.csv").write_text("t,o,h,l,c,v\n" + "\n".join(rows) + "\n")
    out = _mb(workdir, "data", "import", "m1.csv", "--symbol", "XYZ", "-o", "m1.jsonl")
    assert out.returncode == 0, out.stderr
    assert "dropped 60 of the file's bars outside the regular session" in " ".join(out.stdout.split())
    ny = read_bars(workdir / "m1.jsonl")["timestamp"].dt.convert_time_zone("America/New_York").dt.strftime("%H:%M")
    assert (ny.len(), ny[0], ny[-1]) == (390, "09:30", "15:59")
    hours = [f"2024-07-09T{h}:00:00Z,1,1,1,1,1" for h in range(14, 20)]  # 10:00 to 15:00
    (workdir / "h1.csv").write_text("t,o,h,l,c,v\n" + "\n".join(hours) + "\n")
    out = _mb(workdir, "data", "import", "h1.csv", "--symbol", "XYZ", "-o", "h1.jsonl")
    assert out.returncode == 2 and not (workdir / "h1.jsonl").exists()
    assert out.stderr.strip().splitlines()[-1] == (
        "error: h1.csv: field 'timestamp': its 1Hour bars do not start on the session's grid (9:30, then one every "
        "1Hour; a bar at 2024-07-09 10:00 New York time does not): bars of 1, 5, 15 or 30 minutes start on whole "
        "multiples of their length, hourly ones at 9:30, 10:30, ...")


def test_an_import_is_stamped_as_the_exchange_trades_or_refused_whole(workdir: Path) -> None:
    """Times without a zone are New York's (a vendor's 9:30 is the open, not 5:30 in the morning), a Date and a
    Time column one timestamp; daily bars
    stamped at the close go to their day's midnight, beside a file's own; a file whose symbols are of different
    timeframes, or whose every bar is outside the session, is one line and writes nothing; an empty bars file
    there is nothing to keep."""
    rows = [f"2024-07-09 {9 + (30 + m) // 60:02d}:{(30 + m) % 60:02d}:00,1,1,1,1,1" for m in range(0, 390, 5)]
    (workdir / "naive.csv").write_text("Date,Open,High,Low,Close,Volume\n" + "\n".join(rows) + "\n")
    assert _mb(workdir, "data", "import", "naive.csv", "--symbol", "XYZ", "-o", "n.jsonl").returncode == 0
    ny = read_bars(workdir / "n.jsonl")["timestamp"].dt.convert_time_zone("America/New_York").dt.strftime("%H:%M")
    assert (ny.len(), ny[0], ny[-1]) == (78, "09:30", "15:55")
    split = "Date,Time,Open,High,Low,Close,Volume\n" + "\n".join(r.replace(" ", ",", 1) for r in rows) + "\n"
    (workdir / "split.csv").write_text(split.replace(",09:", ",9:").replace(":00,1", ",1"))  # 9:30, no seconds
    assert _mb(workdir, "data", "import", "split.csv", "--symbol", "XYZ", "-o", "split.jsonl").returncode == 0
    assert read_bars(workdir / "split.jsonl").equals(read_bars(workdir / "n.jsonl"))  # a day's bars, not its first
    (workdir / "day.csv").write_text("Date,Open,High,Low,Close,Volume\n2024-07-08,1,1,1,1,1\n2024-07-09,1,1,1,1,1\n")
    (workdir / "close.csv").write_text("t,o,h,l,c,v\n2024-07-08T20:00:00Z,2,2,2,2,2\n2024-07-09T20:00:00Z,2,2,2,2,2\n")
    assert _mb(workdir, "data", "import", "day.csv", "--symbol", "AAA", "-o", "d.jsonl").returncode == 0
    assert _mb(workdir, "data", "import", "close.csv", "--symbol", "BBB", "-o", "d.jsonl").returncode == 0
    days = read_bars(workdir / "d.jsonl")
    assert days["timestamp"].n_unique() == 2 and days.height == 4  # one time a day for both symbols
    (workdir / "mixed.csv").write_text("t,symbol,o,h,l,c,v\n" + "".join(
        f"2024-07-09T{13 + (30 + m) // 60}:{(30 + m) % 60:02d}:00Z,{sym},1,1,1,1,1\n"
        for sym, step in (("AAA", 5), ("BBB", 30)) for m in range(0, 120, step)))  # fmt: skip
    out = _mb(workdir, "data", "import", "mixed.csv", "-o", "m.jsonl")
    assert out.returncode == 2 and not (workdir / "m.jsonl").exists()
    assert out.stderr.strip() == ("error: mixed.csv: field 'timestamp': its symbols' bars are of different timeframes "
                                  "(AAA: 5Min, BBB: 30Min): one file holds one timeframe")  # fmt: skip
    (workdir / "pre.csv").write_text("t,o,h,l,c,v\n2024-07-09T12:00:00Z,1,1,1,1,1\n2024-07-09T12:05:00Z,1,1,1,1,1\n")
    before = (workdir / "n.jsonl").read_bytes()
    out = _mb(workdir, "data", "import", "pre.csv", "--symbol", "XYZ", "-o", "n.jsonl", "--replace")
    assert out.returncode == 2 and (workdir / "n.jsonl").read_bytes() == before
    assert out.stderr.strip().endswith("pre.csv: no bars to import: every bar is outside the regular session")
    (workdir / "empty.jsonl").write_text("")
    assert _mb(workdir, "data", "import", "day.csv", "--symbol", "AAA", "-o", "empty.jsonl").returncode == 0
    assert read_bars(workdir / "empty.jsonl").height == 2


def test_imports_into_one_file_at_once_each_add_their_symbol(workdir: Path) -> None:
    """Imports into one file at the same time (a file of some size: each reads it a while): each waits for the
    one before, none loses another's bars (without the wait, most did)."""
    (workdir / "day.csv").write_text("Date,Open,High,Low,Close,Volume\n2024-07-08,1,1,1,1,1\n2024-07-09,1,1,1,1,1\n")
    assert _mb(workdir, "data", "synth", "--symbols", "40", "--start", "2015-01-01", "--end", "2024-07-09",
               "--output", "data/market_data.parquet").returncode == 0  # fmt: skip
    env = {"PATH": "/usr/bin:/bin", "MARKETBOSS_LOG_LEVEL": "warning", "PYTHONPATH": str(SRC),
           "MARKETBOSS_CACHE_DIR": str(workdir / ".cache")}  # fmt: skip
    new = [f"NEW{i}" for i in range(4)]
    runs = [subprocess.Popen([sys.executable, "-m", "marketboss", "data", "import", "day.csv", "--symbol", sym,
                              "-o", "data/market_data.parquet"], cwd=workdir, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) for sym in new]  # fmt: skip
    assert [r.wait(timeout=120) for r in runs] == [0] * len(new)
    symbols = set(read_bars(workdir / "data/market_data.parquet")["symbol"].unique())
    assert len(symbols) == 44 and set(new) <= symbols


@pytest.mark.parametrize("args", [
    ["backtest", "--strategy", "ma_crossover"],
    ["backtest", "--signals", "data/nope_signals.jsonl"],
    ["signals", "generate", "--strategy", "ma_crossover"],
    ["sweep", "--strategy", "ma_crossover", "--grid", "fast=5,10"],
    ["walkforward", "--strategy", "ma_crossover", "--grid", "fast=5,10"],
    ["compare", "--strategies", "ma_crossover,momentum"],
    ["data", "show"],
    ["train"],
    ["reconcile"],
])
def test_a_missing_data_file_is_one_line_and_exit_2_for_every_command(workdir: Path, args: list[str]) -> None:
    """Each command reads --data its own way (a cached market panel, bars, a signals file beside); the user
    sees the same line from each, not an unexpected OSError and a log record."""
    out = _mb(workdir, *args, "--data", "data/nope.jsonl")
    assert (out.returncode, out.stderr) == (2, "error: data/nope.jsonl: file not found\n"), out.stderr
    assert [p.name for p in workdir.iterdir() if p.name != ".cache"] == []  # no run, no signals, no data dir


def test_an_empty_bars_file_is_named(workdir: Path) -> None:
    """'no bars: the data file is empty' named no file."""
    (workdir / "empty.jsonl").write_text("")
    for cmd in (["signals", "generate", "--data", "empty.jsonl", "-o", "s.jsonl"],
                ["backtest", "--data", "empty.jsonl"]):
        out = _mb(workdir, *cmd)
        assert out.returncode == 2 and out.stderr == "error: empty.jsonl: no bars: the file is empty\n", out.stderr


def test_daily_bars_are_the_sessions_of_the_dates_they_are_written_with(workdir: Path) -> None:
    """Tokyo's midnights (the evening before in New York), a file of midnight-UTC dates with one stamp a second
    off, and a merge into a file stamped at midnight UTC: each bar is its written date's session, stamped at New
    York's midnight. Before, the New York date of the instant: Tokyo's bars a session early (its first dropped
    as 2024-01-01's), the whole second file a session early, and the merge kept two stamps a session."""
    rows = "Date,Open,High,Low,Close,Volume\n" + "".join(
        f"2024-01-0{d}T00:00:00{zone},{d},{d + 1},{d - 1},{d},100\n" for d, zone in
        ((2, "+09:00"), (3, "+09:00"), (4, "+09:00"), (5, "+09:00")))  # fmt: skip
    (workdir / "tokyo.csv").write_text(rows)
    (workdir / "stray.csv").write_text(rows.replace("+09:00", "Z").replace("05T00:00:00Z", "05T00:00:01Z"))
    for file in ("tokyo.csv", "stray.csv"):
        out = _mb(workdir, "data", "import", file, "--symbol", "X", "--output", f"{file}.jsonl")
        assert out.returncode == 0, out.stderr
        bars = read_bars(workdir / f"{file}.jsonl")
        assert [f"{t:%Y-%m-%dT%H:%MZ}" for t in bars["timestamp"]] == [f"2024-01-0{d}T05:00Z" for d in (2, 3, 4, 5)]
        assert bars["close"].to_list() == [2.0, 3.0, 4.0, 5.0]  # each its own date's
    (workdir / "utc.jsonl").write_text("".join(
        f'{{"timestamp":"2024-01-0{d}T00:00:00Z","symbol":"A","open":{d},"high":{d + 1},"low":{d - 1},"close":{d},'
        f'"volume":100}}\n' for d in (2, 3, 4, 5)))  # fmt: skip
    out = _mb(workdir, "data", "import", "tokyo.csv", "--symbol", "B", "--output", "utc.jsonl")
    assert out.returncode == 0, out.stderr
    merged = read_bars(workdir / "utc.jsonl")
    assert merged["timestamp"].n_unique() == 4 and merged.height == 8  # one stamp a session, A's and B's alike


@pytest.mark.parametrize("dates", [[f"2015-01-{5 + 7 * i:02d}" for i in range(4)],  # Mondays
                                   [f"2015-{m:02d}-01" for m in range(1, 7)]], ids=["weekly", "monthly"])
def test_weekly_or_monthly_bars_are_refused_whole(workdir: Path, dates: list[str]) -> None:
    """Yahoo's 1wk and 1mo bars, labelled by their first day: no timeframe MarketBoss trades. Before, imported as
    daily bars, those labelled on a holiday or a weekend dropped (a third of the months), and annualised as
    neither."""
    rows = "".join(f"{d},10,11,9,10,100\n" for d in dates)
    (workdir / "w.csv").write_text("Date,Open,High,Low,Close,Volume\n" + rows)
    out = _mb(workdir, "data", "import", "w.csv", "--symbol", "SPY", "--output", "w.jsonl")
    assert out.returncode == 2 and "weekly or monthly bars are no timeframe MarketBoss trades" in out.stderr
    assert not (workdir / "w.jsonl").exists()
