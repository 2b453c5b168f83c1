"""Metrics agree with empyrical-reloaded on the same returns, and the trade statistics add up."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import empyrical
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketboss.backtest.metrics import METRICS, equity_metrics, json_safe, periods_per_year, trade_metrics

DAY_US = 86_400_000_000


def _same(ours: float, theirs: float) -> bool:
    """Equal within 1e-9 (relative beyond 1), NaN matching NaN and infinity matching infinity. At the edge of
    float64's range (a CAGR of returns compounded to ~1e308) a last-bit difference between our equity values and
    empyrical's compounded returns overflows one and not the other: both that large, of one sign, are the same."""
    if math.isnan(theirs) or math.isnan(ours):
        return math.isnan(theirs) and math.isnan(ours)
    if min(abs(ours), abs(theirs)) > 1e300:
        return (ours > 0) == (theirs > 0)
    if math.isinf(theirs):
        return ours == theirs
    return abs(ours - theirs) <= 1e-9 * max(1.0, abs(theirs))


returns_lists = st.lists(
    st.floats(min_value=-0.2, max_value=0.2, allow_nan=False, allow_infinity=False), min_size=2, max_size=400
)


@settings(max_examples=80, deadline=None)
@given(
    rets=returns_lists,
    initial=st.floats(min_value=1_000, max_value=1e7),
    ppy=st.sampled_from([252.0, 252.0 * 7, 252.0 * 390, 12.0]),
)
def test_equity_metrics_match_empyrical_on_the_same_returns(rets: list[float], initial: float, ppy: float) -> None:
    equity = initial * np.cumprod(1.0 + np.array(rets))
    values = np.concatenate(([initial], equity))
    r = values[1:] / values[:-1] - 1.0  # the returns our metrics describe: from the starting cash, bar to bar
    ts = np.arange(len(equity), dtype=np.int64) * DAY_US
    m = equity_metrics(ts, equity, initial=initial, periods_per_year=ppy)
    checks = {
        "sharpe": (m["sharpe"], empyrical.sharpe_ratio(r, annualization=ppy)),
        "sortino": (m["sortino"], empyrical.sortino_ratio(r, annualization=ppy)),
        "max_drawdown": (m["max_drawdown_pct"] / 100, empyrical.max_drawdown(r)),
        "annual_volatility": (m["annual_volatility_pct"] / 100, empyrical.annual_volatility(r, annualization=ppy)),
        "cagr": (m["cagr_pct"] / 100, empyrical.cagr(r, annualization=ppy)),
    }
    for name, (ours, theirs) in checks.items():
        assert _same(float(ours), float(theirs)), f"{name}: ours {ours!r} vs empyrical {theirs!r}"
    # Calmar divides by the drawdown: a last-bit difference between marking the equity values (ours) and
    # re-compounding the returns (empyrical) is amplified by tiny drawdowns, so it is compared relatively and
    # only where the drawdown is more than rounding noise.
    calmar = empyrical.calmar_ratio(r, annualization=ppy)
    if abs(empyrical.max_drawdown(r)) > 1e-9:
        assert m["calmar"] == pytest.approx(calmar, rel=1e-6, nan_ok=True)
    assert m["total_return_pct"] == pytest.approx((equity[-1] / initial - 1) * 100, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_constant_returns_follow_empyricals_zero_dispersion_rule(value: float) -> None:
    """Flat (Sharpe 0/0 = NaN) and doubling every bar (exactly equal returns: std 0, Sharpe infinite)."""
    initial = 100.0
    equity = initial * np.cumprod(np.full(50, 1.0 + value))
    values = np.concatenate(([initial], equity))
    r = values[1:] / values[:-1] - 1.0
    m = equity_metrics(np.arange(50, dtype=np.int64) * DAY_US, equity, initial=initial, periods_per_year=252)
    assert _same(m["sharpe"], empyrical.sharpe_ratio(r, annualization=252))
    assert _same(m["annual_volatility_pct"] / 100, empyrical.annual_volatility(r, annualization=252))
    assert m["max_drawdown_pct"] == 0.0


def test_drawdown_depth_and_duration_on_a_hand_made_curve() -> None:
    # start 100, peak 120 on day 2, trough 90 on day 4 (-25%), back to 120 on day 7, new high after.
    equity = [110, 120, 100, 90, 100, 110, 120, 130]
    start = datetime(2024, 1, 1, 5, tzinfo=UTC)
    ts = [start + timedelta(days=i) for i in range(len(equity))]
    m = equity_metrics(ts, equity, initial=100.0, periods_per_year=252)
    assert m["max_drawdown_pct"] == pytest.approx(-25.0)
    assert m["max_drawdown_duration_bars"] == 5  # from the peak (bar 2) to the recovery (bar 7)
    assert m["max_drawdown_duration_days"] == pytest.approx(5.0)
    assert m["pnl"] == pytest.approx(30.0)
    assert m["start"] == "2024-01-01T05:00:00Z"


def test_unrecovered_drawdown_lasts_to_the_end_and_paper_logs_start_at_their_first_value() -> None:
    equity = [100.0, 105.0, 95.0, 97.0]
    ts = np.arange(4, dtype=np.int64) * DAY_US
    m = equity_metrics(ts, equity)  # a paper equity log: no separate starting cash
    assert m["initial_equity"] == 100.0
    assert m["periods"] == 3
    assert m["max_drawdown_duration_bars"] == 2
    assert m["max_drawdown_pct"] == pytest.approx((95 / 105 - 1) * 100)
    assert m["periods_per_year"] == 252.0  # daily spacing


def test_a_log_starting_at_no_equity_has_no_return_not_a_crash() -> None:
    """An unfunded account's first snapshot of 0: ZeroDivisionError in the dashboard's paper sections and in
    reconcile."""
    ts = np.array([0, 86_400_000_000, 2 * 86_400_000_000])
    m = equity_metrics(ts, np.array([0.0, 10.0, 12.0]))
    assert m["pnl"] == 12.0 and math.isnan(m["total_return_pct"]) and math.isnan(m["cagr_pct"])


def test_periods_per_year_follows_bar_frequency() -> None:
    base = np.datetime64("2024-01-02T14:30:00", "us").astype(np.int64)
    minutes = base + np.arange(390 * 3, dtype=np.int64) % 390 * 60_000_000 + np.arange(390 * 3) // 390 * DAY_US
    assert periods_per_year(np.sort(minutes)) == 252.0 * 390


def _trades(pnls: list[float], rets: list[float], closed: list[bool]) -> pl.DataFrame:
    return pl.DataFrame({"pnl": pnls, "return_pct": rets, "duration_days": [2.0] * len(pnls), "closed": closed})


def test_trade_metrics_add_up() -> None:
    trades = _trades([100.0, -50.0, 30.0, -10.0, 999.0], [10.0, -5.0, 3.0, -1.0, 99.0], [True] * 4 + [False])
    fills = pl.DataFrame({"commission": [1.0, 2.0, 3.5]})
    m = trade_metrics(trades, fills, exposure_pct=40.0, buy_hold_return_pct=7.0, rejected_orders=2)
    assert m["n_trades"] == 4 and m["open_trades"] == 1
    assert m["win_rate_pct"] == 50.0
    assert m["profit_factor"] == pytest.approx(130 / 60)
    assert m["expectancy"] == pytest.approx(17.5)
    assert (m["best_trade_pct"], m["worst_trade_pct"]) == (10.0, -5.0)
    assert m["avg_trade_pct"] == pytest.approx(1.75)
    assert m["commissions"] == 6.5
    assert m["rejected_orders"] == 2 and m["exposure_pct"] == 40.0


def test_no_trades_gives_undefined_ratios_written_as_null() -> None:
    empty = pl.DataFrame(schema={"pnl": pl.Float64, "return_pct": pl.Float64, "duration_days": pl.Float64,
                                 "closed": pl.Boolean})
    m = trade_metrics(empty, pl.DataFrame(schema={"commission": pl.Float64}))
    assert m["n_trades"] == 0 and math.isnan(m["win_rate_pct"])
    safe = json_safe(m)
    assert safe["win_rate_pct"] is None and safe["profit_factor"] is None and safe["commissions"] == 0.0


def test_every_displayed_metric_is_computed() -> None:
    ts = np.arange(10, dtype=np.int64) * DAY_US
    m = equity_metrics(ts, np.linspace(100, 110, 10), initial=100.0)
    m.update(trade_metrics(_trades([1.0], [1.0], [True]), pl.DataFrame({"commission": [0.5]})))
    missing = [key for key, _ in METRICS if key not in m]
    assert missing == []


def test_profit_factor_is_plus_infinity_when_every_trade_wins() -> None:
    import math

    import polars as pl

    from marketboss.backtest.metrics import trade_metrics

    trades = pl.DataFrame(
        {"closed": [True, True], "pnl": [5.0, 7.0], "return_pct": [1.0, 2.0], "duration_days": [1.0, 3.0]}
    )
    m = trade_metrics(trades, pl.DataFrame({"commission": [0.0]}))
    assert m["profit_factor"] == math.inf and m["win_rate_pct"] == 100.0


def test_an_account_wiped_out_gives_undefined_ratios_not_an_error() -> None:
    """Equity reaching 0 makes later returns 0/0: the ratios are undefined (NaN), the drawdown is -100%."""
    days = np.arange(1, 5, dtype=np.int64) * 86_400_000_000
    m = equity_metrics(days, [50.0, 0.0, 0.0, 0.0], initial=100.0, periods_per_year=252)
    assert m["max_drawdown_pct"] == -100.0 and m["total_return_pct"] == -100.0
    assert math.isnan(m["sharpe"]) and math.isnan(m["annual_volatility_pct"])
