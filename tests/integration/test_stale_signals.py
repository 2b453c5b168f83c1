"""Only fresh signals become orders: a signal whose bar is no longer the latest completed one at the broker's
clock is skipped (sent with --allow-stale), one whose bar has not completed is refused; through `paper`, the
guide's script and the scheduler's paper job, against the real local broker."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from marketboss.config import Settings
from marketboss.scheduler import ScheduleConfig
from marketboss.scheduler.jobs import run_job
from marketboss.signals import Signal, signal_id, write_signals
from tests.integration.executor_fixtures import broker, broker_orders, make_bars

ROOT = Path(__file__).resolve().parents[2]
CLOCK = "2024-03-27T15:00:00Z"  # Wednesday 11:00 New York: Tuesday's bar is the latest completed one
BARS = {"stale": "2024-03-22", "older": "2024-03-25", "fresh": "2024-03-26", "future": "2024-03-27"}


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Path, Path, dict[str, Signal], object, dict[str, str]]]:
    data, bars = make_bars(tmp_path)
    sigs = {}
    for name, day in BARS.items():
        row = bars.filter((pl.col("symbol") == "AAPL") & (pl.col("timestamp").dt.date() == date.fromisoformat(day)))
        ts = row["timestamp"][0]
        sigs[name] = Signal(id=signal_id("fresh-test", {}, "AAPL", ts, "BUY"), timestamp=ts, symbol="AAPL",
                            action="BUY", quantity=1, strategy="fresh-test", price=row["close"][0])  # fmt: skip
    path = tmp_path / "signals.jsonl"
    write_signals(path, list(sigs.values()))
    with broker(tmp_path, data, start=CLOCK) as lb:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "MARKETBOSS_"))}
        env.update(MARKETBOSS_BROKER_KEY_ID=lb.key_id, MARKETBOSS_BROKER_SECRET_KEY=lb.secret_key,
                   MARKETBOSS_LOG_LEVEL="warning")  # fmt: skip
        yield data, path, sigs, lb, env


def _sent(lb: object) -> set[str]:
    return {o["client_order_id"].removeprefix("mb-") for o in broker_orders(lb)}  # type: ignore[arg-type]


def _args(tmp: Path, data: Path, path: Path, lb: object, *extra: str) -> list[str]:
    return ["--signals", str(path), "--data", str(data), "--broker-url", lb.base_url,  # type: ignore[attr-defined]
            "--trades-output", str(tmp / "trades.jsonl"), "--equity-output", str(tmp / "equity.jsonl"),
            "--order-interval", "0", "--poll-interval", "0.02", *extra]  # fmt: skip


def test_paper_sends_only_the_fresh_signal_and_allow_stale_the_stale_ones(tmp_path: Path, setup: tuple) -> None:
    data, path, sigs, lb, env = setup
    cmd = [sys.executable, "-m", "marketboss", "paper", *_args(tmp_path, data, path, lb)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    assert _sent(lb) == {sigs["fresh"].id}
    assert "skipped: stale (a newer bar has completed)" in run.stdout and "refused: bar not completed" in run.stdout
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in run.stdout.splitlines()
            if line.startswith("│")}  # fmt: skip
    assert rows["skipped: stale (a newer bar has completed)"] == "2"
    assert rows["refused: bar not completed at the broker's clock"] == "1"
    again = subprocess.run([*cmd, "--allow-stale"], env=env, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    assert _sent(lb) == {sigs["fresh"].id, sigs["stale"].id, sigs["older"].id}  # the future one never


def test_the_guides_script_skips_stale_and_future_signals(tmp_path: Path, setup: tuple) -> None:
    data, path, sigs, lb, env = setup
    cmd = [sys.executable, str(ROOT / "scripts/run_paper_trading.py"), *_args(tmp_path, data, path, lb)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    assert _sent(lb) == {sigs["fresh"].id}


def test_the_schedulers_paper_job_skips_stale_and_future_signals(
    tmp_path: Path, setup: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, path, sigs, lb, env = setup
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    args = _args(tmp_path, data, path, lb)[4:]  # the job adds --signals and --data itself
    cfg = ScheduleConfig.model_validate({"data_file": str(data), "signals_file": str(path), "paper": {"args": args}})
    assert run_job("paper", cfg, Settings(), date(2024, 3, 27), lambda argv: 1)  # paper runs as a child process
    assert _sent(lb) == {sigs["fresh"].id}


def test_doctor_counts_the_stale_signals_now(tmp_path: Path, setup: tuple) -> None:
    data, path, _, lb, env = setup
    cmd = [sys.executable, "-m", "marketboss", "doctor", "--broker-url", lb.base_url, "--signals", str(path),
           "--data", str(data)]  # fmt: skip
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    line = next(ln for ln in run.stdout.splitlines() if "freshness" in ln)
    assert "1 fresh, 2 stale (skipped by paper unless --allow-stale), 1 after the broker's clock" in line
    assert "2024-03-27 15:00 UTC, 1Day bars" in line and line.strip().startswith("warn")
