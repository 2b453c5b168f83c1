"""Group commit for the server: the changes made while one batch of requests is handled (and the matcher's step
that follows them) share one SQLite write transaction, and no answer leaves before what it reports is committed.

A commit costs far more than a change (SQLite appends every changed page to its log), so one commit per batch
instead of one per request is most of the server's throughput. A batch opens with its first change; its commit
runs two event-loop turns later: the requests whose bytes arrived together, and the matcher woken by them, have
joined it by then. Durability is unchanged: an answer waits for the commit, so a crash never loses anything a
client was told.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from marketboss.local_broker.events import EventHub
from marketboss.local_broker.sqlite_store import SqliteStore
from marketboss.logging import get_logger

log = get_logger(__name__)


class GroupCommit:
    """Batches a store's commits on the running event loop; `settled()` is what an answer waits for."""

    def __init__(self, store: SqliteStore, reload: Callable[[], None], hub: EventHub | None = None):
        self.store = store
        self.reload = reload  # brings the engine's memory back to the database after a failed commit
        self.hub = hub  # the trade-updates hub: a batch's events leave with its commit, not before
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done: asyncio.Future[bool] | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.store.batch_commits(self._opened)

    def stop(self) -> None:
        """Commit what is open and go back to a commit per change (at shutdown)."""
        self._commit()
        self.store.batch_commits(None)

    def _opened(self) -> None:
        assert self._loop is not None
        if self._done is None:  # else the batch's first change failed and was rolled back: its commit is due
            if self.hub is not None:
                self.hub.hold()
            self._done = self._loop.create_future()
            self._loop.call_soon(self._loop.call_soon, self._commit)

    def _commit(self) -> None:
        done, self._done = self._done, None
        ok = True
        try:
            self.store.commit()
        except Exception as exc:  # the batch is rolled back: its requests are answered 500, memory reloaded
            ok = False
            log.error("broker_commit_failed", error_type=type(exc).__name__, error=str(exc)[:500])
            self.reload()
        if self.hub is not None:
            self.hub.release(ok)
        if done is not None and not done.done():
            done.set_result(ok)

    async def settled(self) -> bool:
        """Wait until every change made so far is committed; False when its batch could not be."""
        done = self._done
        if done is None:
            return True
        return await asyncio.shield(done)
