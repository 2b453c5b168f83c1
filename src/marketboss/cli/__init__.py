"""The `marketboss` command: one Typer app; each command is a thin call into a domain package."""

from __future__ import annotations

import sys

import typer

from marketboss import __version__
from marketboss.cli.backtest import backtest as backtest_command
from marketboss.cli.backtest import runs_app
from marketboss.cli.broker import app as broker_app
from marketboss.cli.common import get_settings, run_guarded
from marketboss.cli.data import app as data_app
from marketboss.cli.doctor import doctor
from marketboss.cli.live import live
from marketboss.cli.ml import models_app, retrain, schedule, train
from marketboss.cli.paper import paper
from marketboss.cli.reconcile import reconcile
from marketboss.cli.research import register as register_research
from marketboss.cli.signals import app as signals_app
from marketboss.cli.strategies import app as strategies_app
from marketboss.errors import MarketBossError
from marketboss.logging import LOG_FORMATS, configure

app = typer.Typer(
    name="marketboss",
    help="Research, backtest and paper-trade equity strategies; see README.md for the whole pipeline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_app, name="data")
app.add_typer(broker_app, name="broker")
app.add_typer(strategies_app, name="strategies")
app.add_typer(signals_app, name="signals")
app.command("backtest")(backtest_command)
app.add_typer(runs_app, name="runs")
app.command("paper")(paper)
app.command("live")(live)
app.command("doctor")(doctor)
app.command("reconcile")(reconcile)
register_research(app)
app.command("train")(train)
app.add_typer(models_app, name="models")
app.command("retrain")(retrain)
app.command("schedule")(schedule)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"marketboss {__version__}")
        raise typer.Exit()


@app.callback()
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
    if fmt not in LOG_FORMATS:
        raise MarketBossError(f"--log-format '{fmt}' must be one of {', '.join(LOG_FORMATS)}")
    configure(log_level or settings.log_level, secrets=settings.secrets(), fmt=fmt)


def main() -> None:
    sys.exit(run_guarded(lambda: app(prog_name="marketboss", standalone_mode=True)))
