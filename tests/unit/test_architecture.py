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
