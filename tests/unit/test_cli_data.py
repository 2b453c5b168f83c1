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
