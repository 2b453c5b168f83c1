"""The scheduler: jobs fire on NYSE sessions only (no weekends, no holidays), at wall-clock times in New York;
the job set, its configuration, and `--once` running the day's jobs for real (without waiting for a clock)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from marketboss.cli import app
from marketboss.cli.common import run_guarded
from marketboss.config import Settings
from marketboss.data.io import read_bars, read_jsonl_records
from marketboss.errors import InputError
from marketboss.logging import configure
from marketboss.ml import registry
from marketboss.ml.drift import THRESHOLD_OPTIONS, Thresholds
from marketboss.scheduler import (
    ScheduleConfig,
    SessionTrigger,
    build_scheduler,
    load_config,
    next_session_time,
    plan,
    run_once,
    session_times,
)
from marketboss.scheduler.jobs import command
from marketboss.signals import read_signals_frame

NY = ZoneInfo("America/New_York")


def run_command(argv: list[str]) -> int:
    """The scheduler's runner, as the `schedule` command hands it: the command line run in this process."""
    return run_guarded(lambda: app(args=argv, prog_name="marketboss", standalone_mode=True))


@pytest.fixture(autouse=True)
def _logs_to_this_tests_stderr() -> None:
    """Jobs log before the CLI configures logging; bind the logger to the stderr this test captures."""
    configure("warning")


def test_jobs_skip_independence_day_and_the_weekend() -> None:
    fires = session_times(time(16, 15), NY, date(2024, 7, 1), date(2024, 7, 9))
    assert [f.date() for f in fires] == [date(2024, 7, d) for d in (1, 2, 3, 5, 8, 9)]  # not Thu 4th, Sat 6, Sun 7
    assert all(f.tzinfo == NY and (f.hour, f.minute) == (16, 15) for f in fires)
    assert fires[0].astimezone(UTC) == datetime(2024, 7, 1, 20, 15, tzinfo=UTC)  # EDT: UTC-4
    # the early close on 3 July is still a session: the after-close jobs run
    assert date(2024, 7, 3) in [f.date() for f in fires]
    # Christmas, New Year and Good Friday are holidays too
    holidays = session_times(time(9, 31), NY, date(2024, 3, 28), date(2024, 4, 1))
    assert [f.date() for f in holidays] == [date(2024, 3, 28), date(2024, 4, 1)]


def test_the_trigger_moves_from_session_to_session_across_a_holiday_a_weekend_and_dst() -> None:
    trig = SessionTrigger(time(16, 15), NY)
    after_close = datetime(2024, 7, 3, 17, 0, tzinfo=NY)  # Wednesday, after today's job time
    first = trig.get_next_fire_time(None, after_close)
    assert first == datetime(2024, 7, 5, 16, 15, tzinfo=NY)  # Thursday the 4th is skipped
    second = trig.get_next_fire_time(first, first + timedelta(seconds=5))
    assert second == datetime(2024, 7, 8, 16, 15, tzinfo=NY)  # then the weekend
    before = datetime(2024, 7, 8, 16, 14, 59, tzinfo=NY)
    assert trig.get_next_fire_time(None, before) == second  # the same day when the time is still ahead
    # across the switch to daylight saving (Sun 10 March 2024) the wall-clock time stays, UTC moves an hour
    fri = next_session_time(datetime(2024, 3, 8, 12, tzinfo=NY), time(16, 15), NY)
    assert fri is not None
    mon = next_session_time(fri + timedelta(microseconds=1), time(16, 15), NY)
    assert mon is not None
    assert fri.astimezone(UTC).hour == 21 and mon.astimezone(UTC).hour == 20 and mon.date() == date(2024, 3, 11)
    # a missed run is reported as missed (APScheduler then coalesces it) rather than silently skipped
    assert trig.get_next_fire_time(first, datetime(2024, 7, 9, 12, tzinfo=NY)) == second


def test_the_scheduler_holds_one_session_job_per_enabled_step() -> None:
    cfg = ScheduleConfig.model_validate({"paper": {"enabled": False}, "retrain": {"at": "17:05"}})
    sched = build_scheduler(cfg, run_command)
    jobs = {j.id: j for j in sched.get_jobs()}
    assert set(jobs) == {"refresh", "retrain", "signals"}
    assert all(isinstance(j.trigger, SessionTrigger) for j in jobs.values())
    assert jobs["retrain"].trigger.at == time(17, 5) and jobs["refresh"].trigger.at == time(16, 15)
    assert not sched.running
    saturday = datetime(2024, 7, 6, 12, tzinfo=NY)
    assert plan(cfg, saturday) == [
        (datetime(2024, 7, 8, 16, 15, tzinfo=NY), "refresh"),
        (datetime(2024, 7, 8, 16, 45, tzinfo=NY), "signals"),
        (datetime(2024, 7, 8, 17, 5, tzinfo=NY), "retrain"),
    ]


