"""Where research work runs: `local` (processes on this machine, the default) or `dask` (a dask.distributed
cluster). Both take the same tasks and return their results in task order, so tables are identical.

The market is shipped once per worker (a process initialiser; a broadcast scatter on dask), never per task,
and work is cut into chunks large enough to pay for their scheduling: tens of millions of bar-steps each.
Jobs under a few seconds run in this process (the MA kernel then spreads its combinations over numba threads,
one per worker): starting worker processes would cost more than the work. A job's size is an estimate; one
whose first task shows it is not small goes on in worker processes (POOL_AFTER_SECONDS).
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, ClassVar, TypeVar

from marketboss.data.market import Market
from marketboss.errors import MarketBossError

T = TypeVar("T")
R = TypeVar("R")

#: Bar-steps (combinations x symbols x bars; the MA kernel's: research.sweep.bar_step_cost weights another
#: strategy's) worth one task: ~0.1-0.3 s of kernel time.
CHUNK_WORK = 5e7
#: Below this much work the local backend runs in this process: spawning workers costs seconds.
LOCAL_POOL_WORK = 1e9
#: A job run in this process whose first task shows the rest would take longer than this goes on in worker
#: processes: its work is an estimate (bar_step_cost), and a plain on_bar's cost a bar varies 40-fold with what
#: it does (an order-heavy one's 24-combination sweep on 60 x 2,515 bars, estimated under LOCAL_POOL_WORK: 45 s
#: on one core, --workers 2 or not).
POOL_AFTER_SECONDS = 5.0


class Backend(ABC):
    name: ClassVar[str]
    chunk_work: float = CHUNK_WORK

    @property
    @abstractmethod
    def workers(self) -> int:
        """Tasks that can run at once."""

    @abstractmethod
    def map(
        self,
        fn: Callable[[T, Market], R],
        tasks: Sequence[T],
        market: Market,
        work: float,
        on_done: Callable[[int], None] | None = None,
    ) -> list[R]:
        """fn(task, market) for every task; results in task order. on_done(i) as task i finishes."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release workers or connections."""

    def threads_per_task(self, work: float, n_tasks: int) -> int:
        """Threads a task may use itself (numba's, in the MA kernel): one, unless the work stays in this
        process, where the workers' share of the machine is threads instead."""
        return 1

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        return f"{self.name} ({self.workers} worker{'s' if self.workers != 1 else ''})"


