"""`marketboss signals ...`: turn bars into a signals file with a strategy, and inspect signals files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from marketboss.cli.common import (
    SkipInvalid,
    console,
    get_settings,
    key_values,
    load_market,
    print_table,
    wanted_symbols,
)
from marketboss.errors import MarketBossError
from marketboss.logging import get_logger

if TYPE_CHECKING:  # loaded inside the commands that use them: `--help` needs none
    import polars as pl

app = typer.Typer(help="Generate signals from bars with a strategy; inspect signals files.", no_args_is_help=True)
log = get_logger(__name__)

STRATEGY_HELP = ("A name (see `marketboss strategies list`), a file's class (path/to/file.py:ClassName) or a "
                 "module's (package.module:ClassName).")
StrategyOpt = typer.Option("ma_crossover", "--strategy", "-s", help=STRATEGY_HELP)
ParamOpt = typer.Option([], "--param", "-p", help="key=value, repeatable, e.g. --param fast=10 --param slow=30.",
                        callback=key_values)
SymbolsOpt = typer.Option(None, "--symbols", help="Only these symbols (comma-separated); default all.")


def filter_symbols(bars: pl.DataFrame, symbols: str | None, path: Path) -> pl.DataFrame:
    import polars as pl
    if not symbols:
        return bars
    return bars.filter(pl.col("symbol").is_in(wanted_symbols(symbols, bars["symbol"].unique().to_list(), path)))


@app.command()
def generate(
    data: Path = typer.Option(None, "--data", help="Bars file (default: data/market_data.jsonl)."),
    strategy: str = StrategyOpt,
    param: list[str] = ParamOpt,
    output: Path = typer.Option(None, "--output", "-o", help="Default: data/signals.jsonl."),
    symbols: str = SymbolsOpt,
    skip_invalid: bool = SkipInvalid,
) -> None:
    """Run a strategy over the bars and write one signal per change of its wanted position (atomic write).
    The same inputs always give the same signals and ids."""
    from marketboss.signals import write_signals
    from marketboss.strategies import create

    strat = create(strategy, param)  # parameters are checked before any data is read
    settings = get_settings()
    path = data or settings.market_data
    out = output or settings.signals
    if out.resolve() == path.resolve():  # the bars would be replaced by the signals made of them
        raise MarketBossError(f"--output {out} is the bars file --data reads: write the signals elsewhere")
    market = load_market(path, skip_invalid, symbols)
    signals = strat.signals(market)
    write_signals(out, signals)
    counts = dict(signals.group_by("action").len().iter_rows())
    log.info("signals_written", path=str(out), signals=signals.height, strategy=strat.describe())
    cancels = f", {counts['CANCEL']:,} CANCEL" if counts.get("CANCEL") else ""  # an event strategy's
    console.print(
        f"wrote {signals.height:,} signals ({counts.get('BUY', 0):,} BUY, {counts.get('SELL', 0):,} SELL{cancels}) "
        f"for {signals['symbol'].n_unique()} of {market.n_symbols} symbol(s) to {out}\n  strategy: "
        f"{strat.describe()}"
    )


@app.command()
def show(
    signals: Path = typer.Option(None, "--signals", help="Signals file (default: data/signals.jsonl)."),
    skip_invalid: bool = SkipInvalid,
) -> None:
    """Validate a signals file and summarise it per symbol."""
    import polars as pl

    from marketboss.signals import read_signals_frame

    path = signals or get_settings().signals
    df = read_signals_frame(path, skip_invalid=skip_invalid)
    summary = (
        df.group_by("symbol")
        .agg(
            pl.len().alias("signals"),
            (pl.col("action") == "BUY").sum().alias("buy"),
            (pl.col("action") == "SELL").sum().alias("sell"),
            pl.col("timestamp").min().alias("first"),
            pl.col("timestamp").max().alias("last"),
            pl.col("strategy").drop_nulls().unique().str.join(",").alias("strategy"),
        )
        .sort("symbol")
    )
    print_table(f"{path}: {df.height:,} valid signals", summary.columns, summary.rows())
