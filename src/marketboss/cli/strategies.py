"""`marketboss strategies ...`: what strategies exist (built-in and plug-in) and what their parameters are."""

from __future__ import annotations

import typer

from marketboss.cli.common import console, err_console, print_table
from marketboss.errors import MarketBossError

app = typer.Typer(help="List the strategies (built-in and plug-ins) and their parameters.", no_args_is_help=True)


@app.command("list")
def list_(
    plugins: list[str] = typer.Argument(None, help="Plug-ins to show as well: path/to/file.py:ClassName or "
                                                   "package.module:ClassName."),
) -> None:
    """Each strategy with every parameter, its type and default (set them with --param key=value): the
    built-in ones, those installed packages register (entry points `marketboss.strategies`) and any named.
    A plug-in that cannot be loaded gets one line saying why, and the exit status is non-zero."""
    from marketboss.strategies import describe_params
    from marketboss.strategies.registry import catalogue

    listed = catalogue(plugins or ())
    console.print("strategies: --strategy NAME (or a plug-in form) --param key=value ...")
    for item in listed:
        if item.cls is None:
            continue
        origin = "" if item.origin == "built-in" else f" ({item.origin})"
        rows = [list(p) for p in describe_params(item.cls)]
        title = f"{item.name}: {item.cls.summary}" if item.cls.summary else item.name
        print_table(title + origin, ["param", "type", "default", "meaning"], rows)
    broken = [item.error for item in listed if item.error is not None]
    for error in broken[:-1]:  # one line each; the last one is the command's error
        err_console.print(f"error: {error}", markup=False, highlight=False, soft_wrap=True)
    if broken:
        raise MarketBossError(broken[-1])
