"""Plug-in strategies: a class from a file, a module or an installed package's entry point, accepted by every
command that takes --strategy; a broken plug-in is one line naming its file and the problem."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from marketboss.data.io import read_bars
from marketboss.data.market import Market
from marketboss.signals import read_signals_frame
from marketboss.strategies import PluginError, base, create, resolve
from marketboss.strategies.plugins import PluginFailure
from tests.unit.cli_app import cli

ROOT = Path(__file__).resolve().parents[2]

PLUGIN = '''
import numpy as np
from pydantic import Field

from marketboss import Strategy, StrategyParams


class FlipParams(StrategyParams):
    every: int = Field(10, ge=2, description="bars between flips")


class Flip(Strategy[FlipParams]):
    """Long for `every` bars, then flat for as many."""

    params_model = FlipParams

    def exposure(self, bars):
        return ((np.arange(len(bars)) // self.params.every) % 2 == 0).astype(float)
'''


@pytest.fixture
def plugin(workdir: Path) -> Path:
    path = workdir / "strats" / "flip.py"
    path.parent.mkdir()
    path.write_text(PLUGIN)
    return path


def test_every_strategy_command_takes_a_plugin_file(
    data: Path, plugin: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = "strats/flip.py:Flip"
    assert cli("signals", "generate", "--data", str(data), "--strategy", spec, "--param", "every=7",
               "--output", "sig.jsonl") == 0
    sig = read_signals_frame(workdir / "sig.jsonl")
    market = Market.from_bars(read_bars(data))
    assert sig.height == market.n_symbols * -(-market.n_times // 7) - market.n_symbols * (market.n_times // 7 % 2 == 0)
    assert set(sig["strategy"]) == {"Flip"}  # no `name`: the class name names it (and its ids)
    assert cli("backtest", "--data", str(data), "--strategy", spec, "--param", "every=7", "-o", "runs/flip") == 0
    assert cli("backtest", "--data", str(data), "--signals", "sig.jsonl", "-o", "runs/file") == 0
    a, b = (pl.read_ndjson(workdir / "runs" / d / "fills.jsonl") for d in ("flip", "file"))
    assert a.height > 0 and a.equals(b)  # the plug-in in memory and its signals file trade alike
    assert cli("sweep", "--data", str(data), "--strategy", spec, "--grid", "every=5:15:5", "--workers", "1") == 0
    summary = pl.read_parquet(workdir / "runs" / "sweep_Flip.summary.parquet")  # named by the class's name
    assert summary["every"].to_list() == [5, 10, 15] and (summary["n_fills"] > 0).all()
    assert cli("walkforward", "--data", str(data), "--strategy", spec, "--grid", "every=5,10", "--train", "200",
               "--test", "100", "--output", "wf.csv") == 0
    assert set(pl.read_csv(workdir / "wf.csv")["every"]) <= {5, 10}
    assert cli("compare", "--data", str(data), "--strategies", f"{spec},momentum", "--param", f"{spec}.every=9",
               "--table", "cmp.csv", "--output", "best.jsonl") == 0
    table = pl.read_csv(workdir / "cmp.csv")
    assert table["strategy"].to_list() == [spec, "momentum"] and set(table["status"]) == {"ok"}
    assert '"every": 9' in table["params"][0]
    assert "Traceback" not in capsys.readouterr().err


def test_a_plugin_file_imports_the_modules_beside_it(data: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch
                                                      ) -> None:  # fmt: skip
    """As a script does (before: ModuleNotFoundError, its directory was not on the import path); after the
    installed packages, so that a helper named like one of them does not hide it."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    home = workdir / "mine"
    home.mkdir()
    (home / "rules_of_mine.py").write_text("EVERY = 6\n")
    (home / "flip.py").write_text(PLUGIN.replace("Field(10,", "Field(rules_of_mine.EVERY,") .replace(
        "import numpy as np", "import numpy as np\nimport rules_of_mine"))  # fmt: skip
    assert cli("backtest", "--data", str(data), "--strategy", "mine/flip.py:Flip", "-o", "runs/mine") == 0
    assert create("mine/flip.py:Flip").params.every == 6
    assert sys.path.index(str(home.resolve())) > sys.path.index(str(Path(np.__file__).parents[1]))


def test_a_plugins_signal_ids_do_not_depend_on_where_its_file_is(data: Path, plugin: Path, workdir: Path) -> None:
    other = workdir / "elsewhere" / "copy_of_flip.py"
    other.parent.mkdir()
    shutil.copy(plugin, other)
    market = Market.from_bars(read_bars(data))
    first = create(f"{plugin}:Flip", ["every=5"]).signals(market)
    second = create("elsewhere/copy_of_flip.py:Flip", {"every": 5}).signals(market)
    assert resolve(f"{plugin}:Flip") is not resolve(f"{other}:Flip")  # two files, two classes
    assert first["id"].to_list() == second["id"].to_list() and first.height > 0
    assert first["id"].to_list() != create(f"{plugin}:Flip", ["every=6"]).signals(market)["id"].to_list()


def test_a_module_plugin(data: Path, plugin: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / "strats" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(workdir))
    market = Market.from_bars(read_bars(data))
    by_module = create("strats.flip:Flip", ["every=5"]).signals(market)
    assert by_module.equals(create("strats/flip.py:Flip", ["every=5"]).signals(market))
    assert cli("backtest", "--data", str(data), "--strategy", "strats.flip:Flip", "-o", "runs/m") == 0


