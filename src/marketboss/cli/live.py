"""`marketboss live`: run a strategy on streaming bars and trade each bar's decisions as the bar closes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer

from marketboss.cli.common import (
    AlertEventsOpt,
    AlertOpt,
    BrokerUrlOpt,
    ConfirmLiveOpt,
    FractionalOpt,
    LiveOpt,
    LocalDataOpt,
    MaxDailyLossOpt,
    MaxOrderNotionalOpt,
    MaxPositionPctOpt,
    console,
    get_settings,
    print_table,
)
from marketboss.cli.signals import ParamOpt, StrategyOpt
from marketboss.errors import MarketBossError
from marketboss.execution.retry import DEFAULT_BUDGET


def live(
    strategy: str = StrategyOpt,
    param: list[str] = ParamOpt,
    symbols: str = typer.Option(..., "--symbols", help="Comma-separated symbols to trade, e.g. AAPL,MSFT."),
    timeframe: str = typer.Option("1Min", "--timeframe", help="Bars the strategy runs on: 1Min, 5Min, 15Min, 1Hour "
                                  "or 1Day (the stream's minute bars are aggregated)."),
    warmup_bars: int = typer.Option(500, help="Bars of history per symbol fetched (REST) before the first bar."),
    feed: str = typer.Option("iex", help="Market-data feed: iex or sip."),
    until: str = typer.Option(None, "--until", help="Stop after the last bar closing by then: 'close' (the close of "
                              "the session in progress, or the next) or an RFC 3339 time; default: run until "
                              "stopped (Ctrl-C / SIGTERM)."),
    max_bars: int = typer.Option(None, "--max-bars", help="Stop after this many bars."),
    on_stop: str = typer.Option("cancel", "--on-stop", help="Open orders when it stops: keep (they stay working, a "
                                "restart follows them), cancel (entries still working are canceled, exits stay), "
                                "cancel-all (every open order of the run)."),
    replay_from: str = typer.Option(None, "--replay-from", help="Local broker only: replay history from this date "
                                    "(its first session's open) through the live loop, stepping the broker's "
                                    "clock bar by bar; a restart continues where the clock is."),
    speed: float = typer.Option(0.0, "--speed", help="Replay pace: simulated seconds per second (60: a minute bar "
                                "each second); 0: as fast as the loop goes."),
    signals_output: Path = typer.Option(None, help="The signals log, appended bar by bar (default: "
                                        "data/live_signals.jsonl)."),
    trades_output: Path = typer.Option(None, help="Default: data/paper_trading_trades.jsonl (--live: "
                                       "data/live_account_trades.jsonl)."),
    equity_output: Path = typer.Option(None, help="Default: data/paper_trading_equity.jsonl, a snapshot per bar "
                                       "(--live: data/live_account_equity.jsonl)."),
    status_output: Path = typer.Option(None, help="The session's status for the dashboard (default: "
                                       "data/live_status.json)."),
    grace: float = typer.Option(10.0, help="Seconds after a bar's close before bars the stream has not delivered "
                                "are fetched from REST."),
    max_position_pct: float = MaxPositionPctOpt,
    max_order_notional: float = MaxOrderNotionalOpt,
    max_daily_loss_pct: float = MaxDailyLossOpt,
    fractional: bool = FractionalOpt,
    alert: list[str] = AlertOpt,
    alert_events: str = AlertEventsOpt,
    live: bool = LiveOpt,
    confirm_live: bool = ConfirmLiveOpt,
    broker_url: str = BrokerUrlOpt,
    data: Path = LocalDataOpt,
    broker_db: Path = typer.Option(None, help="The local broker's state when this run starts it (default: "
                                   "broker.sqlite beside --data)."),
    retry_budget: float = typer.Option(DEFAULT_BUDGET, help="Seconds a broker fault is retried before the run stops."),
) -> None:
    """Run a strategy on each closed bar of the market-data stream and trade its decisions at once: warm-up from
    REST, signals appended to a log, orders through the executor (risk, journal, alerts), fills followed on the
    stream, equity snapshotted every bar. Restartable: it resumes after the last bar it decided, sending nothing
    twice."""
    from marketboss.alerts import Alerter
    from marketboss.data.calendar import Timeframe
    from marketboss.execution.connect import connect
    from marketboss.execution.executor import Executor, ExecutorConfig
    from marketboss.execution.live import LiveConfig, LiveLoop, check_symbols
    from marketboss.execution.replay import ReplayClock, clock_view
    from marketboss.risk import RiskConfig
    from marketboss.strategies.registry import create

    s = get_settings()
    strat = create(strategy, param)
    if fractional:  # the exits the parameters put on each entry: every entry refused (the loop checks each bar's
        from marketboss.signals.exits import check_fractional_params  # orders too: an on_bar's own exits)

        check_fractional_params([strat.params])
    if on_stop not in ("keep", "cancel", "cancel-all"):
        raise MarketBossError(f"--on-stop: '{on_stop}' is not one of keep, cancel, cancel-all")
    try:
        cfg = LiveConfig(
            symbols=check_symbols(symbols),
            timeframe=timeframe,
            feed=feed,
            warmup_bars=warmup_bars,
            signals_output=signals_output or s.live_signals,
            status_output=status_output or s.live_status,
            on_stop=on_stop,
            until=_until(until),
            max_bars=max_bars,
            grace=grace,
        )
        exe_cfg = ExecutorConfig(
            signals=cfg.signals_output,
            trades_output=trades_output or s.trades_log(live),
            equity_output=equity_output or s.equity_log(live),
            order_interval=0.0,
            park_after=0.5,
            fractional=fractional,
            retry_budget=retry_budget,
            timeframe=timeframe,
            # a bar's decision at the close goes as the backtest's does: to the next open (orders queue until then)
            risk=RiskConfig(require_market_open=False, max_position_pct=max_position_pct,
                            max_order_notional=max_order_notional, max_daily_loss_pct=max_daily_loss_pct,
                            long_only=bool(getattr(strat.params, "long_only", False))),
        )
    except ValueError as exc:
        from marketboss.cli.paper import _first_error

        raise MarketBossError(_first_error(exc)) from None
    if speed < 0:
        raise MarketBossError("--speed: must be 0 or more")
    alerter = Alerter(list(alert or []) + s.alert_url_list(), [e.strip() for e in alert_events.split(",") if e.strip()])
    # a broker started here replays as fast as asked: no requests-per-wall-minute limit to wait out, and no
    # wall-clock fill latency (paper's replay: neither): 50 ms of it stamped one fill in ten inside its bar, at
    # another price than the backtest's, and not the same ones from one run to the next
    with connect(s, live=live, confirm_live=confirm_live, broker_url=broker_url, local_data=data,
                 local_db=broker_db, retry_budget=retry_budget,
                 local_options={"rate_limit": 0, "fill_latency_ms": 0.0}) as conn:  # fmt: skip
        console.print(conn.note)
        replay = None
        # the stream's bars: Alpaca's are minute bars, the local broker's its data's own
        view = clock_view(conn.broker.base_url, conn.key_id, conn.secret_key) if conn.mode == "local" else {}
        stream_bars = Timeframe.parse(view.get("data_timeframe", "1Min"))
        wanted = Timeframe.parse(cfg.timeframe)
        finer = not wanted.is_daily and (stream_bars.is_daily or wanted.minutes < stream_bars.minutes)
        if conn.mode == "local" and finer:
            raise MarketBossError(
                f"--timeframe {wanted}: the local broker replays {conn.local_data or 'bars'} of {stream_bars}, which "
                f"make no {wanted} bars: pass --timeframe {stream_bars}, --data with bars of {wanted} or finer, or "
                "Alpaca credentials (APCA_API_KEY_ID, APCA_API_SECRET_KEY) for its stream")  # fmt: skip
        if conn.mode == "local" and (replay_from or not broker_url):
            replay = ReplayClock(conn.broker.base_url, conn.key_id, conn.secret_key, speed)
            past = replay.begin(replay_from) if replay_from else None
            if past is not None:
                console.print(f"--replay-from {replay_from}: the local broker's clock (its database) is at "
                              f"{datetime.fromtimestamp(past / 1e6, UTC):%Y-%m-%d %H:%M} UTC already and never goes "
                              "back: the replay goes on from there (a fresh --broker-db starts it at "
                              f"{replay_from})")  # fmt: skip
        elif replay_from:
            raise MarketBossError("--replay-from: only the local broker replays history (no Alpaca credentials, "
                                  "or --broker-url)")  # fmt: skip
        elif view.get("mode") == "stepped":
            raise MarketBossError(f"the local broker at {conn.where} has a stepped clock, which only moves when set: "
                                  "pass --replay-from DATE to replay, or serve it with --clock wallclock or "
                                  "accelerated")  # fmt: skip
        loop = LiveLoop(cfg, strat, conn.broker, Executor(exe_cfg, conn.broker, alerter), mode=conn.mode,
                        broker_display=conn.where, replay=replay, stream_bars=stream_bars)  # fmt: skip
        console.print(f"live: {strat.describe()} on {', '.join(loop.symbols)} ({loop.tf} bars); status in "
                      f"{cfg.status_output}; stop with Ctrl-C")  # fmt: skip
        try:
            summary = loop.run()
        finally:
            if loop.summary.bars or loop.executor.summary.statuses:  # it ran: what it did (a refusal: only why)
                print_table(f"live session ({conn.mode}): {exe_cfg.trades_output}", ["", "value"],
                            loop.summary.as_rows() + loop.executor.summary.as_rows(signals_file=False))  # fmt: skip
    console.print(f"stopped: {summary.stopped_by}")


def _until(text: str | None) -> datetime | str | None:
    if text is None or text.strip().lower() == "close":
        return None if text is None else "close"
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise MarketBossError(f"--until: '{text}' is neither 'close' nor an RFC 3339 time") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)
