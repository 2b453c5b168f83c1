"""Signals files: deterministic ids, the contract's layout, the guide's minimal form, and clear errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from marketboss.data.io import write_bars
from marketboss.data.market import Market
from marketboss.errors import InputError
from marketboss.signals import (
    SIGNAL_FIELDS,
    read_signals,
    read_signals_frame,
    signal_id,
    write_signals,
)
from marketboss.strategies import create

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def market(daily_bars: pl.DataFrame) -> Market:
    return Market.from_bars(daily_bars)


def test_same_inputs_give_the_same_signals_and_ids(market: Market) -> None:
    a = create("ma_crossover", ["fast=5", "slow=20"]).signals(market)
    b = create("ma_crossover", {"slow": 20, "fast": 5}).signals(Market.from_bars(market_bars(market)))
    assert a.height > 10
    assert a.equals(b)
    assert a["id"].n_unique() == a.height


def market_bars(market: Market) -> pl.DataFrame:
    rows = []
    for s in range(market.n_symbols):
        b = market.symbol_bars(s)
        rows.append(pl.DataFrame({"timestamp": b.times, "symbol": b.symbol, "open": b.open, "high": b.high,
                                  "low": b.low, "close": b.close, "volume": b.volume}))
    df = pl.concat(rows)
    return df.with_columns(pl.col("timestamp").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))


def test_ids_depend_on_parameters_and_match_the_one_signal_function(market: Market) -> None:
    strat = create("ma_crossover", ["fast=5", "slow=20"])
    sig = strat.signals(market)
    other = create("ma_crossover", ["fast=5", "slow=21"]).signals(market)
    assert not set(sig["id"]) & set(other["id"])
    for row in sig.head(20).iter_rows(named=True):
        assert row["id"] == signal_id("ma_crossover", strat.params_json(), row["symbol"], row["timestamp"],
                                      row["action"])


def test_written_file_follows_the_contract_and_reads_back(market: Market, tmp_path: Path) -> None:
    sig = create("momentum", []).signals(market)
    path = tmp_path / "signals.jsonl"
    assert write_signals(path, sig) == sig.height
    first = json.loads(path.read_text().splitlines()[0])
    assert tuple(first) == SIGNAL_FIELDS
    assert first["timestamp"].endswith("Z") and first["quantity"] is None and 0 < first["target_weight"] <= 1
    back = read_signals_frame(path)
    assert back.drop("_line").equals(sig)


def test_quantities_are_written_as_whole_numbers(market: Market, tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    write_signals(path, create("ma_crossover", []).signals(market))
    assert '"quantity":10,' in path.read_text().splitlines()[0]


def test_the_guides_minimal_form_gets_stable_unique_ids(tmp_path: Path) -> None:
    path = tmp_path / "minimal.jsonl"
    line = '{"timestamp": "2025-01-02T14:30:00Z", "action": "BUY", "symbol": "AAPL", "quantity": 10}\n'
    path.write_text(line + line + line.replace("BUY", "sell"))
    sigs = read_signals(path)
    assert [s.action for s in sigs] == ["BUY", "BUY", "SELL"]
    assert len({s.id for s in sigs}) == 3 and all(s.id.startswith("sig-") for s in sigs)
    assert [s.id for s in read_signals(path)] == [s.id for s in sigs]
    assert sigs[0].timestamp == datetime(2025, 1, 2, 14, 30, tzinfo=UTC)


BAD_LINES = [
    ('{"timestamp": "2025-01-02T14:30:00Z", "action": "BUY", "quantity": 10}', "symbol", "missing"),
    ('{"timestamp": "2025-01-02T14:30:00Z", "action": "HOLD", "symbol": "AAPL", "quantity": 10}', "action", "BUY"),
    ('{"timestamp": "2025-01-02T14:30:00Z", "action": "BUY", "symbol": "AAPL", "quantity": -5}', "quantity", "range"),
    ('{"timestamp": "yesterday", "action": "BUY", "symbol": "AAPL", "quantity": 5}', "timestamp", "datetime"),
    ('{"timestamp": "2025-01-02T14:30:00Z", "action": "BUY", "symbol": "aapl", "quantity": 5}', "symbol", "upper"),
    ('{"timestamp": "2025-01-02T14:30:00Z", "action": "BUY", "symbol": "AAPL"}', None, "exactly one"),
    ('{"timestamp": "2025-01-02T14:30:00Z", "action": "BUY", "symbol": "AAPL", "quantity": 1, "target_weight": 0.5}',
     None, "exactly one"),
    ('{"timestamp": "2025-01-02T14:30:00Z", "action": "BUY", "symbol": "AAPL", "target_weight": 1.5}',
     "target_weight", "1.5 is out of range: must be >= -1 and <= 1"),
    ('{"timestamp": "2025-01-02T14:30:00Z", "action": "BUY", "symbol": "AAPL", "quantity": 5', None, "invalid JSON"),
]


@pytest.mark.parametrize(("bad", "field", "reason"), BAD_LINES)
def test_a_bad_line_names_file_line_and_field(tmp_path: Path, bad: str, field: str | None, reason: str) -> None:
    good = '{"timestamp": "2025-01-02T14:30:00Z", "action": "BUY", "symbol": "MSFT", "quantity": 1}'
    path = tmp_path / "signals.jsonl"
    path.write_text(f"{good}\n\n{bad}\n{good.replace('MSFT', 'JPM')}\n")
    with pytest.raises(InputError) as exc:
        read_signals(path)
    assert exc.value.line == 3
    assert exc.value.field == field
    assert reason in str(exc.value)
    assert str(exc.value).startswith(f"{path}:3:")


def test_skip_invalid_keeps_the_good_lines_and_records_the_bad(tmp_path: Path) -> None:
    path = tmp_path / "signals.jsonl"
    path.write_text(
        '{"timestamp": "2025-01-02T14:30:00Z", "action": "BUY", "symbol": "MSFT", "quantity": 1}\n'
        '{"timestamp": "2025-01-02T14:30:00Z", "action": "BUY", "symbol": "MSFT", "quantity": 0}\n'
        '{"id": "sig-1", "timestamp": "2025-01-03T14:30:00Z", "action": "SELL", "symbol": "MSFT", "quantity": 1}\n'
        '{"id": "sig-1", "timestamp": "2025-01-04T14:30:00Z", "action": "SELL", "symbol": "MSFT", "quantity": 1}\n'
    )
    rejects = tmp_path / "rejects.jsonl"
    sigs = read_signals(path, skip_invalid=True, rejects_path=rejects)
    assert [s.line for s in sigs] == [1, 3]
    recorded = [json.loads(x) for x in rejects.read_text().splitlines()]
    assert [(r["line"], r["field"]) for r in recorded] == [(2, "quantity"), (4, "id")]
    assert "duplicate id 'sig-1' (first on line 3)" in recorded[1]["reason"]


def test_writing_refuses_duplicate_ids(market: Market, tmp_path: Path) -> None:
    sig = create("ma_crossover", []).signals(market)
    path = tmp_path / "s.jsonl"
    with pytest.raises(InputError, match="duplicate signal id"):
        write_signals(path, pl.concat([sig, sig.head(1)]))
    assert not path.exists()


def _env() -> dict[str, str]:
    return {**os.environ, "MARKETBOSS_LOG_LEVEL": "warning"}


def test_guide_script_writes_data_signals_jsonl(daily_bars: pl.DataFrame, workdir: Path) -> None:
    write_bars(daily_bars, workdir / "data" / "market_data.jsonl")
    script = REPO / "scripts" / "generate_sample_signals.py"
    run = subprocess.run([sys.executable, str(script), "--data", "data/market_data.jsonl"],
                         capture_output=True, text=True, env=_env(), timeout=120)
    assert run.returncode == 0, run.stderr
    sigs = read_signals(workdir / "data" / "signals.jsonl")
    assert sigs and {s.strategy for s in sigs} == {"ma_crossover"} and {s.quantity for s in sigs} == {10.0}
    assert "wrote" in run.stdout
    bad = subprocess.run([sys.executable, str(script), "--data", "data/market_data.jsonl", "--param", "fast=x"],
                         capture_output=True, text=True, env=_env(), timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "fast='x'" in bad.stderr and "valid: " in bad.stderr


def _plain_python() -> str:
    """The interpreter this environment was made from, without its packages: a shell where .venv is not active."""
    return str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}")


def test_guide_scripts_work_from_a_shell_without_the_venv(daily_bars: pl.DataFrame, workdir: Path,
                                                          tmp_path: Path) -> None:  # fmt: skip
    write_bars(daily_bars, workdir / "data" / "market_data.jsonl")
    env = {k: v for k, v in _env().items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    assert subprocess.run([_plain_python(), "-c", "import marketboss"], capture_output=True, env=env).returncode
    run = subprocess.run([_plain_python(), str(REPO / "scripts" / "generate_sample_signals.py"), "--data",
                          "data/market_data.jsonl"], capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert read_signals(workdir / "data" / "signals.jsonl") and "wrote" in run.stdout
    # a checkout without .venv: one line saying what to do, no traceback
    bare = tmp_path / "checkout"
    shutil.copytree(REPO / "scripts", bare / "scripts")
    for script in ("generate_sample_signals.py", "run_paper_trading.py"):
        out = subprocess.run([_plain_python(), str(bare / "scripts" / script), "--help"], capture_output=True,
                             text=True, env=env, timeout=60)  # fmt: skip
        assert out.returncode == 2 and out.stdout == ""
        assert out.stderr.count("\n") == 1 and "run `make demo`" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("argv", [
    ["signals", "generate", "--param", "fast", "10"],
    ["backtest", "--strategy", "ma_crossover", "--param", "fast", "10"],
    ["compare", "--param", "ma_crossover.fast", "10"],
    ["train", "--param", "num_leaves", "31"],
])  # fmt: skip
def test_a_param_without_equals_is_told_the_key_value_form(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from marketboss.cli import app
    from marketboss.cli.common import run_guarded

    assert run_guarded(lambda: app(argv, prog_name="marketboss", standalone_mode=True)) == 2
    err = capsys.readouterr().err
    key = argv[argv.index("--param") + 1]
    assert err == f"error: --param '{key}' must look like key=value, e.g. --param {key}=VALUE\n"
