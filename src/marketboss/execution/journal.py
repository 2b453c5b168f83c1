"""The run's memory across crashes.

Before an order is sent, its intent (client_order_id, side, quantity) is fsynced here; the trades log is the
record of what finished. On restart: a signal with a trade record is done; a signal with an intent but no
record is reconciled by looking its client_order_id up at the broker (never sent blindly again); anything
else has not started. Because client_order_id is derived from the signal id, even a lost journal cannot
make the broker accept the same order twice.

The exits of a filled order (its bracket or OTO legs, and a trailing stop the executor places after the fill) are
journaled before the order's record is written, and followed until they close: a leg's fill is recorded under
its parent's signal id, and a trailing stop a crash kept from being placed is placed on the next run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from marketboss.broker.base import Side
from marketboss.data.io import JsonlAppender, read_jsonl_records
from marketboss.data.schema import LINE
from marketboss.errors import InputError, MarketBossError


@dataclass(frozen=True)
class Intent:
    signal_id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: float
    legs: bool = False  # the order opens or increases the position: the signal's exits go with it
    closes: float = 0.0  # a flip: this many of qty close the position first, an order of their own (executor)


@dataclass(frozen=True)
class Leg:
    """An exit of a filled order: what it is, and the broker order that carries it (None until placed)."""

    signal_id: str  # the parent's
    leg: str  # take_profit | stop_loss | trailing_stop
    symbol: str
    side: Side
    qty: float
    client_order_id: str
    order_id: str | None
    price: float | None = None  # its limit or stop price: the price it is expected to fill at
    trail_percent: float | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.signal_id, self.leg


@dataclass
class JournalState:
    intents: dict[str, Intent] = field(default_factory=dict)
    order_ids: dict[str, str] = field(default_factory=dict)  # signal_id -> broker order id
    legs: dict[tuple[str, str], Leg] = field(default_factory=dict)  # (signal_id, leg) -> an exit still open
    kill_switch: dict[str, str] = field(default_factory=dict)  # session date -> reason
    # symbol -> shares its exits traded since its last order's fill (signed: a long's stop-loss sold, so negative); the
    # next quantity order on that side is that much smaller, as in the backtest (backtest.nb.simulate)
    exit_credit: dict[str, float] = field(default_factory=dict)
    live: bool | None = None  # the account its runs traded: live (real money) or paper; None before the first


_LEG_FIELDS = tuple(Leg.__dataclass_fields__)


def journal_path(trades_output: Path) -> Path:
    return trades_output.with_name(trades_output.stem + ".journal.jsonl")


class Journal:
    def __init__(self, path: Path):
        self.path = path
        self.state = self.load(path)
        self._log = JsonlAppender(path)

    @staticmethod
    def load(path: Path) -> JournalState:
        """The journal's state, read without opening it for writing."""
        st = JournalState()
        if not path.exists():
            return st
        for r in read_jsonl_records(path):
            kind = r.get("event")
            if kind == "intent":
                st.intents[r["signal_id"]] = Intent(
                    r["signal_id"], r["client_order_id"], r["symbol"], r["side"], r["qty"], bool(r.get("legs")),
                    float(r.get("closes", 0.0)),
                )
            elif kind == "submitted":
                st.order_ids[r["signal_id"]] = r["order_id"]
            elif kind == "leg":
                leg = Leg(**{f: r[f] for f in _LEG_FIELDS if f in r})
                st.legs[leg.key] = leg
            elif kind == "leg_closed":
                gone = st.legs.pop((r["signal_id"], r["leg"]), None)
                if gone is not None and r.get("filled"):
                    _credit(st, gone, float(r["filled"]))
            elif kind == "credit_used":
                st.exit_credit.pop(r["symbol"], None)
            elif kind == "kill_switch":
                st.kill_switch[r["date"]] = r["reason"]
            elif kind == "account" and st.live is None:
                st.live = bool(r["live"])
        return st

    def account(self, live: bool) -> None:
        """Record the account this journal's runs trade, once (check_account refuses the other kind after)."""
        if self.state.live is None:
            self._append(event="account", live=live)
            self.state.live = live

    def run(self, **settings: Any) -> None:
        """Record the settings a run trades with, so that `reconcile` backtests its signals as they traded
        (recorded_runs): each run's, as it starts."""
        self._append(event="run", **settings)

    def _append(self, **record: Any) -> None:
        self._log.append(record)

    def intent(self, i: Intent) -> None:
        self._append(event="intent", signal_id=i.signal_id, client_order_id=i.client_order_id, symbol=i.symbol,
                     side=i.side, qty=i.qty, legs=i.legs, closes=i.closes)  # fmt: skip
        self.state.intents[i.signal_id] = i

    def submitted(self, signal_id: str, order_id: str) -> None:
        self._append(event="submitted", signal_id=signal_id, order_id=order_id)
        self.state.order_ids[signal_id] = order_id

    def leg(self, leg: Leg) -> None:
        """An exit to follow (again, with its order id once placed)."""
        self._append(event="leg", **{f: getattr(leg, f) for f in _LEG_FIELDS})
        self.state.legs[leg.key] = leg

    def leg_closed(self, leg: Leg, filled: float = 0.0) -> None:
        """An exit that ended, having traded `filled` shares."""
        self._append(event="leg_closed", signal_id=leg.signal_id, leg=leg.leg, filled=filled)
        if self.state.legs.pop(leg.key, None) is not None and filled:
            _credit(self.state, leg, filled)

    def credit_used(self, symbol: str) -> None:
        """The symbol's exit credit ends: an order of it filled (an order sent that did not fill leaves it, as the
        backtest's fill alone does), or one on its side found nothing left to trade."""
        if symbol not in self.state.exit_credit:
            return
        self._append(event="credit_used", symbol=symbol)
        self.state.exit_credit.pop(symbol, None)

    def kill(self, session: date, reason: str) -> None:
        self._append(event="kill_switch", date=session.isoformat(), reason=reason)
        self.state.kill_switch[session.isoformat()] = reason

    def close(self) -> None:
        self._log.close()


