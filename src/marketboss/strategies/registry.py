"""Strategies by name (built-in, registered, or an installed package's entry point) or by plug-in form
(`path/to/file.py:ClassName`, `package.module:ClassName`), with their parameters validated up front from
`--param key=value` pairs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from difflib import get_close_matches
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import ValidationError

from marketboss.errors import MarketBossError
from marketboss.strategies.base import Strategy, StrategyParams
from marketboss.strategies.params_text import params_error
from marketboss.strategies.plugins import (
    FORMS,
    PluginError,
    entry_point_origin,
    is_spec,
    load_entry_point,
    load_spec,
    looks_like_file,
    name_the_class,
    plugin_entry_points,
)

_REGISTRY: dict[str, type[Strategy[Any]]] = {}


def register(cls: type[Strategy[Any]], replace: bool = False) -> type[Strategy[Any]]:
    """Make `cls` findable by its name (`--strategy NAME` in this process). `replace`: a class of the same
    name registered before gives way (a notebook cell run again), unless that is a built-in."""
    old = _REGISTRY.get(cls.name)
    if old is not None and old is not cls and (not replace or old in builtins()):
        raise ValueError(f"strategy name '{cls.name}' is already registered")
    _REGISTRY[cls.name] = cls
    return cls


def builtins() -> tuple[type[Strategy[Any]], ...]:
    """The built-in strategies, listed explicitly (a strategy module missing here fails a test). Imported when
    asked for: the ml strategy brings in the model stack."""
    from marketboss.strategies.ma_crossover import MACrossover
    from marketboss.strategies.mean_reversion import MeanReversion
    from marketboss.strategies.ml import ML
    from marketboss.strategies.momentum import Momentum

    return MACrossover, Momentum, MeanReversion, ML


def _load_builtins() -> None:
    for cls in builtins():
        register(cls)


def strategies() -> dict[str, type[Strategy[Any]]]:
    _load_builtins()
    return dict(sorted(_REGISTRY.items()))


def parse_param_pairs(pairs: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key.strip():
            raise MarketBossError(f"--param '{p}' must look like key=value")
        if key.strip() in out:  # one would be dropped without a word
            raise MarketBossError(f"--param {key.strip()} is given twice ({out[key.strip()]} and {value.strip()})")
        out[key.strip()] = value.strip()
    return out


def resolve(spec: str) -> type[Strategy[Any]]:
    """The class a `--strategy` names: a registered name, an installed entry point's name, or a plug-in form.
    A plug-in may not take a built-in's `name`: its signals would get that strategy's ids."""
    table = strategies()
    if spec in table:
        return table[spec]
    if is_spec(spec):
        cls = load_spec(spec)
    elif looks_like_file(spec):
        raise name_the_class(spec)
    else:
        eps = plugin_entry_points()
        if spec not in eps:
            known = [*table, *(n for n in eps if n not in table)]
            close = get_close_matches(spec, known, n=3)
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            raise MarketBossError(f"unknown strategy '{spec}'{hint}: choose one of {', '.join(known)}, or give a "
                                  f"plug-in as {FORMS}")
        cls = load_entry_point(eps[spec])
    if any(b.name == cls.name and b is not cls for b in builtins()):
        raise PluginError(f"strategy plug-in {spec}: its name '{cls.name}' is the built-in strategy's (a subclass "
                          "inherits it); give the class its own `name`, from which its signal ids are derived")
    return cls


@dataclass(frozen=True)
class Listed:
    """A strategy `strategies list` shows: its class, or why it could not be loaded."""

    name: str
    origin: str
    cls: type[Strategy[Any]] | None
    error: str | None = None


def catalogue(specs: Iterable[str] = ()) -> list[Listed]:
    """The built-in and registered strategies, every installed plug-in (entry points) and the plug-ins named
    in `specs`; a plug-in that cannot be loaded is listed with its one-line reason."""
    table = strategies()
    out = [Listed(n, "built-in" if c.__module__.startswith("marketboss.") else c.__module__, c)
           for n, c in table.items()]  # fmt: skip
    wanted = [(n, entry_point_origin(ep)) for n, ep in plugin_entry_points().items()]
    wanted += [(s, "plug-in") for s in specs if s not in table]
    for name, origin in wanted:
        if name in table:  # an entry point named like a built-in: the built-in wins
            out.append(Listed(name, origin, None, f"{origin}: the name '{name}' is taken by a built-in strategy, "
                                                  f"which --strategy {name} runs"))
            continue
        try:
            out.append(Listed(name, origin, resolve(name)))
        except MarketBossError as exc:
            out.append(Listed(name, origin, None, str(exc)))
    return out


def create(name: str, params: Mapping[str, Any] | Iterable[str] = ()) -> Strategy[Any]:
    """A strategy with validated parameters; any mistake is one line that lists the valid parameters.
    `name` is anything `resolve` takes."""
    cls = resolve(name)
    return cls(_validated(name, cls, params))


def check_params(name: str, params: Mapping[str, Any] | Iterable[str] = ()) -> StrategyParams:
    """The strategy's validated parameters, without making the strategy (which may load a model): for a command
    to refuse a bad --param before it runs anything, in create's words."""
    return _validated(name, resolve(name), params)


def with_nones(model: type[StrategyParams], values: Mapping[str, Any]) -> dict[str, Any]:
    """`none` (or `null`, any case) for a parameter that may be None is None: `--param stop_loss_pct=none` unsets
    a default stop, `--grid trail_percent=2,none` sweeps with and without."""
    fields = model.model_fields
    return {k: None if isinstance(v, str) and v.strip().lower() in ("none", "null") and k in fields
            and _accepts_none(fields[k].annotation) else v for k, v in values.items()}  # fmt: skip


def _accepts_none(ann: Any) -> bool:
    if get_origin(ann) is Annotated:
        return _accepts_none(get_args(ann)[0])
    if get_origin(ann) is Union or get_origin(ann) is UnionType:
        return any(_accepts_none(a) for a in get_args(ann))
    return ann is None or ann is type(None)


def _validated(name: str, cls: type[Strategy[Any]], params: Mapping[str, Any] | Iterable[str]) -> StrategyParams:
    values = with_nones(cls.params_model, dict(params) if isinstance(params, Mapping) else parse_param_pairs(params))
    try:
        return cls.params_model.model_validate(values)
    except ValidationError as exc:
        raise params_error(name, cls, exc.errors(), values) from None
