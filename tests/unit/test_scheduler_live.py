"""The scheduler's live loop: its window on each NYSE session (warm-up before the open, stop after the close, early
closes, holidays), the `marketboss live` command line it starts, its configuration's mistakes, and the supervision
of a real child process (a small Python script standing in for `marketboss live`): started, restarted after a
crash, stopped with SIGTERM, killed when it ignores SIGTERM."""

from __future__ import annotations

import sys
import threading
import time as clock
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from marketboss.cli import app
from marketboss.cli.common import run_guarded
from marketboss.config import Settings
from marketboss.errors import InputError
from marketboss.logging import configure
from marketboss.scheduler import (
    LiveTrigger,
    Outcome,
    ScheduleConfig,
    Supervision,
    build_scheduler,
    load_config,
    plan,
    plan_lines,
    session_window,
    supervise,
)
from marketboss.scheduler.jobs import child_command, live_command
from marketboss.scheduler.service import enabled_jobs, live_supervision, run_live_today

NY = ZoneInfo("America/New_York")
MIN30, MIN10 = timedelta(minutes=30), timedelta(minutes=10)
LIVE = {"enabled": True, "strategy": "ma_crossover", "symbols": ["AAPL", "MSFT"], "timeframe": "5Min"}


@pytest.fixture(autouse=True)
def _logs_to_this_tests_stderr() -> None:
    configure("warning")


def live_cfg(**live: object) -> ScheduleConfig:
    return ScheduleConfig.model_validate({"live": {**LIVE, **live}})


def ny(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2024, month, day, hour, minute, tzinfo=NY)


def test_the_live_window_runs_from_the_warm_up_to_the_close_plus_the_grace() -> None:
    w = session_window(ny(7, 8, 6), MIN30, MIN10, NY)
    assert w is not None and w.session == date(2024, 7, 8)
    assert (w.start, w.open, w.close, w.stop) == (ny(7, 8, 9), ny(7, 8, 9, 30), ny(7, 8, 16), ny(7, 8, 16, 10))
    # the day after Thanksgiving closes at 13:00: the live loop is stopped after that close, not at 16:10
    fri = session_window(ny(11, 29, 6), timedelta(minutes=45), timedelta(minutes=5), NY)
    assert fri is not None and fri.session == date(2024, 11, 29)
    assert (fri.start, fri.close, fri.stop) == (ny(11, 29, 8, 45), ny(11, 29, 13), ny(11, 29, 13, 5))
    # Thanksgiving itself is a holiday: no window that day, the next is Friday's
    thu = session_window(ny(11, 28, 6), MIN30, MIN10, NY)
    assert thu is not None and thu.session == date(2024, 11, 29)
    # during a session its own window is the one; after its close, the next session's
    mid = session_window(ny(7, 8, 15, 59), timedelta(0), timedelta(0), NY)
    after = session_window(ny(7, 8, 16), timedelta(0), timedelta(0), NY)
    assert mid is not None and mid.session == date(2024, 7, 8)
    assert after is not None and after.session == date(2024, 7, 9)
    # the exchange's times, shown in the job's zone: 09:00 New York is 14:00 in London (both on summer time)
    london = session_window(ny(7, 8, 6), MIN30, timedelta(0), ZoneInfo("Europe/London"))
    assert london is not None and london.start == w.start and (london.start.hour, london.start.minute) == (14, 0)


def test_the_live_trigger_fires_once_a_session_and_at_once_when_started_mid_session() -> None:
    trig = LiveTrigger(timedelta(minutes=30), timedelta(minutes=10), NY)
    wed_11am = datetime(2024, 11, 27, 11, tzinfo=NY)
    first = trig.get_next_fire_time(None, wed_11am)
    assert first == wed_11am  # the day's session is in progress: start now, not tomorrow
    fires = [first]
    for _ in range(3):
        nxt = trig.get_next_fire_time(fires[-1], fires[-1])
        assert nxt is not None
        fires.append(nxt)
    assert fires[1:] == [datetime(2024, 11, 29, 9, 0, tzinfo=NY), datetime(2024, 12, 2, 9, 0, tzinfo=NY),
                         datetime(2024, 12, 3, 9, 0, tzinfo=NY)]  # fmt: skip  # not Thanksgiving, not the weekend
    assert trig.get_next_fire_time(None, datetime(2024, 11, 27, 16, 5, tzinfo=NY)) == fires[1]  # after the close


