"""The paper executor as users run it: the guide's script, kill -9 and restart, the live guard, doctor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from marketboss.data.io import read_bars, read_jsonl_records
from marketboss.execution.executor import order_request
from marketboss.execution.journal import Intent
from tests.integration.executor_fixtures import AFTER_THE_SIGNALS, broker, broker_orders, make_bars, make_signals

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "MARKETBOSS_"))}
    env["MARKETBOSS_LOG_LEVEL"] = "warning"
    env.update(extra)
    return env


def _paper(*args: str, script: bool = False) -> list[str]:
    if script:
        return [sys.executable, str(ROOT / "scripts/run_paper_trading.py"), *args]
    return [sys.executable, "-m", "marketboss", "paper", *args]


def test_guides_script_with_no_credentials_starts_the_local_broker(tmp_path: Path) -> None:
    data, bars = make_bars(tmp_path)
    (tmp_path / "data").mkdir()
    data.rename(tmp_path / "data/market_data.jsonl")
    _, signals = make_signals(tmp_path / "data", bars, n=5)
    cmd = _paper("--signals", "data/signals.jsonl", "--max-trades", "4", "--order-interval", "0",
                 "--poll-interval", "0.05", script=True)  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=_env(MARKETBOSS_INITIAL_CASH="50000"), capture_output=True,
                          text=True, timeout=180)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "No Alpaca credentials set (APCA_API_KEY_ID, APCA_API_SECRET_KEY): started the local broker" in proc.stdout
    assert read_jsonl_records(tmp_path / "data/paper_trading_equity.jsonl")[0]["cash"] == 50_000  # the backtest's
    trades = read_jsonl_records(tmp_path / "data/paper_trading_trades.jsonl")
    assert [t["signal_id"] for t in trades] == [s.id for s in signals[:4]]
    assert all(t["status"] == "filled" for t in trades)
    assert (tmp_path / "data/paper_trading_equity.jsonl").exists() and (tmp_path / "data/broker.sqlite").exists()
    assert "orders filled" in proc.stdout and "Traceback" not in proc.stderr
    rows = {cells[1].strip(): cells[2].strip() for cells in
            (line.split("│") for line in proc.stdout.splitlines() if line.startswith("│"))}  # fmt: skip
    assert rows["signals in the file"] == "5" and rows["left for a later run (--max-trades)"] == "1"


def test_an_empty_signals_file_says_there_is_nothing_to_trade(tmp_path: Path) -> None:
    """A schedule's signals job can write none (a model trained to the last bar): paper printed its broker's start
    and nothing else, exit 0."""
    data, _ = make_bars(tmp_path)
    (tmp_path / "signals.jsonl").write_text("")
    proc = subprocess.run(_paper("--signals", "signals.jsonl", "--data", str(data)), cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=180)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "no signals in signals.jsonl: nothing to trade"


def test_a_replay_the_brokers_clock_is_past_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    """A second replay on the broker database an earlier run moved on: its signals would fill at the later
    clock's prices (stale), so the run is refused in one line, nothing sent; a fresh --broker-db replays them,
    into fresh logs (the earlier run's go past its clock: refused too)."""
    data, bars = make_bars(tmp_path)
    (tmp_path / "data").mkdir()
    data.rename(tmp_path / "data/market_data.jsonl")
    make_signals(tmp_path / "data", bars, n=6)
    first = subprocess.run(_paper("--signals", "data/signals.jsonl", "--order-interval", "0"), cwd=tmp_path,
                           env=_env(), capture_output=True, text=True, timeout=180)  # fmt: skip
    assert first.returncode == 0, first.stderr
    earlier, signals = make_signals(tmp_path / "data" / "other", bars, n=2, qty=5)  # before the clock now
    trades = (tmp_path / "data/paper_trading_trades.jsonl").read_bytes()
    again = subprocess.run(_paper("--signals", str(earlier), "--order-interval", "0"), cwd=tmp_path, env=_env(),
                           capture_output=True, text=True, timeout=180)  # fmt: skip
    assert again.returncode == 2
    [line] = [x for x in again.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith(f"error: {earlier}:1: signal {signals[0].id} ({signals[0].symbol}, ")
    assert "cannot be replayed" in line and "--broker-db" in line and "Traceback" not in again.stderr
    assert "signals in the file" not in again.stdout
    assert (tmp_path / "data/paper_trading_trades.jsonl").read_bytes() == trades
    doctor = subprocess.run([sys.executable, "-m", "marketboss", "doctor", "--signals", str(earlier)], cwd=tmp_path,
                            env=_env(), capture_output=True, text=True, timeout=180)  # fmt: skip
    said = " ".join(doctor.stdout.split())
    assert "2 of the 2 signals to replay are before the local broker's clock" in said, doctor.stdout
    mixed = subprocess.run(_paper("--signals", str(earlier), "--order-interval", "0", "--broker-db",
                                  "data/fresh.sqlite"), cwd=tmp_path, env=_env(), capture_output=True, text=True,
                           timeout=180)  # fmt: skip
    assert mixed.returncode == 2 and "later than the local broker's clock" in mixed.stderr  # two accounts in one log
    assert (tmp_path / "data/paper_trading_trades.jsonl").read_bytes() == trades
    fresh = subprocess.run(_paper("--signals", str(earlier), "--order-interval", "0", "--broker-db",
                                  "data/fresh.sqlite", "--trades-output", "data/t.jsonl", "--equity-output",
                                  "data/e.jsonl"), cwd=tmp_path, env=_env(), capture_output=True, text=True,
                           timeout=180)  # fmt: skip
    assert fresh.returncode == 0, fresh.stderr
    records = read_jsonl_records(tmp_path / "data/t.jsonl")
    assert [(t["signal_id"], t["status"]) for t in records] == [(s.id, "filled") for s in signals]


def test_logs_following_another_brokers_exits_are_refused_in_one_line(tmp_path: Path) -> None:
    """An earlier run's logs, whose journal follows exits still open at its broker, given to a run on a fresh
    broker database (as the replay's refusal suggests): that broker knows none of those orders, so the run stops
    in one line naming the journal and what to do, no trade recorded; into fresh logs it runs."""
    data, bars = make_bars(tmp_path)
    (tmp_path / "data").mkdir()
    data.rename(tmp_path / "data/market_data.jsonl")
    make_signals(tmp_path / "data", bars, n=4)
    exits = ("--take-profit-pct", "50", "--order-interval", "0")  # far away: still open when the data ends
    first = subprocess.run(_paper(*exits), cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=180)
    assert first.returncode == 0, first.stderr
    trades = (tmp_path / "data/paper_trading_trades.jsonl").read_bytes()
    equity = (tmp_path / "data/paper_trading_equity.jsonl").read_bytes()
    again = subprocess.run(_paper(*exits, "--broker-db", "data/fresh.sqlite"), cwd=tmp_path, env=_env(),
                           capture_output=True, text=True, timeout=180)  # fmt: skip
    assert again.returncode == 2 and "Traceback" not in again.stderr
    [line] = [x for x in again.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith("error: data/paper_trading_equity.jsonl: its last snapshot (")  # before: a snapshot of
    assert "later than the local broker's clock" in line and "--trades-output" in line  # the new account after it
    assert (tmp_path / "data/paper_trading_equity.jsonl").read_bytes() == equity
    (tmp_path / "data/paper_trading_equity.jsonl").unlink()  # the trades log and journal alone: their exits
    again = subprocess.run(_paper(*exits, "--broker-db", "data/fresh.sqlite"), cwd=tmp_path, env=_env(),
                           capture_output=True, text=True, timeout=180)  # fmt: skip
    assert again.returncode == 2 and "Traceback" not in again.stderr
    [line] = [x for x in again.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith("error: data/paper_trading_trades.journal.jsonl: the take_profit of ")
    assert "unknown to this broker" in line and "--trades-output" in line
    assert (tmp_path / "data/paper_trading_trades.jsonl").read_bytes() == trades  # no trade recorded
    fresh = subprocess.run(_paper(*exits, "--broker-db", "data/fresh2.sqlite", "--trades-output", "data/t.jsonl",
                                  "--equity-output", "data/e.jsonl"), cwd=tmp_path, env=_env(), capture_output=True,
                           text=True, timeout=180)  # fmt: skip
    assert fresh.returncode == 0, fresh.stderr


def test_a_journal_left_without_its_logs_is_refused_or_sends_at_the_signals_bar(tmp_path: Path) -> None:
    """The trades and equity logs and the broker database removed to start again, the journal beside them left:
    its orders had no trade record, so the run finished them, each sent again at the fresh broker's clock, the
    data's first bar (a signal of April filled in January, before it was decided). Now a journal whose orders
    the broker does not know is refused in one line, nothing written; an intent never sent (a crash between the
    journal's line and the order) is sent at its own bar."""
    data, bars = make_bars(tmp_path)
    (tmp_path / "data").mkdir()
    data.rename(tmp_path / "data/market_data.jsonl")
    _, signals = make_signals(tmp_path / "data", bars, n=4)
    logs = [tmp_path / "data" / f for f in ("paper_trading_trades.jsonl", "paper_trading_equity.jsonl")]
    journal = tmp_path / "data/paper_trading_trades.journal.jsonl"
    first = subprocess.run(_paper("--order-interval", "0"), cwd=tmp_path, env=_env(), capture_output=True, text=True,
                           timeout=180)  # fmt: skip
    assert first.returncode == 0, first.stderr
    for path in [*logs, tmp_path / "data/broker.sqlite"]:
        path.unlink()
    before = journal.read_bytes()
    again = subprocess.run(_paper("--order-interval", "0"), cwd=tmp_path, env=_env(), capture_output=True, text=True,
                           timeout=180)  # fmt: skip
    assert again.returncode == 2 and "Traceback" not in again.stderr
    [line] = [x for x in again.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith(f"error: data/paper_trading_trades.journal.jsonl: signal {signals[0].id} (")
    assert "is unknown to this broker" in line and "--trades-output" in line
    assert journal.read_bytes() == before and not any(p.exists() for p in logs)
    # a crash after the journal's intent for the third signal, before its order went out: only the intent is there
    records = read_jsonl_records(journal)
    kept = [r for r in records if r["event"] in ("account", "run")][:2] + [
        r for r in records if r["event"] == "intent" and r["signal_id"] == signals[2].id]
    journal.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "_line"}) + "\n" for r in kept))
    (tmp_path / "data/broker.sqlite").unlink()
    resumed = subprocess.run(_paper("--order-interval", "0"), cwd=tmp_path, env=_env(), capture_output=True,
                             text=True, timeout=180)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    trades = {t["signal_id"]: t for t in read_jsonl_records(logs[0])}
    assert [trades[s.id]["status"] for s in signals] == ["filled"] * 4
    for s in signals:  # each filled at a bar after its own: the resumed one too (before: at the data's first bar)
        assert datetime.fromisoformat(trades[s.id]["timestamp"]) > s.timestamp, (s, trades[s.id])
    # the logs kept, the journal moved away: what it followed (exits working at the broker) would go unrecorded
    journal.rename(journal.with_suffix(".bak"))
    before = logs[0].read_bytes()
    gone = subprocess.run(_paper("--order-interval", "0"), cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=180)  # fmt: skip
    assert gone.returncode == 2 and gone.stderr.splitlines()[-1].startswith(
        "error: data/paper_trading_trades.jsonl: it has records of 4 signals but its journal ")  # fmt: skip
    assert logs[0].read_bytes() == before and not journal.exists()


def test_doctor_checks_the_logs_the_dashboard_and_reconcile_read(tmp_path: Path) -> None:
    """The dashboard's malformed-log error points to doctor for the reason; doctor checked only bars and signals.
    Now the trades and equity logs too: valid, torn at the end (a crash's: warned, left out as the readers leave
    it), malformed (FAIL naming file, line and field, exit 2), not written yet (no fault)."""
    data, bars = make_bars(tmp_path)
    signals, _ = make_signals(tmp_path, bars, n=2)
    trade = {"timestamp": "2024-01-03T14:30:00Z", "symbol": "AAPL", "side": "BUY", "qty": 10.0,
             "filled_price": 101.5, "status": "filled"}
    snapshot = {"timestamp": "2024-01-03T14:30:00Z", "cash": 98985.0, "portfolio_value": 100000.0}
    (tmp_path / "t.jsonl").write_text(json.dumps(trade) + "\n" + json.dumps({**trade, "status": None}) + "\n")
    (tmp_path / "e.jsonl").write_text(json.dumps(snapshot) + "\n" + '{"timestamp": "2024-01-0')

    def doctor(*logs: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "marketboss", "doctor", "--data", str(data), "--signals",
                               str(signals), *logs], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                              timeout=180)  # fmt: skip

    out = doctor("--trades", "t.jsonl", "--equity", "e.jsonl")
    lines = {x.split()[1] + x.split()[2]: x for x in out.stdout.splitlines() if len(x.split()) > 2}
    assert lines["tradeslog"].split()[0] == "FAIL" and "t.jsonl:2: field 'status'" in lines["tradeslog"]
    assert lines["equitylog"].split()[0] == "warn" and "e.jsonl: 1 valid snapshots; line 2 is torn" in " ".join(
        lines["equitylog"].split())
    assert out.returncode == 2 and "doctor found 1 problem(s): trades log" in out.stderr
    (tmp_path / "t.jsonl").write_text(json.dumps(trade) + "\n")
    out = doctor("--trades", "t.jsonl", "--equity", "none.jsonl")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok trades log t.jsonl: 1 valid records" in " ".join(out.stdout.split())
    assert "ok equity log none.jsonl: not written yet" in " ".join(out.stdout.split())


