"""The one URL classification (live guard) and the broker's wait instructions, in process."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest
import requests

from marketboss.broker.alpaca import retry_after
from marketboss.config import LIVE_URL, PAPER_URL, Settings, classify_url
from marketboss.errors import ConfigError


@pytest.mark.parametrize(
    "url",
    ["https://api.alpaca.markets", "https://api.alpaca.markets:443", "https://api.alpaca.markets./",
     "http://api.alpaca.markets", " https://api.alpaca.markets ", "https://api.alpaca.markets/v2",
     "HTTPS://Api.Alpaca.Markets..", "https://u:p@api.alpaca.markets:8443/x?y=1", "https://api%2Ealpaca.markets"],
)  # fmt: skip
def test_every_spelling_of_the_live_host_is_live(url: str) -> None:
    ep = classify_url(url)
    assert (ep.kind, ep.url, ep.display) == ("live", LIVE_URL, LIVE_URL)


def test_paper_other_and_invalid_urls() -> None:
    assert classify_url("https://PAPER-API.alpaca.markets.:443/v2").url == PAPER_URL
    other = classify_url("http://bob:s3cret@127.0.0.1:8765/")
    assert (other.kind, other.url, other.display, other.password) == (
        "other", "http://bob:s3cret@127.0.0.1:8765", "http://127.0.0.1:8765", "s3cret"
    )
    assert Settings(APCA_API_BASE_URL="http://[::1").secrets() == []
    for bad in ("ftp://api.alpaca.markets", "api.alpaca.markets", "https://data.alpaca.markets", "http://[::1"):
        with pytest.raises(ConfigError):
            classify_url(bad)


def test_market_data_follows_a_non_alpaca_base_url_unless_set() -> None:
    assert Settings(APCA_API_BASE_URL="http://127.0.0.1:9/").data_url() == "http://127.0.0.1:9"
    assert Settings(APCA_API_BASE_URL=PAPER_URL).data_url() is None
    assert Settings(APCA_API_BASE_URL="http://127.0.0.1:9", APCA_API_DATA_URL="http://127.0.0.1:7").data_url() == (
        "http://127.0.0.1:7"
    )
    assert "pw%21" in Settings(APCA_API_BASE_URL="http://me:pw%21@127.0.0.1:9").secrets()


def test_the_live_account_keeps_logs_of_its_own_by_default() -> None:
    """--live's default trades and equity logs are not paper's (and an environment variable moves each)."""
    s = Settings()
    assert (s.trades_log(False), s.equity_log(False)) == (s.paper_trades, s.paper_equity)
    live = {s.trades_log(True), s.equity_log(True)}
    assert len(live) == 2 and not live & {s.paper_trades, s.paper_equity}
    moved = Settings(MARKETBOSS_LIVE_ACCOUNT_TRADES="elsewhere/t.jsonl")
    assert str(moved.trades_log(True)) == "elsewhere/t.jsonl"


def _response(**headers: str) -> requests.Response:
    r = requests.Response()
    r.headers.update(headers)
    return r


def test_retry_after_honours_the_brokers_word_and_nothing_else() -> None:
    assert retry_after(_response(**{"Retry-After": "7"})) == 7.0
    assert 9 <= retry_after(_response(**{"Retry-After": formatdate(time.time() + 10, usegmt=True)})) <= 10
    spent = {"X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": str(time.time() + 30)}
    assert 29 <= retry_after(_response(**spent)) <= 30
    assert retry_after(_response(**{**spent, "X-Ratelimit-Remaining": "150"})) == 0.0  # a burst, budget left
    assert retry_after(_response(**{"Retry-After": "nan"})) == 0.0
    assert retry_after(_response(**{"Retry-After": "99999"})) == 65.0
    assert retry_after(None) == 0.0
