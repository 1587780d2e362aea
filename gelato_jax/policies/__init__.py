"""Policies: GELATO and the baselines of docs/model.md §7, all on one rollout interface.

``REGISTRY`` maps command-line names to policy classes; ``make(name, **fields)`` builds one.

=================  ==================  ==============================================================
name               class               mechanism (module)
=================  ==================  ==============================================================
``gelato``         ``Gelato``          drift-plus-penalty budget + leaky-bucket exit (gelato.py)
``static``         ``StaticSD``        fixed γ, ``full`` payload (static.py)
``dssd``           ``DSSD``            fixed γ, scalar uplink, distribution on rejection (dssd.py)
``adaedl``         ``AdaEDL``          entropy lower-bound stop, adaptive λ (adaedl.py)
``uhlm``           ``UHLM``            γ = 1, skip verification when confident; lossy (uhlm.py)
``greedy``         ``GreedyThroughput`` GELATO with ``Z ≡ 0`` (ablations.py)
``lyapunov-only``  ``LyapunovOnly``    GELATO without exit (ablations.py)
``exit-only``      ``ExitOnly``        fixed budget + leaky bucket (ablations.py)
``oracle``         ``Oracle``          stationary randomized optimum (oracle.py; in ``SOLVED``, not ``REGISTRY``:
                                       build it with ``Oracle.solve(scenario)``)
=================  ==================  ==============================================================
"""

from __future__ import annotations

from typing import Any

from ..pytree import leaf_field, pytree_dataclass, static_field  # for users' own policies (gelato check)
from .ablations import ExitOnly, GreedyThroughput, LyapunovOnly
from .adaedl import AdaEDL
from .base import Policy, RoundObs, RoundOutcome, ScenarioStats, scenario_stats
from .dssd import DSSD
from .gelato import Gelato
from .oracle import Oracle
from .static import StaticSD
from .uhlm import UHLM

REGISTRY: dict[str, type] = {
    "gelato": Gelato,
    "static": StaticSD,
    "dssd": DSSD,
    "adaedl": AdaEDL,
    "uhlm": UHLM,
    "greedy": GreedyThroughput,
    "lyapunov-only": LyapunovOnly,
    "exit-only": ExitOnly,
}

# Policies that must be solved for a scenario before use (``Oracle.solve(scenario)``): not in
# ``REGISTRY`` (whose classes build from defaults alone); ``gelato compare --policies oracle``
# solves them.
SOLVED: dict[str, type] = {"oracle": Oracle}


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
    "DSSD",
    "AdaEDL",
    "UHLM",
    "GreedyThroughput",
    "LyapunovOnly",
    "ExitOnly",
    "Oracle",
    "REGISTRY",
    "SOLVED",
    "make",
    "pytree_dataclass",
    "leaf_field",
    "static_field",
]