def test_kill_9_mid_run_then_restart_places_no_order_twice(tmp_path: Path) -> None:
    data, bars = make_bars(tmp_path)
    signals_path, signals = make_signals(tmp_path, bars, n=30)
    trades = tmp_path / "trades.jsonl"
    with broker(tmp_path, data, fill_latency_ms=40.0, rate_limit=0, start=AFTER_THE_SIGNALS) as lb:
        env = _env(MARKETBOSS_BROKER_KEY_ID=lb.key_id, MARKETBOSS_BROKER_SECRET_KEY=lb.secret_key)
        args = ["--signals", str(signals_path), "--broker-url", lb.base_url, "--trades-output", str(trades),
                "--equity-output", str(tmp_path / "equity.jsonl"), "--order-interval", "0.05",
                "--poll-interval", "0.02", "--allow-stale"]  # fmt: skip
        killed_at = []
        for target in (6, 17):  # kill twice, at different points
            proc = subprocess.Popen(_paper(*args), cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)  # fmt: skip
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                n = sum(1 for _ in trades.open("rb")) if trades.exists() else 0
                if n >= target:
                    break
                time.sleep(0.01)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            killed_at.append(sum(1 for _ in trades.open("rb")))
        assert all(k < len(signals) for k in killed_at)
        done = subprocess.run(_paper(*args), cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=180)  # fmt: skip
        assert done.returncode == 0, done.stderr
        orders = broker_orders(lb)
        positions = {p.symbol: p.qty for p in _broker(lb).positions().values()}
    coids = Counter(o["client_order_id"] for o in orders)
    assert len(coids) == len(signals) and set(coids.values()) == {1}
    records = read_jsonl_records(trades)
    assert [r["signal_id"] for r in records] == [s.id for s in signals]  # complete, in order, none twice
    expected: Counter[str] = Counter()
    for s in signals:
        expected[s.symbol] += s.quantity if s.action == "BUY" else -s.quantity  # type: ignore[operator]
    assert positions == {k: v for k, v in expected.items() if v}


