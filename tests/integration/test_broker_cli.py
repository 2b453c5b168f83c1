"""`marketboss broker serve` as users run it: documented options, one-line errors, and `data fetch` through it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import time
from pathlib import Path

import polars as pl
import typer.main

from marketboss.cli import app
from marketboss.data.io import read_bars, write_bars
from marketboss.data.synth import synth_bars
from tests.integration.conftest import StartBroker, admin_client, set_clock
from tests.unit.test_grid import extended_bars


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MARKETBOSS_LOG_LEVEL": "warning"}
    return subprocess.run([sys.executable, "-m", "marketboss", *args], capture_output=True, text=True,
                          cwd=cwd, env={**base, **(env or {})}, timeout=120)  # fmt: skip


def test_help_documents_every_option(tmp_path: Path) -> None:
    proc = run("broker", "serve", "--help", cwd=tmp_path)
    assert proc.returncode == 0
    command = typer.main.get_command(app).commands["broker"].commands["serve"]  # type: ignore[attr-defined]
    flags = [opt for p in command.params for opt in p.opts if opt.startswith("--")]
    assert len(flags) > 35
    text = " ".join(proc.stdout.split())
    for param in command.params:
        assert param.help, f"{param.name} has no help"
        assert any(opt in text for opt in param.opts), param.opts
    assert "/admin/clock" in text and "127.0.0.1" in text
    assert "MARKETBOSS_BROKER_KEY_ID" in text and "MARKETBOSS_BROKER_SECRET_KEY" in text


def test_bad_options_and_files_are_one_line_errors(tmp_path: Path, broker_data: Path) -> None:
    cases = [
        (["--partial-fill-rate", "2"], "error: --partial-fill-rate: Input should be less than or equal to 1"),
        (["--fault-500-rate", "0.8", "--fault-503-rate", "0.8"],
         "error: fault options: error_500/503/504 and drop rates add up to 1.6"),
        (["--start", "someday"], "error: --start 'someday' is not a date or RFC 3339 timestamp"),
        (["--data", "nope.jsonl"], "error: nope.jsonl: file not found"),
    ]
    for args, first_words in cases:
        extra = [] if "--data" in args else ["--data", str(broker_data)]
        proc = run("broker", "serve", *extra, *args, "--db", str(tmp_path / "b.sqlite"), cwd=tmp_path)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and lines[-1].startswith(first_words), (args, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_a_taken_port_is_a_one_line_error(tmp_path: Path, broker_data: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = run("broker", "serve", "--data", str(broker_data), "--port", str(port), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: cannot listen on 127.0.0.1:{port}:")


def test_data_fetch_through_the_local_broker_gets_the_bars_back(start_broker: StartBroker, broker_data: Path,
                                                                 tmp_path: Path) -> None:  # fmt: skip
    b = start_broker()
    set_clock(admin_client(b), timestamp="2025-02-03T21:00:00Z")  # after the last bar: all of them are history
    env = {"APCA_API_KEY_ID": b.key_id, "APCA_API_SECRET_KEY": b.secret_key, "APCA_API_DATA_URL": b.base_url}
    proc = run("data", "fetch", "--symbols", "AAPL,JPM", "--start", "2024-11-01", "--end", "2025-02-01",
               "--output", "fetched.jsonl", cwd=tmp_path, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    want = read_bars(broker_data).filter(pl.col("symbol").is_in(["AAPL", "JPM"]))
    assert read_bars(tmp_path / "fetched.jsonl").equals(want)
    assert b.secret_key not in proc.stderr + proc.stdout


def test_data_fetch_of_minute_bars_keeps_the_regular_session(start_broker: StartBroker, tmp_path: Path) -> None:
    """The broker's minute bars include the pre-market and after-hours ones, as Alpaca's do: `data fetch` keeps the
    session's (the bars the live loop trades), says how many it dropped, and its hourly bars start at 9:30."""
    regular = synth_bars(["AAPL"], "2024-03-04", "2024-03-05", "1Min", seed=3)
    data = tmp_path / "minutes.jsonl"
    extra = [extended_bars("2024-03-04", time(8, 0), 90, "AAPL", 1),
             extended_bars("2024-03-05", time(16, 0), 30, "AAPL", 2)]  # fmt: skip
    write_bars(pl.concat([regular, *extra]).sort("timestamp"), data)
    b = start_broker(data=data)
    set_clock(admin_client(b), timestamp="2024-03-06T21:00:00Z")
    env = {"APCA_API_KEY_ID": b.key_id, "APCA_API_SECRET_KEY": b.secret_key, "APCA_API_DATA_URL": b.base_url}
    for tf, out, dropped in (("1Min", "m.jsonl", "120 of Alpaca's 1Min"), ("1Hour", "h.jsonl", "4 of Alpaca's 30Min")):
        proc = run("data", "fetch", "--symbols", "AAPL", "--start", "2024-03-04", "--end", "2024-03-06",
                   "--timeframe", tf, "--output", out, cwd=tmp_path, env=env)  # fmt: skip
        assert proc.returncode == 0, proc.stderr  # 30Min: 8:00, 8:30, 9:00 (9:00-9:30) and 16:00
        assert f"dropped {dropped} bars outside the regular session" in " ".join(proc.stdout.split()), proc.stdout
    assert read_bars(tmp_path / "m.jsonl").equals(regular)
    hours = read_bars(tmp_path / "h.jsonl")["timestamp"].dt.convert_time_zone("America/New_York")
    assert hours.dt.strftime("%H:%M").to_list() == [f"{h:02d}:30" for h in range(9, 16)] * 2
