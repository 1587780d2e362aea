"""Property testing for GELATO controllers: hypothesis strategies and reusable invariant checks.

``gelato_jax.testing`` is the public home of the strategies the project's own property tests use
(``strategies``: valid scenarios, exogenous draws, queues, observations) and of the invariants a
drift-plus-penalty controller must keep (``invariants``: bounds, finiteness, the §8 energy and
drift relations, purity, chunk/device independence, no recompilation, and the declared properties
monotone-in-queue, per-slot optimality and the greedy limit)::

    from gelato_jax.testing import check_policy
    report = check_policy(MyPolicy(V=0.1), examples=25)
    print(report.format())          # one line per invariant, counterexamples for failures
    assert report.ok

On the command line: ``gelato check her_policy.py:MyPolicy [--set field=value ...]
[--examples N]``. Needs the ``testing`` extra (``pip install 'gelato-jax[testing]'``:
hypothesis and chex).
"""

from __future__ import annotations

try:
    import chex  # noqa: F401
    import hypothesis  # noqa: F401
except ModuleNotFoundError as _exc:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError(
        f"gelato_jax.testing needs {_exc.name}: pip install 'gelato-jax[testing]' (hypothesis>=6.100, chex>=0.1.90)",
        name=_exc.name,
    ) from None

from . import strategies
from .invariants import DECLARABLE, INVARIANTS, CheckReport, InvariantResult, Violation, check_policy, describe_scenario

__all__ = ["strategies", "check_policy", "CheckReport", "InvariantResult", "Violation", "INVARIANTS", "DECLARABLE",
           "describe_scenario"]
