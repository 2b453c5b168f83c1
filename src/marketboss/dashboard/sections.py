"""The page's sections, in the guide's order. Each runs inside `problems()`: a missing, empty or malformed file
becomes a message in its own section (naming the file, and for bad data its line and field) while the other
sections render; no traceback ever reaches the page.

Every number shown comes from the shared functions (summary, run_backtest, VersusBuyAndHold, paper_metrics,
compare_backtest_paper, load_run); this module only lays them out and formats them (marketboss.display).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import polars as pl
import streamlit as st

from marketboss import display
from marketboss.backtest.metrics import METRICS
from marketboss.backtest.report import yearly_figure
from marketboss.backtest.runs import Run, compare
from marketboss.dashboard import charts, loaders, models
from marketboss.dashboard.cache import FileKey, file_key, memoize
from marketboss.dashboard.loaders import Empty, NotFound
from marketboss.data.calendar import NY, Timeframe, bar_grid
from marketboss.errors import InputError, MarketBossError
from marketboss.execution.journal import journal_path
from marketboss.execution.live_status import LiveStatus
from marketboss.execution.slippage import VS_BACKTEST, VS_SIGNAL
from marketboss.logging import get_logger
from marketboss.ml import registry

log = get_logger(__name__)

#: (container key, heading) in page order: the guide's six sections, the strategy comparison and the live session.
SECTIONS = (
    ("market", "Market Data Overview"),
    ("signals", "Signals Inspection"),
    ("models", "Model Metrics"),
    ("backtest", "Quick Backtest View"),
    ("paper", "Paper Trading"),
    ("comparison", "Backtest vs Paper Trading Comparison"),
    ("strategies", "Strategy Comparison"),
    ("live", "Live session"),
)
#: Sections that follow a running process: each is a fragment re-reading its files every `refresh_seconds`.
LIVE = ("paper", "live")
PAGE_ROWS = 500
#: Metrics a "best" run can be chosen by; for each, higher is better (drawdowns are negative percentages).
RANK_BY = (
    ("sharpe", "Sharpe"),
    ("total_return_pct", "Return %"),
    ("sortino", "Sortino"),
    ("calmar", "Calmar"),
    ("max_drawdown_pct", "Max drawdown %"),
    ("win_rate_pct", "Win rate %"),
)
BEST_STYLE = {"background-color": "rgba(39, 174, 96, 0.22)", "font-weight": "600"}


@dataclass(frozen=True)
class Inputs:
    """The sidebar: the guide's five settings plus the paper trades log, the runs directory, the costs and the live
    session's files."""

    market_data: str
    signals: str
    models_dir: str
    paper_equity: str
    initial_cash: float
    paper_trades: str
    runs_dir: str
    commission: float
    slippage_bps: float
    refresh_seconds: float
    live_status: str
    live_signals: str


@contextmanager
def problems(context: str = "") -> Iterator[None]:
    """Show what went wrong where it went wrong: missing -> info, empty -> warning, bad data -> error."""
    prefix = f"{context}: " if context else ""
    try:
        yield
    except NotFound as exc:
        st.info(f"{prefix}{exc}")
    except Empty as exc:
        st.warning(f"{prefix}{exc}")
    except InputError as exc:  # the place, never the content: the sidebar takes any path
        st.error(f"{prefix}Malformed input: {exc.location} (`marketboss doctor` says why)")
    except MarketBossError as exc:
        st.warning(f"{prefix}{exc}")
    except Exception as exc:  # a bug must not take the page down: say so in the section, log the details
        log.exception("dashboard_section_failed", context=context)
        st.error(f"{prefix}Unexpected error ({type(exc).__name__}); the details are in the log")


def render_all(inputs: Inputs) -> None:
    loaders.warm(file_key(inputs.market_data), file_key(inputs.signals), inputs.runs_dir)
    body: dict[str, Callable[[Inputs], None]] = {
        "market": market_section,
        "signals": signals_section,
        "models": models_section,
        "backtest": backtest_section,
        "paper": paper_section,
        "comparison": comparison_section,
        "strategies": strategies_section,
        "live": live_section,
    }
    for key, title in SECTIONS:
        with st.container(key=f"section-{key}"):
            st.header(title, anchor=key)
            if key in LIVE:  # these rerun on their own (only they: a fragment) while a process appends to their files
                st.fragment(run_every=inputs.refresh_seconds)(_guarded)(body[key], inputs)
            else:
                _guarded(body[key], inputs)


def _guarded(fn: Callable[[Inputs], None], inputs: Inputs) -> None:
    with problems():
        fn(inputs)


def chart(fig: go.Figure, key: str) -> None:
    st.plotly_chart(fig, key=key, config={"displaylogo": False})


