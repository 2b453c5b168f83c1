"""`marketboss doctor`: the guide's troubleshooting as a command: what is set up, and what to fix."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from marketboss.cli.common import console, get_settings
from marketboss.errors import MarketBossError
from marketboss.logging import redact_text

OK, WARN, FAIL = "ok", "warn", "FAIL"


def doctor(
    live: bool = typer.Option(False, "--live", help="Check the live set-up instead of paper."),
    broker_url: str = typer.Option(None, help="A running local broker to check (chosen over Alpaca credentials)."),
    signals: Path = typer.Option(None, "--signals", help="Signals file to validate (default: data/signals.jsonl)."),
    data: Path = typer.Option(None, "--data", help="Bars file to validate (default: data/market_data.jsonl)."),
    trades: Path = typer.Option(None, "--trades", help="Trades log to validate (default: paper's, or with --live the "
                                                       "live account's)."),
    equity: Path = typer.Option(None, "--equity", help="Equity log to validate (default: as --trades)."),
    retry_budget: float = typer.Option(5.0, help="Seconds to retry an unanswered broker (a check: short)."),
) -> None:
    """Check credentials, endpoint, broker, account, market clock and input files; print what to fix."""
    from marketboss.config import classify_url
    from marketboss.data.io import read_bars
    from marketboss.execution.connect import check_endpoint, connect
    from marketboss.execution.logs import read_paper_equity, read_paper_trades
    from marketboss.signals import read_signals

    s = get_settings()
    results: list[tuple[str, str, str]] = []

    def check(name: str, fn: Callable[[], tuple[str, str]]) -> bool:
        try:
            status, detail = fn()
        except MarketBossError as exc:
            status, detail = FAIL, str(exc)
        results.append((name, status, detail))
        return status != FAIL

    check(
        "credentials",
        lambda: (
            (OK, "APCA_API_KEY_ID and APCA_API_SECRET_KEY are set")
            if s.has_alpaca_credentials
            else (FAIL, "--live needs APCA_API_KEY_ID and APCA_API_SECRET_KEY (your live keys)") if live
            else (WARN, "APCA_API_KEY_ID / APCA_API_SECRET_KEY not set: paper trading will use the local broker")
        ),
    )
    endpoint_ok = check("endpoint", lambda: (
        (OK, f"{classify_url(broker_url, '--broker-url').display} (the local broker --broker-url names)")
        if broker_url and not live else (OK, check_endpoint(s, live, confirm_live=True).display)))
    bars_path = data or s.market_data
    check("market data", lambda: (OK, f"{bars_path}: {len(read_bars(bars_path)):,} valid bars"))
    sig_path = signals or s.signals
    check("signals", lambda: (OK, f"{sig_path}: {len(read_signals(sig_path)):,} valid signals"))
    check("trades log", lambda: _log(trades or s.trades_log(live), read_paper_trades, "records"))
    check("equity log", lambda: _log(equity or s.equity_log(live), read_paper_equity, "snapshots"))
    if endpoint_ok:
        try:
            with connect(s, live=live, confirm_live=True, broker_url=broker_url, local_data=bars_path,
                         retry_budget=retry_budget) as conn:  # fmt: skip
                acct = conn.broker.account()
                results.append(("broker", OK, conn.note))
                results.append(("account", OK, f"{acct.status}, equity ${acct.equity:,.2f}, buying power "
                                               f"${acct.buying_power:,.2f}"))  # fmt: skip
                clock = conn.broker.clock()
                results.append(
                    ("market", OK if clock.is_open else WARN,
                     "open now" if clock.is_open else f"closed; next open {clock.next_open.isoformat()}")
                )  # fmt: skip
                replays = conn.mode == "local" and not broker_url  # as paper would: it replays the signals
                trades_log = trades or s.trades_log(live)
                check("freshness", lambda: _replayable(sig_path, bars_path, clock.timestamp, trades_log) if replays
                      else _freshness(sig_path, bars_path, clock.timestamp))  # fmt: skip
        except MarketBossError as exc:
            results.append(("broker", FAIL, str(exc)))
    for name, status, detail in results:
        colour = {OK: "green", WARN: "yellow", FAIL: "red"}[status]
        console.print(f"[{colour}]{status:>4}[/] {name:<12} {redact_text(detail)}", markup=True, highlight=False)
    failed = [n for n, st, _ in results if st == FAIL]
    if failed:
        raise MarketBossError(f"doctor found {len(failed)} problem(s): {', '.join(failed)}")


def _log(path: Path, read: Callable[..., Any], what: str) -> tuple[str, str]:
    """A paper or live log as the dashboard and reconcile read it: not there yet (nothing traded) is no fault; a
    torn last line (a write a crash cut short) is left out by them, and finished by the next run on the file."""
    if not path.exists():
        return OK, f"{path}: not written yet (paper or live writes it)"
    torn: list[int] = []
    n = read(path, torn.append).height
    if torn:
        return WARN, (f"{path}: {n:,} valid {what}; line {torn[0]} is torn (a write cut short, e.g. by a crash): "
                      "left out until paper/live runs on the file again")  # fmt: skip
    return OK, f"{path}: {n:,} valid {what}"


def _replayable(signals: Path, data: Path, now: datetime, trades: Path) -> tuple[str, str]:
    """What paper's replay on the local broker it starts would make of the signals its trades log has not recorded
    (an earlier run's, `--max-trades`: it goes on from them): each sent at its next bar, unless the broker's clock
    (its database) is already past it."""
    from marketboss.execution.logs import done_signal_ids
    from marketboss.execution.replay import ReplayBars
    from marketboss.signals import read_signals

    done = done_signal_ids(trades) if trades.exists() else set()
    every = read_signals(signals)
    sigs = [s for s in every if s.id not in done]
    earlier = f" ({len(every) - len(sigs):,} recorded by earlier runs)" if len(sigs) < len(every) else ""
    behind = ReplayBars(data).behind(sigs, int(now.timestamp() * 1_000_000))
    if not behind:
        return OK, f"{len(sigs):,} to replay{earlier}, each at its next bar (the local broker paper starts)"
    at = now.astimezone(UTC)
    return WARN, (f"{len(behind):,} of the {len(sigs):,} signals to replay{earlier} are before the local broker's "
                  f"clock ({at:%Y-%m-%d %H:%M} UTC, its database): paper refuses to replay them; --broker-db starts a "
                  "fresh one")  # fmt: skip


def _freshness(signals: Path, data: Path, now: datetime) -> tuple[str, str]:
    """How many signals paper would send now, skip as stale, or refuse as not yet completed."""
    from marketboss.execution.freshness import Freshness, ages, signals_timeframe
    from marketboss.signals import read_signals

    times = [sig.timestamp for sig in read_signals(signals)]
    now = now.astimezone(UTC)
    tf = signals_timeframe(data, times)
    counts = Counter(a.freshness for a in ages(times, now, tf))
    detail = (f"{counts[Freshness.FRESH]:,} fresh, {counts[Freshness.STALE]:,} stale (skipped by paper unless "
              f"--allow-stale), {counts[Freshness.FUTURE]:,} after the broker's clock ({now:%Y-%m-%d %H:%M} UTC, "
              f"{tf} bars)")  # fmt: skip
    return (WARN if counts[Freshness.STALE] or counts[Freshness.FUTURE] else OK), detail
