"""Retrying transient broker faults within a time budget, the one policy for start-up checks and the run.

A budget of seconds rather than a count of attempts: an outage is measured in time, and a burst of 429s
answered with short backoffs must not use up the same allowance as a minute of 503s. The broker's own word on
when to come back (Retry-After, or X-Ratelimit-Reset when the minute's budget is spent) is honoured, never
shortened.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from marketboss.broker.base import Broker, TransientError
from marketboss.logging import get_logger

log = get_logger(__name__)
T = TypeVar("T")

DEFAULT_BUDGET = 120.0  # seconds: a minute's outage, twice over
#: The budget once a stop is asked (SIGTERM): the stop's own calls (cancels, a last snapshot) still get retries,
#: and a broker that is down lets the process end well inside systemd's 90 s stop timeout (it took 2 minutes).
STOP_BUDGET = 10.0


@dataclass
class Retrier:
    broker: Broker
    budget: float = DEFAULT_BUDGET
    backoff_base: float = 0.25
    backoff_max: float = 8.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    stopping: Callable[[], bool] = lambda: False  # a stop was asked: STOP_BUDGET

    def delay(self, attempt: int, exc: TransientError) -> float:
        """Exponential backoff with jitter, or longer when the broker said when to come back."""
        backoff = min(self.backoff_max, self.backoff_base * 2**attempt) * (0.5 + random.random() / 2)
        return max(backoff, exc.retry_after)

    def wait_or_raise(self, what: str, attempt: int, started: float, exc: TransientError) -> None:
        """Sleep before the next attempt, or re-raise when that would overrun the budget."""
        delay = self.delay(attempt, exc)
        budget = min(self.budget, STOP_BUDGET) if self.stopping() else self.budget
        if self.clock() - started + delay > budget:
            raise exc
        log.warning("broker_retry", what=what, attempt=attempt + 1, delay_s=round(delay, 3), error=str(exc))
        self.sleep(delay)

    def pause(self) -> None:
        """Wait as long as the rate-limit budget asks (nothing while it lasts)."""
        wait = self.broker.throttle_wait()
        if wait > 0:
            log.info("rate_limit_pause", seconds=round(wait, 2))
            self.sleep(wait)

    def call(self, fn: Callable[[], T]) -> T:
        """One attempt, after any pause the rate-limit budget asks for."""
        self.pause()
        return fn()

    def __call__(self, what: str, fn: Callable[[], T]) -> T:
        started, attempt = self.clock(), 0
        while True:
            try:
                return self.call(fn)
            except TransientError as exc:
                self.wait_or_raise(what, attempt, started, exc)
                attempt += 1


@dataclass(frozen=True)
class Read(Generic[T]):
    """A broker read sent ahead (ReadsAtOnce.start): what it is, how to ask again, and its first answer."""

    what: str
    fn: Callable[[], T]
    first: Future[T]


@dataclass
class ReadsAtOnce:
    """Independent broker reads sent together rather than one after another. Before each order the executor
    reads the account, positions, price and clock: at Alpaca's round trip (tens of ms) in turn, each order went
    out four round trips after its signal instead of one (benchmarks/bench_live.py --request-latency-ms). Only the
    first attempt is concurrent: one that failed transiently is retried by the caller's Retrier, in the caller's
    thread, within its budget; the rate-limit pause is taken before sending, so no worker sleeps."""

    retry: Retrier
    workers: int = 5
    _pool: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)

    def start(self, what: str, fn: Callable[[], T]) -> Read[T]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="broker-read")
        self.retry.pause()
        return Read(what, fn, self._pool.submit(fn))

    def result(self, read: Read[T]) -> T:
        """The read's answer (waiting for it); after a transient fault, asked again with retries. Taking results
        in the order the caller checks them raises the error a sequential caller would have met first."""
        try:
            return read.first.result()
        except TransientError:
            return self.retry(read.what, read.fn)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
