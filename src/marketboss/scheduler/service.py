"""The long-running scheduler (APScheduler 3, blocking) and `--once`."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from types import FrameType
from zoneinfo import ZoneInfo

from apscheduler.schedulers.blocking import BlockingScheduler

from marketboss.config import Settings, get_settings
from marketboss.data.calendar import NY
from marketboss.logging import get_logger
from marketboss.scheduler.config import ScheduleConfig
from marketboss.scheduler.jobs import JOBS, REPLACED_BY_LIVE, Runner, child_command, live_command, run_job
from marketboss.scheduler.sessions import LiveTrigger, SessionTrigger, SessionWindow, next_session_time
from marketboss.scheduler.supervise import Outcome, Supervision, supervise

log = get_logger(__name__)
MISFIRE_GRACE_SECONDS = 3600


def enabled_jobs(cfg: ScheduleConfig) -> list[str]:
    """The batch jobs that run: the enabled ones, less those the live loop replaces when it is on."""
    return [j for j in JOBS if getattr(cfg, j).enabled and not (cfg.live.enabled and j in REPLACED_BY_LIVE)]


def live_trigger(cfg: ScheduleConfig) -> LiveTrigger:
    lv = cfg.live
    return LiveTrigger(timedelta(minutes=lv.warmup_minutes), timedelta(minutes=lv.stop_grace_minutes), cfg.tz)


def live_supervision(cfg: ScheduleConfig, settings: Settings, window: SessionWindow) -> Supervision:
    """The session's live child: restarted after a crash until the close, stopped by signal after the grace."""
    lv = cfg.live
    return Supervision(child_command(live_command(cfg, settings)), restart_until=window.close, stop_at=window.stop,
                       kill_after_seconds=lv.kill_grace_seconds, restart=lv.restart,
                       max_restarts=lv.max_restarts)  # fmt: skip


def _run_scheduled(job: str, cfg: ScheduleConfig, run: Runner) -> None:
    run_job(job, cfg, get_settings(), datetime.now(cfg.tz).date(), run)


def _run_live_scheduled(cfg: ScheduleConfig, stop: threading.Event) -> None:
    """The trigger fired: supervise the session in progress. A late fire (a suspended machine) after the
    close finds the next session not started yet, and leaves it to its own fire."""
    now = datetime.now(cfg.tz)
    window = live_trigger(cfg).window(now)
    if window is None or now < window.start - timedelta(minutes=1):
        log.warning("job_skipped", job="live", reason="fired outside a session's live window")
        return
    _supervise_live(cfg, window, stop)


def _supervise_live(cfg: ScheduleConfig, window: SessionWindow, stop: threading.Event) -> Outcome:
    log.info("job_start", job="live", session=window.session.isoformat(), close=window.close.isoformat(),
             stop_at=window.stop.isoformat())  # fmt: skip
    out = supervise(live_supervision(cfg, get_settings(), window), stop)
    if out.ok:
        log.info("job_done", job="live", how=out.ended, starts=len(out.pids))
    else:
        log.error("job_failed", job="live", how=out.ended, exit_codes=out.exit_codes)
    return out


def build_scheduler(cfg: ScheduleConfig, run: Runner, stop: threading.Event | None = None) -> BlockingScheduler:
    """A scheduler (not started) with one job per enabled step, each firing on NYSE sessions only; with [live],
    the live loop from each session's warm-up to its close (`stop` set: the running live child is stopped)."""
    sched = BlockingScheduler(
        timezone=cfg.tz,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE_SECONDS},
    )
    for job in enabled_jobs(cfg):
        trigger = SessionTrigger(getattr(cfg, job).at, cfg.tz)
        sched.add_job(_run_scheduled, trigger, args=[job, cfg, run], id=job, name=job)
    if cfg.live.enabled:  # max_instances=1: never two live children; a late fire still checks its window
        sched.add_job(_run_live_scheduled, live_trigger(cfg), args=[cfg, stop or threading.Event()], id="live",
                      name="live", misfire_grace_time=None)  # fmt: skip
    return sched


