"""The local broker stands apart from the client side: it imports nothing of broker adapters or execution."""

from __future__ import annotations

import ast
from pathlib import Path

import marketboss.local_broker

ALLOWED = {"marketboss.local_broker", "marketboss.data", "marketboss.errors", "marketboss.logging", "marketboss.config"}


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_local_broker_imports_only_its_own_package_data_errors_logging_and_config() -> None:
    root = Path(marketboss.local_broker.__file__).parent
    modules = sorted(root.rglob("*.py"))
    assert len(modules) > 10
    outside = {
        f"{path.relative_to(root)}: {name}"
        for path in modules
        for name in _imported(path)
        if name.split(".")[0] == "marketboss" and not any(name == a or name.startswith(a + ".") for a in ALLOWED)
    }
    assert outside == set()