# ------------------------------------------------------------------------------------------- market data


@memoize(8)
def _price_figure(key: FileKey, symbol: str) -> go.Figure:
    ts, close, volume = loaders.symbol_series(key, symbol)
    return charts.price_volume(symbol, ts, close, volume)


def market_section(inputs: Inputs) -> None:
    key = file_key(inputs.market_data)
    bars = loaders.bars(key)
    stats = loaders.bar_summary(key)
    c = st.columns(4)
    c[0].metric("Symbols", display.count(stats.height))
    c[1].metric("Bars", display.count(bars.height))
    c[2].metric("From", display.day(bars["timestamp"][0]), help=display.when(bars["timestamp"][0]))
    c[3].metric("To", display.day(bars["timestamp"][-1]), help=display.when(bars["timestamp"][-1]))
    st.subheader("Returns statistics")
    st.caption("Per symbol, simple bar-to-bar returns of the close; annualised by the bar frequency.")
    st.dataframe(
        stats,
        hide_index=True,
        key="market_stats",
        column_config={
            "mean_return": st.column_config.NumberColumn("mean return", format="%.5f"),
            "volatility": st.column_config.NumberColumn("volatility", format="%.5f"),
            "annual_return": st.column_config.NumberColumn("annual return", format="percent"),
            "annual_volatility": st.column_config.NumberColumn("annual volatility", format="percent"),
            "last_close": st.column_config.NumberColumn("last close", format="%.2f"),
        },
    )
    symbol = st.selectbox("Symbol", stats["symbol"].to_list(), key="market_symbol")
    if symbol:
        chart(_price_figure(key, symbol), "market_chart")


# ----------------------------------------------------------------------------------------------- signals


def signals_section(inputs: Inputs) -> None:
    key = file_key(inputs.signals)
    opts = loaders.signal_options(key)
    c = st.columns(4)
    symbols = c[0].multiselect("Symbol", opts.symbols, key="signals_symbol", placeholder="All symbols")
    actions = c[1].multiselect("Action", opts.actions, key="signals_action", placeholder="All actions")
    strategies = c[2].multiselect("Strategy", opts.strategies, key="signals_strategy", placeholder="All strategies")
    picked = c[3].date_input("Date range", value=(opts.first, opts.last), min_value=opts.first,
                             max_value=opts.last, key=f"signals_dates:{opts.first}:{opts.last}")  # fmt: skip
    # keyed by the file's range: signals added past it (or another file) are in it, not cut at the old range
    start, end = _date_range(picked, opts.first, opts.last)
    df = loaders.filtered_signals(key, tuple(symbols), tuple(actions), tuple(strategies), start, end)
    total = loaders.signals(key).height
    m = st.columns(4)
    m[0].metric("Signals", display.count(total))
    m[1].metric("Matching", display.count(df.height))
    by_action = dict(df.group_by("action").len().iter_rows())
    m[2].metric("BUY", display.count(by_action.get("BUY", 0)))
    m[3].metric("SELL", display.count(by_action.get("SELL", 0)))
    if df.is_empty():
        st.info("No signal matches these filters.")
        return
    _paged_table(df, "signals", "signals")


def _date_range(picked: Any, first: date, last: date) -> tuple[date, date]:
    """date_input gives one date while a range is being picked: treat it as a one-day range."""
    if isinstance(picked, tuple | list):
        dates = [d for d in picked if d is not None]
        if len(dates) >= 2:
            return dates[0], dates[1]
        if dates:
            return dates[0], dates[0]
        return first, last
    return (picked, picked) if isinstance(picked, date) else (first, last)


def _paged_table(df: pl.DataFrame, key: str, what: str, column_config: dict[str, Any] | None = None) -> None:
    """Tables of any length, a page at a time: a browser never receives 100,000 rows at once."""
    pages = max(1, math.ceil(df.height / PAGE_ROWS))
    page = 1
    if pages > 1:
        page = int(st.number_input(f"Page (of {pages:,})", min_value=1, max_value=pages, value=1, step=1,
                                   key=f"{key}_page"))  # fmt: skip
    lo = (page - 1) * PAGE_ROWS
    shown = df.slice(lo, PAGE_ROWS)
    st.caption(f"{what} {lo + 1:,}-{lo + shown.height:,} of {df.height:,}")
    st.dataframe(shown, hide_index=True, key=f"{key}_table", column_config=column_config)


# -------------------------------------------------------------------------------------------------- models