def test_an_intent_that_never_reached_the_broker_is_held_to_freshness(tmp_path: Path) -> None:
    """A crash between the journal's intent and the order, the run started again after the signal's bar (a
    broker's clock past them all): an order that reached the broker is finished whatever its age, but this one
    never did; it was sent stale all the same (the journal's intent let it through). Now it is skipped as stale,
    like the others; one the broker has (its client order id) is still finished."""
    data, bars = make_bars(tmp_path)
    signals_path, signals = make_signals(tmp_path, bars, n=4)
    trades = tmp_path / "trades.jsonl"
    journal = tmp_path / "trades.journal.jsonl"
    intents = [{"event": "intent", "signal_id": s.id, "client_order_id": f"mb-{s.id}", "symbol": s.symbol,
                "side": s.action.lower(), "qty": s.quantity, "legs": False, "closes": 0.0} for s in signals[:2]]
    journal.write_text("".join(json.dumps(r) + "\n" for r in [{"event": "account", "live": False}, *intents]))
    with broker(tmp_path, data, rate_limit=0, start=AFTER_THE_SIGNALS) as lb:
        sent = _broker(lb).submit_order(order_request(signals[1], Intent(**{k: v for k, v in intents[1].items()
                                                                            if k != "event"})))  # fmt: skip
        env = _env(MARKETBOSS_BROKER_KEY_ID=lb.key_id, MARKETBOSS_BROKER_SECRET_KEY=lb.secret_key)
        run = subprocess.run(_paper("--signals", str(signals_path), "--broker-url", lb.base_url, "--trades-output",
                                    str(trades), "--equity-output", str(tmp_path / "equity.jsonl"),
                                    "--order-interval", "0"), cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=180)  # fmt: skip
        assert run.returncode == 0, run.stderr
        orders = broker_orders(lb)
    assert [o["id"] for o in orders] == [sent.id]  # nothing sent: the never-sent intent is stale like the rest
    assert [r["signal_id"] for r in read_jsonl_records(trades)] == [signals[1].id]  # the one it had, finished


