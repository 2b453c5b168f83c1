"""`marketboss paper`: execute signals on Alpaca paper (or the local broker) with risk checks and alerts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from marketboss.cli.common import (
    AlertEventsOpt,
    AlertOpt,
    BrokerUrlOpt,
    ConfirmLiveOpt,
    FractionalOpt,
    LiveOpt,
    LocalDataOpt,
    LongOnlyOpt,
    MaxDailyLossOpt,
    MaxOrderNotionalOpt,
    MaxPositionPctOpt,
    StopLossOpt,
    TakeProfitOpt,
    TrailOpt,
    console,
    exits_option,
    get_settings,
    print_table,
)
from marketboss.errors import MarketBossError
from marketboss.execution.retry import DEFAULT_BUDGET


def paper(
    signals: Path = typer.Option(None, "--signals", help="Signals JSONL (default: data/signals.jsonl)."),
    max_trades: int = typer.Option(None, "--max-trades", help="Execute at most N signals this run: the first N "
                                   "still to send, in file order (oldest first), after stale ones are skipped."),
    allow_stale: bool = typer.Option(False, "--allow-stale", help="Also send signals whose bar is no longer the "
                                     "latest completed one at the broker's clock (a newer bar has closed)."),
    timeframe: str = typer.Option(None, "--timeframe", help="The signals' bars, for freshness: 1Day, 5Min, ... "
                                  "(default: read from --data's spacing)."),
    trades_output: Path = typer.Option(None, "--trades-output", help="Default: data/paper_trading_trades.jsonl "
                                       "(--live: data/live_account_trades.jsonl)."),
    equity_output: Path = typer.Option(None, "--equity-output", help="Default: data/paper_trading_equity.jsonl "
                                       "(--live: data/live_account_equity.jsonl)."),
    order_interval: float = typer.Option(None, help="Seconds between orders (rate limiting; default 1, and 0 on "
                                         "a local broker this run starts, which has no rate limit)."),
    fill_timeout: float = typer.Option(300.0, help="Seconds to wait for a fill; then cancel, record as expired (a "
                                       "replay's order working on later bars waits for the clock instead)."),
    poll_interval: float = typer.Option(0.5, help="Seconds between order-status polls (when not streaming)."),
    stream: bool = typer.Option(True, help="Follow orders on the broker's trade_updates websocket (polling is "
                                "the fallback while it is down); --no-stream polls only."),
    equity_interval: float = typer.Option(60.0, help="Seconds between equity snapshots while waiting for fills."),
    max_position_shares: float = typer.Option(None, help="Risk: largest position in shares."),
    max_position_pct: float = MaxPositionPctOpt,
    max_order_notional: float = MaxOrderNotionalOpt,
    allowed_symbols: str = typer.Option(None, help="Risk: comma-separated allow-list of symbols."),
    max_daily_loss_pct: float = MaxDailyLossOpt,
    stop_loss_pct: float = StopLossOpt,
    take_profit_pct: float = TakeProfitOpt,
    trail_percent: float = TrailOpt,
    ignore_market_hours: bool = typer.Option(False, help="Send orders while the market is closed (they queue)."),
    no_buying_power_check: bool = typer.Option(False, "--no-buying-power-check",
                                               help="Let the broker, not us, refuse unaffordable orders."),
    long_only: bool = LongOnlyOpt,
    fractional: bool = FractionalOpt,
    alert: list[str] = AlertOpt,
    alert_events: str = AlertEventsOpt,
    live: bool = LiveOpt,
    confirm_live: bool = ConfirmLiveOpt,
    broker_url: str = BrokerUrlOpt,
    replay: bool = typer.Option(
        None,
        help="Local broker only: move its clock to each signal's next bar, and on through the bars while orders or "
        "exits work (after the last signal: to the end of the data), so fills meet the backtest's bars and prices "
        "(default: on for a broker started by this run, off for --broker-url).",
    ),
    data: Path = LocalDataOpt,
    broker_db: Path = typer.Option(None, help="The local broker's state when this run starts it (default: "
                                   "broker.sqlite beside --data); a replay needs one its clock is not past."),
    reset_kill_switch: bool = typer.Option(False, help="Trade again today after the kill switch tripped."),
    retry_budget: float = typer.Option(
        DEFAULT_BUDGET, help="Seconds a broker fault (5xx, 429, timeout, dropped connection) is retried before the run "
        "stops (rerun to finish); the broker's Retry-After is honoured."
    ),
    request_timeout: float = typer.Option(10.0, help="Seconds to wait for one broker answer before retrying."),
) -> None:
    """Execute signals as the orders they describe, verify fills, follow their exits, and log trades and equity
    (resumable: rerun to finish)."""
    from marketboss.alerts import Alerter
    from marketboss.execution.connect import connect
    from marketboss.execution.executor import Executor, ExecutorConfig
    from marketboss.execution.replay import LocalReplay
    from marketboss.risk import RiskConfig

    s = get_settings()
    exits = exits_option(stop_loss_pct, take_profit_pct, trail_percent)
    try:
        risk = RiskConfig(
            require_market_open=not ignore_market_hours,
            allowed_symbols=allowed_symbols,
            max_position_shares=max_position_shares,
            max_position_pct=max_position_pct,
            max_order_notional=max_order_notional,
            check_buying_power=not no_buying_power_check,
            long_only=long_only,
            max_daily_loss_pct=max_daily_loss_pct,
        )
        cfg = ExecutorConfig(
            signals=signals or s.signals,
            trades_output=trades_output or s.trades_log(live),
            equity_output=equity_output or s.equity_log(live),
            max_trades=max_trades,
            order_interval=1.0 if order_interval is None else order_interval,
            fill_timeout=fill_timeout,
            poll_interval=poll_interval,
            stream=stream,
            equity_interval=equity_interval,
            fractional=fractional,
            reset_kill_switch=reset_kill_switch,
            retry_budget=retry_budget,
            allow_stale=allow_stale,
            timeframe=timeframe or _timeframe(data or s.market_data, signals or s.signals),
            exits=exits,
            risk=risk,
        )
    except ValueError as exc:  # pydantic: name the option and the rule
        raise MarketBossError(_first_error(exc)) from None
    if not cfg.signals.exists():
        raise MarketBossError(f"{cfg.signals}: file not found (generate signals first: marketboss signals generate)")
    # before a broker is started or anything sent: every entry of a fraction of a share with exits would be refused
    from marketboss.signals import read_signals_frame
    from marketboss.signals.exits import check_fractional, with_exits

    check_fractional(with_exits(read_signals_frame(cfg.signals), exits, str(cfg.signals)), str(cfg.signals),
                     weights=fractional)  # fmt: skip
    alerter = Alerter(list(alert or []) + s.alert_url_list(), [e.strip() for e in alert_events.split(",") if e.strip()])
    if not request_timeout > 0:
        raise MarketBossError("--request-timeout: must be greater than 0")
    # a broker started here replays as fast as asked (as the live loop's): no requests-per-wall-minute limit to
    # wait out, which held a year of a strategy's signals up for minutes; and in a replay no wall-clock fill
    # latency: an entry filled at a bar's open was seen only after the clock had left the bar, so exits placed
    # once it filled missed the bar the backtest trades them on
    options: dict[str, Any] = {"rate_limit": 0, **({"fill_latency_ms": 0.0} if replay is not False else {})}
    with connect(s, live=live, confirm_live=confirm_live, broker_url=broker_url, local_data=data, local_db=broker_db,
                 retry_budget=cfg.retry_budget, request_timeout=request_timeout,
                 local_options=options) as conn:  # fmt: skip
        console.print(conn.note)
        started_here = conn.mode == "local" and not broker_url
        if started_here and order_interval is None:
            cfg = cfg.model_copy(update={"order_interval": 0.0})
        use_replay = conn.mode == "local" and (replay if replay is not None else started_here)
        rep = (
            LocalReplay(conn.broker, data or conn.local_data or s.market_data, conn.key_id, conn.secret_key,
                        served=bool(broker_url))
            if use_replay
            else None
        )
        executor = Executor(cfg, conn.broker, alerter, replay=rep)
        try:
            summary = executor.run()
        finally:
            if rep is not None:
                rep.close()
            if executor.summary.signals:  # it ran (a refusal before the first signal: only why)
                print_table(f"paper run ({conn.mode}): {cfg.trades_output}", ["", "value"], executor.summary.as_rows())
    if summary.stopped_by:
        raise MarketBossError(summary.stopped_by)
    if not summary.signals:  # (a schedule's signals job of a model trained to the last bar writes none)
        console.print(f"no signals in {cfg.signals}: nothing to trade")


def _timeframe(data: Path, signals: Path) -> str:
    from marketboss.execution.freshness import signals_timeframe
    from marketboss.signals import read_signals

    return str(signals_timeframe(data, [sig.timestamp for sig in read_signals(signals)] if signals.exists() else []))


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        e = errors()[0]
        where = "--" + "-".join(str(p) for p in e["loc"][-1:]).replace("_", "-")
        return f"{where}: {e['msg'].removeprefix('Value error, ')}"
    return str(exc)