def models_section(inputs: Inputs) -> None:
    dirs = loaders.model_dirs(inputs.models_dir)
    if not dirs:
        st.info(f"No model in `{inputs.models_dir}` (expected <name>/<version>/metadata.json): "
                f"{loaders.HINTS['Models directory']}.")  # fmt: skip
        return
    names = [d.name for d in dirs]
    name = st.selectbox("Model", names, key="model_name") if len(names) > 1 else names[0]
    model_dir = dirs[names.index(name or names[0])]
    state = loaders.model_state(model_dir)
    v = state.latest
    meta = v.metadata
    st.caption(f"Model **{v.name}**, latest version **{v.version}** of {len(state.versions)} "
               f"(created {display.when(v.created_at)}), from `{v.path}`")  # fmt: skip
    features = meta.get("features")
    facts = {
        "Model type": meta.get("model_type"),
        "Target": meta.get("target"),
        "Horizon": meta.get("horizon"),
        "Features": len(features) if isinstance(features, list) else None,
        "Trained on": f"{display.day(meta.get('train_start'))} → {display.day(meta.get('train_end'))}",
    }
    st.markdown(" · ".join(f"**{k}** {display.NA if v is None else v}" for k, v in facts.items()))
    metrics = models.flat_metrics(meta)
    if metrics:
        st.subheader("Training metrics")
        st.dataframe(pl.DataFrame({"metric": list(metrics), "value": [display.value(x) for x in metrics.values()]}),
                     hide_index=True, key="model_metrics")  # fmt: skip
    _importance(meta)
    _folds(meta, v.path / registry.METADATA)
    with st.expander("All metadata"):
        st.json(meta, expanded=False)
    st.subheader("Drift and retraining")
    with problems():
        _drift(model_dir)


def _importance(meta: dict[str, Any]) -> None:
    kinds = models.importance(meta)
    st.subheader("Feature importance")
    if not kinds:
        st.info("This model's metadata has no feature_importance.")
        return
    kind = st.radio("Importance", list(kinds), horizontal=True, key="model_importance") if len(kinds) > 1 else None
    kind = kind or next(iter(kinds))
    chart(charts.importance_bar(kinds[kind], kind), "model_importance_chart")


def _folds(meta: dict[str, Any], source: Path) -> None:
    folds = models.folds_frame(meta, source)
    st.subheader("Cross-validation folds")
    if folds.is_empty():
        st.info("This model's metadata has no per-fold results (cv.per_fold).")
        return
    cv = meta.get("cv") or {}
    parts = [f"{k} {cv[k]}" for k in ("scheme", "purge", "embargo") if k in cv]
    if parts:
        st.caption(", ".join(parts))
    st.dataframe(folds, hide_index=True, key="model_folds")
    chart(charts.folds_bars(folds), "model_folds_chart")


def _drift(model_dir: Path) -> None:
    path = model_dir / registry.DECISIONS
    decisions = loaders.decisions(file_key(path))
    if not decisions:
        st.info(f"No drift or retraining decision recorded yet (`{path}`): `marketboss retrain --if-needed` "
                "writes one.")  # fmt: skip
        return
    last = decisions[-1]
    reasons = "; ".join(str(r) for r in last.get("reasons") or []) or "no reason given"
    if last["decision"] == "retrain":
        st.warning(f"⚠️ Drift status: retraining triggered (checked {display.when(last['timestamp'])}): {reasons}")
    else:
        st.success(f"✅ Drift status: model kept (checked {display.when(last['timestamp'])}): {reasons}")
    retrains = [d for d in decisions if d["decision"] == "retrain"]
    c = st.columns(3)
    c[0].metric("Last check", display.minute(last["timestamp"]), help=display.when(last["timestamp"]))
    c[1].metric("Rolling IC", display.num(last.get("rolling_ic"), 4))
    c[2].metric("Last retraining decision", display.minute(retrains[-1]["timestamp"]) if retrains else "never")
    details = []
    if last.get("model_version"):
        details.append(f"checked version {last['model_version']}")
    if last.get("new_version"):
        details.append(f"retrained as {last['new_version']}")
    if isinstance(age := last.get("model_age_days"), int | float):
        details.append(f"model age {age:.1f} days")
    if isinstance(th := last.get("thresholds"), dict) and th:
        details.append("thresholds: " + ", ".join(f"{k} {v}" for k, v in th.items()))
    if details:
        st.caption(" · ".join(details))
    drift = models.drift_frame(last)
    if drift.height:
        st.dataframe(drift, hide_index=True, key="model_drift")
    history = pl.DataFrame(
        {
            "timestamp": [str(d["timestamp"]) for d in decisions[::-1][:50]],
            "decision": [str(d["decision"]) for d in decisions[::-1][:50]],
            "reasons": ["; ".join(map(str, d.get("reasons") or [])) for d in decisions[::-1][:50]],
            "rolling_ic": [models.number(d.get("rolling_ic")) for d in decisions[::-1][:50]],
        },
        schema={"timestamp": pl.String, "decision": pl.String, "reasons": pl.String, "rolling_ic": pl.Float64},
    )
    with st.expander(f"Decision history ({len(decisions)})"):
        st.dataframe(history, hide_index=True, key="model_decisions")


