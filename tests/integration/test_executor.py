"""The executor against the local broker server, through the official SDK: normal runs, faults, partial fills,
timeouts and every risk check."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import pytest

from marketboss.data.io import read_jsonl_records
from marketboss.execution.logs import TRADE_FIELDS
from marketboss.local_broker.config import FaultConfig
from marketboss.risk import RiskConfig
from tests.integration.executor_fixtures import (
    AFTER_THE_SIGNALS,
    broker,
    broker_orders,
    executor,
    make_bars,
    make_signals,
)


def _positions(lb: object) -> dict[str, float]:
    r = httpx.get(f"{lb.base_url}/v2/positions", headers=lb.headers, timeout=10)  # type: ignore[attr-defined]
    return {p["symbol"]: float(p["qty"]) * (-1 if p["side"] == "short" else 1) for p in r.json()}


def _expected_positions(signals: list) -> dict[str, float]:  # type: ignore[type-arg]
    pos: Counter[str] = Counter()
    for s in signals:
        pos[s.symbol] += s.quantity if s.action == "BUY" else -s.quantity
    return {k: v for k, v in pos.items() if v}


def test_normal_run_fills_every_signal_at_the_next_bar_and_logs_the_guides_fields(tmp_path: Path) -> None:
    data, bars = make_bars(tmp_path)
    signals_path, signals = make_signals(tmp_path, bars)
    with broker(tmp_path, data) as lb:
        summary = executor(tmp_path, lb, signals_path, data).run()
        assert _positions(lb) == _expected_positions(signals)
        orders = broker_orders(lb)
    trades = read_jsonl_records(tmp_path / "trades.jsonl")
    assert [t["signal_id"] for t in trades] == [s.id for s in signals]
    assert all(t["status"] == "filled" and t["qty"] == 10 for t in trades)
    assert all(set(TRADE_FIELDS) <= set(t) for t in trades)
    assert summary.statuses["filled"] == len(signals)
    assert len(orders) == len(signals) and {o["client_order_id"] for o in orders} == {f"mb-{s.id}" for s in signals}
    # replay: each fill is at the symbol's next bar open, give or take half the quoted spread (2 bps)
    by = {(r["symbol"], r["timestamp"]): r for r in bars.rows(named=True)}
    stamps = sorted({r["timestamp"] for r in bars.rows(named=True)})
    for s, t in zip(signals, trades, strict=True):
        nxt = stamps[stamps.index(s.timestamp) + 1]
        assert t["filled_price"] == pytest.approx(by[(s.symbol, nxt)]["open"], rel=2e-4)
    equity = read_jsonl_records(tmp_path / "equity.jsonl")
    assert len(equity) >= len(signals) + 2  # start, after every fill, end
    assert set(equity[0]) - {"_line"} == {"timestamp", "cash", "portfolio_value", "buying_power", "equity_multiplier"}
    assert equity[-1]["timestamp"] > equity[0]["timestamp"]  # simulated time moved with the signals


def test_a_second_run_with_the_same_arguments_places_nothing_again(tmp_path: Path) -> None:
    data, bars = make_bars(tmp_path)
    signals_path, _signals = make_signals(tmp_path, bars, n=4)
    with broker(tmp_path, data) as lb:
        executor(tmp_path, lb, signals_path, data).run()
        again = executor(tmp_path, lb, signals_path, data).run()
        assert again.already_done == 4 and sum(again.statuses.values()) == 0
        assert len(broker_orders(lb)) == 4
    assert len(read_jsonl_records(tmp_path / "trades.jsonl")) == 4


@pytest.mark.parametrize(
    "faults",
    [
        FaultConfig(burst_429_rate=0.2, burst_429_length=3, seed=1),
        FaultConfig(error_500_rate=0.15, error_503_rate=0.1, error_504_rate=0.1, seed=2),
        FaultConfig(drop_rate=0.15, latency_ms=20, latency_jitter_ms=30, seed=3),
        FaultConfig(fail_after_commit_rate=0.5, drop_after_commit_rate=0.3, paths=("/v2/orders",), seed=4),
    ],
    ids=["429-bursts", "5xx", "drops-and-latency", "ambiguous-after-commit"],
)
def test_faults_never_duplicate_an_order_and_every_signal_finishes(tmp_path: Path, faults: FaultConfig) -> None:
    data, bars = make_bars(tmp_path)
    signals_path, signals = make_signals(tmp_path, bars, n=9)
    with broker(tmp_path, data, faults=faults, rate_limit=0) as lb:
        executor(tmp_path, lb, signals_path, data, retry_budget=60).run()
        orders = broker_orders_without_faults(lb)
        assert _positions(lb) == _expected_positions(signals)
    coids = Counter(o["client_order_id"] for o in orders)
    assert set(coids.values()) == {1} and len(coids) == len(signals)
    trades = read_jsonl_records(tmp_path / "trades.jsonl")
    assert [t["status"] for t in trades] == ["filled"] * len(signals)


def broker_orders_without_faults(lb: object) -> list[dict[str, object]]:
    """Prove the faults really happened, then switch them off to read the broker's state."""
    seen = httpx.get(f"{lb.base_url}/admin/faults", headers=lb.headers, timeout=10).json()  # type: ignore[attr-defined]
    assert sum(seen["injected"].values()) > 0, seen
    r = httpx.post(f"{lb.base_url}/admin/faults", json={}, headers=lb.headers, timeout=10)  # type: ignore[attr-defined]
    assert r.status_code == 200, r.text
    return broker_orders(lb)  # type: ignore[arg-type]


