"""Lets the guide's scripts run from a plain shell, as the guide writes them (`python scripts/...`): when this
Python lacks MarketBoss, the script reruns itself with the project's environment (.venv, made by `make demo`),
or says in one line what to do."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
_AGAIN = "MARKETBOSS_SCRIPT_REEXEC"  # set on the rerun: never loop


def ensure_marketboss() -> None:
    try:
        import marketboss  # noqa: F401
    except ImportError:
        pass
    else:
        return
    python = VENV / "bin" / "python"
    if python.exists() and not os.environ.get(_AGAIN):
        os.environ[_AGAIN] = "1"
        os.execv(python, [str(python), *sys.argv])
    print(f"error: MarketBoss is not installed for {sys.executable}: run `make demo` in {ROOT} first (it creates "
          f".venv), then rerun this command", file=sys.stderr)  # fmt: skip
    sys.exit(2)
