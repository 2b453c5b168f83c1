"""`marketboss live` as users run it, against a real local broker replaying a session of 1-minute bars: its orders
are the backtest's (same ids, fills within the broker's spread), a kill -9 mid-session loses and doubles nothing,
and a dropped market-data stream is recovered with the missed bars fetched from REST."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import polars as pl
import pytest

from marketboss.backtest.costs import BacktestConfig
from marketboss.backtest.engine import run_backtest
from marketboss.backtest.events import run_events
from marketboss.data.calendar import Timeframe
from marketboss.data.io import read_bars, read_jsonl_records, write_bars
from marketboss.data.market import Market
from marketboss.data.synth import synth_bars
from marketboss.execution.live_status import read_status
from marketboss.strategies.registry import create
from tests.integration.executor_fixtures import broker, broker_orders

SYMBOLS = ["AAPL", "JPM", "MSFT"]
PARAMS = ["fast=5", "slow=20"]
WINDOW = ("2024-03-05T14:30:00Z", "2024-03-05T16:00:00Z")  # the replayed 90 minutes of the second session
SPREAD_BPS = 2.0


def _env(lb: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "MARKETBOSS_"))}
    env.update(MARKETBOSS_LOG_LEVEL="warning", MARKETBOSS_BROKER_KEY_ID=lb.key_id,
               MARKETBOSS_BROKER_SECRET_KEY=lb.secret_key)  # fmt: skip
    return env


def _bars(tmp: Path) -> Path:
    path = tmp / "bars.jsonl"
    write_bars(synth_bars(SYMBOLS, "2024-03-04", "2024-03-05", "1Min", seed=5), path)
    return path


def _live(tmp: Path, lb: Any, *extra: str, strategy: str = "ma_crossover", params: list[str] = PARAMS) -> list[str]:
    return [sys.executable, "-m", "marketboss", "live", "--strategy", strategy,
            *(a for p in params for a in ("--param", p)), "--symbols", ",".join(SYMBOLS), "--timeframe", "1Min",
            "--broker-url", lb.base_url, "--replay-from", WINDOW[0][:10], "--until", WINDOW[1],
            "--signals-output", str(tmp / "live_signals.jsonl"), "--trades-output", str(tmp / "trades.jsonl"),
            "--equity-output", str(tmp / "equity.jsonl"), "--status-output", str(tmp / "status.json"),
            "--grace", "2", *extra]  # fmt: skip


def _backtest_window(data: Path, strategy: str = "ma_crossover", params: list[str] = PARAMS
                     ) -> tuple[pl.DataFrame, pl.DataFrame]:  # fmt: skip
    """The backtest of the same strategy over the same window: its signals there, and their fills."""
    bars = read_bars(data)
    signals = create(strategy, params).signals(Market.from_bars(bars))
    lo, hi = (pl.lit(t).str.to_datetime(time_zone="UTC") for t in WINDOW)
    window = signals.filter((pl.col("timestamp") >= lo) & (pl.col("timestamp") < hi))
    return window, run_backtest(bars, window).fills


def _net_fills(trades: list[dict[str, Any]]) -> dict[str, float]:
    net: Counter[str] = Counter()
    for t in trades:
        if t["qty"]:
            net[t["symbol"]] += t["qty"] if t["side"] == "BUY" else -t["qty"]
    return {s: q for s, q in net.items() if q}


def _positions(lb: Any) -> dict[str, float]:
    r = httpx.get(f"{lb.base_url}/v2/positions", headers=lb.headers, timeout=10)
    r.raise_for_status()
    return {p["symbol"]: float(p["qty"]) for p in r.json()}


def test_live_replay_trades_the_backtests_orders(tmp_path: Path) -> None:
    data = _bars(tmp_path)
    with broker(tmp_path, data, rate_limit=0, spread_bps=SPREAD_BPS) as lb:
        cmd = _live(tmp_path, lb)
        cmd[cmd.index("--equity-output") + 1] = "equity.jsonl"  # relative: the status file names it whole
        proc = subprocess.run(cmd, cwd=tmp_path, env=_env(lb), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "signals in the file" not in proc.stdout  # a signals file's count (0 here): the loop counts its own
        orders = broker_orders(lb)
        no_replay = [a for a in _live(tmp_path / "again", lb) if a not in ("--replay-from", WINDOW[0][:10])]
        refused = subprocess.run(no_replay, cwd=tmp_path, env=_env(lb), capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "has a stepped clock" in refused.stderr and refused.stderr.count("\n") == 1
    window, bt_fills = _backtest_window(data)
    logged = read_jsonl_records(tmp_path / "live_signals.jsonl")
    assert window.height >= 6  # the window holds decisions to compare
    assert [s["id"] for s in logged] == window["id"].to_list()  # the same decisions, bar by bar, in order
    trades = {t["signal_id"]: t for t in read_jsonl_records(tmp_path / "trades.jsonl")}
    assert set(trades) == set(bt_fills["signal_id"])
    # the long-only strategy's first sale of a symbol it held since the warm-up finds no shares in the account:
    # skipped, where the window's backtest, starting flat, shorted
    opening: dict[str, dict[str, Any]] = {}
    for row in window.iter_rows(named=True):
        opening.setdefault(row["symbol"], row)
    held_before = {r["id"] for r in opening.values() if r["action"] == "SELL"}
    skipped = {i for i, t in trades.items() if t["status"] == "skipped"}
    assert skipped == held_before and skipped
    assert all(trades[i]["side"] == "SELL" and trades[i]["reason"].startswith("long_only: ") for i in skipped)
    assert sorted(o["client_order_id"] for o in orders) == sorted(f"mb-{i}" for i in window["id"] if i not in skipped)
    for f in bt_fills.iter_rows(named=True):  # at the backtest's next-open price, give or take the half spread
        t = trades[f["signal_id"]]
        if f["signal_id"] in skipped:
            continue
        assert t["status"] == "filled" and t["qty"] == f["qty"]
        assert abs(t["filled_price"] / f["price"] - 1) * 1e4 <= SPREAD_BPS / 2 + 0.5
    held: Counter[str] = Counter()
    for t in read_jsonl_records(tmp_path / "trades.jsonl"):  # in the order they filled: never short
        held[t["symbol"]] += t["qty"] if t["side"] == "BUY" else -t["qty"]
        assert held[t["symbol"]] >= 0
    status = read_status(tmp_path / "status.json")
    assert status is not None and status.state == "stopped" and status.bars_seen == 90
    assert status.last_bar == "2024-03-05T15:59:00Z" and status.stream.connections == 1
    assert status.equity_log == str((tmp_path / "equity.jsonl").resolve())  # the dashboard reads it from anywhere
    equity = read_jsonl_records(tmp_path / "equity.jsonl")
    assert len(equity) >= 91  # a snapshot as the session starts, one per bar (and one per fill)
    first = equity[0]  # before anything traded: all cash, at the session's open
    assert first["timestamp"] == WINDOW[0] and first["cash"] == first["portfolio_value"] > 0
    assert f"{first['portfolio_value']:,.2f}" in proc.stdout  # the summary's equity at start
    reconcile = [sys.executable, "-m", "marketboss", "reconcile", "--data", str(data), "--signals",
                 str(tmp_path / "live_signals.jsonl"), "--trades", str(tmp_path / "trades.jsonl"),
                 "--equity", str(tmp_path / "equity.jsonl")]  # fmt: skip
    runs = [r for r in read_jsonl_records(tmp_path / "trades.journal.jsonl") if r.get("event") == "run"]
    assert [(r["timeframe"], r["long_only"], r["costs"]) for r in runs] == [
        ("1Min", True, {"spread_bps": SPREAD_BPS, "slippage_bps": 0.0})]  # the session's, and its broker's costs
    n, k = bt_fills.height, len(skipped)  # joined fill by fill on their ids
    for flag, fills, missed in (([], [n - k, n - k, 0], 0), (["--no-long-only"], [n, n - k, -k], k)):
        rec = subprocess.run([*reconcile, *flag], cwd=tmp_path, env=_env(lb), capture_output=True, text=True,
                             timeout=120)  # fmt: skip
        assert rec.returncode == 0, rec.stderr
        rows = {cells[1].strip(): [c.strip() for c in cells[2:-1]] for cells in
                (line.split("│") for line in rec.stdout.splitlines() if line.startswith("│"))}  # fmt: skip
        # long-only as the session recorded it, its backtest skips the sales the account had no shares for; told
        # otherwise, the backtest shorts them and paper missed them
        assert rows["fills"] == [str(f) for f in fills] and rows["missed in paper"][1] == str(missed), flag
        assert rows["filled at another quantity"][1] == "0"
        # valued bar by bar from its fills from that all-cash start (before, from the one session's last snapshot
        # alone: a flat curve, return 0, no correlation)
        assert rows["daily return corr."][1] != "n/a" and rows["max drawdown %"][1] != "0.0000"
    assert "as the paper runs recorded" in rec.stderr and "--spread-bps 2.0" in rec.stderr
    assert "--long-only" not in rec.stderr.split("recorded")[1]  # given: --no-long-only


def test_a_replay_restarted_after_its_clock_moved_on_sends_no_stale_signal(tmp_path: Path) -> None:
    """A replay stopped before a decision, its broker's clock then moved 10 minutes on (as `POST /admin/clock`,
    or another replay, does): the restart decides on the bars it missed, logs their signals and sends none of
    them (skipped, stale, counted in its summary), then trades from the bar that closed last."""
    data = _bars(tmp_path)
    window, _ = _backtest_window(data)
    decided = window["timestamp"].dt.epoch("us").unique().sort()
    cut = int(decided[1])  # the second bar with a decision: the first run stops before it
    iso = lambda us: datetime.fromtimestamp(us / 1e6, UTC).isoformat().replace("+00:00", "Z")  # noqa: E731
    moved = cut + 10 * 60_000_000
    with broker(tmp_path, data, rate_limit=0, spread_bps=SPREAD_BPS) as lb:
        first = _live(tmp_path, lb, "--speed", "0")
        first[first.index("--until") + 1] = iso(cut)
        proc = subprocess.run(first, cwd=tmp_path, env=_env(lb), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        stopped = read_status(tmp_path / "status.json")
        assert stopped is not None and stopped.last_bar is not None and stopped.trading_from is not None
        # run again to the same bar: it decides none, and its status keeps the session (it said no last bar, and
        # the next run started the session afresh: its first bar, its equity, the strategy flat)
        proc = subprocess.run(first, cwd=tmp_path, env=_env(lb), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        kept = read_status(tmp_path / "status.json")
        assert kept is not None and (kept.last_bar, kept.trading_from, kept.start_equity, kept.bars_seen) == (
            stopped.last_bar, stopped.trading_from, stopped.start_equity, stopped.bars_seen)  # fmt: skip
        httpx.post(f"{lb.base_url}/admin/clock", json={"timestamp": iso(moved)}, headers=lb.headers,
                   timeout=10).raise_for_status()  # fmt: skip
        again = subprocess.run(_live(tmp_path, lb, "--speed", "0"), cwd=tmp_path, env=_env(lb), capture_output=True,
                               text=True, timeout=300)  # fmt: skip
        assert again.returncode == 0, again.stderr[-2000:]
        sent = {o["client_order_id"] for o in broker_orders(lb)}
    late = window.filter(pl.col("timestamp").dt.epoch("us").is_between(cut, moved - 120_000_000))["id"].to_list()
    assert late  # decisions on the bars that closed before the clock's move and after the first run
    trades = {t["signal_id"]: t for t in read_jsonl_records(tmp_path / "trades.jsonl")}
    assert all(trades[i]["status"] == "skipped" and trades[i]["reason"].startswith("stale: ") for i in late)
    assert not sent & {f"mb-{i}" for i in late}
    assert any(f"mb-{i}" in sent for i in window.filter(pl.col("timestamp").dt.epoch("us") >= moved)["id"])
    stale_line = next(line for line in again.stdout.splitlines() if "signals stale" in line)
    assert str(len(late)) in stale_line
    # the bars caught up are snapshotted when decided, not at their closes (the account as it is now, stamped then,
    # took the log back in time)
    stamps = [r["timestamp"] for r in read_jsonl_records(tmp_path / "equity.jsonl")]
    assert stamps == sorted(stamps) and len(stamps) > len(late)


@pytest.mark.parametrize("data_bars", ["1Min", "5Min"])
def test_a_5min_replay_decides_on_the_whole_5_minutes_as_the_backtest_does(tmp_path: Path, data_bars: str) -> None:
    """5-minute bars in the live loop: aggregated from the stream's minute bars (the replay publishes a bar's five
    minutes at once), or the data's own 5-minute bars. Either way each decision is the backtest's on the 5-minute
    bars of the same minutes (ids and prices): made on the whole bar, not on its first minute."""
    minutes = synth_bars(SYMBOLS, "2024-03-04", "2024-03-05", "1Min", seed=5)
    five = (minutes.sort("timestamp").group_by_dynamic("timestamp", every="5m", group_by="symbol")
            .agg(pl.col("open").first(), pl.col("high").max(), pl.col("low").min(), pl.col("close").last(),
                 pl.col("volume").sum())
            .select(minutes.columns).sort("timestamp", "symbol"))  # fmt: skip
    data = tmp_path / "bars.jsonl"
    write_bars(minutes if data_bars == "1Min" else five, data)
    until = "2024-03-05T17:30:00Z"
    with broker(tmp_path, data, rate_limit=0, spread_bps=SPREAD_BPS) as lb:
        cmd = _live(tmp_path, lb, "--speed", "0")
        cmd[cmd.index("--timeframe") + 1], cmd[cmd.index("--until") + 1] = "5Min", until
        proc = subprocess.run(cmd, cwd=tmp_path, env=_env(lb), capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
    signals = create("ma_crossover", PARAMS).signals(Market.from_bars(five))
    lo, hi = (pl.lit(t).str.to_datetime(time_zone="UTC") for t in (WINDOW[0], until))
    window = signals.filter((pl.col("timestamp") >= lo) & (pl.col("timestamp") < hi))
    logged = read_jsonl_records(tmp_path / "live_signals.jsonl")
    assert window.height >= 4  # the window holds decisions to compare
    assert [(s["id"], s["price"]) for s in logged] == list(zip(window["id"], window["price"], strict=True))
    status = read_status(tmp_path / "status.json")
    assert status is not None and status.bars_seen == 36 and status.stream.bars_backfilled == 0  # all streamed


def test_an_event_driven_strategy_starts_flat_and_decides_as_its_backtest_from_the_sessions_start(
    tmp_path: Path,
) -> None:
    """on_bar with a trailing-stop leg and a time stop, 10 warm-up bars, stopped after 15 bars and restarted: the
    live loop's decisions are those of its run from the session's first bar (run_events' trade_from) on the
    warm-up's bars and the session's, bar by bar. The restart keeps that first bar and fetches the same warm-up
    (before: the 10 bars before the restart, so its run began elsewhere, its trade_from fell before it, and it
    sent orders the session's run never made). Its warm-up's orders were never the account's, so every order
    fills (before: the warm-up's positions left the strategy waiting, and its closes were skipped)."""
    data = _bars(tmp_path)
    spec = str(Path(__file__).resolve().parents[2] / "examples/time_trailing_stop.py") + ":TimeTrailingStop"
    params = ["hold_bars=10", "trail_percent=1", "lookback=5"]
    with broker(tmp_path, data, rate_limit=0, spread_bps=SPREAD_BPS) as lb:
        for until in ("2024-03-05T14:45:00Z", "2024-03-05T15:00:00Z"):
            proc = subprocess.run(_live(tmp_path, lb, "--until", until, "--warmup-bars", "10", strategy=spec,
                                        params=params), cwd=tmp_path, env=_env(lb), capture_output=True, text=True,
                                  timeout=300)  # fmt: skip
            assert proc.returncode == 0, proc.stderr[-2000:]
    status = read_status(tmp_path / "status.json")
    assert status is not None and status.trading_from == WINDOW[0] and status.bars_seen == 30
    end = pl.lit("2024-03-05T15:00:00Z").str.to_datetime(time_zone="UTC")
    start = datetime.fromisoformat(WINDOW[0])
    everything = read_bars(data)
    warm_up = everything.filter(pl.col("timestamp") < start).group_by("symbol").tail(10).select(everything.columns)
    bars = pl.concat([warm_up, everything.filter(pl.col("timestamp").is_between(start, end, closed="left"))])
    _, expected = run_events(Market.from_bars(bars), create(spec, params), trade_from=start)
    logged = read_jsonl_records(tmp_path / "live_signals.jsonl")
    assert expected.height >= 4 and [s["id"] for s in logged] == expected["id"].to_list()
    assert any(s.get("trail_percent") for s in logged)  # its entries carry their trailing-stop leg
    whole, _ = _backtest_window(data, spec, params)  # the run from the warm-up's start decides otherwise
    assert whole.filter(pl.col("timestamp") < end)["id"].to_list() != expected["id"].to_list()
    trades = read_jsonl_records(tmp_path / "trades.jsonl")
    assert {t["signal_id"] for t in trades} == set(expected["id"])
    assert all(t["status"] == "filled" for t in trades if t["leg"] is None)


def test_kill_9_mid_session_then_restart_loses_and_doubles_nothing(tmp_path: Path) -> None:
    data = _bars(tmp_path)
    signals_log = tmp_path / "live_signals.jsonl"
    with broker(tmp_path, data, rate_limit=0, spread_bps=SPREAD_BPS) as lb:
        cmd = _live(tmp_path, lb, "--speed", "1200")  # 20 bars a second: slow enough to be killed mid-session
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=_env(lb), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            n = sum(1 for _ in signals_log.open("rb")) if signals_log.exists() else 0
            if n >= 3:
                break
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        killed = read_status(tmp_path / "status.json")
        assert killed is not None and killed.state == "running" and killed.bars_seen < 90
        done = subprocess.run(_live(tmp_path, lb), cwd=tmp_path, env=_env(lb), capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        # the rerun's --replay-from is behind the clock the killed run moved: said, and resumed from there
        said = f"--replay-from {WINDOW[0][:10]}: the local broker's clock (its database) is at 2024-03-05 "
        assert said in done.stdout
        orders = broker_orders(lb)
        positions = _positions(lb)
    logged = [s["id"] for s in read_jsonl_records(signals_log)]
    assert len(logged) == len(set(logged))  # no decision logged twice
    window, _ = _backtest_window(data)
    assert set(logged) <= set(window["id"])  # every logged decision is the backtest's
    coids = Counter(o["client_order_id"] for o in orders)
    assert set(coids.values()) == {1}  # no order sent twice
    trades = read_jsonl_records(tmp_path / "trades.jsonl")
    recorded = Counter(t["signal_id"] for t in trades if t["leg"] is None)
    assert set(recorded.values()) == {1} and set(recorded) == set(logged)  # every decision recorded, once
    assert {f"mb-{i}" for i, t in ((t["signal_id"], t) for t in trades) if t["order_id"]} == set(coids)
    assert _net_fills(trades) == positions  # positions exact: the broker holds what the log says was filled
    for line in (tmp_path / "equity.jsonl").read_text().splitlines():
        json.loads(line)  # no torn record
    status = read_status(tmp_path / "status.json")
    assert status is not None and status.state == "stopped" and status.last_bar == "2024-03-05T15:59:00Z"


def test_a_dropped_stream_is_recovered_and_its_gap_back_filled(tmp_path: Path) -> None:
    data = _bars(tmp_path)
    status_path = tmp_path / "status.json"
    with broker(tmp_path, data, rate_limit=0, spread_bps=SPREAD_BPS) as lb:
        proc = subprocess.Popen(_live(tmp_path, lb, "--speed", "600"), cwd=tmp_path, env=_env(lb),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            st = read_status(status_path) if status_path.exists() else None
            if st is not None and st.bars_seen >= 20:
                break
            time.sleep(0.01)
        # dropped, and kept out for a second (ten bars at this speed): bars are certainly missed meanwhile
        r = httpx.post(f"{lb.base_url}/admin/streams", json={"drop": True, "refuse": True}, headers=lb.headers,
                       timeout=10)  # fmt: skip
        assert r.status_code == 200
        time.sleep(1.0)
        httpx.post(f"{lb.base_url}/admin/streams", json={"refuse": False}, headers=lb.headers, timeout=10)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
    status = read_status(status_path)
    assert status is not None and status.state == "stopped" and status.bars_seen == 90
    assert status.stream.connections >= 2  # it reconnected
    assert status.stream.gaps_backfilled >= 1 and status.stream.bars_backfilled >= 1  # what it missed came by REST
    window, _ = _backtest_window(data)
    logged = [s["id"] for s in read_jsonl_records(tmp_path / "live_signals.jsonl")]
    assert logged == window["id"].to_list()  # no decision lost to the drop


def test_the_schedulers_live_job_runs_the_real_command_and_stops_it_with_sigterm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scheduler's [live] job as it runs it (scheduler.jobs.live_command under scheduler.supervise): the child
    trades the replayed session until its stop time, then SIGTERM ends it cleanly (exit 0, open entries canceled,
    status 'stopped')."""
    from datetime import UTC, datetime, timedelta

    from marketboss.config import Settings
    from marketboss.scheduler.config import ScheduleConfig
    from marketboss.scheduler.jobs import child_command, live_command
    from marketboss.scheduler.supervise import Supervision, supervise

    data = _bars(tmp_path)
    status_path = tmp_path / "status.json"
    with broker(tmp_path, data, rate_limit=0, spread_bps=SPREAD_BPS) as lb:
        extra = _live(tmp_path, lb, "--speed", "300")[_live(tmp_path, lb).index("--broker-url"):]
        extra = [a for i, a in enumerate(extra) if a != "--until" and (i == 0 or extra[i - 1] != "--until")]
        table = {"enabled": True, "strategy": "ma_crossover", "params": PARAMS, "symbols": SYMBOLS, "args": extra}
        cfg = ScheduleConfig.model_validate({"live": table})
        argv = child_command(live_command(cfg, Settings()))
        assert argv[argv.index("--until") + 1] == "close"
        for k in [k for k in os.environ if k.startswith(("APCA_", "MARKETBOSS_"))]:
            monkeypatch.delenv(k)
        for k, v in _env(lb).items():
            monkeypatch.setenv(k, v)
        stop_at = datetime.now(UTC) + timedelta(seconds=8)
        outcome = supervise(Supervision(argv, restart_until=stop_at, stop_at=stop_at, kill_after_seconds=30))
    assert outcome.ended == "terminated" and outcome.exit_codes == [0]
    status = read_status(status_path)
    assert status is not None and status.state == "stopped" and status.stopped_by == "SIGTERM"
    assert 0 < status.bars_seen < 390 and status.open_orders == []


def test_in_real_time_it_trades_each_bar_the_stream_closes(tmp_path: Path) -> None:
    """No replay: the broker's clock runs by itself (accelerated, a minute bar every half second, as Alpaca's
    runs at one a minute) and the loop follows it, each bar closed by the stream's bar of its last minute."""
    data = _bars(tmp_path)
    with broker(tmp_path, data, rate_limit=0, spread_bps=SPREAD_BPS, clock="accelerated", speed=120,
                start="2024-03-05T15:00:00Z") as lb:  # fmt: skip
        cmd = [a for a in _live(tmp_path, lb, "--max-bars", "8") if a not in ("--replay-from", WINDOW[0][:10])]
        proc = subprocess.run(cmd, cwd=tmp_path, env=_env(lb), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
    status = read_status(tmp_path / "status.json")
    assert status is not None and status.state == "stopped" and status.bars_seen == 8
    assert status.stream.connections == 1 and status.stream.gaps_backfilled == 0  # every bar came on the stream
    assert status.last_bar is not None and "2024-03-05T15:00:00Z" < status.last_bar < "2024-03-05T17:00:00Z"
    window, _ = _backtest_window(data)
    logged = {s["id"] for s in read_jsonl_records(tmp_path / "live_signals.jsonl")} if (
        tmp_path / "live_signals.jsonl").exists() else set()  # fmt: skip
    assert logged <= set(window["id"])  # what it decided, the backtest decided on the same bars


def test_a_long_short_strategys_flips_trade_in_the_live_loop_as_in_its_backtest(tmp_path: Path) -> None:
    """Long-short from the first session's open (no position yet): entries of 10, then every crossing a flip
    (long 10 to short 10: one order of 20 in the backtest), which Alpaca refuses as one order: the loop's executor
    sends the position's shares, then the rest, and records the one order the backtest filled."""
    data = _bars(tmp_path)
    params = [*PARAMS, "long_only=false"]
    start, until = "2024-03-04T14:30:00Z", "2024-03-04T17:00:00Z"
    with broker(tmp_path, data, rate_limit=0, spread_bps=SPREAD_BPS) as lb:
        cmd = _live(tmp_path, lb, params=params)
        cmd[cmd.index("--replay-from") + 1], cmd[cmd.index("--until") + 1] = start[:10], until
        proc = subprocess.run(cmd, cwd=tmp_path, env=_env(lb), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        positions = _positions(lb)
        orders = {o["client_order_id"]: o for o in broker_orders(lb)}
    bars = read_bars(data)
    signals = create("ma_crossover", params).signals(Market.from_bars(bars))
    signals = signals.filter(pl.col("timestamp") < pl.lit(until).str.to_datetime(time_zone="UTC"))
    bt_fills = run_backtest(bars, signals).fills
    flips = bt_fills.filter(pl.col("qty") == 20)["signal_id"].to_list()
    assert len(flips) >= 3 and (bt_fills["qty"] == 10).sum() >= 1  # entries, then flips
    assert all(float(orders[f"mb-{i}-close"]["qty"]) == 10 for i in flips)  # each flip: its close, then the rest
    trades = {t["signal_id"]: t for t in read_jsonl_records(tmp_path / "trades.jsonl")}
    assert set(trades) == set(bt_fills["signal_id"])
    for f in bt_fills.iter_rows(named=True):
        t = trades[f["signal_id"]]
        assert (t["status"], t["qty"]) == ("filled", f["qty"])
        assert abs(t["filled_price"] / f["price"] - 1) * 1e4 <= SPREAD_BPS / 2 + 0.5
    assert positions == _net_fills(list(trades.values()))


def test_a_position_the_strategy_took_in_its_warm_up_is_not_traded_as_the_accounts(tmp_path: Path) -> None:
    """Long-short, starting on the second session: the warm-up (the first) left the strategy long or short 10 in
    each symbol, the account flat. Its first flip of a symbol (20 shares in the backtest) trades 10, to the
    strategy's position, not 20 past it; every later one trades whole. The account ends where the strategy is."""
    data = _bars(tmp_path)
    params = [*PARAMS, "long_only=false"]
    with broker(tmp_path, data, rate_limit=0, spread_bps=SPREAD_BPS) as lb:
        proc = subprocess.run(_live(tmp_path, lb, params=params), cwd=tmp_path, env=_env(lb), capture_output=True,
                              text=True, timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        positions = _positions(lb)
    bars = read_bars(data)
    window, _ = _backtest_window(data, params=params)
    trades = read_jsonl_records(tmp_path / "trades.jsonl")
    assert [t["signal_id"] for t in trades] == window["id"].to_list()  # each decision traded, in order
    first = {}
    for t in trades:
        first.setdefault(t["symbol"], t)
    assert len(first) == 3 and all((t["status"], t["qty"]) == ("filled", 10) for t in first.values())
    assert all((t["status"], t["qty"]) == ("filled", 20) for t in trades if t not in first.values())
    until = pl.lit(WINDOW[1]).str.to_datetime(time_zone="UTC")
    everything = create("ma_crossover", params).signals(Market.from_bars(bars))
    strategy_holds = _net_fills([{"symbol": f["symbol"], "side": f["side"], "qty": f["qty"]} for f in
                                 run_backtest(bars, everything.filter(pl.col("timestamp") < until)).fills.iter_rows(
                                     named=True)])  # fmt: skip
    assert positions == strategy_holds == _net_fills(trades)


def test_a_sale_the_day_after_a_bracketed_entry_clears_the_entrys_exits_first(tmp_path: Path) -> None:
    """Daily bars: an entry decided at a close fills at the next open while the loop waits; the next close's sale
    finds its shares held by the entry's stop and target. The loop records the filled entry (and so knows its
    exits) before sending anything new; before, the sale was refused ("insufficient qty available") and the
    account held what the strategy had sold. Seeded data where that happens (a purchase, then its sale decided at
    the next session's close)."""
    symbols = ["AAPL", "AMZN", "GOOGL", "META", "MSFT"]
    data = tmp_path / "bars.jsonl"
    write_bars(synth_bars(symbols, "2020-01-01", "2024-12-31", "1Day", seed=7), data)
    params = ["stop_loss_pct=4", "take_profit_pct=6", "sizing=weight"]
    with broker(tmp_path, data, rate_limit=0, spread_bps=SPREAD_BPS) as lb:
        cmd = [sys.executable, "-m", "marketboss", "live", "--strategy", "mean_reversion",
               *(a for p in params for a in ("--param", p)), "--symbols", ",".join(symbols), "--timeframe", "1Day",
               "--broker-url", lb.base_url, "--replay-from", "2023-06-01", "--until", "2023-07-31",
               "--signals-output", str(tmp_path / "live_signals.jsonl"), "--trades-output", str(tmp_path / "t.jsonl"),
               "--equity-output", str(tmp_path / "equity.jsonl"), "--status-output", str(tmp_path / "status.json")]
        proc = subprocess.run(cmd, cwd=tmp_path, env=_env(lb), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
    trades = [t for t in read_jsonl_records(tmp_path / "t.jsonl") if t["leg"] is None and t["status"] == "filled"]
    days = read_bars(data)["timestamp"].unique().sort().dt.strftime("%Y-%m-%d").to_list()  # UTC: midnight NY's day
    after = dict(pairwise(days))
    sold = {(t["symbol"], t["signal_timestamp"][:10]) for t in trades if t["side"] == "SELL"}
    bought = [(t["symbol"], t["signal_timestamp"][:10]) for t in trades if t["side"] == "BUY"]
    assert [(sym, day) for sym, day in bought if (sym, after[day]) in sold]  # a sale the session after the entry
    assert not [t for t in read_jsonl_records(tmp_path / "t.jsonl") if t["status"] == "rejected"]


@pytest.mark.parametrize(("day", "says"), [("2031-07-01", "is after the broker's data ends"),  # past the calendar
                                           ("2024-03-09", "is after the broker's data ends"),
                                           ("2024-03-01", "is before the broker's data starts (2024-03-04): give "
                                                          "2024-03-04 or later"),  # it said the clock was past it
                                           ("2024-3-4x", "is not a date (YYYY-MM-DD)")])  # fmt: skip
def test_a_replay_day_the_broker_cannot_replay_is_one_line(tmp_path: Path, day: str, says: str) -> None:
    data = _bars(tmp_path)
    with broker(tmp_path, data, rate_limit=0) as lb:
        cmd = _live(tmp_path, lb)
        cmd[cmd.index("--replay-from") + 1] = day
        proc = subprocess.run(cmd, cwd=tmp_path, env=_env(lb), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr == f"error: --replay-from: {day} {says}\n".replace(
        f"{day} is not", f"'{day}' is not")  # fmt: skip


def test_a_timeframe_finer_than_the_local_brokers_bars_is_one_line_before_its_clock_moves(tmp_path: Path) -> None:
    """Daily bars cannot make minute bars: said as the live loop's error (before: the bars request's `HTTP 400:
    timeframe 1Min is finer than ...`), and the broker's clock is left where it was."""
    data = tmp_path / "daily.jsonl"
    write_bars(synth_bars(SYMBOLS, "2024-05-01", "2024-06-28", "1Day", seed=5), data)
    with broker(tmp_path, data, rate_limit=0) as lb:
        before = httpx.get(f"{lb.base_url}/admin/clock", headers=lb.headers, timeout=10).json()["timestamp"]
        cmd = _live_daily(tmp_path / "out", lb, "ma_crossover", list(SYMBOLS), "2024-06-10T20:00:00Z")
        cmd[cmd.index("--timeframe") + 1] = "5Min"
        proc = subprocess.run(cmd, cwd=tmp_path, env=_env(lb), capture_output=True, text=True, timeout=120)
        after = httpx.get(f"{lb.base_url}/admin/clock", headers=lb.headers, timeout=10).json()["timestamp"]
    assert proc.returncode == 2 and proc.stderr.startswith("error: --timeframe 5Min: the local broker replays ")
    assert "of 1Day, which make no 5Min bars: pass --timeframe 1Day" in proc.stderr and proc.stderr.count("\n") == 1
    assert after == before and not (tmp_path / "out").exists()


@pytest.mark.parametrize("exits", [[], ["trail_percent=8"]], ids=["plain", "trailing_leg"])
def test_a_flip_decided_at_the_close_goes_as_its_close_then_its_rest_never_against_the_strategy(
    tmp_path: Path, exits: list[str]
) -> None:
    """Daily bars, long-short by 15 shares: every flip is decided at a close, where Alpaca takes no order through
    zero. Its close goes (filled at the open), its rest with the next bar's orders, unless the strategy decided
    again on that symbol then (the close recorded alone). Before, the flip was refused whole: 46 of 95 signals,
    the account long where the strategy was short, for weeks. The account never holds more than 15 shares of
    a symbol and ends where the strategy's backtest ends. With a trailing exit on each entry (the flip's rest
    carries it), the same: the close was followed at the open as an entry awaiting its exit, recorded as the
    whole order, and the rest never sent."""
    symbols = ["AAPL", "AMZN", "GOOGL", "META", "MSFT"]
    data = tmp_path / "bars.jsonl"
    bars = synth_bars(symbols, "2020-01-01", "2024-12-31", "1Day", seed=7)
    write_bars(bars, data)
    params = ["long_only=false", "sizing=quantity", "quantity=15", *exits]
    until = "2024-07-01T00:00:00Z"
    with broker(tmp_path, data, rate_limit=0, spread_bps=SPREAD_BPS) as lb:
        cmd = [sys.executable, "-m", "marketboss", "live", "--strategy", "momentum",
               *(a for p in params for a in ("--param", p)), "--symbols", ",".join(symbols), "--timeframe", "1Day",
               "--broker-url", lb.base_url, "--replay-from", "2024-01-02", "--until", until,
               "--signals-output", str(tmp_path / "live_signals.jsonl"), "--trades-output", str(tmp_path / "t.jsonl"),
               "--equity-output", str(tmp_path / "equity.jsonl"), "--status-output", str(tmp_path / "status.json")]
        proc = subprocess.run(cmd, cwd=tmp_path, env=_env(lb), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        positions = _positions(lb)
    records = read_jsonl_records(tmp_path / "t.jsonl")
    trades = [t for t in records if not t.get("leg")]  # the signals' own (their exits' below)
    kinds = Counter((t["status"], t["qty"]) for t in trades)
    assert kinds[("filled", 30.0)] >= 5 and kinds[("partially_filled", 15.0)] >= 1
    last = max(t["signal_timestamp"] for t in trades)  # its orders still working at the stop: canceled by it
    assert {t["status"] for t in trades if t["signal_timestamp"] != last} <= {"filled", "partially_filled"}
    partial = [t for t in trades if t["status"] == "partially_filled"]  # a flip's close alone, saying why
    assert all("decided again" in t["reason"] for t in partial if t["signal_timestamp"] != last)
    assert all(t["reason"].startswith("a flip") for t in partial)  # the last bar's rests canceled at the stop
    held: Counter[str] = Counter()
    for t in sorted(records, key=lambda t: t["timestamp"]):
        held[t["symbol"]] += t["qty"] if t["side"] == "BUY" else -t["qty"]
        assert abs(held[t["symbol"]]) <= 15
    if exits:  # the flips' trailing legs worked (their rests, sent a bar late, trail from their own fills)
        assert any(t.get("leg") == "trailing_stop" and t["status"] == "filled" for t in records)
        return
    history = bars.filter(pl.col("timestamp") < pl.lit(until).str.to_datetime(time_zone="UTC"))
    strategy = _net_fills(list(run_backtest(history, create("momentum", params).signals(Market.from_bars(history)))
                               .fills.iter_rows(named=True)))  # fmt: skip
    moved_last = {t["symbol"] for t in trades if t["signal_timestamp"] == last}  # its order canceled at the stop
    assert {s: q for s, q in positions.items() if s not in moved_last} == {
        s: q for s, q in strategy.items() if s not in moved_last} and len(moved_last) < len(symbols)  # fmt: skip


def test_a_journal_left_without_its_logs_is_refused_on_another_broker(tmp_path: Path) -> None:
    """A session's trades and equity logs removed to start again on a fresh broker, its journal and signals log
    left: the restart finished the journal's orders (no trade record) at the new broker's clock, the window's
    start, each filled before the bar that decided it. Now it stops in one line before anything is written or
    sent."""
    data = _bars(tmp_path)
    with broker(tmp_path, data, rate_limit=0, spread_bps=SPREAD_BPS) as lb:
        first = subprocess.run(_live(tmp_path, lb, "--speed", "0"), cwd=tmp_path, env=_env(lb), capture_output=True,
                               text=True, timeout=300)  # fmt: skip
        assert first.returncode == 0, first.stderr[-2000:]
    assert read_jsonl_records(tmp_path / "trades.jsonl")  # it traded
    for name in ("trades.jsonl", "equity.jsonl", "status.json"):
        (tmp_path / name).unlink()
    journal = (tmp_path / "trades.journal.jsonl").read_bytes()
    (tmp_path / "other").mkdir()
    with broker(tmp_path / "other", data, rate_limit=0, spread_bps=SPREAD_BPS) as lb:
        again = subprocess.run(_live(tmp_path, lb, "--speed", "0"), cwd=tmp_path, env=_env(lb), capture_output=True,
                               text=True, timeout=300)  # fmt: skip
        sent = broker_orders(lb)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    [line] = [x for x in again.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith(f"error: {tmp_path / 'trades.journal.jsonl'}: signal sig-")
    assert "unknown to this broker" in line
    assert sent == [] and (tmp_path / "trades.journal.jsonl").read_bytes() == journal
    assert not (tmp_path / "trades.jsonl").exists() and not (tmp_path / "equity.jsonl").exists()


def test_a_restart_records_an_order_journaled_but_never_sent_as_skipped(tmp_path: Path) -> None:
    """A crash between the journal's intent and the order: the restart, which resumes after that bar, sent it
    then, a bar or more late (a stale signal). Now one the broker has no order of is recorded skipped; one it has
    is finished as before."""
    data = _bars(tmp_path)
    window, _ = _backtest_window(data)
    cut = int(window["timestamp"].dt.epoch("us").unique().sort()[2])
    iso = lambda us: datetime.fromtimestamp(us / 1e6, UTC).isoformat().replace("+00:00", "Z")  # noqa: E731
    with broker(tmp_path, data, rate_limit=0, spread_bps=SPREAD_BPS) as lb:
        first = _live(tmp_path, lb, "--speed", "0")
        first[first.index("--until") + 1] = iso(cut)
        proc = subprocess.run(first, cwd=tmp_path, env=_env(lb), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        trades = read_jsonl_records(tmp_path / "trades.jsonl")
        last = trades[-1]["signal_id"]  # as if the crash came before its order went: no answer, no order, no record
        (tmp_path / "trades.jsonl").write_text("".join(json.dumps({k: v for k, v in t.items() if k != "_line"}) + "\n"
                                                       for t in trades[:-1]))  # fmt: skip
        journal = [r for r in read_jsonl_records(tmp_path / "trades.journal.jsonl")
                   if not (r["event"] == "submitted" and r["signal_id"] == last)]  # fmt: skip
        for r in journal:
            if r["event"] == "intent" and r["signal_id"] == last:
                r["client_order_id"] = "mb-never-sent"
        (tmp_path / "trades.journal.jsonl").write_text("".join(
            json.dumps({k: v for k, v in r.items() if k != "_line"}) + "\n" for r in journal))
        again = subprocess.run(_live(tmp_path, lb, "--speed", "0"), cwd=tmp_path, env=_env(lb), capture_output=True,
                               text=True, timeout=300)  # fmt: skip
        assert again.returncode == 0, again.stderr[-2000:]
        sent = {o["client_order_id"] for o in broker_orders(lb)}
    assert "mb-never-sent" not in sent
    record = [t for t in read_jsonl_records(tmp_path / "trades.jsonl") if t["signal_id"] == last]
    assert [t["status"] for t in record] == ["skipped"] and "never sent before the restart" in record[0]["reason"]


def test_a_start_that_fails_writes_nothing(tmp_path: Path) -> None:
    """An unknown symbol (or a warm-up the broker refuses) is found before any file is opened (before: empty
    signals, trades and journal files, a status file, and an equity snapshot in the paper log)."""
    data = _bars(tmp_path)
    with broker(tmp_path, data, rate_limit=0) as lb:
        cmd = _live(tmp_path / "out", lb)
        cmd[cmd.index("--symbols") + 1] = "AAPL,ZZZZ"
        proc = subprocess.run(cmd, cwd=tmp_path, env=_env(lb), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr == "error: --symbols: the broker has no asset ZZZZ\n"
    assert not (tmp_path / "out").exists() and sorted(p.name for p in tmp_path.iterdir()) == [
        "bars.jsonl", "broker.sqlite", "broker.sqlite.lock"]  # fmt: skip


BREAKS = """
from marketboss import EventStrategy


class Breaks(EventStrategy):
    def on_bar(self, ctx):
        if ctx.time.minute == 40 and ctx.time.day == 5:
            raise {error}
"""


@pytest.mark.parametrize(("error", "said"), [
    ("ValueError('boom')", "ValueError: boom (breaks.py, line 8, in on_bar)"),
    ("ZeroDivisionError", "ZeroDivisionError: no message (breaks.py, line 8, in on_bar)"),
])  # fmt: skip
def test_a_session_whose_strategy_fails_ends_failed_saying_why(tmp_path: Path, error: str, said: str) -> None:
    """The status file a dashboard reads says `failed` and why (before: `stopped`, and for an error of the
    strategy's own code, no reason), and the command's one line names it."""
    data = _bars(tmp_path)
    (tmp_path / "breaks.py").write_text(BREAKS.format(error=error))
    with broker(tmp_path, data, rate_limit=0) as lb:
        proc = subprocess.run(_live(tmp_path, lb, strategy="breaks.py:Breaks", params=[]), cwd=tmp_path,
                              env=_env(lb), capture_output=True, text=True, timeout=120)  # fmt: skip
    # the log's records (a bar back-filled when the loop came to it late, on a loaded machine) are JSON lines
    told = [line for line in proc.stderr.splitlines() if "level" not in json.loads(line if line[:1] == "{" else "{}")]
    assert proc.returncode == 2 and told == [f"error: strategy breaks.py:Breaks raised {said}"], proc.stderr
    status = read_status(tmp_path / "status.json")
    assert status is not None and status.state == "failed" and status.last_bar == "2024-03-05T14:39:00Z"
    assert status.stopped_by == f"strategy breaks.py:Breaks raised {said}"


def _live_daily(tmp: Path, lb: Any, strategy: str, symbols: list[str], until: str) -> list[str]:
    """`marketboss live` on daily bars replayed from 2024-06-03, its files in tmp."""
    return [sys.executable, "-m", "marketboss", "live", "--strategy", strategy, "--symbols", ",".join(symbols),
            "--timeframe", "1Day", "--broker-url", lb.base_url, "--replay-from", "2024-06-03", "--until", until,
            "--signals-output", str(tmp / "s.jsonl"), "--trades-output", str(tmp / "t.jsonl"), "--equity-output",
            str(tmp / "equity.jsonl"), "--status-output", str(tmp / "status.json")]  # fmt: skip


def _reconciled(tmp: Path, data: Path) -> tuple[dict[str, list[str]], str]:
    """`marketboss reconcile` of a daily session's files in tmp (_live_daily's): its table's rows by name, and
    its output."""
    rec = subprocess.run([sys.executable, "-m", "marketboss", "reconcile", "--data", str(data), "--signals",
                          str(tmp / "s.jsonl"), "--trades", str(tmp / "t.jsonl"), "--equity",
                          str(tmp / "equity.jsonl")], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert rec.returncode == 0, rec.stderr
    rows = {cells[1].strip(): [c.strip() for c in cells[2:-1]] for cells in
            (line.split("│") for line in rec.stdout.splitlines() if line.startswith("│"))}  # fmt: skip
    return rows, rec.stdout


def _daily_session(tmp: Path, source: str, spec: str, symbols: list[str], until: str, **options: Any
                   ) -> tuple[Any, pl.DataFrame, dict[str, float]]:  # fmt: skip
    """A plug-in (`source`, saved as spec's file) live on daily bars of `symbols` replayed from 2024-06-03 up to
    `until` (a date) on the local broker (`options`), and its backtest of the same window from the session's first
    bar: (result, signals, the account's positions at the end)."""
    data = tmp / "bars.jsonl"
    write_bars(synth_bars(symbols, "2023-06-01", "2024-09-30", "1Day", seed=7), data)
    (tmp / spec.split(":")[0]).write_text(source)
    with broker(tmp, data, rate_limit=0, **options) as lb:
        proc = subprocess.run(_live_daily(tmp, lb, spec, symbols, f"{until}T00:00:00Z"), cwd=tmp, env=_env(lb),
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        positions = _positions(lb)
    status = read_status(tmp / "status.json")
    assert status is not None and status.trading_from is not None
    bars = read_bars(data).filter(pl.col("timestamp") < pl.lit(until).str.to_datetime(time_zone="UTC"))
    result, signals = run_events(Market.from_bars(bars), create(str(tmp / spec), []),
                                 trade_from=datetime.fromisoformat(status.trading_from))  # fmt: skip
    return result, signals, positions


ROTATION = """
from datetime import UTC, datetime

import numpy as np

from marketboss import EventStrategy


def week(us):
    return datetime.fromtimestamp(us / 1e6, UTC).isocalendar()[1]


class Rotation(EventStrategy):
    \"\"\"On each week's first bar: the two best 5-bar returns to 45% of equity each, the other sold.\"\"\"

    def on_bar(self, ctx):
        times = ctx.history(0).times
        if ctx.t < 5 or week(times[-1]) == week(times[-2]):
            return
        rets = [ctx.history(s).close[-1] / ctx.history(s).close[-6] - 1 for s in range(len(ctx.symbols))]
        best = set(np.argsort(rets)[-2:].tolist())
        for s in range(len(ctx.symbols)):
            if s not in best and ctx.position(s):
                ctx.target_weight(0.0, s)
        for s in sorted(best):
            ctx.target_weight(0.45, s)
"""


def test_a_rotations_purchases_count_the_sales_queued_with_them(tmp_path: Path) -> None:
    """Daily bars: a week's rotation decided at a close sells one symbol and buys another, both queued for the next
    open. The purchase is sized from the cash the sale will add, as the backtest fills the bar's sales, then its
    purchases (before: from the cash before the sale: 185 shares where the backtest bought 828)."""
    result, signals, positions = _daily_session(tmp_path, ROTATION, "rotation.py:Rotation", ["AAPL", "META", "MSFT"],
                                                "2024-09-01", spread_bps=SPREAD_BPS)  # fmt: skip
    trades = {t["signal_id"]: t for t in read_jsonl_records(tmp_path / "t.jsonl") if t["leg"] is None}
    assert set(trades) == set(signals["id"]) and len(trades) >= 10
    buys = result.fills.filter(pl.col("side") == "BUY")
    big = buys.filter(pl.col("qty") >= 100)  # the rotations' purchases (the rest: a few shares of drift)
    assert big.height >= 3
    for f in big.iter_rows(named=True):  # sized alike: the price moved from the close to the open, and the spread
        assert trades[f["signal_id"]]["qty"] == pytest.approx(f["qty"], rel=0.02), f
    held = _net_fills([{"symbol": f["symbol"], "side": f["side"], "qty": f["qty"]} for f in
                       result.fills.iter_rows(named=True)])  # fmt: skip
    assert positions.keys() == held.keys() and all(positions[s] == pytest.approx(held[s], rel=0.02) for s in held)


SHORT_AND_BUY = """
from pydantic import Field

from marketboss import EventParams, EventStrategy


class LongShort(EventParams):
    long_only: bool = Field(False)


class ShortAndBuy(EventStrategy[LongShort]):
    \"\"\"On 2024-06-10: AAPL to -50% of equity, MSFT to 90% (the short's collateral leaves it about half); on
    2024-06-17 the other way round (two flips); both closed on 2024-06-24.\"\"\"

    params_model = LongShort

    def on_bar(self, ctx):
        day = ctx.time.date().isoformat()
        if day in ("2024-06-10", "2024-06-17"):
            short, long = ("AAPL", "MSFT") if day == "2024-06-10" else ("MSFT", "AAPL")
            ctx.target_weight(-0.5, short)
            ctx.target_weight(0.9, long)
        elif day == "2024-06-24":
            ctx.close("AAPL")
            ctx.close("MSFT")
"""


def test_a_purchase_counts_the_collateral_of_a_short_queued_with_it(tmp_path: Path) -> None:
    """Daily bars: a short and a purchase decided at one close, both queued for the next open, then both flipped.
    Nothing is borrowed: the purchase is sized from the cash the short's collateral leaves, as the backtest sizes
    it (before, the live loop counted the short's proceeds but not its collateral: 90% of equity bought, gross
    1.4x; and a flip's short, sent after its close, not even that)."""
    result, _, _ = _daily_session(tmp_path, SHORT_AND_BUY, "short_and_buy.py:ShortAndBuy", ["AAPL", "MSFT"],
                                  "2024-06-29", spread_bps=SPREAD_BPS)  # fmt: skip
    trades = {t["signal_id"]: t for t in read_jsonl_records(tmp_path / "t.jsonl") if t["leg"] is None}
    entries = result.fills.filter(pl.col("timestamp") < pl.lit("2024-06-14").str.to_datetime(time_zone="UTC"))
    assert entries.select("symbol", "side").rows() == [("AAPL", "SELL"), ("MSFT", "BUY")]
    short, buy = entries.row(0, named=True), entries.row(1, named=True)
    assert buy["qty"] * buy["price"] < 0.6 * 100_000 < 0.9 * 100_000  # held back by the short's collateral
    flips = result.fills.filter(pl.col("timestamp").dt.date() == date(2024, 6, 18))
    assert flips.select("symbol", "side").rows() == [("MSFT", "SELL"), ("AAPL", "BUY")]
    for f in (short, buy, *flips.iter_rows(named=True)):  # sized alike: the price moved from the close to the
        assert trades[f["signal_id"]]["qty"] == pytest.approx(f["qty"], rel=0.02), f  # open, and the spread


TRAILING = """
from marketboss import EventStrategy
from marketboss.indicators import rsi


class Trailing(EventStrategy):
    \"\"\"RSI under 45: buy 10 with a 3% trailing stop leg.\"\"\"

    def indicators(self, bars):
        return {"rsi": rsi(bars.close, 14)}

    def on_bar(self, ctx):
        for s in range(len(ctx.symbols)):
            if not ctx.position(s) and not ctx.open_orders and ctx.value("rsi", s) < 45:
                ctx.buy(10, s, trail_percent=3.0)
"""


def test_a_trailing_exit_works_from_its_entrys_fill_bar_as_in_the_backtest(tmp_path: Path) -> None:
    """Daily bars: an entry decided at a close fills at the next open; its trailing exit (placed once it fills:
    Alpaca's brackets have none) is placed then, at the open, and trails that bar, as the backtest's leg does.
    Before, the loop saw the fill at the bar's close: the exit started a day late (06-10's high missed, the exit
    a week later, the next entry skipped)."""
    result, _, _ = _daily_session(tmp_path, TRAILING, "trailing.py:Trailing", ["AAPL", "META", "MSFT"], "2024-09-01")
    exits = result.fills.filter(pl.col("leg") == "trailing_stop")
    assert exits.height >= 5
    live = {(t["signal_id"], t["leg"]): t for t in read_jsonl_records(tmp_path / "t.jsonl")}
    assert len(live) == result.fills.height and {t["status"] for t in live.values()} == {"filled"}
    for f in exits.iter_rows(named=True):  # each exit on the backtest's day
        assert live[(f["signal_id"], "trailing_stop")]["timestamp"][:10] == f"{f['timestamp']:%Y-%m-%d}", f


DIP = """
from marketboss import EventStrategy


class Dip(EventStrategy):
    \"\"\"Flat and nothing working: a gtc limit buy 2% under the close, with a 4% stop and a 2% target.\"\"\"

    def on_bar(self, ctx):
        for s in range(len(ctx.symbols)):
            if not ctx.position(s) and not any(o.symbol == s for o in ctx.open_orders):
                limit = round(ctx.price(s) * 0.98, 2)
                ctx.buy(10, s, limit_price=limit, time_in_force="gtc", stop_loss=round(limit * 0.96, 2),
                        take_profit=round(limit * 1.02, 2))
"""


def test_a_restart_after_the_stop_canceled_the_working_orders_decides_again_and_reconciles(tmp_path: Path) -> None:
    """Stopped with gtc entries working (--on-stop cancel, the default, cancels them), then restarted: the
    strategy's run cancels them where the stop did, so it places them again at the restart's first bar and trades
    on; the signals log gets their CANCEL lines, so its backtest is the account's, fill for fill. Before, its run
    kept them working: it waited for fills the account could not have, and reconcile counted them missed."""
    symbols = ["AAPL", "META", "MSFT"]
    data = tmp_path / "bars.jsonl"
    write_bars(synth_bars(symbols, "2023-06-01", "2024-09-30", "1Day", seed=7), data)
    (tmp_path / "dip.py").write_text(DIP)
    with broker(tmp_path, data, rate_limit=0) as lb:
        for until in ("2024-06-15T00:00:00Z", "2024-08-01T00:00:00Z"):
            proc = subprocess.run(_live_daily(tmp_path, lb, "dip.py:Dip", symbols, until), cwd=tmp_path,
                                  env=_env(lb), capture_output=True, text=True, timeout=300)  # fmt: skip
            assert proc.returncode == 0, proc.stderr[-2000:]
    trades = read_jsonl_records(tmp_path / "t.jsonl")
    stopped = {t["signal_id"]: t for t in trades if t["status"] == "canceled" and t["timestamp"] < "2024-06-15"}
    assert stopped  # entries the first run's stop canceled
    logged = read_jsonl_records(tmp_path / "s.jsonl")
    assert {s["cancels"] for s in logged if s["action"] == "CANCEL"} >= set(stopped)
    again = [s for s in logged if s["timestamp"].startswith("2024-06-17") and s["action"] == "BUY"]
    assert {s["symbol"] for s in again} == {t["symbol"] for t in stopped.values()}  # placed again at once
    rows, _ = _reconciled(tmp_path, data)
    assert int(rows["fills"][0]) >= 6 and rows["fills"][2] == "0" and rows["missed in paper"][1] == "0"


def test_the_stop_keeps_the_strategys_own_stops_and_a_restart_trades_as_one_session(tmp_path: Path) -> None:
    """--on-stop cancel (the default, the scheduler's every evening) canceled every working order, the
    breakeven stops protecting positions too; the restart replayed those cancels and the positions went on
    unguarded (a stop that would have sold was never there). Now an order that reduces the position is kept as an
    exit: stopped and restarted, the session trades what one session trades."""
    symbols = ["AAPL", "GOOGL", "MSFT"]
    data = tmp_path / "bars.jsonl"
    write_bars(synth_bars(symbols, "2023-06-01", "2024-12-31", "1Day", seed=11), data)
    strategy = str(Path(__file__).resolve().parents[2] / "examples/breakeven_stop.py") + ":BreakevenStop"
    runs = {"whole": ["2024-11-01T00:00:00Z"], "stopped": ["2024-08-01T00:00:00Z", "2024-11-01T00:00:00Z"]}
    fills: dict[str, list[tuple[str, str, str, float]]] = {}
    for name, untils in runs.items():
        (tmp_path / name).mkdir()
        with broker(tmp_path / name, data, rate_limit=0) as lb:
            for until in untils:
                proc = subprocess.run(_live_daily(tmp_path / name, lb, strategy, symbols, until), cwd=tmp_path,
                                      env=_env(lb), capture_output=True, text=True, timeout=300)  # fmt: skip
                assert proc.returncode == 0, proc.stderr[-2000:]
            fills[name] = sorted((o["filled_at"][:10], o["symbol"], o["side"], float(o["filled_qty"]))
                                 for o in broker_orders(lb) if o["status"] == "filled")  # fmt: skip
        trades = read_jsonl_records(tmp_path / name / "t.jsonl")
        assert not [t for t in trades if t["status"] == "canceled" and t["side"] == "SELL"]  # no stop canceled
    assert fills["stopped"] == fills["whole"] and any(f[2] == "sell" for f in fills["whole"])


ENTRY = """
from marketboss import EventStrategy


class Entry(EventStrategy):
    \"\"\"Flat and nothing working: a market buy with a 3% stop and a 2% target.\"\"\"

    def on_bar(self, ctx):
        for s in range(len(ctx.symbols)):
            if not ctx.position(s) and not any(o.symbol == s for o in ctx.open_orders):
                ctx.buy(10, s, stop_loss=ctx.price(s) * 0.97, take_profit=ctx.price(s) * 1.02)
"""


def test_a_restart_after_the_stop_canceled_an_entry_of_the_last_bar_logs_its_cancel(tmp_path: Path) -> None:
    """Stopped right after a close whose market entries were sent (queued for the open), which the stop
    canceled: the restart's run cancels them on the bar that placed them, and, sent as they were, they keep
    their lines with a CANCEL line after each, so the signals log backtests to the account's fills. Before,
    an order canceled on its own bar was left out of the run's signals as never sent: no CANCEL line, and
    reconcile counted its fill and its exit's as missed in paper."""
    symbols = ["AAPL", "META", "MSFT"]
    data = tmp_path / "bars.jsonl"
    write_bars(synth_bars(symbols, "2023-06-01", "2024-09-30", "1Day", seed=7), data)
    (tmp_path / "entry.py").write_text(ENTRY)
    _, planned = run_events(Market.from_bars(read_bars(data)), create(f"{tmp_path / 'entry.py'}:Entry", []),
                            trade_from=datetime(2024, 6, 3, tzinfo=UTC))  # the session's decisions, in advance
    day = planned.filter((pl.col("action") == "BUY") & (pl.col("timestamp") > datetime(2024, 6, 10, tzinfo=UTC))
                         )["timestamp"][0].date()  # a day with an entry: the first run stops after its close
    with broker(tmp_path, data, rate_limit=0) as lb:
        for until in (f"{day + timedelta(days=1)}T00:00:00Z", "2024-08-01T00:00:00Z"):
            proc = subprocess.run(_live_daily(tmp_path, lb, "entry.py:Entry", symbols, until), cwd=tmp_path,
                                  env=_env(lb), capture_output=True, text=True, timeout=300)  # fmt: skip
            assert proc.returncode == 0, proc.stderr[-2000:]
    logged = read_jsonl_records(tmp_path / "s.jsonl")
    decided = {s["id"]: s["timestamp"] for s in logged}
    trades = read_jsonl_records(tmp_path / "t.jsonl")
    stopped = {t["signal_id"] for t in trades if t["status"] == "canceled" and t["leg"] is None
               and decided[t["signal_id"]].startswith(str(day))}  # fmt: skip
    assert stopped  # entries of the last bar before the stop, canceled before the open that would fill them
    line = {s["id"]: i for i, s in enumerate(logged)}
    cancels = {s["cancels"]: s for s in logged if s["action"] == "CANCEL"}
    assert set(cancels) >= stopped
    assert all(cancels[i]["timestamp"] == decided[i] and line[cancels[i]["id"]] > line[i] for i in stopped)
    rows, out = _reconciled(tmp_path, data)
    assert int(rows["fills"][0]) >= 6 and rows["fills"][2] == "0" and rows["missed in paper"][1] == "0", out


def test_a_restart_after_the_stop_canceled_the_exits_holds_what_the_account_holds(tmp_path: Path) -> None:
    """Stopped with `--on-stop cancel-all` while bracket exits work, then restarted: the exits the stop canceled
    end in the strategy's run at the stop too, so its positions stay the account's (a CANCEL line naming each
    entry goes to the signals log, and its backtest reconciles fill for fill). Before, its run kept the exits:
    one filled there at once, the strategy went flat where the account held, and 5 of its buys were skipped
    (`the account holds 10 shares`)."""
    symbols = ["AAPL", "META", "MSFT"]
    data = tmp_path / "bars.jsonl"
    write_bars(synth_bars(symbols, "2023-06-01", "2024-09-30", "1Day", seed=7), data)
    (tmp_path / "dip.py").write_text(DIP)
    with broker(tmp_path, data, rate_limit=0) as lb:
        for until, extra in (("2024-06-12T00:00:00Z", ["--on-stop", "cancel-all"]), ("2024-08-01T00:00:00Z", [])):
            proc = subprocess.run([*_live_daily(tmp_path, lb, "dip.py:Dip", symbols, until), *extra], cwd=tmp_path,
                                  env=_env(lb), capture_output=True, text=True, timeout=300)  # fmt: skip
            assert proc.returncode == 0, proc.stderr[-2000:]
            if extra:
                held_at_stop = _positions(lb)
        positions = _positions(lb)
    trades = read_jsonl_records(tmp_path / "t.jsonl")
    stopped = {t["signal_id"] for t in trades if t["status"] == "canceled" and t["leg"] is not None}
    assert held_at_stop == {"META": 10.0, "MSFT": 10.0} and len(stopped) == 2  # their exits, canceled by the stop
    status = read_status(tmp_path / "status.json")
    assert status is not None and status.trading_from is not None
    bars = read_bars(data).filter(pl.col("timestamp") < pl.lit("2024-08-01").str.to_datetime(time_zone="UTC"))
    canceled = {t["signal_id"]: datetime.fromisoformat(t["timestamp"]) for t in trades if t["status"] == "canceled"}
    result, _ = run_events(Market.from_bars(bars), create(f"{tmp_path / 'dip.py'}:Dip", []),
                           trade_from=datetime.fromisoformat(status.trading_from), canceled=canceled)  # fmt: skip
    held = _net_fills(list(result.fills.iter_rows(named=True)))
    assert positions == held and not [t for t in trades if t["status"] == "skipped"], (positions, held)
    logged = read_jsonl_records(tmp_path / "s.jsonl")
    assert {s["cancels"] for s in logged if s["action"] == "CANCEL"} >= stopped
    rows, out = _reconciled(tmp_path, data)
    assert rows["fills"][2] == "0" and rows["missed in paper"][1] == "0", out


HOURLY = """
import json
import os

from marketboss import EventStrategy


class Hourly(EventStrategy):
    \"\"\"Above its 4-bar mean: buy 10; below: close. Writes the times of the bars it is shown to $SEEN.\"\"\"

    def on_bar(self, ctx):
        if os.environ.get("SEEN"):
            with open(os.environ["SEEN"], "a") as f:
                f.write(json.dumps(ctx.time.isoformat()) + "\\n")
        for s in range(len(ctx.symbols)):
            close = ctx.history(s).close
            if len(close) < 4:
                continue
            above = close[-1] > close[-4:].mean()
            if above and not ctx.position(s):
                ctx.buy(10, s)
            elif not above and ctx.position(s):
                ctx.close(s)
"""


def test_an_hourly_session_runs_on_the_bars_its_backtest_runs_on(tmp_path: Path) -> None:
    """--timeframe 1Hour on minute data: the warm-up's bars, fetched over REST, are on the grid the stream's minute
    bars are aggregated onto (9:30, 10:30, ...: data.grid), so the session's decisions are the backtest's on the
    hourly bars `data fetch --timeframe 1Hour` writes. Before, the warm-up took the broker's hourly bars, clock
    hours as Alpaca's are (9:00, 10:00, ...): the strategy's history mixed the two grids."""
    data = tmp_path / "bars.jsonl"
    write_bars(synth_bars(SYMBOLS, "2024-02-26", "2024-03-08", "1Min", seed=5), data)
    (tmp_path / "hourly.py").write_text(HOURLY)
    with broker(tmp_path, data, rate_limit=0) as lb:
        cmd = [sys.executable, "-m", "marketboss", "live", "--strategy", "hourly.py:Hourly", "--symbols",
               ",".join(SYMBOLS), "--timeframe", "1Hour", "--warmup-bars", "20", "--broker-url", lb.base_url,
               "--replay-from", "2024-03-06", "--until", "2024-03-08T21:00:00Z",
               "--signals-output", "s.jsonl", "--trades-output", "t.jsonl", "--equity-output", "e.jsonl",
               "--status-output", "status.json"]  # fmt: skip
        proc = subprocess.run(cmd, cwd=tmp_path, env={**_env(lb), "SEEN": str(tmp_path / "seen.jsonl")},
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        env = {**_env(lb), "APCA_API_KEY_ID": lb.key_id, "APCA_API_SECRET_KEY": lb.secret_key,
               "APCA_API_DATA_URL": lb.base_url}  # fmt: skip
        fetched = subprocess.run([sys.executable, "-m", "marketboss", "data", "fetch", "--symbols", ",".join(SYMBOLS),
                                  "--start", "2024-02-26", "--end", "2024-03-09", "--timeframe", "1Hour", "--output",
                                  "hourly.jsonl"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert fetched.returncode == 0, fetched.stderr
    seen = {datetime.fromisoformat(json.loads(line)) for line in (tmp_path / "seen.jsonl").read_text().splitlines()}
    hourly = read_bars(tmp_path / "hourly.jsonl")
    assert seen <= set(hourly["timestamp"].to_list()) and len(seen) >= 30  # the warm-up's 20 and the session's
    assert {(t.astimezone(ZoneInfo("America/New_York")).minute) for t in seen} == {30}
    status = read_status(tmp_path / "status.json")
    assert status is not None and status.trading_from is not None
    window = hourly.filter(pl.col("timestamp") < pl.lit("2024-03-08T21:00:00Z").str.to_datetime(time_zone="UTC"))
    _, signals = run_events(Market.from_bars(window), create(f"{tmp_path / 'hourly.py'}:Hourly", []),
                            trade_from=datetime.fromisoformat(status.trading_from))  # fmt: skip
    logged = read_jsonl_records(tmp_path / "s.jsonl")
    assert len(logged) >= 4 and [s["id"] for s in logged] == signals["id"].to_list()


def test_symbols_lacking_minutes_trade_in_the_live_loop_as_in_the_backtest(tmp_path: Path) -> None:
    """Minute bars where JPM and MSFT lack one minute in four (no trade then: IEX's bars often do): the example
    time_trailing_stop, live on the replay, fills every order and exit on the backtest's minute at its price give
    or take the half spread. Before, an order of a symbol lacking the next minute filled at the last close, a minute
    early (the local broker now waits for the symbol's next bar, as the backtest fills it there)."""
    bars = synth_bars(SYMBOLS, "2024-03-04", "2024-03-05", "1Min", seed=5)
    bars = bars.filter((pl.col("symbol") == "AAPL") | (pl.int_range(pl.len()).over("symbol") % 4 != 2))
    data = tmp_path / "bars.jsonl"
    write_bars(bars, data)
    strategy = f"{Path(__file__).parents[2] / 'examples' / 'time_trailing_stop.py'}:TimeTrailingStop"
    with broker(tmp_path, data, rate_limit=0, spread_bps=SPREAD_BPS) as lb:
        proc = subprocess.run(_live(tmp_path, lb, strategy=strategy, params=[]), cwd=tmp_path, env=_env(lb),
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
    status = read_status(tmp_path / "status.json")
    assert status is not None and status.trading_from is not None
    hi = pl.lit(WINDOW[1]).str.to_datetime(time_zone="UTC")
    result, _ = run_events(Market.from_bars(bars.filter(pl.col("timestamp") < hi)), create(strategy, []),
                           trade_from=datetime.fromisoformat(status.trading_from))  # fmt: skip
    live = {(t["signal_id"], t["leg"]): t for t in read_jsonl_records(tmp_path / "trades.jsonl")
            if t["status"] == "filled" and t["timestamp"] < WINDOW[1]}  # (the last minute's, at the next open)
    fills = list(result.fills.iter_rows(named=True))
    assert set(live) == {(f["signal_id"], f["leg"]) for f in fills}  # every order and exit, no more
    assert len([f for f in fills if f["symbol"] != "AAPL"]) >= 10  # of the symbols lacking minutes too
    for f in fills:
        t = live[(f["signal_id"], f["leg"])]
        assert t["timestamp"][:16] == f"{f['timestamp']:%Y-%m-%dT%H:%M}", (f, t)
        assert abs(t["filled_price"] / f["price"] - 1) * 1e4 <= SPREAD_BPS / 2 + 0.01, (f, t)


DAY_LIMIT = """
from marketboss import EventStrategy


class DayLimit(EventStrategy):
    \"\"\"Flat with nothing working: a day limit buy 0.1% under the close; held, a day limit sale 0.1% over it.\"\"\"

    def on_bar(self, ctx):
        for s in range(len(ctx.symbols)):
            if any(o.symbol == s for o in ctx.open_orders):
                continue
            if ctx.position(s) == 0:
                ctx.buy(10, s, limit_price=round(ctx.price(s) * 0.999, 2))
            else:
                ctx.sell(10, s, limit_price=round(ctx.price(s) * 1.001, 2))
"""


def test_a_day_order_works_on_through_the_session_in_the_live_loops_run_as_in_the_backtest(tmp_path: Path) -> None:
    """Day limits that wait a few minutes to fill: the live loop's run of the strategy, on its history up to each
    bar, keeps them working (the session goes on past that bar), so it decides as its backtest does: the same
    signals, every fill on the backtest's minute. Before, the run ended them at the history's last bar, as at a
    session's close: the strategy, seeing nothing working, placed another each minute."""
    data = _bars(tmp_path)
    (tmp_path / "daylimit.py").write_text(DAY_LIMIT)
    with broker(tmp_path, data, rate_limit=0, spread_bps=SPREAD_BPS) as lb:
        proc = subprocess.run(_live(tmp_path, lb, strategy="daylimit.py:DayLimit", params=[]), cwd=tmp_path,
                              env=_env(lb), capture_output=True, text=True, timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
    status = read_status(tmp_path / "status.json")
    assert status is not None and status.trading_from is not None
    # the backtest of the whole data (the window ends inside the session, which goes on there): its decisions in
    # the window, and their fills there
    hi = pl.lit(WINDOW[1]).str.to_datetime(time_zone="UTC")
    result, signals = run_events(Market.from_bars(read_bars(data)), create(f"{tmp_path / 'daylimit.py'}:DayLimit", []),
                                 trade_from=datetime.fromisoformat(status.trading_from))  # fmt: skip
    signals = signals.filter(pl.col("timestamp") < hi)
    result = replace(result, fills=result.fills.filter(pl.col("timestamp") < hi))
    assert [s["id"] for s in read_jsonl_records(tmp_path / "live_signals.jsonl")] == signals["id"].to_list()
    waited = result.fills.join(signals.select(pl.col("id").alias("signal_id"), pl.col("timestamp").alias("placed")),
                               on="signal_id").filter(pl.col("timestamp") - pl.col("placed") > pl.duration(minutes=2))
    assert waited.height >= 3  # limits that worked on for minutes before they filled
    live = {t["signal_id"]: t for t in read_jsonl_records(tmp_path / "trades.jsonl") if t["status"] == "filled"}
    for f in result.fills.iter_rows(named=True):
        assert live[f["signal_id"]]["timestamp"][:16] == f"{f['timestamp']:%Y-%m-%dT%H:%M}", f


def test_reconcile_backtests_a_15min_session_on_5min_data_as_it_traded(tmp_path: Path) -> None:
    """A 15Min session on 5-minute data: each signal is stamped at its bar's start and decided at its close, so a
    backtest on the data's own bars filled it inside the bar that decided it (13:45's signal at the 13:50 open).
    The session's journal records its timeframe, long-only and the broker's spread; reconcile backtests on the
    data aggregated to 15 minutes, long-only, paying the half spread: every fill after its decision, the weights
    sized to the same shares, nothing missed."""
    from marketboss.execution.logs import read_paper_equity, read_paper_trades
    from marketboss.execution.reconcile import compare_backtest_paper
    from marketboss.signals import read_signals_frame

    data = tmp_path / "bars.jsonl"
    write_bars(synth_bars(SYMBOLS, "2024-03-01", "2024-03-05", "5Min", seed=5), data)
    files = {"--signals-output": "live_signals.jsonl", "--trades-output": "trades.jsonl",
             "--equity-output": "equity.jsonl", "--status-output": "status.json"}  # fmt: skip
    params = ["fast=3", "slow=8", "sizing=weight", "weight=0.3"]  # weights: sized from the fill price's spread too
    with broker(tmp_path, data, rate_limit=0, spread_bps=SPREAD_BPS) as lb:
        proc = subprocess.run([sys.executable, "-m", "marketboss", "live", "--strategy", "ma_crossover",
                               *(a for p in params for a in ("--param", p)),
                               "--symbols", ",".join(SYMBOLS), "--timeframe", "15Min", "--broker-url", lb.base_url,
                               "--replay-from", "2024-03-05", "--until", "2024-03-05T21:00:00Z", "--grace", "2",
                               *(a for k, v in files.items() for a in (k, str(tmp_path / v)))],
                              cwd=tmp_path, env=_env(lb), capture_output=True, text=True, timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        rec = [sys.executable, "-m", "marketboss", "reconcile", "--data", str(data), "--show-trades", "0",
               *(a for k in ("--signals", "--trades", "--equity") for a in (k, str(tmp_path / files[f"{k}-output"])))]
        runs = {flags: subprocess.run([*rec, *flags], cwd=tmp_path, env=_env(lb), capture_output=True, text=True,
                                      timeout=120) for flags in ((), ("--timeframe", "5Min"))}  # fmt: skip
    for r in runs.values():
        assert r.returncode == 0, r.stderr
    rows = {cells[1].strip(): [c.strip() for c in cells[2:-1]] for cells in
            (line.split("│") for line in runs[()].stdout.splitlines() if line.startswith("│"))}  # fmt: skip
    assert "--timeframe 15Min" in runs[()].stderr and "--long-only" in runs[()].stderr
    assert int(rows["fills"][0]) >= 4 and rows["fills"][2] == "0"
    assert rows["avg slippage bps vs backtest fill"][1] == "0.0000"  # the half spread paid in both
    assert rows["missed in paper"][1] == rows["filled in paper only"][1] == rows["filled at another quantity"][1] == "0"
    signals = read_signals_frame(tmp_path / files["--signals-output"])
    args = (read_bars(data), signals, read_paper_trades(tmp_path / files["--trades-output"]),
            read_paper_equity(tmp_path / files["--equity-output"]))
    decided = signals.select("id", (pl.col("timestamp") + pl.duration(minutes=15)).alias("decided"))
    for tf, after in ((Timeframe.parse("15Min"), True), (None, False)):  # the data's 5Min bars: before
        fills = compare_backtest_paper(*args, timeframe=tf).backtest.fills  # (no exits)
        early = fills.join(decided, left_on="signal_id", right_on="id").filter(pl.col("timestamp") < pl.col("decided"))
        assert early.is_empty() == after, tf


def test_a_replay_on_the_broker_live_starts_fills_at_the_backtests_moment_and_price(tmp_path: Path) -> None:
    """The broker `live` starts itself replays without wall-clock fill latency, as paper's does: with 50 ms of it,
    a daily session's entries filled now and then 50 ms into their bar, at another price than the backtest's
    (2 of 42 here), and not the same ones from one run to the next."""
    data = tmp_path / "bars.jsonl"
    write_bars(synth_bars(SYMBOLS, "2023-01-01", "2024-12-31", "1Day", seed=5), data)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "MARKETBOSS_"))}
    env["MARKETBOSS_LOG_LEVEL"] = "warning"
    cmd = [sys.executable, "-m", "marketboss", "live", "--strategy", "ma_crossover",
           *(a for p in PARAMS for a in ("--param", p)), "--symbols", ",".join(SYMBOLS), "--timeframe", "1Day",
           "--data", str(data), "--broker-db", str(tmp_path / "b.sqlite"), "--replay-from", "2024-01-02",
           "--until", "2024-12-31T21:00:00Z", "--signals-output", str(tmp_path / "s.jsonl"), "--trades-output",
           str(tmp_path / "t.jsonl"), "--equity-output", str(tmp_path / "e.jsonl"), "--status-output",
           str(tmp_path / "status.json"), "--grace", "2"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "started the local broker" in proc.stdout + proc.stderr
    fills = [t for t in read_jsonl_records(tmp_path / "t.jsonl") if t["qty"]]
    assert len(fills) >= 20
    assert all(datetime.fromisoformat(str(f["timestamp"])).microsecond == 0 for f in fills), fills


CASH_SIZED = """
from marketboss import EventStrategy


class CashSized(EventStrategy):
    \"\"\"Flat: buy a fifth of the cash's worth of each symbol; held 5 bars: close.\"\"\"

    def start(self, ctx):
        self.since = [0] * len(ctx.symbols)

    def on_bar(self, ctx):
        for s in range(len(ctx.symbols)):
            if ctx.position(s) == 0 and not ctx.open_orders:
                ctx.buy(int(ctx.cash * 0.2 / ctx.price(s)), s)
                self.since[s] = ctx.t
            elif ctx.position(s) > 0 and ctx.t - self.since[s] >= 5:
                ctx.close(s)
"""


def test_an_event_strategy_decides_with_the_accounts_cash_and_fractional_sizing(tmp_path: Path) -> None:
    """A strategy sizing its buys from ctx.cash, on an account of 1,000,000 under --fractional: the live loop's
    run decides with the account's equity as the session began for its cash and fractional sizing, so its orders
    are those of its backtest at that cash (before: a default account's 100,000, every buy a tenth of its
    backtest's, and whole shares), and a restart keeps that cash."""
    data = _bars(tmp_path)
    (tmp_path / "sized.py").write_text(CASH_SIZED)
    with broker(tmp_path, data, rate_limit=0, spread_bps=SPREAD_BPS, cash=1_000_000.0) as lb:
        for until in ("2024-03-05T15:00:00Z", WINDOW[1]):
            proc = subprocess.run(_live(tmp_path, lb, "--fractional", "--until", until, strategy="sized.py:CashSized",
                                        params=[]), cwd=tmp_path, env=_env(lb), capture_output=True, text=True,
                                  timeout=300)  # fmt: skip
            assert proc.returncode == 0, proc.stderr[-2000:]
    status = read_status(tmp_path / "status.json")
    assert status is not None and status.trading_from is not None and status.start_equity == 1_000_000.0
    hi = pl.lit(WINDOW[1]).str.to_datetime(time_zone="UTC")
    market = Market.from_bars(read_bars(data))
    trade_from = datetime.fromisoformat(status.trading_from)

    def decided(config: BacktestConfig | None) -> list[tuple[str, float]]:
        _, signals = run_events(market, create(f"{tmp_path / 'sized.py'}:CashSized", []), config,
                                trade_from=trade_from)  # fmt: skip
        window = signals.filter(pl.col("timestamp") < hi)
        return list(zip(window["id"].to_list(), window["quantity"].to_list(), strict=True))

    logged = [(s["id"], s["quantity"]) for s in read_jsonl_records(tmp_path / "live_signals.jsonl")]
    expected = decided(BacktestConfig(cash=1_000_000.0, fractional=True))
    assert len(expected) >= 6 and logged == expected
    assert logged != decided(None)  # a default account's buys are a tenth of these
    trades = read_jsonl_records(tmp_path / "trades.jsonl")
    filled = [t for t in trades if t["status"] == "filled" and t["side"] == "BUY"]
    assert filled and min(t["qty"] * t["filled_price"] for t in filled) > 100_000.0  # a fifth of the account