def _broker(lb: object):  # type: ignore[no-untyped-def]
    from marketboss.broker.alpaca import AlpacaBroker

    return AlpacaBroker(lb.key_id, lb.secret_key, lb.base_url, is_local=True)  # type: ignore[attr-defined]


LIVE_CASES = [
    (["--live"], {}, "live trading uses real money: confirm with --confirm-live or MARKETBOSS_CONFIRM_LIVE=yes"),
    ([], {"APCA_API_BASE_URL": "https://api.alpaca.markets", "APCA_API_KEY_ID": "AKX", "APCA_API_SECRET_KEY": "s" * 20},
     "APCA_API_BASE_URL points to the live endpoint"),
    (["--live", "--confirm-live"], {"APCA_API_KEY_ID": "PKPAPERKEY", "APCA_API_SECRET_KEY": "s" * 20},
     "APCA_API_KEY_ID is a paper key (PK...) but the endpoint is live"),
    ([], {"APCA_API_BASE_URL": "https://paper-api.alpaca.markets", "APCA_API_KEY_ID": "AKLIVEKEY",
          "APCA_API_SECRET_KEY": "s" * 20}, "APCA_API_KEY_ID is a live key (AK...) but the endpoint is paper"),
]  # fmt: skip


@pytest.mark.parametrize(("flags", "env", "message"), LIVE_CASES)
def test_live_guard_refuses_with_one_clear_line(
    tmp_path: Path, flags: list[str], env: dict[str, str], message: str
) -> None:
    _, bars = make_bars(tmp_path)
    signals_path, _ = make_signals(tmp_path, bars, n=1)
    proc = subprocess.run(_paper("--signals", str(signals_path), *flags), cwd=tmp_path, env=_env(**env),
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2
    assert message in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "s" * 20 not in proc.stderr
    assert not (tmp_path / "data/paper_trading_trades.jsonl").exists()


def test_doctor_reports_what_to_fix(tmp_path: Path) -> None:
    data, bars = make_bars(tmp_path)
    (tmp_path / "data").mkdir()
    data.rename(tmp_path / "data/market_data.jsonl")
    env = _env()
    missing = subprocess.run([sys.executable, "-m", "marketboss", "doctor"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert missing.returncode == 2
    assert "FAIL signals" in missing.stdout and "data/signals.jsonl: file not found" in missing.stdout
    assert "warn credentials" in missing.stdout and "ok broker" in missing.stdout.replace("  ", " ")
    make_signals(tmp_path / "data", bars, n=2)
    ok = subprocess.run([sys.executable, "-m", "marketboss", "doctor"], cwd=tmp_path, env=env, capture_output=True,
                        text=True, timeout=120)  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "ok account" in " ".join(ok.stdout.split()) and "ACTIVE" in ok.stdout
    wrong = subprocess.run([sys.executable, "-m", "marketboss", "doctor"], cwd=tmp_path,
                           env=_env(APCA_API_KEY_ID="PKBAD", APCA_API_SECRET_KEY="badsecret123",
                                    APCA_API_BASE_URL="http://127.0.0.1:9"),
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert wrong.returncode == 2 and "FAIL broker" in " ".join(wrong.stdout.split())
    assert "badsecret123" not in wrong.stdout + wrong.stderr


def test_a_broker_started_by_a_killed_run_does_not_outlive_it(tmp_path: Path) -> None:
    data, bars = make_bars(tmp_path)
    (tmp_path / "data").mkdir()
    data.rename(tmp_path / "data/market_data.jsonl")
    make_signals(tmp_path / "data", bars, n=40)
    proc = subprocess.Popen(
        _paper("--signals", "data/signals.jsonl", "--order-interval", "0.5"),
        cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    trades = tmp_path / "data/paper_trading_trades.jsonl"
    deadline = time.monotonic() + 120
    while not trades.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    children = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
    assert children, "the run should have started its broker"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(Path(f"/proc/{c}").exists() for c in children):
        time.sleep(0.05)
    alive = [c for c in children if Path(f"/proc/{c}").exists() and "Z" not in _state(c)]
    assert alive == []


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return "Z"


def test_stop_loss_pct_stops_fill_in_paper_and_reconcile_joins_them_to_their_signals(tmp_path: Path) -> None:
    from marketboss.execution.logs import read_paper_equity, read_paper_trades
    from marketboss.execution.reconcile import compare_backtest_paper
    from marketboss.signals import read_signals_frame, write_signals
    from marketboss.signals.exits import Exits
    from tests.integration.test_executor_orders import GAP_BAR, gap_bars
    from tests.integration.test_executor_orders import signal as order_signal

    (tmp_path / "data").mkdir()
    data, bars = gap_bars(tmp_path / "data")
    data.rename(tmp_path / "data/market_data.jsonl")
    down, later = order_signal(bars, "AAPL", 5), order_signal(bars, "JPM", GAP_BAR + 3)  # AAPL gaps 15% down between
    write_signals(tmp_path / "data/signals.jsonl", [down, later])
    run = subprocess.run(_paper("--stop-loss-pct", "5", "--order-interval", "0", "--poll-interval", "0.05"),
                         cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=180)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "exits filled: stop_loss" in run.stdout
    trades = read_paper_trades(tmp_path / "data/paper_trading_trades.jsonl")
    stops = trades.filter(pl.col("leg") == "stop_loss")
    # JPM's too, after the last signal: the replay runs on to the end of the data, as the backtest does
    assert stops["signal_id"].to_list() == [down.id, later.id] and stops["qty"].to_list() == [10, 10]
    assert stops["filled_price"][0] <= round(float(down.price or 0) * 0.95, 2)
    cmp = compare_backtest_paper(read_bars(tmp_path / "data/market_data.jsonl"),
                                 read_signals_frame(tmp_path / "data/signals.jsonl"), trades,
                                 read_paper_equity(tmp_path / "data/paper_trading_equity.jsonl"),
                                 exits=Exits(stop_loss_pct=5))  # fmt: skip
    joined = cmp.joined.filter(pl.col("leg") == "stop_loss")
    assert sorted(joined["signal_id"].to_list()) == sorted([down.id, later.id])
    assert joined["bt_qty"].to_list() == [10, 10]
    assert dict(zip(joined["signal_id"], joined["paper_price"], strict=True)) == dict(
        zip(stops["signal_id"], stops["filled_price"], strict=True))
    assert cmp.joined.filter(pl.col("leg").is_null())["signal_id"].sort().to_list() == sorted([down.id, later.id])
    rec = subprocess.run([sys.executable, "-m", "marketboss", "reconcile", "--stop-loss-pct", "5"], cwd=tmp_path,
                         env=_env(), capture_output=True, text=True, timeout=180)  # fmt: skip
    assert rec.returncode == 0, rec.stderr
    assert "stop_loss" in rec.stdout and down.id in rec.stdout


@pytest.mark.parametrize("flag", ["--stop-loss-pct", "--take-profit-pct", "--trail-percent"])
def test_an_exit_given_as_a_fraction_is_refused_in_one_line(tmp_path: Path, flag: str) -> None:
    name = flag.removeprefix("--").replace("-", "_")
    _, bars = make_bars(tmp_path)
    signals_path, _ = make_signals(tmp_path, bars, n=1)
    proc = subprocess.run(_paper("--signals", str(signals_path), flag, "0.05"), cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2
    assert f"{name} is a percent in [0.1, 50] (5 means 5%), got 0.05" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "data/paper_trading_trades.jsonl").exists()


def test_a_trailing_stop_with_a_take_profit_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    """The broker gives an entry's shares to one exit order: the take-profit held them, every trailing stop was
    refused ("insufficient qty available") and paper traded otherwise than its backtest (28 of 112 fills)."""
    _, bars = make_bars(tmp_path)
    signals_path, _ = make_signals(tmp_path, bars, n=1)
    proc = subprocess.run(_paper("--signals", str(signals_path), "--trail-percent", "4", "--take-profit-pct", "8"),
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: exits: a trailing stop goes without a take-profit: a broker gives an entry's")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "data/paper_trading_trades.jsonl").exists()


@pytest.mark.parametrize("option", ["--signals", "--trades-output", "--equity-output"])
def test_a_directory_given_as_a_file_is_one_line_before_anything_starts(tmp_path: Path, option: str) -> None:
    """Before: `error: unexpected IsADirectoryError` (exit 1), a broker started and a lock file left behind."""
    _, bars = make_bars(tmp_path)
    signals_path, _ = make_signals(tmp_path, bars, n=1)
    (tmp_path / "somewhere").mkdir()
    args = {"--signals": str(signals_path), "--trades-output": "t.jsonl", "--equity-output": "e.jsonl",
            "--broker-db": "b.sqlite", option: "somewhere"}  # fmt: skip
    proc = subprocess.run(_paper(*[x for kv in args.items() for x in kv]), cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "somewhere" in proc.stderr and "is a directory: give a file" in proc.stderr
    assert proc.stderr.count("error:") == 1 and "Traceback" not in proc.stderr and "unexpected" not in proc.stderr
    assert not any((tmp_path / f).exists() for f in ("t.jsonl", "e.jsonl", "b.sqlite", "somewhere.lock"))


def test_paper_long_only_cuts_a_sale_to_the_shares_held(tmp_path: Path) -> None:
    """A signals file does not say its strategy was long-only: `--long-only` does, and a sale of shares the
    account does not hold is skipped (without it, the sales open shorts)."""
    from marketboss.signals import write_signals

    data, bars = make_bars(tmp_path)
    (tmp_path / "data").mkdir()
    data.rename(tmp_path / "data/market_data.jsonl")
    _, signals = make_signals(tmp_path, bars, n=6)
    sales = [s for s in signals if s.action == "SELL"]
    assert len(sales) == 3
    for flag, db in ((["--long-only"], "lo.sqlite"), ([], "ls.sqlite")):
        write_signals(tmp_path / "data/sales.jsonl", sales)
        trades = tmp_path / f"data/{db}.trades.jsonl"
        proc = subprocess.run(_paper("--signals", "data/sales.jsonl", *flag, "--broker-db", f"data/{db}",
                                     "--trades-output", str(trades), "--equity-output", str(trades) + ".eq",
                                     "--poll-interval", "0.05"), cwd=tmp_path, env=_env(), capture_output=True,
                              text=True, timeout=180)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        records = read_jsonl_records(trades)
        if flag:
            assert {(t["status"], t["reason"]) for t in records} == {
                ("skipped", "long_only: no shares held to sell (never a short)")}  # fmt: skip
        else:
            assert {t["status"] for t in records} == {"filled"} and len(records) == 3


def test_a_replay_in_chunks_trades_as_one_run_when_a_chunk_starts_with_a_sale_of_a_position_with_exits(
        tmp_path: Path) -> None:  # fmt: skip
    """The demo's signals with a 5% stop on every entry, paper-traded 50 at a time (--max-trades): the 51st sells
    MSFT, whose stop works. Each run goes on from where the last left the clock, at the end of that sale's bar
    (before: the first run moved it on to the sale's fill bar and the second stopped with "the local broker's
    clock went past ... another run replaying on the same broker?"; there the stop could trade before the sale
    canceled it), and the chunks trade what one run trades."""
    data = tmp_path / "data"
    data.mkdir()
    env = _env()
    for cmd in (["data", "synth", "--output", "data/market_data.jsonl"],
                ["signals", "generate", "--strategy", "ma_crossover", "--output", "data/signals.jsonl"]):  # fmt: skip
        assert subprocess.run([sys.executable, "-m", "marketboss", *cmd], cwd=tmp_path, env=env, capture_output=True,
                              timeout=180).returncode == 0  # fmt: skip

    def paper(name: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(_paper("--signals", "data/signals.jsonl", "--stop-loss-pct", "5", "--order-interval",
                                     "0", "--broker-db", f"data/{name}.sqlite", "--trades-output",
                                     f"data/{name}_t.jsonl", "--equity-output", f"data/{name}_e.jsonl", *extra),
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip

    chunks = [paper("chunks", "--max-trades", "50") for _ in range(2)]
    assert [c.returncode for c in chunks] == [0, 0], chunks[-1].stderr
    whole = paper("whole", "--max-trades", "100")
    assert whole.returncode == 0, whole.stderr

    def traded(name: str) -> list[tuple[Any, ...]]:
        return [(t["signal_id"], t["leg"], t["qty"], t["filled_price"], t["status"])
                for t in read_jsonl_records(tmp_path / f"data/{name}_t.jsonl")]  # fmt: skip

    assert traded("chunks") == traded("whole") and len(traded("whole")) >= 100


@pytest.mark.parametrize("stamp", ["T00:00:00Z", "T21:00:00Z", ""], ids=["midnight_utc", "close_21z", "date"])
def test_a_replay_of_daily_bars_stamped_otherwise_fills_each_signal_at_its_next_sessions_open(
        tmp_path: Path, stamp: str) -> None:  # fmt: skip
    """Daily bars stamped at midnight UTC, at the 16:00 close (21:00Z) or as dates, which the local broker serves
    stamped at midnight New York: the replay finds each signal's next bar there, and paper fills every order at
    the backtest's open. Before, it asked the broker for bars stamped as the file's, which it has not: the clock
    stayed at the first bar, where every order filled (exit 0)."""
    from marketboss.data.synth import synth_bars

    day = pl.col("timestamp").dt.convert_time_zone("America/New_York").dt.strftime("%Y-%m-%d")
    bars = synth_bars(["AAPL", "MSFT"], "2023-01-01", "2023-06-30", "1Day", seed=3)
    lines = bars.with_columns((day + stamp).alias("timestamp")).write_ndjson()
    (tmp_path / "bars.jsonl").write_text(lines)
    run = subprocess.run([sys.executable, "-m", "marketboss", "backtest", "--data", "bars.jsonl", "--strategy",
                          "ma_crossover", "--param", "fast=5", "--param", "slow=20", "--spread-bps", "2",
                          "--output-dir", "run"], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                         timeout=180)  # fmt: skip
    assert run.returncode == 0, run.stderr
    proc = subprocess.run(_paper("--data", "bars.jsonl", "--signals", "run/signals.jsonl", "--trades-output",
                                 "trades.jsonl", "--equity-output", "equity.jsonl", "--poll-interval", "0.05"),
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=180)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    fills = pl.read_ndjson(tmp_path / "run/fills.jsonl")
    paper = pl.DataFrame(read_jsonl_records(tmp_path / "trades.jsonl"))
    assert fills.height >= 4 and paper["status"].to_list() == ["filled"] * fills.height
    ny_day = pl.col("timestamp").str.to_datetime(time_zone="UTC").dt.convert_time_zone("America/New_York").dt.date()
    at = paper.select("signal_id", "filled_price", ny_day.alias("day")).join(fills.select(
        "signal_id", "price", pl.col("timestamp").str.slice(0, 10).str.to_date().alias("bt_day")), on="signal_id")
    assert at.height == fills.height and (at["day"] == at["bt_day"]).all()  # the session of the backtest's fill
    assert at["filled_price"].to_list() == pytest.approx(at["price"].to_list(), rel=1e-9)
