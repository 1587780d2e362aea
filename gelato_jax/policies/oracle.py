r"""Oracle: the stationary randomized optimum of docs/model.md §8 (``gelato_jax.optimum``).

Mechanism: ``optimum(scenario, Gelato(exit="none"))`` solves the LP over stationary randomized
policies of the controller's own mean proxy (budgets ``γ`` drafted and sent in full, ``P = L = γ``)
on a quantisation of the law of the fading ``h``: it returns ``T*`` and, per ``h``-bin ``k``, the
mixing law ``probs[k, γ]``. The oracle observes ``h_t`` only (not the queue), draws
``γ_t ~ probs[bin(h_t)]`` and drafts ``γ_t`` tokens with no exit, so its long-term proxy throughput
is ``T*`` with ``E[E] ≤ Ē`` — the benchmark GELATO's ``T* − O(1/V)`` bound refers to.

Randomisation [ours]: ``rollout`` has no key, so the uniform of round ``t`` is the deterministic
low-discrepancy (Weyl / golden-ratio) sequence ``u_t = frac((t + 1)·φ⁻¹)``, ``φ⁻¹ = (√5 − 1)/2``;
``γ_t`` is the inverse CDF of ``probs[bin(h_t)]`` at ``u_t``. Since ``h_t`` is independent of
``t`` (i.i.d. fading), the ``u_t`` seen by each bin are equidistributed, so every bin's empirical
budget frequencies converge to its ``probs`` row (faster than i.i.d. uniforms would).
The LP's optimal policy mixes at most one bin (one energy constraint), so almost every bin is
deterministic and the choice of uniforms hardly matters.

Build it with ``Oracle.solve(scenario)`` or ``Oracle.from_optimum(opt)``; a bare ``Oracle()`` has
no tables and is rejected by ``validate``.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from ..pytree import check_choice, leaf_field, pytree_dataclass, static_field
from ..costs import PAYLOADS
from .base import Policy

__all__ = ["Oracle", "golden_uniform"]

_N = "Oracle"
_INV_PHI = (math.sqrt(5.0) - 1.0) / 2.0


def golden_uniform(t):
    """``frac((t + 1)/φ)`` — a low-discrepancy sequence in ``[0, 1)`` (float64 when enabled)."""
    x = (jnp.asarray(t) + 1).astype(jnp.result_type(float)) * _INV_PHI
    return x - jnp.floor(x)


def _check_table(name, value):
    if value is None:
        return None
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return value  # tracers / abstract values come from a validated object
    if name == "probs":
        if arr.ndim != 2 or np.any(arr < -1e-9) or np.any(np.abs(arr.sum(-1) - 1) > 1e-6):
            raise ValueError(f"{_N}.probs must be a (bins, gamma_max + 1) array of probability rows")
    elif name == "h_edges":
        if arr.ndim != 1 or arr.size < 2 or np.any(np.diff(arr) <= 0) or np.isnan(arr).any():
            raise ValueError(f"{_N}.h_edges must be a strictly increasing 1-D array of >= 2 edges")
    return value


@pytree_dataclass(
    checks={"h_edges": _check_table, "probs": _check_table, "payload": check_choice(_N, PAYLOADS)}
)
class Oracle(Policy):
    """Stationary randomized optimum: ``γ_t ~ probs[bin(h_t)]``, no exit, no queue."""

    h_edges: object = leaf_field(None)
    probs: object = leaf_field(None)
    T_star: float = leaf_field(float("nan"), unit="tok/s")
    payload: str = static_field("topp")

    @classmethod
    def from_optimum(cls, opt, payload: str = "topp") -> "Oracle":
        return cls(h_edges=np.asarray(opt.h_edges), probs=np.asarray(opt.probs), T_star=float(opt.T_star), payload=payload)

    @classmethod
    def solve(cls, scenario, *, quantiles: int = 2048, payload: str = "topp") -> "Oracle":
        """Solve the LP of ``gelato_jax.optimum`` for GELATO's proxy without exit on ``scenario``."""
        from ..optimum import optimum
        from .gelato import Gelato

        return cls.from_optimum(optimum(scenario, Gelato(exit="none", payload=payload), quantiles=quantiles), payload)

    def validate(self, scenario):
        if self.h_edges is None or self.probs is None:
            raise ValueError("Oracle has no tables: build it with Oracle.solve(scenario) (the optimum depends on the scenario)")
        probs = np.asarray(self.probs)
        if probs.shape[-1] != scenario.gamma_max + 1 or np.asarray(self.h_edges).shape[-1] != probs.shape[-2] + 1:
            raise ValueError(
                f"Oracle.probs must have shape (bins, {scenario.gamma_max + 1}) with len(h_edges) = bins + 1, "
                f"got {probs.shape} and {np.asarray(self.h_edges).shape}"
            )

    def choose_budget(self, scenario, aux, state, obs):
        edges = jnp.asarray(self.h_edges)
        probs = jnp.asarray(self.probs)
        k = jnp.clip(jnp.searchsorted(edges, obs.h, side="right") - 1, 0, probs.shape[0] - 1)
        cdf = jnp.cumsum(probs[k])
        u = golden_uniform(obs.t)
        return jnp.sum(u >= cdf[:-1]).astype(jnp.int32)