def test_with_live_the_signals_and_paper_jobs_are_not_scheduled_and_the_plan_shows_its_start_and_stop() -> None:
    cfg = live_cfg()
    assert enabled_jobs(cfg) == ["refresh", "retrain"]
    assert enabled_jobs(ScheduleConfig()) == ["refresh", "retrain", "signals", "paper"]  # off by default
    sched = build_scheduler(cfg, lambda argv: 0)
    jobs = {j.id: j for j in sched.get_jobs()}
    assert set(jobs) == {"refresh", "retrain", "live"} and isinstance(jobs["live"].trigger, LiveTrigger)
    wed_night = datetime(2024, 11, 27, 20, tzinfo=NY)
    assert plan(cfg, wed_night) == [
        (datetime(2024, 11, 29, 9, 0, tzinfo=NY), "live"),
        (datetime(2024, 11, 29, 13, 10, tzinfo=NY), "live stop"),  # the early close
        (datetime(2024, 11, 29, 16, 15, tzinfo=NY), "refresh"),
        (datetime(2024, 11, 29, 16, 30, tzinfo=NY), "retrain"),
    ]
    lines = plan_lines(cfg, wed_night)
    assert lines[0].startswith("next live      Fri 2024-11-29 09:00 EST (in 37h 00m)")
    assert "closes 13:00" in lines[-1] and "ma_crossover on AAPL,MSFT, 5Min bars" in lines[-1]
    assert not any("signals" in line or "paper" in line for line in lines)


def test_the_live_command_line() -> None:
    cfg = ScheduleConfig.model_validate({"live": {**LIVE, "symbols": "aapl, msft", "params": ["fast=10", "slow=30"],
                                                  "args": ["--broker", "local"]}})  # fmt: skip
    assert live_command(cfg, Settings()) == [
        "live", "--strategy", "ma_crossover", "--param", "fast=10", "--param", "slow=30", "--symbols", "AAPL,MSFT",
        "--timeframe", "5Min", "--until", "close", "--broker", "local"]  # fmt: skip
    # the ml strategy gets the retrain job's model, as the signals job gives it
    ml = ScheduleConfig.model_validate({"retrain": {"model": "demo"}, "live": {**LIVE, "strategy": "ml"}})
    argv = live_command(ml, Settings())
    assert argv[argv.index("--param") + 1] == "model=demo"
    # started as the paper job's child is: this interpreter running the marketboss module
    assert child_command(argv)[:3] == [sys.executable, "-m", "marketboss"]
    w = session_window(datetime(2024, 11, 29, 6, tzinfo=NY), timedelta(minutes=30), timedelta(minutes=10), NY)
    assert w is not None
    sup = live_supervision(live_cfg(max_restarts=5, kill_grace_seconds=20, restart=False), Settings(), w)
    assert sup.argv == child_command(live_command(live_cfg(), Settings()))
    assert (sup.restart_until, sup.stop_at) == (w.close, w.stop)
    assert (sup.max_restarts, sup.kill_after_seconds, sup.restart) == (5, 20, False)