# ------------------------------------------------------------------------------------------------ backtest


@memoize(4)
def _equity_figure(
    bars_key: FileKey, signals_key: FileKey, cash: float, commission: float, slippage_bps: float
) -> go.Figure:
    eq = loaders.backtest(bars_key, signals_key, cash, commission, slippage_bps).equity
    bench = loaders.versus_buy_and_hold(bars_key, signals_key, cash, commission, slippage_bps).benchmark
    ts = charts.times(eq["timestamp"])
    return charts.lines(
        [charts.Line("equity", ts, eq["equity"].to_numpy()), charts.Line("buy & hold (equal weight)", ts, bench, 1.2),
         charts.Line("cash", ts, eq["cash"].to_numpy(), 1, "dot")],
        "Equity curve (marked to market every bar) and buy & hold of the same symbols", "$",
    )  # fmt: skip


@memoize(4)
def _rolling_figure(
    bars_key: FileKey, signals_key: FileKey, cash: float, commission: float, slippage_bps: float
) -> go.Figure:
    eq = loaders.backtest(bars_key, signals_key, cash, commission, slippage_bps).equity
    vs = loaders.versus_buy_and_hold(bars_key, signals_key, cash, commission, slippage_bps)
    ts = charts.times(eq["timestamp"])
    return charts.lines([charts.Line("strategy", ts, vs.rolling), charts.Line("buy & hold", ts, vs.rolling_benchmark)],
                        f"Rolling 1-year return ({vs.window:,} bars)", "%")  # fmt: skip


def backtest_section(inputs: Inputs) -> None:
    bk, sk = file_key(inputs.market_data), file_key(inputs.signals)
    args = (bk, sk, inputs.initial_cash, inputs.commission, inputs.slippage_bps)
    result = loaders.backtest(*args)
    m = result.metrics
    c = st.columns(5)
    c[0].metric("P&L", display.money(m["pnl"]))
    c[1].metric("Return %", display.pct(m["total_return_pct"]))
    c[2].metric("Sharpe", display.num(m["sharpe"]))
    c[3].metric("Max Drawdown", display.pct(m["max_drawdown_pct"]))
    c[4].metric("Win rate", display.pct(m["win_rate_pct"]))
    d = st.columns(6)
    d[0].metric("Final equity", display.money(m["final_equity"]))
    d[1].metric("Trades (closed)", display.count(m["n_trades"]))
    d[2].metric("Fills", display.count(m["n_fills"]))
    d[3].metric("Commissions", display.money(m["commissions"]))
    d[4].metric("Exposure", display.pct(m["exposure_pct"]))
    d[5].metric("Buy & hold", display.pct(m["buy_hold_return_pct"]))
    st.caption(
        f"`{inputs.signals}` on `{inputs.market_data}`: {display.money(inputs.initial_cash)} initial cash, commission "
        f"{inputs.commission:.4%} of notional, slippage {inputs.slippage_bps:g} bps, fills at the next bar's open. "
        "Buy & hold: the same cash split equally across the data's symbols, each held from its first close to its "
        "last, without costs."
    )
    if m["rejected_orders"] or m["unfilled_orders"]:  # their reasons as `backtest` lists them in rejections.jsonl
        why = result.rejections.group_by("reason").len().sort("len", "reason", descending=[True, False])
        st.caption("Orders not filled: " + "; ".join(f"{reason} ({n:,})" for reason, n in why.iter_rows()) + ".")
    chart(_equity_figure(*args), "backtest_chart")
    vs = loaders.versus_buy_and_hold(*args)
    with st.expander("Yearly and rolling returns vs buy & hold"):
        left, right = st.columns([1, 2])
        left.dataframe(_yearly_table(vs.yearly), hide_index=True, key="backtest_yearly")
        with right:
            chart(yearly_figure(vs.yearly), "backtest_yearly_chart")
        if result.equity.height >= vs.window:
            chart(_rolling_figure(*args), "backtest_rolling_chart")
        else:
            st.caption(f"Rolling 1-year return: {result.equity.height:,} bars, fewer than one year "
                       f"({vs.window:,}).")  # fmt: skip
    trades = result.trades
    with st.expander(f"Trade list ({trades.height:,} round trips, {m['n_trades']:,} closed)"):
        _paged_table(_trade_list(trades), "backtest_trades", "Round trips", TRADE_COLUMNS)
    with st.expander("All metrics"):
        st.dataframe(_metrics_table(m), hide_index=True, key="backtest_metrics")