def plan_chunks(n_items: int, work_per_item: float, backend: Backend) -> list[range]:
    """Contiguous runs of items, each worth about backend.chunk_work or more, at most a few per worker."""
    total = n_items * work_per_item
    n = int(min(n_items, max(1, total // backend.chunk_work), 4 * max(backend.workers, 1)))
    bounds = [round(i * n_items / n) for i in range(n + 1)]
    return [range(a, b) for a, b in itertools.pairwise(bounds) if b > a]


_MARKET: Market | None = None


def _install(market: Market) -> None:
    global _MARKET
    _MARKET = market


def _call(fn: Callable[[Any, Market], Any], task: Any) -> Any:
    """fn in a worker process; a plug-in strategy's own failure is made its one line here, where its traceback
    is (the exception sent back to the parent has lost it)."""
    assert _MARKET is not None
    try:
        return fn(task, _MARKET)
    except Exception as exc:
        from marketboss.strategies.plugins import failure

        failed = failure(exc)
        if failed is None:
            raise
        raise failed from None


class LocalBackend(Backend):
    """A pool of `workers` processes (spawned: safe with the thread pools numba and polars keep), or, for a
    small job, this process with `workers` threads."""

    name = "local"

    def __init__(self, workers: int | None = None, pool_work: float = LOCAL_POOL_WORK,
                 chunk_work: float = CHUNK_WORK, pool_after: float = POOL_AFTER_SECONDS):
        if workers is not None and workers < 1:
            raise MarketBossError("--workers must be at least 1")
        self._workers = workers or os.cpu_count() or 1
        self.pool_work = pool_work
        self.chunk_work = chunk_work
        self.pool_after = pool_after
        self.ran_in = ""

    @property
    def workers(self) -> int:
        return self._workers

    def describe(self) -> str:
        return f"local: {self.ran_in or 'idle'}"

    def _inline(self, work: float, n_tasks: int) -> bool:
        return self._workers == 1 or n_tasks <= 1 or work < self.pool_work

    def threads_per_task(self, work: float, n_tasks: int) -> int:
        return self._workers if self._inline(work, n_tasks) else 1

    def map(
        self,
        fn: Callable[[T, Market], R],
        tasks: Sequence[T],
        market: Market,
        work: float,
        on_done: Callable[[int], None] | None = None,
    ) -> list[R]:
        if self._inline(work, len(tasks)):
            self.ran_in = "this process" + (f" ({self._workers} threads)" if self._workers > 1 else "")
            started, results = time.perf_counter(), []
            for i, task in enumerate(tasks):
                results.append(fn(task, market))
                if on_done:
                    on_done(i)
                left = len(tasks) - 1  # after the first: how long they would take here, by its time
                if i == 0 and self._workers > 1 and left > 1 and (
                        time.perf_counter() - started) * left > self.pool_after:
                    rest = self._pool(fn, tasks[1:], market, (lambda j: on_done(j + 1)) if on_done else None)
                    self.ran_in = f"this process (the first task), then {self.ran_in}"
                    return results + rest
            return results
        return self._pool(fn, tasks, market, on_done)

    def _pool(self, fn: Callable[[T, Market], R], tasks: Sequence[T], market: Market,
              on_done: Callable[[int], None] | None) -> list[R]:  # fmt: skip
        out: list[Any] = [None] * len(tasks)
        ctx = multiprocessing.get_context("spawn")
        n = min(self._workers, len(tasks))
        self.ran_in = f"{n} processes"
        pool = ProcessPoolExecutor(n, mp_context=ctx, initializer=_install, initargs=(market,))
        try:
            with _stop_asked() as asked:
                pending: dict[Future[Any], int] = {pool.submit(_call, fn, t): i for i, t in enumerate(tasks)}
                while pending:
                    done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    if asked:
                        raise KeyboardInterrupt
                    for fut in done:
                        i = pending.pop(fut)
                        out[i] = fut.result()
                        if on_done:
                            on_done(i)
        except BaseException:
            _stop_now(pool)
            raise
        pool.shutdown()
        return out


def _stop_now(pool: ProcessPoolExecutor) -> None:
    """The pool stopped at once, its workers killed: a task runs for minutes in compiled code, which a signal does
    not interrupt, and waiting for it made Ctrl-C take over a minute, saying nothing."""
    workers = list((getattr(pool, "_processes", None) or {}).values())  # (the executor keeps them, unexposed)
    manager = getattr(pool, "_executor_manager_thread", None)  # (shutdown forgets it)
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in workers:
        proc.terminate()
    for proc in workers:
        proc.join(timeout=5)
    if manager is not None:  # it ends seeing them gone; left running, it closed its wake-up pipe while the
        manager.join(timeout=5)  # interpreter's exit wrote to it (Python 3.11's race: a traceback at exit)


@contextlib.contextmanager
def _stop_asked() -> Iterator[list[int]]:
    """The signals (SIGINT, SIGTERM) that asked the pool to stop, noted (in the main thread) for its loop to act
    on between its waits: so that its workers are stopped with it (SIGTERM killed it outright and left them
    running on, orphaned), and never in the middle of starting one (the worker, sent half its start-up data,
    printed a traceback)."""
    asked: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield asked
        return

    def note(signum: int, frame: object) -> None:
        asked.append(signum)

    before = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield asked
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


class DaskBackend(Backend):
    """Tasks on a dask.distributed cluster; the market is broadcast to every worker once."""

    name = "dask"

    def __init__(self, scheduler: str, timeout: float = 10.0, chunk_work: float = CHUNK_WORK):
        from distributed import Client

        self.chunk_work = chunk_work
        try:
            self.client = Client(scheduler, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise MarketBossError(f"cannot reach the dask scheduler at {scheduler}: {exc}") from None
        self.scheduler = scheduler

    @property
    def workers(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def map(
        self,
        fn: Callable[[T, Market], R],
        tasks: Sequence[T],
        market: Market,
        work: float,
        on_done: Callable[[int], None] | None = None,
    ) -> list[R]:
        from distributed import as_completed

        if not self.client.nthreads():
            raise MarketBossError(f"the dask cluster at {self.scheduler} has no workers")
        shared = self.client.scatter(market, broadcast=True, hash=False)
        futures = [self.client.submit(fn, t, shared, pure=False) for t in tasks]
        index = {f.key: i for i, f in enumerate(futures)}
        out: list[Any] = [None] * len(tasks)
        try:
            for fut in as_completed(futures, loop=self.client.loop):
                i = index[fut.key]
                out[i] = fut.result()
                if on_done:
                    on_done(i)
        finally:
            self.client.cancel(futures)
            del shared
        return out

    def describe(self) -> str:
        return f"dask at {self.scheduler} ({self.workers} worker threads)"

    def close(self) -> None:
        self.client.close()


def make_backend(name: str, scheduler: str | None = None, workers: int | None = None) -> Backend:
    if name == "local":
        if scheduler:
            raise MarketBossError("--scheduler is for --backend dask")
        return LocalBackend(workers)
    if name == "dask":
        if not scheduler:
            raise MarketBossError("--backend dask needs --scheduler tcp://HOST:8786")
        if workers is not None:
            raise MarketBossError("--workers is for --backend local (a dask cluster has its own)")
        return DaskBackend(scheduler)
    raise MarketBossError(f"--backend '{name}': choose local or dask")
