"""A self-contained interactive HTML report of a run (plotly.js embedded: opens offline, no CDN).

The metrics table; equity and drawdown beside an equal-weight buy-and-hold benchmark of the same symbols;
yearly returns and a rolling one-year return of both; price with the run's fills marked (one symbol at a time,
chosen from a menu); monthly returns; the trade list (sortable by any column). Long series are thinned to a few
thousand points and the trade list to its first MAX_TRADES rows, so the file stays small. Every number comes
from backtest.metrics and reads as marketboss.display formats it.
"""

from __future__ import annotations

import html
from datetime import datetime
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from marketboss import display
from marketboss.backtest.metrics import METRICS, VersusBuyAndHold, calendar_returns
from marketboss.backtest.runs import Run
from marketboss.data.io import atomic_write_bytes
from marketboss.data.market import Market
from marketboss.display import metric

MAX_POINTS = 4000
MAX_MARKERS = 3000
MAX_TRADES = 5000
STRATEGY_COLOR, BENCHMARK_COLOR = "#1f77b4", "#7f8c8d"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _thin(n: int) -> np.ndarray:
    if n <= MAX_POINTS:
        return np.arange(n)
    idx = np.linspace(0, n - 1, MAX_POINTS).astype(np.int64)
    return np.unique(idx)


def _initial(run: Run) -> float:
    return float(run.metrics.get("initial_equity") or run.equity["equity"][0])


def _equity_figure(run: Run, benchmark: np.ndarray) -> go.Figure:
    eq = run.equity
    i = _thin(eq.height)
    ts = eq["timestamp"].to_numpy()[i]
    values = eq["equity"].to_numpy()
    initial = _initial(run)
    peak = np.maximum.accumulate(np.concatenate(([initial], values)))[1:]
    dd = (values / peak - 1.0) * 100.0
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.04,
                        subplot_titles=("Equity (marked to market every bar)", "Drawdown %"))
    fig.add_trace(go.Scatter(x=ts, y=values[i], name="equity", line={"width": 1.5, "color": STRATEGY_COLOR}),
                  row=1, col=1)  # fmt: skip
    fig.add_trace(go.Scatter(x=ts, y=benchmark[i], name="buy & hold (equal weight)",
                             line={"width": 1.2, "color": BENCHMARK_COLOR}), row=1, col=1)  # fmt: skip
    fig.add_trace(go.Scatter(x=ts, y=eq["cash"].to_numpy()[i], name="cash", line={"width": 1, "dash": "dot"}),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=ts, y=dd[i], name="drawdown %", fill="tozeroy", line={"width": 1, "color": "#c0392b"}),
                  row=2, col=1)
    fig.update_layout(height=560, margin={"t": 40, "b": 30, "l": 60, "r": 20}, hovermode="x unified")
    return fig


def yearly_figure(yearly: pl.DataFrame) -> go.Figure:
    """Grouped bars of metrics.yearly_returns: the strategy's and the buy and hold's return per year."""
    years = [str(y) for y in yearly["year"].to_list()]
    fig = go.Figure([
        go.Bar(x=years, y=yearly["strategy_pct"].to_list(), name="strategy", marker={"color": STRATEGY_COLOR}),
        go.Bar(x=years, y=yearly["buy_hold_pct"].to_list(), name="buy & hold", marker={"color": BENCHMARK_COLOR}),
    ])
    fig.update_layout(title="Yearly returns %", barmode="group", height=340, margin={"t": 50, "b": 30},
                      hovermode="x unified", yaxis_title="%")  # fmt: skip
    return fig


def _rolling_figure(run: Run, vs: VersusBuyAndHold) -> go.Figure:
    i = _thin(run.equity.height)
    ts = run.equity["timestamp"].to_numpy()[i]
    fig = go.Figure()
    for name, rolling, color in (("strategy", vs.rolling, STRATEGY_COLOR),
                                 ("buy & hold", vs.rolling_benchmark, BENCHMARK_COLOR)):  # fmt: skip
        fig.add_trace(go.Scatter(x=ts, y=rolling[i], name=name, line={"width": 1.3, "color": color}))
    fig.update_layout(title=f"Rolling 1-year return % ({vs.window:,} bars)", height=340, hovermode="x unified",
                      margin={"t": 50, "b": 30, "l": 60, "r": 20}, yaxis_title="%")  # fmt: skip
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


def _monthly_figure(run: Run) -> go.Figure:
    m = calendar_returns(run.equity["timestamp"], {"return_pct": run.equity["equity"].to_numpy()}, _initial(run),
                         "month")
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


def _yearly_table(yearly: pl.DataFrame) -> str:
    rows = "".join(
        f"<tr><td>{y}</td><td>{display.pct(a)}</td><td>{display.pct(b)}</td><td>{display.pct(d)}</td></tr>"
        for y, a, b, d in yearly.select("year", "strategy_pct", "buy_hold_pct", "difference_pct").iter_rows()
    )
    head = "<tr><th>Year</th><th>Strategy %</th><th>Buy &amp; hold %</th><th>Difference %</th></tr>"
    return f"<table class='metrics yearly'>{head}{rows}</table>"


