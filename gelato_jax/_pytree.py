"""Frozen, validated dataclass pytrees.

``flax.struct.dataclass`` and ``jax.tree_util.register_dataclass`` rebuild objects through
``__init__`` when JAX unflattens them (with tracers, batch tracers or ``in_axes`` integers as
leaves), so validation in ``__post_init__`` would run on values that are not parameters. Here the
constructor validates and ``tree_unflatten`` bypasses it: only user-facing construction and
``replace`` are checked.

Numeric fields are pytree leaves (they pass through ``jit``/``vmap``, so sweeping them does not
recompile); fields declared with ``static_field()`` are part of the treedef (changing them
recompiles, as it must for shape-determining integers and mode strings).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["pytree_dataclass", "static_field", "leaf_field", "Check", "check_real", "check_int", "check_choice"]


def static_field(default: Any, **kw: Any) -> Any:
    return dataclasses.field(default=default, metadata={"static": True, **kw})


def leaf_field(default: Any, **kw: Any) -> Any:
    return dataclasses.field(default=default, metadata={"static": False, **kw})


def _is_tracer(x: Any) -> bool:
    import jax

    return isinstance(x, jax.core.Tracer)


def _concrete_values(x: Any) -> np.ndarray | None:
    """Return the value as a float64 numpy array, or ``None`` if it is abstract (a tracer)."""
    if _is_tracer(x):
        return None
    return np.asarray(x, dtype=np.float64)


Check = Callable[[str, Any], Any]


def _fmt_range(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    left = "(" if lo_open or lo is None else "["
    right = ")" if hi_open or hi is None else "]"
    lo_s = "-inf" if lo is None else f"{lo:g}"
    hi_s = "inf" if hi is None else f"{hi:g}"
    return f"{left}{lo_s}, {hi_s}{right}"


def check_real(
    owner: str,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> Check:
    """A validator for a finite real leaf (scalar or array of values) in a range."""
    rng = _fmt_range(lo, hi, lo_open, hi_open)

    def check(name: str, value: Any) -> Any:
        # Python containers (a TOML array, ``--set W=1,2``) are not a number: a leaf is a scalar or
        # an explicit numpy/JAX array (for stacked scenarios); a list would reach jit as a pytree.
        if (
            value is None
            or isinstance(value, (bool, np.bool_, str, bytes, list, tuple, dict, set, complex))
            or np.iscomplexobj(value)
        ):
            raise ValueError(f"{owner}.{name}: expected a real number in {rng}, got {value!r} ({type(value).__name__})")
        if isinstance(value, numbers.Real):
            value = float(value)
        try:
            arr = _concrete_values(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"{owner}.{name}: expected a real number in {rng}, got {value!r} ({type(value).__name__})"
            ) from None
        if arr is None:
            return value
        if arr.dtype == object or arr.size == 0:
            raise ValueError(f"{owner}.{name}: expected a real number in {rng}, got {value!r}")
        bad = ~np.isfinite(arr)
        if lo is not None:
            bad |= (arr <= lo) if lo_open else (arr < lo)
        if hi is not None:
            bad |= (arr >= hi) if hi_open else (arr > hi)
        if np.any(bad):
            shown = arr[bad].ravel()[0]
            raise ValueError(f"{owner}.{name} must be a finite number in {rng}, got {float(shown)!r}")
        return value

    return check


def check_int(owner: str, lo: int | None = None, hi: int | None = None) -> Check:
    rng = _fmt_range(lo, hi, False, False)

    def check(name: str, value: Any) -> Any:
        if isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{owner}.{name}: expected an integer in {rng}, got {value!r}")
        if isinstance(value, numbers.Integral):
            value = int(value)
        elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"{owner}.{name}: expected an integer in {rng}, got {value!r} ({type(value).__name__})")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ValueError(f"{owner}.{name} must be an integer in {rng}, got {value}")
        return value

    return check


def check_choice(owner: str, choices: Sequence[str]) -> Check:
    def check(name: str, value: Any) -> Any:
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"{owner}.{name} must be one of {list(choices)}, got {value!r}")
        return value

    return check


def pytree_dataclass(cls: type | None = None, *, checks: dict[str, Check] | None = None):
    """Make ``cls`` a frozen dataclass registered as a pytree with validation on construction.

    ``checks`` maps field names to validators ``check(name, value) -> normalised value``.
    A ``_validate_cross(self)`` method, if defined, runs after the per-field checks (on concrete
    values only).
    """

    def wrap(cls: type) -> type:
        import jax

        field_checks = dict(checks or {})
        original_post_init = getattr(cls, "__post_init__", None)

        def __post_init__(self):
            for name in names:
                chk = field_checks.get(name)
                if chk is not None:
                    object.__setattr__(self, name, chk(name, getattr(self, name)))
            if original_post_init is not None:
                original_post_init(self)
            cross = getattr(self, "_validate_cross", None)
            if cross is not None and all(not _is_tracer(getattr(self, n)) for n in leaves):
                cross()

        # must exist before dataclass() so that the generated __init__ calls it
        cls.__post_init__ = __post_init__
        cls = dataclasses.dataclass(frozen=True)(cls)
        fields = dataclasses.fields(cls)
        names = tuple(f.name for f in fields)
        static = tuple(f.name for f in fields if f.metadata.get("static", False))
        leaves = tuple(f.name for f in fields if not f.metadata.get("static", False))
        original_init = cls.__init__

        def __init__(self, *args, **kwargs):
            unknown = sorted(set(kwargs) - set(names))
            if unknown:
                raise ValueError(f"{cls.__name__}: unknown field(s) {unknown}; known fields: {list(names)}")
            if len(args) > len(names):
                raise ValueError(f"{cls.__name__}: takes at most {len(names)} positional fields")
            original_init(self, *args, **kwargs)

        __init__.__doc__ = original_init.__doc__
        cls.__init__ = __init__

        def flatten_with_keys(obj):
            children = tuple((jax.tree_util.GetAttrKey(n), getattr(obj, n)) for n in leaves)
            aux = tuple(getattr(obj, n) for n in static)
            return children, aux

        def flatten(obj):
            return tuple(getattr(obj, n) for n in leaves), tuple(getattr(obj, n) for n in static)

        def unflatten(aux, children):
            obj = object.__new__(cls)
            for n, v in zip(static, aux):
                object.__setattr__(obj, n, v)
            for n, v in zip(leaves, children):
                object.__setattr__(obj, n, v)
            return obj

        jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)

        def replace(self, **changes):
            unknown = sorted(set(changes) - set(names))
            if unknown:
                raise ValueError(f"{cls.__name__}: unknown field(s) {unknown}; known fields: {list(names)}")
            return dataclasses.replace(self, **changes)

        cls.replace = replace
        cls._field_names = names
        cls._static_fields = static
        cls._leaf_fields = leaves
        cls._checks = field_checks
        return cls

    return wrap if cls is None else wrap(cls)
