"""What every command shares: the error boundary, the bar loader and table printing."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from marketboss.display import metric, value
from marketboss.errors import MarketBossError
from marketboss.logging import get_logger, redact_text

if TYPE_CHECKING:  # heavy modules load inside the commands that use them: `--help` needs none of them
    import polars as pl

    from marketboss.config import Settings
    from marketboss.data.market import Market
    from marketboss.signals.exits import Exits

T = TypeVar("T")

# Wide enough for metric tables when stdout is a pipe or a file (rich assumes 80 columns there).
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def get_settings() -> Settings:
    """The settings, loaded by the first command that reads them (pydantic-settings stays out of `--help`)."""
    from marketboss.config import get_settings as load

    return load()


def run_guarded(fn: Callable[[], Any]) -> int:
    """Run the CLI (the app called with standalone_mode=False): user errors become one redacted line and a
    non-zero exit, never a traceback; a mistyped option too, where click would draw a box and a usage line."""
    import typer

    try:
        code = fn()
    except SystemExit as exc:
        failed = _in_plugin(exc)  # a strategy's own sys.exit() / exit(): its error, not the command's way out
        if failed is not None:
            print(f"error: {redact_text(str(failed))}", file=sys.stderr)
            return failed.exit_code
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except typer.TyperException as exc:  # click's errors (typer's copy of click): a bad option, a typo
        message = " ".join(str(getattr(exc, "format_message", exc.__str__)()).split())
        ctx = getattr(exc, "ctx", None)
        if message:  # (a group called alone has printed its help: nothing to add)
            where = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            print(f"error: {redact_text(message)}{where}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 2))
    except typer.Abort:
        print("interrupted", file=sys.stderr)
        return 130
    except MarketBossError as exc:
        shown = _in_plugin(exc) or exc
        print(f"error: {redact_text(str(shown))}", file=sys.stderr)
        return shown.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the last line of defence: still one line, still redacted
        failed = _in_plugin(exc)
        if failed is not None:  # the user's strategy code at fault: where, not a traceback
            print(f"error: {redact_text(str(failed))}", file=sys.stderr)
            return failed.exit_code
        if isinstance(exc, IsADirectoryError | NotADirectoryError | FileExistsError | PermissionError) and exc.filename:
            print(f"error: {redact_text(str(exc.filename))}: {_PATH_PROBLEMS[type(exc)]}", file=sys.stderr)
            return 2  # a path the user gave (a file option naming a directory): bad input, not our failure
        get_logger("marketboss").error("unexpected_error", error_type=type(exc).__name__, error=str(exc))
        print(f"error: unexpected {type(exc).__name__}: {redact_text(str(exc))}", file=sys.stderr)
        return 1
    return code if isinstance(code, int) else 0


_PATH_PROBLEMS = {IsADirectoryError: "is a directory: give a file", NotADirectoryError: "a part of this path is a "
                  "file, not a directory", FileExistsError: "a file is in the way of the directory to make there",
                  PermissionError: "permission denied"}  # fmt: skip


def _in_plugin(exc: BaseException) -> MarketBossError | None:
    """The error as a plug-in strategy's own when its code raised it (strategies.plugins.failure), the traceback
    in the debug log; None when no plug-in was loaded (its module not even imported) or none was running."""
    plugins = sys.modules.get("marketboss.strategies.plugins")
    failed: MarketBossError | None = None if plugins is None else plugins.failure(exc)
    if failed is not None:
        get_logger("marketboss").debug("strategy_failed", error=str(failed), exc_info=exc)
    return failed


def key_values(values: list[str]) -> list[str]:
    """The --param options' check, run as click parses them: before it would reject `--param fast 10` for its
    stray word, the user is shown the key=value form."""
    for v in values:
        key, sep, _ = v.partition("=")
        if not sep or not key.strip():
            raise MarketBossError(f"--param '{v}' must look like key=value, e.g. --param {key.strip() or 'key'}=VALUE")
    return values


SkipInvalid = typer.Option(
    False, "--skip-invalid", help="Drop bad rows and write each with its reason to FILE.rejected.jsonl."
)


StopLossOpt = typer.Option(None, "--stop-loss-pct", help="Exit: a stop-loss this percent (5 = 5%) from each "
                           "entry's signal price, as a bracket leg.")
TakeProfitOpt = typer.Option(None, "--take-profit-pct", help="Exit: a take-profit this percent from each entry's "
                             "signal price, as a bracket leg.")
TrailOpt = typer.Option(None, "--trail-percent", help="Exit: a trailing stop this percent from the best price "
                        "since each entry (instead of --stop-loss-pct).")


# Options `paper` and `live` share: the same words for the same thing.
MaxPositionPctOpt = typer.Option(None, help="Risk: largest position as a fraction of equity (0.2 = 20%).")
MaxOrderNotionalOpt = typer.Option(None, help="Risk: largest order value in dollars.")
MaxDailyLossOpt = typer.Option(
    None, help="Risk: kill switch when equity falls this fraction below the previous close (0.03 = 3%)."
)
FractionalOpt = typer.Option(False, help="Target-weight orders may use fractional shares.")
AlertOpt = typer.Option(
    None, "--alert", help="apprise URL (Slack, mailto, tgram, json webhook); repeatable. Env MARKETBOSS_ALERT_URLS."
)
AlertEventsOpt = typer.Option("fill,rejection,kill_switch,error,summary", help="Which events alert.")
LiveOpt = typer.Option(False, "--live", help="Trade the LIVE account (real money). Needs --confirm-live.")
ConfirmLiveOpt = typer.Option(False, "--confirm-live", help="Confirm live trading (or MARKETBOSS_CONFIRM_LIVE=yes).")
LongOnlyOpt = typer.Option(False, "--long-only", help="Cut each sale to the shares held, never a short, as a "
                                                     "long-only strategy's own run does (a signals file does not "
                                                     "say it).")
BrokerUrlOpt = typer.Option(None, help="A running local broker, e.g. http://127.0.0.1:8765 (chosen over Alpaca "
                                       "credentials; its keys: MARKETBOSS_BROKER_KEY_ID/_SECRET_KEY).")
LocalDataOpt = typer.Option(None, "--data", help="Bars the local broker replays (default: data/market_data.jsonl).")


def exits_option(stop_loss_pct: float | None, take_profit_pct: float | None, trail_percent: float | None) -> Exits:
    """The exit options as signals.exits.Exits, the one place backtest and paper turn them into prices."""
    from marketboss.signals.exits import Exits

    try:
        return Exits(stop_loss_pct, take_profit_pct, trail_percent)
    except ValueError as exc:
        raise MarketBossError(f"exits: {exc}") from None


def load_bars(path: Path, skip_invalid: bool = False) -> pl.DataFrame:
    from marketboss.data.io import read_bars

    return _with_rejects(path, lambda rejects: read_bars(path, skip_invalid=skip_invalid, rejects_path=rejects))


def load_market(path: Path, skip_invalid: bool = False, symbols: str | None = None) -> Market:
    """The market of a bars file (its cached panel when the file was read before), of `--symbols` if given."""
    from marketboss.data.market import read_market

    market = _with_rejects(path, lambda rejects: read_market(path, skip_invalid=skip_invalid, rejects_path=rejects))
    return market.select(wanted_symbols(symbols, market.symbols, path)) if symbols else market


def _with_rejects(path: Path, read: Callable[[Path], T]) -> T:
    """Read with skipped rows recorded beside the file, and say so."""
    from marketboss.data.io import default_rejects_path

    rejects = default_rejects_path(path)
    rejects.unlink(missing_ok=True)
    out = read(rejects)
    if rejects.exists():
        n = sum(1 for _ in rejects.open("rb"))
        err_console.print(f"[yellow]skipped {n} invalid row(s) of {path}; reasons in {rejects}[/]")
    return out


def wanted_symbols(symbols: str, have: Sequence[str], path: Path) -> list[str]:
    """`--symbols A,B`: every one must be in the file."""
    wanted = [s.strip().upper() for s in symbols.split(",") if s.strip()]
    missing = [s for s in wanted if s not in have]
    if missing:
        raise MarketBossError(f"--symbols: {', '.join(missing)} not in {path} (it has {', '.join(sorted(have))})")
    return wanted


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[str] = ()) -> None:
    """Columns of (mostly) numbers, or named in `numeric` (numbers already formatted), right-aligned, text
    left-aligned."""
    table = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        values = [r[i] for r in rows if i < len(r) and r[i] is not None]
        numbers = bool(values) and sum(isinstance(v, int | float) for v in values) * 2 > len(values)
        table.add_column(c, justify="right" if numbers or c in numeric else "left")
    for row in rows:  # cells are data, not markup: `list[int]` or a path with [brackets] stay as they are
        table.add_row(*[escape(value(v)) for v in row])
    console.print(table)


def print_metrics(title: str, columns: Sequence[str], keys: Sequence[tuple[str, str]],
                  values: Sequence[Sequence[Any]]) -> None:  # fmt: skip
    """A metrics table: one row a (key, label) of backtest.metrics.METRICS, one column a run, each value shown by
    its kind (display.metric: bar times, whole-number durations)."""
    rows = [[label, *[metric(key, v) for v in vals]] for (key, label), vals in zip(keys, values, strict=True)]
    print_table(title, ["metric", *columns], rows, numeric=columns)
