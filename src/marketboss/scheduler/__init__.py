"""Daily jobs on the NYSE calendar: refresh data, retrain if needed, generate signals, paper trade; or the live loop
through each session."""

from marketboss.scheduler.config import ScheduleConfig, load_config
from marketboss.scheduler.service import build_scheduler, plan, plan_lines, run_forever, run_once
from marketboss.scheduler.sessions import (
    LiveTrigger,
    SessionTrigger,
    SessionWindow,
    next_session_time,
    session_times,
    session_window,
)
from marketboss.scheduler.supervise import Outcome, Supervision, supervise

__all__ = [
    "LiveTrigger",
    "Outcome",
    "ScheduleConfig",
    "SessionTrigger",
    "SessionWindow",
    "Supervision",
    "build_scheduler",
    "load_config",
    "next_session_time",
    "plan",
    "plan_lines",
    "run_forever",
    "run_once",
    "session_times",
    "session_window",
    "supervise",
]
