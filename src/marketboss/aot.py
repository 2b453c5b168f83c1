"""A package's numba kernels (its nb.py) as a command calls them: through a module compiled ahead of time from
nb.py when one was built from the current sources, else through nb.py itself.

Why: importing numba and loading its cache cost a command ~0.5-0.8 s before any work; a module numba.pycc
compiled ahead of time (`make` builds it, scripts/compile_kernels.py) loads in milliseconds without numba. The
module exports, per kernel, a forwarder to nb.py's own function compiled for the one signature its package
declares (numba compiles the call as nb.py declares the kernel: its error model and fastmath flags), so both
paths run the same code. The compiled code checks no types, so `Kernels.call` checks the arguments; any other
arguments (numba would compile another specialisation), a module that is missing or stale (built from other
sources), or MARKETBOSS_AOT=off send the call to nb.py. Each package declares its kernels in its own
`kernels.py` (SIGNATURES and thin typed wrappers) and imports that, never nb.py, on the paths commands run.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import tempfile
import warnings
from collections.abc import Mapping
from importlib import import_module
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np


class Arr(NamedTuple):
    """A C-contiguous array argument of this dtype and dimension count."""

    dtype: str
    ndim: int


#: A scalar argument ("float64", "bool", "int64"), an array, or a named tuple (of the kernel's own class) of these.
Spec = str | Arr | tuple[Any, ...]

_UNSET: Any = object()


class Kernels:
    """The kernels of the package holding the `kernels.py` named by `module` and `file` (its __name__ and
    __file__): those of the package's nb.py named in `signatures`, each with its argument types. `sources`:
    the files besides nb.py, kernels.py and this one whose code the compiled module holds (what nb.py
    imports); a change to any of them leaves the module stale (unused)."""

    def __init__(self, module: str, file: str, signatures: Mapping[str, tuple[Spec, ...]],
                 sources: tuple[Path, ...] = ()) -> None:  # fmt: skip
        self.package = module.rpartition(".")[0]
        self.directory = Path(file).parent
        self.signatures = dict(signatures)
        self.sources = (self.directory / "nb.py", *sources, Path(file), Path(__file__))
        self._module: ModuleType | None = _UNSET

    def call(self, name: str, *args: Any) -> Any:
        """nb.py's kernel `name` on `args`: compiled ahead of time when they fit its signature."""
        module = self.compiled()
        if module is not None and all(map(fits, self.signatures[name], args)):
            return getattr(module, name)(*args)
        return getattr(import_module(f"{self.package}.nb"), name)(*args)

    def module_name(self) -> str:
        """The compiled module's name for the current sources: `_aot_` and their digest."""
        digest = hashlib.sha256()
        for path in self.sources:
            digest.update(path.read_bytes())
        return f"_aot_{digest.hexdigest()[:16]}"

    def compiled(self) -> ModuleType | None:
        """The module built from the current sources, or None (not built, built from others, or
        MARKETBOSS_AOT=off); looked for once a process (`forget` looks again)."""
        if self._module is _UNSET:
            self._module = None
            if os.environ.get("MARKETBOSS_AOT", "").lower() not in ("off", "0", "false", "no"):
                with contextlib.suppress(ImportError):
                    self._module = import_module(f"{self.package}.{self.module_name()}")
        return self._module

    def forget(self) -> None:
        """Look for the module again at the next call (after a build, or a change of MARKETBOSS_AOT)."""
        self._module = _UNSET

    def build(self) -> Path:
        """Compile the module beside nb.py (numba.pycc and a C compiler; `make` runs this), removing the
        modules of earlier sources. Returns the module's file."""
        from numba import types

        with warnings.catch_warnings():  # pycc is "pending deprecation" with no replacement released (numba 0.68)
            warnings.filterwarnings("ignore", message="The 'pycc' module is pending deprecation")
            from numba.pycc import CC

        nb = import_module(f"{self.package}.nb")
        cc = CC(self.module_name())
        cc.target_cpu = "host"  # built where it runs, like numba's own cache
        for kernel, spec in self.signatures.items():
            cc.export(kernel, tuple(_numba_type(types, s) for s in spec))(_forwarder(getattr(nb, kernel)))
        with tempfile.TemporaryDirectory(prefix=".aot-build-", dir=self.directory) as tmp:
            cc.output_dir = tmp
            cc.compile()
            target = self.directory / cc.output_file
            os.replace(Path(tmp) / cc.output_file, target)  # whole or absent: a running command may look for it
        for old in self.directory.glob("_aot_*"):
            if old != target:
                old.unlink()
        self.forget()
        return target


def fits(spec: Spec, value: Any) -> bool:
    """Whether `value` is of the type `spec` stands for (what the compiled code assumes without checking)."""
    if isinstance(spec, Arr):
        return (isinstance(value, np.ndarray) and value.ndim == spec.ndim and value.dtype == spec.dtype
                and value.flags.c_contiguous and value.flags.aligned)  # fmt: skip
    if isinstance(spec, tuple):
        return type(value) is type(spec) and all(map(fits, spec, value))
    if spec == "float64":
        return isinstance(value, float)
    if spec == "bool":
        return isinstance(value, bool | np.bool_)
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _numba_type(types: Any, spec: Spec) -> Any:
    if isinstance(spec, Arr):
        return types.Array(getattr(types, "boolean" if spec.dtype == "bool" else spec.dtype), spec.ndim, "C")
    if isinstance(spec, tuple):  # as numba.typeof types the kernel's named tuple
        fields = [_numba_type(types, s) for s in spec]
        if all(f == fields[0] for f in fields):
            return types.NamedUniTuple(fields[0], len(fields), type(spec))
        return types.NamedTuple(fields, type(spec))
    return getattr(types, "boolean" if spec == "bool" else spec)


def _forwarder(kernel: Any) -> Any:
    """A function of the kernel's parameters that calls it (numba.pycc compiles a fixed-arity function)."""
    params = ", ".join(inspect.signature(kernel.py_func).parameters)
    scope = {"kernel": kernel}
    exec(f"def forward({params}):\n    return kernel({params})\n", scope)
    return scope["forward"]