def _yearly_table(yearly: pl.DataFrame) -> pl.DataFrame:
    return pl.DataFrame({
        "year": [str(y) for y in yearly["year"].to_list()],
        **{label: [display.pct(v) for v in yearly[col].to_list()] for col, label in (
            ("strategy_pct", "strategy %"), ("buy_hold_pct", "buy & hold %"), ("difference_pct", "difference %"))},
    })  # fmt: skip


#: The trade list's columns as the page shows them: numbers stay numbers, so a click on a heading sorts by value.
TRADE_COLUMNS: dict[str, Any] = {
    "P&L $": st.column_config.NumberColumn(format="%.2f"),
    "return %": st.column_config.NumberColumn(format="%.2f"),
    "days": st.column_config.NumberColumn(format="%.0f"),
}


def _trade_list(trades: pl.DataFrame) -> pl.DataFrame:
    """Round trips (backtest.engine's trades frame), in the order they close, with readable headings."""
    return trades.select(
        "symbol", "side", "qty", pl.col("entry_time").alias("entry"), "entry_price", pl.col("exit_time").alias("exit"),
        "exit_price", pl.col("pnl").alias("P&L $"), pl.col("return_pct").alias("return %"),
        pl.col("duration_days").alias("days"), pl.when(pl.col("closed")).then(pl.lit("closed"))
        .otherwise(pl.lit("open (marked at the last close)")).alias("state"),
    )  # fmt: skip


def _metrics_table(m: dict[str, Any]) -> pl.DataFrame:
    values = [display.metric(k, m.get(k)) for k, _ in METRICS]
    return pl.DataFrame({"metric": [label for _, label in METRICS], "value": values})


# ------------------------------------------------------------------------------------------- paper trading


@memoize(4)
def _paper_figure(key: FileKey) -> go.Figure:
    eq = loaders.paper_equity(key)
    ts = charts.times(eq["timestamp"])
    series = [charts.Line("portfolio value", ts, eq["portfolio_value"].cast(pl.Float64).to_numpy())]
    if eq["cash"].null_count() < eq.height:
        series.append(charts.Line("cash", ts, eq["cash"].cast(pl.Float64).to_numpy(), 1, "dot"))
    return charts.lines(series, "Paper account equity (live)", "$")


def paper_section(inputs: Inputs) -> None:
    ek, tk = file_key(inputs.paper_equity), file_key(inputs.paper_trades)
    equity = loaders.paper_equity(ek)
    trades: pl.DataFrame | None = None
    with problems("Trades executed"):
        trades = loaders.paper_trades(tk)
    stats = loaders.paper_stats(ek, tk if trades is not None else None)
    for key in (ek, tk):
        _torn_note(key)
    c = st.columns(3)
    c[0].metric("Portfolio value", display.money(equity["portfolio_value"][-1]))
    c[1].metric("P&L", display.money(stats["pnl"]))
    c[2].metric("Return %", display.pct(stats["total_return_pct"]))
    d = st.columns([1, 2])
    d[0].metric("Trades executed", display.count(stats["filled_orders"]) if trades is not None else display.NA)
    d[1].metric("Last update", display.when(stats["last_update"]))
    st.caption(f"`{inputs.paper_equity}`: {equity.height:,} snapshot(s) from {display.when(equity['timestamp'][0])}; "
               f"refreshes every {inputs.refresh_seconds:g} s (last checked "
               f"{datetime.now(UTC).strftime('%H:%M:%S')} UTC).")  # fmt: skip
    chart(_paper_figure(ek), "paper_chart")
    if trades is not None and trades.height:
        st.caption("Most recent trades")
        recent = trades.sort("timestamp", descending=True, nulls_last=True).head(20)
        shown = recent.select([c for c in ("timestamp", "symbol", "side", "qty", "filled_price", "status",
                                           "slippage_bps", "signal_id") if c in recent.columns])  # fmt: skip
        st.dataframe(shown.rename({"slippage_bps": f"slippage {VS_SIGNAL} (bps)"}, strict=False), hide_index=True,
                     key="paper_trades_table")  # fmt: skip


def _torn_note(key: FileKey) -> None:
    """A log's torn last line, left out (its figures are those before it), said as reconcile says it."""
    line = loaders.torn_line(key)
    if line is not None:
        st.warning(f"`{key.path}`:{line}: torn last line (a write cut short, e.g. by a crash) left out: the figures "
                   "are those before it; rerun paper/live on the same files to finish its signal")  # fmt: skip


# -------------------------------------------------------------------------------------- backtest vs paper


def _comparison_keys(inputs: Inputs) -> tuple[FileKey, FileKey, FileKey, FileKey]:
    return (file_key(inputs.market_data), file_key(inputs.signals), file_key(inputs.paper_trades),
            file_key(inputs.paper_equity))  # fmt: skip


