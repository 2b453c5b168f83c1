"""The dashboard page run headless (streamlit's AppTest) on demo files, with helpers to read what it shows."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Block

from marketboss.config import get_settings
from tests.dashboard.demo import Demo, build_demo

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
ENV = {
    "market_data": "MARKETBOSS_MARKET_DATA",
    "signals": "MARKETBOSS_SIGNALS",
    "models_dir": "MARKETBOSS_MODELS_DIR",
    "paper_equity": "MARKETBOSS_PAPER_EQUITY",
    "paper_trades": "MARKETBOSS_PAPER_TRADES",
    "runs_dir": "MARKETBOSS_RUNS_DIR",
    "live_status": "MARKETBOSS_LIVE_STATUS",
    "live_signals": "MARKETBOSS_LIVE_SIGNALS",
}

Dash = Callable[..., AppTest]


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    return build_demo(tmp_path_factory.mktemp("demo"))


@pytest.fixture
def dash(monkeypatch: pytest.MonkeyPatch, demo: Demo) -> Dash:
    """Run the page with the demo's files as the sidebar's defaults, some replaced (market_data=path, ...)."""

    def run(**files: str | Path) -> AppTest:
        env = demo.env()
        env.update({ENV[name]: str(path) for name, path in files.items()})
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        get_settings.cache_clear()
        at = AppTest.from_file(str(APP), default_timeout=60).run()
        assert_clean(at)
        return at

    return run


def assert_clean(at: AppTest) -> None:
    """No exception reached the page (st.exception elements are what a traceback would render as)."""
    assert not at.exception, [e.value for e in at.exception]


def section(at: AppTest, key: str) -> Block:
    block = at.get_by_key(f"section-{key}")
    assert isinstance(block, Block)
    return block


def metrics(block: Block) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in block.metric:
        assert m.label not in out, f"metric label {m.label!r} is ambiguous in this block"
        out[m.label] = m.value
    return out


def table(block: Block, column: str) -> pd.DataFrame:
    """The first table in the block with this column (display tables carry no key in the element tree)."""
    for df in block.dataframe:
        if column in df.value.columns:
            return df.value
    raise KeyError(column)


def messages(block: Block, kind: str) -> list[str]:
    return [str(e.value) for e in getattr(block, kind)]


def charts(block: Block) -> list[dict[str, Any]]:
    return [json.loads(e.proto.spec) for e in block.get("plotly_chart")]


def array(v: Any) -> list[Any]:
    """A trace's values: plotly sends numeric arrays base64-encoded ({"dtype", "bdata"}), others as lists."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).tolist()
    return list(v)
