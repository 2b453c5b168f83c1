"""An in-process cache keyed by file identity: an edited file is re-read on the next rerun (no hard refresh),
an unchanged one costs one stat().

Streamlit's own caches pickle (cache_data) or assume no concurrency in loading (cache_resource); this one keeps
immutable polars frames as they are, loads each key once even when two sessions (or a prefetch thread) ask at
the same time, and remembers failures too, so a malformed file is not re-parsed on every rerun.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class FileKey:
    """What a file is right now: any edit changes mtime, size or inode (atomic replace), hence the key."""

    path: str  # as the user gave it: shown in messages
    resolved: str
    mtime_ns: int  # -1 when missing
    size: int
    inode: int
    is_dir: bool = False

    @property
    def exists(self) -> bool:
        return self.mtime_ns >= 0

    @property
    def empty(self) -> bool:
        return self.exists and not self.is_dir and self.size == 0


def file_key(path: str | Path) -> FileKey:
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except OSError:
        return FileKey(str(path), str(p.absolute()), -1, -1, -1)
    return FileKey(str(path), str(p.resolve()), st.st_mtime_ns, st.st_size, st.st_ino, p.is_dir())


@dataclass(frozen=True)
class _Outcome:
    value: Any = None
    error: BaseException | None = None


class _Memo:
    """LRU of outcomes; a lock per key so that concurrent callers of one key wait for a single computation."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._data: OrderedDict[tuple[Any, ...], _Outcome] = OrderedDict()
        self._locks: dict[tuple[Any, ...], threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        with self._lock:
            hit = self._data.get(key)
            if hit is None:
                key_lock = self._locks.setdefault(key, threading.Lock())
            else:
                self._data.move_to_end(key)
        if hit is None:
            with key_lock:
                with self._lock:
                    hit = self._data.get(key)
                if hit is None:
                    try:
                        hit = _Outcome(value=compute())
                    except Exception as exc:
                        hit = _Outcome(error=exc)
                    with self._lock:
                        self._data[key] = hit
                        while len(self._data) > self.maxsize:
                            self._data.popitem(last=False)
                        self._locks.pop(key, None)
        if hit.error is not None:
            raise hit.error.with_traceback(None)
        return hit.value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


_MEMOS: list[_Memo] = []


def memoize(maxsize: int) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Cache a function of hashable arguments (FileKeys, numbers, strings, tuples of them)."""

    def decorate(fn: Callable[P, T]) -> Callable[P, T]:
        memo = _Memo(maxsize)
        _MEMOS.append(memo)

        @wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            key = (args, tuple(sorted(kwargs.items())))
            out: T = memo.get(key, lambda: fn(*args, **kwargs))
            return out

        return wrapper

    return decorate


def clear_all() -> None:
    for memo in _MEMOS:
        memo.clear()


_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="mb-prefetch")


def prefetch(fn: Callable[..., Any], *args: Any) -> Future[Any]:
    """Start a cached load in the background: the big files load side by side while the page renders; the
    section that needs one then finds it in the cache (or waits for it)."""
    return _POOL.submit(fn, *args)
