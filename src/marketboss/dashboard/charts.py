"""The dashboard's plotly figures. Every series is thinned by min/max per bucket (downsample.py) before it
reaches a figure, so a million-bar file still makes a chart of a few thousand points."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from marketboss.dashboard.downsample import MAX_POINTS, minmax_indices

HEIGHT = 380
_LAYOUT = {
    "margin": {"t": 50, "b": 30, "l": 60, "r": 20},
    "hovermode": "x unified",
    "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1},
}


def times(ts: pl.Series) -> np.ndarray:
    """UTC wall times as numpy datetime64 (plotly shows them as given; axes are labelled UTC)."""
    s = ts.dt.replace_time_zone(None) if isinstance(ts.dtype, pl.Datetime) and ts.dtype.time_zone else ts
    return s.to_numpy()


@dataclass(frozen=True)
class Line:
    name: str
    x: np.ndarray
    y: np.ndarray
    width: float = 1.5
    dash: str | None = None


def lines(series: Sequence[Line], title: str, y_title: str, max_points: int = MAX_POINTS) -> go.Figure:
    fig = go.Figure()
    for s in series:
        i = minmax_indices(s.y, max_points)
        fig.add_trace(go.Scatter(x=s.x[i], y=s.y[i], name=s.name, mode="lines",
                                 line={"width": s.width, "dash": s.dash}))  # fmt: skip
    fig.update_layout(title=title, height=HEIGHT, yaxis_title=y_title, xaxis_title="time (UTC)", **_LAYOUT)
    return fig


def price_volume(symbol: str, ts: np.ndarray, close: np.ndarray, volume: np.ndarray) -> go.Figure:
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.04)
    i = minmax_indices(close)
    fig.add_trace(go.Scatter(x=ts[i], y=close[i], name=f"{symbol} close", mode="lines", line={"width": 1.3}),
                  row=1, col=1)  # fmt: skip
    j = minmax_indices(volume)
    fig.add_trace(go.Bar(x=ts[j], y=volume[j], name="volume", marker={"color": "#7f8c8d"}), row=2, col=1)
    thinned = "" if len(i) == len(close) else f" (showing {len(i):,} of {len(close):,} bars, extremes kept)"
    fig.update_layout(title=f"{symbol}: close and volume{thinned}", height=HEIGHT + 80, showlegend=False,
                      bargap=0, **{k: v for k, v in _LAYOUT.items() if k != "legend"})  # fmt: skip
    fig.update_yaxes(title_text="price", row=1, col=1)
    fig.update_yaxes(title_text="volume", row=2, col=1)
    return fig


def importance_bar(values: dict[str, float], kind: str, top: int = 30) -> go.Figure:
    ranked = sorted(values.items(), key=lambda kv: abs(kv[1]), reverse=True)[:top]
    ranked.reverse()  # largest at the top of a horizontal bar chart
    fig = go.Figure(go.Bar(x=[v for _, v in ranked], y=[k for k, _ in ranked], orientation="h",
                           marker={"color": "#2e86c1"}))  # fmt: skip
    fig.update_layout(title=f"Feature importance ({kind})", height=max(260, 60 + 22 * len(ranked)),
                      margin={"t": 40, "b": 30, "l": 140, "r": 20}, xaxis_title=kind)  # fmt: skip
    return fig


def folds_bars(folds: pl.DataFrame) -> go.Figure:
    """MSE and IC (and rank IC when present) per cross-validation fold."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("MSE per fold", "IC per fold"))
    x = [str(f) for f in folds["fold"].to_list()]
    fig.add_trace(go.Bar(x=x, y=folds["mse"].to_list(), name="MSE", marker={"color": "#884ea0"}), row=1, col=1)
    fig.add_trace(go.Bar(x=x, y=folds["ic"].to_list(), name="IC", marker={"color": "#229954"}), row=1, col=2)
    if folds["rank_ic"].null_count() < folds.height:
        fig.add_trace(go.Bar(x=x, y=folds["rank_ic"].to_list(), name="rank IC", marker={"color": "#82e0aa"}),
                      row=1, col=2)  # fmt: skip
    fig.update_xaxes(title_text="fold")
    fig.update_layout(height=320, margin={"t": 50, "b": 40, "l": 60, "r": 20}, barmode="group",
                      legend={"orientation": "h", "y": -0.25})  # fmt: skip
    return fig
