"""A background thread for compiled kernels that release the GIL (numba's nogil=True), so that a backtest
fills its orders and marks its bars on a second core while this one builds the result's frames.

One thread, kept for the process: starting a thread per backtest would cost more than a small backtest.
With a single core, or from that thread itself, the work runs in place.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_NAME = "marketboss-worker"
_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _parallel() -> bool:
    """Whether `start` runs its work beside the caller (else in place, at once)."""
    return _cores() >= 2 and not threading.current_thread().name.startswith(_NAME)


def start(fn: Callable[..., T], *args: Any) -> Callable[[], T]:
    """Start fn(*args) on the background thread; call what this returns for its result (or its exception).
    The arguments stay referenced until it has run: buffers passed to it are not handed out again before."""
    global _pool
    if not _parallel():
        result = fn(*args)
        return lambda: result
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=_NAME)
        return _pool.submit(fn, *args).result


def _forget() -> None:
    """A forked child has no thread behind its parent's pool: it starts its own when it needs one."""
    global _pool, _lock
    _pool = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget)
