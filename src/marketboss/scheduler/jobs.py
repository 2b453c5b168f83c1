"""The day's jobs, each a `marketboss` command line: refresh data, retrain if needed, generate signals,
paper trade, or instead of the last two the live loop. So a job does exactly what the command does by hand (and
the log shows the command to rerun it). The first three run in this process through the `Runner` the `schedule`
command hands in (the scheduler imports no CLI); paper trading and the live loop run as child processes
(`child_command`), so a long or crashing session cannot take the scheduler down with it.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

from marketboss.config import Settings
from marketboss.logging import get_logger
from marketboss.ml.drift import THRESHOLD_OPTIONS
from marketboss.scheduler.config import ScheduleConfig

log = get_logger(__name__)

JOBS = ("refresh", "retrain", "signals", "paper")
#: The batch jobs the live loop replaces when [live] is enabled: it makes and sends each bar's signals itself.
REPLACED_BY_LIVE = ("signals", "paper")

#: Runs a `marketboss` command line (without the program name) in this process; returns its exit code.
Runner = Callable[[list[str]], int]


def refresh_source(cfg: ScheduleConfig, settings: Settings, data: Path) -> str:
    """Where the refresh job's bars come from: `auto` is Alpaca with credentials, else synthetic bars, but only
    into a data file not there yet (an imported or fetched one was replaced by synthetic bars without a word);
    `synth` asks for them whatever the file holds."""
    src = cfg.refresh.source
    if src == "auto":
        if settings.has_alpaca_credentials:
            return "alpaca"
        if data.exists():
            log.info("refresh_keeps_data", data=str(data), reason="no Alpaca credentials: source auto writes "
                     "synthetic bars only into a data file not there yet (source = \"synth\" replaces it)")
            return "none"
        return "synth"
    return src


def child_command(argv: list[str]) -> list[str]:
    """A `marketboss` command line as a child process of this very interpreter (its environment, its venv)."""
    return [sys.executable, "-m", "marketboss", *argv]


def _strategy_params(strategy: str, params: list[str], cfg: ScheduleConfig, models: str) -> list[str]:
    """The --param options; the ml strategy gets the retrain job's model (and models_dir) unless given."""
    params = list(params)
    if strategy == "ml":
        given = {p.partition("=")[0].strip() for p in params}
        if cfg.retrain.model and "model" not in given:
            params.append(f"model={cfg.retrain.model}")
        if cfg.models_dir and "models_dir" not in given:
            params.append(f"models_dir={models}")
    return [a for p in params for a in ("--param", p)]


def live_command(cfg: ScheduleConfig, settings: Settings) -> list[str]:
    """The live loop's `marketboss` arguments: it stops by itself after the close of the session in progress."""
    lv = cfg.live
    models = str(cfg.models_dir or settings.models_dir)
    return ["live", "--strategy", lv.strategy, *_strategy_params(lv.strategy, lv.params, cfg, models),
            "--symbols", ",".join(lv.symbols), "--timeframe", lv.timeframe, "--until", "close", *lv.args]  # fmt: skip


def command(job: str, cfg: ScheduleConfig, settings: Settings, today: date) -> list[str] | None:
    """The job's `marketboss` arguments for the session `today` (None: nothing to do)."""
    data = str(cfg.data_file or settings.market_data)
    signals = str(cfg.signals_file or settings.signals)
    models = str(cfg.models_dir or settings.models_dir)
    if job == "refresh":
        r = cfg.refresh
        src = refresh_source(cfg, settings, Path(data))
        if src == "none":
            return None
        if src == "synth":
            return ["data", "synth", "--symbols", r.symbols, "--start", r.start, "--end", today.isoformat(),
                    "--timeframe", r.timeframe, "--seed", str(r.seed), "--output", data]  # fmt: skip
        from marketboss.data.synth import symbols_from

        start = today - timedelta(days=r.lookback_days)
        return ["data", "fetch", "--symbols", ",".join(symbols_from(r.symbols)), "--start", start.isoformat(),
                "--timeframe", r.timeframe, "--feed", r.feed, "--output", data]  # fmt: skip
    if job == "retrain":
        rt = cfg.retrain
        argv = ["retrain", "--data", data, "--models-dir", models]
        argv += ["--model", rt.model_type, "--horizon", str(rt.horizon)]
        argv += ["--if-needed"] if rt.if_needed else []
        argv += ["--name", rt.model] if rt.model else []
        for field, value in rt.thresholds.model_dump().items():
            argv += [THRESHOLD_OPTIONS[field], str(value)]
        return argv
    if job == "signals":
        s = cfg.signals
        return ["signals", "generate", "--data", data, "--strategy", s.strategy, "--output", signals,
                *_strategy_params(s.strategy, s.params, cfg, models)]  # fmt: skip
    if job == "paper":
        return ["paper", "--signals", signals, "--data", data, *cfg.paper.args]
    raise ValueError(f"unknown job {job!r}")


def run_job(job: str, cfg: ScheduleConfig, settings: Settings, today: date, run: Runner) -> bool:
    """Run one job now; True when it succeeded (or had nothing to do). Never raises: a failure is logged."""
    argv = command(job, cfg, settings, today)
    if argv is None:
        log.info("job_skipped", job=job, reason="nothing to do")
        return True
    log.info("job_start", job=job, session=today.isoformat(), command=shlex.join(["marketboss", *argv]))
    try:
        if job == "paper":
            rc = subprocess.run(child_command(argv), timeout=cfg.paper.timeout_seconds, check=False).returncode
        else:
            rc = run(argv)
    except subprocess.TimeoutExpired:
        log.error("job_failed", job=job, error=f"timed out after {cfg.paper.timeout_seconds:g} s")
        return False
    except Exception as exc:  # the scheduler outlives any one job
        log.error("job_failed", job=job, error_type=type(exc).__name__, error=str(exc))
        return False
    if rc != 0:
        log.error("job_failed", job=job, exit_code=rc)
        return False
    log.info("job_done", job=job)
    return True

