"""Paper logs read back with their bad lines named, and paper round trips matched as the backtest matches them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from marketboss.errors import InputError
from marketboss.execution.logs import read_paper_equity, read_paper_trades
from marketboss.execution.reconcile import paper_metrics, paper_round_trips

TRADE = {
    "timestamp": "2026-01-09T18:42:00.000Z", "signal_timestamp": "2025-01-01T12:00:00.000Z", "order_id": "abc123",
    "symbol": "AAPL", "side": "BUY", "qty": 10, "filled_price": 150.25, "status": "filled", "signal_id": "sig-1",
    "commission": 0.0,
}  # fmt: skip
SNAPSHOT = {"timestamp": "2026-01-09T18:42:00.000Z", "cash": 95000.0, "portfolio_value": 105250.3,
            "buying_power": 105250.3, "equity_multiplier": 1.0}  # fmt: skip


def _write(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_the_guides_examples_read_back(tmp_path: Path) -> None:
    unfilled = {"qty": 0, "filled_price": None}
    trades = read_paper_trades(_write(tmp_path / "t.jsonl", [TRADE, {**TRADE, **unfilled, "status": "expired"},
                                                             {**TRADE, **unfilled, "side": "CANCEL",
                                                              "status": "canceled"}]))  # fmt: skip
    assert trades.height == 3 and trades["timestamp"][0] == datetime(2026, 1, 9, 18, 42, tzinfo=UTC)
    equity = read_paper_equity(_write(tmp_path / "e.jsonl", [SNAPSHOT]))
    assert equity["portfolio_value"].to_list() == [105250.3]


@pytest.mark.parametrize(
    ("record", "where"),
    [
        ({**TRADE, "timestamp": "soon"}, ":2: field 'timestamp'"),
        ({**TRADE, "qty": "ten"}, ":2: field 'qty': expected a number, got 'ten'"),
        ({**TRADE, "filled_price": True}, ":2: field 'filled_price'"),
        ({k: v for k, v in TRADE.items() if k != "symbol"}, ":2: field 'symbol'"),
        # reconcile counted and priced these: a wrong return and fill count, not an error
        ({k: v for k, v in TRADE.items() if k != "filled_price"}, ":2: field 'filled_price': a fill of 10 shares "
                                                                  "needs its price, a number > 0, got None"),
        ({k: v for k, v in TRADE.items() if k != "qty"}, ":2: field 'qty': expected the shares filled, a number"),
        ({**TRADE, "qty": -10.0}, ":2: field 'qty': expected the shares filled, a number >= 0, got -10.0"),
        ({k: v for k, v in TRADE.items() if k != "status"}, ":2: field 'status': expected a string, got None"),
        ({**TRADE, "side": "LONG"}, ":2: field 'side': expected BUY, SELL or CANCEL, got 'LONG'"),
    ],
)
def test_a_bad_trade_line_is_named(tmp_path: Path, record: dict[str, object], where: str) -> None:
    path = _write(tmp_path / "t.jsonl", [TRADE, record])
    with pytest.raises(InputError) as exc:
        read_paper_trades(path)
    assert str(exc.value).startswith(str(path)) and where in str(exc.value)


@pytest.mark.parametrize(
    ("record", "where"),
    [
        ({**SNAPSHOT, "portfolio_value": "x"}, ":2: field 'portfolio_value': expected a finite number, got 'x'"),
        ({**SNAPSHOT, "portfolio_value": None}, ":2: field 'portfolio_value'"),
        ({**SNAPSHOT, "cash": "x"}, ":2: field 'cash'"),
        ({**SNAPSHOT, "timestamp": None}, ":2: field 'timestamp'"),
    ],
)
def test_a_bad_snapshot_line_is_named(tmp_path: Path, record: dict[str, object], where: str) -> None:
    with pytest.raises(InputError, match=where.replace("(", r"\(")):
        read_paper_equity(_write(tmp_path / "e.jsonl", [SNAPSHOT, record]))


def test_an_account_under_water_is_read(tmp_path: Path) -> None:
    """Equity below zero (a short that ran away: the backtest's too) is the account's, not a bad line."""
    under = read_paper_equity(_write(tmp_path / "e.jsonl", [SNAPSHOT, {**SNAPSHOT, "portfolio_value": -6.5}]))
    assert under["portfolio_value"].to_list()[-1] == -6.5


def _trades(rows: list[tuple[str, str, float, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "timestamp": [datetime(2024, 1, 1 + i, tzinfo=UTC) for i in range(len(rows))],
            "symbol": [r[0] for r in rows],
            "side": [r[1] for r in rows],
            "qty": [r[2] for r in rows],
            "filled_price": [r[3] for r in rows],
            "signal_id": [f"s{i}" for i in range(len(rows))],
            "status": ["filled"] * len(rows),
            "commission": [0.0] * len(rows),
        }
    )


def test_paper_round_trips_match_fifo_like_the_backtest() -> None:
    trades = _trades([
        ("A", "BUY", 10, 100.0), ("A", "BUY", 10, 120.0), ("A", "SELL", 15, 110.0),  # +100 on 10, -50 on 5
        ("B", "BUY", 5, 50.0), ("B", "SELL", 5, 40.0),  # -50
        ("C", "SELL", 4, 30.0), ("C", "BUY", 4, 25.0),  # short: +20
    ])  # fmt: skip
    rt = paper_round_trips(trades).filter(pl.col("closed")).sort("symbol", "entry_time")
    assert rt["pnl"].to_list() == pytest.approx([100.0, -50.0, -50.0, 20.0])
    assert rt["side"].to_list() == ["LONG", "LONG", "LONG", "SHORT"]
    assert paper_round_trips(trades).filter(~pl.col("closed"))["qty"].to_list() == [5.0]  # A: 5 left open
    equity = pl.DataFrame({"timestamp": trades["timestamp"], "portfolio_value": [100.0 + i for i in range(7)]})
    m = paper_metrics(trades, equity)
    assert m["n_trades"] == 4 and m["win_rate_pct"] == pytest.approx(50.0) and m["filled_orders"] == 7


def test_no_fills_no_round_trips() -> None:
    trades = _trades([("A", "BUY", 0, 100.0)])
    equity = pl.DataFrame({"timestamp": trades["timestamp"], "portfolio_value": [100.0]})
    assert paper_round_trips(trades.filter(pl.col("qty") > 0)).is_empty()
    m = paper_metrics(trades, equity)
    assert m["n_trades"] == 0 and m["win_rate_pct"] != m["win_rate_pct"]  # NaN: undefined without trades
