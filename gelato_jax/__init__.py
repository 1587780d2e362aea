"""gelato-jax: JAX reference implementation of GELATO (arXiv 2605.10124).

Device–edge speculative decoding with a drift-plus-penalty drafting budget and an entropy
early exit. Public interface (MODEL.md §10): ``Scenario``, ``policies``, ``Exogenous``,
``rollout``, ``simulate``.
"""

from . import policies
from .simulator import Exogenous, SimResult, Trajectory, rollout, sample_exogenous, simulate
from .scenario import Scenario

__version__ = "0.1.0"

__all__ = ["Scenario", "policies", "Exogenous", "Trajectory", "SimResult", "rollout", "sample_exogenous", "simulate"]
