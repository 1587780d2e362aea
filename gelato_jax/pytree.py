"""Frozen, validated dataclass pytrees on ``equinox.Module``.

``Scenario`` and every policy subclass :class:`Validated`, an ``equinox.Module``: a frozen
dataclass registered as a pytree whose numeric fields are leaves (they pass through
``jit``/``vmap``, so sweeping them does not recompile) and whose ``static_field()``s are part of the
treedef (changing them recompiles, as it must for shape-determining integers and mode strings).
Equinox rebuilds a module without calling ``__init__`` when JAX unflattens it (leaves may then be
tracers, batch tracers or ``in_axes`` integers), so the validation added here runs only on
user-facing construction and ``replace``:

* ``pytree_dataclass(checks={name: check})`` attaches per-field validators
  (``check(name, value) -> normalised value``: :func:`check_real`, :func:`check_int`,
  :func:`check_choice`), run in ``__post_init__``, then the class's own ``__post_init__``, then
  ``_validate_cross()`` when no leaf is a tracer;
* an unknown keyword is a ``ValueError`` that lists the fields (``__init__`` and ``replace``).

``field_names(cls)``, ``leaf_fields(cls)`` and ``static_fields(cls)`` give the one list of fields,
from ``dataclasses.fields``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Callable, Sequence

import equinox as eqx
import numpy as np

__all__ = ["Validated", "pytree_dataclass", "static_field", "leaf_field", "field_names", "leaf_fields",
           "static_fields", "Check", "check_real", "check_int", "check_choice"]


def static_field(default: Any, **kw: Any) -> Any:
    """A field in the treedef (``equinox.field(static=True)``); ``kw`` is extra metadata (``unit``)."""
    return eqx.field(default=default, static=True, metadata=dict(kw))


def leaf_field(default: Any, **kw: Any) -> Any:
    """A pytree leaf; ``kw`` is extra metadata (e.g. ``unit="nats"``)."""
    return eqx.field(default=default, metadata=dict(kw))


def _is_static(f: dataclasses.Field) -> bool:
    return bool(f.metadata.get("static", False))


def field_names(cls: type) -> tuple[str, ...]:
    """All dataclass fields of ``cls`` (or of an instance's class), in declaration order."""
    return tuple(f.name for f in dataclasses.fields(cls))


def leaf_fields(cls: type) -> tuple[str, ...]:
    """The fields that are pytree leaves."""
    return tuple(f.name for f in dataclasses.fields(cls) if not _is_static(f))


def static_fields(cls: type) -> tuple[str, ...]:
    """The fields that are part of the treedef."""
    return tuple(f.name for f in dataclasses.fields(cls) if _is_static(f))


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


class Validated(eqx.Module):
    """Base of validated pytrees (``Scenario``, ``Policy``); see the module docstring."""

    _checks = {}

    def __post_init__(self):
        _run_checks(self)

    def replace(self, **changes):
        """A copy with ``changes`` applied, validated like a new object."""
        names = field_names(type(self))
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown field(s) {unknown}; known fields: {list(names)}")
        return dataclasses.replace(self, **changes)


def _run_checks(obj, own_post_init=None) -> None:
    cls = type(obj)
    checks = cls._checks
    for name in field_names(cls):
        chk = checks.get(name)
        if chk is not None:
            object.__setattr__(obj, name, chk(name, getattr(obj, name)))
    if own_post_init is not None:
        own_post_init(obj)
    cross = getattr(obj, "_validate_cross", None)
    if cross is not None and all(not _is_tracer(getattr(obj, n)) for n in leaf_fields(cls)):
        cross()


def pytree_dataclass(cls: type | None = None, *, checks: dict[str, Check] | None = None):
    """Attach validators to a :class:`Validated` subclass (``Scenario``, a ``Policy``).

    ``checks`` maps field names to validators ``check(name, value) -> normalised value``; a field
    without one inherits its parent class's. A ``__post_init__`` the class defines runs after the
    per-field checks, and a ``_validate_cross(self)`` method, if defined, after that (on concrete
    values only). An unknown keyword argument is a ``ValueError`` listing the fields.
    """

    def wrap(cls: type) -> type:
        if not (isinstance(cls, type) and issubclass(cls, Validated)):
            raise TypeError(f"pytree_dataclass: {getattr(cls, '__name__', cls)!r} must subclass "
                            "gelato_jax.policies.Policy (or gelato_jax.pytree.Validated), an equinox.Module")
        cls._checks = {**cls._checks, **(checks or {})}
        own_post_init = cls.__dict__.get("__post_init__")
        if own_post_init is not None and own_post_init is not Validated.__post_init__:
            cls.__post_init__ = lambda self: _run_checks(self, own_post_init)
        original_init = cls.__init__

        def __init__(self, *args, **kwargs):
            own = type(self)
            init_names = [f.name for f in dataclasses.fields(own) if f.init]
            unknown = sorted(set(kwargs) - set(init_names))
            if unknown:
                raise ValueError(f"{own.__name__}: unknown field(s) {unknown}; known fields: {list(field_names(own))}")
            if len(args) > len(init_names):
                raise ValueError(f"{own.__name__}: takes at most {len(init_names)} positional fields")
            original_init(self, *args, **kwargs)

        __init__.__doc__ = original_init.__doc__
        cls.__init__ = __init__
        return cls

    return wrap if cls is None else wrap(cls)