def plan(cfg: ScheduleConfig, now: datetime) -> list[tuple[datetime, str]]:
    """The next run of each enabled job, soonest first; the live loop as its start ("live", now when a session is
    in progress) and the time it is stopped by signal if it has not exited by itself ("live stop")."""
    out = []
    for job in enabled_jobs(cfg):
        t = next_session_time(now, getattr(cfg, job).at, cfg.tz)
        if t is not None:
            out.append((t, job))
    if cfg.live.enabled:
        trigger = live_trigger(cfg)
        start, window = trigger.get_next_fire_time(None, now), trigger.window(now)
        if start is not None and window is not None:
            out += [(start, "live"), (window.stop, "live stop")]
    return sorted(out)


def plan_lines(cfg: ScheduleConfig, now: datetime) -> list[str]:
    """The plan as the scheduler prints it at start-up (and `schedule --plan`)."""
    lines = [f"next {job:<9} {t:%a %Y-%m-%d %H:%M %Z} (in {_human(t - now)})" for t, job in plan(cfg, now)]
    window = live_trigger(cfg).window(now) if cfg.live.enabled else None
    if window is not None:
        lines.append(f"live session {window.session}: opens {window.open:%H:%M}, closes {window.close:%H:%M} "
                     f"({cfg.live.strategy} on {','.join(cfg.live.symbols)}, {cfg.live.timeframe} bars)")  # fmt: skip
    return lines


def run_once(cfg: ScheduleConfig, run: Runner, stop: threading.Event | None = None) -> list[str]:
    """Today's jobs now, in order; stops at the first failure (later jobs depend on it). Returns the failed.

    With [live], the batch jobs it does not replace run first, then today's live session: at once when it is in
    progress, after a wait when its warm-up has not begun (so it starts when the schedule would start it), not at
    all, with a message saying so, when today is not a session or its close has passed."""
    settings = get_settings()
    today = datetime.now(cfg.tz).date()
    announce_live(cfg)
    for job in enabled_jobs(cfg):
        if not run_job(job, cfg, settings, today, run):
            return [job]
    if cfg.live.enabled:
        with _stop_on_sigterm(stop or threading.Event()) as ev:
            if not run_live_today(cfg, ev):
                return ["live"]
    return []


def run_live_today(cfg: ScheduleConfig, stop: threading.Event, now: datetime | None = None) -> bool:
    """Today's live session (see run_once); False when it failed."""
    now = now or datetime.now(cfg.tz)
    window = live_trigger(cfg).window(now)
    if window is None or window.session != now.astimezone(ZoneInfo(NY)).date():
        nxt = "" if window is None else f"; the next starts {window.start:%a %Y-%m-%d %H:%M %Z}"
        print(f"no live session today: the market is closed or today's session is over{nxt}")
        log.info("job_skipped", job="live", reason="no session in progress or ahead today")
        return True
    if now < window.start:
        print(f"live session {window.session}: starting at {window.start:%H:%M %Z} (in {_human(window.start - now)})")
        if stop.wait((window.start - now).total_seconds()):
            return True
    return _supervise_live(cfg, window, stop).ok


@contextmanager
def _stop_on_sigterm(stop: threading.Event) -> Iterator[threading.Event]:
    """SIGTERM sets `stop` (the live child is then stopped cleanly) instead of killing this process, while inside;
    only the main thread can install a handler, elsewhere the event is returned as is."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)


def announce_live(cfg: ScheduleConfig) -> None:
    """The start-up line saying the live loop replaces the signals and paper jobs."""
    if cfg.live.enabled:
        log.info("live_enabled", not_scheduled=list(REPLACED_BY_LIVE), strategy=cfg.live.strategy,
                 note="the live loop makes and sends each bar's signals itself")  # fmt: skip


def run_forever(cfg: ScheduleConfig, run: Runner) -> None:
    stop = threading.Event()
    sched = build_scheduler(cfg, run, stop)
    for line in plan_lines(cfg, datetime.now(cfg.tz)):
        print(line)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        log.info("scheduler_stopping", signal=signum)
        stop.set()
        sched.shutdown(wait=False)

    signal.signal(signal.SIGTERM, on_sigterm)
    announce_live(cfg)
    log.info("scheduler_started", jobs=enabled_jobs(cfg) + (["live"] if cfg.live.enabled else []),
             timezone=cfg.timezone)  # fmt: skip
    try:
        sched.start()
    finally:  # Ctrl-C or SIGTERM: a running live child is stopped (SIGTERM, then SIGKILL) before the exit
        stop.set()


def _human(d: timedelta) -> str:
    h, rem = divmod(int(d.total_seconds()), 3600)
    return f"{h}h {rem // 60:02d}m"
