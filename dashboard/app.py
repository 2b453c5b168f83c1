"""MarketBoss dashboard: `streamlit run dashboard/app.py` from the repository root (the guide's command).

The sidebar is the guide's (market data, signals, models dir, paper equity log, initial cash) plus the paper
trades log, the runs directory, the live session's status file and signals log, and the backtest's costs;
defaults come from the settings (the guide's paths, overridable with MARKETBOSS_* variables or .env). The sections
live in marketboss.dashboard.sections.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import streamlit as st

from marketboss.config import get_settings
from marketboss.dashboard.sections import SECTIONS, Inputs, render_all
from marketboss.errors import MarketBossError


def path_input(label: str, default: Path, key: str) -> str:
    """A path the sidebar reads: `~` expanded and the spaces around it dropped (before, the existence check
    expanded `~` and the readers did not: a valid file was "malformed input")."""
    return str(Path(st.text_input(label, str(default), key=key).strip()).expanduser())


def sidebar() -> Inputs:
    try:
        s = get_settings()
    except MarketBossError as exc:  # a bad MARKETBOSS_* value: its one line, not pydantic's traceback
        st.error(str(exc))
        st.stop()
    with st.sidebar:
        st.header("Configuration")
        market_data = path_input("Market data JSONL", s.market_data, "market_data")
        signals = path_input("Signals JSONL", s.signals, "signals")
        models_dir = path_input("Models dir", s.models_dir, "models_dir")
        paper_equity = path_input("Paper trading equity log", s.paper_equity, "paper_equity")
        initial_cash = st.number_input("Initial cash", min_value=0.01, value=float(s.initial_cash), step=1000.0,
                                       format="%.2f", key="initial_cash")  # fmt: skip
        paper_trades = path_input("Paper trades log", s.paper_trades, "paper_trades")
        runs_dir = path_input("Runs dir", s.runs_dir, "runs_dir")
        live_status = path_input("Live status file", s.live_status, "live_status")
        live_signals = path_input("Live signals log", s.live_signals, "live_signals")
        st.subheader("Backtest costs")
        commission = st.number_input("Commission (fraction of notional)", min_value=0.0, max_value=0.0999,
                                     value=0.0, step=0.0005, format="%.4f", key="commission")  # fmt: skip
        slippage = st.number_input("Slippage (bps)", min_value=0.0, max_value=1000.0, value=0.0, step=1.0,
                                   key="slippage_bps")  # fmt: skip
        refresh = st.number_input("Paper refresh (seconds)", min_value=1, max_value=3600, value=5, step=1,
                                  key="refresh_seconds")  # fmt: skip
        st.divider()
        st.markdown("\n".join(f"- [{title}](#{key})" for key, title in SECTIONS))
    return Inputs(
        market_data=market_data,
        signals=signals,
        models_dir=models_dir,
        paper_equity=paper_equity,
        initial_cash=float(initial_cash),
        paper_trades=paper_trades,
        runs_dir=runs_dir,
        commission=float(commission),
        slippage_bps=float(slippage),
        refresh_seconds=float(refresh),
        live_status=live_status,
        live_signals=live_signals,
    )


def loopback_only() -> None:
    """The page reads this machine's files by path: for this machine only, unless an address was given on purpose
    (`--server.address 0.0.0.0`; the repository's .streamlit/config.toml gives 127.0.0.1). Started elsewhere
    without one, streamlit listens on every interface: a client of another machine gets this, not the files."""
    if st.get_option("server.address"):
        return
    client = st.context.ip_address  # None for a loopback client (a text address else; AppTest has none)
    if isinstance(client, str) and not ipaddress.ip_address(client).is_loopback:
        st.error("This dashboard serves this machine only (it reads files by path). To share it on purpose, start it "
                 "with --server.address 0.0.0.0.")  # fmt: skip
        st.stop()


st.set_page_config(page_title="MarketBoss", page_icon="📈", layout="wide")
loopback_only()
st.title("MarketBoss")
st.caption("Market data, signals, models, backtests, paper trading and the live session, read from the files in "
           "the sidebar (the page follows their changes; it never writes them).")  # fmt: skip
render_all(sidebar())
