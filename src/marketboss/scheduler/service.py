"""The long-running scheduler (APScheduler 3, blocking) and `--once`."""

from __future__ import annotations

import signal
from datetime import datetime, timedelta
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler

from marketboss.config import get_settings
from marketboss.logging import get_logger
from marketboss.scheduler.config import ScheduleConfig
from marketboss.scheduler.jobs import JOBS, Runner, run_job
from marketboss.scheduler.sessions import SessionTrigger, next_session_time

log = get_logger(__name__)
MISFIRE_GRACE_SECONDS = 3600


def enabled_jobs(cfg: ScheduleConfig) -> list[str]:
    return [j for j in JOBS if getattr(cfg, j).enabled]


def _run_scheduled(job: str, cfg: ScheduleConfig, run: Runner) -> None:
    run_job(job, cfg, get_settings(), datetime.now(cfg.tz).date(), run)


def build_scheduler(cfg: ScheduleConfig, run: Runner) -> BlockingScheduler:
    """A scheduler (not started) with one job per enabled step, each firing on NYSE sessions only."""
    sched = BlockingScheduler(
        timezone=cfg.tz,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE_SECONDS},
    )
    for job in enabled_jobs(cfg):
        trigger = SessionTrigger(getattr(cfg, job).at, cfg.tz)
        sched.add_job(_run_scheduled, trigger, args=[job, cfg, run], id=job, name=job)
    return sched


def plan(cfg: ScheduleConfig, now: datetime) -> list[tuple[datetime, str]]:
    """The next run of each enabled job, soonest first."""
    out = []
    for job in enabled_jobs(cfg):
        t = next_session_time(now, getattr(cfg, job).at, cfg.tz)
        if t is not None:
            out.append((t, job))
    return sorted(out)


def run_once(cfg: ScheduleConfig, run: Runner) -> list[str]:
    """Today's jobs now, in order; stops at the first failure (later jobs depend on it). Returns the failed."""
    settings = get_settings()
    today = datetime.now(cfg.tz).date()
    for job in enabled_jobs(cfg):
        if not run_job(job, cfg, settings, today, run):
            return [job]
    return []


def run_forever(cfg: ScheduleConfig, run: Runner) -> None:
    sched = build_scheduler(cfg, run)
    now = datetime.now(cfg.tz)
    for t, job in plan(cfg, now):
        print(f"next {job:<8} {t:%a %Y-%m-%d %H:%M %Z} (in {_human(t - now)})")

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("scheduler_stopping", signal=signum)
        sched.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    log.info("scheduler_started", jobs=enabled_jobs(cfg), timezone=cfg.timezone)
    sched.start()


def _human(d: timedelta) -> str:
    h, rem = divmod(int(d.total_seconds()), 3600)
    return f"{h}h {rem // 60:02d}m"
