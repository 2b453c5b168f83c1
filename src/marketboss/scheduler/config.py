"""Scheduler settings: one TOML file (`marketboss schedule --config schedule.toml`), every field optional.

    timezone = "America/New_York"      # the job times below are wall-clock times in this zone

    [refresh]                          # after the close: the day's bar is final
    at = "16:15"
    source = "auto"                    # auto (alpaca with APCA_* credentials, else synth into a new file) | synth | ...
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

    [live]                             # `marketboss live ... --until close` on every session, off by default;
    enabled = true                     # when on, it replaces the signals and paper jobs (refresh/retrain still run)
    strategy = "ma_crossover"
    params = ["fast=10", "slow=30"]    # ml gets model=<retrain.model> unless given, as for [signals]
    symbols = ["AAPL", "MSFT"]         # or "AAPL,MSFT"
    timeframe = "5Min"                 # 1Min | 5Min | 15Min | 1Hour | 1Day
    warmup_minutes = 30                # started this long before the open (09:00 for 09:30)
    stop_grace_minutes = 10            # after the close (13:00 on early-close days) it stops itself; still
                                       # running this long after it: SIGTERM, then SIGKILL kill_grace_seconds later
    kill_grace_seconds = 60
    restart = true                     # a crash (non-zero exit) before the close is restarted, with backoff,
    max_restarts = 3                   # at most this many times a session
    args = []                          # extra `marketboss live` options (not --until: the scheduler sets it)

Top-level paths data_file, signals_file and models_dir default to the settings (MARKETBOSS_* environment, .env).
"""

from __future__ import annotations

import re
import tomllib
from datetime import time
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from marketboss.data.rules import symbol_error
from marketboss.errors import InputError, MarketBossError
from marketboss.ml import registry
from marketboss.ml.drift import Thresholds


class _Job(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    at: time

    @field_validator("at", mode="before")
    @classmethod
    def _wall_clock(cls, v: object) -> object:
        """A time of day, "16:15" or TOML's 16:15:00, in the file's timezone: a number (pydantic read 1615 as
        seconds after midnight, 00:26) or a time with an offset (dropped: 16:45+02:00 ran at 16:45 New York) is
        refused."""
        if isinstance(v, time) and v.tzinfo is None:
            return v
        if isinstance(v, str) and re.fullmatch(r"\d{1,2}:\d{2}(:\d{2})?", v.strip()):
            return v.strip()
        raise ValueError(f'expected a time of day such as "16:15" (in the file\'s timezone, no offset), got {v!r}')


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

    @field_validator("model")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        """A name the registry takes, checked with the file (`--plan` passed "../x", which the job then refused)."""
        if v is not None:
            try:
                registry.check_name(v)
            except MarketBossError as exc:
                raise ValueError(str(exc)) from None
        return v


class SignalsJob(_Job):
    at: time = time(16, 45)
    strategy: str = "ml"
    params: list[str] = Field(default_factory=list)


class PaperJob(_Job):
    at: time = time(9, 31)
    args: list[str] = Field(default_factory=list)
    timeout_seconds: float = Field(6 * 3600, gt=0)


LIVE_TIMEFRAMES = ("1Min", "5Min", "15Min", "1Hour", "1Day")


class LiveJob(BaseModel):
    """The live loop on each session: started warmup_minutes before the open, stopped after the close."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False
    strategy: str = Field("", validate_default=True)
    params: list[str] = Field(default_factory=list)
    symbols: list[str] = Field(default_factory=list, validate_default=True)
    timeframe: str = "1Min"
    warmup_minutes: float = Field(30, ge=0, le=24 * 60)
    stop_grace_minutes: float = Field(10, ge=0, le=24 * 60)
    kill_grace_seconds: float = Field(60, gt=0)
    restart: bool = True
    max_restarts: int = Field(3, ge=0)
    args: list[str] = Field(default_factory=list)

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, v: str, info: ValidationInfo) -> str:
        if info.data.get("enabled") and not v.strip():
            raise ValueError("a strategy is required when [live] is enabled")
        return v.strip()

    @field_validator("params")
    @classmethod
    def _params(cls, v: list[str]) -> list[str]:
        for p in v:
            key, sep, _ = p.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"'{p}' must look like key=value")
        return v

    @field_validator("symbols", mode="before")
    @classmethod
    def _symbols(cls, v: object, info: ValidationInfo) -> object:
        if isinstance(v, str):
            v = [s for s in v.split(",") if s.strip()]
        if not isinstance(v, list):
            return v  # pydantic names the type it wanted
        names = [s.strip().upper() if isinstance(s, str) else s for s in v]
        for name in names:
            err = symbol_error(name)
            if err:
                raise ValueError(err)
        if len(set(names)) != len(names):
            raise ValueError("symbols must be distinct")
        if info.data.get("enabled") and not names:
            raise ValueError('symbols are required when [live] is enabled, e.g. symbols = ["AAPL", "MSFT"]')
        return names

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, v: str) -> str:
        if v not in LIVE_TIMEFRAMES:
            raise ValueError(f"'{v}' is not one of {', '.join(LIVE_TIMEFRAMES)}")
        return v

    @field_validator("args")
    @classmethod
    def _args(cls, v: list[str]) -> list[str]:
        if any(a == "--until" or a.startswith("--until=") for a in v):
            raise ValueError("--until is the scheduler's: it passes --until close itself")
        return v


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
    live: LiveJob = LiveJob()

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
    except UnicodeDecodeError:
        raise InputError(path, "not UTF-8 text (TOML files are UTF-8)") from None
    try:
        return ScheduleConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise InputError(path, err["msg"].removeprefix("Value error, "), field=field) from None
