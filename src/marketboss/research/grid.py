"""Parameter grids: `fast=5:50:5` (an inclusive range), `ma=sma,ema` (a list), `quantity=10` (one value).

Every combination is validated by the strategy's own parameter model; those it rejects (fast >= slow, a
value out of range) are skipped and counted, with the first reason kept for the user. A value no combination
could take (not of its parameter's type: `fast=5,x`, `ma=sma,emaa`) is a typo, refused before anything runs.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from marketboss.errors import MarketBossError
from marketboss.strategies import Strategy, StrategyParams, resolve
from marketboss.strategies.params_text import is_type_error, params_error, telling_error
from marketboss.strategies.registry import with_nones

MAX_COMBINATIONS = 1_000_000


def _number(text: str) -> Decimal | None:
    try:
        d = Decimal(text)
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def _value(d: Decimal) -> int | float:
    return int(d) if d == d.to_integral_value() else float(d)


def _scalar(text: str) -> Any:
    d = _number(text)
    return text if d is None else _value(d)


def parse_axis(spec: str) -> tuple[str, list[Any]]:
    """One `--grid name=values` option: (name, values in order, duplicates removed)."""
    name, sep, text = spec.partition("=")
    name, text = name.strip(), text.strip()
    if not sep or not name or not text:
        raise MarketBossError(f"--grid '{spec}' must look like name=a:b:step, name=v1,v2 or name=value")
    if ":" in text:
        parts = [p.strip() for p in text.split(":")]
        nums = [_number(p) for p in parts]
        if len(parts) not in (2, 3) or any(x is None for x in nums):
            raise MarketBossError(f"--grid '{spec}': a range is start:stop or start:stop:step, in numbers")
        a, b = nums[0], nums[1]
        step = nums[2] if len(nums) == 3 else Decimal(1)
        assert a is not None and b is not None and step is not None
        if step <= 0 or b < a:
            raise MarketBossError(f"--grid '{spec}': need start <= stop and a positive step")
        count = int((b - a) / step) + 1
        if count > MAX_COMBINATIONS:
            raise MarketBossError(f"--grid '{spec}': {count:,} values is too many")
        values: list[Any] = [_value(a + i * step) for i in range(count)]  # inclusive of stop when on the step
    else:
        values = [_scalar(p.strip()) for p in text.split(",")]
        if any(v == "" for v in values):
            raise MarketBossError(f"--grid '{spec}': empty value in the list")
    return name, list(dict.fromkeys(values))


@dataclass(frozen=True)
class Combinations:
    """The valid parameter sets, in grid order (the last axis varies fastest), and what was skipped."""

    strategy: str
    keys: tuple[str, ...]  # the swept parameters (axes with more than one value first, in --grid order)
    params: tuple[StrategyParams, ...]
    skipped: int
    skip_reason: str | None

    def dicts(self) -> list[dict[str, Any]]:
        return [p.model_dump(mode="json") for p in self.params]


def combinations(
    strategy: str, grid: Sequence[str] | Mapping[str, Sequence[Any]], fixed: Mapping[str, Any] | None = None
) -> Combinations:
    """Expand `--grid` specs (or a mapping of name -> values) over the strategy's parameter model."""
    cls = resolve(strategy)
    model = cls.params_model
    axes = {k: [with_nones(model, {k: v})[k] for v in vs]
            for k, vs in (dict(grid) if isinstance(grid, Mapping) else _axes(grid)).items()}
    fixed = with_nones(model, fixed or {})
    valid = ", ".join(f for f in model.model_fields if f not in model.unused)  # as describe_params lists them
    for name in (*axes, *fixed):
        if name not in model.model_fields:
            raise MarketBossError(f"strategy '{strategy}' has no parameter '{name}'; valid: {valid}")
    both = sorted(set(axes) & set(fixed))
    if both:
        raise MarketBossError(f"parameter '{both[0]}' is given both as --grid and as --param")
    _check_fixed(strategy, cls, fixed)
    _check_types(strategy, cls, axes, fixed)
    total = 1
    for values in axes.values():
        total *= max(len(values), 1)
    if total > MAX_COMBINATIONS:
        raise MarketBossError(f"the grid has {total:,} combinations; the limit is {MAX_COMBINATIONS:,}")
    names = list(axes)
    kept: list[StrategyParams] = []
    skipped = 0
    reason: str | None = None
    for combo in itertools.product(*(axes[k] for k in names)):
        try:
            kept.append(model.model_validate({**fixed, **dict(zip(names, combo, strict=True))}))
        except ValidationError as exc:
            skipped += 1
            if reason is None:
                reason = _reason(exc, {**fixed, **dict(zip(names, combo, strict=True))})
    if not kept:
        raise MarketBossError(f"strategy '{strategy}': no valid parameter combination: all {skipped} were rejected "
                              f"({reason})")
    keys = tuple([k for k in names if len(axes[k]) > 1] + [k for k in names if len(axes[k]) <= 1])
    return Combinations(strategy, keys, tuple(kept), skipped, reason)


def _check_fixed(strategy: str, cls: type[Strategy[Any]], fixed: Mapping[str, Any]) -> None:
    """A --param value that is wrong in itself (not a number, out of its range) would reject every combination:
    refused as `create` refuses it. One wrong only beside other values (fast >= slow) is left to each combination."""
    try:
        cls.params_model.model_validate(fixed)
    except ValidationError as exc:
        own = [e for e in exc.errors() if e["loc"] and e["loc"][0] in fixed]
        if own:
            raise params_error(strategy, cls, own, fixed) from None


def _check_types(strategy: str, cls: type[Strategy[Any]], axes: Mapping[str, Sequence[Any]],
                 fixed: Mapping[str, Any]) -> None:  # fmt: skip
    """A grid value not of its parameter's type (a number's text, one of its choices) is refused: no combination
    could take it, and skipping it would hide the typo. One out of its range is left to be skipped (a range
    may cross a bound)."""
    for name, values in axes.items():
        for v in values:
            try:
                cls.params_model.model_validate({**fixed, name: v})
            except ValidationError as exc:
                own = [e for e in exc.errors() if e["loc"] and e["loc"][0] == name]
                if own and is_type_error(telling_error(own)["type"]):  # a union's: of none of its types
                    raise params_error(strategy, cls, own, {**fixed, name: v}) from None


def _axes(specs: Iterable[str]) -> dict[str, list[Any]]:
    axes: dict[str, list[Any]] = {}
    for spec in specs:
        name, values = parse_axis(spec)
        if name in axes:
            raise MarketBossError(f"--grid '{name}' is given twice")
        axes[name] = values
    return axes


def _reason(exc: ValidationError, combo: Mapping[str, Any]) -> str:
    err = exc.errors()[0]
    field = ".".join(str(x) for x in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    return f"{field}={combo[field]!r}: {msg}" if field in combo else msg