@memoize(4)
def _comparison_figure(keys: tuple[FileKey, FileKey, FileKey, FileKey], commission: float, slip: float) -> go.Figure:
    cmp = loaders.comparison(*keys, commission, slip)
    bt = cmp.backtest.equity
    paper = loaders.paper_equity(keys[3])
    paper_value = paper["portfolio_value"].cast(pl.Float64).to_numpy()
    return charts.lines(
        [
            charts.Line("backtest equity", charts.times(bt["timestamp"]), bt["equity"].to_numpy()),
            charts.Line("paper portfolio value", charts.times(paper["timestamp"]), paper_value),
        ],
        "Backtest vs paper equity over the paper run's window",
        "$",
    )


def comparison_section(inputs: Inputs) -> None:
    keys = _comparison_keys(inputs)
    missing = [k.path for k in keys if not k.exists]
    if missing:
        st.info("Needs " + ", ".join(f"`{p}`" for p in missing) + " (not found): the comparison appears once "
                "paper trading has run on these signals.")  # fmt: skip
        return
    cmp = loaders.comparison(*keys, inputs.commission, inputs.slippage_bps)
    s = cmp.summary
    (st.success if s["status"].startswith("✅") else st.warning)(f"Status: {s['status']}")
    bt_col, paper_col, cmp_col = st.columns(3)
    with bt_col:
        st.subheader("Backtest Metrics")
        st.metric("Return %", display.pct(s["backtest_return_pct"]))
        st.metric("Sharpe", display.num(s["backtest_sharpe"]))
        st.metric("Max Drawdown", display.pct(s["backtest_max_drawdown_pct"]))
        st.metric("Win rate", display.pct(s["backtest_win_rate_pct"]))
        st.metric("Fills", display.count(s["backtest_fills"]))
    with paper_col:
        st.subheader("Paper Trading Metrics")
        st.metric("Return %", display.pct(s["paper_return_pct"]))
        st.metric("P&L $", display.money(cmp.paper["pnl"]))
        st.metric("Status", s["status"])
        st.metric("Sharpe", display.num(s["paper_sharpe"]))
        st.metric("Max Drawdown", display.pct(s["paper_max_drawdown_pct"]))
        st.metric("Win rate", display.pct(s["paper_win_rate_pct"]))
        st.metric("Fills", display.count(s["paper_fills"]))
    with cmp_col:
        st.subheader("Comparison Metrics")
        st.metric("Return difference", display.pct(s["return_difference_pct"]), help="paper minus backtest")
        st.metric(f"Avg slippage {VS_BACKTEST} (bps)", display.num(s["avg_slippage_bps"]))
        st.metric("Slippage impact", display.money(s["slippage_usd"]), help=f"paper fills {VS_BACKTEST}, in $")
        fills = f"{display.count(s['backtest_fills'])} / {display.count(s['paper_fills'])}"
        st.metric("Fills (backtest / paper)", fills)
        st.metric("Missed in paper", display.count(s["missed_in_paper"]))
        st.metric("Commissions (backtest / paper)",
                  f"{display.money(s['backtest_commissions'])} / {display.money(s['paper_commissions'])}")  # fmt: skip
        st.metric("Daily return correlation", display.num(s["daily_return_correlation"]))
    bt_m = cmp.backtest.metrics
    st.caption(
        f"The backtest is re-run from {display.when(bt_m['start'])} to {display.when(bt_m['end'])} on the signals the "
        f"paper run handled, from the paper account's first equity ({display.money(bt_m['initial_equity'])}) with the "
        "sidebar's costs: what remains is execution (slippage, missed and partial fills, commissions). The paper "
        "side is marked as the backtest is, its positions at each bar's close to the data's end (reconcile's): the "
        "Paper Trading section's P&L is the account's last snapshot, taken at its own time."
    )
    settings = loaders.comparison_settings(keys[2], inputs.commission, inputs.slippage_bps)
    journal = journal_path(Path(keys[2].path))
    st.caption(f"Settings as the paper runs recorded them in `{journal}`: {settings.recorded_text() or 'none'}."
               if settings.recorded else f"No run recorded in `{journal}` (the trades log's journal): the backtest "
               "takes the defaults (no exits, the data's bars, not long-only, no spread): `marketboss reconcile` with "
               "options says what the run traded with.")  # fmt: skip
    chart(_comparison_figure(keys, inputs.commission, inputs.slippage_bps), "comparison_chart")
    st.subheader(f"Per-signal slippage (paper {VS_BACKTEST})")
    joined = cmp.joined.sort("slippage_bps", descending=True, nulls_last=True)
    _paged_table(joined, "comparison", "signals")


