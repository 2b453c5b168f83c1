"""The real thing: `streamlit run dashboard/app.py` as a process on demo files, loaded in headless Chromium.

Needs Debian's chromium (`apt-get install -y chromium chromium-driver`; `make test` installs it): without it
this test fails rather than skips. Playwright drives that browser; its own browser downloads are not used.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from marketboss.dashboard.sections import SECTIONS
from marketboss.execution.live_status import read_status, write_status
from tests.dashboard.demo import Demo
from tests.dashboard.streamlit_process import streamlit

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
N_CHARTS = 10  # market, importance, folds, backtest (equity, yearly, rolling), paper, comparison, strategies, live
RENDERED_CHARTS = (
    "Array.from(document.querySelectorAll('[data-testid=\"stPlotlyChart\"]'))"
    ".filter(e => e.querySelector('.js-plotly-plot .main-svg')).length"
)


@pytest.fixture
def server(demo: Demo, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The dashboard served from a copy of the demo, started from its root so the guide's default paths apply."""
    root = tmp_path / "site"
    shutil.copytree(demo.root, root)
    with streamlit(root, tmp_path / "streamlit.log", "--server.address", "127.0.0.1") as (url, _):
        yield url, root


def _full_page_screenshot(page: Page, path: Path) -> None:
    """Streamlit scrolls inside its main block: make the viewport as tall as the content, then shoot."""
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": int(height) + 50})
    page.wait_for_timeout(1500)  # plotly re-lays out to the new size
    page.screenshot(path=str(path), full_page=True)


def test_dashboard_renders_in_chromium_and_follows_the_paper_log_and_live_status(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = server
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: apt-get install -y chromium chromium-driver")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.wait_for_function(f"{RENDERED_CHARTS} >= {N_CHARTS}", timeout=90_000)
            assert page.locator('[data-testid="stException"]').count() == 0
            text = page.locator('[data-testid="stMain"]').inner_text()
            for _, title in SECTIONS:
                assert title in text
            assert "Unexpected error" not in text and "Traceback" not in text and "not found" not in text
            assert page.evaluate(RENDERED_CHARTS) == N_CHARTS
            live = page.locator(".st-key-section-live").inner_text()
            assert "Running: trading each closed 1Day bar." in live and "Open orders (1)" in live

            # the paper section refreshes itself: a new snapshot shows up without reloading the page
            log = root / "data/paper_trading_equity.jsonl"
            last = json.loads(log.read_text().splitlines()[-1])
            with log.open("a") as fh:
                fh.write(json.dumps({**last, "timestamp": "2031-05-06T07:08:09Z", "portfolio_value": 123456.78}) + "\n")
            page.get_by_text("2031-05-06 07:08:09 UTC").wait_for(timeout=30_000)
            assert page.get_by_text("$123,456.78").count() >= 1

            # and so does the live section: a rewritten status file shows up without reloading the page
            status_path = root / "data/live_status.json"
            status = read_status(status_path)
            assert status is not None
            write_status(status_path, dataclasses.replace(status, bars_seen=424_242))
            page.locator(".st-key-section-live").get_by_text("424,242").wait_for(timeout=30_000)

            shot = tmp_path / "dashboard.png"
            _full_page_screenshot(page, shot)
            assert page.locator('[data-testid="stException"]').count() == 0
        finally:
            browser.close()
    assert shot.stat().st_size > 100_000
