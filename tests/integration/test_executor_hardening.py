"""The executor under the issue-17 failures, against the real local broker: a bad signal is recorded and the run
goes on; outages and 429 bursts are ridden out; an order is adopted only when it is the intent's; commissions
come from the broker's fills; one executor per journal."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from marketboss.broker.alpaca import AlpacaBroker
from marketboss.broker.base import BrokerError, OrderRequest
from marketboss.config import Settings
from marketboss.data.io import read_jsonl_records
from marketboss.errors import MarketBossError
from marketboss.execution.connect import connect
from marketboss.execution.executor import Executor, client_order_id
from marketboss.execution.journal import Intent, Journal, journal_path
from marketboss.execution.replay import LocalReplay
from marketboss.local_broker.config import FaultConfig
from marketboss.local_broker.process import LocalBroker
from marketboss.signals import Signal, write_signals
from tests.integration.executor_fixtures import (
    AFTER_THE_SIGNALS,
    broker,
    broker_orders,
    executor,
    make_bars,
    make_signals,
)


def _faults(lb: LocalBroker, **faults: object) -> dict[str, object]:
    r = httpx.post(f"{lb.base_url}/admin/faults", json=faults, headers=lb.headers, timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _injected(lb: LocalBroker) -> int:
    seen = httpx.get(f"{lb.base_url}/admin/faults", headers=lb.headers, timeout=10).json()
    return int(sum(seen["injected"].values()))


def _fills(lb: LocalBroker) -> list[dict[str, object]]:
    r = httpx.get(f"{lb.base_url}/v2/account/activities/FILL", params={"direction": "asc", "page_size": 100},
                  headers=lb.headers, timeout=10)  # fmt: skip
    return list(r.json())


def _no_duplicates(lb: LocalBroker) -> Counter[str]:
    coids = Counter(str(o["client_order_id"]) for o in broker_orders(lb))
    assert set(coids.values()) == {1}, coids
    return coids


def test_an_unknown_symbol_in_the_middle_is_recorded_rejected_and_the_rest_run(tmp_path: Path) -> None:
    data, bars = make_bars(tmp_path)
    _, sigs = make_signals(tmp_path, bars, n=4)
    bad = sigs[1].model_copy(update={"id": "bad-1", "symbol": "ZZZZ"})
    signals = [sigs[0], bad, *sigs[2:]]
    path = tmp_path / "mixed.jsonl"
    write_signals(path, signals)
    with broker(tmp_path, data) as lb:
        summary = executor(tmp_path, lb, path, data).run()
        assert len(broker_orders(lb)) == 3
    records = read_jsonl_records(tmp_path / "trades.jsonl")
    assert [(r["signal_id"], r["status"]) for r in records] == [
        (sigs[0].id, "filled"), ("bad-1", "rejected"), (sigs[2].id, "filled"), (sigs[3].id, "filled")
    ]
    assert "unknown symbol ZZZZ" in records[1]["reason"] and summary.stopped_by is None


def test_an_18_second_outage_is_ridden_out_with_every_signal_terminal_and_none_doubled(tmp_path: Path) -> None:
    data, bars = make_bars(tmp_path)
    path, sigs = make_signals(tmp_path, bars, n=6)
    with broker(tmp_path, data) as lb:
        ex = executor(tmp_path, lb, path, data, retry_budget=60.0)
        # half a second between orders: the run (fills arrive on the stream at once) outlasts the first fill
        # by far more than it takes the outage to start, however loaded the machine
        ex.cfg = ex.cfg.model_copy(update={"backoff_max": 1.0, "order_interval": 0.5})
        outage: list[float] = []

        def outage_after_first_fill() -> None:
            trades = tmp_path / "trades.jsonl"
            while not trades.exists() or not trades.read_bytes():
                time.sleep(0.01)
            _faults(lb, error_503_rate=1.0, error_500_rate=0.0)
            start = time.monotonic()
            time.sleep(18.0)
            _faults(lb)
            outage.append(time.monotonic() - start)

        t = threading.Thread(target=outage_after_first_fill)
        t.start()
        summary = ex.run()
        t.join()
        assert outage and outage[0] >= 18.0 and _injected(lb) > 50
        coids = _no_duplicates(lb)
    records = read_jsonl_records(tmp_path / "trades.jsonl")
    assert [r["status"] for r in records] == ["filled"] * len(sigs) and summary.stopped_by is None
    assert set(coids) == {client_order_id(s.id) for s in sigs}


def test_a_fault_longer_than_the_budget_stops_the_run_naming_the_signal_line(tmp_path: Path) -> None:
    data, bars = make_bars(tmp_path)
    path, sigs = make_signals(tmp_path, bars, n=3)
    with broker(tmp_path, data, faults=FaultConfig(error_503_rate=1.0, paths=("/v2/positions",))) as lb:
        with pytest.raises(BrokerError) as err:
            executor(tmp_path, lb, path, data, retry_budget=1.0).run()
        assert broker_orders(lb) == []
    assert str(err.value).startswith(f"{path}:1: signal {sigs[0].id} (AAPL): get positions: HTTP 503")


def test_12_long_429_bursts_are_retried_without_waiting_out_rate_limit_windows(tmp_path: Path) -> None:
    data, bars = make_bars(tmp_path)
    path, sigs = make_signals(tmp_path, bars, n=9)
    faults = FaultConfig(burst_429_rate=0.15, burst_429_length=12, seed=5)
    with broker(tmp_path, data, faults=faults, rate_limit=5000) as lb:
        ex = executor(tmp_path, lb, path, data, retry_budget=60.0)
        waits: list[float] = []

        def sleep(seconds: float) -> None:
            waits.append(seconds)
            time.sleep(seconds)

        ex.sleep = ex.retry.sleep = sleep
        summary = ex.run()
        assert _injected(lb) >= 12
        _faults(lb)
        _no_duplicates(lb)
    records = read_jsonl_records(tmp_path / "trades.jsonl")
    assert [r["status"] for r in records] == ["filled"] * len(sigs) and summary.stopped_by is None
    assert waits and max(waits) < 1.0  # each 429 had budget left: backoff, not a rate-limit window


def test_the_start_up_check_is_retried(tmp_path: Path) -> None:
    data, _ = make_bars(tmp_path)
    with broker(tmp_path, data, faults=FaultConfig(error_503_rate=1.0, paths=("/v2/account",))) as lb:
        os.environ["MARKETBOSS_BROKER_KEY_ID"], os.environ["MARKETBOSS_BROKER_SECRET_KEY"] = lb.key_id, lb.secret_key
        try:
            threading.Timer(1.5, lambda: _faults(lb)).start()
            with connect(Settings(), broker_url=lb.base_url, retry_budget=30.0) as conn:
                assert conn.broker.account().status == "ACTIVE"
        finally:
            del os.environ["MARKETBOSS_BROKER_KEY_ID"], os.environ["MARKETBOSS_BROKER_SECRET_KEY"]


def _signal(sid: str, bars_ts: object, symbol: str, action: str, qty: float) -> Signal:
    return Signal(id=sid, timestamp=bars_ts, symbol=symbol, action=action, quantity=qty, strategy="t", price=100.0)


def test_an_order_under_the_same_client_order_id_but_another_intent_is_not_adopted(tmp_path: Path) -> None:
    data, bars = make_bars(tmp_path)
    ts = bars["timestamp"].unique().sort()[3]
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    write_signals(first / "s.jsonl", [_signal("c-1", ts, "MSFT", "BUY", 5)])
    write_signals(second / "s.jsonl", [_signal("c-1", ts, "AAPL", "SELL", 3), _signal("c-2", ts, "JPM", "BUY", 2)])
    with broker(tmp_path, data) as lb:
        executor(first, lb, first / "s.jsonl", data).run()
        executor(second, lb, second / "s.jsonl", data).run()  # a new signals file reusing the id c-1
        orders = broker_orders(lb)
    records = read_jsonl_records(second / "trades.jsonl")
    assert [(r["signal_id"], r["status"]) for r in records] == [("c-1", "rejected"), ("c-2", "filled")]
    reason = records[0]["reason"]
    assert "client_order_id mb-c-1 is already used at the broker by another order" in reason
    assert "symbol MSFT (intent: AAPL)" in reason and "quantity 5 (intent: 3)" in reason
    assert records[0]["filled_price"] is None and records[0]["qty"] == 0
    assert sorted((o["symbol"], o["side"], o["qty"]) for o in orders) == [("JPM", "buy", "2"), ("MSFT", "buy", "5")]


def test_a_resumed_intent_checks_the_order_it_finds_and_takes_commission_from_the_fills(tmp_path: Path) -> None:
    data, bars = make_bars(tmp_path)
    path, sigs = make_signals(tmp_path, bars, n=2)
    with broker(tmp_path, data, commission_bps=10.0, always_open=True) as lb:
        b = AlpacaBroker(lb.key_id, lb.secret_key, lb.base_url, data_url=lb.base_url, is_local=True)
        journal = Journal(journal_path(tmp_path / "trades.jsonl"))
        for sig, qty in zip(sigs, (10, 7), strict=True):  # a crash after each submit: intents 10 and 7 ...
            journal.intent(Intent(sig.id, client_order_id(sig.id), sig.symbol, "buy", float(qty)))
            b.submit_order(OrderRequest(sig.symbol, 10, "buy", client_order_id(sig.id)))  # ... orders 10 and 10
        journal.close()
        time.sleep(0.3)
        executor(tmp_path, lb, path, data).run()
        fills = _fills(lb)
    records = {r["signal_id"]: r for r in read_jsonl_records(tmp_path / "trades.jsonl")}
    good, bad = records[sigs[0].id], records[sigs[1].id]
    assert good["status"] == "filled" and good["qty"] == 10
    charged = sum(float(str(f["commission"])) for f in fills if f["symbol"] == sigs[0].symbol)
    assert charged > 0 and good["commission"] == pytest.approx(charged)
    assert bad["status"] == "rejected" and "quantity 10 (intent: 7)" in bad["reason"]


def test_two_executors_on_the_same_files_leave_one_set_of_records(tmp_path: Path) -> None:
    data, bars = make_bars(tmp_path)
    path, sigs = make_signals(tmp_path, bars, n=8)
    trades = tmp_path / "trades.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "MARKETBOSS_"))}
    with broker(tmp_path, data, fill_latency_ms=30.0, start=AFTER_THE_SIGNALS) as lb:
        env.update(MARKETBOSS_BROKER_KEY_ID=lb.key_id, MARKETBOSS_BROKER_SECRET_KEY=lb.secret_key,
                   MARKETBOSS_LOG_LEVEL="warning")  # fmt: skip
        cmd = [sys.executable, "-m", "marketboss", "paper", "--signals", str(path), "--broker-url", lb.base_url,
               "--trades-output", str(trades), "--equity-output", str(tmp_path / "equity.jsonl"),
               "--order-interval", "1", "--poll-interval", "0.02", "--allow-stale"]  # fmt: skip
        first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lock = tmp_path / "trades.lock"
        deadline = time.monotonic() + 60
        while not (lock.exists() and lock.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.01)
        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert first.poll() is None, "the first run should still be going"
        _, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
        assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
        assert f"another executor (pid {first.pid}) is running on these files" in second.stderr
        _no_duplicates(lb)
    records = read_jsonl_records(trades)
    assert [r["signal_id"] for r in records] == [s.id for s in sigs]
    intents = [r for r in read_jsonl_records(journal_path(trades)) if r["event"] == "intent"]
    assert len(intents) == len(sigs)


@pytest.mark.parametrize("first_live", [False, True], ids=["paper_then_live", "live_then_paper"])
def test_live_and_paper_runs_never_share_their_records(tmp_path: Path, first_live: bool) -> None:
    """The journal records the kind of account its runs trade (Alpaca's live one: real money, or paper): a run or
    a live session of the other kind on the same files is refused before it sends or writes anything (a signal
    done in one account would be skipped in the other; reconcile and the dashboard would mix the two)."""
    data, bars = make_bars(tmp_path)
    sig_path, _ = make_signals(tmp_path, bars, n=3)
    with broker(tmp_path, data) as lb:
        def of(live: bool) -> Executor:  # the local broker behind an account flag (what the guard reads)
            b = AlpacaBroker(lb.key_id, lb.secret_key, lb.base_url, data_url=lb.base_url, is_local=True,
                             paper=not live, timeout=5)  # fmt: skip
            cfg = executor(tmp_path, lb, sig_path, data).cfg
            return Executor(cfg, b, replay=LocalReplay(b, data, lb.key_id, lb.secret_key))

        assert of(first_live).run().statuses["filled"] == 3
        files = [tmp_path / "trades.jsonl", tmp_path / "equity.jsonl", journal_path(tmp_path / "trades.jsonl")]
        before, orders = [p.read_bytes() for p in files], len(broker_orders(lb))
        other = of(not first_live)
        said = "paper" if not first_live else "the live account"
        for start in (other.run, other.open_session):
            with pytest.raises(MarketBossError, match=rf"trades.jsonl: its trades are of {said}.*, this run trades "):
                start()
        assert [p.read_bytes() for p in files] == before and len(broker_orders(lb)) == orders
        assert of(first_live).run().already_done == 3  # the same kind goes on


def test_a_replay_whose_clock_another_run_moved_on_stops_before_sending(tmp_path: Path) -> None:
    """Two replays on one served broker: the clock, moved past a signal's bar by the other run, could not go back;
    the replay said so in a warning and sent the order anyway, filled days after its bar. Now it stops there."""
    data, bars = make_bars(tmp_path)
    _, signals = make_signals(tmp_path, bars, n=4)
    with broker(tmp_path, data, rate_limit=0) as lb:
        b = AlpacaBroker(lb.key_id, lb.secret_key, lb.base_url, is_local=True)
        replay = LocalReplay(b, data, lb.key_id, lb.secret_key, served=True)
        assert replay.before(signals[0])  # at its next bar
        later = signals[3].timestamp.isoformat().replace("+00:00", "Z")
        httpx.post(f"{lb.base_url}/admin/clock", json={"timestamp": later}, headers=lb.headers,
                   timeout=10).raise_for_status()  # fmt: skip  # the other run
        with pytest.raises(MarketBossError, match=r"^the local broker.s clock went past .* \(another run replaying"):
            replay.before(signals[1])
        replay.close()