def test_config_file_and_its_mistakes(tmp_path: Path) -> None:
    good = tmp_path / "s.toml"
    good.write_text('timezone = "America/New_York"\n[refresh]\nsource = "none"\nat = 16:20:00\n'
                    '[retrain]\nmodel = "demo"\n[retrain.thresholds]\nmax_age_days = 7\n'
                    '[signals]\nparams = ["threshold=0.001"]\n[paper]\nargs = ["--max-trades", "5"]\n')  # fmt: skip
    cfg = load_config(good)
    assert cfg.refresh.at == time(16, 20) and cfg.retrain.thresholds.max_age_days == 7
    assert cfg.signals.params == ["threshold=0.001"] and cfg.paper.args == ["--max-trades", "5"]
    for text, message in [
        ('[refresh]\nsource = "yahoo"\n', "field 'refresh.source'"),
        ('[retrain.thresholds]\npsi = -1\n', "field 'retrain.thresholds.psi': Input should be greater than 0"),
        ('[retrain]\nmodel = "../x"\n', "field 'retrain.model': model name '../x' must be letters, digits"),
        ("[paper]\nwhen = 1\n", "field 'paper.when': Extra inputs are not permitted"),
        ('timezone = "Mars/Olympus"\n', "unknown time zone 'Mars/Olympus'"),
        ("[refresh\n", "invalid TOML"),
        # a number was seconds after midnight (1615: 00:26), an offset dropped (16:45 New York)
        ("[refresh]\nat = 1615\n", "field 'refresh.at': expected a time of day such as \"16:15\""),
        ("[retrain]\nat = 16.5\n", "field 'retrain.at': expected a time of day"),
        ('[signals]\nat = "16:45:00+02:00"\n', "field 'signals.at': expected a time of day"),
        ("[paper]\nat = 2024-01-02T09:31:00+02:00\n", "field 'paper.at': expected a time of day"),
        ('[refresh]\nat = "25:99"\n', "field 'refresh.at'"),
    ]:
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(InputError, match=r"bad\.toml") as exc:
            load_config(bad)
        assert message in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(InputError, match="file not found"):
        load_config(tmp_path / "missing.toml")
    latin = tmp_path / "latin.toml"
    latin.write_bytes('[refresh]\nsymbols = "CAFÉ"\n'.encode("latin-1"))
    with pytest.raises(InputError, match=r"latin\.toml: not UTF-8 text"):
        load_config(latin)
    quoted = tmp_path / "quoted.toml"
    quoted.write_text('[refresh]\nat = "16:20"\n')
    assert load_config(quoted).refresh.at == time(16, 20)


def test_each_job_is_the_marketboss_command_a_user_would_run(workdir: Path) -> None:  # no data file there yet
    cfg = ScheduleConfig.model_validate({
        "refresh": {"symbols": "AAPL,MSFT", "start": "2023-01-01"}, "retrain": {"model": "demo"},
        "signals": {"params": ["threshold=0.001"]}, "paper": {"args": ["--max-trades", "5"]},
    })  # fmt: skip
    s = Settings()
    day = date(2024, 7, 5)
    assert command("refresh", cfg, s, day) == [
        "data", "synth", "--symbols", "AAPL,MSFT", "--start", "2023-01-01", "--end", "2024-07-05", "--timeframe",
        "1Day", "--seed", "7", "--output", "data/market_data.jsonl"]  # fmt: skip
    with_keys = Settings(APCA_API_KEY_ID="k" * 20, APCA_API_SECRET_KEY="s" * 40)
    fetch = command("refresh", cfg, with_keys, day)
    assert fetch is not None and fetch[:4] == ["data", "fetch", "--symbols", "AAPL,MSFT"]
    assert fetch[fetch.index("--start") + 1] == "2019-07-07"  # 1825 days back
    retrain = command("retrain", cfg, s, day)
    assert retrain is not None and retrain[:1] == ["retrain"] and "--if-needed" in retrain
    assert retrain[retrain.index("--name") + 1] == "demo"
    assert set(THRESHOLD_OPTIONS) == set(Thresholds.model_fields)  # every threshold reaches the command
    assert command("signals", cfg, s, day) == [
        "signals", "generate", "--data", "data/market_data.jsonl", "--strategy", "ml", "--output", "data/signals.jsonl",
        "--param", "threshold=0.001", "--param", "model=demo"]  # fmt: skip
    assert command("paper", cfg, s, day) == ["paper", "--signals", "data/signals.jsonl", "--data",
                                             "data/market_data.jsonl", "--max-trades", "5"]  # fmt: skip
    assert command("refresh", cfg.model_copy(update={"refresh": cfg.refresh.model_copy(update={"source": "none"})}),
                   s, day) is None  # fmt: skip