def recorded_runs(trades_output: Path) -> list[dict[str, Any]]:
    """The settings each run on this trades log recorded as it started (Journal.run), oldest first: none for a log
    without a journal, or from before runs recorded them."""
    path = journal_path(trades_output)
    if not path.exists():
        return []
    runs = [r for r in read_jsonl_records(path) if r.get("event") == "run"]
    for r in runs:
        _check_run(path, r)
    return [{k: v for k, v in r.items() if k not in ("event", LINE)} for r in runs]


def _check_run(path: Path, run: dict[str, Any]) -> None:
    """A run's settings of the kinds Journal.run records (reconcile backtests with them: `"long_only": "maybe"`
    was taken as true, a spread of "x" failed later): a wrong one is an InputError naming its line and field."""
    line = run.get(LINE)
    costs = run.get("costs")
    fields: list[tuple[str, Any, bool, str]] = [
        ("timeframe", run.get("timeframe"), isinstance(run.get("timeframe"), str), "a timeframe such as 1Day"),
        ("long_only", run.get("long_only"), isinstance(run.get("long_only"), bool), "true or false"),
        ("costs", costs, isinstance(costs, dict), "the broker's costs, an object"),
        ("fractional", run.get("fractional"), isinstance(run.get("fractional"), bool), "true or false"),
    ]  # fmt: skip
    exits = run.get("exits")
    if exits is not None and not isinstance(exits, dict):
        raise InputError(path, f"expected the exits, an object, got {exits!r}", line=line, field="exits")
    for name in ("stop_loss_pct", "take_profit_pct", "trail_percent"):
        v = exits.get(name) if isinstance(exits, dict) else None
        ok = not isinstance(v, bool) and isinstance(v, int | float) and v > 0
        fields.append((f"exits.{name}", v, ok, "a percent > 0"))
    unknown = sorted(set(exits or {}) - {"stop_loss_pct", "take_profit_pct", "trail_percent"})
    if unknown:
        raise InputError(path, f"unknown exit {unknown[0]!r}", line=line, field="exits")
    for name in ("spread_bps", "slippage_bps"):
        v = costs.get(name) if isinstance(costs, dict) else None
        ok = not isinstance(v, bool) and isinstance(v, int | float) and v >= 0
        fields.append((f"costs.{name}", v, ok, "a number >= 0"))
    for name, value, ok, what in fields:
        if value is not None and not ok:
            raise InputError(path, f"expected {what}, got {value!r}", line=line, field=name)


def check_account(trades_output: Path, live: bool) -> None:
    """Refuse files that record the other kind of account: live (real money) and paper trades never share a
    trades log, an equity log or a journal (a signal done in one would be skipped in the other, and reconcile and
    the dashboard would mix them)."""
    was = Journal.load(journal_path(trades_output)).live
    if was is not None and was != live:
        kinds = ("paper", "the live account (real money)")
        raise MarketBossError(f"{trades_output}: its trades are of {kinds[was]}, this run trades {kinds[live]}: give "
                              "it files of its own (--trades-output, --equity-output)")  # fmt: skip


def _credit(st: JournalState, leg: Leg, filled: float) -> None:
    st.exit_credit[leg.symbol] = st.exit_credit.get(leg.symbol, 0.0) + (filled if leg.side == "buy" else -filled)
