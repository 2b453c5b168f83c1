"""The CLI as a test drives it: the one Typer app in-process, behind the same error boundary as `marketboss`
(one line, an exit code, no traceback)."""

from __future__ import annotations

from marketboss.cli import app
from marketboss.cli.common import run_guarded


def cli(*args: str) -> int:
    return run_guarded(lambda: app(list(args), prog_name="marketboss", standalone_mode=False))
