"""Group commit (sqlite_store.py, commits.py): changes share a batch's write transaction, a failed change is undone
alone, nothing is answered before its batch is committed, and a batch that cannot be committed leaves nothing."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from marketboss.local_broker.commits import GroupCommit
from marketboss.local_broker.sqlite_store import SqliteStore


def test_a_batch_commits_its_changes_once_and_a_failed_change_alone_is_undone(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite"
    store = SqliteStore(path)
    opened: list[int] = []
    store.batch_commits(lambda: opened.append(1))
    with pytest.raises(RuntimeError), store.transaction():  # the batch's first change fails: nothing is left open
        store.set_meta("z", "0")
        raise RuntimeError("this change fails")
    assert opened == [1] and not store.uncommitted
    with store.transaction():
        store.set_meta("a", "1")
    with pytest.raises(RuntimeError), store.transaction():
        store.set_meta("b", "2")
        raise RuntimeError("this change fails")
    with store.transaction():
        store.set_meta("c", "3")
        with store.transaction():  # nested: joins the change
            store.set_meta("d", "4")
    assert opened == [1, 1] and store.uncommitted  # three changes, one batch, not committed yet
    assert (store.get_meta("a"), store.get_meta("b"), store.get_meta("c")) == ("1", None, "3")
    store.commit()
    assert not store.uncommitted
    with store.transaction():
        store.set_meta("e", "5")
    assert opened == [1, 1, 1]  # a new batch
    store.batch_commits(None)  # back to a commit per change: what is open is committed first
    assert not store.uncommitted
    store.close()
    again = SqliteStore(path)
    assert [again.get_meta(k) for k in "zabcde"] == [None, "1", None, "3", "4", "5"]
    again.close()


def test_an_answer_waits_for_its_batch_and_a_failed_commit_leaves_nothing(tmp_path: Path) -> None:
    """A deferred foreign key fails at COMMIT, as a full disk would: the whole batch goes, the waiting answers are
    told (False), the engine's memory is reloaded; the next batch commits as usual."""
    path = tmp_path / "b.sqlite"
    store = SqliteStore(path)
    store.db.execute("PRAGMA foreign_keys = ON")
    store.db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    store.db.execute("CREATE TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)")
    reloads: list[int] = []

    async def run() -> tuple[bool, bool, bool, bool]:
        commits = GroupCommit(store, lambda: reloads.append(1))
        commits.start()
        with store.transaction():
            store.set_meta("kept", "yes")
        waiting = asyncio.ensure_future(commits.settled())
        await asyncio.sleep(0)
        unanswered = not waiting.done() and store.uncommitted  # the commit comes a loop turn or two later
        first = await waiting
        with pytest.raises(RuntimeError), store.transaction():  # a batch whose first change fails ...
            store.set_meta("undone", "yes")
            raise RuntimeError("this change fails")
        failed_first = asyncio.ensure_future(commits.settled())
        with store.transaction():  # ... and whose next change opens it again: one commit answers both
            store.set_meta("joined", "yes")
        assert await failed_first and await commits.settled()
        with store.transaction():
            store.set_meta("lost", "yes")
            store.db.execute("INSERT INTO child (p) VALUES (42)")  # no parent 42: COMMIT will fail
        second = await commits.settled()
        with store.transaction():
            store.set_meta("after", "yes")
        third = await commits.settled()
        commits.stop()
        return unanswered, first, second, third

    unanswered, first, second, third = asyncio.run(run())
    assert unanswered and first and not second and third
    assert reloads == [1]
    store.close()
    again = SqliteStore(path)
    got = [again.get_meta(k) for k in ("kept", "undone", "joined", "lost", "after")]
    assert got == ["yes", None, "yes", None, "yes"]
    assert again.db.execute("SELECT COUNT(*) FROM child").fetchone()[0] == 0
    again.close()


def test_without_batching_every_change_commits_at_once(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite"
    store = SqliteStore(path)
    with store.transaction():
        store.set_meta("a", "1")
    assert not store.uncommitted
    with pytest.raises(sqlite3.IntegrityError), store.transaction():
        store.set_meta("b", "2")
        store.db.execute("INSERT INTO meta (key, value) VALUES ('a', '9')")  # duplicate key: the change fails
    store.close()
    again = SqliteStore(path)
    assert (again.get_meta("a"), again.get_meta("b")) == ("1", None)
    again.close()


def test_a_batchs_trade_updates_leave_with_its_commit_and_a_failed_commits_never_leave(tmp_path: Path) -> None:
    """The trading stream tells what the database holds: events announced inside a batch wait for its commit, and
    those of a batch that could not be committed (its changes are gone) are never sent."""
    from marketboss.local_broker.events import EventHub

    store = SqliteStore(tmp_path / "b.sqlite")
    store.db.execute("PRAGMA foreign_keys = ON")
    store.db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    store.db.execute("CREATE TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)")
    hub = EventHub()

    async def run() -> tuple[list[str], list[str], list[str]]:
        listener = hub.listen()
        commits = GroupCommit(store, lambda: None, hub)
        commits.start()

        def sent() -> list[str]:
            out = []
            while not listener.queue.empty():
                out.append(listener.queue.get_nowait()["event"])
            return out

        with store.transaction():
            store.set_meta("kept", "yes")
            hub.publish([{"event": "new"}])
        before = sent()  # announced, not committed yet
        assert await commits.settled()
        after = sent()
        with store.transaction():
            store.set_meta("lost", "yes")
            store.db.execute("INSERT INTO child (p) VALUES (42)")  # COMMIT fails
            hub.publish([{"event": "fill"}])
        assert not await commits.settled()
        return before, after, sent()

    before, after, failed = asyncio.run(run())
    assert (before, after, failed) == ([], ["new"], [])
    assert hub.published == 1
    store.close()
