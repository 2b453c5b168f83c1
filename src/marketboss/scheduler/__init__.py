"""Daily jobs on the NYSE calendar: refresh data, retrain if needed, generate signals, paper trade."""

from marketboss.scheduler.config import ScheduleConfig, load_config
from marketboss.scheduler.service import build_scheduler, plan, run_forever, run_once
from marketboss.scheduler.sessions import SessionTrigger, next_session_time, session_times

__all__ = [
    "ScheduleConfig",
    "SessionTrigger",
    "build_scheduler",
    "load_config",
    "next_session_time",
    "plan",
    "run_forever",
    "run_once",
    "session_times",
]
