"""A strategy's parameters as a user reads them: each one's type, default and description (`strategies list`,
error messages), and a parameter model's validation error as one line naming the parameter and listing the
valid ones. Below base.py: a Strategy made with a bad keyword says so in these words too."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from enum import Enum
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from marketboss.errors import MarketBossError


def param_type(info: FieldInfo) -> str:
    """The parameter's type as a user writes it: `sma|ema` for choices, `float | None`, `weekly | monthly | int |
    None` for a union of choices, a number and None (a typing.Union's own name is only "Union")."""
    return _type_text(info.annotation)


def _type_text(ann: Any) -> str:
    origin = get_origin(ann)
    if origin is Annotated:  # constraints (Field(ge=1)) are the error messages' to tell
        return _type_text(get_args(ann)[0])
    if (choices := _choices(ann)) is not None:
        return "|".join(choices)
    if origin is Union or origin is UnionType:
        return " | ".join(c for a in get_args(ann) for c in (_choices(a) or [_type_text(a)]))
    if ann is None or ann is type(None):
        return "None"
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(_type_text(a) for a in get_args(ann))}]"
    return getattr(ann, "__name__", None) or str(ann)


def _choices(ann: Any) -> list[str] | None:
    """A Literal's values or an Enum's, or None."""
    if get_origin(ann) is Literal:
        return [str(a) for a in get_args(ann)]
    if inspect.isclass(ann) and issubclass(ann, Enum):
        return [str(m.value) for m in ann]
    return None


def describe_params(cls: type[Any]) -> list[tuple[str, str, Any, str]]:
    """(name, type, default, description) of each parameter of a Strategy class (its params_model's)."""
    return [
        (name, param_type(info), _default(info), info.description or "")
        for name, info in cls.params_model.model_fields.items()
        if name not in cls.params_model.unused
    ]


def _default(info: FieldInfo) -> Any:
    """The default as --param would give it: an enum's value, a default_factory's product."""
    try:
        default = info.get_default(call_default_factory=True, validated_data={})
    except Exception:  # a factory of the other fields' values: nothing to show before they are known
        return "computed"
    return default.value if isinstance(default, Enum) else default


def params_error(name: str, cls: type[Any], errors: Sequence[ErrorDetails], values: Mapping[str, Any]
                 ) -> MarketBossError:  # fmt: skip
    """A parameter model's errors as one line naming the strategy and the first parameter at fault, with what is
    wrong with it (telling_error) and the valid parameters."""
    valid = ", ".join(f"{n} ({t}, default {d})" for n, t, d, _ in describe_params(cls))
    err = telling_error(errors)
    field = str(err["loc"][0]) if err["loc"] else ""
    if err["type"] == "extra_forbidden":
        return MarketBossError(f"strategy '{name}' has no parameter '{field}'; valid: {valid}")
    shown = f" {field}={values[field]!r}" if field in values else ""
    msg = err["msg"].removeprefix("Value error, ")
    if len(err["loc"]) > 1 and is_type_error(err["type"]) and field in cls.params_model.model_fields:
        msg = f"expected {param_type(cls.params_model.model_fields[field])}"  # of no branch of its union's types
    return MarketBossError(f"strategy '{name}': invalid parameter{shown}: {msg}; valid: {valid}")


def telling_error(errors: Sequence[ErrorDetails]) -> ErrorDetails:
    """The first parameter's error that says what is wrong: pydantic reports a union's value once per branch
    (loc (field, branch)); the branch whose type the value has tells (rebalance=0, an int below 1: not "should
    be 'weekly' or 'monthly'"). Another field's error is the first one."""
    first = errors[0]
    if len(first["loc"]) < 2:
        return first
    branches = [e for e in errors if len(e["loc"]) > 1 and e["loc"][0] == first["loc"][0]]
    return next((e for e in branches if not is_type_error(e["type"])), first)


def is_type_error(kind: str) -> bool:
    """Whether a pydantic error type says the value is not of the type (a number's text, one of the choices),
    rather than out of its range."""
    return kind.endswith(("_parsing", "_type")) or kind in ("literal_error", "enum", "int_from_float")  # 5.5 of an int
