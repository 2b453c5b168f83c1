"""The backtest kernels compiled ahead of time (backtest/kernels.py): the same results as nb.py's through numba,
arguments of other types sent to numba, the module ignored once a source changes, and a backtest command that
never imports numba."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import polars as pl
import pytest

from marketboss.backtest import BacktestConfig, Costs, FillMode, kernels, nb, run_backtest, run_strategy
from marketboss.backtest.engine import BacktestResult
from marketboss.data.market import Market
from marketboss.signals import write_signals
from marketboss.strategies import create

pytestmark = pytest.mark.xdist_group("aot")  # one build of the module at a time


@pytest.fixture(scope="module")
def aot() -> Iterator[ModuleType]:
    """The module for the current sources, built here (as `make` does) when it is missing or stale."""
    kernels.compiled.cache_clear()
    if kernels.compiled() is None:
        kernels.build()
        kernels.compiled.cache_clear()
    module = kernels.compiled()
    assert module is not None
    yield module
    kernels.compiled.cache_clear()


def _calls(module: ModuleType, counts: dict[str, int]) -> SimpleNamespace:
    """The module's kernels, each counting its calls."""

    def counted(name: str) -> Any:
        def call(*args: Any) -> Any:
            counts[name] = counts.get(name, 0) + 1
            return getattr(module, name)(*args)

        return call

    return SimpleNamespace(**{name: counted(name) for name in kernels.SIGNATURES})


def _same(a: BacktestResult, b: BacktestResult) -> None:
    for name in ("equity", "fills", "trades", "orders"):
        assert getattr(a, name).equals(getattr(b, name)), name
    assert a.metrics.keys() == b.metrics.keys()
    for key, value in a.metrics.items():
        assert value == b.metrics[key] or (value != value and b.metrics[key] != b.metrics[key]), key  # NaN == NaN


CONFIGS = [
    ("ma_crossover", {}, BacktestConfig(costs=Costs(commission=0.001, slippage_bps=2))),
    ("momentum", {"sizing": "weight", "weight": 0.3, "stop_loss_pct": 5, "take_profit_pct": 8}, BacktestConfig()),
    ("mean_reversion", {"trail_percent": 4, "long_only": False}, BacktestConfig(fill=FillMode.CLOSE)),
    ("ma_crossover", {"sizing": "weight", "weight": 0.2, "rebalance": "monthly"},
     BacktestConfig(cash=50_000.0, costs=Costs(commission_per_share=0.01, commission_min=1.0))),
]  # fmt: skip


@pytest.mark.parametrize(("strategy", "params", "config"), CONFIGS)
def test_the_compiled_module_gives_numbas_results(
    aot: ModuleType, daily_bars: pl.DataFrame, monkeypatch: pytest.MonkeyPatch, strategy: str,
    params: dict[str, Any], config: BacktestConfig,
) -> None:  # fmt: skip
    market = Market.from_bars(daily_bars)
    signals = create(strategy, params).signals(market)
    counts: dict[str, int] = {}
    monkeypatch.setattr(kernels, "compiled", lambda: _calls(aot, counts))
    compiled_run = run_backtest(market, signals, config)
    compiled_strategy, _ = run_strategy(market, create(strategy, params), config)
    assert counts["simulate"] == counts["mark"] == counts["round_trips"] == counts["trade_stats"] == 2
    monkeypatch.setattr(kernels, "compiled", lambda: None)
    numba_run = run_backtest(market, signals, config)
    assert numba_run.fills.height > 0
    _same(compiled_run, numba_run)
    _same(compiled_strategy, numba_run)


def test_equity_statistics_are_numbas(aot: ModuleType) -> None:
    equity = 1000.0 + np.cumsum(np.random.default_rng(3).normal(0, 5, 500))
    assert aot.equity_stats(1000.0, equity) == nb.equity_stats(1000.0, equity)


def test_arguments_of_other_types_go_to_numba(aot: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    pnl, ret, days = np.array([5.0, -2.0, 1.0]), np.array([1.0, -0.5, 0.2]), np.array([3.0, 1.0, 2.0])
    closed = np.array([True, True, False])
    counts: dict[str, int] = {}
    monkeypatch.setattr(kernels, "compiled", lambda: _calls(aot, counts))
    expected = nb.trade_stats(pnl, ret, days, closed)
    assert kernels.trade_stats(pnl, ret, days, closed) == expected and counts == {"trade_stats": 1}
    # float32, a strided view, integers where floats go: what the compiled code would misread
    for odd in (pnl.astype(np.float32), np.repeat(pnl, 2)[::2], pnl.astype(np.int64)):
        assert not kernels._fits(kernels.Arr("float64", 1), odd)
        kernels.trade_stats(odd, ret, days, closed)
    assert counts == {"trade_stats": 1}
    close = np.asfortranarray(np.arange(12.0).reshape(4, 3))
    assert not kernels._fits(kernels.Arr("float64", 2), close) and kernels._fits(kernels.Arr("float64", 2), close.T)
    assert not kernels._fits("float64", 1) and not kernels._fits("int64", True) and kernels._fits("bool", np.True_)


def test_a_change_to_any_source_leaves_the_module_unused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copies = []
    for i, path in enumerate(kernels.SOURCES):
        copy = tmp_path / f"{i}_{path.name}"
        copy.write_bytes(path.read_bytes())
        copies.append(copy)
    monkeypatch.setattr(kernels, "SOURCES", tuple(copies))
    name = kernels.module_name()
    assert name == kernels.module_name() and name.startswith("_aot_")
    for copy in copies:
        text = copy.read_bytes()
        copy.write_bytes(text + b"\n")
        assert kernels.module_name() != name, copy.name
        copy.write_bytes(text)
    assert kernels.module_name() == name


def test_switching_the_module_off_sends_every_call_to_numba(aot: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    kernels.compiled.cache_clear()
    monkeypatch.setenv("MARKETBOSS_AOT", "off")
    assert kernels.compiled() is None
    monkeypatch.delenv("MARKETBOSS_AOT")
    kernels.compiled.cache_clear()
    assert kernels.compiled() is aot


def test_a_backtest_command_runs_without_importing_numba(
    aot: ModuleType, daily_bars: pl.DataFrame, data: Path, workdir: Path
) -> None:
    write_signals(workdir / "signals.jsonl", create("ma_crossover").signals(Market.from_bars(daily_bars)))
    code = (
        "import runpy, sys\n"
        "sys.argv = ['marketboss', 'backtest', '--data', sys.argv[1], '--signals', 'signals.jsonl', "
        "'--output-dir', 'runs/aot']\n"
        "try:\n    runpy.run_module('marketboss', run_name='__main__')\n"
        "except SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "print('numba imported:', 'numba' in sys.modules)\n"
    )
    env = {**os.environ, "MARKETBOSS_LOG_LEVEL": "warning"}
    out = subprocess.run([sys.executable, "-c", code, str(data)], capture_output=True, text=True, env=env,
                         cwd=workdir, timeout=300, check=True).stdout  # fmt: skip
    assert out.strip().endswith("numba imported: False")
    assert (workdir / "runs" / "aot" / "metrics.json").exists()
