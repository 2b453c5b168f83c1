"""A sweep in worker processes stopped by the user: Ctrl-C (SIGINT to the process group) or SIGTERM (to the
command alone, as a service manager sends it) ends it at once, its workers with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from marketboss.data.io import write_bars
from marketboss.data.synth import synth_bars

ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").exists() else ""
        found |= {int(c) for c in text.split()}
    return found


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


@pytest.mark.parametrize("how", ["ctrl_c", "sigterm"])
def test_a_stopped_sweep_ends_at_once_and_leaves_no_worker(tmp_path: Path, how: str) -> None:
    """Before: Ctrl-C waited for the workers' tasks (minutes of compiled code a signal does not interrupt): 73 s
    on a 79,200-combination sweep, saying nothing; SIGTERM killed the command and left its workers running on,
    orphaned."""
    write_bars(synth_bars([f"S{i:02d}" for i in range(10)], "2016-01-01", "2023-12-31", "1Day", seed=11),
               tmp_path / "bars.jsonl")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "MARKETBOSS_"))}
    cmd = [sys.executable, "-m", "marketboss", "sweep", "--data", "bars.jsonl", "--strategy",
           f"{ROOT / 'examples/time_trailing_stop.py'}:TimeTrailingStop", "--grid", "hold_bars=1:100:1", "--grid",
           "trail_percent=1:20:0.5", "--grid", "lookback=5:60:5", "--workers", "2", "--output", "big.csv"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:  # its two workers at work (past their start-up)
            workers = _children(proc.pid)
            if sum(_cpu_seconds(w) > 3.0 for w in workers) >= 2:
                break
            time.sleep(0.2)
        assert sum(_cpu_seconds(w) > 3.0 for w in workers) >= 2, "the sweep's workers never got to work"
        if how == "ctrl_c":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)  # the whole sweep would take minutes
        assert proc.returncode == 130 and b"Traceback" not in err, err[-2000:]
        time.sleep(0.5)
        assert not [w for w in workers if _alive(w)]  # no worker outlives it
        assert not (tmp_path / "big.csv").exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