def test_refresh_without_credentials_never_writes_synthetic_bars_over_a_data_file(workdir: Path) -> None:
    """`schedule --once` with the default `source = "auto"` and no credentials replaced a user's imported bars
    with synthetic ones; it writes them only into a file not there yet, unless `source = "synth"` asks."""
    auto = ScheduleConfig.model_validate({"refresh": {"symbols": "2"}})
    day = date(2024, 7, 5)
    assert command("refresh", auto, Settings(), day)[:2] == ["data", "synth"]  # type: ignore[index]
    (workdir / "data").mkdir()
    (workdir / "data" / "market_data.jsonl").write_text("")
    assert command("refresh", auto, Settings(), day) is None
    synth = auto.model_copy(update={"refresh": auto.refresh.model_copy(update={"source": "synth"})})
    assert command("refresh", synth, Settings(), day)[:2] == ["data", "synth"]  # type: ignore[index]


def test_once_runs_the_days_jobs_in_order(workdir: Path) -> None:
    """Refresh (seeded synthetic bars up to today), first training, signals; paper trading is left out here
    (the executor's own tests drive the broker)."""
    cfg_file = workdir / "schedule.toml"
    cfg_file.write_text('[refresh]\nsource = "synth"\nsymbols = "2"\nstart = "2025-01-01"\n'
                        '[retrain]\nmodel = "daily"\nmodel_type = "ridge"\n[paper]\nenabled = false\n')  # fmt: skip
    cfg = load_config(cfg_file)
    assert run_once(cfg, run_command) == []
    bars = read_bars(workdir / "data" / "market_data.jsonl")
    assert bars["symbol"].n_unique() == 2
    last: datetime = bars["timestamp"].max()  # type: ignore[assignment]
    assert last >= datetime.now(UTC) - timedelta(days=6)  # up to the latest session
    decisions = read_jsonl_records(workdir / "models" / "daily" / "decisions.jsonl")
    assert [d["reasons"] for d in decisions] == [["no model yet"]]
    assert registry.metadata(workdir / "models", "daily")["model_type"] == "ridge"
    sig = read_signals_frame(workdir / "data" / "signals.jsonl")
    assert set(sig["strategy"]) <= {"ml"}  # may be empty: only the last bars are out of sample

    # the same day again: the model is kept (nothing new), and a failing step stops the sequence
    broken = cfg.model_copy(update={"signals": cfg.signals.model_copy(update={"strategy": "nope"})})
    assert run_once(broken, run_command) == ["signals"]
    decisions = read_jsonl_records(workdir / "models" / "daily" / "decisions.jsonl")
    assert [d["decision"] for d in decisions] == ["retrain", "keep"]


def test_schedule_once_on_the_command_line_reports_a_failed_job(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg_file = workdir / "schedule.toml"
    cfg_file.write_text('[refresh]\nsource = "none"\n[retrain]\nenabled = false\n[paper]\nenabled = false\n')
    code = run_guarded(lambda: app(["schedule", "--once", "--config", str(cfg_file)], prog_name="marketboss",
                                   standalone_mode=True))  # fmt: skip
    assert code == 2
    assert "error: job(s) failed: signals" in capsys.readouterr().err  # no bars file to generate signals from


def test_schedule_once_runs_its_in_process_jobs_from_the_marketboss_command(workdir: Path) -> None:
    """The real entry point (`marketboss` builds only the command it is given): the jobs run in this process
    (refresh, signals) are other commands, and each found none ("No such command 'signals'") until the runner
    built their own app."""
    import subprocess
    import sys

    (workdir / "schedule.toml").write_text('[refresh]\nsource = "synth"\nsymbols = "3"\n[retrain]\nenabled = false\n'
                                           '[signals]\nstrategy = "ma_crossover"\n[paper]\nenabled = false\n')
    done = subprocess.run([sys.executable, "-m", "marketboss", "--log-format", "json", "schedule", "--once",
                           "--config", "schedule.toml"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert read_bars(workdir / "data" / "market_data.jsonl")["symbol"].n_unique() == 3
    assert (workdir / "data" / "signals.jsonl").stat().st_size > 0
