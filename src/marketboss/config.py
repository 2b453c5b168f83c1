"""Settings from the environment and `.env`: the guide's default paths and the Alpaca credentials."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from marketboss.errors import ConfigError

PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"
DATA_URL = "https://data.alpaca.markets"
LIVE_HOST = "api.alpaca.markets"
PAPER_HOST = "paper-api.alpaca.markets"


@dataclass(frozen=True)
class Endpoint:
    """A trading URL as the live guard sees it: which venue it reaches, and how to show it without secrets."""

    kind: Literal["live", "paper", "other"]
    url: str  # what the client connects to: the canonical Alpaca URL, or the user's URL minus a trailing /
    display: str  # the same without user name and password: the only form ever printed
    password: str | None  # userinfo password, to register as a secret


def classify_url(raw: str, name: str = "APCA_API_BASE_URL") -> Endpoint:
    """The one URL classification every command uses (paper, doctor, the scheduler's paper job, data fetch).

    Parses scheme, host (case and trailing dots normalised, %-escapes decoded), port and path, so that every
    spelling that reaches Alpaca's live host is live: `https://API.alpaca.markets.:443/v2`, `http://...`,
    surrounding spaces. Alpaca's hosts always get their canonical URL (https, no path); anything else is
    another Alpaca-compatible broker (the local one), used as given. The error never repeats a password.
    """
    text = raw.strip()
    try:
        parts = urlsplit(text)
        host = unquote(parts.hostname or "").rstrip(".").lower()
        port = parts.port
    except ValueError:
        raise ConfigError(f"{name} is not a URL: use e.g. {PAPER_URL}") from None
    password = unquote(parts.password) if parts.password else None
    netloc = parts.netloc.rsplit("@", 1)[-1]
    display = parts._replace(netloc=netloc).geturl().rstrip("/")
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise ConfigError(f"{name} '{display}' is not an http(s) URL: use e.g. {PAPER_URL}")
    if host == LIVE_HOST:
        return Endpoint("live", LIVE_URL, LIVE_URL, password)
    if host == PAPER_HOST:
        return Endpoint("paper", PAPER_URL, PAPER_URL, password)
    if host.endswith(".alpaca.markets") or host == "alpaca.markets":
        raise ConfigError(f"{name} '{display}' is an Alpaca host but not a trading endpoint: use {PAPER_URL}")
    del port  # parsed to reject a malformed one; any port of a non-Alpaca host is that host's business
    return Endpoint("other", text.rstrip("/"), display, password)


def _env(name: str) -> AliasChoices:
    return AliasChoices(f"MARKETBOSS_{name.upper()}", name)


class Settings(BaseSettings):
    """Every path is relative to the working directory, as in the guide."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True, populate_by_name=True)

    market_data: Path = Field(Path("data/market_data.jsonl"), validation_alias=_env("market_data"))
    signals: Path = Field(Path("data/signals.jsonl"), validation_alias=_env("signals"))
    models_dir: Path = Field(Path("models"), validation_alias=_env("models_dir"))
    paper_trades: Path = Field(Path("data/paper_trading_trades.jsonl"), validation_alias=_env("paper_trades"))
    paper_equity: Path = Field(Path("data/paper_trading_equity.jsonl"), validation_alias=_env("paper_equity"))
    # --live's: real money's records apart from paper's (execution.journal.check_account refuses mixing them)
    live_account_trades: Path = Field(Path("data/live_account_trades.jsonl"),
                                      validation_alias=_env("live_account_trades"))  # fmt: skip
    live_account_equity: Path = Field(Path("data/live_account_equity.jsonl"),
                                      validation_alias=_env("live_account_equity"))  # fmt: skip

    def trades_log(self, live: bool) -> Path:
        """The default trades log of a run: paper's, or with --live the live account's."""
        return self.live_account_trades if live else self.paper_trades

    def equity_log(self, live: bool) -> Path:
        return self.live_account_equity if live else self.paper_equity
    runs_dir: Path = Field(Path("runs"), validation_alias=_env("runs_dir"))
    live_signals: Path = Field(Path("data/live_signals.jsonl"), validation_alias=_env("live_signals"))
    live_status: Path = Field(Path("data/live_status.json"), validation_alias=_env("live_status"))
    initial_cash: float = Field(100_000.0, gt=0, validation_alias=_env("initial_cash"))
    log_level: str = Field("info", validation_alias=_env("log_level"))
    log_format: str = Field("auto", validation_alias=_env("log_format"))

    apca_api_base_url: str | None = Field(None, validation_alias="APCA_API_BASE_URL")
    apca_api_key_id: SecretStr | None = Field(None, validation_alias="APCA_API_KEY_ID")
    apca_api_secret_key: SecretStr | None = Field(None, validation_alias="APCA_API_SECRET_KEY")
    apca_data_url: str | None = Field(None, validation_alias="APCA_API_DATA_URL")
    alert_urls: SecretStr | None = Field(None, validation_alias=_env("alert_urls"))

    @property
    def has_alpaca_credentials(self) -> bool:
        return bool(self.apca_api_key_id and self.apca_api_secret_key)

    def secrets(self) -> list[str]:
        """Values that must never be printed or logged (passwords in the URLs' userinfo included)."""
        found = [s.get_secret_value() for s in (self.apca_api_key_id, self.apca_api_secret_key) if s]
        for url in (self.apca_api_base_url, self.apca_data_url):
            try:
                password = urlsplit(url.strip()).password if url else None
            except ValueError:  # not a URL: classify_url says so when it is used
                password = None
            if password:
                found += [password, unquote(password)]
        return found + self.alert_url_list()

    def data_url(self) -> str | None:
        """Market data goes where trading goes unless APCA_API_DATA_URL says otherwise: a non-Alpaca base URL
        (the local broker serves both) keeps the keys off Alpaca's data host. None: Alpaca's own data URL."""
        if self.apca_data_url:
            return self.apca_data_url.strip().rstrip("/")
        if self.apca_api_base_url:
            base = classify_url(self.apca_api_base_url)
            if base.kind == "other":
                return base.url
        return None

    def alert_url_list(self) -> list[str]:
        """apprise URLs from MARKETBOSS_ALERT_URLS, separated by commas or spaces."""
        raw = self.alert_urls.get_secret_value() if self.alert_urls else ""
        return [u for u in raw.replace(",", " ").split() if u]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings; a bad value is one line naming its variable (pydantic's was five, as an unexpected error),
    a secret's value never shown."""
    try:
        return Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"])
        secret = any(w in name.upper() for w in ("KEY", "SECRET", "TOKEN", "PASSWORD", "URL"))
        got = "" if secret or "input" not in err else f", got {str(err['input'])[:40]!r}"
        raise ConfigError(f"{name} (environment or .env): {err['msg']}{got}") from None
