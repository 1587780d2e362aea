r"""Inner loop: entropy-driven early exit (docs/model.md §6).

Common convention: at position ``i = 1..γ̃`` the draft pass is run and paid (``P = i``) and
``H_i`` is observed; the rule then decides whether token ``i`` is sent. Hence ``L = i − 1, P = i``
at an exit and ``L = P = γ̃`` otherwise.

* ``leaky_bucket_exit`` (the paper's): ``Θ_0 = 0``, ``Θ_i = max(0, Θ_{i−1} + H_i − H_th)``; stop
  when ``Θ_i > Θ_th``.
* ``marginal_exit`` [ours]: stop when sending token ``i`` does not raise the round's predicted
  drift-plus-penalty utility ``U = V T̂ − Z Ê`` of the outer loop (§5), with pass ``i`` sunk on
  both sides and the acceptance probabilities ``α_l(H_l)`` of the positions seen so far
  (``marginal_gains`` gives the two sides of the comparison).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import costs, tokens

__all__ = ["bucket_levels", "leaky_bucket_exit", "marginal_gains", "marginal_exit", "no_exit"]


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

    The levels are the literal recursion of ``bucket_levels`` (bit for bit); the first overflow
    is found in the same unrolled loop, which carries only scalars (with the array of levels XLA
    emitted one fusion per level, each recomputing the prefix of the recursion).
    """
    budget = jnp.asarray(budget, jnp.int32)
    dtype = jnp.result_type(entropy, H_th)

    def step(carry, hi):
        theta, first = carry
        h, i = hi
        theta = jnp.maximum(0.0, theta + h - H_th)
        over = (theta > Theta_th) & (i < budget) & (first < 0)
        return (theta, jnp.where(over, i, first)), None

    n = entropy.shape[-1]
    init = (jnp.zeros((), dtype), jnp.full((), -1, jnp.int32))
    (_, first), _ = jax.lax.scan(step, init, (entropy, jnp.arange(n, dtype=jnp.int32)), unroll=True)
    any_exit = first >= 0
    return jnp.where(any_exit, first, budget), jnp.where(any_exit, first + 1, budget)


def no_exit(entropy, budget):
    """``exit="none"``: every budgeted token is drafted and sent."""
    budget = jnp.asarray(budget, jnp.int32)
    return budget, budget


def _first_stop(stop, budget):
    """``(sent, passes)`` for the per-position stop flags ``stop`` ``(n,)``: the first stop at
    0-based index ``j < budget`` gives ``(j, j + 1)``, none gives ``(budget, budget)``."""
    pos = jnp.arange(stop.shape[-1])
    stop = stop & (pos < budget)
    any_exit = jnp.any(stop)
    first = jnp.argmax(stop).astype(jnp.int32)
    budget = jnp.asarray(budget, jnp.int32)
    return jnp.where(any_exit, first, budget), jnp.where(any_exit, first + 1, budget)