CLASSES = "from marketboss import Strategy\nclass B(Strategy):\n    pass\nclass C:\n    pass\n"
BROKEN = [
    ("syntax.py", "import numpy\nclass A(Strategy)\n    pass\n", "syntax.py:A",
     "strategy plug-in syntax.py, line 2: SyntaxError: expected ':'"),
    ("imports.py", "import numpy\nimport not_a_module_anywhere\n", "imports.py:A",
     "strategy plug-in imports.py, line 2: ModuleNotFoundError: No module named 'not_a_module_anywhere'"),
    ("raises.py", "X = {}\nY = X['missing']\n", "raises.py:A",
     "strategy plug-in raises.py, line 2: KeyError: 'missing'"),
    ("classes.py", CLASSES, "classes.py:A",
     "strategy plug-in classes.py: no class 'A' (Strategy classes defined there: B)"),
    ("classes.py", CLASSES, "classes.py:C",
     "strategy plug-in classes.py: 'C' is not a subclass of marketboss.Strategy"),
    (None, "", "missing.py:A", "strategy plug-in missing.py: no such file"),
    (None, "", "no_such_package.mod:A", "strategy plug-in no_such_package.mod: no module named 'no_such_package'"),
    ("sub.py", "from marketboss.strategies.momentum import Momentum\nclass M(Momentum):\n    pass\n", "sub.py:M",
     "strategy plug-in sub.py:M: its name 'momentum' is the built-in strategy's"),
    ("flip.py", PLUGIN, "flip.py:Flip --param every=1",
     "strategy 'flip.py:Flip': invalid parameter every='1': Input should be greater than or equal to 2; valid:"),
    ("flip.py", PLUGIN, "flip.py:Flip --param evry=3", "strategy 'flip.py:Flip' has no parameter 'evry'; valid:"),
    (None, "", "nope", "unknown strategy 'nope': choose one of ma_crossover, mean_reversion, ml, momentum"),
    (None, "", "ma_crosover", "unknown strategy 'ma_crosover' (did you mean ma_crossover?): choose one of "
     "ma_crossover, mean_reversion, ml, momentum, or give a plug-in as path/to/file.py:ClassName"),
    ("flip.py", PLUGIN, "flip.py", "strategy 'flip.py': name the class, as flip.py:ClassName (classes there: Flip)\n"),
    ("classes.py", "from marketboss.strategies.events import EventStrategy\nclass B(EventStrategy):\n    pass\n"
     "class C:\n    pass\nclass D(B):\n    pass\n", "classes.py",
     "strategy 'classes.py': name the class, as classes.py:ClassName (classes there: B, D)\n"),
    ("plain.py", "X = 1\n", "plain.py",
     "strategy 'plain.py': name the class, as plain.py:ClassName (no Strategy class is defined there)\n"),
    ("imports.py", "import numpy\nimport not_a_module_anywhere\n", "imports.py",
     "strategy plug-in imports.py, line 2: ModuleNotFoundError: No module named 'not_a_module_anywhere'\n"),
    (None, "", "strats/missing.py", "strategy plug-in strats/missing.py: no such file\n"),
]  # fmt: skip
@pytest.mark.parametrize(("file", "source", "spec", "message"), BROKEN)
def test_a_broken_plugin_is_one_line_naming_its_file_and_the_problem(
    data: Path, workdir: Path, capsys: pytest.CaptureFixture[str], file: str | None, source: str, spec: str,
    message: str,
) -> None:
    if file:
        (workdir / file).write_text(source)
    strategy, *param = spec.split(" ")
    capsys.readouterr()
    for command in (["backtest", "-o", "runs/x"], ["signals", "generate", "--output", "s.jsonl"],
                    ["sweep", "--grid", "quantity=1,2", "--output", "sw.csv"], ["compare"]):  # fmt: skip
        if command == ["compare"]:  # its parameters are strategy.key=value, checked before any strategy runs
            command = ["compare", "--strategies", f"ma_crossover,{strategy}", "--table", "c.csv", "-o", "c.jsonl",
                       *[f"{strategy}.{p}" if p != "--param" else p for p in param]]
            assert cli(*command, "--data", str(data)) == 2
        else:
            assert cli(*command, "--data", str(data), "--strategy", strategy, *param) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: " + message) and err.count("\n") == 1, (command, err)
        assert "Traceback" not in err
    assert not any((workdir / p).exists() for p in ("runs/x", "s.jsonl", "sw.csv", "c.csv", "c.jsonl"))


