"""A long-running child process held to a time window: started once, restarted after a crash while the window is
open (with backoff, a bounded number of times), asked to stop with SIGTERM when it outlives the window, killed
when it ignores that. The command line and every time are parameters, so a test drives a real process in seconds.
"""

from __future__ import annotations

import shlex
import subprocess
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from marketboss.logging import get_logger

log = get_logger(__name__)

#: How a supervision ended: the child exited 0 by itself; it was stopped with SIGTERM (its window ended, or the
#: scheduler is stopping); it ignored SIGTERM and was killed; it crashed and was not (or no longer) restarted.
Ending = Literal["exited", "terminated", "killed", "failed"]

POLL_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 300.0


@dataclass(frozen=True)
class Supervision:
    argv: list[str]  # the whole command line (program included)
    restart_until: datetime  # a crash before this is restarted (the session's close)
    stop_at: datetime  # still running then: SIGTERM (the close plus the grace)
    kill_after_seconds: float = 60.0  # SIGTERM ignored this long: SIGKILL
    restart: bool = True
    max_restarts: int = 3
    backoff_seconds: float = 10.0  # before the first restart; doubles each time, at most MAX_BACKOFF_SECONDS
    name: str = "live"


@dataclass
class Outcome:
    ended: Ending
    exit_codes: list[int] = field(default_factory=list)  # one per start, in order (negative: killed by signal)
    pids: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.ended in ("exited", "terminated")


def supervise(sup: Supervision, stop: threading.Event | None = None) -> Outcome:
    """Run the child until it exits 0, its window ends, or `stop` is set (the scheduler is stopping); never two at
    once. Never raises for the child's failures: they are logged and returned. If this thread is interrupted
    (KeyboardInterrupt), the child is stopped the same way before the interruption goes on."""
    stop = stop or threading.Event()
    out = Outcome("failed")
    while True:
        try:
            proc = subprocess.Popen(sup.argv)
        except OSError as exc:
            log.error("child_start_failed", job=sup.name, error=str(exc), command=shlex.join(sup.argv))
            return out
        out.pids.append(proc.pid)
        log.info("child_started", job=sup.name, pid=proc.pid, attempt=len(out.pids), command=shlex.join(sup.argv),
                 stop_at=sup.stop_at.isoformat())  # fmt: skip
        try:
            code, out.ended = _wait(proc, sup, stop)
        except BaseException:
            _stop(proc, sup, "interrupted")
            raise
        out.exit_codes.append(code)
        log.info("child_exited", job=sup.name, pid=proc.pid, exit_code=code, how=out.ended)
        if out.ended != "exited" or code == 0:
            return out
        out.ended = "failed"
        now = datetime.now(UTC)
        if not sup.restart or stop.is_set() or now >= sup.restart_until:
            log.error("child_failed", job=sup.name, exit_code=code, restarted=False)
            return out
        restarts = len(out.pids) - 1
        if restarts >= sup.max_restarts:
            log.error("child_failed", job=sup.name, exit_code=code, restarted=False,
                      reason=f"restarted {restarts} times already this session")  # fmt: skip
            return out
        delay = min(sup.backoff_seconds * 2**restarts, MAX_BACKOFF_SECONDS)
        log.warning("child_restarting", job=sup.name, exit_code=code, in_seconds=delay, restart=restarts + 1)
        if stop.wait(delay) or datetime.now(UTC) >= sup.restart_until:
            log.error("child_failed", job=sup.name, exit_code=code, restarted=False,
                      reason="stopping" if stop.is_set() else "the session closed during the backoff")  # fmt: skip
            return out


def _wait(proc: subprocess.Popen[bytes], sup: Supervision, stop: threading.Event) -> tuple[int, Ending]:
    """The child's exit code, and whether it exited by itself or had to be stopped."""
    while True:
        try:
            return proc.wait(timeout=POLL_SECONDS), "exited"
        except subprocess.TimeoutExpired:
            pass
        if stop.is_set():
            return _stop(proc, sup, "scheduler stopping")
        if datetime.now(UTC) >= sup.stop_at:
            return _stop(proc, sup, "still running after the stop time")


def _stop(proc: subprocess.Popen[bytes], sup: Supervision, reason: str) -> tuple[int, Ending]:
    """SIGTERM (the child's clean shutdown), then SIGKILL if it is still there kill_after_seconds later."""
    if proc.poll() is not None:
        return proc.returncode, "exited"
    log.warning("child_stopping", job=sup.name, pid=proc.pid, signal="SIGTERM", reason=reason)
    proc.terminate()
    try:
        return proc.wait(timeout=sup.kill_after_seconds), "terminated"
    except subprocess.TimeoutExpired:
        log.error("child_killed", job=sup.name, pid=proc.pid, signal="SIGKILL",
                  reason=f"still running {sup.kill_after_seconds:g} s after SIGTERM")  # fmt: skip
        proc.kill()
        return proc.wait(), "killed"
