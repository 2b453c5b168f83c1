"""The codebase's own rules: every strategy class (one that declares its name) in the strategies package is
registered, so none goes silently missing."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import marketboss.strategies as strategies_pkg
from marketboss.strategies import Strategy, strategies


def test_every_strategy_class_in_the_package_is_registered() -> None:
    registered = set(strategies().values())
    found = []
    for info in pkgutil.iter_modules(strategies_pkg.__path__):
        module = importlib.import_module(f"{strategies_pkg.__name__}.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Strategy) and cls.__module__ == module.__name__ and "name" in vars(cls):
                found.append(cls)
                assert cls in registered, f"{cls.__module__}.{cls.__name__} is not in strategies.registry.builtins()"
    assert {c.name for c in found} == {"ma_crossover", "momentum", "mean_reversion", "ml"}


def test_help_version_and_argument_errors_load_no_heavy_module() -> None:
    """`marketboss --help`, `--version` and a mistyped option run in a fresh interpreter without polars, pandas,
    numpy, numba, exchange_calendars or pyarrow: each command loads what it needs when it runs. The bare
    `--help` and `--version` also load neither pydantic nor structlog (the settings and logging load with the
    first command that configures them)."""
    import subprocess
    import sys

    heavy = ("polars", "pandas", "numpy", "numba", "exchange_calendars", "pyarrow")
    probe = (
        "import sys\nfrom marketboss.cli import main\nsys.argv = ['marketboss', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    for args in (["--help"], ["--version"], ["backtest", "--no-such-option"], ["sweep", "--help"]):
        out = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, check=False)
        assert out.stdout.strip().splitlines()[-1] == "[]", (args, out.stdout[-500:], out.stderr[-500:])
    light = (*heavy, "pydantic", "structlog")
    for args in (["--help"], ["--version"]):
        probe_light = probe.replace(repr(heavy), repr(light))
        out = subprocess.run([sys.executable, "-c", probe_light, *args], capture_output=True, text=True, check=False)
        assert out.stdout.strip().splitlines()[-1] == "[]", (args, out.stdout[-500:], out.stderr[-500:])


def test_a_command_loads_only_its_own_module_and_help_lists_every_command() -> None:
    """main() builds the app of the one command the arguments name (its module alone imported, Typer converting
    it alone); the root's help, a typo or no command get every command."""
    import subprocess
    import sys

    from marketboss.cli import COMMANDS, named_command

    assert named_command(["backtest", "--data", "x"]) == ("backtest",)
    assert named_command(["--log-level", "debug", "--log-format=json", "signals", "generate"]) == ("signals",)
    for args in ([], ["--help"], ["--help", "backtest"], ["bakctest"], ["--version"]):
        assert named_command(args) == tuple(COMMANDS), args
    probe = (
        "import sys\nfrom marketboss.cli import main\nsys.argv = ['marketboss', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('marketboss.cli.')))"
    )
    out = subprocess.run([sys.executable, "-c", probe, "backtest", "--no-such-option"], capture_output=True,
                         text=True, check=False)  # fmt: skip
    loaded = out.stdout.strip().splitlines()[-1]
    assert "'marketboss.cli.backtest'" in loaded, out.stderr[-500:]
    for other in ("live", "broker", "paper", "ml", "research", "data", "doctor"):
        assert f"'marketboss.cli.{other}'" not in loaded
    listed = subprocess.run([sys.executable, "-m", "marketboss", "--help"], capture_output=True, text=True,
                            check=True).stdout  # fmt: skip
    assert all(f" {name} " in listed for name in COMMANDS)