def test_partial_fills_are_followed_to_completion(tmp_path: Path) -> None:
    data, bars = make_bars(tmp_path)
    signals_path, _signals = make_signals(tmp_path, bars, n=3)
    with broker(tmp_path, data, partial_fill_rate=1.0, fill_latency_ms=30.0) as lb:
        executor(tmp_path, lb, signals_path, data).run()
        acts = httpx.get(f"{lb.base_url}/v2/account/activities/FILL", headers=lb.headers, timeout=10).json()
    trades = read_jsonl_records(tmp_path / "trades.jsonl")
    assert [t["status"] for t in trades] == ["filled"] * 3 and [t["qty"] for t in trades] == [10, 10, 10]
    assert Counter(a["type"] for a in acts) == {"partial_fill": 3, "fill": 3}


def test_fill_timeout_cancels_and_records_expired(tmp_path: Path) -> None:
    data, bars = make_bars(tmp_path)
    signals_path, _ = make_signals(tmp_path, bars, n=2)
    with broker(tmp_path, data, fill_latency_ms=60_000.0) as lb:
        summary = executor(tmp_path, lb, signals_path, data, fill_timeout=0.3).run()
        orders = broker_orders(lb)
    assert summary.statuses == {"expired": 2}
    assert {o["status"] for o in orders} == {"canceled"}
    trades = read_jsonl_records(tmp_path / "trades.jsonl")
    assert [(t["status"], t["qty"], t["filled_price"]) for t in trades] == [("expired", 0, None)] * 2


@pytest.mark.parametrize(
    ("risk", "check"),
    [
        (RiskConfig(max_order_notional=100.0), "max_order_notional"),
        (RiskConfig(allowed_symbols="SPY"), "allow_list"),
        (RiskConfig(max_position_shares=5), "max_position_shares"),
        (RiskConfig(max_position_pct=0.0001), "max_position_pct"),
    ],
)
def test_each_risk_check_blocks_before_any_order(tmp_path: Path, risk: RiskConfig, check: str) -> None:
    data, bars = make_bars(tmp_path)
    signals_path, _ = make_signals(tmp_path, bars, n=3)
    with broker(tmp_path, data) as lb:
        executor(tmp_path, lb, signals_path, data, risk=risk).run()
        assert broker_orders(lb) == []
    trades = read_jsonl_records(tmp_path / "trades.jsonl")
    assert [t["status"] for t in trades] == ["blocked"] * 3
    assert all(t["reason"].startswith(f"{check}: ") for t in trades)


def test_buying_power_and_market_hours_checks(tmp_path: Path) -> None:
    data, bars = make_bars(tmp_path)
    signals_path, _ = make_signals(tmp_path, bars, n=1, qty=100_000)
    with broker(tmp_path, data) as lb:
        executor(tmp_path, lb, signals_path, data).run()
    assert read_jsonl_records(tmp_path / "trades.jsonl")[0]["reason"].startswith("buying_power: ")
    other = tmp_path / "closed"
    other.mkdir()
    signals_path, _ = make_signals(other, bars, n=1)
    with broker(other, data, start="2024-01-06T15:00:00Z") as lb:  # a Saturday; no replay moves the clock
        executor(other, lb, signals_path, data, replay=False, allow_stale=True).run()  # Thursday's signal
        assert broker_orders(lb) == []
    assert read_jsonl_records(other / "trades.jsonl")[0]["reason"].startswith("market_open: market is closed")


