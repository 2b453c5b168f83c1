"""The compiled event loop kept on disk for each strategy's on_bar (events._loop), beside the on_bar's own cache.

numba's cache cannot find a function again in another process when one of its arguments is a function: the
argument's type is the function object of the process that compiled it. So the loop, compiled with each
strategy's on_bar in it, was compiled again in every process: ~0.6 s, a third of a `marketboss backtest` of a
compiled strategy on the demo data, paid again by each sweep worker and each start of the live loop. This cache
keeps the loop of an on_bar compiled with `@njit(cache=True)`, in that on_bar's cache directory (its
`__pycache__`), named for it and stamped with its file and events.py: numba's own terms for a stale cache,
which the on_bar's author chose (a change of either file compiles it again, and so does deleting the on_bar's
cache; a change of another module the on_bar calls does not, as for numba's cache of the on_bar itself). The
loop it loads is given the calling process's on_bar type."""

from __future__ import annotations

import hashlib
from typing import Any

from numba import types
from numba.core import caching, config, typing
from numba.core.dispatcher import Dispatcher


def _on_bar(sig: Any) -> Any:
    """The on_bar (a Dispatcher) among a signature's types."""
    return next(t.dispatcher for t in sig if isinstance(t, types.Dispatcher))


class OnBarLoopCache(caching.FunctionCache):
    """numba's cache of a function, for a function taking an on_bar (a Dispatcher) among its arguments: an index
    and data files for each on_bar, beside its own."""

    def _file(self, sig: Any) -> caching.IndexDataCacheFile:
        own = _on_bar(sig)._cache
        return caching.IndexDataCacheFile(own._cache_path, f"marketboss_loop.{own._impl.filename_base}",
                                          (self._cache_file._source_stamp, own._cache_file._source_stamp))

    def _index_key(self, sig: Any, codegen: Any) -> Any:
        """numba's key, the on_bar named by its bytecode (its file's stamp is the index's), and the settings that
        change the code compiled but not numba's key (NUMBA_BOUNDSCHECK: docs/event-driven.md has a run with it
        find a look-ahead)."""
        args, magic, code = super()._index_key(sig, codegen)
        named = tuple(hashlib.sha256(t.dispatcher.py_func.__code__.co_code).hexdigest()
                      if isinstance(t, types.Dispatcher) else t for t in args)  # fmt: skip
        return named, magic, code, (config.BOUNDSCHECK, str(config.OPT))  # type: ignore[attr-defined]

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        if not _kept(_on_bar(sig)):
            return None
        target_context.refresh()
        try:
            data = self._file(sig).load(self._index_key(sig, target_context.codegen()))
            if data is None:
                return None
            cres = self._impl.rebuild(target_context, data)
        except Exception:  # an entry this process cannot read back: compiled again, and rewritten
            return None
        return cres._replace(signature=typing.signature(cres.signature.return_type, *sig))

    def save_overload(self, sig: Any, data: Any) -> None:
        if _kept(_on_bar(sig)) and self._impl.check_cachable(data):
            _on_bar(sig)._cache._impl.locator.ensure_cache_path()
            self._file(sig).save(self._index_key(sig, data.codegen), self._impl.reduce(data))


def cache_loop(loop: Dispatcher) -> None:
    """Keep `loop`'s compilations on disk (OnBarLoopCache), as cache=True would if it could."""
    loop._cache = OnBarLoopCache(loop.py_func)  # type: ignore[attr-defined]  # what enable_caching sets


def _kept(on_bar: Any) -> bool:
    """Whether the on_bar itself is kept (compiled with cache=True): the loop is then kept with it."""
    return not isinstance(on_bar._cache, caching.NullCache)