#: The trade list's columns: (heading, trades column, how a value reads, sorted as a number).
_TRADE_COLUMNS = (
    ("Symbol", "symbol", display.value, False),
    ("Side", "side", display.value, False),
    ("Qty", "qty", display.value, True),
    ("Entry", "entry_time", display.stamp, True),
    ("Entry price", "entry_price", display.value, True),
    ("Exit", "exit_time", display.stamp, True),
    ("Exit price", "exit_price", display.value, True),
    ("P&L $", "pnl", display.money, True),
    ("Return %", "return_pct", display.pct, True),
    ("Days", "duration_days", lambda v: display.metric("duration_days", v), True),
)


def _sort_key(v: object) -> str:
    """What a cell sorts by: a number (epoch seconds for times), or its text."""
    if isinstance(v, datetime):
        return str(v.timestamp())
    return html.escape(str(v), quote=True)


def _trade_table(run: Run) -> str:
    trades = run.trades
    if not trades.height:
        return "<p>No round trips: the run made no trades.</p>"
    shown = trades.head(MAX_TRADES)
    head = "".join(f"<th{' data-num' if num else ''}>{html.escape(h)}</th>" for h, _, _, num in _TRADE_COLUMNS)
    body = []
    for row in shown.iter_rows(named=True):
        cells = "".join(
            f"<td data-v='{_sort_key(row[c])}'>{html.escape(fmt(row[c]))}</td>" for _, c, fmt, _ in _TRADE_COLUMNS
        )
        state = "closed" if row["closed"] else "open, marked at the last close"
        body.append(f"<tr>{cells}<td data-v='{state}'>{state}</td></tr>")
    closed = int(trades["closed"].sum())
    note = (f"{trades.height:,} round trips ({closed:,} closed), FIFO per symbol, in the order they close; click a "
            "heading to sort.")  # fmt: skip
    if trades.height > len(body):
        note += (f" Showing the first {len(body):,}; all are in {html.escape(str(run.path / 'trades.jsonl'))}.")
    return (f"<h2>Trades</h2><p>{note}</p><table class='metrics sortable'><thead><tr>{head}"
            f"<th>State</th></tr></thead><tbody>{''.join(body)}</tbody></table>")  # fmt: skip


#: Click a heading to sort the table by that column; again to reverse. Numbers by value, the rest as text.
_SORT_SCRIPT = """<script>
document.querySelectorAll("table.sortable th").forEach((th, col) => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0], num = th.hasAttribute("data-num");
  const up = th.dataset.dir !== "up";
  th.closest("tr").querySelectorAll("th").forEach(h => delete h.dataset.dir);
  th.dataset.dir = up ? "up" : "down";
  const key = r => r.cells[col].dataset.v;
  const rows = Array.from(body.rows).sort((a, b) => {
    const c = num ? parseFloat(key(a)) - parseFloat(key(b)) : key(a).localeCompare(key(b));
    return up ? c : -c;
  });
  rows.forEach(r => body.appendChild(r));
}));
</script>"""


def render_report(run: Run, market: Market, title: str) -> str:
    vs = VersusBuyAndHold.of(run.equity, market, _initial(run))
    figures = [_equity_figure(run, vs.benchmark), yearly_figure(vs.yearly), _rolling_figure(run, vs),
               _price_figure(run, market), _monthly_figure(run)]  # fmt: skip
    parts = [
        fig.to_html(full_html=False, include_plotlyjs=(i == 0), config={"displaylogo": False})
        for i, fig in enumerate(figures)
    ]
    info = html.escape(", ".join(f"{k}={v}" for k, v in run.info.items() if not isinstance(v, dict)))
    bars = run.equity.height
    rolling_note = (
        f"<p>Return over the previous {vs.window:,} bars (one year of this data's bars) at every bar.</p>"
        if bars >= vs.window
        else f"<p>Rolling 1-year return: the run has {bars:,} bars, fewer than one year ({vs.window:,}).</p>"
    )
    benchmark_note = (
        f"<p>Buy &amp; hold: the starting cash split equally across the data's {market.n_symbols:,} symbol(s), each "
        "bought at its first close and held to its last; no costs.</p>"
    )
    style = (
        "body{font-family:system-ui,sans-serif;margin:24px;color:#222}"
        "table.metrics{border-collapse:collapse;font-size:14px}"
        "table.metrics td,table.metrics th{padding:3px 12px;border-bottom:1px solid #eee}"
        "table.metrics td:not(:first-child){text-align:right;font-variant-numeric:tabular-nums}"
        "table.sortable th{cursor:pointer;text-align:right;position:sticky;top:0;background:#fafafa}"
        "table.sortable th[data-dir=up]::after{content:' \\25B2'}"
        "table.sortable th[data-dir=down]::after{content:' \\25BC'}"
        "table.sortable td:nth-child(2),table.sortable td:last-child{text-align:left}"
        ".grid{display:grid;grid-template-columns:minmax(280px,360px) 1fr;gap:24px;align-items:start}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1><p>{info}</p>"
        f"<div class='grid'><div>{_metrics_table(run)}</div><div>{parts[0]}{benchmark_note}</div></div>"
        f"<h2>Yearly returns</h2><div class='grid'><div>{_yearly_table(vs.yearly)}</div><div>{parts[1]}</div></div>"
        f"<h2>Rolling returns</h2>{rolling_note}{parts[2]}"
        f"{parts[3]}{parts[4]}{_trade_table(run)}{_SORT_SCRIPT}</body></html>"
    )


def write_report(run: Run, market: Market, path: str | Path, title: str | None = None) -> Path:
    p = Path(path)
    atomic_write_bytes(p, render_report(run, market, title or f"Backtest {run.name}").encode())
    return p
