r"""Inner loop: entropy-driven early exit by a leaky bucket (MODEL.md §6).

``Θ_0 = 0`` each round; at position ``i = 1..γ̃``: run the draft pass, observe ``H_i``,
``Θ_i = max(0, Θ_{i−1} + H_i − H_th)``; if ``Θ_i > Θ_th`` stop — token ``i`` is not sent but its
pass is paid — else keep token ``i``. Hence ``L = i − 1, P = i`` at an exit and ``L = P = γ̃``
otherwise.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["bucket_levels", "leaky_bucket_exit", "no_exit"]


def bucket_levels(entropy, H_th):
    """``Θ_1..Θ_n`` of the leaky bucket for the entropies ``entropy`` (n,), computed by the literal
    recursion (a short unrolled scan), so that it matches a sequential reference bit for bit."""

    def step(theta, h):
        theta = jnp.maximum(0.0, theta + h - H_th)
        return theta, theta

    zero = jnp.zeros((), jnp.result_type(entropy, H_th))
    _, levels = jax.lax.scan(step, zero, entropy, unroll=True)
    return levels


def leaky_bucket_exit(entropy, budget, H_th, Theta_th):
    """Sent tokens and draft passes of one round under the leaky-bucket exit.

    Args:
      entropy: ``(γ_max,)`` entropies of the positions the device would draft (nats).
      budget: reference budget ``γ̃`` (int scalar, ``0 ≤ γ̃ ≤ γ_max``).
      H_th, Theta_th: bucket leak rate and capacity.
    Returns:
      ``(sent, passes)`` int32 scalars with ``0 ≤ sent ≤ budget`` and
      ``passes ∈ {sent, sent + 1}``.
    """
    levels = bucket_levels(entropy, H_th)
    pos = jnp.arange(entropy.shape[-1])
    overflow = (levels > Theta_th) & (pos < budget)
    any_exit = jnp.any(overflow)
    first = jnp.argmax(overflow).astype(jnp.int32)
    budget = jnp.asarray(budget, jnp.int32)
    sent = jnp.where(any_exit, first, budget)
    passes = jnp.where(any_exit, first + 1, budget)
    return sent, passes


def no_exit(entropy, budget):
    """``exit="none"``: every budgeted token is drafted and sent."""
    budget = jnp.asarray(budget, jnp.int32)
    return budget, budget
