"""Shared fixtures: small synthetic bar sets and a clean working directory per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from marketboss.config import get_settings
from marketboss.data.synth import synth_bars


@pytest.fixture(scope="session")
def _bars_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bars-cache")


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, _bars_cache: Path) -> Iterator[None]:
    """Tests never see the developer's APCA_* variables or .env; settings are re-read per test. Validated bars
    copies go to the session's own cache directory, never the developer's."""
    for key in list(os.environ):
        if key.startswith(("APCA_", "MARKETBOSS_")):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MARKETBOSS_CACHE_DIR", str(_bars_cache))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def daily_bars() -> pl.DataFrame:
    return synth_bars(["AAPL", "MSFT", "JPM"], "2022-01-01", "2023-12-31", "1Day", seed=11)
