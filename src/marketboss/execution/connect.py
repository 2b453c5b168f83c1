"""Which broker a run talks to, decided up front and said plainly.

Paper is the default. The live endpoint needs --live and an explicit confirmation; keys that do not match
the endpoint (paper keys start PK, live keys AK) are refused before any order. With no credentials at all,
the local broker is used: the one at --broker-url / MARKETBOSS_BROKER_URL, or one started for the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from marketboss.broker.alpaca import AlpacaBroker
from marketboss.broker.base import AuthError, BrokerError
from marketboss.config import LIVE_URL, PAPER_URL, Settings
from marketboss.errors import ConfigError

CONFIRM_ENV = "MARKETBOSS_CONFIRM_LIVE"
LOCAL_KEY_ID = "mb-local-key"
LOCAL_SECRET = "mb-local-secret"


@dataclass(frozen=True)
class Connection:
    broker: AlpacaBroker
    mode: str  # "live", "paper" or "local"
    note: str
    # local broker only: its keys (for /admin/) and the bars it replays
    key_id: str = ""
    secret_key: str = ""
    local_data: Path | None = None


def _is_live(url: str) -> bool:
    return url.rstrip("/").lower() == LIVE_URL


def check_endpoint(settings: Settings, live: bool, confirm_live: bool) -> str:
    """The trading URL to use, or a ConfigError naming the variable or flag to fix."""
    url = (settings.apca_api_base_url or (LIVE_URL if live else PAPER_URL)).rstrip("/")
    if _is_live(url) and not live:
        raise ConfigError(
            f"APCA_API_BASE_URL points to the live endpoint ({LIVE_URL}) but --live was not given: "
            f"use {PAPER_URL} for paper trading, or pass --live to trade real money"
        )
    if live:
        if not _is_live(url):
            raise ConfigError(f"--live was given but APCA_API_BASE_URL is {url}: set it to {LIVE_URL} (or unset it)")
        confirmed = confirm_live or os.environ.get(CONFIRM_ENV, "").strip().lower() in ("yes", "true", "1")
        if not confirmed:
            raise ConfigError(
                f"live trading uses real money: confirm with --confirm-live or {CONFIRM_ENV}=yes (refusing to start)"
            )
        if not settings.has_alpaca_credentials:
            raise ConfigError("--live needs APCA_API_KEY_ID and APCA_API_SECRET_KEY (your live keys)")
    if settings.has_alpaca_credentials:
        assert settings.apca_api_key_id is not None
        key = settings.apca_api_key_id.get_secret_value()
        if _is_live(url) and key.startswith("PK"):
            raise ConfigError(f"APCA_API_KEY_ID is a paper key (PK...) but the endpoint is live ({LIVE_URL})")
        if url == PAPER_URL and key.startswith("AK"):
            raise ConfigError(f"APCA_API_KEY_ID is a live key (AK...) but the endpoint is paper ({PAPER_URL})")
    return url


def verify(conn: Connection) -> None:
    """One authenticated call before trading, so wrong keys fail with one clear line, not mid-run."""
    try:
        acct = conn.broker.account()
    except AuthError as exc:
        raise ConfigError(
            f"the broker at {conn.broker.base_url} refused the credentials (HTTP {exc.status}): "
            "check APCA_API_KEY_ID and APCA_API_SECRET_KEY, and that they belong to this endpoint (paper or live)"
        ) from None
    except BrokerError as exc:
        raise ConfigError(f"cannot reach the broker at {conn.broker.base_url}: {exc}") from None
    if acct.status.upper() != "ACTIVE":
        raise ConfigError(f"the account at {conn.broker.base_url} is {acct.status}, not ACTIVE")


@contextmanager
def connect(
    settings: Settings,
    *,
    live: bool = False,
    confirm_live: bool = False,
    broker_url: str | None = None,
    local_data: Path | None = None,
    local_db: Path | None = None,
) -> Iterator[Connection]:
    url = check_endpoint(settings, live, confirm_live)
    if settings.has_alpaca_credentials:
        assert settings.apca_api_key_id and settings.apca_api_secret_key
        broker = AlpacaBroker(
            settings.apca_api_key_id.get_secret_value(),
            settings.apca_api_secret_key.get_secret_value(),
            url,
            data_url=settings.apca_data_url,
            paper=not live,
        )
        conn = Connection(broker, "live" if live else "paper", f"Alpaca {'LIVE' if live else 'paper'} at {url}")
        verify(conn)
        yield conn
        return
    local_url = broker_url or os.environ.get("MARKETBOSS_BROKER_URL")
    why = "No Alpaca credentials set (APCA_API_KEY_ID, APCA_API_SECRET_KEY)"
    if local_url:
        conn = _local(local_url, f"{why}: paper trading on the local broker at {local_url}", None)
        verify(conn)
        yield conn
        return
    from marketboss.local_broker.process import local_broker

    data = local_data or settings.market_data
    if not data.exists():
        raise ConfigError(f"{why}, and the local broker needs bars to replay: {data} not found (run make demo)")
    db = local_db or data.parent / "broker.sqlite"
    with local_broker(data, db, key_id=LOCAL_KEY_ID, secret_key=LOCAL_SECRET) as (base, _, _):
        conn = _local(base, f"{why}: started the local broker at {base}, replaying {data}", data)
        verify(conn)
        yield conn


def _local(url: str, note: str, data: Path | None) -> Connection:
    key = os.environ.get("MARKETBOSS_BROKER_KEY_ID", LOCAL_KEY_ID)
    secret = os.environ.get("MARKETBOSS_BROKER_SECRET_KEY", LOCAL_SECRET)
    broker = AlpacaBroker(key, secret, url, data_url=url, is_local=True)
    return Connection(broker, "local", note, key, secret, data)
