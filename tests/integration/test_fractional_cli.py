"""--fractional meets Alpaca's rule for fractional orders (simple market or limit day orders: no bracket, OCO,
OTO or trailing stop, nothing gtc): paper, live and backtest refuse in one line, before anything is sent or
written, what the broker would refuse for every entry (it once took 125 rejections and exited 0)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.executor_fixtures import make_bars, make_signals

ROOT = Path(__file__).resolve().parents[2]
ERROR = "cannot be placed"


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "MARKETBOSS_"))}
    env["MARKETBOSS_LOG_LEVEL"] = "warning"
    return subprocess.run([sys.executable, "-m", "marketboss", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def _weighted(tmp: Path, **fields: object) -> tuple[Path, Path]:
    """Bars and three buys sized by target weight (fractions of a share with --fractional), each with `fields`."""
    data, bars = make_bars(tmp)
    path, signals = make_signals(tmp, bars, n=3)
    rows = [{**s.model_dump(mode="json", exclude_none=True), "quantity": None, "target_weight": 0.1, **fields}
            for s in signals]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data, path


def _one_line_refusal(proc: subprocess.CompletedProcess[str], field: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert f"field '{field}'" in proc.stderr and "--fractional" in proc.stderr and ERROR in proc.stderr


@pytest.mark.parametrize(("args", "fields", "field"), [
    (["--stop-loss-pct", "5"], {}, "stop_loss"),
    (["--trail-percent", "5"], {}, "trail_percent"),
    ([], {"take_profit": 1000.0}, "take_profit"),
    ([], {"order_type": "stop", "stop_price": 1000.0}, "order_type"),
    ([], {"order_type": "limit", "limit_price": 1.0, "time_in_force": "gtc"}, "time_in_force"),
])  # fmt: skip
def test_paper_and_backtest_refuse_fractional_orders_alpaca_refuses_before_anything_is_written(
    tmp_path: Path, args: list[str], fields: dict[str, object], field: str
) -> None:
    data, signals = _weighted(tmp_path, **fields)
    paper = _run(tmp_path, "paper", "--signals", str(signals), "--data", str(data), "--fractional",
                 "--broker-db", "broker.sqlite", "--trades-output", "trades.jsonl", "--equity-output", "equity.jsonl",
                 *args)  # fmt: skip
    _one_line_refusal(paper, field)
    assert f"{signals}:1:" in paper.stderr
    assert not any((tmp_path / f).exists() for f in ("broker.sqlite", "trades.jsonl", "equity.jsonl"))
    backtest = _run(tmp_path, "backtest", "--signals", str(signals), "--data", str(data), "--fractional",
                    "--output-dir", "run", *args)  # fmt: skip
    _one_line_refusal(backtest, field)
    assert not (tmp_path / "run").exists()
    whole = _run(tmp_path, "backtest", "--signals", str(signals), "--data", str(data), "--output-dir", "run", *args)
    assert whole.returncode == 0, whole.stderr  # whole shares: Alpaca takes these orders


def test_fractional_market_day_orders_by_weight_still_trade_in_paper_and_backtest(tmp_path: Path) -> None:
    data, signals = _weighted(tmp_path)
    backtest = _run(tmp_path, "backtest", "--signals", str(signals), "--data", str(data), "--fractional",
                    "--output-dir", "run")  # fmt: skip
    assert backtest.returncode == 0, backtest.stderr
    paper = _run(tmp_path, "paper", "--signals", str(signals), "--data", str(data), "--fractional",
                 "--broker-db", "broker.sqlite", "--trades-output", "trades.jsonl", "--equity-output", "equity.jsonl")
    assert paper.returncode == 0, paper.stderr
    trades = [json.loads(line) for line in (tmp_path / "trades.jsonl").read_text().splitlines()]
    assert len(trades) == 3 and all(t["status"] == "filled" for t in trades)
    assert all(t["qty"] != int(t["qty"]) for t in trades)  # fractions of a share, accepted by the broker


def test_live_refuses_fractional_weights_with_a_strategys_exits_before_starting(tmp_path: Path) -> None:
    data, _ = make_bars(tmp_path)
    live = _run(tmp_path, "live", "--strategy", str(ROOT / "examples/time_trailing_stop.py") + ":TimeTrailingStop",
                "--param", "sizing=weight", "--fractional", "--symbols", "AAPL", "--timeframe", "1Day",
                "--replay-from", "2024-01-02", "--data", str(data), "--broker-db", "broker.sqlite",
                "--signals-output", "signals.jsonl", "--trades-output", "trades.jsonl",
                "--equity-output", "equity.jsonl", "--status-output", "status.json")  # fmt: skip
    assert live.returncode == 2, live.stderr
    assert live.stderr.count("\n") == 1 and "Traceback" not in live.stderr
    assert "--fractional" in live.stderr and "trail_percent=5" in live.stderr and ERROR in live.stderr
    assert not any((tmp_path / f).exists() for f in ("broker.sqlite", "signals.jsonl", "trades.jsonl"))


STOPPED = '''
from marketboss import Context, EventParams, EventStrategy


class Stopped(EventStrategy[EventParams]):
    """Its own exits on each weight order (none in its parameters): only the order itself shows them."""

    name = "stopped"
    params_model = EventParams

    def on_bar(self, ctx: Context) -> None:
        for s in range(len(ctx.symbols)):
            if ctx.position(s) == 0:
                ctx.target_weight(0.1, s, stop_loss=round(ctx.price(s) * 0.9, 2))
'''


def test_live_stops_before_sending_a_fractional_order_with_exits_its_on_bar_placed(tmp_path: Path) -> None:
    """Exits on_bar gives an order, not its parameters, show only as it decides: the run stops there, the order
    neither logged nor sent (it was sent, refused by the broker, and the strategy went on holding what the
    account never bought), as backtest --fractional refuses the strategy."""
    data, _ = make_bars(tmp_path)
    (tmp_path / "stopped.py").write_text(STOPPED)
    args = ("--data", str(data), "--fractional")
    backtest = _run(tmp_path, "backtest", "--strategy", "stopped.py:Stopped", *args, "--output-dir", "run")
    _one_line_refusal(backtest, "stop_loss")
    live = _run(tmp_path, "live", "--strategy", "stopped.py:Stopped", "--symbols", "AAPL", "--timeframe", "1Day",
                "--replay-from", "2024-01-02", *args, "--broker-db", "broker.sqlite", "--max-bars", "5",
                "--signals-output", "signals.jsonl", "--trades-output", "trades.jsonl",
                "--equity-output", "equity.jsonl", "--status-output", "status.json")  # fmt: skip
    _one_line_refusal(live, "stop_loss")
    assert "strategy stopped" in live.stderr
    assert (tmp_path / "signals.jsonl").read_text() == ""  # nothing logged, nothing sent
    assert not (tmp_path / "trades.jsonl").exists() or (tmp_path / "trades.jsonl").read_text() == ""
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["state"] == "failed" and status["orders_submitted"] == 0 and "--fractional" in status["stopped_by"]
    whole = _run(tmp_path, "live", "--strategy", "stopped.py:Stopped", "--symbols", "AAPL", "--timeframe", "1Day",
                 "--replay-from", "2024-01-02", "--data", str(data), "--broker-db", "whole.sqlite", "--max-bars", "3",
                 "--signals-output", "whole.jsonl", "--trades-output", "whole-trades.jsonl",
                 "--equity-output", "whole-equity.jsonl", "--status-output", "whole.json")  # fmt: skip
    assert whole.returncode == 0, whole.stderr  # whole shares: the same orders go, their exits with them
    assert len((tmp_path / "whole.jsonl").read_text().splitlines()) == 1


@pytest.mark.parametrize(("args", "fields", "field"), [
    (["--stop-loss-pct", "5"], {}, "stop_loss"),
    ([], {"take_profit": 1000.0}, "take_profit"),
    ([], {"order_type": "limit", "limit_price": 1.0, "time_in_force": "gtc"}, "time_in_force"),
])  # fmt: skip
def test_a_fractional_quantity_alpaca_refuses_is_refused_without_the_flag(
    tmp_path: Path, args: list[str], fields: dict[str, object], field: str
) -> None:
    """A signal of 2.5 shares (a strategy's half exposure unit of 5, or quantity=0.5) with exits: the backtest
    traded it and paper had every entry rejected ("fractional orders cannot be bracket orders"), exit 0. Now
    both refuse it in one line, --fractional or not; the same signals in whole shares trade."""
    data, bars = make_bars(tmp_path)
    path, signals = make_signals(tmp_path, bars, n=3, qty=2.5)
    rows = [{**s.model_dump(mode="json", exclude_none=True), **fields} for s in signals]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    paper = _run(tmp_path, "paper", "--signals", str(path), "--data", str(data), "--broker-db", "broker.sqlite",
                 "--trades-output", "trades.jsonl", "--equity-output", "equity.jsonl", *args)  # fmt: skip
    assert paper.returncode == 2 and paper.stderr.count("\n") == 1 and "Traceback" not in paper.stderr
    assert paper.stderr.startswith(f"error: {path}:1: field '{field}': a fractional quantity (2.5 shares) ")
    assert ERROR in paper.stderr
    assert not any((tmp_path / f).exists() for f in ("broker.sqlite", "trades.jsonl", "equity.jsonl"))
    backtest = _run(tmp_path, "backtest", "--signals", str(path), "--data", str(data), "--output-dir", "run", *args)
    assert backtest.returncode == 2 and backtest.stderr == paper.stderr and not (tmp_path / "run").exists()
    path.write_text("".join(json.dumps({**r, "quantity": 3}) + "\n" for r in rows))
    whole = _run(tmp_path, "backtest", "--signals", str(path), "--data", str(data), "--output-dir", "run", *args)
    assert whole.returncode == 0, whole.stderr
