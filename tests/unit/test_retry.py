"""The retry budget: a broker that is down is retried for the budget, and only briefly once a stop is asked."""

from __future__ import annotations

import pytest

from marketboss.broker.base import TransientError
from marketboss.execution.retry import DEFAULT_BUDGET, STOP_BUDGET, Retrier


def test_a_stop_cuts_the_retry_budget_short() -> None:
    """A SIGTERM'd live session whose broker was down waited out the whole budget (2 minutes) before it ended:
    systemd's 90 s stop timeout killed it first."""
    now, slept = [0.0], []
    retry = Retrier(broker=None, budget=DEFAULT_BUDGET, sleep=slept.append, clock=lambda: now[0])  # type: ignore[arg-type]
    down = TransientError("HTTP 503", status=503, retry_after=1.0)
    now[0] = 30.0  # well inside the budget: it waits and tries again
    retry.wait_or_raise("get account", 3, 0.0, down)
    assert slept and slept[-1] >= 1.0
    retry.stopping = lambda: True
    with pytest.raises(TransientError):
        retry.wait_or_raise("get account", 4, 0.0, down)
    now[0] = STOP_BUDGET - 2.0  # a stop's own call, started just now: still retried
    retry.wait_or_raise("cancel order", 0, 0.0, down)
    assert len(slept) == 2
