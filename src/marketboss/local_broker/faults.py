"""Fault injection for testing clients: 5xx answers, dropped connections, latency, 429 bursts, and the ambiguous
case of an order that was created although its request failed.

Each kind of draw has its own generator seeded from (seed, kind), so a client that sends the same requests in
the same order meets the same faults, whatever else is switched on.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass

from marketboss.local_broker.config import FaultConfig

ERROR_STATUSES = (500, 503, 504)


@dataclass(frozen=True)
class Decision:
    latency_s: float
    outcome: str | None  # None, "500", "503", "504", "drop" or "429"


class FaultInjector:
    def __init__(self, cfg: FaultConfig, default_seed: int):
        self.default_seed = default_seed
        self.injected: Counter[str] = Counter()
        self.configure(cfg)

    def configure(self, cfg: FaultConfig) -> None:
        self.cfg = cfg
        self._active = cfg.active
        seed = self.default_seed if cfg.seed is None else cfg.seed
        self._outcome = random.Random(f"{seed}:outcome")
        self._jitter = random.Random(f"{seed}:jitter")
        self._burst = random.Random(f"{seed}:burst")
        self._commit = random.Random(f"{seed}:commit")
        self._burst_left = 0

    def applies(self, method: str, path: str) -> bool:
        c = self.cfg
        if c.methods and method not in c.methods:
            return False
        return not c.paths or any(path.startswith(p) for p in c.paths)

    def decide(self, method: str, path: str) -> Decision | None:
        if not self._active or not self.applies(method, path):
            return None
        c = self.cfg
        latency = c.latency_ms / 1000.0
        if c.latency_jitter_ms:
            latency += self._jitter.uniform(0.0, c.latency_jitter_ms / 1000.0)
        outcome: str | None = None
        if self._burst_left > 0:
            self._burst_left -= 1
            outcome = "429"
        elif c.burst_429_rate and self._burst.random() < c.burst_429_rate:
            self._burst_left = c.burst_429_length - 1
            outcome = "429"
        else:
            u = self._outcome.random()
            for name, rate in (("500", c.error_500_rate), ("503", c.error_503_rate), ("504", c.error_504_rate),
                               ("drop", c.drop_rate)):  # fmt: skip
                if u < rate:
                    outcome = name
                    break
                u -= rate
        if outcome:
            self.injected[outcome] += 1
        return Decision(latency, outcome)

    def after_commit(self) -> str | None:
        """For POST /v2/orders once the order is stored: "fail", "drop" or None."""
        c = self.cfg
        if not (c.fail_after_commit_rate or c.drop_after_commit_rate):
            return None
        u = self._commit.random()
        if u < c.fail_after_commit_rate:
            self.injected["fail_after_commit"] += 1
            return "fail"
        if u < c.fail_after_commit_rate + c.drop_after_commit_rate:
            self.injected["drop_after_commit"] += 1
            return "drop"
        return None


class RateLimiter:
    """Alpaca's per-account budget: `per_minute` requests in a fixed one-minute window."""

    def __init__(self, per_minute: int):
        self.limit = per_minute
        self._window = 0.0
        self._used = 0

    def hit(self, now: float) -> tuple[bool, int, int]:
        """(allowed, remaining, reset epoch seconds). The reset is rounded up: a client that waits until it never
        comes back a fraction of a second early into the spent window."""
        if now >= self._window + 60.0:
            self._window, self._used = now, 0
        allowed = self._used < self.limit
        if allowed:
            self._used += 1
        return allowed, max(self.limit - self._used, 0), math.ceil(self._window + 60.0)

    def peek(self, now: float) -> tuple[int, int]:
        if now >= self._window + 60.0:
            return self.limit, math.ceil(now + 60.0)
        return max(self.limit - self._used, 0), math.ceil(self._window + 60.0)
