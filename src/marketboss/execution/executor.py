"""Signals to orders, safely: size, check risk, submit idempotently, verify the fill, log, and resume.

One signal at a time, in file order (the reads before its order, account, positions, price and clock, sent
together: execution/retry.py ReadsAtOnce). Every broker call that can fail transiently is retried with
exponential backoff within a time budget (execution/retry.py); an order is only ever re-sent after looking up
its client_order_id, so a timeout or a 5xx after the broker accepted it cannot create a duplicate, and an order
found that way is adopted only when it is the intent's (symbol, side, quantity, type, class, prices). A
signal that cannot be executed (unknown symbol, no price, blocked, rejected) is recorded with its reason and
the run goes on; only an outage longer than the budget, or the kill switch, stops it (rerun to finish). One
executor per journal: a second one on the same files is refused (execution/lock.py).

Every order type goes as the signal says (market, limit, stop, stop_limit, trailing_stop; day or gtc). The
signal's exits (take_profit, stop_loss: a bracket, or an OTO with one) go with an order that opens or increases
the position and are dropped from one that reduces it, which first cancels the symbol's open exits (they hold
its shares). A trailing exit (Alpaca brackets have none) is a gtc trailing stop placed for the filled quantity
once the entry has filled. Exits are followed until they close; a fill is recorded under its parent's signal
id with its `leg`, which is how reconcile joins it to the backtest's.

Orders, and their exits, are followed on the broker's `trade_updates` stream (broker/stream.py, Alpaca's
recommended way) when `stream` is on: each state change arrives as it happens. Polling is the fallback: while
the stream is down (it reconnects with backoff in the background), after it reconnected (to catch what was
missed), and when an order has had no update for `stream_poll_interval` seconds.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from itertools import groupby
from pathlib import Path
from typing import Protocol, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

from marketboss.alerts import Alerter
from marketboss.backtest.arrays import REJECTED_CASH, SKIPPED
from marketboss.backtest.costs import Costs
from marketboss.backtest.engine import REASONS
from marketboss.backtest.nb import PENDING, Rules, free_cash, weight_trade
from marketboss.broker.base import (
    Account,
    Asset,
    AuthError,
    Broker,
    BrokerError,
    DuplicateOrder,
    NotFound,
    Order,
    OrderRejected,
    OrderRequest,
    OrderUpdates,
    Position,
    Side,
    TransientError,
)
from marketboss.data.calendar import NY, Timeframe
from marketboss.data.io import JsonlAppender, read_jsonl_records
from marketboss.data.schema import LINE
from marketboss.errors import MarketBossError
from marketboss.execution.freshness import Freshness, ages
from marketboss.execution.journal import Intent, Journal, JournalState, Leg, check_account, journal_path
from marketboss.execution.lock import RunLock, lock_path
from marketboss.execution.logs import done_signal_ids
from marketboss.execution.retry import DEFAULT_BUDGET, ReadsAtOnce, Retrier
from marketboss.execution.slippage import VS_SIGNAL, slippage_bps
from marketboss.logging import get_logger
from marketboss.orders.nb import limit_fill, stop_fill
from marketboss.risk import OrderIntent, RiskConfig, RiskContext, RiskEngine
from marketboss.signals import Signal, parse_signal, read_signals, signals_to_frame
from marketboss.signals.exits import Exits, with_exits

log = get_logger(__name__)
NY_TZ = ZoneInfo(NY)
T = TypeVar("T")
COID_PREFIX = "mb-"
TRAIL_SUFFIX = "-trail"
EXITS_SUFFIX = "-exits"
CLOSE_SUFFIX = "-close"
#: Seconds an exit that left the open orders is waited for on the stream (its last update is on its way).
LEG_EVENT_WAIT = 1.0
#: What a bracket's or OTO's exit is, by the broker's order type.
LEG_NAMES = {"limit": "take_profit", "stop": "stop_loss", "stop_limit": "stop_loss", "trailing_stop": "trailing_stop"}


class ExecutorConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    signals: Path
    trades_output: Path
    equity_output: Path
    max_trades: int | None = Field(None, gt=0)
    order_interval: float = Field(1.0, ge=0, description="seconds between orders")
    fill_timeout: float = Field(300.0, gt=0, description="seconds to wait for a terminal status")
    park_after: float | None = Field(
        None, gt=0, description="live loop: seconds to wait for a terminal status before the order is left working "
        "and followed on later bars (never canceled for its wait); None: wait, then cancel after fill_timeout"
    )
    poll_interval: float = Field(0.5, gt=0)
    stream: bool = Field(True, description="follow orders on the broker's trade_updates stream (polling: fallback)")
    stream_poll_interval: float = Field(
        10.0, gt=0, description="while the stream is up, seconds without an update before an order is looked up"
    )
    stream_connect_timeout: float = Field(5.0, ge=0, description="seconds to wait for the stream before the run")
    equity_interval: float = Field(60.0, gt=0, description="seconds between equity snapshots while waiting")
    retry_budget: float = Field(DEFAULT_BUDGET, gt=0, description="seconds a transient fault is retried")
    backoff_base: float = Field(0.25, gt=0)
    backoff_max: float = Field(8.0, gt=0)
    fractional: bool = False
    reset_kill_switch: bool = False
    allow_stale: bool = Field(False, description="send signals whose bar is no longer the latest completed one")
    timeframe: str = Field("1Day", description="the signals' bars (freshness is judged on this grid)")
    exits: Exits = Field(Exits(), description="exit percentages put on the signals, as the backtest does")
    risk: RiskConfig = RiskConfig()

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, v: str) -> str:
        return str(Timeframe.parse(v))

    @field_validator("signals", "trades_output", "equity_output")
    @classmethod
    def _a_file(cls, v: Path) -> Path:
        """Refused before a broker starts or a lock is taken (a directory given as a log left both behind)."""
        if v.is_dir():
            raise ValueError(f"{v} is a directory: give a file")
        return v


class KillSwitch(MarketBossError):
    exit_code = 3


class AdoptionMismatch(OrderRejected):
    """The broker has an order under this client_order_id, but not the one the intent describes."""


class Replay(Protocol):
    """Local broker only: move its simulated clock to where a signal's order would be filled."""

    def check(self, signals: list[Signal], where: Path) -> None:
        """Refuse, before anything is sent, signals the clock is already past (they would fill late)."""

    def before(self, signal: Signal) -> bool:
        """Move the clock to the start of the bar the backtest fills the signal on; False when the data has no bar
        of its symbol after the signal's (the backtest expires it: nothing to fill it at)."""
        ...

    def through(self, signal: Signal) -> None:
        """Move the clock to the end of the signal's own bar (a cancel's, which the backtest applies after it)."""

    def when(self, signal: Signal) -> tuple[int, int]:
        """Where in the replay the signal acts, to order signals by (before's bar, or a cancel's end of bar)."""
        ...

    def finish(self, upto: Signal | None) -> bool:
        """Move the clock on to the next bar of `upto` (the first signal left for a later run), else to the end of
        the data: True when there."""
        ...

    def stop_at_bars(self, symbols: Callable[[], set[str]], step: Callable[[], None]) -> None:
        """Stop the clock at each bar of `symbols()` on its way, running `step` there."""


@dataclass(frozen=True)
class Working:
    """An order left working (park_after): recorded once it reaches a terminal status."""

    sig: Signal
    intent: Intent
    request: OrderRequest
    generation: int  # the order stream's connection when it was parked (a reconnect means: look it up)
    first: Order | None = None  # a flip's closing order, filled (Intent.closes)
    closing: bool = False  # a flip's closing order decided at the close: its rest waits for it (_close_first)


@dataclass
class RunSummary:
    signals: int = 0
    already_done: int = 0
    held_back: int = 0  # left for a later run (--max-trades)
    stale: int = 0
    future: int = 0
    statuses: Counter[str] = field(default_factory=Counter)  # of the orders' signals
    cancels: Counter[str] = field(default_factory=Counter)  # of the CANCEL lines (the orders they ended: above)
    exits: Counter[str] = field(default_factory=Counter)  # leg name -> fills of that exit
    filled_notional: float = 0.0
    commission: float = 0.0
    slippage_bps: list[float] = field(default_factory=list)
    start_equity: float | None = None
    end_equity: float | None = None
    stopped_by: str | None = None
    updates: Counter[str] = field(default_factory=Counter)  # order states by where they came from: stream, polled

    def as_rows(self, signals_file: bool = True) -> list[tuple[str, object]]:
        """The run's figures; `signals_file` false (the live loop, which counts its own signals): without the
        signals file's counts."""
        avg_slip = sum(self.slippage_bps) / len(self.slippage_bps) if self.slippage_bps else None
        ret = (
            (self.end_equity / self.start_equity - 1) * 100
            if self.start_equity and self.end_equity is not None
            else None
        )
        file_rows: list[tuple[str, object]] = [
            ("signals in the file", self.signals),
            ("already done earlier", self.already_done),
            *([("left for a later run (--max-trades)", self.held_back)] if self.held_back else []),
            ("skipped: stale (a newer bar has completed)", self.stale),
            ("refused: bar not completed at the broker's clock", self.future),
        ]
        rows: list[tuple[str, object]] = [
            *(file_rows if signals_file else []),
            *[(f"orders {k}", v) for k, v in sorted(self.statuses.items())],
            *[(f"CANCEL lines {k}", v) for k, v in sorted(self.cancels.items())],
            *[(f"exits filled: {k}", v) for k, v in sorted(self.exits.items())],
            ("filled notional $", self.filled_notional),
            ("commission $", self.commission),
            (f"avg slippage bps {VS_SIGNAL}", avg_slip),
            ("equity at start $", self.start_equity),
            ("equity at end $", self.end_equity),
            ("return over run %", ret),
            ("order updates from the stream", self.updates["stream"]),
            ("order updates polled", self.updates["polled"]),
        ]
        if self.stopped_by:
            rows.append(("stopped by", self.stopped_by))
        return rows


