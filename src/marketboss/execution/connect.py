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
from typing import Any

from marketboss.broker.alpaca import AlpacaBroker
from marketboss.broker.base import AuthError, BrokerError
from marketboss.config import DATA_URL, LIVE_URL, PAPER_URL, Endpoint, Settings, classify_url
from marketboss.errors import ConfigError
from marketboss.execution.retry import DEFAULT_BUDGET, Retrier
from marketboss.local_broker.options import DEFAULT_KEY_ID, DEFAULT_SECRET_KEY, KEY_ID_ENV, SECRET_KEY_ENV
from marketboss.logging import register_secret

CONFIRM_ENV = "MARKETBOSS_CONFIRM_LIVE"


@dataclass(frozen=True)
class Connection:
    broker: AlpacaBroker
    mode: str  # "live", "paper" or "local"
    note: str
    where: str  # the broker's URL as printed: never with a password
    # local broker only: its keys (for /admin/) and the bars it replays
    key_id: str = ""
    secret_key: str = ""
    local_data: Path | None = None


def check_endpoint(settings: Settings, live: bool, confirm_live: bool) -> Endpoint:
    """The trading endpoint to use, or a ConfigError naming the variable or flag to fix. Decided from the
    settings alone: nothing has connected anywhere yet."""
    raw = settings.apca_api_base_url
    ep = classify_url(raw) if raw and raw.strip() else classify_url(LIVE_URL if live else PAPER_URL)
    if ep.kind == "live" and not live:
        raise ConfigError(
            f"APCA_API_BASE_URL points to the live endpoint ({LIVE_URL}) but --live was not given: "
            f"use {PAPER_URL} for paper trading, or pass --live to trade real money"
        )
    if live:
        if ep.kind != "live":
            raise ConfigError(
                f"--live was given but APCA_API_BASE_URL is {ep.display}: set it to {LIVE_URL} (or unset it)"
            )
        confirmed = confirm_live or os.environ.get(CONFIRM_ENV, "").strip().lower() in ("yes", "true", "1")
        if not confirmed:
            raise ConfigError(
                f"live trading uses real money: confirm with --confirm-live or {CONFIRM_ENV}=yes (refusing to start)"
            )
        if not settings.has_alpaca_credentials:
            raise ConfigError("--live needs APCA_API_KEY_ID and APCA_API_SECRET_KEY (your live keys)")
    if settings.has_alpaca_credentials:
        assert settings.apca_api_key_id is not None
        key = settings.apca_api_key_id.get_secret_value().strip()
        if ep.kind == "live" and key.startswith("PK"):
            raise ConfigError(f"APCA_API_KEY_ID is a paper key (PK...) but the endpoint is live ({LIVE_URL})")
        if ep.kind == "paper" and key.startswith("AK"):
            raise ConfigError(f"APCA_API_KEY_ID is a live key (AK...) but the endpoint is paper ({PAPER_URL})")
        if ep.kind == "other" and key.startswith("AK"):
            raise ConfigError(
                f"APCA_API_KEY_ID is a live key (AK...) but the endpoint is {ep.display}, not Alpaca's: "
                f"live keys go only to {LIVE_URL}, with --live"
            )
    return ep


def local_keys() -> tuple[str, str]:
    """The keys of a local broker: MARKETBOSS_BROKER_KEY_ID / _SECRET_KEY, else the defaults. One source for the
    broker a run starts and the client that talks to it, so they always agree."""
    return (
        os.environ.get(KEY_ID_ENV) or DEFAULT_KEY_ID,
        os.environ.get(SECRET_KEY_ENV) or DEFAULT_SECRET_KEY,
    )