def test_an_unknown_symbol_is_rejected_for_its_asset_and_the_run_goes_on(tmp_path: Path) -> None:
    """The reads before an order go together (ReadsAtOnce): the unknown symbol's price read fails too, but the
    reason recorded is the first check's, the asset's, as when they went one after another."""
    from marketboss.signals import Signal, signal_id, write_signals

    data, bars = make_bars(tmp_path)
    _, signals = make_signals(tmp_path, bars, n=2)
    ts = signals[0].timestamp
    ghost = Signal(id=signal_id("test", {}, "ZZZZ", ts, "BUY"), timestamp=ts, symbol="ZZZZ", action="BUY",
                   quantity=10, strategy="test", price=10.0)  # fmt: skip
    path = tmp_path / "with_ghost.jsonl"
    write_signals(path, [signals[0], ghost, signals[1]])
    with broker(tmp_path, data, start=AFTER_THE_SIGNALS) as lb:
        summary = executor(tmp_path, lb, path, data, replay=False, allow_stale=True).run()
    trades = read_jsonl_records(tmp_path / "trades.jsonl")
    assert [(t["symbol"], t["status"]) for t in trades] == [(signals[0].symbol, "filled"), ("ZZZZ", "rejected"),
                                                            (signals[1].symbol, "filled")]  # fmt: skip
    assert trades[1]["reason"] == "unknown symbol ZZZZ: the broker has no such asset"
    assert summary.statuses == {"filled": 2, "rejected": 1}


def test_slow_answers_size_every_order_from_its_own_reads(tmp_path: Path) -> None:
    """With every answer delayed (reads overlapping in flight), each order is still sized from the account and
    position as they stood before it: a round trip of buys and sells ends flat where the signals do."""
    data, bars = make_bars(tmp_path)
    signals_path, signals = make_signals(tmp_path, bars, n=6)
    with broker(tmp_path, data, faults=FaultConfig(latency_ms=15, latency_jitter_ms=30, seed=7)) as lb:
        executor(tmp_path, lb, signals_path, data).run()
        assert _positions(lb) == _expected_positions(signals)
    trades = read_jsonl_records(tmp_path / "trades.jsonl")
    assert [(t["signal_id"], t["status"], t["qty"]) for t in trades] == [(s.id, "filled", 10) for s in signals]


def test_daily_loss_kill_switch_cancels_and_stops(tmp_path: Path) -> None:
    from marketboss.execution.executor import KillSwitch

    data, bars = make_bars(tmp_path)
    signals_path, _ = make_signals(tmp_path, bars, n=6)
    with broker(tmp_path, data, spread_bps=50.0) as lb:  # a wide spread: the first buy loses at once
        ex = executor(tmp_path, lb, signals_path, data, risk=RiskConfig(max_daily_loss_pct=0.0000001))
        with pytest.raises(KillSwitch, match="kill switch: daily loss"):
            ex.run()
        assert len(broker_orders(lb)) < 6
        again = executor(tmp_path, lb, signals_path, data, risk=RiskConfig(max_daily_loss_pct=0.0000001))
        with pytest.raises(KillSwitch, match="tripped earlier today"):
            again.run()
    journal = read_jsonl_records(tmp_path / "trades.journal.jsonl")
    assert any(r["event"] == "kill_switch" for r in journal)


def test_a_run_alerts_fills_rejections_and_its_summary_by_email_and_webhook(tmp_path: Path) -> None:
    from marketboss.alerts import Alerter
    from tests.integration.alert_servers import smtp_server, webhook_server

    data, bars = make_bars(tmp_path)
    signals_path, _ = make_signals(tmp_path, bars, n=3)
    with smtp_server() as (inbox, mail_url), webhook_server() as (hooks, hook_url), broker(tmp_path, data) as lb:
        ex = executor(tmp_path, lb, signals_path, data, risk=RiskConfig(allowed_symbols="AAPL,MSFT"))
        ex.alerter = Alerter([mail_url, hook_url])
        ex.run()
    subjects = inbox.subjects()
    assert sum("BUY 10 AAPL @" in s for s in subjects) == 1 and sum("BUY 10 MSFT @" in s for s in subjects) == 1
    assert "[MarketBoss] JPM order blocked" in subjects and subjects[-1] == "[MarketBoss] paper run summary"
    assert [p["title"] for p in hooks.posts] == subjects
    assert "orders filled: 2" in hooks.posts[-1]["message"] and "orders blocked: 1" in hooks.posts[-1]["message"]
