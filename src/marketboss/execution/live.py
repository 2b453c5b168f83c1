"""The live loop (`marketboss live`): a strategy run on bars as they close, each bar's decisions traded at once.

One bar after another on the NYSE grid of the timeframe (data.calendar.bar_grid, the grid the data files use):
1. wait for the bar to close: at the broker's clock, or, replaying on the local broker, by stepping its clock;
2. collect the bar of every symbol from the market-data stream (broker/bars.py; minute bars are aggregated into
   longer ones): a symbol's bar is complete once the stream's bar of the slot's last minute has come (the local
   broker's stream sends its data's own bars: then the last of those); a symbol the stream did not complete (it
   dropped, or was late, or the symbol had no trade in that minute) is fetched from REST and logged as a gap;
3. run the strategy (vectorised or event-driven, unchanged) on the history up to and including that bar and take
   the signals it makes on that bar: their ids are the backtest's (same strategy, parameters, symbol, time, side);
   an event strategy trades from the session's first bar (its warm-up's orders canceled as placed), so its run's
   positions and working orders are the account's;
4. append them to the signals log (fsynced), then hand them to the executor (risk checks, journal, alerts), which
   sends them at once and follows their fills on `trade_updates`; an order still working is followed on later
   bars;
5. snapshot equity to the guide's equity log and rewrite the status file (execution/live_status.py).

A bar whose decision comes late (a newer bar has already closed: a catch-up after a restart or a long outage) is
decided and logged but not traded: a stale signal is never sent. A restart resumes after the last bar the status
file records, finishes orders the journal says were started, and sends nothing twice (client order ids are the
signal ids). SIGINT/SIGTERM end the bar in progress, then apply the open-orders policy (`on_stop`).

Its clock is the broker's: against the local broker with a stepped clock the loop replays any past window at any
speed through exactly this code path (execution/replay.py: ReplayClock), which is how it is tested against the
backtest of the same strategy and window.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator

from marketboss.backtest.costs import BacktestConfig
from marketboss.broker.alpaca import AlpacaBroker
from marketboss.broker.bars import BarStream, LiveBar
from marketboss.data.calendar import NY, Timeframe, bar_grid, schedule, start_of_last_bars
from marketboss.data.grid import OHLCV, fetch_timeframe, on_grid
from marketboss.data.io import JsonlAppender, read_jsonl_records
from marketboss.data.market import Market
from marketboss.data.schema import BAR_DTYPES
from marketboss.errors import MarketBossError
from marketboss.execution.executor import Executor, client_order_id
from marketboss.execution.intended import net_positions, order_bounds
from marketboss.execution.live_status import LiveStatus, StreamHealth, read_status, write_status
from marketboss.execution.replay import ReplayClock
from marketboss.logging import get_logger
from marketboss.signals import CANCELS, parse_signal, read_signals, signal_records
from marketboss.signals.exits import check_fractional
from marketboss.strategies.base import Strategy
from marketboss.strategies.events import EventStrategy
from marketboss.strategies.plugins import failure

log = get_logger(__name__)
US = 1_000_000
NY_TZ = ZoneInfo(NY)
MINUTE_US = 60 * US
MINUTE = Timeframe(1, "Min")  # the stream's bars on Alpaca (its `bars` channel)
OnStop = Literal["keep", "cancel", "cancel-all"]


class LiveConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    symbols: tuple[str, ...] = Field(min_length=1)
    timeframe: str = "1Min"
    feed: str = Field("iex", pattern="^(iex|sip)$")
    warmup_bars: int = Field(500, ge=1, description="bars of history per symbol fetched before the first bar")
    signals_output: Path
    status_output: Path
    on_stop: OnStop = Field(
        "cancel",
        description="keep: leave open orders working; cancel: cancel the entries still working, keep the exits; "
        "cancel-all: cancel every open order of the run",
    )
    until: datetime | Literal["close"] | None = Field(
        None, description="stop after the last bar that closes at or before this ('close': the session's close)"
    )
    max_bars: int | None = Field(None, gt=0, description="stop after this many bars")
    settle: float = Field(0.5, ge=0, description="seconds to wait for the other symbols once one's bar is complete")
    grace: float = Field(10.0, gt=0, description="seconds after a bar's close before missing bars come from REST")
    stream_connect_timeout: float = Field(5.0, ge=0)

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, v: str) -> str:
        return str(Timeframe.parse(v))


@dataclass(frozen=True)
class Slot:
    """One bar of the grid: [start, end) in epoch microseconds (UTC)."""

    start: int
    end: int

    @property
    def stamp(self) -> datetime:
        return datetime.fromtimestamp(self.start / US, UTC)


@dataclass
class LiveSummary:
    bars: int = 0
    signals: int = 0
    stale: int = 0
    gaps: int = 0  # bars the stream was waited for and did not deliver in time (it dropped, or was late)
    bars_backfilled: int = 0  # bars fetched over REST: those gaps, and bars that closed before the loop got to them
    to_submit_ms: list[float] = field(default_factory=list)  # bar close -> order accepted
    to_fill_ms: list[float] = field(default_factory=list)  # bar close -> first fill heard on the stream
    stopped_by: str | None = None

    def as_rows(self) -> list[tuple[str, object]]:
        def p50_p99(xs: list[float]) -> str:
            return " / ".join(f"{np.percentile(xs, q):.2f}" for q in (50, 99)) if xs else "-"

        return [
            ("bars", self.bars),
            ("signals", self.signals),
            ("signals stale (not sent)", self.stale),
            ("stream gaps back-filled", self.gaps),
            ("bars back-filled", self.bars_backfilled),
            ("bar close -> order accepted p50 / p99 ms", p50_p99(self.to_submit_ms)),
            ("bar close -> fill event, within the bar, p50 / p99 ms", p50_p99(self.to_fill_ms)),
        ]


def _iso(us: int | None) -> str | None:
    return None if us is None else datetime.fromtimestamp(us / US, UTC).isoformat().replace("+00:00", "Z")


def _us(t: datetime) -> int:
    return int(t.timestamp() * US)


#: A restart fetches the session's bars since its first one, up to this many times warmup_bars (a session run for
#: longer, e.g. by the scheduler day after day, begins again: its strategy trades from the restart's first bar).
RESUMED_BARS = 4


#: Where a replay stops the clock after a session's open (us) while entries queued at the close before wait for
#: their exits: the broker fills queued orders one after the other (its latency each), not all at the open.
OPEN_STEPS = (0, US, 5 * US, 30 * US, 60 * US)


def _session_open(slot: Slot) -> int:
    """The open of the slot's session (epoch us), or its start if later: where orders queued at the close before
    it fill."""
    day = datetime.fromtimestamp(slot.start / US, NY_TZ).date()
    opens = schedule(day, day)["open"]
    return max(slot.start, int(opens.iloc[0].value // 1000)) if not opens.empty else slot.start


def _us_of(iso: str | None) -> int | None:
    """An RFC 3339 time of the status file in epoch microseconds."""
    return None if iso is None else _us(datetime.fromisoformat(iso.replace("Z", "+00:00")))


def _utc_date(us: int) -> date:
    return datetime.fromtimestamp(us / US, UTC).date()


class LiveLoop:
    def __init__(
        self,
        config: LiveConfig,
        strategy: Strategy[Any],
        broker: AlpacaBroker,
        executor: Executor,
        *,
        mode: str,
        broker_display: str,
        replay: ReplayClock | None = None,
        stream_bars: Timeframe = MINUTE,
    ):
        self.cfg = config
        self.strategy = strategy
        self.broker = broker
        self.executor = executor
        self.replay = replay
        self.tf = Timeframe.parse(config.timeframe)
        self.stream_bars = stream_bars  # Alpaca's are minute bars; the local broker's its data's own
        self.symbols = sorted(config.symbols)
        self.summary = LiveSummary()
        self.stop_requested: str | None = None
        self._history = pl.DataFrame(schema=BAR_DTYPES)
        self._buffer: list[LiveBar] = []
        self._grid: list[Slot] = []
        self._logged: set[str] = set()
        self._stream: BarStream | None = None
        self._signals_log: JsonlAppender | None = None
        self._signal_lines = 0
        self._failed: str | None = None  # why the run failed, if it did
        self._canceled: dict[str, datetime] = {}  # an event strategy's orders an earlier run's stop canceled
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        self.status = LiveStatus(strategy=strategy.describe(), symbols=self.symbols, timeframe=str(self.tf),
                                 broker=broker_display, mode=mode, pid=os.getpid(), started_at=now, updated_at=now,
                                 equity_log=str(executor.cfg.equity_output.resolve()),
                                 signals_log=str(config.signals_output.resolve()))  # fmt: skip
        # (resolved: the dashboard, started elsewhere, read a relative one against its own directory)

    # ------------------------------------------------------------------------------------------ run
    def run(self) -> LiveSummary:
        previous = read_status(self.cfg.status_output)
        now = self._now_us()
        self._check_symbols()  # reads only, before any file is opened: a start that fails writes nothing
        last_done = self._resume_point(previous, now)  # and the session's first bar (status.trading_from)
        self._warm_up(now, _us_of(self.status.trading_from))
        self._canceled = self._canceled_before() if last_done is not None else {}
        self._install_signal_handlers()
        self.executor.open_session()
        try:
            self._signals_log = self._open_signals_log()
            self._write_status("warming_up")
            self._stream = self.broker.bar_stream(self.symbols, self.cfg.feed)
            self._stream.start()
            if not self._stream.wait_live(self.cfg.stream_connect_timeout):
                log.warning("bar_stream_unavailable", fallback="REST after each bar's grace")
            self._finish_started()
            # the account as the session starts: its equity at start, and (flat) the all-cash line from which
            # reconcile values the session bar by bar from its fills (the first bar's snapshot follows its fills)
            acct = self.executor.snapshot()
            if self.status.start_equity is None:
                self.status.start_equity = acct.equity
            self._loop(last_done if last_done is not None else self._last_history_bar())
        except Exception as exc:  # the status says it failed, and why (the CLI prints the error)
            failed = failure(exc)  # a plug-in's own error: as the CLI says it
            self._failed = (str(failed) if failed is not None else str(exc) if isinstance(exc, MarketBossError)
                            else f"{type(exc).__name__}: {' '.join(str(exc).split()) or 'no message'}")  # fmt: skip
            self.summary.stopped_by = self._failed
            raise
        finally:
            self._shutdown()
        return self.summary

    def _check_symbols(self) -> None:
        unknown = [s for s in self.symbols if self.executor.retry("get asset", partial(self.broker.asset, s)) is None]
        if unknown:
            raise MarketBossError(f"--symbols: the broker has no asset {', '.join(unknown)}")

    def _loop(self, after: int) -> None:
        until = self._until()
        replay_end = self.replay.data_end_us if self.replay is not None else None
        slot = self._next_slot(after)
        while self.stop_requested is None:
            if (until is not None and slot.end > until) or (replay_end is not None and slot.end > replay_end):
                self.stop_requested = "reached the end of the window"
                break
            closed = self._close(slot)
            if closed is None:
                break  # asked to stop while waiting
            closed_at, caught_up = closed
            bars = self._collect(slot, closed_at, wait=not caught_up)
            nxt = self._next_slot(slot.start)
            fresh = self._now_us() < nxt.end  # a replay's clock too: one moved past it since (a restart) is stale
            self._decide(slot, bars, closed_at, fresh, market_closes=nxt.start > slot.end)
            if self.cfg.max_bars is not None and self.summary.bars >= self.cfg.max_bars:
                self.stop_requested = f"{self.cfg.max_bars} bars done"
            slot = nxt

    def _until(self) -> int | None:
        """When to stop: the configured time, or the close of the session in progress (or the next) at the
        broker's clock."""
        if self.cfg.until is None:
            return None
        if self.cfg.until != "close":
            return _us(self.cfg.until)
        now = self._now_us()
        day = _utc_date(now)
        closes = schedule(day - timedelta(days=1), day + timedelta(days=10))["close"]
        return next(c for c in (_us(c.to_pydatetime()) for c in closes) if c > now)

    # ------------------------------------------------------------------------------------------ bars
    def _next_slot(self, after: int) -> Slot:
        """The first bar of the grid that starts after `after` (epoch us)."""
        if not self._grid or not self._grid[0].start <= after < self._grid[-1].start:
            first = _utc_date(after)
            starts, ends = bar_grid(first - timedelta(days=1), first + timedelta(days=30), self.tf)
            self._grid = [Slot(int(s), int(e)) for s, e in zip(starts.astype(np.int64), ends.astype(np.int64),
                                                               strict=True)]  # fmt: skip
        i = next(i for i, s in enumerate(self._grid) if s.start > after)
        del self._grid[: max(0, i - 1)]  # keep the bar before: the next question is about it or later
        return self._grid[i - max(0, i - 1)]

    def _close(self, slot: Slot) -> tuple[float, bool] | None:
        """Wait until the bar has closed (replay: step the clock to its end). Returns when it closed (perf_counter)
        and whether it had closed before the wait began (a catch-up: the stream sent it, if at all, earlier)."""
        if self.replay is not None:
            if self.executor.awaiting_exits():  # the orders queued at the last close fill at the open: exits then
                opens = _session_open(slot)
                for after in OPEN_STEPS:
                    if self.replay.step(opens + after, 0) is not None:
                        self.executor.follow(poll=True)  # the stream may not have told the fills yet
                    if not self.executor.awaiting_exits():
                        break
            asked = self.replay.step(slot.end, min(slot.end - slot.start, self.tf.minutes * 60 * US))
            return (asked, False) if asked is not None else (time.perf_counter(), True)
        if self._now_us() >= slot.end:
            return time.perf_counter(), True
        next_check = time.monotonic() + 1.0
        while self.stop_requested is None:
            if time.monotonic() >= next_check:
                if self._now_us() >= slot.end:
                    return time.perf_counter(), False
                if self.executor.awaiting_exits():  # an entry filled meanwhile gets its exit now, not at the close
                    self.executor.follow()
                next_check = time.monotonic() + 1.0
            b = self._take(0.25)
            if b is not None and b.start_us >= self._last_part(slot):  # its last minute came: it has closed
                return b.received, False
        return None

    def _take(self, timeout: float) -> LiveBar | None:
        """The next streamed bar (kept in the buffer), waiting up to timeout."""
        assert self._stream is not None
        b = self._stream.get(timeout)
        if b is not None:
            self._buffer.append(b)
            self.status.stream.last_message_at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        return b

    def _last_part(self, slot: Slot) -> int:
        """Where the stream's last bar of the slot starts (its last minute; a daily bar covers its whole slot)."""
        if self.stream_bars.is_daily:
            return slot.start
        return max(slot.start, slot.end - self.stream_bars.minutes * MINUTE_US)

    def _collect(self, slot: Slot, closed_at: float, wait: bool) -> pl.DataFrame:
        """Every symbol's bar of the slot: from the stream (minute bars aggregated) once its last minute has come,
        else from REST (at once for a bar that closed before the wait for it began)."""
        stream = self._stream
        assert stream is not None
        want = set(self.symbols)
        deadline = closed_at + self.cfg.grace
        first_done: float | None = None
        while True:
            mine = [b for b in self._buffer if slot.start <= b.start_us < slot.end]
            done = {b.symbol for b in mine if b.start_us >= self._last_part(slot)}  # every minute of it came
            if done >= want or any(b.start_us >= slot.end for b in self._buffer):
                break
            if done and first_done is None:
                first_done = time.perf_counter()
            now = time.perf_counter()
            limit = deadline if first_done is None else min(deadline, first_done + self.cfg.settle)
            if not wait or now >= limit or not stream.live or self.stop_requested is not None:
                break
            self._take(min(0.25, limit - now))
        self._buffer = [b for b in self._buffer if b.start_us >= slot.end]
        got = _aggregate([b for b in mine if b.symbol in done], slot)
        missing = sorted(want - set(got["symbol"].to_list()))
        if missing:
            fetched = self._fetch(missing, slot.start, slot.start)
            if fetched.height:
                self.summary.gaps += wait  # the stream was waited for and missed them (not a catch-up)
                self.summary.bars_backfilled += fetched.height
                log.warning("bars_backfilled", bar=_iso(slot.start), symbols=fetched["symbol"].to_list(),
                            stream_live=stream.live)  # fmt: skip
                got = pl.concat([got, fetched]).sort("symbol")
        return got

    def _fetch(self, symbols: list[str], start_us: int, end_us: int) -> pl.DataFrame:
        """The bars starting in [start, end] on the grid the stream's are aggregated onto (data.grid: Alpaca's
        hourly bars are clock hours, so an hour is made of its 30-minute bars; its extended hours are left out)."""
        asked = fetch_timeframe(self.tf, self.stream_bars)
        start = datetime.fromtimestamp(start_us / US, UTC)
        end = datetime.fromtimestamp(end_us / US + (self.tf.minutes - asked.minutes) * 60, UTC)  # the last bar's parts
        bars = self.executor.retry("get bars", lambda: self.broker.bars(symbols, start, end, asked, self.cfg.feed))
        return on_grid(bars, self.tf).bars

    def _warm_up(self, now: int, since: int | None = None) -> None:
        """The history the first decision sees (REST): the last warmup_bars closed bars of each symbol before the
        session's first bar, and, resuming a session that began at `since`, every bar from there on. A restart
        thus runs the strategy on the very history the session's first run had, grown: the same decisions (an
        event strategy trades from `since`; `ctx.t` counts from the same bar)."""
        bars_since = 0 if since is None else (now - since) / (86_400 * US) * 5 / 7 * self.tf.bars_per_session
        if since is not None and bars_since > RESUMED_BARS * self.cfg.warmup_bars:
            log.info("live_session_restarted", began=_iso(since), why="longer than the history a restart fetches")
            since = self.status.trading_from = None  # it trades from this run's first bar (intended.py's case)
        first = now if since is None else min(since, now)
        start = start_of_last_bars(first, self.cfg.warmup_bars, self.tf)
        bars = self._fetch(self.symbols, start, now)
        us = pl.col("timestamp").dt.epoch("us")
        bars = bars.filter(us < self._next_slot(now - 1).start)
        before = bars.filter(us < first).group_by("symbol", maintain_order=True).tail(self.cfg.warmup_bars)
        recent = pl.concat([b.select(BAR_DTYPES.names()) for b in (before, bars.filter(us >= first))])
        self._history = recent.sort("timestamp", "symbol")
        log.info("live_warm_up", bars=self._history.height, symbols=self.symbols, start=_iso(start), now=_iso(now))

    def _last_history_bar(self) -> int:
        if self._history.is_empty():
            return self._now_us()
        return int(self._history["timestamp"].dt.epoch("us").max())  # type: ignore[arg-type]

    # ------------------------------------------------------------------------------------------ decisions
    def _decide(self, slot: Slot, bars: pl.DataFrame, closed_at: float, fresh: bool, market_closes: bool) -> None:
        """Run the strategy on the history with this bar, log and send its signals on this bar (orders placed at the
        close wait for the next open: they are left working at once), follow fills, snapshot, write the status."""
        if bars.height:
            self._history = pl.concat([self._history.filter(pl.col("timestamp").dt.epoch("us") < slot.start),
                                       bars.select(BAR_DTYPES.names())])  # fmt: skip
        signals, bounds = [], {}
        if self.status.trading_from is None:
            self.status.trading_from = _iso(slot.start)
        if not self._history.is_empty() and bars.height:
            # before the session's last bar its day orders work on: the history ends inside the session
            market = replace(Market.from_bars(self._history), inside_last_session=not market_closes)
            frame, held = self._run_strategy(market)
            if self._canceled and CANCELS in frame.columns:  # the stop's cancels, in the log (not sent: done)
                self._log_signals(frame.filter(pl.col(CANCELS).is_in(list(self._canceled))
                                               & (pl.col("timestamp").dt.epoch("us") < slot.start)))  # fmt: skip
            new = frame.filter(pl.col("timestamp").dt.epoch("us") == slot.start)
            # as backtest refuses it (a fractional quantity with exits; --fractional's weights): it stops, nothing sent
            check_fractional(new, f"strategy {self.strategy.describe()}", weights=self.executor.cfg.fractional)
            signals = self._log_signals(new)
            bounds = order_bounds(frame, slot.start, held)
        self.summary.bars += 1
        self.status.bars_seen += 1
        day = datetime.fromtimestamp(slot.start / US, NY_TZ).date()
        if self.status.last_bar is None or datetime.fromisoformat(self.status.last_bar).astimezone(NY_TZ).date() != day:
            self.status.signals_today = 0  # a new session
        self.status.last_bar = _iso(slot.start)
        self.summary.signals += len(signals)
        self.status.signals_today += len(signals)
        if fresh:  # no signals too: a flip's rest waits for the bar after its close (Executor._close_first)
            self.executor.execute(signals, park_after=0.0 if market_closes else None, bounds=bounds)
        else:
            for sig in signals:
                self.summary.stale += 1
                self.executor.skip(sig, f"stale: decided on bar {_iso(slot.start)} after a newer bar closed")
        self._measure(signals, closed_at)
        self.executor.follow()
        # at the bar's close, or a bar caught up after a restart: at the broker's time (the account is as it is
        # now, not at that bar's close: stamped there, the log went back in time with later values)
        acct = self.executor.snapshot(datetime.fromtimestamp(slot.end / US, UTC) if fresh else None)
        self.status.account = {"equity": acct.equity, "cash": acct.cash, "buying_power": acct.buying_power}
        self._write_status("running")

    def _run_strategy(self, market: Market) -> tuple[pl.DataFrame, dict[str, float] | None]:
        """The strategy's signals over the history and, for an event strategy, what its run holds at the end (an
        exposure strategy's holdings are the sum of its signals: execution/intended.py). An event strategy
        trades from the session's first bar: its warm-up's orders are canceled as placed, so it starts flat and
        without working orders, as the account does (its decisions depend on its own positions and orders), with
        the account's equity as the session began for its cash and the executor's fractional sizing (before: a
        default account's 100,000 and whole shares, so a strategy sizing from ctx.cash traded a tenth of a
        1,000,000 account, and its backtest at the account's cash decided otherwise)."""
        if isinstance(self.strategy, EventStrategy):
            start = _us_of(self.status.trading_from)
            assert start is not None and self.status.start_equity is not None
            config = BacktestConfig(cash=self.status.start_equity, fractional=self.executor.cfg.fractional)
            result, frame = self.strategy.backtest(market, config, trade_from=datetime.fromtimestamp(start / US, UTC),
                                                   canceled=self._canceled)  # fmt: skip
            return frame, net_positions(result.fills)
        return self.strategy.signals(market), None

    def _log_signals(self, frame: pl.DataFrame) -> list[Any]:
        """The bar's signals, appended to the signals log (each once, whatever restarts came between)."""
        assert self._signals_log is not None
        out = []
        for row, record in zip(frame.iter_rows(named=True), signal_records(frame), strict=True):
            self._signal_lines += row["id"] not in self._logged
            sig = parse_signal(row, self.cfg.signals_output, self._signal_lines)
            if sig.id not in self._logged:
                self._signals_log.append(record)
                self._logged.add(sig.id)
            out.append(sig)
        return out

    def _measure(self, signals: list[Any], closed_at: float) -> None:
        sent = self.executor.submitted
        for sig in signals:
            if sig.id in sent:
                self.summary.to_submit_ms.append((sent[sig.id] - closed_at) * 1000)
        updates = self.executor.updates
        if updates is None:
            return
        for sig in signals:  # fills heard while the bar's orders were sent; later ones are not this bar's latency
            heard = updates.first_fill.get(client_order_id(sig.id))
            if heard is not None:
                self.summary.to_fill_ms.append((heard - closed_at) * 1000)

    # ------------------------------------------------------------------------------------------ resume
    def _open_signals_log(self) -> JsonlAppender:
        path = self.cfg.signals_output
        if path.exists():
            earlier = read_signals(path)
            self._logged = {s.id for s in earlier}
            self._signal_lines = len(earlier)
        return JsonlAppender(path)

    def _same_session(self, previous: LiveStatus | None) -> bool:
        """An earlier run of this session (same strategy, symbols and timeframe): a restart resumes it."""
        return previous is not None and (previous.strategy, previous.symbols, previous.timeframe) == (
            self.status.strategy, self.symbols, self.status.timeframe)  # fmt: skip

    def _resume_point(self, previous: LiveStatus | None, now: int) -> int | None:
        """The start of the last bar an earlier run of this same session decided (None: start afresh at now)."""
        if previous is None or previous.last_bar is None or not self._same_session(previous):
            return None
        t = _us_of(previous.last_bar)
        if t is None or t > now:
            return None
        # the session's state, until a bar is decided: a restart's warming_up status without it started the
        # session afresh at the next restart (its trading_from and start equity reset, the strategy flat)
        self.status.last_bar = previous.last_bar
        self.status.signals_today = previous.signals_today
        self.status.bars_seen = previous.bars_seen
        self.status.trading_from = previous.trading_from
        self.status.start_equity = previous.start_equity
        self.status.stream.connections = previous.stream.connections
        log.info("live_resume", after_bar=previous.last_bar)
        return t

    def _canceled_before(self) -> dict[str, datetime]:
        """The session's orders an earlier run's stop canceled (--on-stop), or their exits, and when: the
        strategy's run cancels them there too, so that it decides again as the account stands, and its CANCEL
        lines go to the signals log (a backtest of the log cancels them where the account did). Before, its run
        kept them working: it waited on orders the account no longer had, or went flat where an exit the account
        no longer had filled, and its next buys were skipped."""
        path = self.executor.cfg.trades_output
        if not path.exists():
            return {}
        out: dict[str, datetime] = {}
        for r in read_jsonl_records(path):  # an order's, or its exits' (`--on-stop cancel-all`): the first cancel
            if r.get("status") == "canceled":
                at = datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00"))
                out[r["signal_id"]] = min(at, out.get(r["signal_id"], at))
        return out

    def _finish_started(self) -> None:
        """Orders an earlier run started (journaled, not recorded) are finished before anything new."""
        started = self.executor.started()
        logged = read_signals(self.cfg.signals_output) if self.cfg.signals_output.exists() and started else []
        pending = []
        for sig in (s for s in logged if s.id in started):
            if self.executor.reached(sig.id):
                pending.append(sig)
            else:  # journaled, never sent
                self.executor.skip(sig, "never sent before the restart, its bar past: a stale signal is never sent")
        if pending:  # left working, followed as the clock moves (waited for, a replay's clock could not move)
            log.info("live_finish_started", orders=len(pending))
            self.executor.execute(pending, park_after=0.0)

    # ------------------------------------------------------------------------------------------ stop
    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def stop(signum: int, frame: FrameType | None) -> None:
            self.stop_requested = signal.Signals(signum).name
            self.executor.retry.stopping = lambda: True  # a broker that is down: retried briefly (STOP_BUDGET)
            log.info("live_stop_requested", signal=self.stop_requested)

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)

    def _shutdown(self) -> None:
        """Apply the open-orders policy, take a last snapshot, say why it stopped."""
        try:
            self._write_status("stopping")
            if self.cfg.on_stop != "keep":
                self.executor.cancel_working(exits_too=self.cfg.on_stop == "cancel-all")
            self.executor.follow()
            self.executor.snapshot()
        except Exception as exc:  # the stop must finish; what failed is said
            log.error("live_shutdown_incomplete", error_type=type(exc).__name__, error=str(exc)[:300])
        finally:
            if self._stream is not None:
                self._stream.stop()
            if self._signals_log is not None:
                self._signals_log.close()
            self.summary.stopped_by = self.summary.stopped_by or self.stop_requested
            self._write_status("failed" if self._failed is not None else "stopped", self.summary.stopped_by)
            self.executor.close_session()
            if self.replay is not None:
                self.replay.close()

    # ------------------------------------------------------------------------------------------ status
    def _now_us(self) -> int:
        if self.replay is not None:
            return self.replay.now_us()
        return _us(self.executor.now())

    def _write_status(self, state: Any, stopped_by: str | None = None) -> None:
        st = self.status
        st.state = state
        st.stopped_by = stopped_by
        st.updated_at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        st.orders_submitted = len(self.executor.submitted)
        stream = self._stream
        if stream is not None:
            connections = max(st.stream.connections, stream.generation)
            st.stream = StreamHealth(stream.live, connections, self.summary.gaps, self.summary.bars_backfilled,
                                     st.stream.last_message_at)  # fmt: skip
        try:
            positions = self.executor.retry("get positions", self.broker.positions)
            orders = self.executor.retry("list open orders", self.broker.open_orders)
        except MarketBossError as exc:  # the status says what it could; the run goes on
            log.warning("live_status_partial", error=str(exc)[:200])
        else:
            st.positions = [{"symbol": p.symbol, "qty": p.qty, "avg_entry_price": p.avg_entry_price,
                             "market_value": p.market_value} for p in positions.values()]  # fmt: skip
            st.open_orders = [{"id": o.id, "client_order_id": o.client_order_id, "symbol": o.symbol, "side": o.side,
                               "type": o.type, "qty": o.qty, "filled_qty": o.filled_qty, "limit_price": o.limit_price,
                               "stop_price": o.stop_price, "status": o.status} for o in orders]  # fmt: skip
        write_status(self.cfg.status_output, st)


def _aggregate(bars: list[LiveBar], slot: Slot) -> pl.DataFrame:
    """One bar per symbol over the slot (its minute bars in time order: first open, max high, min low, last
    close, summed volume), stamped at the slot's start."""
    if not bars:
        return pl.DataFrame(schema=BAR_DTYPES)
    df = pl.DataFrame([b._asdict() for b in bars]).unique(["symbol", "start_us"], keep="last")
    return (
        df.sort("start_us")
        .group_by("symbol")
        .agg(*OHLCV)
        .with_columns(
            pl.lit(slot.start).cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias("timestamp"),
            pl.col("volume").round(0).cast(pl.Int64),
        )
        .select(BAR_DTYPES.names())
        .cast(BAR_DTYPES)
        .sort("symbol")
    )


def check_symbols(symbols: str) -> tuple[str, ...]:
    out = tuple(s.strip().upper() for s in symbols.split(",") if s.strip())
    if not out:
        raise MarketBossError("--symbols: give at least one symbol, e.g. --symbols AAPL,MSFT")
    return out
