"""User-facing errors: one line, naming the file, line and field, so no traceback is ever needed."""

from __future__ import annotations

from pathlib import Path


class MarketBossError(Exception):
    """An error the user can act on; the CLI prints it as one line and exits non-zero."""

    exit_code = 2


class InputError(MarketBossError):
    """Bad input data: names where (file, line) and what (field) went wrong."""

    def __init__(self, path: str | Path, reason: str, line: int | None = None, field: str | None = None):
        self.path = str(path)
        self.line = line
        self.field = field
        self.reason = reason
        where = self.path if line is None else f"{self.path}:{line}"
        what = f" field '{field}':" if field else ""
        self.location = f"{where}:{what}".rstrip(":")  # file, line and field: what a page may show of bad input
        super().__init__(f"{where}:{what} {reason}")


class ConfigError(MarketBossError):
    """Missing or inconsistent settings (credentials, paths, options)."""
