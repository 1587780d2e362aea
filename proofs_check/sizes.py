"""``--size FIELD=VALUE`` overrides of a frozen dataclass of run sizes (``gelato verify`` and
``gelato tightness``): one parser, each command giving its own lower limits and ranges."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

__all__ = ["parse_size_overrides"]

#: A float rule: ``(predicate, text)``; a value that fails it is refused as "must be <text>".
FloatRule = tuple[Callable[[float], bool], str]


def _is_int(kind) -> bool:
    return kind in ("int", int, str(int))


def _is_pair(kind) -> bool:
    return str(kind).startswith("tuple")


def parse_size_overrides(base, items, *, int_min: dict[str, int] | None = None,
                         float_rules: dict[str, FloatRule] | None = None,
                         default_float: FloatRule = (math.isfinite, "finite")):
    """``base`` with the ``FIELD=VALUE`` overrides in ``items``: integers ``>= int_min.get(name, 1)``,
    pairs ``LO,HI`` with finite ``LO < HI``, other numbers by ``float_rules[name]`` (default:
    ``default_float``). ``ValueError`` (one line) for an unknown field, a field given twice or a value
    out of its range."""
    int_min, float_rules = int_min or {}, float_rules or {}
    kinds = {f.name: f.type for f in dataclasses.fields(base)}
    new: dict[str, Any] = {}
    for item in items:
        name, sep, text = str(item).partition("=")
        name = name.strip()
        if not sep or name not in kinds:
            raise ValueError(f"--size expects FIELD=VALUE with FIELD one of {', '.join(kinds)}, got {item!r}")
        if name in new:
            raise ValueError(f"--size: {name} given twice")
        kind = kinds[name]
        try:
            if _is_int(kind):
                v = int(text)
            elif _is_pair(kind):
                v = tuple(float(x) for x in text.split(","))
            else:
                v = float(text)
        except ValueError:
            what = "an integer" if _is_int(kind) else "LO,HI" if _is_pair(kind) else "a number"
            raise ValueError(f"--size {name}: expected {what}, got {text!r}") from None
        if _is_int(kind):
            lo = int_min.get(name, 1)
            if v < lo:
                raise ValueError(f"--size {name} must be >= {lo}, got {v}")
        elif _is_pair(kind):
            if len(v) != 2 or not all(math.isfinite(x) for x in v) or not v[0] < v[1]:
                raise ValueError(f"--size {name} expects LO,HI with finite LO < HI, got {text!r}")
        else:
            ok, what = float_rules.get(name, default_float)
            if not (math.isfinite(v) and ok(v)):
                raise ValueError(f"--size {name} must be {what}, got {text!r}")
        new[name] = v
    return dataclasses.replace(base, **new)