def verify(conn: Connection, retry_budget: float = DEFAULT_BUDGET) -> None:
    """One authenticated call before trading, so wrong keys fail with one clear line, not mid-run. Retried like
    any call: a single 5xx or 429 at start-up is not a reason to give up."""
    try:
        acct = Retrier(conn.broker, retry_budget)("get account", conn.broker.account)
    except AuthError as exc:
        keys = (f"check {KEY_ID_ENV} and {SECRET_KEY_ENV} (the local broker's keys)" if conn.mode == "local" else
                "check APCA_API_KEY_ID and APCA_API_SECRET_KEY, and that they belong to this endpoint (paper or live)")
        raise ConfigError(f"the broker at {conn.where} refused the credentials (HTTP {exc.status}): {keys}") from None
    except BrokerError as exc:
        raise ConfigError(f"cannot reach the broker at {conn.where}: {exc}") from None
    if acct.status.upper() != "ACTIVE":
        raise ConfigError(f"the account at {conn.where} is {acct.status}, not ACTIVE")


@contextmanager
def connect(
    settings: Settings,
    *,
    live: bool = False,
    confirm_live: bool = False,
    broker_url: str | None = None,
    local_data: Path | None = None,
    local_db: Path | None = None,
    retry_budget: float = DEFAULT_BUDGET,
    request_timeout: float = 10.0,
    local_options: dict[str, Any] | None = None,
) -> Iterator[Connection]:
    """The broker a run talks to, verified. The endpoint is decided (and the live guard passed) before anything
    connects; a broker started here stops when the block ends."""
    register_secret(*settings.secrets())
    if broker_url:  # asked for by name: that broker, whatever credentials the environment holds
        if live:
            raise ConfigError("--live trades Alpaca's live account: --broker-url (a local broker) does not go with it")
        shown = classify_url(broker_url, "--broker-url").display
        unused = " (the Alpaca credentials set are not used)" if settings.has_alpaca_credentials else ""
        conn = _local(broker_url, f"paper trading on the local broker at {shown}{unused}", None, request_timeout)
        verify(conn, retry_budget)
        yield conn
        return
    ep = check_endpoint(settings, live, confirm_live)
    if settings.has_alpaca_credentials:
        assert settings.apca_api_key_id and settings.apca_api_secret_key
        data_url = settings.data_url()
        broker = AlpacaBroker(
            settings.apca_api_key_id.get_secret_value().strip(),
            settings.apca_api_secret_key.get_secret_value().strip(),
            ep.url,
            data_url=data_url,
            paper=ep.kind != "live",
            timeout=request_timeout,
        )
        if ep.kind == "other":
            data_note = "" if data_url == ep.url else f", market data from {classify_url(data_url or DATA_URL).display}"
            note = f"paper trading on the Alpaca-compatible broker at {ep.display} (not Alpaca){data_note}"
        else:
            note = f"Alpaca {'LIVE' if ep.kind == 'live' else 'paper'} at {ep.display}"
        conn = Connection(broker, "live" if ep.kind == "live" else "paper", note, ep.display)
        verify(conn, retry_budget)
        yield conn
        return
    local_url = os.environ.get("MARKETBOSS_BROKER_URL")
    why = "No Alpaca credentials set (APCA_API_KEY_ID, APCA_API_SECRET_KEY)"
    if local_url:
        shown = classify_url(local_url, "--broker-url").display
        conn = _local(local_url, f"{why}: paper trading on the local broker at {shown}", None, request_timeout)
        verify(conn, retry_budget)
        yield conn
        return
    from marketboss.local_broker.process import local_broker

    data = local_data or settings.market_data
    if not data.exists():
        raise ConfigError(f"{why}, and the local broker needs bars to replay: {data} not found (run make demo)")
    db = local_db or data.parent / "broker.sqlite"
    key, secret = local_keys()
    options = {"cash": settings.initial_cash, **(local_options or {})}  # a new account: the backtest's cash
    with local_broker(data, db, key_id=key, secret_key=secret, **options) as (base, _, _):
        conn = _local(base, f"{why}: started the local broker at {base}, replaying {data}", data, request_timeout)
        verify(conn, retry_budget)
        yield conn


def _local(url: str, note: str, data: Path | None, timeout: float) -> Connection:
    key, secret = local_keys()
    broker = AlpacaBroker(key, secret, url, data_url=url, is_local=True, timeout=timeout)
    return Connection(broker, "local", note, classify_url(url, "--broker-url").display, key, secret, data)
