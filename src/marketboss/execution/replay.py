"""Replay on the local broker: before each signal, move the broker's simulated clock to the start of the
symbol's next bar, where the backtest fills it (its open), and before a cancel to the end of its own bar; an
order working beyond it (a limit, a stop, an exit) trades on the bars the clock crosses on its way to the next
signal, and after the last one (`finish`). The paper fill then differs from the backtest's only by what
execution adds (spread, slippage, partial fills, latency), which is what reconcile measures."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl

from marketboss.broker.alpaca import AlpacaBroker
from marketboss.data.calendar import are_daily, schedule, served_stamps, smallest_spacing
from marketboss.data.io import read_bars
from marketboss.errors import MarketBossError
from marketboss.logging import get_logger
from marketboss.signals import Signal

log = get_logger(__name__)
_NONE = np.empty(0, dtype=np.int64)


class ReplayBars:
    """Each symbol's bar stamps as the local broker serves them (epoch us), where a replay moves the clock for a
    signal (its next bar), found by the file's own stamps, which the signals carry: daily bars stamped otherwise
    than at midnight New York (a CSV's 16:00 close, midnight UTC, a date) are served at it (data.calendar's
    daily_stamp). Before, a replay of such a file asked the broker for bars it has under no such stamp: the
    clock stayed at the first bar, where every order filled."""

    def __init__(self, bars: Path):
        df = read_bars(bars).select("symbol", pl.col("timestamp").dt.epoch("us")).sort("symbol", "timestamp")
        ts = df["timestamp"]
        served = df.with_columns(served_stamps(ts, are_daily(ts, smallest_spacing(ts, df["symbol"]))).alias("served"))
        self.own: dict[str, np.ndarray] = {}  # the file's stamps, the signals'
        self.stamps: dict[str, np.ndarray] = {}  # the broker's, in the same order
        for (sym,), g in served.group_by("symbol", maintain_order=True):
            self.own[sym], self.stamps[sym] = g["timestamp"].to_numpy(), g["served"].to_numpy()

    def _after(self, signal: Signal) -> tuple[np.ndarray, int]:
        """The symbol's bar starts as served (empty when the data has none) and the index of the first after the
        signal's."""
        own = self.own.get(signal.symbol, _NONE)
        i = int(np.searchsorted(own, int(signal.timestamp.timestamp() * 1_000_000), side="right"))
        return self.stamps.get(signal.symbol, _NONE), i

    def next_bar(self, signal: Signal) -> int | None:
        """The start of the signal's symbol's next bar (epoch us), where the backtest fills it; None without one."""
        stamps, i = self._after(signal)
        return int(stamps[i]) if i < len(stamps) else None

    def own_bar(self, signal: Signal) -> int | None:
        """The start of the signal's own bar (its symbol's last at or before it); None without one."""
        stamps, i = self._after(signal)
        return int(stamps[i - 1]) if i > 0 else None

    def first_start(self, symbols: set[str], after: int, before: int) -> int | None:
        """The earliest bar start of these symbols in (after, before); None without one."""
        starts = []
        for sym in symbols:
            stamps = self.stamps.get(sym, _NONE)
            i = int(np.searchsorted(stamps, after, side="right"))
            if i < len(stamps) and stamps[i] < before:
                starts.append(int(stamps[i]))
        return min(starts, default=None)

    def behind(self, signals: list[Signal], now_us: int) -> list[tuple[Signal, int]]:
        """The signals (with their next bar) whose fill bar a clock at now_us has already left (it is at or after
        the bar after it): a replay cannot fill them there. A clock inside the bar still can (a rerun's)."""
        out = []
        for sig in signals:
            stamps, i = self._after(sig)
            if i + 1 < len(stamps) and stamps[i + 1] <= now_us:
                out.append((sig, int(stamps[i])))
        return out