def test_strategies_list_shows_named_plugins_with_their_parameters(
    plugin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(ROOT / "examples" / "rsi_bracket.py", "rsi.py")
    assert cli("strategies", "list", "strats/flip.py:Flip", "rsi.py:RsiBracket") == 0
    out = capsys.readouterr().out
    for text in ("strats/flip.py:Flip: Long for `every` bars, then flat for as many. (plug-in)", "every",
                 "bars between flips", "ma_crossover", "rsi.py:RsiBracket: RSI below `lower` buys", "take_profit_pct",
                 "buy below this RSI"):
        assert text in out, text
    (plugin.parent / "bad.py").write_text("raise RuntimeError('boom')\n")
    assert cli("strategies", "list", "strats/bad.py:X") == 2
    captured = capsys.readouterr()
    assert "momentum" in captured.out
    assert captured.err == "error: strategy plug-in strats/bad.py, line 1: RuntimeError: boom\n"


TYPED = """
from enum import Enum
from typing import Annotated, Literal

from pydantic import Field

from marketboss import Strategy, StrategyParams


class Side(Enum):
    LONG = "long"
    SHORT = "short"


class TypedParams(StrategyParams):
    side: Side = Field(Side.LONG, description="the enum")
    lean: Side | None = Field(None, description="an optional enum")
    pick: Literal["a", "b"] | Annotated[int, Field(ge=1)] = Field("a", description="choices or a count")
    windows: list[int] = Field(default_factory=lambda: [5], description="a list")


class Typed(Strategy[TypedParams]):
    params_model = TypedParams
"""


def test_strategies_list_and_parameter_errors_show_readable_types(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A union's type is its alternatives (a typing.Union's own name is only "Union"), choices are their values."""
    (workdir / "typed.py").write_text(TYPED)
    assert cli("strategies", "list", "typed.py:Typed") == 0
    rows = {cells[0]: cells[1:3] for line in capsys.readouterr().out.splitlines() if line.startswith("│")
            for cells in [[c.strip() for c in line.strip("│").split("│")]]}  # fmt: skip
    assert rows["rebalance"] == ["weekly | monthly | int | None", "n/a"]  # a built-in's, listed with the plug-in's
    assert (rows["sizing"], rows["stop_loss_pct"]) == (["quantity|weight", "quantity"], ["float | None", "n/a"])
    assert (rows["side"], rows["lean"], rows["pick"], rows["windows"]) == (
        ["long|short", "long"], ["long | short | None", "n/a"], ["a | b | int", "a"], ["list[int]", "[5]"])
    assert "Union" not in str(rows)
    assert cli("signals", "generate", "--strategy", "momentum", "--param", "lookback=x", "-o", "s.jsonl") == 2
    err = capsys.readouterr().err
    assert "rebalance (weekly | monthly | int | None, default None)" in err and "Union" not in err


def _installed(site: Path, broken: bool, extra: str = "") -> None:
    """A package `mbplug` as pip installs it: its modules and a .dist-info with an entry_points.txt."""
    pkg = site / "mbplug"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "strats.py").write_text(PLUGIN.replace("class Flip(", "class Flip(") + "\n\nclass Named(Flip):\n"
                                   "    name = 'named_flip'\n")  # fmt: skip
    (pkg / "broken.py").write_text("import numpy\n\ndef f(:\n")
    info = site / "mbplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mbplug\nVersion: 0.1\n")
    eps = "[marketboss.strategies]\nflip = mbplug.strats:Flip\nnamed = mbplug.strats:Named\n"
    (info / "entry_points.txt").write_text(eps + ("broken = mbplug.broken:Nope\n" if broken else "") + extra)


def _run(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "MARKETBOSS_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT / "src")])
    env["MARKETBOSS_LOG_LEVEL"] = "warning"
    return subprocess.run([sys.executable, "-m", "marketboss", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def test_a_compiled_plugin_runs_through_every_form_whichever_wrote_numbas_cache(data: Path, workdir: Path) -> None:
    """numba's cache beside the file is one for all forms, and records the module name of the run that wrote it:
    a compiled on_bar cached by `pkg.fast:Class` then run as `pkg/fast.py:Class`, or from another directory,
    failed with `No module named ...` until the cache was deleted (and the other way round)."""
    (workdir / "pkg").mkdir()
    shutil.copy(ROOT / "examples" / "rsi_bracket_events.py", workdir / "pkg" / "fast.py")
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    runs = [(workdir, "pkg.fast:RsiBracketEvents"), (workdir, "pkg/fast.py:RsiBracketEvents"),
            (elsewhere, f"{workdir / 'pkg' / 'fast.py'}:RsiBracketEvents")]  # fmt: skip
    for order in (runs, runs[::-1]):
        shutil.rmtree(workdir / "pkg" / "__pycache__", ignore_errors=True)
        for cwd, form in order:
            proc = _run(workdir, cwd, "backtest", "--data", str(data), "--strategy", form, "-o", str(workdir / "o"))
            assert proc.returncode == 0, (form, proc.stderr)
        assert list((workdir / "pkg" / "__pycache__").glob("fast._on_bar-*.nbi"))  # a cache was written, and read


def test_an_installed_package_registers_strategies_by_entry_point(data: Path, workdir: Path) -> None:
    site = workdir / "site"
    _installed(site, broken=False)
    listed = _run(site, workdir, "strategies", "list")
    assert listed.returncode == 0, listed.stderr
    assert "flip: Long for `every` bars, then flat for as many. (entry point 'flip' of mbplug 0.1)" in listed.stdout
    assert "named (entry point 'named' of mbplug 0.1)" in listed.stdout and "bars between flips" in listed.stdout
    gen = _run(site, workdir, "signals", "generate", "--data", str(data), "--strategy", "flip", "--param", "every=5",
               "--output", "ep.jsonl")
    assert gen.returncode == 0, gen.stderr
    named = _run(site, workdir, "signals", "generate", "--data", str(data), "--strategy", "named", "--output",
                 "named.jsonl")
    assert named.returncode == 0, named.stderr
    market = Market.from_bars(read_bars(data))
    (workdir / "strats").mkdir()
    (workdir / "strats" / "flip.py").write_text(PLUGIN)
    ep = read_signals_frame(workdir / "ep.jsonl")
    assert set(ep["strategy"]) == {"Flip"}
    # the same class by entry point, in another process, and by file here: the same signals and ids
    here = create("strats/flip.py:Flip", ["every=5"]).signals(market)
    assert ep.height > 0 and ep.select(here.columns).equals(here)
    assert set(read_signals_frame(workdir / "named.jsonl")["strategy"]) == {"named_flip"}  # its own `name`


def test_a_broken_entry_point_is_reported_and_the_others_still_work(data: Path, workdir: Path) -> None:
    site = workdir / "site"
    _installed(site, broken=True)
    listed = _run(site, workdir, "strategies", "list")
    assert listed.returncode == 2 and "flip" in listed.stdout and "ma_crossover" in listed.stdout
    assert listed.stderr.count("\n") == 1 and "Traceback" not in listed.stderr
    assert "broken.py, line 3: SyntaxError" in listed.stderr and "(entry point 'broken' of mbplug 0.1)" in listed.stderr
    ok = _run(site, workdir, "backtest", "--data", str(data), "--strategy", "flip", "-o", "runs/ep")
    assert ok.returncode == 0, ok.stderr  # only the entry point asked for is loaded
    bad = _run(site, workdir, "backtest", "--data", str(data), "--strategy", "broken", "-o", "runs/bad")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "broken.py, line 3: SyntaxError" in bad.stderr
    assert not (workdir / "runs" / "bad").exists()


def test_an_entry_point_may_not_take_a_built_in_name(data: Path, workdir: Path) -> None:
    site = workdir / "site"
    _installed(site, broken=False, extra="momentum = mbplug.strats:Flip\n")
    listed = _run(site, workdir, "strategies", "list")
    assert listed.returncode == 2 and "flip: Long for" in listed.stdout
    assert listed.stderr == ("error: entry point 'momentum' of mbplug 0.1: the name 'momentum' is taken by a built-in "
                             "strategy, which --strategy momentum runs\n")
    _run(site, workdir, "signals", "generate", "--data", str(data), "--strategy", "momentum", "--output", "m.jsonl")
    assert set(read_signals_frame(workdir / "m.jsonl")["strategy"]) == {"momentum"}  # the built-in ran


def test_schedule_generates_signals_with_a_plugin_and_refuses_a_broken_one_up_front(
    plugin: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = workdir / "schedule.toml"
    jobs = ('[refresh]\nsource = "synth"\nsymbols = "2"\nstart = "2025-01-01"\n[retrain]\nenabled = false\n'
            '[paper]\nenabled = false\n[signals]\nparams = ["every=4"]\n')  # fmt: skip
    cfg.write_text(jobs + 'strategy = "strats/flip.py:Flip"\n')
    assert cli("schedule", "--once", "--config", str(cfg)) == 0
    assert set(read_signals_frame(workdir / "data" / "signals.jsonl")["strategy"]) == {"Flip"}
    shutil.rmtree(workdir / "data")
    cfg.write_text(jobs + 'strategy = "strats/flip.py:Flop"\n')
    capsys.readouterr()
    assert cli("schedule", "--once", "--config", str(cfg)) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {cfg}: signals.strategy: strategy plug-in strats/flip.py: no class 'Flop' (Strategy "
                   "classes defined there: Flip, FlipParams)\n".replace("Flip, FlipParams", "Flip"))
    assert not (workdir / "data").exists()  # refused before any job ran
    assert cli("schedule", "--plan", "--config", str(cfg)) == 2  # the plan checks it too
    assert capsys.readouterr().err == err


def test_plugin_errors_are_marketboss_errors() -> None:
    with pytest.raises(PluginError, match="a plug-in is given as"):
        resolve(":Flip")


def test_worker_processes_load_a_plugin_again_by_its_form(data: Path, plugin: Path) -> None:
    """A sweep large enough for worker processes (forced here) gets the same table: each spawned worker loads
    the file from the same form; a class loaded from a file is found again by its absolute path."""
    from marketboss import sweep
    from marketboss.research import LocalBackend

    grid = {"every": [5, 8, 13]}
    inline = sweep("strats/flip.py:Flip", data, grid, backend=LocalBackend(1))
    pool = LocalBackend(2, pool_work=0, chunk_work=1)
    spawned = sweep(resolve("strats/flip.py:Flip"), data, grid, backend=pool)
    assert pool.ran_in == "2 processes"
    assert spawned.summary.equals(inline.summary) and spawned.rows.equals(inline.rows)
    assert inline.summary["n_fills"].min() > 0


# ------------------------------------------------------------------------------------- a plug-in failing at run time

EVENT_PLUGIN = '''
from marketboss.indicators import rsi
from marketboss.strategies.events import EventStrategy


class Dip(EventStrategy):
    """Buys a symbol whose RSI is under 30."""

    def indicators(self, bars):
        return {"rsi": rsi(bars.close, 14)}

    def on_bar(self, ctx):
        pass  # the line a test changes
        for s in ctx.symbols:
            if ctx.position(s) == 0 and ctx.value("rsi", s) < 30:
                ctx.buy(10, s)
'''


def _changed(source: str, old: str, new: str, path: Path) -> int:
    """The source with its one line `old` replaced by `new`, written to path; that line's number."""
    assert source.count(old) == 1
    path.write_text(source.replace(old, new))
    return source[: source.index(old)].count("\n") + 1


def test_a_plugin_raising_at_run_time_is_one_line_naming_its_file_and_line(
    data: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _changed((ROOT / "examples" / "rsi_bracket.py").read_text(), "        return np.where(",
                    "        raise ValueError('boom'); np.where(", workdir / "runtime.py")  # fmt: skip
    capsys.readouterr()
    for command, given in ((["backtest", "-o", "runs/x"], ""), (["signals", "generate", "--output", "s.jsonl"], ""),
                           (["sweep", "--grid", "period=5,10", "--output", "sw.csv"], " (period=5)")):  # fmt: skip
        assert cli(*command, "--data", str(data), "--strategy", "runtime.py:RsiBracket") == 2, command
        assert capsys.readouterr().err == (f"error: strategy runtime.py:RsiBracket{given} raised ValueError: boom "
                                           f"(runtime.py, line {line}, in exposure)\n"), command  # the combination
    assert not any((workdir / p).exists() for p in ("runs/x", "s.jsonl", "sw.csv"))
    assert cli("compare", "--data", str(data), "--strategies", "momentum,runtime.py:RsiBracket", "--table", "c.csv",
               "-o", "c.jsonl") == 2  # the others are still compared, and the exit says one was not
    assert capsys.readouterr().err.endswith("error: 1 of 2 strategies could not be run (above): the comparison is "
                                            "of the others, and no signals were written to c.jsonl\n")
    assert not (workdir / "c.jsonl").exists()  # before: momentum's, selected among the one that ran
    status = dict(pl.read_csv(workdir / "c.csv").select("strategy", "status").iter_rows())
    assert status == {"momentum": "ok",
                      "runtime.py:RsiBracket": f"raised ValueError: boom (runtime.py, line {line}, in exposure)"}


EVENT_FAILURES = [
    ("raise KeyError('boom')", "raised KeyError: 'boom'"),
    ("ctx.buy(10, 'TSLA')", "unknown symbol 'TSLA' (the data has AAPL, JPM, MSFT)"),
    ("ctx.value('nope', 0)", "no indicator 'nope' (the strategy's indicators: rsi)"),
    ("ctx.position(3)", "symbol index 3 out of range: the data has 3 symbol(s), 0 to 2 (AAPL, JPM, MSFT)"),
    ("ctx.price()", "name the symbol: the data has several (AAPL, JPM, MSFT)"),
    ("ctx.buy(float('nan'), 0)", "quantity nan: buy takes a positive, finite number of shares"),
    ("ctx.sell(-10, 0)", "quantity -10: sell takes a positive, finite number of shares"),
    ("ctx.target_weight(float('inf'), 0)", "target_weight inf: a weight is a finite number (a fraction of equity)"),
    ("ctx.cancel('x')", "cancel takes an order ctx.buy, sell, target_weight or close returned (or one of "
                        "ctx.open_orders), not 'x'"),
]


@pytest.mark.parametrize(("code", "said"), EVENT_FAILURES)
def test_an_event_plugins_error_in_on_bar_names_its_line(
    data: Path, workdir: Path, capsys: pytest.CaptureFixture[str], code: str, said: str
) -> None:
    line = _changed(EVENT_PLUGIN, "        pass  # the line a test changes", f"        {code}", workdir / "dip.py")
    capsys.readouterr()
    assert cli("backtest", "--data", str(data), "--strategy", "dip.py:Dip", "-o", "runs/x") == 2
    sep = "" if said.startswith("raised") else ":"
    assert capsys.readouterr().err == f"error: strategy dip.py:Dip{sep} {said} (dip.py, line {line}, in on_bar)\n"
    assert not (workdir / "runs" / "x").exists()


def test_an_event_plugins_error_in_indicators_names_its_line(
    data: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _changed(EVENT_PLUGIN, '        return {"rsi": rsi(bars.close, 14)}', "        return {'rsi': 1 / 0}",
                    workdir / "dip.py")  # fmt: skip
    capsys.readouterr()
    assert cli("signals", "generate", "--data", str(data), "--strategy", "dip.py:Dip", "--output", "s.jsonl") == 2
    assert capsys.readouterr().err == ("error: strategy dip.py:Dip raised ZeroDivisionError: division by zero (dip.py, "
                                       f"line {line}, in indicators)\n")
    assert not (workdir / "s.jsonl").exists()


def test_a_failure_past_the_plugins_code_is_not_blamed_on_it(
    data: Path, workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """exposure() returned a good value; what MarketBoss then did with it failed, in MarketBoss's code (a fault
    put there: what it returns is checked now, so no value of its own fails there): as before."""
    (workdir / "odd.py").write_text((ROOT / "examples" / "rsi_bracket.py").read_text())

    def fails(*_: object) -> None:
        raise ValueError("a failure in MarketBoss")

    monkeypatch.setattr(base, "held_changes", fails)
    capsys.readouterr()
    assert cli("backtest", "--data", str(data), "--strategy", "odd.py:RsiBracket", "-o", "runs/x") == 1
    err = capsys.readouterr().err
    assert err.endswith("error: unexpected ValueError: a failure in MarketBoss\n")
    assert "odd.py" not in err


def test_a_plugin_failing_in_a_worker_process_names_its_line(data: Path, workdir: Path) -> None:
    """In a sweep's worker process the traceback is there, not in the exception sent back: the line is named there."""
    from marketboss import sweep
    from marketboss.research import LocalBackend

    line = _changed((ROOT / "examples" / "rsi_bracket.py").read_text(), "        return np.where(",
                    "        assert self.params.period != 13, 'no 13'; return np.where(", workdir / "late.py")
    with pytest.raises(PluginFailure) as caught:
        sweep(resolve("late.py:RsiBracket"), data, {"period": [5, 13, 21]},
              backend=LocalBackend(2, pool_work=0, chunk_work=1))  # fmt: skip
    assert str(caught.value) == (f"strategy {workdir / 'late.py'}:RsiBracket (period=13) raised AssertionError: no 13 "
                                 f"(late.py, line {line}, in exposure)")  # the combination that failed


PEEKING = '''
import numpy as np

from marketboss import Strategy


class Peek(Strategy):
    """Long when the next close is higher: exposure[t] reads close[t + %d]."""

    def exposure(self, bars):
        c = bars.close
        return np.where(np.append(c[%d:], [np.nan] * %d) > c, 1.0, 0.0)
'''


@pytest.mark.parametrize("ahead", [1, 5])
def test_a_plugin_whose_exposure_looks_ahead_is_refused(
    data: Path, workdir: Path, capsys: pytest.CaptureFixture[str], ahead: int
) -> None:
    """As an event strategy's indicators are: a vectorised plug-in's exposure, computed again on the first part of
    a symbol's bars, must not change there; a peek ahead does at the cut (one line, nothing written)."""
    (workdir / "peek.py").write_text(PEEKING % (ahead, ahead, ahead))
    for args in (["backtest", "--output-dir", "out"], ["signals", "generate", "--output", "sig.jsonl"],
                 ["sweep", "--grid", "quantity=1,2", "--output", "out.csv"],  # before, these two ran it
                 ["walkforward", "--grid", "quantity=1,2", "--train", "60", "--test", "30", "--output", "out.csv"]):
        assert cli(*args, "--data", str(data), "--strategy", "peek.py:Peek") == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: strategy peek.py:Peek: exposure looks ahead: its values on the first ")
        assert "\n" not in err
        assert err.endswith("change when later bars are added (exposure[t] may use bars up to t only)")
    assert not [p for p in ("out", "sig.jsonl", "out.csv") if (workdir / p).exists()]
    causal = PEEKING.replace("np.append(c[%d:], [np.nan] * %d) > c", "c > np.append([np.nan] * %d, c[:-%d])")
    (workdir / "causal.py").write_text(causal % (ahead, ahead, ahead))  # the same, a bar behind: accepted
    assert cli("signals", "generate", "--data", str(data), "--strategy", "causal.py:Peek", "--output", "ok.jsonl") == 0


WHOLE_MARKET = '''
import numpy as np

from marketboss import Strategy


class Model(Strategy):
    """A whole-market model: long where the close rose over the last bar."""

    def exposures(self, market):
        c = market.close
        %s
'''


@pytest.mark.parametrize(("body", "said"), [
    ("d = np.diff(c, axis=0)\n        return np.vstack([np.where(d > 0, 1.0, 0.0), np.zeros((1, c.shape[1]))])",
     "exposures looks ahead: its values on the first 250 bars change when later bars are added (exposures[t] may "
     "use bars up to t only)"),  # np.diff is a row short: padded at the end, row t holds t+1's move
    ("return np.ones((c.shape[0] - 1, c.shape[1]))",
     "exposures returned shape (500, 3) for 501 bars x 3 symbols: it must return a (time x symbol) array of "
     "numbers, one per bar and symbol"),
    ("return None", "exposures returned None for 501 bars x 3 symbols"),
    ("c /= c[0]\n        return np.ones(c.shape)", "raised ValueError: output array is read-only (model.py, line 12, "
                                                      "in exposures)"),  # fmt: skip  (the plug-in error's form)
])
def test_a_whole_market_models_exposures_are_checked_as_an_exposures_are(
    data: Path, workdir: Path, capsys: pytest.CaptureFixture[str], body: str, said: str
) -> None:
    """exposures(market) of an override: its shape, its causality (computed on the market's first half and three
    quarters), and the market it is given read-only. Before, each ran: np.diff's one-bar look-ahead made a Sharpe of
    16; a wrong shape or None failed later, or not at all; `c /= c[0]` changed the prices of the rest of the run."""
    (workdir / "model.py").write_text(WHOLE_MARKET % body)
    for args in (["backtest", "--output-dir", "out"], ["sweep", "--grid", "quantity=1,2", "--output", "out.csv"]):
        assert cli(*args, "--data", str(data), "--strategy", "model.py:Model") == 2
        err = capsys.readouterr().err.strip()
        given = " (quantity=1.0) " if args[0] == "sweep" else " "  # the sweep's failing combination
        assert err.startswith(f"error: strategy model.py:Model{given if said.startswith('raised') else ': '}{said}")
        assert "\n" not in err
    assert not [p for p in ("out", "out.csv") if (workdir / p).exists()]
    causal = WHOLE_MARKET % ("d = np.diff(c, axis=0)\n        return np.vstack([np.zeros((1, c.shape[1])), "
                             "np.where(d > 0, 1.0, 0.0)])")  # fmt: skip
    (workdir / "causal.py").write_text(causal)  # the same, the padding first: accepted
    assert cli("backtest", "--data", str(data), "--strategy", "causal.py:Model", "--output-dir", "ok") == 0


@pytest.mark.parametrize(("code", "said"), [
    ("class Typo(Strategy):\n    def exposur(self, bars):\n        return bars.close * 0\n",
     "implements neither exposure(bars) nor exposures(market): a strategy overrides one of them"),
    ("class Typo(EventStrategy):\n    def on_bars(self, ctx):\n        pass\n",
     "implements neither on_bar(ctx) nor compiled(): an event strategy overrides one of them"),
    ("class Typo(EventStrategy):\n    def indicators(self, bars):\n        return bars.close\n"
     "    def on_bar(self, ctx):\n        pass\n",
     "indicators returned array(["),
    ("class Typo(EventStrategy):\n    def indicators(self, bars):\n        return {'x': ['a'] * len(bars)}\n"
     "    def on_bar(self, ctx):\n        pass\n",
     "indicator 'x' is a list of no numbers: give an array of one number per bar"),
])
def test_a_strategy_missing_its_method_or_giving_no_indicators_is_one_line(
    data: Path, workdir: Path, capsys: pytest.CaptureFixture[str], code: str, said: str
) -> None:
    """Before: `error: unexpected NotImplementedError: ` (an empty message, exit 1), or numpy's own error."""
    (workdir / "typo.py").write_text(f"from marketboss import EventStrategy, Strategy\n\n\n{code}")
    assert cli("backtest", "--data", str(data), "--strategy", "typo.py:Typo", "--output-dir", "out") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: strategy typo.py:Typo: {said}") and "\n" not in err
    assert not (workdir / "out").exists()


@pytest.mark.parametrize(("code", "field", "said"), [
    ("ctx.buy(1e12, 0)", "quantity", "1e+12 is out of range: must be > 0 and <= 1e+09"),
    ("ctx.target_weight(5.0, 0)", "target_weight", "5 is out of range: must be >= -1 and <= 1"),
])
def test_an_event_order_past_the_signal_files_limits_is_refused_as_its_reader_would(
    data: Path, workdir: Path, capsys: pytest.CaptureFixture[str], code: str, field: str, said: str
) -> None:
    """`signals generate` wrote such orders to a file that `backtest --signals` then refused: the run refuses them
    by the reader's rules, naming the strategy, the bar and the field, and writes nothing."""
    _changed(EVENT_PLUGIN, "        pass  # the line a test changes", f"        {code}", workdir / "big.py")
    capsys.readouterr()
    for command in (["backtest", "-o", "runs/x"], ["signals", "generate", "--output", "s.jsonl"]):
        assert cli(*command, "--data", str(data), "--strategy", "big.py:Dip") == 2
        err = capsys.readouterr().err
        assert err.startswith("error: strategy Dip ") and err.count("\n") == 1, err
        line = (workdir / "big.py").read_text().splitlines().index(f"        {code}") + 1
        assert f": field '{field}': order at 2022-01-03 " in err and err.endswith(
            f"(AAPL BUY): {said} (big.py, line {line}, in on_bar)\n"), err  # fmt: skip
    assert not any((workdir / p).exists() for p in ("runs/x", "s.jsonl"))


SHAPELESS = '''
import numpy as np

from marketboss import Strategy


class Shapeless(Strategy):
    """exposure returns one value too few, or None."""

    def exposure(self, bars):
        return np.ones(len(bars) - 1)
'''


@pytest.mark.parametrize(("returned", "said"), [
    ("np.ones(len(bars) - 1)", "exposure returned shape (500,) for AAPL's 501 bars: it must return an array of one "
                               "value per bar\n"),
    ("None", "exposure returned None for AAPL's 501 bars: it must return an array of one value per bar\n"),
    ('np.array(["a"] * len(bars))', "exposure returned a ndarray holding values that are not numbers for AAPL: it "
                                    "must return an array of numbers, one per bar\n"),
    # numpy reads the text "0.5" as 0.5 and drops an imaginary part: both traded
    ('np.array(["0.5"] * len(bars))', "exposure returned a ndarray holding values that are not numbers for AAPL"),
    ("np.full(len(bars), 1 + 1j)", "exposure returned a ndarray holding values that are not numbers for AAPL"),
    ('[0.5] * (len(bars) - 1) + ["1"]', "exposure returned a list holding values that are not numbers for AAPL"),
    ("np.where(np.arange(len(bars)) == 7, np.inf, 0.5)", "exposure inf for AAPL at 2022-01-12T05:00:00Z: an "
                                                         "exposure is a finite number"),
])  # fmt: skip
def test_an_exposure_of_the_wrong_shape_or_no_numbers_is_one_line_naming_the_plugin(
    data: Path, workdir: Path, capsys: pytest.CaptureFixture[str], returned: str, said: str
) -> None:
    """It was `unexpected ValueError: Shapeless.exposure returned shape (500,)...` or `could not convert string to
    float`, exit 1, naming no file; an infinity traded as one unit."""
    _changed(SHAPELESS, "np.ones(len(bars) - 1)", returned, workdir / "shapeless.py")
    capsys.readouterr()
    for command in (["backtest", "-o", "runs/x"], ["signals", "generate", "--output", "s.jsonl"]):
        assert cli(*command, "--data", str(data), "--strategy", "shapeless.py:Shapeless") == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: strategy shapeless.py:Shapeless: {said}") and err.count("\n") == 1, err
    assert not any((workdir / p).exists() for p in ("runs/x", "s.jsonl"))


def test_a_plugin_calling_sys_exit_is_its_error(data: Path, workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A strategy's own sys.exit(3) ended the command with exit 3 and not a word."""
    _changed(SHAPELESS, "return np.ones(len(bars) - 1)", "__import__('sys').exit(3)", workdir / "quits.py")
    capsys.readouterr()
    assert cli("backtest", "-o", "runs/x", "--data", str(data), "--strategy", "quits.py:Shapeless") == 2
    err = capsys.readouterr().err
    assert err == "error: strategy quits.py:Shapeless raised SystemExit: 3 (quits.py, line 11, in exposure)\n", err
    assert not (workdir / "runs" / "x").exists()


COMPILED_PLUGIN = '''
import numpy as np
from numba import njit

from marketboss.strategies.events import (OUT_GTC, OUT_KIND, OUT_QTY, OUT_SIDE, OUT_SYMBOL, OUT_WEIGHT,
                                          CompiledOnBar, EventStrategy)


@njit
def on_bar(t, open_, high, low, close, ind, position, cash, equity, args, mem, out):
    if t != 30:
        return 0
    out[0, :] = np.nan
    out[0, OUT_SYMBOL], out[0, OUT_SIDE], out[0, OUT_QTY], out[0, OUT_KIND], out[0, OUT_GTC] = 1, 1.0, 10, 0, 0
    return 1  # the line a test changes


class Fast(EventStrategy):
    """A compiled on_bar buying 10 JPM at bar 30."""

    def compiled(self):
        return CompiledOnBar(on_bar, np.zeros(1))
'''

#: (the line changed, what it becomes, what the error says after `error: strategy fast.py:Fast: `)
COMPILED_FAILURES = [
    ("    return 1  # the line a test changes", "    return n_orders",
     "compiled on_bar does not compile: NameError: name 'n_orders' is not defined (fast.py, in on_bar)"),
    ("    return 1  # the line a test changes", "    return 1 + 'a'",
     "compiled on_bar does not compile: No implementation of function Function(<built-in function add>) found for "
     "signature: add(Literal[int](1), Literal[str](a)) (fast.py, line {line})"),
    ("    return 1  # the line a test changes", "    return int(1 / (t - 30))",
     "compiled on_bar raised ZeroDivisionError: division by zero (fast.py, in on_bar)"),
    ("@njit\n", "\n", "compiled on_bar must be a numba @njit function, not the function on_bar"),
    ("        return CompiledOnBar(on_bar, np.zeros(1))", "        return on_bar",
     "compiled() must return a CompiledOnBar (or None), not a CPUDispatcher"),
    ("    return 1  # the line a test changes", "    out[0, OUT_SYMBOL] = 99; return 1",
     "order row 0 of compiled on_bar at bar 30 (2022-02-15 05:00:00+00:00): OUT_SYMBOL 99 is not a symbol's index "
     "(0 to 2; -1 with a cancel: every symbol's)"),
    ("    return 1  # the line a test changes", "    out[0, OUT_KIND] = 7; return 1",
     "order row 0 of compiled on_bar at bar 30 (2022-02-15 05:00:00+00:00): OUT_KIND 7 is not an order type "
     "(0 market, 1 limit, 2 stop, 3 stop_limit, 4 trailing_stop) nor CANCEL (-1) or CANCEL_EXITS (-2)"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "said"), COMPILED_FAILURES)
def test_a_compiled_on_bar_that_breaks_its_contract_is_one_line_naming_the_plugin(
    data: Path, workdir: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, said: str
) -> None:
    """numba's 40-line TypingError, a plain function's TypingError inside MarketBoss, `unexpected IndexError` (an
    order for a symbol index the data lacks, read out of bounds) and `unexpected OutOfBoundsError` (an order type
    that is none) were each a traceback's worth or an unexpected error, exit 1."""
    line = _changed(COMPILED_PLUGIN, old, new, workdir / "fast.py")
    capsys.readouterr()
    for command in (["backtest", "-o", "runs/x"], ["signals", "generate", "--output", "s.jsonl"]):
        assert cli(*command, "--data", str(data), "--strategy", "fast.py:Fast") == 2
        assert capsys.readouterr().err == f"error: strategy fast.py:Fast: {said.format(line=line)}\n"
    assert not any((workdir / p).exists() for p in ("runs/x", "s.jsonl"))


def test_a_compiled_order_without_a_size_is_refused_as_its_reader_would(
    data: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """OUT_QTY NaN (a target-weight order) with OUT_WEIGHT NaN: the file `signals generate` wrote had a line with
    neither, which its reader refused; ctx.buy(nan) is an error too."""
    _changed(COMPILED_PLUGIN, "    return 1  # the line a test changes", "    out[0, OUT_QTY] = np.nan; return 1",
             workdir / "fast.py")  # fmt: skip
    capsys.readouterr()
    assert cli("signals", "generate", "--data", str(data), "--strategy", "fast.py:Fast", "--output", "s.jsonl") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: strategy Fast ") and err.endswith(": order at 2022-02-15 05:00:00+00:00 (JPM BUY): "
                                                                    "give exactly one of quantity (shares) or "
                                                                    "target_weight (fraction of equity) (fast.py, "
                                                                    "in on_bar)\n"), err  # its file and function
    assert not (workdir / "s.jsonl").exists()
    _changed(COMPILED_PLUGIN, "    return 1  # the line a test changes", "    return 1", workdir / "good.py")
    assert cli("signals", "generate", "--data", str(data), "--strategy", "good.py:Fast", "--output", "s.jsonl") == 0
    assert cli("backtest", "--data", str(data), "--signals", "s.jsonl", "-o", "runs/x") == 0  # its reader takes it
