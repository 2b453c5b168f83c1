"""`marketboss strategies ...`: what strategies exist and what their parameters are."""

from __future__ import annotations

import typer

from marketboss.cli.common import print_table

app = typer.Typer(help="List the built-in strategies and their parameters.", no_args_is_help=True)


@app.command("list")
def list_() -> None:
    """Each strategy with every parameter, its type and default (set them with --param key=value)."""
    from marketboss.strategies import describe_params, strategies

    rows = []
    for name, cls in strategies().items():
        for i, (param, kind, default, doc) in enumerate(describe_params(cls)):
            rows.append([name if i == 0 else "", cls.summary if i == 0 else "", param, kind, default, doc])
    print_table("strategies (--strategy NAME --param key=value ...)",
                ["strategy", "what", "param", "type", "default", "meaning"], rows)
