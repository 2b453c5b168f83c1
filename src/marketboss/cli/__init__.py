"""The `marketboss` command: one Typer app; each command is a thin call into a domain package.

The commands live in their own modules, named in COMMANDS. A run of one command imports only its module and
has Typer build only it (Typer turns every registered function's signature into click parameters at each
run: all of them took ~30 ms, more than some commands' work); help, `--version` and anything not naming a
command get them all (`app`, built at first use)."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import typer

from marketboss import __version__
from marketboss.cli.common import get_settings, run_guarded
from marketboss.errors import MarketBossError
from marketboss.logging import LOG_FORMATS, LOG_LEVELS, configure

#: Each top-level command in help's order: its module and the command function or Typer group it defines.
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("marketboss.cli.data", "app"),
    "broker": ("marketboss.cli.broker", "app"),
    "strategies": ("marketboss.cli.strategies", "app"),
    "signals": ("marketboss.cli.signals", "app"),
    "backtest": ("marketboss.cli.backtest", "backtest"),
    "runs": ("marketboss.cli.backtest", "runs_app"),
    "paper": ("marketboss.cli.paper", "paper"),
    "live": ("marketboss.cli.live", "live"),
    "doctor": ("marketboss.cli.doctor", "doctor"),
    "reconcile": ("marketboss.cli.reconcile", "reconcile"),
    "sweep": ("marketboss.cli.research", "sweep"),
    "walkforward": ("marketboss.cli.research", "walkforward"),
    "compare": ("marketboss.cli.research", "compare"),
    "train": ("marketboss.cli.ml", "train"),
    "models": ("marketboss.cli.ml", "models_app"),
    "retrain": ("marketboss.cli.ml", "retrain"),
    "schedule": ("marketboss.cli.ml", "schedule"),
}
_ROOT_VALUE_OPTIONS = ("--log-level", "--log-format")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"marketboss {__version__}")
        raise typer.Exit()


def _root(
    log_level: str = typer.Option(
        None, "--log-level", help="debug, info, warning or error (env MARKETBOSS_LOG_LEVEL; default info)."
    ),
    log_format: str = typer.Option(
        None, "--log-format", help="auto (readable on a terminal, else JSON), json or console "
        "(env MARKETBOSS_LOG_FORMAT; default auto)."
    ),
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
    ),
) -> None:
    """Logs go to stderr (readable on a terminal, JSON Lines otherwise); results go to stdout."""
    settings = get_settings()
    fmt = log_format or settings.log_format
    if fmt not in LOG_FORMATS:  # (named as given: the option, or the environment's setting)
        where = "--log-format" if log_format else "MARKETBOSS_LOG_FORMAT"
        raise MarketBossError(f"{where} '{fmt}' must be one of {', '.join(LOG_FORMATS)}")
    level = log_level or settings.log_level
    if level.lower() not in LOG_LEVELS:  # a typo ("warn", "verbose") was taken as info, silently
        where = "--log-level" if log_level else "MARKETBOSS_LOG_LEVEL"
        raise MarketBossError(f"{where} '{level}' must be one of {', '.join(LOG_LEVELS)}")
    configure(level, secrets=settings.secrets(), fmt=fmt)


def build_app(names: Iterable[str] = COMMANDS) -> typer.Typer:
    """The app with these commands."""
    app = typer.Typer(
        name="marketboss",
        help="Research, backtest and paper-trade equity strategies; see README.md for the whole pipeline.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    app.callback()(_root)
    for name in names:
        module, attr = COMMANDS[name]
        command = getattr(importlib.import_module(module), attr)
        if isinstance(command, typer.Typer):
            app.add_typer(command, name=name)
        else:
            app.command(name)(command)
    return app


def named_command(args: Sequence[str]) -> tuple[str, ...]:
    """The command the arguments run (the root's options before it skipped), alone; every command when they
    name none (help, a typo: click lists them) or ask for the root's help."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--help":
            break
        if arg in _ROOT_VALUE_OPTIONS:
            i += 2
            continue
        if not arg.startswith("-"):
            return (arg,) if arg in COMMANDS else tuple(COMMANDS)
        i += 1
    return tuple(COMMANDS)


def __getattr__(name: str) -> Any:
    """`app`: every command (tests and scripts drive it in process)."""
    if name == "app":
        globals()["app"] = full = build_app()
        return full
    raise AttributeError(name)


def main() -> None:
    # pydantic looks for third-party plugins (entry points of every installed distribution, ~5 ms) at its first
    # model; the command uses none. Set the variable (even empty) to have them loaded.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    sys.exit(run_guarded(lambda: build_app(named_command(sys.argv[1:]))(prog_name="marketboss", standalone_mode=False)))
