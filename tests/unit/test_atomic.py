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
