"""The local broker's settings: one frozen, validated object built before anything starts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from marketboss.local_broker.options import DEFAULT_KEY_ID, DEFAULT_SECRET_KEY

ClockMode = Literal["stepped", "accelerated", "wallclock"]
Rate = Field(0.0, ge=0.0, le=1.0)


class FaultConfig(BaseModel):
    """Misbehaviour to test clients against; every rate is a probability per request (or per order).

    Random draws come from generators seeded by `seed`, so a sequential client sees the same faults run after run.
    Faults never touch /admin/ endpoints, so a test can always switch them off again.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    error_500_rate: float = Rate
    error_503_rate: float = Rate
    error_504_rate: float = Rate
    drop_rate: float = Field(0.0, ge=0.0, le=1.0, description="close the connection without an answer")
    latency_ms: float = Field(0.0, ge=0.0, le=60_000.0, description="added to every matching request")
    latency_jitter_ms: float = Field(0.0, ge=0.0, le=60_000.0, description="plus a uniform random extra")
    burst_429_rate: float = Field(0.0, ge=0.0, le=1.0, description="chance a request starts a burst of 429s")
    burst_429_length: int = Field(5, ge=1, le=100_000)
    reject_rate: float = Field(0.0, ge=0.0, le=1.0, description="accepted orders then rejected by the venue")
    fail_after_commit_rate: float = Field(
        0.0, ge=0.0, le=1.0, description="POST /v2/orders: the order is created, then answered with an error"
    )
    fail_after_commit_status: Literal[500, 502, 503, 504] = 504
    drop_after_commit_rate: float = Field(
        0.0, ge=0.0, le=1.0, description="POST /v2/orders: the order is created, then the connection is dropped"
    )
    paths: tuple[str, ...] = Field((), description="path prefixes the faults apply to; empty: every /v2 path")
    methods: tuple[str, ...] = Field((), description="HTTP methods the faults apply to; empty: all")
    seed: int | None = Field(None, description="reseed the fault generators (default: the server's --seed)")

    @field_validator("methods")
    @classmethod
    def _upper(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(m.upper() for m in v)

    @field_validator("paths")
    @classmethod
    def _slash(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for p in v:
            if not p.startswith("/"):
                raise ValueError(f"path prefix '{p}' must start with /")
        return v

    @model_validator(mode="after")
    def _one_draw(self) -> FaultConfig:
        # One uniform draw picks the outcome of a request, so these rates share the unit interval.
        total = self.error_500_rate + self.error_503_rate + self.error_504_rate + self.drop_rate
        if total > 1.0 + 1e-12:
            raise ValueError(f"error_500/503/504 and drop rates add up to {total:g}; at most 1")
        if self.fail_after_commit_rate + self.drop_after_commit_rate > 1.0 + 1e-12:
            raise ValueError("fail_after_commit_rate + drop_after_commit_rate must be at most 1")
        return self

    @property
    def active(self) -> bool:
        return any(
            (
                self.error_500_rate, self.error_503_rate, self.error_504_rate, self.drop_rate, self.latency_ms,
                self.latency_jitter_ms, self.burst_429_rate,
            )
        )  # fmt: skip


class BrokerConfig(BaseModel):
    """Everything `marketboss broker serve` takes; state that outlives a restart (cash, clock) lives in the DB."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: Path
    db: Path
    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    key_id: str = Field(DEFAULT_KEY_ID, min_length=1, max_length=256)
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET_KEY)
    cash: float = Field(100_000.0, gt=0, le=1e12)
    multiplier: Literal[1, 2, 4] = Field(
        4, description="1: cash account (no shorting); 2: Reg T margin; 4: day-trading margin (Alpaca paper)"
    )
    pdt_protection: bool = Field(True, description="Alpaca's pattern-day-trader protection (under $25,000)")
    hard_to_borrow: tuple[str, ...] = Field((), description="symbols that are not easy to borrow: no short sales")
    buy_stop_collar: bool = Field(
        True, description="turn buy stops into stop-limits 4% above the stop (2.5% from $50), as Alpaca does "
        "(orders.nb.buy_stop_limit; the backtest's buy_stop_collar is the same rule, on by default too)"
    )
    fill_latency_ms: float = Field(50.0, ge=0.0, le=600_000.0)
    partial_fill_rate: float = Field(0.1, ge=0.0, le=1.0)
    commission_bps: float = Field(0.0, ge=0.0, le=1000.0)
    commission_per_share: float = Field(0.0, ge=0.0, le=100.0)
    slippage_bps: float = Field(0.0, ge=0.0, le=1000.0)
    spread_bps: float = Field(2.0, ge=0.0, le=1000.0)
    market_reserve_pct: float = Field(3.0, ge=0.0, le=100.0)
    rate_limit: int = Field(200, ge=0, description="trading API requests per minute; 0 turns the limit off")
    data_rate_limit: int | None = Field(
        None, ge=0, description="market-data requests per minute, a budget of its own (default: rate_limit's number)"
    )
    clock: ClockMode = "stepped"
    speed: float = Field(60.0, gt=0.0, le=1e7)
    start: datetime | None = None
    always_open: bool = False
    seed: int = 0
    faults: FaultConfig = FaultConfig()

    @field_validator("start")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        if v is None:
            return None
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)

    @field_validator("hard_to_borrow")
    @classmethod
    def _symbols(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(s.strip().upper() for s in v if s.strip())

    @field_validator("key_id")
    @classmethod
    def _printable(cls, v: str) -> str:
        if not v.isprintable() or any(c.isspace() for c in v):
            raise ValueError("key id must be printable without spaces")
        return v

    @field_validator("secret_key")
    @classmethod
    def _secret(cls, v: SecretStr) -> SecretStr:
        s = v.get_secret_value()
        if not s or not s.isprintable() or any(c.isspace() for c in s):
            raise ValueError("secret key must be non-empty, printable, without spaces")
        return v

    def public(self) -> dict[str, object]:
        """The settings as JSON, without the secret."""
        out = self.model_dump(mode="json", exclude={"secret_key"})
        out["secret_key"] = "***"
        return out