def client_order_id(signal_id: str) -> str:
    return f"{COID_PREFIX}{signal_id}"[:128]


def trailing_client_order_id(parent: str) -> str:
    return parent[: 128 - len(TRAIL_SUFFIX)] + TRAIL_SUFFIX


def exits_client_order_id(parent: str) -> str:
    """The exits placed after an entry that is not `bracketed` filled (an OCO of the two, or the one)."""
    return parent[: 128 - len(EXITS_SUFFIX)] + EXITS_SUFFIX


def placed_after_fill(sig: Signal) -> bool:
    """Whether the executor places the signal's exits once its entry fills, rather than with it: a trailing leg
    (Alpaca's brackets have none), or a take-profit or stop-loss on an entry that does not go as a bracket
    (`bracketed`: they go as an OCO of the two)."""
    legs = sig.take_profit is not None or sig.stop_loss is not None
    return _trailing_leg(sig) or (legs and not bracketed(sig))


def bracketed(sig: Signal) -> bool:
    """Whether its take-profit and stop-loss go with the entry as Alpaca's bracket legs: a market entry's (sent
    gtc) and a gtc limit's. Alpaca takes brackets on market and limit entries only, and a bracket's legs share
    its time in force: a day limit's would end with its session, where the backtest's exits work on until they
    trade or are canceled, so its exits go once it fills, gtc, as a stop entry's do."""
    return sig.order_type == "market" or (sig.order_type == "limit" and sig.time_in_force == "gtc")


def _trailing_leg(sig: Signal) -> bool:
    """An exit trailing the entry (a trailing_stop order's trail_percent is its own price, not a leg)."""
    return sig.trail_percent is not None and sig.order_type != "trailing_stop"


def closing_client_order_id(parent: str) -> str:
    """A flip's first order, the one closing the position (Intent.closes)."""
    return parent[: 128 - len(CLOSE_SUFFIX)] + CLOSE_SUFFIX


def has_exits(sig: Signal) -> bool:
    return sig.take_profit is not None or sig.stop_loss is not None or _trailing_leg(sig)


def opens(position_qty: float, side: Side) -> bool:
    """The order opens or increases the position (a flip reduces first: its exits go on its rest)."""
    return position_qty >= 0 if side == "buy" else position_qty <= 0


def order_request(sig: Signal, intent: Intent) -> OrderRequest:
    """The broker order for a signal as sized: its type and prices, and its bracket exits when the intent
    opens or increases the position. A market entry with exits goes gtc so that they, like the backtest's,
    outlive the session (a market order fills at once either way)."""
    tp, sl = (sig.take_profit, sig.stop_loss) if intent.legs and bracketed(sig) else (None, None)
    tif = "gtc" if sig.order_type == "market" and (tp is not None or sl is not None) else sig.time_in_force
    trail = sig.trail_percent if sig.order_type == "trailing_stop" else None
    return OrderRequest(intent.symbol, round(intent.qty - intent.closes, 6), intent.side, intent.client_order_id,
                        sig.order_type, tif, sig.stop_price, sig.limit_price, trail, tp, sl)  # fmt: skip


