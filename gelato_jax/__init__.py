"""gelato-jax: JAX reference implementation of GELATO (arXiv 2605.10124).

Device–edge speculative decoding with a drift-plus-penalty drafting budget and an entropy
early exit. Public interface (docs/model.md §10): ``Scenario``, ``policies``, ``Exogenous``,
``rollout``, ``simulate``.
"""

from . import compile_cache, policies, xla_cpu
from .compare import Comparison, compare
from .optimum import Optimum, optimum
from .policies import DSSD, UHLM, AdaEDL, ExitOnly, Gelato, GreedyThroughput, LyapunovOnly, Oracle, StaticSD
from .scenario import Scenario
from .sweep import SweepResult, load_sweep, sweep
from .simulator import Exogenous, SimResult, Trajectory, rollout, sample_exogenous, simulate

__version__ = "0.1.0"

__all__ = [
    "Scenario",
    "policies",
    "xla_cpu",
    "compile_cache",
    "Exogenous",
    "Trajectory",
    "SimResult",
    "rollout",
    "sample_exogenous",
    "simulate",
    "optimum",
    "Optimum",
    "compare",
    "Comparison",
    "sweep",
    "load_sweep",
    "Gelato",
    "StaticSD",
    "DSSD",
    "AdaEDL",
    "UHLM",
    "GreedyThroughput",
    "LyapunovOnly",
    "ExitOnly",
    "Oracle",
]
