"""The kernels compiled ahead of time (marketboss.aot; each package's kernels.py): the same results as nb.py's
through numba, arguments of other types sent to numba, a module ignored once a source changes, and the commands of
the built-in strategies (signals and backtests) that never import numba."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib import import_module
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import polars as pl
import pytest

from marketboss.aot import Arr, fits
from marketboss.backtest import BacktestConfig, Costs, FillMode, kernels, nb, run_backtest, run_strategy
from marketboss.backtest.engine import BacktestResult
from marketboss.data.market import Market
from marketboss.signals import Signal, valid_orders, write_signals
from marketboss.strategies import create

pytestmark = pytest.mark.xdist_group("aot")  # one build of the modules at a time

REPO = Path(__file__).parents[2]
#: Every package's kernels compiled ahead of time, as scripts/compile_kernels.py (which `make` runs) lists them.
_SCRIPT = ast.parse((REPO / "scripts" / "compile_kernels.py").read_text())
PACKAGES = next(ast.literal_eval(node.value) for node in _SCRIPT.body
                if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "AHEAD_OF_TIME")
ALL = {p: import_module(f"{p}.kernels").KERNELS for p in PACKAGES}


@pytest.fixture(scope="module")
def built() -> Iterator[dict[str, ModuleType]]:
    """Each package's module for the current sources, built here (as `make` does) when missing or stale."""
    modules = {}
    for package, k in ALL.items():
        k.forget()
        if k.compiled() is None:
            k.build()
        module = k.compiled()
        assert module is not None, package
        modules[package] = module
    yield modules
    for k in ALL.values():
        k.forget()


@pytest.fixture(scope="module")
def aot(built: dict[str, ModuleType]) -> ModuleType:
    """The backtest's module."""
    return built["marketboss.backtest"]


def _calls(module: ModuleType, counts: dict[str, int], names: Any = kernels.SIGNATURES) -> SimpleNamespace:
    """The module's kernels, each counting its calls."""

    def counted(name: str) -> Any:
        def call(*args: Any) -> Any:
            counts[name] = counts.get(name, 0) + 1
            return getattr(module, name)(*args)

        return call

    return SimpleNamespace(**{name: counted(name) for name in names})


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
    monkeypatch.setattr(kernels.KERNELS, "compiled", lambda: _calls(aot, counts))
    compiled_run = run_backtest(market, signals, config)
    compiled_strategy, _ = run_strategy(market, create(strategy, params), config)
    assert counts["simulate"] == counts["mark"] == counts["round_trips"] == counts["trade_stats"] == 2
    monkeypatch.setattr(kernels.KERNELS, "compiled", lambda: None)
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
    monkeypatch.setattr(kernels.KERNELS, "compiled", lambda: _calls(aot, counts))
    expected = nb.trade_stats(pnl, ret, days, closed)
    assert kernels.trade_stats(pnl, ret, days, closed) == expected and counts == {"trade_stats": 1}
    # float32, a strided view, integers where floats go: what the compiled code would misread
    for odd in (pnl.astype(np.float32), np.repeat(pnl, 2)[::2], pnl.astype(np.int64)):
        assert not fits(Arr("float64", 1), odd)
        kernels.trade_stats(odd, ret, days, closed)
    assert counts == {"trade_stats": 1}
    close = np.asfortranarray(np.arange(12.0).reshape(4, 3))
    assert not fits(Arr("float64", 2), close) and fits(Arr("float64", 2), close.T)
    assert not fits("float64", 1) and not fits("int64", True) and fits("bool", np.True_)


@pytest.mark.parametrize("package", PACKAGES)
def test_a_change_to_any_source_leaves_the_module_unused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         package: str) -> None:  # fmt: skip
    k = ALL[package]
    assert {p.name for p in k.sources} >= {"nb.py", "kernels.py", "aot.py"}
    copies = []
    for i, path in enumerate(k.sources):
        copy = tmp_path / f"{i}_{path.name}"
        copy.write_bytes(path.read_bytes())
        copies.append(copy)
    monkeypatch.setattr(k, "sources", tuple(copies))
    name = k.module_name()
    assert name == k.module_name() and name.startswith("_aot_")
    for copy in copies:
        text = copy.read_bytes()
        copy.write_bytes(text + b"\n")
        assert k.module_name() != name, copy.name
        copy.write_bytes(text)
    assert k.module_name() == name


