"""docs/strategies.md, run as a notebook: its ```python blocks, top to bottom, in one namespace, from the
repository root (the page's plug-in paths are relative to it), so the page a new user follows stays true."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from marketboss.strategies import registry

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "strategies.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", PAGE.read_text(), flags=re.S | re.M)


def test_the_pages_python_runs_top_to_bottom(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # the page registers its class
    code = blocks("python")
    assert len(code) >= 5
    namespace: dict[str, object] = {"__name__": "docs_strategies"}
    for i, block in enumerate(code):
        exec(compile(block, f"{PAGE}:block{i + 1}", "exec"), namespace)  # the page's own code
    out = capsys.readouterr().out
    assert "sharpe" in out and "lower" in out  # the sweep's best rows were printed
    strategy_class = namespace["RsiBracket"]
    example = (ROOT / "examples" / "rsi_bracket.py").read_text()
    assert len(example.splitlines()) < 30
    assert example.endswith(code[0]) and example.index(code[0]) > 0  # the page shows the file, after its docstring
    assert strategy_class.name == registry.resolve("examples/rsi_bracket.py:RsiBracket").name  # type: ignore[attr-defined]


def test_the_pages_commands_exist_with_the_options_it_shows() -> None:
    """Every `marketboss ...` line of the page's shell blocks names a real command and real options."""
    from typer.main import get_command

    from marketboss.cli import app

    root = get_command(app)
    lines = [ln for b in blocks("bash") for ln in b.replace("\\\n", " ").splitlines() if ln.startswith("marketboss")]
    assert len(lines) >= 6
    for line in lines:
        words = line.split("#")[0].split()[1:]
        cmd = root
        while words and hasattr(cmd, "commands") and words[0] in cmd.commands:  # type: ignore[attr-defined]
            cmd = cmd.commands[words.pop(0)]  # type: ignore[attr-defined]
        options = {o for p in cmd.params for o in p.opts}
        used = {w for w in words if w.startswith("--")}
        assert used <= options, (line, used - options)


def test_import_marketboss_stays_light() -> None:
    probe = ("import sys, marketboss\nassert 'run' in dir(marketboss) and marketboss.__version__\n"
             "print(sorted(m for m in ('polars', 'numpy', 'numba', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    import marketboss

    assert set(marketboss.__all__) == {*marketboss._WHERE, *marketboss._MODULES, "__version__"}
    assert dir(marketboss) == sorted(marketboss.__all__)  # what a notebook completes: not the module's imports
    assert dir(marketboss.indicators) == sorted(marketboss.indicators.__all__)
    for name in marketboss.__all__:
        assert getattr(marketboss, name) is not None
    with pytest.raises(AttributeError):
        marketboss.no_such_name  # noqa: B018