def test_live_config_and_its_mistakes(tmp_path: Path) -> None:
    good = tmp_path / "s.toml"
    good.write_text('[live]\nenabled = true\nstrategy = "momentum"\nsymbols = "SPY,QQQ"\ntimeframe = "1Min"\n'
                    'warmup_minutes = 45\nstop_grace_minutes = 5\nmax_restarts = 1\n')  # fmt: skip
    lv = load_config(good).live
    assert (lv.symbols, lv.timeframe, lv.warmup_minutes, lv.stop_grace_minutes, lv.restart, lv.max_restarts) == (
        ["SPY", "QQQ"], "1Min", 45, 5, True, 1)  # fmt: skip
    assert load_config(None).live.enabled is False  # off unless asked for; nothing else required then
    on = '[live]\nenabled = true\nstrategy = "momentum"\nsymbols = ["SPY"]\n'
    for text, message in [
        ('[live]\nenabled = true\nsymbols = ["SPY"]\n', "field 'live.strategy': a strategy is required"),
        ('[live]\nenabled = true\nstrategy = "momentum"\n', "field 'live.symbols': symbols are required"),
        (on + 'timeframe = "2Min"\n', "field 'live.timeframe': '2Min' is not one of 1Min, 5Min, 15Min, 1Hour, 1Day"),
        ('[live]\nsymbols = "SPY,SP Y"\n', "field 'live.symbols': symbol 'SP Y' is not a symbol"),
        ('[live]\nsymbols = "SPY,spy"\n', "field 'live.symbols': symbols must be distinct"),
        (on + 'params = ["fast"]\n', "field 'live.params': 'fast' must look like key=value"),
        (on + "warmup_minutes = -5\n", "field 'live.warmup_minutes': Input should be greater than or equal to 0"),
        (on + "stop_grace_minutes = 'soon'\n", "field 'live.stop_grace_minutes'"),
        (on + "max_restarts = -1\n", "field 'live.max_restarts'"),
        (on + 'args = ["--until", "never"]\n', "field 'live.args': --until is the scheduler's"),
        (on + "start_at = 1\n", "field 'live.start_at': Extra inputs are not permitted"),
    ]:
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(InputError, match=r"bad\.toml") as exc:
            load_config(bad)
        assert message in str(exc.value) and "\n" not in str(exc.value)


