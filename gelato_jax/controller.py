r"""Outer loop: drift-plus-penalty choice of the reference drafting budget (docs/model.md §5).

``γ̃_t = argmax_{γ ∈ Γ_t} U_t(γ)``, ``U_t(γ) = V T̂(γ, r_t) − Z_t Ê(γ, r_t)``, by exhaustive
search over ``Γ_t = {0..γ_max}`` (``{0}`` in outage). Ties go to the smallest ``γ``
(``jnp.argmax`` returns the first maximiser).

Numerics: ``U`` is evaluated as ``2^{-e} U`` with ``2^e ≈ max(V, Z)``. Multiplying by a power of
two is exact in floating point (away from overflow and subnormals), so the maximiser and its ties
are exactly those of ``U``, while a huge ``V`` or ``Z`` (e.g. ``V = 1e308``, or ``V = 1e37`` in
float32) no longer overflows ``V T̂`` to ``inf`` for every γ — which made all budgets tie and
returned γ = 0. A budget whose objective is NaN (``0 · inf``: an infinite cost at zero price, when
a rate underflows to 0) is not allowed; γ = 0 always is.
"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["scaled_utility", "dpp_objective", "dpp_budget"]


def scaled_utility(V, queue, throughput, energy):
    """``2^{-e}(V T̂ − Z Ê)`` with ``2^e ≈ max(V, Z)`` (elementwise; ``V``, ``queue`` broadcast
    against the proxies)."""
    dtype = jnp.result_type(V, queue, throughput, energy, float)
    V = jnp.asarray(V, dtype)
    queue = jnp.asarray(queue, dtype)
    maxexp = jnp.finfo(dtype).maxexp
    _, e = jnp.frexp(jnp.maximum(V, queue))
    e = jnp.clip(e, -(maxexp - 3), maxexp - 3)  # 2^{-e} stays a normal number
    scale = jnp.ldexp(jnp.ones((), dtype), -e)
    return (V * scale) * throughput - (queue * scale) * energy


def dpp_objective(V, queue, throughput, energy, outage):
    """``2^{-e}(V T̂(γ) − Z Ê(γ))`` over ``γ = 0..γ_max`` (``2^e ≈ max(V, Z)``), ``-inf`` where
    not allowed (outage, or a NaN objective)."""
    u = scaled_utility(V, queue, throughput, energy)
    n = u.shape[-1]
    allowed = (jnp.arange(n) == 0) | (jnp.logical_not(outage) & jnp.logical_not(jnp.isnan(u)))
    return jnp.where(allowed, u, -jnp.inf)


def dpp_budget(V, queue, throughput, energy, outage):
    """The drift-plus-penalty budget (int32): exact maximiser, smallest γ on ties, 0 in outage."""
    return jnp.argmax(dpp_objective(V, queue, throughput, energy, outage)).astype(jnp.int32)
