"""Policies: GELATO and the baselines of MODEL.md §7, all on one rollout interface.

``REGISTRY`` maps command-line names to policy classes; ``make(name, **fields)`` builds one.
"""

from __future__ import annotations

from typing import Any

from .base import Policy, RoundObs, RoundOutcome, ScenarioStats, scenario_stats
from .gelato import Gelato
from .static import StaticSD

REGISTRY: dict[str, type] = {
    "gelato": Gelato,
    "static": StaticSD,
}


def make(name: str, **fields: Any) -> Policy:
    """Build the policy registered as ``name`` with the given fields (validated)."""
    key = name.lower().replace("_", "-")
    if key not in REGISTRY:
        raise ValueError(f"policy must be one of {sorted(REGISTRY)}, got {name!r}")
    return REGISTRY[key](**fields)


__all__ = [
    "Policy",
    "RoundObs",
    "RoundOutcome",
    "ScenarioStats",
    "scenario_stats",
    "Gelato",
    "StaticSD",
    "REGISTRY",
    "make",
]
