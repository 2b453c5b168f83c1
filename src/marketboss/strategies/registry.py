"""Strategies by name, with their parameters validated up front from `--param key=value` pairs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, get_args, get_origin

from pydantic import ValidationError
from pydantic.fields import FieldInfo

from marketboss.errors import MarketBossError
from marketboss.strategies.base import Strategy

_REGISTRY: dict[str, type[Strategy[Any]]] = {}


def register(cls: type[Strategy[Any]]) -> type[Strategy[Any]]:
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
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


def param_type(info: FieldInfo) -> str:
    ann = info.annotation
    if get_origin(ann) is Literal:
        return "|".join(str(a) for a in get_args(ann))
    return (getattr(ann, "__name__", None) or str(ann)).replace("NoneType", "None")


def describe_params(cls: type[Strategy[Any]]) -> list[tuple[str, str, Any, str]]:
    """(name, type, default, description) of each parameter."""
    return [
        (name, param_type(info), info.default, info.description or "")
        for name, info in cls.params_model.model_fields.items()
    ]


def parse_param_pairs(pairs: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key.strip():
            raise MarketBossError(f"--param '{p}' must look like key=value")
        out[key.strip()] = value.strip()
    return out


def create(name: str, params: Mapping[str, Any] | Iterable[str] = ()) -> Strategy[Any]:
    """A strategy with validated parameters; any mistake is one line that lists the valid parameters."""
    table = strategies()
    if name not in table:
        raise MarketBossError(f"unknown strategy '{name}': choose one of {', '.join(table)}")
    cls = table[name]
    values = dict(params) if isinstance(params, Mapping) else parse_param_pairs(params)
    valid = ", ".join(f"{n} ({t}, default {d})" for n, t, d, _ in describe_params(cls))
    try:
        model = cls.params_model.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"])
        if err["type"] == "extra_forbidden":
            raise MarketBossError(f"strategy '{name}' has no parameter '{field}'; valid: {valid}") from None
        shown = f" {field}={values[field]!r}" if field in values else ""
        msg = err["msg"].removeprefix("Value error, ")
        raise MarketBossError(f"strategy '{name}': invalid parameter{shown}: {msg}; valid: {valid}") from None
    return cls(model)
