"""Settings from the environment and `.env`: the guide's default paths and the Alpaca credentials."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"
DATA_URL = "https://data.alpaca.markets"


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
    runs_dir: Path = Field(Path("runs"), validation_alias=_env("runs_dir"))
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
        """Values that must never be printed or logged."""
        found = [s.get_secret_value() for s in (self.apca_api_key_id, self.apca_api_secret_key) if s]
        return found + self.alert_url_list()

    def alert_url_list(self) -> list[str]:
        """apprise URLs from MARKETBOSS_ALERT_URLS, separated by commas or spaces."""
        raw = self.alert_urls.get_secret_value() if self.alert_urls else ""
        return [u for u in raw.replace(",", " ").split() if u]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