# -------------------------------------------------------------------------------------- strategy comparison


def best_run(runs: list[Run], metric: str) -> Run | None:
    """The run with the highest value of `metric` (all RANK_BY metrics are higher-is-better)."""
    scored = [(float(v), r) for r in runs if isinstance(v := r.metrics.get(metric), int | float) and math.isfinite(v)]
    return max(scored, key=lambda t: t[0])[1] if scored else None


@memoize(8)
def _runs_figure(keys: tuple[tuple[FileKey, ...], ...], best: str | None) -> go.Figure:
    series = []
    for k in keys:
        r = loaders.run(k)
        if r.equity.is_empty():
            continue
        width = 3.0 if r.name == best else 1.3
        series.append(charts.Line(r.name + (" (best)" if r.name == best else ""), charts.times(r.equity["timestamp"]),
                                  r.equity["equity"].cast(pl.Float64).to_numpy(), width))  # fmt: skip
    return charts.lines(series, "Equity curves", "$")


def strategies_section(inputs: Inputs) -> None:
    all_keys = loaders.run_keys(inputs.runs_dir)
    if not all_keys:
        st.info(f"No backtest run in `{inputs.runs_dir}`: {loaders.HINTS['Runs directory']}.")
        return
    loaded: dict[str, tuple[Run, tuple[FileKey, ...]]] = {}
    for k in all_keys:
        with problems(f"Run `{Path(k[0].path).parent}`"):
            r = loaders.run(k)
            loaded[r.name] = (r, k)
    if not loaded:
        return
    names = list(loaded)
    c = st.columns([3, 1])
    # every run, the best picked of them all; keyed by the runs there, so that a run added (or another runs dir)
    # is in the comparison, not left out by the selection made before it came
    chosen = c[0].multiselect("Runs", names, default=names, key=f"runs_selected:{'|'.join(names)}")
    label = c[1].selectbox("Best by", [lbl for _, lbl in RANK_BY], key="runs_rank") or RANK_BY[0][1]
    metric = dict((lbl, k) for k, lbl in RANK_BY)[label]
    runs = [loaded[n][0] for n in chosen]
    if not runs:
        st.info("Pick at least one run.")
        return
    best = best_run(runs, metric)
    if best is not None:
        st.success(f"Best by {label}: **{best.name}** ({display.value(best.metrics.get(metric))})")
    chart(_runs_figure(tuple(loaded[n][1] for n in chosen), best.name if best else None), "strategies_chart")
    keys = [(k, lbl) for k, lbl in METRICS if k not in ("start", "end")]
    rows = compare(runs, keys)
    table = pd.DataFrame([[_cell(v) for v in row[1:]] for row in rows], index=[row[0] for row in rows],
                         columns=[r.name for r in runs])  # fmt: skip
    styled = table.style.format(display.value)
    if best is not None:
        styled = styled.set_properties(subset=[best.name], **BEST_STYLE)
    st.dataframe(styled, key="strategies_table")
    for r in runs:
        made = r.info.get("signals") or ", ".join(r.info.get("strategies") or []) or "?"
        st.caption(f"**{r.name}**: {made}" + (f" (created {display.when(r.info['created_at'])})"
                                               if r.info.get("created_at") else ""))  # fmt: skip