class LocalReplay:
    def __init__(self, broker: AlpacaBroker, bars: Path, key_id: str, secret_key: str, served: bool = False):
        """`served`: a broker this run did not start (`--broker-url`): its database is the server's."""
        self._bars = ReplayBars(bars)
        self._served = served
        self._http = httpx.Client(
            base_url=broker.base_url,
            headers={"APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret_key},
            timeout=10.0,
        )
        self._now_us = 0
        self._ended = -1  # the bar whose end the clock was moved to (through)
        self._watch: Callable[[], set[str]] = set
        self._step: Callable[[], None] = lambda: None

    def stop_at_bars(self, symbols: Callable[[], set[str]], step: Callable[[], None]) -> None:
        """While `symbols()` names any, the clock stops at each of their bars on its way (`step` runs at each):
        an entry whose trailing exit the executor places once it filled gets it from the bar after its fill, as
        in the backtest, not bars later where the clock was going."""
        self._watch, self._step = symbols, step

    def _clock(self) -> dict[str, Any]:
        r = self._http.get("/admin/clock")
        if r.status_code != 200:
            raise MarketBossError(f"local broker clock: HTTP {r.status_code} {r.text[:200]}")
        return dict(r.json())

    def _since(self) -> None:
        """The clock where this run finds it, before its first move: a run resuming where an earlier one left it
        (at the end of the bar its next signal was decided on) moves on from there, never back to that bar."""
        if not self._now_us:
            self._now_us = _us(self._clock()["timestamp"])

    def check(self, signals: list[Signal], where: Path) -> None:
        """Refuse a replay the broker's clock is already past (a database an earlier run moved on): its signals
        would fill at that later time's prices, stale, and the clock never goes back. Nothing is sent then."""
        now = _us(self._clock()["timestamp"])
        behind = self._bars.behind(signals, now)
        if behind:
            sig, nxt = behind[0]
            fresh = ("restart `marketboss broker serve` with a fresh --db" if self._served else
                     "replay on a fresh broker database (--broker-db, or remove broker.sqlite beside --data) into "
                     "fresh logs (--trades-output, --equity-output)")
            raise MarketBossError(
                f"{where}:{sig.line or '?'}: signal {sig.id} ({sig.symbol}, {_minute(sig.timestamp)}) cannot be "
                f"replayed: the local broker's clock is at {_minute(now)}, past the bar it fills on ({_minute(nxt)}), "
                f"and never goes back: {fresh}, or send them at the broker's time with --allow-stale"
            )  # fmt: skip

    def before(self, signal: Signal) -> bool:
        """To the start of the signal's symbol's next bar; False when the data has none after the signal's (a
        symbol it lacks is the broker's to refuse)."""
        nxt = self._bars.next_bar(signal)
        if nxt is None:
            return signal.symbol not in self._bars.stamps
        self._move({"bar": _iso(nxt)}, nxt, signal.id)
        return True

    def when(self, signal: Signal) -> tuple[int, int]:
        """Where the replay acts on the signal, as the backtest trades it: an order at the open of its symbol's next
        bar, (its stamp, 0); a cancel at the end of its own bar, (the signal's stamp, 1): after the orders that
        trade on that bar, before those of the bars after it. An order with no next bar: as a cancel."""
        nxt = None if signal.action == "CANCEL" else self._bars.next_bar(signal)
        if nxt is not None:
            return nxt, 0
        own = self._bars.own_bar(signal)  # the broker's stamp of it, as the orders' are
        return (int(signal.timestamp.timestamp() * 1_000_000) if own is None else own), 1

    def through(self, signal: Signal) -> None:
        """To the end of the signal's own bar: a cancel's, which the backtest applies after that bar and before the
        next one opens, so what works trades on the bars up to it and on it, and nothing after. (Where one bar
        ends as the next starts, intraday, the broker holds that one's open until the clock is set again, here by
        the next signal's move: a gap at it through the order's price does not trade before the cancel.)"""
        stamp = self._bars.own_bar(signal)
        self._since()
        if stamp is None or self._now_us > stamp or self._ended == stamp:
            return  # no bar of its symbol yet, or the clock is past it (or at its end) already
        self._move({"bar": _iso(stamp)}, stamp, signal.id)
        if self._now_us == stamp and self._watch():
            self._step()  # an entry filled before this bar has its exit placed at its open, as at the other stops
        if self._now_us == stamp and self._post({"advance": "bar_end"}, stamp, signal.id):
            self._ended = stamp  # a second cancel of the bar must not advance to the next bar's end

    def finish(self, upto: Signal | None) -> bool:
        """Move the clock on past this run's last signal, so that the orders and exits it left working trade on the
        bars after it, as in the backtest: to the end of the bar `upto` (the first signal left for a later run) was
        decided on, where the later run goes on (a sale there cancels its position's exits at that bar's end, before
        the next opens: moved to the next open, they traded there first), else to the end of the data (True)."""
        if upto is not None and self._bars.next_bar(upto) is not None:
            self.through(upto)
            return False
        end = _us(self._clock()["data_end"])
        self._move({"timestamp": _iso(end)}, end, None)
        return True

    def _move(self, body: dict[str, str], t: int, signal_id: str | None) -> None:
        self._since()
        if t <= self._now_us:
            return  # the clock only moves forward; an earlier bar is already in the past
        while self._now_us and (stop := self._bars.first_start(self._watch(), self._now_us, t)) is not None:
            if not self._post({"bar": _iso(stop)}, stop, signal_id):
                return
            self._step()
        self._post(body, t, signal_id)

    def _post(self, body: dict[str, str], t: int, signal_id: str | None) -> bool:
        r = self._http.post("/admin/clock", json=body)
        if r.status_code != 200 and "cannot move backwards" in r.text:  # another run moved it past this bar
            raise MarketBossError(
                f"the local broker's clock went past {_minute(t)} while this replay was at it (another run replaying "
                f"on the same broker?): signal {signal_id or '-'} would trade later than its bar; replay on a broker "
                "of its own (--broker-db), one run at a time")  # fmt: skip
        if r.status_code != 200:
            log.warning("replay_clock_not_set", signal_id=signal_id, status=r.status_code, body=r.text[:200])
            return False
        self._now_us = t
        return True

    def close(self) -> None:
        self._http.close()


def clock_view(base_url: str, key_id: str, secret_key: str) -> dict[str, Any]:
    """The local broker's clock (GET /admin/clock): its mode (stepped, accelerated or wallclock), its time, and
    its data's span and timeframe (the bars its market-data stream sends)."""
    r = httpx.get(f"{base_url}/admin/clock", headers={"APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret_key},
                  timeout=10.0)  # fmt: skip
    if r.status_code != 200:
        raise MarketBossError(f"local broker clock: HTTP {r.status_code} {r.text[:200]}")
    out: dict[str, Any] = r.json()
    return out


class ReplayClock:
    """The live loop's replay on the local broker: the broker's stepped clock moved bar by bar by the loop itself
    (`step`), paced at `speed` simulated seconds per wall second (0: as fast as the loop goes), so history goes
    through the live code path (stream, decisions, orders) exactly as a session would."""

    def __init__(self, base_url: str, key_id: str, secret_key: str, speed: float = 0.0):
        self._http = httpx.Client(
            base_url=base_url, headers={"APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret_key}, timeout=10.0
        )
        self.speed = speed
        self._last_wall: float | None = None
        view = self._view("GET")
        if view.get("mode") != "stepped":
            raise MarketBossError(f"replay needs the local broker's stepped clock (it runs {view.get('mode')})")
        self.data_start_us, self.data_end_us = _us(view["data_start"]), _us(view["data_end"])

    def _view(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        r = self._http.request(method, "/admin/clock", json=body)
        if r.status_code != 200:
            raise MarketBossError(f"local broker clock: HTTP {r.status_code} {r.text[:200]}")
        out: dict[str, Any] = r.json()
        return out

    def begin(self, day: str) -> int | None:
        """Put the clock at the open of the first session on or after `day`, unless it is past it already (a
        replay resumed, or an earlier run's database): then the clock's time (epoch us), else None."""
        try:
            first = date.fromisoformat(day)
        except ValueError:
            raise MarketBossError(f"--replay-from: '{day}' is not a date (YYYY-MM-DD)") from None
        past_the_data = MarketBossError(f"--replay-from: {day} is after the broker's data ends")
        if datetime(first.year, first.month, first.day, tzinfo=UTC).timestamp() * 1e6 > self.data_end_us:
            raise past_the_data  # (the calendar may end before that day)
        opens = schedule(first, first + timedelta(days=10))["open"]
        if opens.empty:
            raise MarketBossError(f"--replay-from: no NYSE session in the 10 days from {day}")
        t = int(opens.iloc[0].value // 1000)
        if t > self.data_end_us:
            raise past_the_data
        if t < self.data_start_us:  # a fresh clock starts at the data's first bar: a replay cannot start before it
            starts = _iso(self.data_start_us)[:10]
            raise MarketBossError(f"--replay-from: {day} is before the broker's data starts ({starts}): give "
                                  f"{starts} or later")  # fmt: skip
        now = self.now_us()
        if now > t:
            return now
        self.step(t, 0)
        return None

    def now_us(self) -> int:
        return _us(self._view("GET")["timestamp"])

    def step(self, t_us: int, simulated_us: int) -> float | None:
        """Move the clock to t, first waiting out the pace of `simulated_us` of market time. Returns the moment
        (time.perf_counter) it was asked to move, None when the clock was there already (it never moves back)."""
        if self.speed > 0 and self._last_wall is not None:
            wait = simulated_us / 1e6 / self.speed - (time.monotonic() - self._last_wall)
            if wait > 0:
                time.sleep(wait)
        self._last_wall = time.monotonic()
        if t_us <= self.now_us():
            return None
        asked = time.perf_counter()
        self._view("POST", {"timestamp": _iso(t_us)})
        return asked

    def close(self) -> None:
        self._http.close()


def _us(text: str) -> int:
    return int(np.datetime64(text.replace("Z", ""), "us").astype(np.int64))


def _iso(us: int) -> str:
    return str(np.datetime64(us, "us").astype(str)) + "Z"


def _minute(t: int | datetime) -> str:
    """A time (epoch us, or aware) as UTC to the minute, for a message."""
    at = t if isinstance(t, datetime) else datetime.fromtimestamp(t / 1e6, UTC)
    return f"{at.astimezone(UTC):%Y-%m-%dT%H:%MZ}"
