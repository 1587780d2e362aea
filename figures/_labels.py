"""Words for figure titles, legends and axes: what a figure fixed, what it swept, in which units.

A title names every fixed scenario field that differs from ``Scenario()``'s defaults (so a figure
at δ = 140 ms says so), a legend names every policy field that differs from the policy class's
defaults, and a bandwidth axis says which link it sweeps (uplink only, or both links when the
scenario ties ``W_dl = "W"``).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

# field -> (axis name, unit shown, factor from SI to the unit shown)
AXES = {
    "W": ("uplink bandwidth W", "MHz", 1e-6),
    "W_dl": ("downlink bandwidth W_dl", "MHz", 1e-6),
    "delta": ("fixed latency δ", "ms", 1e3),
    "E_bar": ("energy budget Ē", "J/round", 1.0),
    "P_bar": ("power budget P̄", "W", 1.0),
    "d": ("distance d", "m", 1.0),
    "P_tx": ("transmit power P_tx", "W", 1.0),
    "V": ("V", "", 1.0),
    "t_v0": ("verification time t_v0", "ms", 1e3),
    "f": ("draft clock f", "GHz", 1e-9),
}

# metric -> (label, unit, factor)
METRICS = {
    "throughput": ("throughput E[N/D]", "tok/s", 1.0),
    "goodput": ("goodput ΣN/ΣD", "tok/s", 1.0),
    "energy": ("device energy per round", "J", 1.0),
    "energy_per_token": ("energy per token", "mJ", 1e3),
    "power": ("device power ΣE/ΣD", "W", 1.0),
    "queue": ("mean queue Z", "J", 1.0),
    "queue_mean": ("mean queue Z", "J", 1.0),
    "queue_final": ("final queue Z_T", "J", 1.0),
    "budget": ("drafting budget γ̃", "", 1.0),
    "sent": ("sent tokens L", "", 1.0),
    "tokens": ("tokens N per round", "", 1.0),
    "latency": ("round latency D", "ms", 1e3),
    "outage": ("outage fraction", "", 1.0),
    "mismatch_rate": ("mismatch rate (unverified)", "", 1.0),
    "mismatch_per_token": ("mismatched per token", "", 1.0),
}

_SHORT = {"delta": "δ", "E_bar": "Ē", "P_bar": "P̄"}


def _default_scenario() -> dict[str, Any]:
    from gelato_jax import Scenario

    return Scenario().to_dict()


def fmt_value(field: str, value: Any) -> str:
    """``delta, 0.14`` → ``δ = 140 ms``; ``W, 5e6`` → ``W = 5 MHz``."""
    if isinstance(value, str) or value is None or isinstance(value, (list, tuple)):
        return f"{_SHORT.get(field, field)} = {value if not isinstance(value, (list, tuple)) else f'[{len(value)} values]'}"
    name, unit, f = AXES.get(field, (field, "", 1.0))
    v = float(value) * f
    return f"{_SHORT.get(field, field)} = {v:.4g}{' ' + unit if unit else ''}"


def scenario_differences(scenario: Mapping[str, Any], exclude: Iterable[str] = ()) -> list[str]:
    """``field = value`` for every scenario field that differs from the defaults (``exclude``:
    the swept fields). A tied downlink reads ``W_dl = W (tied)``."""
    default = _default_scenario()
    skip = set(exclude)
    out = []
    tied = scenario.get("W_dl") == "W" or bool(scenario.get("W_dl_tied"))
    for k, v in scenario.items():
        if k in skip or k == "W_dl_tied" or k not in default:
            continue
        if k == "W_dl" and tied:
            out.append("W_dl = W (tied)")
            continue
        d = default[k]
        same = v == d
        if not same and isinstance(v, (int, float)) and isinstance(d, (int, float)) and not isinstance(v, bool):
            same = bool(np.isclose(float(v), float(d), rtol=1e-12, atol=0))
        if not same:
            out.append(fmt_value(k, v))
    return out


def policy_differences(name: str, fields: Mapping[str, Any], exclude: Iterable[str] = ()) -> list[str]:
    """``field=value`` for the fields of registry policy ``name`` that differ from its defaults."""
    from gelato_jax import policies as P

    cls = P.REGISTRY.get(name) or P.SOLVED.get(name)
    if cls is None:
        return []
    try:
        base = cls()
    except Exception:  # a solved policy without defaults (oracle): name nothing
        return []
    skip = set(exclude)
    out = []
    for k, v in fields.items():
        if k in skip or not hasattr(base, k):
            continue
        d = getattr(base, k)
        if isinstance(d, (int, float, str, bool)) and v != d and not (
                isinstance(v, (int, float)) and isinstance(d, (int, float)) and np.isclose(float(v), float(d))):
            out.append(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}")
    return out


def axis_label(field: str, scenario: Mapping[str, Any] | None = None) -> tuple[str, float]:
    """``(label, factor)`` of an x axis; ``W`` says whether the downlink moves with it."""
    name, unit, f = AXES.get(field, (field, "", 1.0))
    note = ""
    if field == "W" and scenario is not None and (scenario.get("W_dl") == "W" or scenario.get("W_dl_tied")):
        name, note = "bandwidth W = W_dl", "; both links"
    elif field == "W" and scenario is not None and scenario.get("W_dl") is not None:
        note = f"; downlink fixed at {float(scenario['W_dl']) * 1e-6:.3g} MHz"
    return (f"{name} ({unit}{note})" if unit else name), f


def metric_label(metric: str) -> tuple[str, float]:
    label, unit, f = METRICS.get(metric, (metric, "", 1.0))
    return (f"{label} ({unit})" if unit else label), f


def operating_point(scenario: Mapping[str, Any], exclude: Iterable[str] = ()) -> str:
    """The headline fields ``W, δ, Ē`` (always named, unless swept) and every other fixed field
    that differs from the defaults, as one comma-separated string."""
    skip = set(exclude)
    head = [fmt_value(k, scenario[k]) for k in ("W", "delta", "E_bar") if k in scenario and k not in skip]
    rest = scenario_differences(scenario, exclude=skip | {"W", "delta", "E_bar"})
    return ", ".join(head + rest)
