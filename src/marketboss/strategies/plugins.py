"""Plug-in strategies: a `Strategy` subclass from a file (`path/to/file.py:ClassName`), from an importable
module (`package.module:ClassName`) or from an installed package's entry point in the group
`marketboss.strategies` (`name = "package.module:ClassName"`).

Loading runs the plug-in's code; whatever goes wrong there (no file, a syntax error, an import failing inside
it, no such class, a class that is not a Strategy) becomes one line naming the file (and line) and the
problem, never a traceback. A file is loaded once per process, as a module of its own. An error its code raises
later, as it runs, is one line too (`failure`): the strategy, the error and the plug-in's line it came through;
so is what its code gives that breaks the contract (a StrategyError: an exposure of the wrong shape, a compiled
on_bar that does not compile), naming the strategy by its form.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
import traceback
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

from marketboss.errors import MarketBossError
from marketboss.strategies.base import Strategy, StrategyError, StrategyParams

ENTRY_POINT_GROUP = "marketboss.strategies"
FORMS = "path/to/file.py:ClassName or package.module:ClassName"


class PluginError(MarketBossError):
    """A plug-in strategy that cannot be loaded: one line naming its file and the problem."""


class PluginFailure(MarketBossError):
    """A plug-in strategy's own code failed while it ran: one line naming the strategy, the error and the plug-in's
    line it came through (the user's code is at fault, not MarketBoss: the exit of bad input)."""

    def __init__(self, message: str, detail: str, exit_code: int = MarketBossError.exit_code):
        super().__init__(message)
        self.detail = detail  # the message without the strategy's name (compare's table has a column of it)
        self.exit_code = exit_code

    def __reduce__(self) -> tuple[Any, ...]:  # from a worker process: its three arguments
        return (type(self), (str(self), self.detail, self.exit_code))


def is_spec(text: str) -> bool:
    """A plug-in form (file or module, then a class) rather than a registered name."""
    return ":" in text


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "no message"


def _problem(exc: BaseException, shown: str, own_file: Path | None) -> str:
    """`<plug-in>[, line N]: <Error>: <message>`, at the plug-in's own line when the failure passed through
    it, else naming the deepest file outside Python's import machinery (a module the plug-in imports)."""
    if isinstance(exc, SyntaxError):
        file, line, what = exc.filename, exc.lineno, f"SyntaxError: {_one_line(exc.msg or '')}"
    else:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<frozen")]
        own = [f for f in frames if own_file is not None and Path(f.filename) == own_file]
        last = own or frames
        file, line = (last[-1].filename, last[-1].lineno) if last else (None, None)
        what = f"{type(exc).__name__}: {_one_line(str(exc))}"
    if file is None:
        return f"strategy plug-in {shown}: {what}"
    if own_file is not None and Path(file) == own_file:
        return f"strategy plug-in {shown}, line {line}: {what}"
    return f"strategy plug-in {shown}: {file}, line {line}: {what}"


def _module_name(path: Path) -> str:
    """The name Python gives the file when its directory is on the path (its stem), unless another module has
    that name: then the stem and a hash of the file's path. One file, one name, whichever way it is loaded:
    numba's cache of a compiled function in it (a compiled `on_bar`) records its module's name and must find
    it again in the next process (and alias_module gives it the names of the other forms)."""
    stem = path.stem
    if stem.isidentifier():
        known = sys.modules.get(stem)
        where = getattr(known, "__file__", None) if known is not None else _origin(stem)
        if (known is None and where is None) or (where and Path(where).resolve() == path):
            return stem
    safe = re.sub(r"\W", "_", stem)
    return f"marketboss_plugin_{safe}_{hashlib.sha256(str(path).encode()).hexdigest()[:10]}"


def alias_module(module: ModuleType, path: Path) -> None:
    """The module also under each name the file could be imported by (its path's last parts: `x`, `examples.x`,
    ...; those free): numba's cache beside the file is one for every form, and records the module name of the run
    that wrote it, which a run through another form, or from another directory, must find (before: `No module
    named 'x'` until the cache was deleted)."""
    parts = path.with_suffix("").parts
    for k in range(1, len(parts)):
        if not parts[-k].isidentifier():
            break
        sys.modules.setdefault(".".join(parts[-k:]), module)


def _origin(name: str) -> str | None:
    """Where a top-level module of that name would be imported from (nothing is imported to find out)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return None if spec is None else (spec.origin or "")


def load_file(path: Path, shown: str) -> ModuleType:
    """The module of a plug-in file (loaded once per process); its directory goes on the import path, after the
    installed packages, so that it imports its own helper modules."""
    if not path.is_file():
        raise PluginError(f"strategy plug-in {shown}: no such file")
    full = path.resolve()
    name = _module_name(full)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, full)
    if spec is None or spec.loader is None:
        raise PluginError(f"strategy plug-in {shown}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    if str(full.parent) not in sys.path:  # the modules beside it import as a script's do (after installed ones)
        sys.path.append(str(full.parent))
    sys.modules[name] = module  # pydantic and dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise PluginError(_problem(exc, shown, full)) from None
    alias_module(module, full)
    return module


def import_module(dotted: str) -> ModuleType:
    """An importable module of a plug-in (`package.module`), also under its file's other names (alias_module)."""
    try:
        module = importlib.import_module(dotted)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (dotted == exc.name or dotted.startswith(exc.name + ".")):
            raise PluginError(f"strategy plug-in {dotted}: no module named '{exc.name}' (not installed, nor on "
                              "PYTHONPATH; a file is given as path/to/file.py:ClassName)") from None
        raise PluginError(_problem(exc, dotted, None)) from None
    except Exception as exc:
        raise PluginError(_problem(exc, dotted, None)) from None
    file = getattr(module, "__file__", None)
    if file:
        alias_module(module, Path(file).resolve())
    return module


def _defined(module: ModuleType) -> list[str]:
    return sorted(n for n, c in vars(module).items() if inspect.isclass(c) and issubclass(c, Strategy)
                  and c.__module__ == module.__name__)  # fmt: skip


def strategy_class(module: ModuleType, attr: str, shown: str) -> type[Strategy[Any]]:
    """`attr` (a dotted path inside the module) checked to be a usable Strategy subclass."""
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            there = ", ".join(_defined(module)) or "none"
            raise PluginError(f"strategy plug-in {shown}: no class '{attr}' (Strategy classes defined there: {there})")
        obj = getattr(obj, part)
    if not (inspect.isclass(obj) and issubclass(obj, Strategy)) or obj is Strategy:
        raise PluginError(f"strategy plug-in {shown}: '{attr}' is not a subclass of marketboss.Strategy")
    model = obj.params_model
    if not (inspect.isclass(model) and issubclass(model, StrategyParams)):
        raise PluginError(f"strategy plug-in {shown}: {attr}.params_model must be a subclass of "
                          "marketboss.StrategyParams")
    name = obj.name
    if not isinstance(name, str) or not name.strip():
        raise PluginError(f"strategy plug-in {shown}: {attr}.name must be a non-empty string")
    return obj


#: Each plug-in class loaded, with a form that finds it again from any working directory (another process's).
_SPECS: dict[type, str] = {}
#: The file each plug-in class was defined in (its real path) -> the classes loaded from it, as they were named.
_FILES: dict[str, dict[type, str]] = {}


#: MarketBoss's own source directory (with a separator): a file under it is not a plug-in's.
OWN_CODE = os.path.realpath(Path(__file__).parents[1]) + os.sep


def _remember(cls: type, spec: str, found_by: str) -> None:
    """The class's form, and its file as a plug-in's (MarketBoss's own strategies named as plug-ins are not)."""
    _SPECS.setdefault(cls, found_by)
    try:
        file = os.path.realpath(inspect.getfile(cls))
    except (TypeError, OSError):
        return
    if not file.startswith(OWN_CODE):
        _FILES.setdefault(file, {}).setdefault(cls, spec)


def failure(exc: BaseException) -> PluginFailure | None:
    """The error as a plug-in's own when it was raised inside a loaded plug-in's code (a frame of its traceback
    lies in the file a plug-in class was defined in), naming the strategy, the error and the innermost such frame;
    a StrategyError of a plug-in's strategy, naming it by its form; None when no plug-in code was running
    (MarketBoss's own failure)."""
    if not _FILES or isinstance(exc, PluginError | PluginFailure):
        return None
    if isinstance(exc, StrategyError):  # what its code gave broke the contract: the strategy named by its form
        form = _form(type(exc.strategy))
        return None if form is None else PluginFailure(f"strategy {form}: {exc.detail}", exc.detail, exc.exit_code)
    own = []  # (frame, line, the classes of its file), innermost last
    tb = exc.__traceback__
    while tb is not None:
        classes = _FILES.get(os.path.realpath(tb.tb_frame.f_code.co_filename))
        if classes is not None:
            own.append((tb.tb_frame, tb.tb_lineno, classes))
        tb = tb.tb_next
    if not own:
        return None
    frame, line, classes = own[-1]
    where = f"{Path(frame.f_code.co_filename).name}, line {line}, in {frame.f_code.co_name}"
    who = _strategy(own)
    if isinstance(exc, MarketBossError):  # already says what is wrong (ctx given an unknown symbol, ...)
        detail = f"{_one_line(str(exc))} ({where})"
        return PluginFailure(f"{who}: {detail}", detail, exc.exit_code)
    detail = f"raised {type(exc).__name__}: {_one_line(str(exc))} ({where})"
    return PluginFailure(f"{who} {detail}", detail)


def _set(strategy: Any) -> str:
    """` (k=v ...)`: the strategy's parameters that are not their defaults (a sweep's failing combination among
    many), else ``."""
    params = getattr(strategy, "params", None)
    given = params.model_dump(exclude_defaults=True) if isinstance(params, StrategyParams) else {}
    return f" ({' '.join(f'{k}={v}' for k, v in sorted(given.items()))})" if given else ""


def _form(cls: type) -> str | None:
    """The form the plug-in class (or the plug-in class it derives from) was named by; None: not a plug-in's."""
    for c in cls.__mro__:
        for classes in _FILES.values():
            if c in classes:
                return classes[c]
    return None


def _strategy(own: list[tuple[FrameType, int, dict[type, str]]]) -> str:
    """`strategy <spec>` of the innermost plug-in method's object, else of the only class loaded from the file,
    else `strategy plug-in <file>`."""
    for frame, _, classes in reversed(own):
        obj = frame.f_locals.get("self")
        for cls in type(obj).__mro__:
            if cls in classes:
                return f"strategy {classes[cls]}{_set(obj)}"
    frame, _, classes = own[-1]
    if len(classes) == 1:
        return f"strategy {next(iter(classes.values()))}"
    return f"strategy plug-in {Path(frame.f_code.co_filename).name}"


def load_spec(spec: str) -> type[Strategy[Any]]:
    """The class a plug-in form names: `path/to/file.py:ClassName` or `package.module:ClassName`."""
    where, _, attr = spec.rpartition(":")
    where, attr = where.strip(), attr.strip()
    if not where or not attr:
        raise PluginError(f"strategy '{spec}': a plug-in is given as {FORMS}")
    if looks_like_file(where):
        path = Path(where).expanduser()
        cls = strategy_class(load_file(path, where), attr, where)
        _remember(cls, f"{where}:{attr}", f"{path.resolve()}:{attr}")
    else:
        cls = strategy_class(import_module(where), attr, where)
        _remember(cls, f"{where}:{attr}", f"{where}:{attr}")
    return cls


def looks_like_file(text: str) -> bool:
    """A path to a plug-in file given without its `:ClassName`."""
    return text.endswith(".py") or "/" in text or os.sep in text


def name_the_class(where: str) -> PluginError:
    """What to say of a plug-in file given without its class: its Strategy classes, read by loading it (a
    failure there is the loader's one line, as the class's own form would get it)."""
    there = ", ".join(_defined(load_file(Path(where).expanduser(), where)))
    return PluginError(f"strategy '{where}': name the class, as {where}:ClassName "
                       + (f"(classes there: {there})" if there else "(no Strategy class is defined there)"))


def spec_of(cls: type) -> str | None:
    """The plug-in form a loaded plug-in class was found by (a file's absolute path), if it was loaded so."""
    return _SPECS.get(cls)


def plugin_entry_points() -> dict[str, EntryPoint]:
    """Installed packages' strategies by entry-point name (the first of a duplicated name)."""
    out: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        out.setdefault(ep.name, ep)
    return out


def entry_point_origin(ep: EntryPoint) -> str:
    dist = ep.dist
    return f"entry point '{ep.name}' of {dist.name} {dist.version}" if dist is not None else f"entry point '{ep.name}'"


def load_entry_point(ep: EntryPoint) -> type[Strategy[Any]]:
    """An entry point's class; a failure names the entry point, its package and the problem."""
    try:
        return load_spec(ep.value)
    except PluginError as exc:
        raise PluginError(f"{exc} ({entry_point_origin(ep)})") from None