class Executor:
    def __init__(
        self,
        config: ExecutorConfig,
        broker: Broker,
        alerter: Alerter | None = None,
        replay: Replay | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.cfg = config
        self.broker = broker
        self.alerter = alerter or Alerter([])
        self.replay = replay
        self.sleep = sleep
        self.risk = RiskEngine(config.risk)
        self.retry = Retrier(broker, config.retry_budget, config.backoff_base, config.backoff_max, sleep)
        self.reads = ReadsAtOnce(self.retry)
        self.summary = RunSummary()
        self._slip = 0.0  # the broker's own adverse move a side (the local broker's spread), as the backtest sizes
        self._last_snapshot = 0.0
        self._assets: dict[str, Asset | None] = {}  # asset facts do not change within a run
        self.updates: OrderUpdates | None = None  # the trade_updates stream while a run follows it
        self.working: dict[str, Working] = {}  # order id -> an order left working (park_after)
        self._leg_generation: dict[str, int] = {}  # exit order id -> the stream's connection when it became known
        self.submitted: dict[str, float] = {}  # signal id -> time.perf_counter() when its order was accepted
        self._done: set[str] = set()  # a session's signal ids the trades log has (read at its start, then added)
        self._session: tuple[Journal, JsonlAppender, JsonlAppender] | None = None
        self._journal: Journal | None = None  # the run's or session's (awaiting_exits reads its exits)
        self._lock: RunLock | None = None
        self._park = config.park_after
        self._bounds: Mapping[str, float] = {}  # the signals being executed: id -> the strategy's position after it

    # ---------------------------------------------------------------------------------------- retries
    def _submit_once(self, req: OrderRequest, resumed: bool) -> Order:
        """Send the order at most once per client_order_id: look it up before every (re)send."""
        started, attempt = self.retry.clock(), 0
        while True:
            if resumed or attempt > 0:
                existing = self.retry("look up order", lambda: self.broker.order_by_client_id(req.client_order_id))
                if existing is not None:
                    log.info("order_found_by_client_id", client_order_id=req.client_order_id, order_id=existing.id)
                    return _adopt(req, existing)
            try:
                return self.retry.call(lambda: self.broker.submit_order(req))
            except DuplicateOrder:
                found = self.retry("look up order", lambda: self.broker.order_by_client_id(req.client_order_id))
                if found is None:
                    raise
                return _adopt(req, found)
            except TransientError as exc:
                self.retry.wait_or_raise(f"submit {req.client_order_id}", attempt, started, exc)
                attempt += 1

    # ---------------------------------------------------------------------------------------- logs
    def now(self) -> datetime:
        """The broker's clock (UTC); the machine's when the broker does not answer."""
        try:
            return self.retry("get clock", self.broker.clock).timestamp.astimezone(UTC)
        except BrokerError:
            return datetime.now(UTC)

    def _snapshot(self, equity_log: JsonlAppender, acct: Account | None = None, at: datetime | None = None) -> None:
        acct = acct or self.retry("get account", self.broker.account)
        equity_log.append(
            {
                "timestamp": at or self.now(),
                "cash": acct.cash,
                "portfolio_value": acct.portfolio_value,
                "buying_power": acct.buying_power,
                "equity_multiplier": acct.multiplier,
            }
        )
        self._last_snapshot = time.monotonic()
        if self.summary.start_equity is None:
            self.summary.start_equity = acct.equity
        self.summary.end_equity = acct.equity

    def _record(
        self,
        trades_log: JsonlAppender,
        sig: Signal,
        status: str,
        *,
        order: Order | None = None,
        side: Side | None = None,
        requested: float = 0.0,
        commission: float = 0.0,
        reason: str | None = None,
        at: datetime | None = None,
    ) -> None:
        """`at`: the broker's time, when the caller has it (else read) for a record without a fill."""
        if sig.action == "CANCEL" and order is not None:  # the order it names, not what that filled (its own
            # signal's record: here it was counted twice, reconcile's fill "in paper only", sold back in its valuation)
            order = replace(order, filled_qty=0.0, filled_at=None)
        side_text = side.upper() if side else sig.action
        self._log_trade(trades_log, status, order, sig.id, sig.symbol, side_text, sig.timestamp, sig.price,
                        requested, commission, reason, None, at)  # fmt: skip
        # a CANCEL line's record is not an order's: the order it canceled is counted by its own signal's
        (self.summary.cancels if sig.action == "CANCEL" else self.summary.statuses)[status] += 1

    def _record_leg(self, trades_log: JsonlAppender, leg: Leg, order: Order) -> None:
        """An exit's fill, under its parent's signal id: expected at its own limit or stop price."""
        commission = self.retry("get fills", lambda: self.broker.fill_commission(order))
        self._log_trade(trades_log, order.status, order, leg.signal_id, leg.symbol, leg.side.upper(), None,
                        leg.price, order.qty, commission, None, leg.leg)  # fmt: skip
        self.summary.exits[leg.leg] += 1
        log.info("exit_filled", signal_id=leg.signal_id, leg=leg.leg, symbol=leg.symbol, qty=order.filled_qty,
                 price=order.filled_avg_price)  # fmt: skip
        self.alerter.send("fill", f"{leg.leg} {leg.side.upper()} {order.filled_qty:g} {leg.symbol} @ "
                          f"{order.filled_avg_price:.2f}", f"exit of signal {leg.signal_id}")  # fmt: skip

    def _log_trade(
        self,
        trades_log: JsonlAppender,
        status: str,
        order: Order | None,
        signal_id: str,
        symbol: str,
        side: str,
        signal_timestamp: datetime | None,
        expected: float | None,
        requested: float,
        commission: float,
        reason: str | None,
        leg: str | None,
        at: datetime | None = None,
    ) -> None:
        filled = order.filled_qty if order else 0.0
        price = order.filled_avg_price if order and filled > 0 else None
        slip = slippage_bps(side, expected, price)
        trades_log.append(
            {
                "timestamp": order.filled_at if order and order.filled_at else at or self.now(),
                "signal_timestamp": signal_timestamp,
                "order_id": order.id if order else None,
                "symbol": symbol,
                "side": side,
                "qty": filled,
                "filled_price": price,
                "status": status,
                "signal_id": signal_id,
                "client_order_id": order.client_order_id if order else client_order_id(signal_id),
                "expected_price": expected,
                "slippage_bps": slip,
                "commission": round(commission, 6),
                "requested_qty": requested,
                "reason": reason,
                "leg": leg,
            }
        )
        self._done.add(signal_id)
        if price is not None:
            self.summary.filled_notional += filled * price
            self.summary.commission += commission
            if slip is not None:
                self.summary.slippage_bps.append(slip)

    # ---------------------------------------------------------------------------------------- run
    def run(self) -> RunSummary:
        """Execute the pending signals; refused at once while another executor holds these files."""
        with RunLock(lock_path(self.cfg.trades_output)):
            return self._run()

    def _signals(self) -> list[Signal]:
        """The signals file, with the exit percentages put on each signal exactly as the backtest puts them."""
        signals = read_signals(self.cfg.signals)
        if not self.cfg.exits or not signals:
            return signals
        frame = with_exits(signals_to_frame(signals), self.cfg.exits, str(self.cfg.signals))
        return [parse_signal(row, self.cfg.signals, row[LINE]) for row in frame.iter_rows(named=True)]

    def _check_logs_behind_the_clock(self) -> None:
        """Refuse a replay into logs that go past the broker's clock (an earlier replay's, on another broker
        database): its snapshots would follow theirs back in time, two accounts in one log. Nothing is written."""
        if not self.cfg.equity_output.exists():
            return
        records = read_jsonl_records(self.cfg.equity_output)
        if not records:
            return
        last = datetime.fromisoformat(str(records[-1]["timestamp"]))
        last = last if last.tzinfo else last.replace(tzinfo=UTC)
        now = self.now()
        if last > now:
            raise MarketBossError(
                f"{self.cfg.equity_output}: its last snapshot ({last:%Y-%m-%d %H:%M}) is later than the local "
                f"broker's clock ({now:%Y-%m-%d %H:%M}): these logs are another replay's, on another broker database; "
                "give this run fresh logs (--trades-output, --equity-output), or the database they were written with "
                "(--broker-db)")  # fmt: skip

    def _check_journal_there(self, done: set[str]) -> None:
        """Refuse a trades log with records whose journal is gone: the exits it followed (a trailing stop working
        at the broker) are known only there; without it their fills were never recorded, and the logs' P&L was
        wrong without a word. Nothing is written or sent."""
        journal = journal_path(self.cfg.trades_output)
        if done and not journal.exists():
            raise MarketBossError(
                f"{self.cfg.trades_output}: it has records of {len(done):,} signals but its journal {journal} is gone: "
                "the orders and exits it followed would go unrecorded; put the journal back, or write this run "
                "elsewhere (--trades-output, --equity-output)")  # fmt: skip

    def _check_journal_orders(self, earlier: JournalState, signal_ids: Iterable[str]) -> None:
        """Refuse a run whose journal says the broker accepted an order for a signal it is to finish (no record
        in the trades log) that this broker does not know: the journal is another broker's or account's (the
        trades log moved away, the journal left beside it, a fresh broker database). Finishing them would send
        each signal again at this broker's clock, not at its bar: a replay's filled months early. Nothing is
        written or sent."""
        for sid in signal_ids:
            order_id = earlier.order_ids.get(sid)
            if order_id is None:
                continue
            try:
                self.retry("get order", partial(self.broker.get_order, order_id))
            except NotFound:
                intent = earlier.intents.get(sid)
                raise MarketBossError(
                    f"{journal_path(self.cfg.trades_output)}: signal {sid} ({intent.symbol if intent else '?'}) has no "
                    f"record in {self.cfg.trades_output}, and its order {order_id}, which the journal says the broker "
                    "accepted, is unknown to this broker: the journal is another broker's or account's run; write "
                    "this one elsewhere (--trades-output, --equity-output) or move that journal away with its logs"
                ) from None

    def _record_run(self, journal: Journal) -> None:
        """What reconcile needs to backtest this run's signals as they traded: the signals' bars, long-only, the
        broker's own fill costs (the local broker's spread; none known for Alpaca), the exits put on the signals
        and fractional sizing."""
        costs = self.broker.fill_costs()
        self._slip = Costs(**costs).slip if costs else 0.0
        exits = {k: v for k, v in vars(self.cfg.exits).items() if v is not None}
        journal.run(timeframe=self.cfg.timeframe, long_only=self.cfg.risk.long_only, costs=costs, exits=exits,
                    fractional=self.cfg.fractional)  # fmt: skip

    def _run(self) -> RunSummary:
        check_account(self.cfg.trades_output, self.broker.live)
        if self.replay is not None:
            self._check_logs_behind_the_clock()
        signals = self._signals()
        done = done_signal_ids(self.cfg.trades_output)
        self._check_journal_there(done)
        pending = [s for s in signals if s.id not in done]
        earlier = Journal.load(journal_path(self.cfg.trades_output))
        self._check_journal_orders(earlier, [s.id for s in pending])
        if self.replay is not None and not self.cfg.allow_stale:  # an order started before a crash is finished
            self.replay.check([s for s in pending if s.id not in earlier.intents], self.cfg.signals)
        self.summary.signals = len(signals)
        self.summary.already_done = len(signals) - len(pending)
        journal = self._journal = Journal(journal_path(self.cfg.trades_output))
        journal.account(self.broker.live)
        self._record_run(journal)
        trades_log = JsonlAppender(self.cfg.trades_output)
        equity_log = JsonlAppender(self.cfg.equity_output)
        log.info("paper_run_start", signals=len(signals), pending=len(pending), broker=self.broker.base_url)
        if self.replay is not None:  # an entry left working gets its trailing exit at the bar after its fill
            self.replay.stop_at_bars(self.awaiting_exits,
                                     lambda: self._follow_working(journal, trades_log, equity_log, poll=True))
        try:
            self._check_kill_switch_history(journal)
            if pending and self.cfg.stream:
                self._start_updates()
            self._snapshot(equity_log)
            pending = self._fresh(pending, journal)
            # A replay's signals go in the order the backtest trades them, which the file's is not where a symbol
            # lacks bars: a signal fills at its symbol's next bar, maybe after a later one's (the clock only moves on).
            when = self.replay.when if self.replay is not None else (lambda sig: sig.timestamp)
            if self.replay is not None:
                pending.sort(key=when)
            left: Signal | None = None  # the first signal left for a later run
            if self.cfg.max_trades is not None:
                left = pending[self.cfg.max_trades] if len(pending) > self.cfg.max_trades else None
                self.summary.held_back = max(len(pending) - self.cfg.max_trades, 0)
                pending = pending[: self.cfg.max_trades]
            # Orders an earlier run left behind come first: finish them before deciding anything new.
            pending.sort(key=lambda sig: sig.id not in journal.state.intents)
            self._reconcile(journal, pending)
            self._follow_legs(journal, trades_log)
            sent = 0
            for _, bar in groupby(pending, key=when):  # a bar's signals (in a replay: those trading at one moment)
                for sig in self._reductions_first(list(bar), journal, trades_log, equity_log):
                    if sent and self.cfg.order_interval and sig.id not in journal.state.intents:
                        self.sleep(self.cfg.order_interval)
                    self._execute(sig, journal, trades_log, equity_log)
                    sent += 1
            if self.replay is not None and (self.working or journal.state.legs):
                self._finish_replay(left, journal, trades_log, equity_log)
            self._follow_legs(journal, trades_log)
            self._snapshot(equity_log)
        except KillSwitch as exc:
            self.summary.stopped_by = str(exc)
            raise
        except MarketBossError as exc:
            self.summary.stopped_by = str(exc)
            self.alerter.send("error", "paper run stopped", str(exc))
            raise
        finally:
            self._stop_updates()
            self.reads.close()
            self._send_summary()
            journal.close()
            trades_log.close()
            equity_log.close()
            self.alerter.close()
        return self.summary

    def _reductions_first(self, group: list[Signal], journal: Journal, trades_log: JsonlAppender,
                          equity_log: JsonlAppender) -> Iterator[Signal]:  # fmt: skip
        """A bar's signals as the backtest fills them: cancels (each at the end of its bar, in a replay: before the
        clock moves on to read the positions), then what reduces a position (its sale pays for the bar's
        purchases), then the rest, each in the order given. One signal, or orders an earlier run started: as they
        are."""
        if len(group) < 2 or any(s.id in journal.state.intents for s in group):
            yield from group
            return
        yield from (s for s in group if s.action == "CANCEL")
        rest = [s for s in group if s.action != "CANCEL"]
        if len(rest) < 2:
            yield from rest
            return
        if self.replay is not None:
            for sig in rest:
                self._exits_at_the_close(sig, journal, trades_log, equity_log)
            self.replay.before(rest[0])  # the positions as the bar opens: what the clock's move filled counts
        held = self.retry("get positions", self.broker.positions)
        yield from sorted(rest, key=lambda s: 1 if _reduces(s, held) else 2)

    def _exits_at_the_close(self, sig: Signal, journal: Journal, trades_log: JsonlAppender,
                            equity_log: JsonlAppender) -> None:  # fmt: skip
        """A replay's signal that reduces a position with exits: they are canceled at the end of its bar, where the
        live loop sends it (clearing them first) and where the backtest ends them (its order at the next open
        trades before they do). Moved to that open first, a gap through an exit traded it there instead, and
        the order was skipped."""
        assert self.replay is not None
        if not any(g.symbol == sig.symbol for g in journal.state.legs.values()):
            return
        self.replay.through(sig)  # (nothing, when the clock is past it: a bar's second signal)
        if self.working:
            self._follow_working(journal, trades_log, equity_log, poll=True)
        self._follow_legs(journal, trades_log)
        held = self.retry("get positions", self.broker.positions)
        if not _reduces(sig, held):
            return
        acct = self.retry("get account", self.broker.account)
        price = self.retry("latest price", partial(self.broker.latest_price, sig.symbol))
        free = self._free_cash(acct.cash, held, sig.symbol)
        sized = size_order(sig, acct.equity, free, held[sig.symbol].qty, price, self.cfg.fractional, self._slip)
        if isinstance(sized, str) or _after_credit(sig, *sized, journal) == 0:
            return  # it trades nothing (a weight held already, or what its exit traded): they stay, as in the backtest
        self._clear_legs(sig.symbol, journal, trades_log)

    def _free_cash(self, cash: float, positions: Mapping[str, Position], symbol: str) -> float:
        """The cash a target weight of `symbol` may use (backtest.nb.free_cash): the account's, less the collateral
        of the other symbols' shorts, as they stand once the market orders left working (queued for the next open:
        the live loop's, decided at the close) have filled at their signals' prices: their sales' proceeds added,
        their purchases' cost taken, a short they open counted. A purchase sized after them counts them, as the
        backtest fills a bar's sales, then its purchases one after the other, each from the cash then (before: sized
        from the cash before the sales, a rotation's buy was a fifth of the backtest's; and a short queued
        beside it held no collateral). Orders working at a price are not counted: the backtest reserves nothing
        for them either."""
        held = dict(positions)
        for w in self.working.values():
            if w.request.type == "market" and w.sig.price is not None:
                shares = w.intent.qty if w.closing else w.request.qty  # a flip's close: and its rest after it
                q = shares if w.request.side == "buy" else -shares
                cash -= q * w.sig.price
                was = held.get(w.request.symbol)
                qty = (was.qty if was else 0.0) + q
                price = was.current_price if was else w.sig.price
                held[w.request.symbol] = Position(w.request.symbol, qty, price, price, qty * price)
        return free_cash(cash, others_short(held, symbol))

    def _finish_replay(self, left: Signal | None, journal: Journal, trades_log: JsonlAppender,
                       equity_log: JsonlAppender) -> None:  # fmt: skip
        """A replay with orders or exits still working: the clock on to where a later run starts (`left`'s bar),
        else to the end of the data, so that they trade as in the backtest (which works them to its end). What
        is still working at the end of the data can fill no more: canceled and recorded (the backtest counts it
        unfilled)."""
        assert self.replay is not None
        at_end = self.replay.finish(left)
        self._follow_working(journal, trades_log, equity_log, poll=True)
        if not at_end:
            return
        for order_id, w in list(self.working.items()):
            try:
                self.retry("cancel order", partial(self.broker.cancel_order, order_id))
            except (OrderRejected, NotFound) as exc:  # filled or gone meanwhile
                log.info("cancel_not_needed", order_id=order_id, error=str(exc))
            order = self.retry("get order", partial(self.broker.get_order, order_id))
            del self.working[order_id]
            ended = order.status == "canceled"
            self._conclude(w.sig, w.intent, w.request, order, ended, journal, trades_log, equity_log, w.first,
                           reason="still working when the replay's data ended: nothing can fill it (the backtest "
                                  "counts it unfilled)" if ended else None)  # fmt: skip

    # ---------------------------------------------------------------------------------------- live session
    def open_session(self) -> None:
        """Take these files (refused while another executor holds them), open the journal and logs, listen to the
        order stream: for a caller that hands signals in as they come (the live loop), bar after bar."""
        self._lock = RunLock(lock_path(self.cfg.trades_output))
        self._lock.__enter__()
        try:
            check_account(self.cfg.trades_output, self.broker.live)
            self._done = done_signal_ids(self.cfg.trades_output)  # then kept: reading the log every bar grew with it
            self._check_journal_there(self._done)
            earlier = Journal.load(journal_path(self.cfg.trades_output))
            self._check_journal_orders(earlier, [sid for sid in earlier.intents if sid not in self._done])
            journal = self._journal = Journal(journal_path(self.cfg.trades_output))
            journal.account(self.broker.live)
            self._record_run(journal)
            self._session = (journal, JsonlAppender(self.cfg.trades_output), JsonlAppender(self.cfg.equity_output))
            self._check_kill_switch_history(journal)
            if self.cfg.stream:
                self._start_updates()
            self._reconcile(journal, [])
        except BaseException:
            self.close_session()
            raise

    def execute(self, signals: list[Signal], park_after: float | None = None,
                bounds: Mapping[str, float] | None = None) -> None:
        """Send these signals (those not already recorded, or started before a crash: finished, never re-decided);
        an order that does not finish within park_after (default: the config's) is left working and recorded by a
        later `follow` (0: at once, e.g. while the market is closed and nothing can fill). `bounds`: per signal id,
        the strategy's position after it (execution/intended.py), past which its order does not carry the account."""
        journal, trades_log, equity_log = self._open()
        self._park = park_after if park_after is not None else self.cfg.park_after
        self._bounds = bounds or {}
        try:
            # orders left working that have ended since: recorded first, so that a filled entry's exits are known
            # (a sale that does not clear them first finds its shares held by them, and is refused)
            self._follow_working(journal, trades_log, equity_log, redecided={s.symbol for s in signals})
            for sig in self._reductions_first(signals, journal, trades_log, equity_log):
                if sig.id not in self._done and not any(w.sig.id == sig.id for w in self.working.values()):
                    self._execute(sig, journal, trades_log, equity_log)
        finally:
            self._park, self._bounds = self.cfg.park_after, {}

    def awaiting_exits(self) -> set[str]:
        """The symbols of entries left working whose exits the executor places once they fill
        (placed_after_fill): their fill is to be followed as soon as it comes, so that the exit works
        from the fill's bar, as in the backtest (paper's replay stops the clock at their bars; the live loop
        follows them at the session's open). A flip's close decided at the close is not one: its exits go on its
        rest, which goes with the next bar's orders (followed at the open, the close was recorded as the whole
        order and the rest never sent). And those of working orders against a position another entry's exits
        protect: their fill ends those exits (_conclude), which followed later had sold the shares again."""
        legs = {(g.symbol, g.side) for g in self._journal.state.legs.values()} if self._journal else set()
        return {w.sig.symbol for w in self.working.values()
                if (w.intent.legs and placed_after_fill(w.sig) and not w.closing)
                or (w.sig.symbol, w.intent.side) in legs}  # fmt: skip

    def follow(self, poll: bool = False) -> None:
        """Record the working orders and exits that finished since last looked at (`poll`: each working order
        asked of the broker, not taken from the order stream, which may not have said it yet)."""
        journal, trades_log, equity_log = self._open()
        self._follow_working(journal, trades_log, equity_log, poll=poll)
        self._follow_legs(journal, trades_log)

    def started(self) -> set[str]:
        """Signal ids whose order an earlier run journaled (it may have been sent) and did not record: finish these,
        never re-decide (those that never reached the broker, `reached`, are stale by now: a restart resumes after
        their bar)."""
        return {sid for sid in self._open()[0].state.intents if sid not in self._done}

    def reached(self, signal_id: str) -> bool:
        """Whether an order of the signal reached the broker (_reached), in the session's journal."""
        return self._reached(signal_id, self._open()[0])

    def skip(self, sig: Signal, reason: str) -> None:
        """Record a signal that will not be sent (a stale one), so no later run sends it either."""
        self._record(self._open()[1], sig, "skipped", reason=reason)

    def snapshot(self, at: datetime | None = None) -> Account:
        acct = self.retry("get account", self.broker.account)
        self._snapshot(self._open()[2], acct, at)
        return acct

    def cancel_working(self, exits_too: bool) -> None:
        """Cancel the working entry orders (and the open exits with exits_too) and record how they ended. An order
        of the strategy's own that reduces the position as it stands (a stop it placed under a long) is an exit:
        it stays with the others (it was canceled, and a restart never placed it again: the position unguarded)."""
        journal, trades_log, equity_log = self._open()
        held = {} if exits_too else self.retry("get positions", self.broker.positions)
        canceled = set()
        for order_id, w in list(self.working.items()):
            if not exits_too and not opens(held[w.sig.symbol].qty if w.sig.symbol in held else 0.0, w.intent.side):
                log.info("exit_kept_at_the_stop", signal_id=w.sig.id, order_id=order_id, symbol=w.sig.symbol)
                continue
            canceled.add(order_id)
            try:
                self.retry("cancel order", partial(self.broker.cancel_order, order_id))
            except (OrderRejected, NotFound) as exc:  # filled or gone meanwhile
                log.info("cancel_not_needed", order_id=order_id, error=str(exc))
        if exits_too:
            for symbol in sorted({g.symbol for g in journal.state.legs.values()}):
                self._clear_legs(symbol, journal, trades_log, why="canceled at the stop")
        deadline = time.monotonic() + self.cfg.fill_timeout
        while canceled & set(self.working) and time.monotonic() < deadline:
            self._follow_working(journal, trades_log, equity_log, poll=True)
            if canceled & set(self.working):
                self.sleep(self.cfg.poll_interval)

    def close_session(self) -> None:
        self._stop_updates()
        self.reads.close()
        if self._session is not None:
            for part in self._session:
                part.close()
            self._session = None
        self.alerter.close()
        if self._lock is not None:
            self._lock.__exit__(None, None, None)
            self._lock = None

    def _open(self) -> tuple[Journal, JsonlAppender, JsonlAppender]:
        if self._session is None:
            raise RuntimeError("open_session() first")
        return self._session

    def _follow_working(
        self, journal: Journal, trades_log: JsonlAppender, equity_log: JsonlAppender, poll: bool = False,
        redecided: set[str] | None = None,
    ) -> None:
        """Record the working orders that have ended. A flip's close that filled whole sends its rest when
        `redecided` (the symbols the strategy has new signals for, about to be executed) leaves its symbol out;
        otherwise (the strategy decided again, or no signals are being executed) it is recorded alone."""
        stream = self.updates
        for order_id, w in list(self.working.items()):
            order: Order | None = None
            if not poll and stream is not None and stream.live and stream.generation == w.generation:
                pushed = stream.wait(order_id, 0, 0.0)  # its latest state, if the stream has said anything
                order = pushed[1] if pushed is not None else None
                if order is not None:
                    self.summary.updates["stream"] += 1
            else:
                order = self.retry("get order", partial(self.broker.get_order, order_id))
                self.summary.updates["polled"] += 1
                if stream is not None and stream.live:
                    self.working[order_id] = replace(w, generation=stream.generation)
            if order is not None and order.is_terminal:
                del self.working[order_id]
                if w.closing and redecided is not None and w.sig.symbol not in redecided and (
                        order.filled_qty >= w.request.qty):  # fmt: skip
                    self._send_rest(w.sig, w.intent, journal, trades_log, equity_log, False, order)
                    continue
                self._conclude(w.sig, w.intent, w.request, order, False, journal, trades_log, equity_log, w.first,
                               w.closing)  # fmt: skip

    # ---------------------------------------------------------------------------------------- freshness
    def _fresh(self, pending: list[Signal], journal: Journal) -> list[Signal]:
        """The signals to send now: those whose bar is the latest completed bar at the broker's clock. Older ones
        are skipped (sent with allow_stale), newer ones refused, each logged with its age and counted; a replay
        moves the clock to each signal itself, and an order started before a crash is always finished (one the
        journal has no answer for is looked for at the broker: one that never reached it is a signal like the
        others, stale after the crash's bar)."""
        if self.replay is not None or not pending:
            return pending
        now = self.now()
        out = []
        for sig, age in zip(pending, ages([s.timestamp for s in pending], now, Timeframe.parse(self.cfg.timeframe)),
                            strict=True):  # fmt: skip
            if age.freshness is Freshness.FRESH or self._reached(sig.id, journal):
                out.append(sig)
            elif age.freshness is Freshness.FUTURE:
                self.summary.future += 1
                log.warning("signal_from_the_future", signal_id=sig.id, symbol=sig.symbol,
                            signal_timestamp=sig.timestamp, broker_clock=now)  # fmt: skip
            elif self.cfg.allow_stale:
                out.append(sig)
                log.info("signal_stale_sent", signal_id=sig.id, symbol=sig.symbol, bars_behind=age.bars_behind)
            else:
                self.summary.stale += 1
                log.warning("signal_stale", signal_id=sig.id, symbol=sig.symbol, signal_timestamp=sig.timestamp,
                            bars_behind=age.bars_behind, broker_clock=now)  # fmt: skip
        return out

    def _reached(self, signal_id: str, journal: Journal) -> bool:
        """Whether an order of the signal reached the broker: the journal has its answer, or the broker has an order
        of its intent's client order id (or its flip's close's: a crash came before the answer was written)."""
        intent = journal.state.intents.get(signal_id)
        if intent is None:
            return False
        if signal_id in journal.state.order_ids:
            return True
        ids = (intent.client_order_id, closing_client_order_id(intent.client_order_id))
        return any(self.retry("look up order", partial(self.broker.order_by_client_id, c)) is not None for c in ids)

    def _reconcile(self, journal: Journal, pending: list[Signal]) -> None:
        """Say what an earlier run left open (its exits are followed next, by _follow_legs)."""
        resumed = [s.id for s in pending if s.id in journal.state.intents]
        open_orders = self.retry("list open orders", self.broker.open_orders)
        ours = [o for o in open_orders if o.client_order_id.startswith(COID_PREFIX)]
        log.info("reconcile", resuming=len(resumed), open_orders=len(open_orders), open_orders_ours=len(ours),
                 open_exits=len(journal.state.legs))  # fmt: skip

    def _follow_legs(self, journal: Journal, trades_log: JsonlAppender) -> None:
        """Exits that closed since last looked at: a fill is recorded under its parent's signal; a trailing exit
        not placed yet (a crash came between the entry's fill and it) is placed now. One listing of the open
        orders says which exits left it (the barrier that keeps an update still on its way from being missed
        before the next order is sized); each one's final state comes from the trade_updates stream, or is polled
        when the stream cannot vouch for it (_leg_state)."""
        if not journal.state.legs:
            return
        still_open = {o.id for o in self.retry("list open orders", self.broker.open_orders)}
        for key in list(journal.state.legs):
            leg = journal.state.legs.get(key)  # an OCO placed for its sibling has its order now
            if leg is None:
                continue
            order_id = leg.order_id
            if order_id is None:
                self._place_exit(leg, journal)
            elif order_id not in still_open:
                try:
                    order = self._leg_state(order_id)
                except NotFound:  # the journal is another broker's (a run on another local broker database)
                    raise MarketBossError(
                        f"{journal.path}: the {leg.leg} of {leg.symbol} it follows (order {order_id}, signal "
                        f"{leg.signal_id}) is unknown to this broker: these logs are another broker's or account's "
                        "run; write this one elsewhere (--trades-output, --equity-output) or move them away"
                    ) from None
                if order.is_terminal:
                    self._close_leg(leg, order, journal, trades_log)

    def _leg_state(self, order_id: str) -> Order:
        """An exit's state once it left the open orders: as the stream pushed it when the stream has listened
        without a break since the exit was known (waiting up to LEG_EVENT_WAIT for an update still on its way),
        else polled: the stream is down, reconnected since (it may have missed it), or the exit is an earlier
        run's."""
        stream = self.updates
        if stream is not None and stream.live and self._leg_generation.get(order_id) == stream.generation:
            seq, deadline = 0, time.monotonic() + min(LEG_EVENT_WAIT, self.cfg.stream_poll_interval)
            while (pushed := stream.wait(order_id, seq, max(0.0, deadline - time.monotonic()))) is not None:
                seq, order = pushed
                if order.is_terminal:
                    self.summary.updates["stream"] += 1
                    return order
        self.summary.updates["polled"] += 1
        return self.retry("get order", partial(self.broker.get_order, order_id))

    def _heard(self, order_id: str) -> None:
        """An exit known from now on: the stream (if listening) has heard all of it, unless it reconnects."""
        if self.updates is not None and self.updates.live:
            self._leg_generation[order_id] = self.updates.generation

    def _close_leg(self, leg: Leg, order: Order, journal: Journal, trades_log: JsonlAppender) -> None:
        if order.filled_qty > 0:
            self._record_leg(trades_log, leg, order)
        journal.leg_closed(leg, order.filled_qty)

    def _clear_legs(self, symbol: str, journal: Journal, trades_log: JsonlAppender, signal_id: str | None = None,
                    why: str | None = None) -> None:  # fmt: skip
        """Before an order that reduces a position: its open exits go (they hold its shares, and a flattened
        position keeps none), each recorded first if it traded. `signal_id`: that entry's exits only (a CANCEL
        naming a filled entry). `why`: each exit that ends unfilled is recorded too, `canceled` with this reason
        (a cancel from outside the strategy: the live loop's restart cancels them in its run, `canceled`)."""
        for leg in [g for g in journal.state.legs.values() if g.symbol == symbol and signal_id in (None, g.signal_id)]:
            order_id = leg.order_id
            order = None
            if order_id is not None:
                try:
                    self.retry("cancel exit", partial(self.broker.cancel_order, order_id))
                except (OrderRejected, NotFound) as exc:  # filled, or gone with its sibling
                    log.info("exit_cancel_not_needed", order_id=order_id, error=str(exc))
                order = self.retry("get order", partial(self.broker.get_order, order_id))
            if why is not None and (order is None or order.filled_qty == 0):
                self._log_trade(trades_log, "canceled", order, leg.signal_id, leg.symbol, leg.side.upper(), None,
                                leg.price, leg.qty, 0.0, why, leg.leg)  # fmt: skip
            if order is None:
                journal.leg_closed(leg)
            else:
                self._close_leg(leg, order, journal, trades_log)

    def _open_legs(self, sig: Signal, intent: Intent, order: Order, qty: float, journal: Journal) -> list[Leg]:
        """The exits of a filled entry for the `qty` shares it opened, journaled before its record: the broker's
        bracket / OTO legs, and the trailing exit to place (without an order id until it is)."""
        side: Side = "sell" if intent.side == "buy" else "buy"
        legs = [
            Leg(sig.id, LEG_NAMES[o.type], sig.symbol, side, qty, o.client_order_id, o.id,
                o.limit_price if o.type == "limit" else o.stop_price)
            for o in order.legs
            if o.type in LEG_NAMES
        ]  # fmt: skip
        if _trailing_leg(sig):
            coid = trailing_client_order_id(intent.client_order_id)
            legs.append(Leg(sig.id, "trailing_stop", sig.symbol, side, qty, coid, None,
                            trail_percent=sig.trail_percent))  # fmt: skip
        if not bracketed(sig):  # its take-profit and stop-loss, to place (one OCO for both)
            coid = exits_client_order_id(intent.client_order_id)
            legs += [Leg(sig.id, name, sig.symbol, side, qty, coid, None, price) for name, price in
                     (("take_profit", sig.take_profit), ("stop_loss", sig.stop_loss)) if price is not None]  # fmt: skip
        for leg in legs:
            if leg.key not in journal.state.legs:
                journal.leg(leg)
            if leg.order_id is not None:
                self._heard(leg.order_id)
        return legs

    def _place_exit(self, leg: Leg, journal: Journal) -> None:
        """An exit placed once its entry filled (placed_after_fill), gtc, for the filled quantity (at most what
        is still held that way): the trailing stop; a take-profit and a stop-loss together as an OCO, or the one
        given alone."""
        legs = [leg] if leg.leg == "trailing_stop" else [
            g for g in journal.state.legs.values() if g.signal_id == leg.signal_id and g.order_id is None
            and g.leg in ("take_profit", "stop_loss")]  # fmt: skip
        pos = self.retry("get positions", self.broker.positions).get(leg.symbol)
        held = 0.0 if pos is None else (pos.qty if leg.side == "sell" else -pos.qty)
        if held <= 0:
            log.info("exit_not_needed", signal_id=leg.signal_id, symbol=leg.symbol, exits=[g.leg for g in legs])
            for g in legs:
                journal.leg_closed(g)
            return
        qty = min(leg.qty, held)
        by = {g.leg: g for g in legs}
        tp, sl = by.get("take_profit"), by.get("stop_loss")
        if leg.leg == "trailing_stop":
            req = OrderRequest(leg.symbol, qty, leg.side, leg.client_order_id, "trailing_stop", "gtc",
                               trail_percent=leg.trail_percent)  # fmt: skip
        elif tp is not None:
            req = OrderRequest(leg.symbol, qty, leg.side, tp.client_order_id, "limit", "gtc", limit_price=tp.price,
                               take_profit=tp.price if sl is not None else None,
                               stop_loss=sl.price if sl is not None else None, oco=sl is not None)  # fmt: skip
        else:
            assert sl is not None
            req = OrderRequest(leg.symbol, qty, leg.side, sl.client_order_id, "stop", "gtc", stop_price=sl.price)
        try:
            order = self._submit_once(req, resumed=True)
        except OrderRejected as exc:
            log.error("exit_not_placed", signal_id=leg.signal_id, symbol=leg.symbol, error=str(exc))
            self.alerter.send("error", f"{' and '.join(by)} for {leg.symbol} not placed", str(exc))
            for g in legs:
                journal.leg_closed(g)
            return
        ids = {g.leg: order.id for g in legs}
        for o in order.legs:  # an OCO's other order: its stop
            if o.type in ("stop", "stop_limit"):
                ids["stop_loss"] = o.id
        for g in legs:
            journal.leg(replace(g, qty=qty, order_id=ids[g.leg]))
            self._heard(ids[g.leg])
        log.info("exit_placed", signal_id=leg.signal_id, symbol=leg.symbol, qty=qty, exits=list(by),
                 order_id=order.id)  # fmt: skip

    def _send_summary(self) -> None:
        body = "\n".join(f"{k}: {v}" for k, v in self.summary.as_rows())
        self.alerter.send("summary", "paper run summary", body)

    def _check_kill_switch_history(self, journal: Journal) -> None:
        today = self.now().astimezone(NY_TZ).date().isoformat()
        if today in journal.state.kill_switch and not self.cfg.reset_kill_switch:
            raise KillSwitch(
                f"the kill switch tripped earlier today ({journal.state.kill_switch[today]}); "
                "no orders until the next session (or pass --reset-kill-switch)"
            )

    def _trip(self, reason: str, journal: Journal) -> None:
        log.error("kill_switch", reason=reason)
        try:
            self.retry("cancel all orders", self.broker.cancel_all_orders)
        finally:
            journal.kill(self.now().astimezone(NY_TZ).date(), reason)
            self.alerter.send("kill_switch", "KILL SWITCH: trading stopped", reason)
        raise KillSwitch(f"kill switch: {reason}; open orders canceled, no more orders today")

    def _execute(self, sig: Signal, journal: Journal, trades_log: JsonlAppender, equity_log: JsonlAppender) -> None:
        """One signal to a terminal record. What makes this signal unexecutable (unknown symbol, no price, a
        refusal) is recorded as rejected with its reason; a fault that outlasts the retry budget ends the run,
        naming the signal's line (rerun to finish)."""
        try:
            self._execute_one(sig, journal, trades_log, equity_log)
        except (TransientError, AuthError) as exc:
            where = f"{self.cfg.signals}:{sig.line}" if sig.line else str(self.cfg.signals)
            raise BrokerError(f"{where}: signal {sig.id} ({sig.symbol}): {exc}", exc.status, exc.code) from None
        except BrokerError as exc:  # NotFound, OrderRejected, a 4xx: about this signal, not the run
            intent = journal.state.intents.get(sig.id)
            log.warning("signal_rejected", signal_id=sig.id, symbol=sig.symbol, error=str(exc))
            self._record(trades_log, sig, "rejected", side=intent.side if intent else None,
                         requested=intent.qty if intent else 0.0, reason=str(exc))  # fmt: skip
            self.alerter.send("rejection", f"{sig.symbol} signal rejected", str(exc))

    def _execute_one(
        self, sig: Signal, journal: Journal, trades_log: JsonlAppender, equity_log: JsonlAppender
    ) -> None:
        intent = journal.state.intents.get(sig.id)
        if intent is not None:  # started before a crash: finish it, never re-decide it
            if self.replay is not None and sig.id not in journal.state.order_ids and sig.action != "CANCEL":
                self.replay.before(sig)  # not sent yet: at its bar (where the crash left the clock, or a fresh one's)
            self._finish(sig, intent, journal, trades_log, equity_log, resumed=True)
            return
        if self.replay is not None:  # a cancel: to its bar's end, what the backtest trades up to it traded here
            if sig.action == "CANCEL":
                self.replay.through(sig)
            else:
                self._exits_at_the_close(sig, journal, trades_log, equity_log)
                if not self.replay.before(sig):  # sent, it would trade at an earlier bar's time
                    self._record(trades_log, sig, "expired", reason=f"no later bar of {sig.symbol} in the replay's "
                                 "data to fill it at (the backtest's expiry too)", at=sig.timestamp)  # fmt: skip
                    return
            if self.working:  # what the clock's move ended is recorded first, and counts in the account
                self._follow_working(journal, trades_log, equity_log, poll=True)
        if sig.action == "CANCEL":
            self._cancel(sig, journal, trades_log, equity_log)
            return
        self._follow_legs(journal, trades_log)
        reads, b = self.reads, self.broker  # sent together, taken in the order of the checks below
        acct_r, positions_r = reads.start("get account", b.account), reads.start("get positions", b.positions)
        asset_r = None if sig.symbol in self._assets else reads.start("get asset", partial(b.asset, sig.symbol))
        price_r = reads.start("latest price", partial(b.latest_price, sig.symbol))
        clock_r = reads.start("get clock", b.clock)
        acct = reads.result(acct_r)
        breach = self.risk.daily_loss_breached(acct)
        if breach:
            self._trip(breach.reason, journal)
        positions = reads.result(positions_r)
        pos_qty = positions[sig.symbol].qty if sig.symbol in positions else 0.0
        if asset_r is not None:
            self._assets[sig.symbol] = reads.result(asset_r)
        asset = self._assets[sig.symbol]
        if asset is None:
            raise NotFound(f"unknown symbol {sig.symbol}: the broker has no such asset", status=404)
        price, clock = reads.result(price_r), reads.result(clock_r)
        at = clock.timestamp.astimezone(UTC)  # a record of this signal's that has no fill is stamped now
        free = self._free_cash(acct.cash, positions, sig.symbol)
        sized = size_order(sig, acct.equity, free, pos_qty, price, self.cfg.fractional, self._slip)
        if not isinstance(sized, str) and not opens(pos_qty, sized[0]) and _after_credit(sig, *sized, journal) > 0 \
                and any(g.symbol == sig.symbol for g in journal.state.legs.values()):
            # a reduction that trades: its exits go first (what they traded counts below), then the position as it
            # stands (one that trades nothing, a target reached or its exit's credit, leaves them working, as in
            # the backtest)
            self._clear_legs(sig.symbol, journal, trades_log)
            positions = self.retry("get positions", self.broker.positions)
            pos_qty = positions[sig.symbol].qty if sig.symbol in positions else 0.0
            sized = size_order(sig, acct.equity, free, pos_qty, price, self.cfg.fractional, self._slip)
        if isinstance(sized, str):  # no cash for a share is the backtest's rejection, else there is nothing to do
            self._record(trades_log, sig, "rejected" if sized == REASONS[REJECTED_CASH] else "skipped", reason=sized,
                         at=at)  # fmt: skip
            return
        side, qty = sized
        if (credited := _after_credit(sig, side, qty, journal)) != qty:  # its exit already traded that much
            qty = credited
            if qty == 0:
                journal.credit_used(sig.symbol)
                self._record(trades_log, sig, "skipped", reason="its exit already traded it", at=at)
                return
        if self.cfg.risk.long_only and side == "sell" and qty > pos_qty:
            qty = max(pos_qty, 0.0)
            if qty == 0:
                self._record(trades_log, sig, "skipped", reason="long_only: no shares held to sell (never a short)",
                             at=at)  # fmt: skip
                return
        bound = self._bounds.get(sig.id)
        if bound is not None:
            room = bound - pos_qty if side == "buy" else pos_qty - bound
            if room < 1e-9:
                self._record(trades_log, sig, "skipped", at=at, reason=f"the account holds {pos_qty:g} shares, the "
                             f"strategy {bound:g} once this fills (what the strategy holds is not the account's: "
                             "its warm-up's, or a fill the account did not make)")  # fmt: skip
                return
            if qty > room:
                log.info("order_cut_to_strategy_position", signal_id=sig.id, symbol=sig.symbol, requested=qty,
                         qty=room, account=pos_qty, strategy=bound)  # fmt: skip
                qty = room
        block = self.risk.pre_trade(OrderIntent(sig.symbol, side, qty, price), RiskContext(acct, clock, asset, pos_qty))
        if block is not None:
            log.warning("risk_blocked", signal_id=sig.id, symbol=sig.symbol, check=block.check, reason=block.reason)
            self._record(trades_log, sig, "blocked", side=side, requested=qty, reason=f"{block.check}: {block.reason}",
                         at=at)  # fmt: skip
            self.alerter.send("rejection", f"{sig.symbol} order blocked", f"{block.check}: {block.reason}")
            return
        entry = opens(pos_qty, side)
        if not entry:
            self._clear_legs(sig.symbol, journal, trades_log)
        # Alpaca refuses one order through zero (long 10, sell 20): a market flip goes as two, the close first
        # (decided at the close: the close alone, see _close_first). A resting order's rest could not follow its
        # close in time: it goes as the close alone (sent whole it was refused, and a stop meant to protect the
        # position, sized from the strategy's shares where the account holds fewer, left it unprotected)
        through = not entry and qty > abs(pos_qty)
        flip = through and sig.order_type == "market"
        if through and not flip:
            log.warning("order_cut_at_zero", signal_id=sig.id, symbol=sig.symbol, requested=qty, qty=abs(pos_qty),
                        order_type=sig.order_type, reason="Alpaca takes no resting order through zero")  # fmt: skip
            qty = abs(pos_qty)
        closes = abs(pos_qty) if flip else 0.0
        # a flip's exits go on its rest, the shares past zero it opens (the backtest's _set_exits)
        new = Intent(sig.id, client_order_id(sig.id), sig.symbol, side, qty, legs=(entry or flip) and has_exits(sig),
                     closes=closes)  # fmt: skip
        journal.intent(new)
        self._finish(sig, new, journal, trades_log, equity_log, resumed=False)

    def _cancel(self, sig: Signal, journal: Journal, trades_log: JsonlAppender, equity_log: JsonlAppender) -> None:
        """A CANCEL signal: cancel the order its `cancels` signal sent (client_order_id mb-<cancels>) if it is
        still open, else the exits its fill opened if they still work (nb.cancel_row, the backtest's rule), and
        record the outcome under the cancel's id (a rerun finds it recorded and skips it; a crash before the
        record finds the order already canceled). The order's own end is recorded where it is followed (a
        working order: by `follow`; one that ended unseen, at once, so that its exits are known here)."""
        assert sig.cancels is not None
        coid = client_order_id(sig.cancels)
        order = self.retry("find order", partial(self.broker.order_by_client_id, coid))
        if order is None:
            self._record(trades_log, sig, "skipped", reason=f"no order {coid} at the broker")
            return
        if order.is_terminal and order.id in self.working:  # filled while left working: its exits journaled now
            self._follow_working(journal, trades_log, equity_log, poll=True)
        if not order.is_terminal:
            try:
                self.retry("cancel order", partial(self.broker.cancel_order, order.id))
            except (OrderRejected, NotFound) as exc:  # filled or gone meanwhile
                log.info("cancel_not_needed", order_id=order.id, error=str(exc))
            order = self.retry("get order", partial(self.broker.get_order, order.id))
            if order.status in ("canceled", "pending_cancel"):
                log.info("order_canceled", signal_id=sig.cancels, order_id=order.id, by=sig.id)
                self._record(trades_log, sig, "canceled", order=order, reason=f"canceled {coid}")
                return
        if any(g.signal_id == sig.cancels for g in journal.state.legs.values()):
            self._follow_legs(journal, trades_log)  # an exit that filled meanwhile is recorded as filled, first
            legs = sorted({g.leg for g in journal.state.legs.values() if g.signal_id == sig.cancels})
            if legs:
                self._clear_legs(sig.symbol, journal, trades_log, signal_id=sig.cancels)
                log.info("exits_canceled", signal_id=sig.cancels, legs=legs, by=sig.id)
                self._record(trades_log, sig, "canceled", reason=f"canceled the exits of {coid} ({', '.join(legs)})")
                return
        self._record(trades_log, sig, "skipped", order=order, reason=f"{coid} already {order.status}")

    def _finish(
        self,
        sig: Signal,
        intent: Intent,
        journal: Journal,
        trades_log: JsonlAppender,
        equity_log: JsonlAppender,
        resumed: bool,
    ) -> None:
        """Submit (or find, when resuming after a crash) the intent's order and see it to a terminal status; a flip's
        close first (Intent.closes), the rest once it has filled whole."""
        first = None
        if intent.closes:
            first = self._close_first(sig, intent, trades_log, equity_log, resumed)
            if first is None:
                return
        self._send_rest(sig, intent, journal, trades_log, equity_log, resumed, first)

    def _send_rest(self, sig: Signal, intent: Intent, journal: Journal, trades_log: JsonlAppender,
                   equity_log: JsonlAppender, resumed: bool, first: Order | None) -> None:  # fmt: skip
        """The intent's order (a flip's: the rest, after `first`, its filled close), to its end or left working."""
        req = order_request(sig, intent)
        try:
            order = self._submit_once(req, resumed)
        except OrderRejected as exc:
            if first is not None:  # a flip's close filled
                journal.credit_used(sig.symbol)
            self._refused(sig, intent, trades_log, exc, first)
            return
        if sig.id not in journal.state.order_ids:
            journal.submitted(sig.id, order.id)
        self.submitted.setdefault(sig.id, time.perf_counter())
        order, outcome = self._await_terminal(order, equity_log)
        if outcome == "parked":
            generation = self.updates.generation if self.updates is not None else 0
            self.working[order.id] = Working(sig, intent, req, generation, first)
            log.info("order_working", signal_id=sig.id, order_id=order.id, status=order.status)
            return
        self._conclude(sig, intent, req, order, outcome == "timed_out", journal, trades_log, equity_log, first)

    def _close_first(
        self, sig: Signal, intent: Intent, trades_log: JsonlAppender, equity_log: JsonlAppender, resumed: bool
    ) -> Order | None:
        """A flip's first order: the position's shares, as the signal asks (its type and prices), under its own
        client order id. The order once it filled whole; else None, the signal recorded with what it did."""
        req = replace(order_request(sig, intent), qty=intent.closes, time_in_force=sig.time_in_force,
                      client_order_id=closing_client_order_id(intent.client_order_id), take_profit=None,
                      stop_loss=None)  # the exits go on the rest, which opens the other side  # fmt: skip
        try:
            order = self._submit_once(req, resumed)
        except OrderRejected as exc:
            self._refused(sig, intent, trades_log, exc)
            return None
        if resumed and self._park == 0.0 and order.filled_qty >= req.qty and self.retry(
                "look up order", lambda: self.broker.order_by_client_id(intent.client_order_id)) is not None:
            return order  # the rest was sent after it before a crash: followed (parked, its fill went unrecorded)
        if self._park == 0.0:
            # decided at the close, it fills at the open; the rest goes when the next bar's signals are executed,
            # unless the strategy decided again on that symbol (execute), a bar late but never against it
            generation = self.updates.generation if self.updates is not None else 0
            self.working[order.id] = Working(sig, intent, req, generation, closing=True)
            log.info("order_working", signal_id=sig.id, order_id=order.id, status=order.status, flip_close=True)
            return None
        order, outcome = self._await_terminal(order, equity_log, may_park=False)  # the rest waits for it
        if order.filled_qty >= req.qty:
            return order
        unfilled = order.status if outcome == "done" else "expired"  # timed out: canceled by us
        status = "partially_filled" if order.filled_qty > 0 else unfilled
        self._record(trades_log, sig, status, order=order, side=intent.side, requested=intent.qty,
                     commission=self._commission(order), reason="the flip's closing order did not fill whole")
        return None

    def _refused(self, sig: Signal, intent: Intent, trades_log: JsonlAppender, exc: OrderRejected,
                 first: Order | None = None) -> None:  # fmt: skip
        """The broker refused the signal's order (after `first`, a flip's filled close: the position closed, not
        reopened)."""
        log.warning("order_rejected", signal_id=sig.id, error=str(exc))
        status = "rejected" if first is None else "partially_filled"
        self._record(trades_log, sig, status, order=first, side=intent.side, requested=intent.qty,
                     commission=self._commission(first), reason=str(exc))  # fmt: skip
        self.alerter.send("rejection", f"{sig.symbol} order rejected", str(exc))

    def _commission(self, order: Order | None) -> float:
        if order is None or order.filled_qty <= 0:
            return 0.0
        return self.retry("get fills", lambda: self.broker.fill_commission(order))

    def _conclude(
        self,
        sig: Signal,
        intent: Intent,
        req: OrderRequest,
        order: Order,
        timed_out: bool,
        journal: Journal,
        trades_log: JsonlAppender,
        equity_log: JsonlAppender,
        first: Order | None = None,
        closing_only: bool = False,
        reason: str | None = None,
    ) -> None:
        """Record an order that reached its end: its fill, exits, commission, equity and alerts (a flip's two
        orders as one: `first` closed the position; `closing_only`: the flip's close was all that was sent;
        `timed_out`: canceled by us, `reason` why)."""
        status = order.status
        if timed_out:
            status = "partially_filled" if order.filled_qty > 0 else "expired"
            reason = reason or f"not filled within --fill-timeout ({self.cfg.fill_timeout:g} s): canceled"
        if closing_only and order.filled_qty > 0:
            status = "partially_filled"
            reason = (f"a flip decided at the close: its close ({order.filled_qty:g}) alone (Alpaca takes no order "
                      f"through zero), its rest ({intent.qty - intent.closes:g}) not sent: the strategy decided "
                      "again, or the run stopped, before it could go")
        commission, after, legs = 0.0, None, []
        opened = 0.0 if closing_only else order.filled_qty  # the shares the exits cover (a flip's: its rest's)
        if first is not None:  # a flip: its closing order and the rest, one record
            commission = self._commission(first) + self._commission(order)
            rest = order
            order = _both(first, order)
            status = "filled" if order.filled_qty >= round(intent.qty, 9) else "partially_filled"
            if status == "partially_filled" and reason is None:  # the rest ended short (canceled at the stop ...)
                reason = (f"a flip: its close ({first.filled_qty:g}) filled, its rest {rest.status} with "
                          f"{rest.filled_qty:g} of {intent.qty - intent.closes:g} filled")
        if order.filled_qty > 0 and any(g.symbol == sig.symbol and g.side == intent.side and g.signal_id != sig.id
                                        for g in journal.state.legs.values()):  # fmt: skip
            # sent as it opened a position (none held then), it filled against one another entry's exits protect:
            # they end, as the backtest ends them at such a fill (left, they sold the shares again: a naked short)
            self._clear_legs(sig.symbol, journal, trades_log)
        if order.filled_qty > 0:
            journal.credit_used(sig.symbol)  # what its exits traded counts no more (the backtest's credit)
            if intent.legs and req.order_class != "simple" and not order.legs:  # found by client id: no legs
                order_id = order.id  # (a flip's: its rest's, the quantities kept its two orders')
                order = replace(order, legs=self.retry("get order", lambda: self.broker.get_order(order_id)).legs)
            legs = self._open_legs(sig, intent, order, opened, journal) if intent.legs and opened > 0 else []
            after_r = self.reads.start("get account", self.broker.account)
            if first is None:
                commission = self._commission(order)
            after = self.reads.result(after_r)
        self._record(trades_log, sig, status, order=order, side=intent.side, requested=intent.qty,
                     commission=commission, reason=reason)  # fmt: skip
        if order.filled_qty > 0:
            log.info("order_filled", signal_id=sig.id, symbol=sig.symbol, qty=order.filled_qty,
                     price=order.filled_avg_price, status=status)  # fmt: skip
            self.alerter.send(
                "fill",
                f"{intent.side.upper()} {order.filled_qty:g} {sig.symbol} @ {order.filled_avg_price:.2f}",
                f"status {status}, signal {sig.id}",
            )
            self._snapshot(equity_log, after, order.filled_at)
            for leg in legs:
                now = journal.state.legs.get(leg.key)  # an OCO placed for its sibling has its order now
                if now is not None and now.order_id is None:
                    self._place_exit(now, journal)
        elif status in ("rejected", "canceled", "expired"):
            self.alerter.send("rejection", f"{sig.symbol} order {status}", f"signal {sig.id}")

    def _start_updates(self) -> None:
        """Listen to the order stream before the first order (if it does not come up, polling does the work
        while it keeps trying in the background)."""
        self.updates = self.broker.order_updates()
        self.updates.start()
        if not self.updates.wait_live(self.cfg.stream_connect_timeout):
            log.warning("order_stream_unavailable", fallback="polling", waited_s=self.cfg.stream_connect_timeout)

    def _stop_updates(self) -> None:
        if self.updates is not None:
            self.updates.stop()
            self.updates = None

    def _next_state(self, order_id: str, seq: int, generation: int, wait: float) -> tuple[Order, int, int]:
        """The order's next state: from the stream while it listens (looked up once it reconnected, or after
        `wait` seconds of silence), else polled every poll_interval. Returns it with the stream's update number
        and connection count seen."""
        stream = self.updates
        if stream is not None and stream.live and stream.generation == generation:
            pushed = stream.wait(order_id, seq, wait)
            if pushed is not None:
                self.summary.updates["stream"] += 1
                return pushed[1], pushed[0], generation
        elif stream is None or not stream.live:
            self.sleep(self.cfg.poll_interval)
        if stream is not None:
            generation = stream.generation
        self.summary.updates["polled"] += 1
        return self.retry("get order", lambda: self.broker.get_order(order_id)), seq, generation

    def _await_terminal(self, order: Order, equity_log: JsonlAppender, may_park: bool = True) -> tuple[Order, str]:
        """The order once terminal ("done"), canceled after fill_timeout ("timed_out"), or still working after
        park_after ("parked"; not when `may_park` is false)."""
        park = self._park if may_park else None
        deadline = time.monotonic() + (park if park is not None else self.cfg.fill_timeout)
        seen_filled, order_id = order.filled_qty, order.id
        seq, generation = 0, self.updates.generation if self.updates is not None else 0
        while not order.is_terminal:
            if may_park and self.replay is not None and _waits_for_the_clock(order):
                # the stream's "new" may be behind a fill at the moment it was routed (the bar's open): as the
                # broker has it now, before the clock moves on without its exits
                order = self.retry("get order", partial(self.broker.get_order, order_id))
                if _waits_for_the_clock(order):
                    return order, "parked"  # it works on the bars the replay's clock moves through next
                continue
            now = time.monotonic()
            if now >= deadline:
                if park is not None:
                    return order, "parked"
                return self._cancel_after_timeout(order), "timed_out"
            wait = min(self.cfg.stream_poll_interval, deadline - now)
            order, seq, generation = self._next_state(order_id, seq, generation, wait)
            if order.filled_qty > seen_filled:
                event = "fill" if order.filled_qty >= order.qty else "partial_fill"
                log.info(event, order_id=order.id, filled_qty=order.filled_qty, qty=order.qty)
                seen_filled = order.filled_qty
            if time.monotonic() - self._last_snapshot >= self.cfg.equity_interval:
                self._snapshot(equity_log)
        return order, "done"

    def _cancel_after_timeout(self, order: Order) -> Order:
        log.warning("fill_timeout", order_id=order.id, timeout_s=self.cfg.fill_timeout, filled_qty=order.filled_qty)
        try:
            self.retry("cancel order", lambda: self.broker.cancel_order(order.id))
        except (OrderRejected, NotFound) as exc:  # filled or gone in the meantime
            log.info("cancel_not_needed", order_id=order.id, error=str(exc))
        order_id = order.id
        for _ in range(20):
            order = self.retry("get order", lambda: self.broker.get_order(order_id))
            if order.is_terminal:
                break
            self.sleep(self.cfg.poll_interval)
        return order


def _both(first: Order, rest: Order) -> Order:
    """A flip's two orders as the one the signal asked for: the rest's order, the quantities added up, the price
    their average."""
    qty = round(first.filled_qty + rest.filled_qty, 9)  # fractional shares: no float artefact (268.898744999...)
    value = first.filled_qty * (first.filled_avg_price or 0.0) + rest.filled_qty * (rest.filled_avg_price or 0.0)
    return replace(rest, qty=round(first.qty + rest.qty, 9), filled_qty=qty,
                   filled_avg_price=value / qty if qty else None,
                   filled_at=rest.filled_at or first.filled_at)  # fmt: skip


def _adopt(req: OrderRequest, found: Order) -> Order:
    """An order found under our client_order_id is ours only if it is what the intent asked for."""
    # a buy stop comes back a stop-limit: the broker's collar (Alpaca's, orders.nb.buy_stop_limit), its limit the
    # broker's own
    collared = req.type == "stop" and req.side == "buy" and found.type == "stop_limit"
    diffs = [f"{name} {got} (intent: {want})" for name, want, got in (
        ("symbol", req.symbol, found.symbol), ("side", req.side, found.side),
        ("type", "stop_limit" if collared else req.type, found.type),
        ("order class", req.order_class, found.order_class),
    ) if want != got]  # fmt: skip
    # a trailing stop's stop_price is the broker's current level, not something the intent asked for
    stop = req.stop_price, (found.stop_price if req.type != "trailing_stop" else None)
    limit = (found.limit_price if collared else req.limit_price), found.limit_price
    for name, want_v, got_v in (("quantity", req.qty, found.qty), ("limit price", *limit),
                                ("stop price", *stop),
                                ("trail percent", req.trail_percent, found.trail_percent)):  # fmt: skip
        if want_v is None and got_v is None:
            continue
        if want_v is None or got_v is None or abs(got_v - want_v) > 1e-9 * max(1.0, abs(want_v)):
            diffs.append(f"{name} {_num(got_v)} (intent: {_num(want_v)})")
    if diffs:
        raise AdoptionMismatch(
            f"client_order_id {req.client_order_id} is already used at the broker by another order "
            f"({'; '.join(diffs)}): not adopted (were these signal ids used by an earlier signals file?)"
        )
    return found


def _num(v: float | None) -> str:
    return "none" if v is None else f"{v:g}"


def others_short(positions: Mapping[str, Position], symbol: str) -> float:
    """The value of the short positions of the symbols but `symbol` (a positive amount): the collateral they hold
    is not a target weight's to spend (backtest.nb.free_cash)."""
    return -sum(p.market_value for s, p in positions.items() if s != symbol and p.qty < 0)


def size_order(
    sig: Signal, equity: float, free: float, position_qty: float, price: float, fractional: bool, slip: float = 0.0
) -> tuple[Side, float] | str:
    """The order a signal asks for now: its quantity, or the move to its target weight of current equity, sized
    by the backtest's own rule (backtest.nb.weight_trade: a purchase within equity and the `free` cash, a short
    within the collateral it leaves, whole shares unless fractional; Alpaca charges no commission); else why
    nothing is sent, in the backtest's words for it. The
    backtest sizes at its fill's reference price: the latest price for a market order, and for a limit (stop)
    order the price it fills at, its limit (stop) unless the latest price is already past it (fill_reference);
    `slip`, the broker's own adverse move (the local broker's spread), moves it as the backtest's costs do.

    Target-weight orders never trade against the signal's action (see marketboss.signals).
    """
    side: Side = "buy" if sig.action == "BUY" else "sell"
    if sig.quantity is not None:
        return side, sig.quantity
    assert sig.target_weight is not None
    if price <= 0:
        return "no price for the symbol to size the target weight at"
    rules = Rules(free, 0.0, 0.0, 0.0, slip, False, fractional)
    ref = fill_reference(sig, side == "buy", price)
    q, why = weight_trade(sig.target_weight, equity, free, ref, 1.0 if side == "buy" else -1.0, position_qty, rules)
    if why != PENDING:
        return REASONS[REJECTED_CASH] if why == REJECTED_CASH else REASONS[SKIPPED]
    qty = round(abs(q), 6) if fractional else float(abs(q))
    return (side, qty) if qty > 0 else REASONS[SKIPPED]


def fill_reference(sig: Signal, buy: bool, price: float) -> float:
    """The price an order of the signal fills at, by the fill rules (marketboss.orders) on a bar at `price`, or
    once the price reaches it: a limit at its limit or better, a stop (a stop-limit's trigger) at its stop or
    worse; a market or trailing stop order at the price."""
    if sig.order_type == "limit" and sig.limit_price is not None:
        now = limit_fill(buy, price, price, price, sig.limit_price)
        return sig.limit_price if math.isnan(now) else now
    if sig.order_type in ("stop", "stop_limit") and sig.stop_price is not None:
        now = stop_fill(buy, price, price, price, sig.stop_price)
        return sig.stop_price if math.isnan(now) else now
    return price


def _waits_for_the_clock(order: Order) -> bool:
    """In a replay: an order working on the bars to come (routed, not at market), which nothing moves but the
    clock."""
    return order.status in ("new", "partially_filled") and order.type != "market"


def _after_credit(sig: Signal, side: Side, qty: float, journal: Journal) -> float:
    """A quantity order's shares less those its symbol's exits traded on its side since the symbol's last order
    filled (the backtest's credit)."""
    credit = journal.state.exit_credit.get(sig.symbol, 0.0)
    if sig.quantity is not None and credit * (qty if side == "buy" else -qty) > 0:
        return max(qty - abs(credit), 0.0)
    return qty


def _reduces(sig: Signal, held: Mapping[str, Position]) -> bool:
    """The signal's side reduces the position held (a sale of a long, a purchase of a short)."""
    qty = held[sig.symbol].qty if sig.symbol in held else 0.0
    return (sig.action == "SELL" and qty > 0) or (sig.action == "BUY" and qty < 0)