def test_the_readmes_live_example_is_a_valid_config(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    example = readme.split("```toml\n[live]\n", 1)[1].split("```", 1)[0]
    (tmp_path / "schedule.toml").write_text("[live]\n" + example)
    cfg = load_config(tmp_path / "schedule.toml")
    assert cfg.live.enabled and cfg.live.symbols == ["AAPL", "MSFT"] and cfg.live.timeframe == "5Min"
    assert live_command(cfg, Settings())[-2:] == ["--until", "close"]


def test_schedule_on_the_command_line_plans_live_and_checks_its_strategy(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg_file = workdir / "schedule.toml"
    cfg_file.write_text('[live]\nenabled = true\nstrategy = "ma_crossover"\nsymbols = "AAPL"\n')
    code = run_guarded(lambda: app(["schedule", "--plan", "--config", str(cfg_file)], prog_name="marketboss",
                                   standalone_mode=True))  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "next live " in out and "next live stop" in out and "next signals" not in out
    cfg_file.write_text('[live]\nenabled = true\nstrategy = "no_such_strategy"\nsymbols = "AAPL"\n')
    code = run_guarded(lambda: app(["schedule", "--once", "--config", str(cfg_file)], prog_name="marketboss",
                                   standalone_mode=True))  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and f"error: {cfg_file}: live.strategy:" in err and "no_such_strategy" in err


def test_once_says_so_when_there_is_no_live_session_today(capsys: pytest.CaptureFixture[str]) -> None:
    stop = threading.Event()
    saturday = datetime(2024, 11, 30, 10, tzinfo=NY)
    assert run_live_today(live_cfg(), stop, now=saturday) is True  # nothing to do is not a failure
    out = capsys.readouterr().out
    assert "no live session today" in out and "the next starts Mon 2024-12-02 09:00 EST" in out
    after_close = datetime(2024, 11, 29, 13, 30, tzinfo=NY)  # the early close has passed
    assert run_live_today(live_cfg(), stop, now=after_close) is True
    out = capsys.readouterr().out
    assert "no live session today" in out and "the next starts Mon 2024-12-02 09:00 EST" in out


# --- supervision of a real child process -------------------------------------------------------------------------

STAND_IN = '''
import os, signal, sys, time
from pathlib import Path

log = Path(sys.argv[1])
mode = sys.argv[2]
runs = log.read_text().count("started") if log.exists() else 0


def note(what):
    with log.open("a") as f:
        f.write(f"{what} {os.getpid()}\\n")


if mode == "ignore_term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda s, f: (note("sigterm"), sys.exit(0)))
note("started")
if mode == "crash_once" and runs == 0 or mode == "crash":
    sys.exit(3)
if mode == "crash_once":
    note("done")
    sys.exit(0)
while True:
    time.sleep(0.05)
'''


def stand_in(tmp_path: Path, mode: str, **times: object) -> tuple[Supervision, Path]:
    script, log = tmp_path / "live_stand_in.py", tmp_path / f"{mode}-{len(list(tmp_path.glob('*.log')))}.log"
    script.write_text(STAND_IN)
    later = datetime.now(UTC) + timedelta(hours=1)
    sup = Supervision([sys.executable, str(script), str(log), mode], restart_until=later, stop_at=later,
                      kill_after_seconds=30.0, backoff_seconds=0.05)  # fmt: skip
    return replace(sup, **times), log  # type: ignore[arg-type]


def lines(log: Path) -> list[str]:
    return [line.split()[0] for line in log.read_text().splitlines()]


def test_a_crashed_child_is_started_again_and_its_clean_exit_ends_the_session(tmp_path: Path) -> None:
    sup, log = stand_in(tmp_path, "crash_once")
    out = supervise(sup)
    assert out.ended == "exited" and out.ok and out.exit_codes == [3, 0]
    assert len(set(out.pids)) == 2 and lines(log) == ["started", "started", "done"]


def test_restarts_are_bounded_and_can_be_turned_off(tmp_path: Path) -> None:
    sup, log = stand_in(tmp_path, "crash", max_restarts=2)
    out = supervise(sup)
    assert out.ended == "failed" and not out.ok and out.exit_codes == [3, 3, 3] and lines(log) == ["started"] * 3
    no_restart, log2 = stand_in(tmp_path, "crash_once", restart=False)
    out = supervise(no_restart)
    assert out.ended == "failed" and out.exit_codes == [3] and lines(log2) == ["started"]
    # a crash after the close is not restarted: the session is over
    closed, log3 = stand_in(tmp_path, "crash_once", restart_until=datetime.now(UTC) - timedelta(seconds=1))
    assert supervise(closed).exit_codes == [3] and lines(log3) == ["started"]


def test_a_child_still_running_at_the_stop_time_gets_sigterm_and_stops_cleanly(tmp_path: Path) -> None:
    """The stand-in takes well under a second to start; the stop time is generous so its handler is in place."""
    sup, log = stand_in(tmp_path, "run", stop_at=datetime.now(UTC) + timedelta(seconds=4))
    out = supervise(sup)
    assert out.ended == "terminated" and out.ok and out.exit_codes == [0] and len(out.pids) == 1
    assert lines(log) == ["started", "sigterm"]
    assert datetime.now(UTC) >= sup.stop_at  # not before its time


def test_a_child_that_ignores_sigterm_is_killed_when_the_scheduler_stops(tmp_path: Path) -> None:
    sup, log = stand_in(tmp_path, "ignore_term", kill_after_seconds=0.5)
    stop = threading.Event()
    result: list[Outcome] = []
    runner = threading.Thread(target=lambda: result.append(supervise(sup, stop)))
    runner.start()
    deadline = clock.monotonic() + 60
    while not (log.exists() and "started" in log.read_text()) and clock.monotonic() < deadline:
        clock.sleep(0.05)  # SIGTERM is ignored from before the child writes "started"
    stop.set()
    runner.join(60)
    assert not runner.is_alive()
    (out,) = result
    assert out.ended == "killed" and not out.ok and out.exit_codes == [-9]
    assert lines(log) == ["started"]


def test_stopping_the_scheduler_stops_a_well_behaved_child_with_sigterm_and_no_restart(tmp_path: Path) -> None:
    sup, log = stand_in(tmp_path, "run")
    stop = threading.Event()
    result: list[Outcome] = []
    runner = threading.Thread(target=lambda: result.append(supervise(sup, stop)))
    runner.start()
    deadline = clock.monotonic() + 60
    while not (log.exists() and "started" in log.read_text()) and clock.monotonic() < deadline:
        clock.sleep(0.05)
    stop.set()
    runner.join(60)
    (out,) = result
    assert out.ended == "terminated" and out.exit_codes == [0]
    assert lines(log) == ["started", "sigterm"]