def marginal_gains(scenario, payload, entropy, rate, rate_dl, after_reject=False):
    r"""Throughput and energy gain of sending token ``i``, for every position ``i = 1..n``.

    For a round that sends the first ``k`` drafted tokens after ``P`` draft passes, the predicted
    tokens, latency and energy are those of the outer loop's objective (§5), with the observed
    entropies in place of the means:

    * ``N̂_k = 1 + Σ_{j≤k} Π_{l≤j} α_l(H_l)`` (``tokens.acceptance_by_position``: position 1 has
      its own intercept when the round follows a rejection, ``after_reject``);
    * ``B_k = Σ_{l≤k} b(H_l)`` uplink bits (``costs.token_bits``; equal to
      ``costs.uplink_bits(…, k)`` up to summation order, exactly for integer bit counts);
    * downlink bits: the expectation ``B^dl(no rejection) + (1 − Π_{l≤k} α_l)(B^dl(rejection) −
      B^dl(no rejection))`` from ``costs.downlink_bits`` (differs from the fixed ``b_dl`` only for
      ``scalar``, where a rejection adds a full target distribution);
    * ``D(k, P)``, ``E(k, P)``: ``costs.latency``, ``costs.energy``; ``T̂ = N̂/D``.

    Returns ``(dT, dE)``, each ``(n,)``: ``dT_i = T̂(i, i) − T̂(i−1, i)`` and
    ``dE_i = E(i, i) − E(i−1, i)`` (pass ``i`` paid on both sides). ``dE_i ≥ 0`` holds in floating
    point too (``E`` is computed by monotone operations from nondecreasing ``B_k``).

    The cumulative product and sums run as a sequential (unrolled) scan, so a per-position loop
    in the same order reproduces them exactly.
    """
    entropy = jnp.asarray(entropy)
    dtype = jnp.result_type(entropy, float)
    alpha = tokens.acceptance_by_position(scenario, entropy, after_reject).astype(dtype)
    bits = costs.token_bits(scenario, payload, entropy).astype(dtype)

    def step(carry, x):
        prod, n_hat, b = carry
        a, tb = x
        prod = prod * a
        n_hat = n_hat + prod
        b = b + tb
        return (prod, n_hat, b), (prod, n_hat, b)

    one, zero = jnp.ones((), dtype), jnp.zeros((), dtype)
    _, (pi_k, n_k, b_k) = jax.lax.scan(step, (one, one, zero), (alpha, bits), unroll=True)
    shift = lambda x, first: jnp.concatenate([jnp.full((1,), first, dtype), x[:-1]])
    pi_prev, n_prev, b_prev = shift(pi_k, 1.0), shift(n_k, 1.0), shift(b_k, 0.0)

    dl_ok = costs.downlink_bits(scenario, payload, jnp.zeros((), bool)).astype(dtype)
    dl_rej = costs.downlink_bits(scenario, payload, jnp.ones((), bool)).astype(dtype)
    dl_k = dl_ok + (1.0 - pi_k) * (dl_rej - dl_ok)
    dl_prev = dl_ok + (1.0 - pi_prev) * (dl_rej - dl_ok)

    i = jnp.arange(1, entropy.shape[-1] + 1).astype(dtype)  # passes paid = position i
    d_k = costs.latency(scenario, i, i, b_k, dl_k, rate, rate_dl)
    d_prev = costs.latency(scenario, i, i - 1.0, b_prev, dl_prev, rate, rate_dl)
    e_k = costs.energy(scenario, i, b_k, rate)
    e_prev = costs.energy(scenario, i, b_prev, rate)
    return n_k / d_k - n_prev / d_prev, e_k - e_prev


def marginal_exit(scenario, payload, entropy, budget, V, queue, rate, rate_dl, after_reject=False):
    r"""Sent tokens and draft passes of one round under the marginal-utility exit [ours].

    At position ``i ≤ budget`` (pass ``i`` run and paid, ``H_i`` observed) token ``i`` is sent and
    drafting continues iff ``V·dT_i > Z·dE_i`` (``marginal_gains``), i.e. iff
    ``U(i, i) > U(i−1, i)`` with ``U(k, P) = V T̂(k, P) − Z E(k, P)``: a myopic one-token look-ahead
    in which pass ``i`` is sunk. The first ``i`` where it fails gives ``sent = i − 1``,
    ``passes = i``. Ties stop (conservative: a token that adds nothing predicted is not sent,
    so ``V = Z = 0`` sends nothing). The comparison is written as a difference of the two
    sides so that the decision is monotone in ``Z`` even in floating point: ``dE_i ≥ 0``, so a
    larger queue never sends more tokens.

    Outage: the rollout forces ``budget = 0``, and every position ``≥ budget`` is masked, so
    ``(0, 0)`` is returned whatever the (possibly infinite) utilities at a tiny rate are.

    Args:
      scenario: the ``Scenario``.
      payload: uplink scheme (static), one of ``costs.PAYLOADS``.
      entropy: ``(γ_max,)`` entropies of the positions the device would draft (nats).
      budget: reference budget ``γ̃`` (int scalar, ``0 ≤ γ̃ ≤ γ_max``).
      V: drift-plus-penalty weight; queue: ``Z_t ≥ 0``; rate, rate_dl: this round's rates.
      after_reject: whether the round follows a rejected draft (bool scalar): position 1 then uses
        the intercept ``a0 + after_reject_a0_shift`` (``tokens.acceptance_by_position``).
    Returns:
      ``(sent, passes)`` int32 scalars with ``0 ≤ sent ≤ budget`` and
      ``passes ∈ {sent, sent + 1}``.
    """
    d_t, d_e = marginal_gains(scenario, payload, entropy, rate, rate_dl, after_reject)
    go = V * d_t > queue * d_e
    return _first_stop(~go, budget)
