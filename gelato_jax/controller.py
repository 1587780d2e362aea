r"""Outer loop: drift-plus-penalty choice of the reference drafting budget (MODEL.md §5).

``γ̃_t = argmax_{γ ∈ Γ_t} U_t(γ)``, ``U_t(γ) = V T̂(γ, r_t) − Z_t Ê(γ, r_t)``, by exhaustive
search over ``Γ_t = {0..γ_max}`` (``{0}`` in outage). Ties go to the smallest ``γ``
(``jnp.argmax`` returns the first maximiser).
"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["dpp_objective", "dpp_budget"]


def dpp_objective(V, queue, throughput, energy, outage):
    """``U(γ) = V T̂(γ) − Z Ê(γ)`` over ``γ = 0..γ_max``, ``-inf`` where not allowed."""
    u = V * throughput - queue * energy
    allowed = (jnp.arange(u.shape[-1]) == 0) | jnp.logical_not(outage)
    return jnp.where(allowed, u, -jnp.inf)


def dpp_budget(V, queue, throughput, energy, outage):
    """The drift-plus-penalty budget (int32): exact maximiser, smallest γ on ties, 0 in outage."""
    return jnp.argmax(dpp_objective(V, queue, throughput, energy, outage)).astype(jnp.int32)
