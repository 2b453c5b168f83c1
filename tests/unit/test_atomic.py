"""Nothing half-written survives a crash: atomic replacement and fsynced, self-repairing append logs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from marketboss.data.io import JsonlAppender, atomic_open, read_jsonl_records, write_jsonl


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    write_jsonl(path, [{"a": 1}])

    def boom() -> list[dict[str, int]]:
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError), atomic_open(path) as fh:
        fh.write(b'{"a": 2}\n{"a": 3')
        boom()
    assert path.read_bytes() == b'{"a":1}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


WRITER = """
import sys
from marketboss.data.io import write_jsonl
path = sys.argv[1]
i = 0
while True:
    i += 1
    write_jsonl(path, ({"round": i, "n": k, "pad": "x" * 200} for k in range(20000)))
    print(i, flush=True)
"""


def test_killed_writer_never_leaves_a_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # one complete file exists
        time.sleep(0.15)  # now most likely mid-write of a later round
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    lines = path.read_bytes().splitlines()
    rounds = {orjson.loads(line)["round"] for line in lines}
    assert len(lines) == 20000 and len(rounds) == 1


def test_appender_repairs_a_torn_tail_and_keeps_whole_records(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    with JsonlAppender(path) as log:
        log.append({"i": 1})
        log.append({"i": 2})
    with open(path, "ab") as fh:  # a crash in the middle of the third record
        fh.write(b'{"i": 3, "half')
    assert [r["i"] for r in read_jsonl_records(path)] == [1, 2]
    with JsonlAppender(path) as log:
        log.append({"i": 3})
    assert [r["i"] for r in read_jsonl_records(path, tolerate_torn_tail=False)] == [1, 2, 3]


def test_written_files_get_the_usual_permissions_not_mkstemps_0600(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    old = os.umask(0o022)
    try:
        write_jsonl(path, [{"a": 1}])
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o666 & ~old


def test_datetimes_in_written_records_end_in_z(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    path = tmp_path / "log.jsonl"
    with JsonlAppender(path) as log:
        log.append({"aware": datetime(2024, 1, 2, 14, 30, tzinfo=UTC), "naive": datetime(2024, 1, 2, 14, 30)})
    assert path.read_text() == '{"aware":"2024-01-02T14:30:00Z","naive":"2024-01-02T14:30:00Z"}\n'


RUN_WRITER = """
import sys
from datetime import datetime, timedelta, UTC
from types import SimpleNamespace
import polars as pl
from marketboss.backtest.runs import save_run
path = sys.argv[1]
t0 = datetime(2024, 1, 1, tzinfo=UTC)
g = int(sys.argv[2])
print("ready", flush=True)
while True:
    g += 1
    n = 20000
    ts = [t0 + timedelta(minutes=i) for i in range(n)]
    frame = pl.DataFrame({"timestamp": ts, "cash": [float(g)] * n, "positions_value": 0.0, "equity": float(g)})
    result = SimpleNamespace(metrics={"final_equity": float(g)}, equity=frame,
                             fills=pl.DataFrame({"signal_id": [f"g{g}"] * 500, "qty": [float(g)] * 500}),
                             trades=pl.DataFrame({"pnl": [float(g)] * 500}),
                             rejections=pl.DataFrame({"reason": [f"g{g}"] * 10}))
    save_run(result, path, {"generation": g})
"""


def _consistent_generation(run_dir: Path) -> int:
    from marketboss.backtest.runs import load_run

    run = load_run(run_dir)
    g = int(run.metrics["run"]["generation"])
    assert run.metrics["final_equity"] == g and set(run.equity["cash"]) == {float(g)} and run.equity.height == 20000
    assert set(run.fills["qty"]) == {float(g)} and set(run.trades["pnl"]) == {float(g)}
    assert set(run.rejections["reason"]) == {f"g{g}"}
    return g


def test_kill_9_during_a_run_rewrite_leaves_the_old_run_or_the_new_whole_20_times(tmp_path: Path) -> None:
    import random

    run_dir = tmp_path / "runs" / "r"
    seen: set[int] = set()
    for k in range(20):
        proc = subprocess.Popen([sys.executable, "-c", RUN_WRITER, str(run_dir), str(1000 * k)],
                                stdout=subprocess.PIPE, text=True)  # fmt: skip
        try:
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
            time.sleep(random.uniform(0.0, 0.6) if k else 0.6)  # anywhere in the first few rewrites
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(10)
        if not run_dir.exists():
            assert k == 0, "a rewrite must never leave the run missing"
            continue
        seen.add(_consistent_generation(run_dir))
    assert len(seen) > 1  # the kills landed in different rewrites
    leftovers = [p.name for p in run_dir.parent.iterdir() if p.name != "r"]
    proc = subprocess.run([sys.executable, "-c", RUN_WRITER.replace("while True", "for _ in range(1)"),
                           str(run_dir), "99000"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert _consistent_generation(run_dir) == 99001
    assert [p.name for p in run_dir.parent.iterdir()] == ["r"], f"temporaries of killed writers stay: {leftovers}"


def test_the_next_write_removes_the_temporaries_of_a_killed_writer_only(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    stale = [tmp_path / f".bars.jsonl.{pid}.k3j_x9q2.tmp", tmp_path / f".bars.jsonl.{pid}.ab12cd34.tmpdir"]
    stale[0].write_bytes(b"x" * 1000)
    stale[1].mkdir()
    (stale[1] / "equity.jsonl").write_text("{}")
    alive = tmp_path / f".bars.jsonl.{os.getppid()}.zz99zz99.tmp"  # a live writer's: kept
    other = tmp_path / f".bars.jsonl.5.{pid}.abcdefgh.tmp"  # another file's name pattern: kept
    for p in (alive, other):
        p.write_text("keep")
    write_jsonl(tmp_path / "bars.jsonl", [{"a": 1}])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["bars.jsonl", alive.name, other.name])
