"""The Live session section (streamlit's AppTest) on real status files written by `write_status`, the live signals
log and the equity log: what it shows, how it follows a rewritten status, and its missing, damaged, stopped, failed
and stale states."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from marketboss import display
from marketboss.data.io import format_ts
from marketboss.execution.live_status import LiveStatus, read_status, write_status
from marketboss.execution.logs import read_paper_equity
from marketboss.signals import read_signals_frame, write_signals
from tests.dashboard.conftest import Dash, array, charts, messages, metrics, section, table
from tests.dashboard.demo import Demo

START = "`marketboss live --strategy ma_crossover --symbols AAPL,MSFT --timeframe 1Day --replay-from 2024-07-01 --speed 0`"  # noqa: E501


def demo_status(demo: Demo, **changes: object) -> LiveStatus:
    status = read_status(demo.live_status)
    assert status is not None
    return dataclasses.replace(status, **changes)  # type: ignore[arg-type]


def ago(**delta: float) -> str:
    return format_ts(datetime.now(UTC) - timedelta(**delta))


def todays_ids(signals: Path, last_bar: str) -> list[str]:
    """Ids of the log's signals dated on the last bar's New York day, newest first (computed row by row)."""
    ny = ZoneInfo("America/New_York")
    day = datetime.fromisoformat(last_bar).astimezone(ny).date()
    rows = [r for r in read_signals_frame(signals).iter_rows(named=True) if r["timestamp"].astimezone(ny).date() == day]
    return [r["id"] for r in sorted(rows, key=lambda r: r["timestamp"], reverse=True)]


def test_running_session_shows_state_stream_account_positions_orders_signals_and_equity(
    dash: Dash, demo: Demo
) -> None:
    at = dash()
    status = demo_status(demo)
    block = section(at, "live")
    (ok,) = messages(block, "success")
    assert "Running" in ok and not messages(block, "warning") and not messages(block, "error")
    m = metrics(block)
    assert m["State"] == "running" and m["Last bar"] == display.stamp(status.last_bar)
    assert m["Bars seen"] == display.count(status.bars_seen) and m["Orders submitted"] == str(status.orders_submitted)
    assert (m["Connected"], m["Connections"], m["Reconnects"]) == ("yes", "2", "1")
    assert (m["Gaps back-filled"], m["Bars back-filled"]) == ("1", "3")
    assert (m["Equity"], m["Cash"], m["Buying power"]) == ("$101,234.50", "$40,000.00", "$80,000.00")
    caption = " ".join(messages(block, "caption"))
    assert "ma_crossover" in caption and "AAPL, MSFT, JPM" in caption and "broker local (local)" in caption
    positions = table(block, "avg_entry_price")
    assert positions["symbol"].tolist() == ["AAPL", "MSFT"] and positions["qty"].tolist() == [10.0, 3.0]
    orders = table(block, "limit_price")
    assert orders["client_order_id"].tolist() == ["mb-live-1"] and orders["type"].tolist() == ["limit"]
    expected = todays_ids(demo.live_signals, status.last_bar or "")
    assert expected and m["Signals today"] == str(len(expected))
    assert table(block, "action")["id"].tolist() == expected
    (curve,) = charts(block)
    equity = read_paper_equity(demo.paper_equity)
    assert array(curve["data"][0]["y"]) == pytest.approx(equity["portfolio_value"].to_list())


def test_a_rewritten_status_and_a_new_signal_show_on_the_next_run(dash: Dash, demo: Demo, tmp_path: Path) -> None:
    status_path, signals_path = tmp_path / "status.json", tmp_path / "signals.jsonl"
    shutil.copy(demo.live_status, status_path)
    shutil.copy(demo.live_signals, signals_path)
    at = dash(live_status=status_path, live_signals=signals_path)
    before = metrics(section(at, "live"))
    status = demo_status(demo)
    signals = read_signals_frame(signals_path).drop("_line")
    new_bar = signals["timestamp"][-1] + timedelta(days=1)
    extra = signals.tail(1).with_columns(pl.lit("live-new-1").alias("id"), pl.lit(new_bar).alias("timestamp"))
    write_signals(signals_path, pl.concat([signals, extra]))
    write_status(status_path, dataclasses.replace(
        status, bars_seen=status.bars_seen + 3, orders_submitted=status.orders_submitted + 1, positions=[],
        last_bar=format_ts(new_bar), account={**status.account, "equity": 99_999.0}, updated_at=ago(seconds=1),
    ))  # fmt: skip
    at.run()
    block = section(at, "live")
    m = metrics(block)
    assert m["Bars seen"] == display.count(status.bars_seen + 3) != before["Bars seen"]
    assert m["Orders submitted"] == display.count(status.orders_submitted + 1)
    assert m["Equity"] == "$99,999.00" and m["Last bar"] == display.stamp(format_ts(new_bar))
    assert "No open position." in messages(block, "caption")
    assert m["Signals today"] == "1" and table(block, "action")["id"].tolist() == ["live-new-1"]


@pytest.mark.parametrize(("now", "flagged"), [
    ("2024-06-10T15:00:00+00:00", True),  # Monday 11:00 in New York: 90 minute bars since Friday's close
    ("2024-06-08T15:00:00+00:00", False),  # Saturday: no bar has closed since (it was flagged every night)
])  # fmt: skip
def test_a_running_session_that_stopped_writing_is_flagged(
    dash: Dash, demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, now: str, flagged: bool
) -> None:
    """Flagged after three of the market's bars without a status (it writes one per bar), not three bars of
    wall-clock time: a night or a weekend is no sign of a dead process."""
    from marketboss.dashboard import sections

    class Clock(datetime):
        @classmethod
        def now(cls, tz: object = None) -> Clock:  # type: ignore[override]
            return cls.fromisoformat(now)

    monkeypatch.setattr(sections, "datetime", Clock)
    path = tmp_path / "status.json"
    write_status(path, demo_status(demo, timeframe="1Min", updated_at="2024-06-07T20:00:00Z"))  # Friday's close
    block = section(dash(live_status=path), "live")
    if flagged:
        (warning,) = messages(block, "warning")
        assert warning.startswith("No update for 2 d") and "is the process still running" in warning
        assert not messages(block, "success")
    else:
        assert not messages(block, "warning") and messages(block, "success")[0].startswith("Running")
    assert metrics(block)["State"] == "running"


@pytest.mark.parametrize(("state", "kind", "said"), [("stopped", "info", "Stopped (SIGTERM) at "),
                                                     ("stopping", "info", "Stopping (SIGTERM): the session is closing"),
                                                     ("failed", "error", "Failed (stream: auth failed)")])  # fmt: skip
def test_stopped_and_failed_sessions_say_why(
    dash: Dash, demo: Demo, tmp_path: Path, state: str, kind: str, said: str
) -> None:
    path = tmp_path / "status.json"
    why = "stream: auth failed" if state == "failed" else "SIGTERM"
    write_status(path, demo_status(demo, state=state, stopped_by=why, updated_at=ago(hours=5)))
    block = section(dash(live_status=path), "live")
    (shown,) = messages(block, kind)
    assert shown.startswith(said)
    assert not messages(block, "warning")  # an old status of a finished session is not stale
    assert metrics(block)["State"] == state


def test_warming_up_without_a_signals_log_shows_the_status(dash: Dash, demo: Demo, tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_status(path, demo_status(demo, state="warming_up", last_bar=None, positions=[], open_orders=[]))
    block = section(dash(live_status=path, live_signals=tmp_path / "none.jsonl"), "live")
    infos = messages(block, "info")
    assert infos[0].startswith("Warming up") and any(i.startswith("No bar seen yet") for i in infos)
    assert metrics(block)["State"] == "warming up" and metrics(block)["Last bar"] == display.NA
    assert {"No open position.", "No open order."} <= set(messages(block, "caption"))


def test_a_missing_signals_log_is_information_in_its_place(dash: Dash, demo: Demo, tmp_path: Path) -> None:
    block = section(dash(live_signals=tmp_path / "none.jsonl"), "live")
    (info,) = messages(block, "info")
    assert "none.jsonl" in info and "not found" in info
    assert metrics(block)["Equity"] == "$101,234.50" and len(charts(block)) == 1


def test_no_status_file_says_how_to_start_a_session(dash: Dash, tmp_path: Path) -> None:
    at = dash(live_status=tmp_path / "none.json")
    block = section(at, "live")
    (info,) = messages(block, "info")
    assert "none.json" in info and "not found" in info and START in info
    assert not block.metric and not messages(block, "error")
    assert metrics(section(at, "paper"))["Portfolio value"] != display.NA


@pytest.mark.parametrize("content", ["{\"strategy\": ", "{\"strategy\": \"x\"}", ""])
def test_a_damaged_status_file_is_one_line_not_a_traceback(dash: Dash, tmp_path: Path, content: str) -> None:
    path = tmp_path / "status.json"
    path.write_text(content)
    at = dash(live_status=path)
    block = section(at, "live")
    shown = messages(block, "warning" if content == "" else "error")
    assert len(shown) == 1 and str(path) in shown[0] and "\n" not in shown[0]
    assert "Unexpected error" not in shown[0] and not block.metric
    assert metrics(section(at, "market"))["Bars"] != display.NA


def test_a_session_naming_its_signals_log_shows_that_logs_signals(dash: Dash, demo: Demo, tmp_path: Path) -> None:
    """A session run with --signals-output elsewhere: its status names its log, whose signals the page shows
    (before: the sidebar's log, another session's, under this one's name)."""
    own = tmp_path / "own_signals.jsonl"
    signals = read_signals_frame(demo.live_signals).drop("_line")
    last = signals.tail(1).with_columns(pl.lit("own-1").alias("id"))
    write_signals(own, last)
    status_path = tmp_path / "status.json"
    write_status(status_path, demo_status(demo, signals_log=str(own), last_bar=format_ts(last["timestamp"][0])))
    m = metrics(block := section(dash(live_status=status_path, live_signals=demo.live_signals), "live"))
    assert m["Signals today"] == "1" and table(block, "action")["id"].tolist() == ["own-1"]
    assert len(todays_ids(demo.live_signals, format_ts(last["timestamp"][0]))) >= 1  # the sidebar's log had its own


def test_a_torn_last_signal_of_the_live_log_is_left_out_and_said(dash: Dash, demo: Demo, tmp_path: Path) -> None:
    """The live loop killed mid-write: "Malformed input" in place of the day's signals, where the torn last line
    of the equity and trades logs is left out and said."""
    own = tmp_path / "live_signals.jsonl"
    signals = read_signals_frame(demo.live_signals).drop("_line")
    last = signals.tail(1).with_columns(pl.lit("own-1").alias("id"))
    write_signals(own, last)
    with own.open("a") as fh:
        fh.write('{"id":"own-2","timestamp":"20')
    status_path = tmp_path / "status.json"
    write_status(status_path, demo_status(demo, signals_log=str(own), last_bar=format_ts(last["timestamp"][0])))
    block = section(dash(live_status=status_path), "live")
    assert metrics(block)["Signals today"] == "1" and table(block, "action")["id"].tolist() == ["own-1"]
    (warning,) = messages(block, "warning")
    assert "live_signals.jsonl`:2: torn last line" in warning
