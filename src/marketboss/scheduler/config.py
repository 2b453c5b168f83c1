"""Scheduler settings: one TOML file (`marketboss schedule --config schedule.toml`), every field optional.

    timezone = "America/New_York"      # the job times below are wall-clock times in this zone

    [refresh]                          # after the close: the day's bar is final
    at = "16:15"
    source = "auto"                    # auto (alpaca with APCA_* credentials, else synth) | synth | alpaca | none
    symbols = "5"                      # a count or AAPL,MSFT
    start = "2020-01-01"               # synth: first day; alpaca: lookback_days before today instead
    lookback_days = 1825

    [retrain]
    at = "16:30"
    model = "demo"                     # default: the only model in models_dir
    if_needed = true
    [retrain.thresholds]               # marketboss.ml.drift.Thresholds
    max_age_days = 30

    [signals]
    at = "16:45"
    strategy = "ml"
    params = []                        # ["threshold=0.001"]; ml gets model=<retrain.model> unless given

    [paper]                            # the next session's open: the backtest fills at the next bar's open too
    at = "09:31"
    args = ["--max-trades", "50"]      # extra `marketboss paper` options

Top-level paths data_file, signals_file and models_dir default to the settings (MARKETBOSS_* environment, .env).
"""

from __future__ import annotations

import tomllib
from datetime import time
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from marketboss.errors import InputError
from marketboss.ml.drift import Thresholds


class _Job(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    at: time


class RefreshJob(_Job):
    at: time = time(16, 15)
    source: str = Field("auto", pattern="^(auto|synth|alpaca|none)$")
    symbols: str = "5"
    start: str = "2020-01-01"
    seed: int = 7
    timeframe: str = "1Day"
    feed: str = "iex"
    lookback_days: int = Field(1825, ge=1)


class RetrainJob(_Job):
    at: time = time(16, 30)
    model: str | None = None
    if_needed: bool = True
    thresholds: Thresholds = Thresholds()
    model_type: str = Field("lightgbm", pattern="^(lightgbm|ridge)$", description="first training only")
    horizon: int = Field(5, ge=1, description="first training only")


class SignalsJob(_Job):
    at: time = time(16, 45)
    strategy: str = "ml"
    params: list[str] = Field(default_factory=list)


class PaperJob(_Job):
    at: time = time(9, 31)
    args: list[str] = Field(default_factory=list)
    timeout_seconds: float = Field(6 * 3600, gt=0)


class ScheduleConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str = "America/New_York"
    data_file: Path | None = None
    signals_file: Path | None = None
    models_dir: Path | None = None
    refresh: RefreshJob = RefreshJob()
    retrain: RetrainJob = RetrainJob()
    signals: SignalsJob = SignalsJob()
    paper: PaperJob = PaperJob()

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except Exception:
            raise ValueError(f"unknown time zone '{v}'") from None
        return v

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def load_config(path: Path | None) -> ScheduleConfig:
    """The file's settings over the defaults; a mistake is one line naming the file and the field."""
    if path is None:
        return ScheduleConfig()
    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(path, f"invalid TOML ({exc})") from None
    try:
        return ScheduleConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise InputError(path, err["msg"].removeprefix("Value error, "), field=field) from None