def test_every_package_with_kernels_is_compiled_ahead_of_time() -> None:
    declared = {f"marketboss.{p.parent.name}" for p in (REPO / "src" / "marketboss").glob("*/kernels.py")}
    assert declared == set(PACKAGES)


def test_switching_the_module_off_sends_every_call_to_numba(built: dict[str, ModuleType],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("MARKETBOSS_AOT", "off")
    for k in ALL.values():
        k.forget()
        assert k.compiled() is None
    monkeypatch.delenv("MARKETBOSS_AOT")
    for package, k in ALL.items():
        k.forget()
        assert k.compiled() is built[package]


#: Built-in strategies' parameters reaching every strategies, indicators and signals kernel a command runs.
SIGNAL_CASES = [
    ("ma_crossover", {}),
    ("ma_crossover", {"ma": "ema", "fast": 5, "slow": 20, "sizing": "weight", "rebalance": "monthly"}),
    ("momentum", {"mode": "breakout", "lookback": 30, "long_only": False, "stop_loss_pct": 5,
                  "take_profit_pct": 9}),
    ("momentum", {"trail_percent": 4, "rebalance": 7}),
    ("mean_reversion", {"mode": "rsi", "rsi_lower": 25, "rsi_upper": 75, "long_only": False}),
    ("mean_reversion", {"window": 15, "take_profit_pct": 6}),
]  # fmt: skip


def test_the_compiled_modules_make_numbas_signals(built: dict[str, ModuleType], daily_bars: pl.DataFrame,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Bit for bit, and every kernel these commands run went through its compiled module."""
    market = Market.from_bars(daily_bars)
    counts: dict[str, int] = {}
    making_signals = {p: k for p, k in ALL.items() if p not in ("marketboss.backtest", "marketboss.data")}
    for package, k in making_signals.items():
        monkeypatch.setattr(k, "compiled", lambda m=built[package], k=k: _calls(m, counts, k.signatures))
    compiled = [create(name, params).signals(market) for name, params in SIGNAL_CASES]
    # what a signals file's reader checks them with, also with every other row's price made negative (invalid)
    tampered = [s.with_columns(pl.when(pl.int_range(pl.len()) % 2 == 1).then(-pl.col("price")).otherwise("price")
                               .alias("price")) for s in compiled]  # fmt: skip
    passed = [valid_orders(s) for s in compiled + tampered]
    bracketed = compiled[2].drop_nulls("take_profit").row(0, named=True)  # a reader's model checks its prices
    assert Signal.model_validate(bracketed).take_profit == bracketed["take_profit"]
    wanted = {name for k in making_signals.values() for name in k.signatures}
    assert set(counts) == wanted - {"ema", "sma", "rolling_std", "atr"}  # the indicators no built-in uses
    for k in ALL.values():
        monkeypatch.setattr(k, "compiled", lambda: None)
    for (name, params), signals in zip(SIGNAL_CASES, compiled, strict=True):
        numba_signals = create(name, params).signals(market)
        assert numba_signals.height > 10 and signals.equals(numba_signals), (name, params)
    assert [p.tolist() for p in passed] == [valid_orders(s).tolist() for s in compiled + tampered]
    assert all(p.all() for p in passed[: len(compiled)]) and not any(p[1::2].any() for p in passed[len(compiled) :])


def test_synthetic_bars_through_the_compiled_module_are_numbas(built: dict[str, ModuleType],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from marketboss.data.synth import synth_bars

    k = ALL["marketboss.data"]
    counts: dict[str, int] = {}
    monkeypatch.setattr(k, "compiled", lambda: _calls(built["marketboss.data"], counts, k.signatures))
    compiled = synth_bars(["AAA", "BBB"], "2021-01-01", "2021-12-31", "1Day", seed=5)
    assert counts == {"regime_log_prices": 2}
    monkeypatch.setattr(k, "compiled", lambda: None)
    assert compiled.height > 400 and compiled.equals(synth_bars(["AAA", "BBB"], "2021-01-01", "2021-12-31", "1Day",
                                                                seed=5))  # fmt: skip


def test_the_indicators_compiled_are_numbas(built: dict[str, ModuleType], daily_bars: pl.DataFrame) -> None:
    from marketboss.indicators import nb as indicators_nb

    module = built["marketboss.indicators"]
    close = daily_bars.filter(pl.col("symbol") == "AAPL")["close"].to_numpy()
    high, low = close * 1.01, close * 0.99
    for name, args in (("sma", (close, 7)), ("ema", (close, 7)), ("rsi", (close, 14)), ("rolling_std", (close, 9)),
                       ("rolling_zscore", (close, 9)), ("rolling_extreme", (close, 9, False, 1)),
                       ("atr", (high, low, close, 14))):  # fmt: skip
        np.testing.assert_array_equal(getattr(module, name)(*args, np.empty_like(close)),
                                      getattr(indicators_nb, name)(*args, np.empty_like(close)), err_msg=name)


def _imports_numba(args: list[str], cwd: Path, **env: str) -> bool:
    """Whether `marketboss *args` (run in a fresh process, as a user does, with `env` added) imported numba."""
    code = (
        "import runpy, sys\n"
        "sys.argv = ['marketboss', *sys.argv[1:]]\n"
        "try:\n    runpy.run_module('marketboss', run_name='__main__')\n"
        "except SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "print('numba imported:', 'numba' in sys.modules)\n"
    )
    environ = {**os.environ, "MARKETBOSS_LOG_LEVEL": "warning", **env}
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=environ, cwd=cwd,
                         timeout=300, check=True).stdout  # fmt: skip
    return out.strip().endswith("numba imported: True")


def test_a_backtest_command_runs_without_importing_numba(
    built: dict[str, ModuleType], daily_bars: pl.DataFrame, data: Path, workdir: Path
) -> None:
    write_signals(workdir / "signals.jsonl", create("ma_crossover").signals(Market.from_bars(daily_bars)))
    assert not _imports_numba(["backtest", "--data", str(data), "--signals", "signals.jsonl", "--stop-loss-pct", "5",
                               "--output-dir", "runs/aot"], workdir)  # fmt: skip
    assert (workdir / "runs" / "aot" / "metrics.json").exists()


def test_data_synth_runs_without_importing_numba(built: dict[str, ModuleType], workdir: Path) -> None:
    args = ["data", "synth", "--symbols", "2", "--start", "2022-01-01", "--end", "2022-06-30", "--seed", "3"]
    assert not _imports_numba([*args, "--output", "aot.jsonl"], workdir)
    assert _imports_numba([*args, "--output", "numba.jsonl"], workdir, MARKETBOSS_AOT="off")
    assert (workdir / "aot.jsonl").stat().st_size > 0
    assert (workdir / "aot.jsonl").read_bytes() == (workdir / "numba.jsonl").read_bytes()


@pytest.mark.parametrize(("strategy", "params"), [
    ("ma_crossover", ["--param", "sizing=weight", "--param", "rebalance=monthly", "--param", "stop_loss_pct=5"]),
    ("momentum", ["--param", "mode=breakout"]),
    ("mean_reversion", ["--param", "mode=rsi", "--param", "trail_percent=3"]),
])  # fmt: skip
def test_the_built_in_strategies_make_signals_and_backtests_without_importing_numba(
    built: dict[str, ModuleType], data: Path, workdir: Path, strategy: str, params: list[str]
) -> None:
    assert not _imports_numba(["signals", "generate", "--data", str(data), "--strategy", strategy, *params,
                               "--output", "signals.jsonl"], workdir)  # fmt: skip
    assert (workdir / "signals.jsonl").stat().st_size > 0
    assert not _imports_numba(["backtest", "--data", str(data), "--strategy", strategy, *params, "--output-dir",
                               "runs/aot"], workdir)  # fmt: skip
    assert (workdir / "runs" / "aot" / "metrics.json").exists()
    assert _imports_numba(["signals", "generate", "--data", str(data), "--strategy", strategy, *params, "--output",
                           "numba.jsonl"], workdir, MARKETBOSS_AOT="off")  # fmt: skip
    assert (workdir / "numba.jsonl").read_bytes() == (workdir / "signals.jsonl").read_bytes()
