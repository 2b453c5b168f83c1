"""A self-contained interactive HTML report of a run (plotly.js embedded: opens offline, no CDN).

Equity and drawdown, price with the run's fills marked (one symbol at a time, chosen from a menu), monthly
returns, and the metrics table. Long series are thinned to a few thousand points so the file stays small.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from marketboss.backtest.metrics import METRICS
from marketboss.backtest.runs import Run
from marketboss.data.io import atomic_write_bytes
from marketboss.data.market import Market
from marketboss.display import metric

MAX_POINTS = 4000
MAX_MARKERS = 3000
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _thin(n: int) -> np.ndarray:
    if n <= MAX_POINTS:
        return np.arange(n)
    idx = np.linspace(0, n - 1, MAX_POINTS).astype(np.int64)
    return np.unique(idx)


def _equity_figure(run: Run) -> go.Figure:
    eq = run.equity
    i = _thin(eq.height)
    ts = eq["timestamp"].to_numpy()[i]
    values = eq["equity"].to_numpy()
    initial = float(run.metrics.get("initial_equity") or values[0])
    peak = np.maximum.accumulate(np.concatenate(([initial], values)))[1:]
    dd = (values / peak - 1.0) * 100.0
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.04,
                        subplot_titles=("Equity (marked to market every bar)", "Drawdown %"))
    fig.add_trace(go.Scatter(x=ts, y=values[i], name="equity", line={"width": 1.5}), row=1, col=1)
    fig.add_trace(go.Scatter(x=ts, y=eq["cash"].to_numpy()[i], name="cash", line={"width": 1, "dash": "dot"}),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=ts, y=dd[i], name="drawdown %", fill="tozeroy", line={"width": 1, "color": "#c0392b"}),
                  row=2, col=1)
    fig.update_layout(height=560, margin={"t": 40, "b": 30, "l": 60, "r": 20}, hovermode="x unified")
    return fig


def _price_figure(run: Run, market: Market) -> go.Figure:
    fig = go.Figure()
    fills = run.fills
    traded = set(fills["symbol"].unique().to_list()) if fills.height else set()
    symbols = [s for s in market.symbols if s in traded] or list(market.symbols[:1])
    buttons = []
    n_traces_per = 3
    for k, sym in enumerate(symbols):
        b = market.symbol_bars(market.symbol_index(sym))
        i = _thin(len(b))
        ts = market.timestamps().gather(b.rows[i]).to_numpy()
        visible = k == 0
        fig.add_trace(go.Scatter(x=ts, y=b.close[i], name=f"{sym} close", visible=visible, line={"width": 1}))
        f = fills.filter(pl.col("symbol") == sym) if fills.height else fills
        for side, color, marker in (("BUY", "#27ae60", "triangle-up"), ("SELL", "#c0392b", "triangle-down")):
            fs = f.filter(pl.col("side") == side).tail(MAX_MARKERS) if f.height else f
            fig.add_trace(go.Scatter(
                x=fs["timestamp"].to_numpy() if fs.height else [], y=fs["price"].to_numpy() if fs.height else [],
                mode="markers", name=f"{side.lower()} fills", visible=visible,
                marker={"symbol": marker, "size": 9, "color": color},
                text=fs["qty"].cast(pl.String).to_list() if fs.height else [],
                hovertemplate=f"{side} %{{text}} @ %{{y:.4f}}<extra></extra>",
            ))
        mask = [False] * (len(symbols) * n_traces_per)
        mask[k * n_traces_per : (k + 1) * n_traces_per] = [True] * n_traces_per
        buttons.append(
            {"label": sym, "method": "update", "args": [{"visible": mask}, {"title": f"{sym}: fills on price"}]}
        )
    fig.update_layout(
        title=f"{symbols[0]}: fills on price", height=460, margin={"t": 60, "b": 30, "l": 60, "r": 20},
        updatemenus=[{"buttons": buttons, "x": 1.0, "xanchor": "right", "y": 1.15, "yanchor": "top"}]
        if len(buttons) > 1 else [],
    )
    return fig


def monthly_returns(run: Run) -> pl.DataFrame:
    """Return % per calendar month (UTC) of the equity curve: year, month, return_pct."""
    eq = run.equity.select("timestamp", "equity")
    initial = float(run.metrics.get("initial_equity") or eq["equity"][0])
    month_end = (
        eq.group_by(pl.col("timestamp").dt.year().alias("year"), pl.col("timestamp").dt.month().alias("month"))
        .agg(pl.col("equity").last())
        .sort("year", "month")
    )
    prev = month_end["equity"].shift(1).fill_null(initial)
    return month_end.with_columns(((pl.col("equity") / prev - 1.0) * 100.0).alias("return_pct"))


def _monthly_figure(run: Run) -> go.Figure:
    m = monthly_returns(run)
    years = sorted(set(m["year"].to_list()))
    z = np.full((len(years), 12), np.nan)
    for y, mo, r in m.select("year", "month", "return_pct").iter_rows():
        z[years.index(y), mo - 1] = r
    text = [[("" if np.isnan(v) else f"{v:.2f}") for v in row] for row in z]
    fig = go.Figure(go.Heatmap(z=z, x=list(MONTHS), y=[str(y) for y in years], colorscale="RdYlGn", zmid=0,
                               text=text, texttemplate="%{text}", hovertemplate="%{y} %{x}: %{z:.2f}%<extra></extra>"))
    fig.update_layout(title="Monthly returns %", height=120 + 40 * len(years), margin={"t": 50, "b": 30},
                      yaxis={"autorange": "reversed"})
    return fig



def _metrics_table(run: Run) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(label)}</td><td>{html.escape(metric(key, run.metrics.get(key)))}</td></tr>"
        for key, label in METRICS
    )
    return f"<table class='metrics'>{rows}</table>"


def render_report(run: Run, market: Market, title: str) -> str:
    figures = [_equity_figure(run), _price_figure(run, market), _monthly_figure(run)]
    parts = [
        fig.to_html(full_html=False, include_plotlyjs=(i == 0), config={"displaylogo": False})
        for i, fig in enumerate(figures)
    ]
    info = html.escape(", ".join(f"{k}={v}" for k, v in run.info.items() if not isinstance(v, dict)))
    style = (
        "body{font-family:system-ui,sans-serif;margin:24px;color:#222}"
        "table.metrics{border-collapse:collapse;font-size:14px}"
        "table.metrics td{padding:3px 12px;border-bottom:1px solid #eee}"
        "table.metrics td:last-child{text-align:right;font-variant-numeric:tabular-nums}"
        ".grid{display:grid;grid-template-columns:minmax(280px,360px) 1fr;gap:24px;align-items:start}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1><p>{info}</p>"
        f"<div class='grid'><div>{_metrics_table(run)}</div><div>{parts[0]}</div></div>"
        f"{parts[1]}{parts[2]}</body></html>"
    )


def write_report(run: Run, market: Market, path: str | Path, title: str | None = None) -> Path:
    p = Path(path)
    atomic_write_bytes(p, render_report(run, market, title or f"Backtest {run.name}").encode())
    return p
