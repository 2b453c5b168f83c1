"""Self-contained HTML reports (plotly.js embedded: they open offline) of a sweep and of a walk-forward run."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import polars as pl

from marketboss.data.io import atomic_write_bytes
from marketboss.display import value
from marketboss.research.selection import SELECTABLE
from marketboss.research.sweep import SweepResult
from marketboss.research.walkforward import WalkForwardResult

STYLE = (
    "body{font-family:system-ui,sans-serif;margin:24px;color:#222}"
    "table{border-collapse:collapse;font-size:13px;margin:12px 0}"
    "td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:right;font-variant-numeric:tabular-nums}"
    "th{background:#f6f6f6}td:first-child,th:first-child{text-align:left}"
)


def _table(df: pl.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in df.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(value(v))}</td>" for v in row) + "</tr>" for row in df.iter_rows()
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _page(title: str, info: str, parts: list[str]) -> str:
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1><p>{html.escape(info)}</p>"
        + "".join(parts) + "</body></html>"
    )


def _html(figures: list[go.Figure]) -> list[str]:
    return [f.to_html(full_html=False, include_plotlyjs=(i == 0), config={"displaylogo": False})
            for i, f in enumerate(figures)]


def heatmap_figure(result: SweepResult, metric: str) -> go.Figure:
    """The metric over the first two swept parameters; with more, each cell shows the best over the rest."""
    s = result.summary
    swept = [k for k in result.combos.keys if s[k].n_unique() > 1]
    higher = SELECTABLE.get(metric, True)
    if len(swept) < 2:
        x = swept[0] if swept else "combo"
        fig = go.Figure(go.Bar(x=[str(v) for v in s[x].to_list()], y=s[metric].to_list()))
        fig.update_layout(title=f"{metric} by {x}", xaxis_title=x, yaxis_title=metric, height=420)
        return fig
    x, y = swept[0], swept[1]
    agg = pl.col(metric).max() if higher else pl.col(metric).min()
    cells = s.filter(pl.col(metric).is_not_nan()).group_by(x, y).agg(agg)
    xs, ys = sorted(s[x].unique().to_list()), sorted(s[y].unique().to_list())
    z = np.full((len(ys), len(xs)), np.nan)
    for xv, yv, v in cells.select(x, y, metric).iter_rows():
        z[ys.index(yv), xs.index(xv)] = v
    rest = swept[2:]
    note = f" (best over {', '.join(rest)})" if rest else ""
    fig = go.Figure(go.Heatmap(
        z=z, x=[str(v) for v in xs], y=[str(v) for v in ys], colorscale="RdYlGn" if higher else "RdYlGn_r",
        colorbar={"title": metric}, hovertemplate=f"{x}=%{{x}} {y}=%{{y}}: %{{z:.4f}}<extra></extra>",
    ))
    fig.update_layout(title=f"{metric} of each combination's account, by {x} and {y}{note}", xaxis_title=x,
                      yaxis_title=y, height=560)
    return fig


def _best_by_symbol(result: SweepResult, metric: str, combo: int) -> go.Figure:
    rows = result.rows.filter(pl.col("combo") == combo)
    col = metric if metric in rows.columns else "pnl"
    fig = go.Figure(go.Bar(x=rows["symbol"].to_list(), y=rows[col].to_list()))
    fig.update_layout(title=f"{col} per symbol of the best combination (its part of the one account)", height=380)
    return fig


def write_sweep_report(result: SweepResult, metric: str, path: str | Path, title: str, info: str,
                       top: int = 20) -> Path:
    best = result.top(metric, top)
    figures = [heatmap_figure(result, metric)]
    if best.height:
        figures.append(_best_by_symbol(result, metric, int(best["combo"][0])))
    shown = best.select("combo", *result.combos.keys, "sharpe", "total_return_pct", "cagr_pct",
                        "max_drawdown_pct", "calmar", "n_trades", "symbols_profitable_pct",
                        *([metric] if metric not in ("sharpe", "total_return_pct", "cagr_pct", "max_drawdown_pct",
                                                     "calmar") else []))
    parts = _html(figures)
    page = _page(title, info, [parts[0], f"<h2>Best {best.height} by {html.escape(metric)}</h2>", _table(shown),
                               *parts[1:]])
    p = Path(path)
    atomic_write_bytes(p, page.encode())
    return p


def write_walkforward_report(result: WalkForwardResult, path: str | Path, title: str, info: str) -> Path:
    f = result.folds
    m = result.metric
    bars = go.Figure([
        go.Bar(name="in-sample", x=f["fold"].to_list(), y=f[f"is_{m}"].to_list()),
        go.Bar(name="out-of-sample", x=f["fold"].to_list(), y=f[f"oos_{m}"].to_list()),
    ])
    bars.update_layout(barmode="group", title=f"{m} per fold: in-sample (chosen) against out-of-sample",
                       xaxis_title="fold", height=420)
    eq = result.equity
    line = go.Figure(go.Scatter(x=eq["timestamp"].to_list(), y=eq["equity"].to_list(), name="out-of-sample"))
    line.update_layout(title="Stitched out-of-sample equity", height=420)
    summary = pl.DataFrame({"figure": list(result.summary), "value": [value(v) for v in result.summary.values()]})
    parts = _html([bars, line])
    page = _page(title, info, [parts[0], parts[1], "<h2>Folds</h2>", _table(f), "<h2>Summary</h2>",
                               _table(summary)])
    p = Path(path)
    atomic_write_bytes(p, page.encode())
    return p
