"""MarketBoss dashboard: `streamlit run dashboard/app.py` from the repository root (the guide's command).

The sidebar is the guide's (market data, signals, models dir, paper equity log, initial cash) plus the paper
trades log, the runs directory, the live session's status file and signals log, and the backtest's costs;
defaults come from the settings (the guide's paths, overridable with MARKETBOSS_* variables or .env). The sections
live in marketboss.dashboard.sections.
"""

from __future__ import annotations

import streamlit as st

from marketboss.config import get_settings
from marketboss.dashboard.sections import SECTIONS, Inputs, render_all


def sidebar() -> Inputs:
    s = get_settings()
    with st.sidebar:
        st.header("Configuration")
        market_data = st.text_input("Market data JSONL", str(s.market_data), key="market_data")
        signals = st.text_input("Signals JSONL", str(s.signals), key="signals")
        models_dir = st.text_input("Models dir", str(s.models_dir), key="models_dir")
        paper_equity = st.text_input("Paper trading equity log", str(s.paper_equity), key="paper_equity")
        initial_cash = st.number_input("Initial cash", min_value=1.0, value=float(s.initial_cash), step=1000.0,
                                       format="%.2f", key="initial_cash")  # fmt: skip
        paper_trades = st.text_input("Paper trades log", str(s.paper_trades), key="paper_trades")
        runs_dir = st.text_input("Runs dir", str(s.runs_dir), key="runs_dir")
        live_status = st.text_input("Live status file", str(s.live_status), key="live_status")
        live_signals = st.text_input("Live signals log", str(s.live_signals), key="live_signals")
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


st.set_page_config(page_title="MarketBoss", page_icon="📈", layout="wide")
st.title("MarketBoss")
st.caption("Market data, signals, models, backtests, paper trading and the live session, read from the files in "
           "the sidebar (the page follows their changes; it never writes them).")  # fmt: skip
render_all(sidebar())