def _cell(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


# -------------------------------------------------------------------------------------------- live session

#: A running session whose status is older than this many bars (and STALE_MIN_SECONDS) may have died.
STALE_BARS = 3
STALE_MIN_SECONDS = 120.0


def live_section(inputs: Inputs) -> None:
    status = loaders.live_status(file_key(inputs.live_status))
    age = _age_seconds(status.updated_at)
    _live_state(status, age)
    c = st.columns(4)
    c[0].metric("State", status.state.replace("_", " "))
    c[1].metric("Last bar", display.stamp(status.last_bar), help=display.when(status.last_bar))
    c[2].metric("Bars seen", display.count(status.bars_seen))
    c[3].metric("Orders submitted", display.count(status.orders_submitted))
    st.caption(f"**{status.strategy}** on {', '.join(status.symbols)}, {status.timeframe} bars, broker {status.broker} "
               f"({status.mode}), pid {status.pid}, started {display.when(status.started_at)}. `{inputs.live_status}` "
               f"updated {_ago(age)} ({display.when(status.updated_at)}); re-read every {inputs.refresh_seconds:g} s "
               f"(last checked {datetime.now(UTC).strftime('%H:%M:%S')} UTC).")  # fmt: skip
    stream = status.stream
    st.subheader("Stream")
    d = st.columns(5)
    d[0].metric("Connected", "yes" if stream.connected else "no", help=f"last bar received "
                f"{display.when(stream.last_message_at)}")  # fmt: skip
    d[1].metric("Connections", display.count(stream.connections))
    d[2].metric("Reconnects", display.count(max(0, stream.connections - 1)))
    d[3].metric("Gaps back-filled", display.count(stream.gaps_backfilled))
    d[4].metric("Bars back-filled", display.count(stream.bars_backfilled))
    st.subheader("Account")
    a = st.columns(3)
    for col, (field, label) in zip(a, (("equity", "Equity"), ("cash", "Cash"), ("buying_power", "Buying power")),
                                   strict=True):  # fmt: skip
        col.metric(label, display.money(status.account.get(field)))
    st.subheader(f"Positions ({len(status.positions):,})")
    _records(status.positions, "live_positions", "No open position.")
    st.subheader(f"Open orders ({len(status.open_orders):,})")
    _records(status.open_orders, "live_orders", "No open order.")
    st.subheader("Today's signals")
    with problems():
        _todays_signals(Path(status.signals_log or inputs.live_signals), status.last_bar)
    st.subheader("Equity curve")
    with problems():
        chart(_paper_figure(file_key(Path(status.equity_log) if status.equity_log else inputs.paper_equity)),
              "live_chart")  # fmt: skip


def _live_state(status: LiveStatus, age: float | None) -> None:
    """One line on what the session is doing; a running one that stopped writing its status is flagged."""
    if status.state == "running":
        if age is not None and _stale(status.timeframe, age):
            st.warning(f"No update for {display.duration(age)}: is the process still running (pid {status.pid})?")
        else:
            st.success(f"Running: trading each closed {status.timeframe} bar.")
    elif status.state == "failed":
        st.error(f"Failed ({status.stopped_by or 'no reason recorded'}) at {display.when(status.updated_at)}.")
    elif status.state == "stopped":
        st.info(f"Stopped ({status.stopped_by or 'no reason recorded'}) at {display.when(status.updated_at)}.")
    elif status.state == "warming_up":
        st.info("Warming up: loading recent bars before the first streamed one.")
    else:
        why = f" ({status.stopped_by})" if status.stopped_by else ""
        st.info(f"{status.state.capitalize()}{why}: the session is closing.")


def _stale(timeframe: str, age: float) -> bool:
    """A running session that wrote no status for STALE_BARS of the market's bars (it writes one per bar: a night
    or a weekend closes none, where a day's worth of wall-clock time flagged every session each night) and at
    least STALE_MIN_SECONDS."""
    if age <= STALE_MIN_SECONDS:
        return False
    try:
        tf = Timeframe.parse(timeframe)
    except MarketBossError:
        return True
    now = datetime.now(UTC)
    since = now - timedelta(seconds=age)
    try:
        ny = ZoneInfo(NY)
        _, ends = bar_grid(since.astimezone(ny).date() - timedelta(days=1), now.astimezone(ny).date(), tf)
    except Exception:  # outside the exchange calendar's years: wall-clock bars
        return age > STALE_BARS * (86_400 if tf.is_daily else tf.minutes * 60)
    at = np.datetime64(since.replace(tzinfo=None), "us"), np.datetime64(now.replace(tzinfo=None), "us")
    return int(((ends > at[0]) & (ends <= at[1])).sum()) >= STALE_BARS


def _age_seconds(stamp: str | None) -> float | None:
    """Seconds since a wall-clock RFC 3339 time (None when it is not one)."""
    try:
        t = datetime.fromisoformat(stamp) if stamp else None
    except ValueError:
        return None
    if t is None:
        return None
    return (datetime.now(UTC) - (t if t.tzinfo else t.replace(tzinfo=UTC))).total_seconds()


def _ago(age: float | None) -> str:
    return display.NA if age is None else f"{display.duration(age)} ago"


def _records(rows: list[dict[str, Any]], key: str, none: str) -> None:
    if not rows:
        st.caption(none)
        return
    st.dataframe(pl.DataFrame(rows, infer_schema_length=None, strict=False), hide_index=True, key=f"{key}_table")


def _todays_signals(log: Path, last_bar: str | None) -> None:
    """The session's signals log's signals on the last bar's New York date, newest first (its own log, as its
    status names it: the sidebar's showed another session's, under this one's name)."""
    try:
        day = datetime.fromisoformat(last_bar).astimezone(ZoneInfo(NY)).date() if last_bar else None
    except ValueError:
        day = None
    if day is None:
        st.info("No bar seen yet: the day's signals appear from the first closed bar.")
        return
    df = loaders.signals_on(file_key(log), day)
    _torn_note(file_key(log))
    st.metric("Signals today", display.count(df.height), help=f"in `{log}`, dated {day} in New York (the last "
              "bar's day)")  # fmt: skip
    if df.height:
        _paged_table(df, "live_signals", "signals")
