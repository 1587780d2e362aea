r"""Surrogate token process (docs/model.md §4) and its exact scenario-level statistics (§5).

Draft entropies ``H ~ Gamma(k_H, theta_H)`` (nats), i.i.d. over positions, or AR(1) along the
positions of a round by the beta–gamma autoregression of Lewis, McKenzie & Hugus (1989):
``H_1 ~ Gamma(k, θ)``, ``H_i = B_i H_{i-1} + G_i`` with ``B_i ~ Beta(ρk, (1-ρ)k)`` and
``G_i ~ Gamma((1-ρ)k, θ)``; every ``H_i`` is exactly ``Gamma(k, θ)`` and
``corr(H_i, H_{i-1}) = ρ``.  Acceptance map ``α(H) = σ(a0 − a1 H)``.

After a rejection [ours]: the first drafted position of a round that follows a rejected draft
(a correction token) has entropy scale ``after_reject_H_scale·θ_H`` and acceptance intercept
``a0 + after_reject_a0_shift`` (``Scenario`` docstring). The draws above are the base law; the
round applies ``after_reject_entropy`` given the previous round's outcome. The defaults (1, 0)
leave the i.i.d. law of docs/model.md §4 bit for bit.

The mean proxy needs ``ᾱ = E[α(H)]`` and ``b̄ = E[b(H)]``; both are computed by deterministic
quadrature inside JAX (so they vmap over scenario leaves):

* ``ᾱ``: with ``H = θ e^x``, ``E[f(H)] = Γ(k)^{-1} ∫ f(θ e^x) exp(kx − e^x) dx`` over the real
  line; the integrand is analytic in a strip and decays exponentially at both ends, so the
  trapezoidal rule converges geometrically (relative error < 1e-12 at the defaults, tested
  against ``scipy.integrate.quad``).
* ``b̄``: ``m(H)`` is a step function, and ``E[min(M, ⌈X⌉)] = Σ_{j=0}^{M-1} P(X > j)`` for
  ``X = c_p e^H`` is an exact finite sum of Gamma survival functions (no quadrature error).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaincc, gammaln

from .scenario import Scenario

__all__ = [
    "logistic",
    "acceptance_prob",
    "acceptance_by_position",
    "after_reject_entropy",
    "support_size",
    "topp_bits",
    "sample_entropies",
    "gamma_expectation",
    "mean_acceptance",
    "mean_support_size",
    "mean_topp_bits",
    "mean_acceptance_after_reject",
    "mean_topp_bits_after_reject",
]

_QUAD_NODES = 8192


def logistic(z):
    """``σ(z) = 1/(1 + e^{−z})``, written out: the same values as ``jax.nn.sigmoid`` bit for bit
    (``tests/test_formulas.py``, float32 and float64), but inside the round kernel XLA:CPU runs
    the written-out form faster (its ``logistic`` op: the whole GELATO round ≈ 14 % slower;
    BENCHMARKS.md, issue 14, session 7). ``±inf`` give 0 and 1, NaN stays NaN."""
    return 1.0 / (1.0 + jnp.exp(-z))


def acceptance_prob(scenario: Scenario, entropy):
    """``α(H) = σ(a0 − a1 H)``: probability that a draft of entropy ``H`` is accepted (§4)."""
    return logistic(scenario.a0 - scenario.a1 * entropy)


def acceptance_by_position(scenario: Scenario, entropy, after_reject=False):
    """``α_i(H_i)`` for the entropies ``entropy`` ``(..., n)`` of positions ``1..n`` (last axis):
    ``σ(a0 − a1 H)``, with the intercept ``a0 + after_reject_a0_shift`` at position 1 when the
    round follows a rejection (``after_reject``, a bool broadcast against ``entropy[..., 0]``)."""
    n = entropy.shape[-1]
    first = (jnp.arange(n) == 0) & jnp.asarray(after_reject)[..., None]
    shift = jnp.where(first, scenario.after_reject_a0_shift, 0.0)
    return logistic((scenario.a0 + shift) - scenario.a1 * entropy)


def after_reject_entropy(scenario: Scenario, entropy, after_reject):
    """Base-law entropies ``(..., n)`` → the round's entropies: position 1 scaled by
    ``after_reject_H_scale`` when the round follows a rejection (the same quantile of the scaled
    law, so the draw stays exogenous)."""
    entropy = jnp.asarray(entropy)
    scale = jnp.where(after_reject, jnp.asarray(scenario.after_reject_H_scale, entropy.dtype), 1.0)
    return entropy.at[..., 0].multiply(scale.astype(entropy.dtype))


def support_size(scenario: Scenario, entropy):
    """Top-p support ``m(H) = min(V_vocab, m_max, ⌈c_p e^H⌉)`` (§3)."""
    cap = jnp.minimum(scenario.V_vocab, scenario.m_max)
    return jnp.minimum(cap, jnp.ceil(scenario.c_p * jnp.exp(entropy)))


def topp_bits(scenario: Scenario, entropy):
    """Uplink bits of one token under the ``topp`` scheme: ``b_id + m(H)(b_id + b_prob)``."""
    return scenario.b_id + support_size(scenario, entropy) * (scenario.b_id + scenario.b_prob)


def sample_entropies(key, scenario: Scenario, n: int, *, ar: bool = False, dtype=None, table=None, uniforms=None):
    """Draw the ``n`` draft entropies of one round (nats).

    Args:
      key: a ``jax.random`` key.
      scenario: gives ``k_H``, ``theta_H`` and (if ``ar``) ``rho_H``.
      n: number of positions (``gamma_max``).
      ar: static switch for the AR(1) beta–gamma process; with ``ar=False`` the draws are
        i.i.d. (``rho_H`` is ignored, it must then be 0).
      table: optional ``_gamma_table.gamma_table(k_H, dtype)``; for i.i.d. draws the entropies
        are then ``θ_H Q̂(u)`` by the tabulated inverse CDF (one uniform per draw; Kolmogorov
        distance to ``Gamma(k_H)`` below 1e-9 in float64) instead of ``jax.random.gamma``'s
        rejection loop.
      uniforms: optional ``(n,)`` open-interval uniforms to invert (with ``table``); drawn from
        ``key`` otherwise.
    Returns:
      ``(n,)`` array of entropies.
    """
    dtype = dtype or jnp.result_type(float)
    k = jnp.asarray(scenario.k_H, dtype)
    if not ar and table is not None:
        from ._gamma_table import gamma_quantile, open_unit

        if uniforms is None:
            uniforms = open_unit(key, (n,), dtype)
        return jnp.asarray(scenario.theta_H, dtype) * gamma_quantile(table, uniforms)
    if not ar:
        return scenario.theta_H * jax.random.gamma(key, k, (n,), dtype=dtype)
    rho = jnp.asarray(scenario.rho_H, dtype)
    k0, kb, kg = jax.random.split(key, 3)
    h1 = jax.random.gamma(k0, k, (), dtype=dtype)
    tiny = jnp.finfo(dtype).tiny
    b = jax.random.beta(kb, jnp.maximum(rho * k, tiny), jnp.maximum((1 - rho) * k, tiny), (n - 1,), dtype=dtype)
    g = jax.random.gamma(kg, jnp.maximum((1 - rho) * k, tiny), (n - 1,), dtype=dtype)
    b = jnp.where(rho > 0, b, 0.0)

    def step(h, bg):
        bi, gi = bg
        h = bi * h + gi
        return h, h

    _, rest = jax.lax.scan(step, h1, (b, g))
    return scenario.theta_H * jnp.concatenate([h1[None], rest])


def gamma_expectation(fn, k, theta, *, nodes: int = _QUAD_NODES):
    r"""``E[fn(H)]`` for ``H ~ Gamma(k, theta)`` by the trapezoidal rule in ``x = log(H/θ)``.

    The window covers ``P(H/θ < s_lo) ≈ s_lo^k/Γ(k+1) = 1e-18`` to ``s_hi = k + 12√k + 40``
    (upper tail below 1e-17). ``fn`` must be analytic near the real axis (the acceptance map is).
    """
    dtype = jnp.result_type(float)
    k = jnp.asarray(k, dtype)
    x_lo = (gammaln(k + 1.0) + jnp.log(1e-18)) / k
    x_hi = jnp.log(k + 12.0 * jnp.sqrt(k) + 40.0)
    x = jnp.linspace(0.0, 1.0, nodes, dtype=dtype) * (x_hi - x_lo) + x_lo
    step = (x_hi - x_lo) / (nodes - 1)
    log_w = k * x - jnp.exp(x) - gammaln(k)
    w = jnp.exp(log_w) * step
    w = w.at[0].multiply(0.5).at[-1].multiply(0.5)
    return jnp.sum(w * fn(theta * jnp.exp(x)))


def mean_acceptance(scenario: Scenario):
    """``ᾱ = E[α(H)]`` (§5, mean proxy), deterministic quadrature."""
    return gamma_expectation(lambda h: acceptance_prob(scenario, h), scenario.k_H, scenario.theta_H)


def mean_acceptance_after_reject(scenario: Scenario):
    """``ᾱ_r = E[α_1(H_1)]`` at the first drafted position of a round after a rejection
    (``after_reject_H_scale``, ``after_reject_a0_shift``); equal to ``mean_acceptance`` bit for bit
    at the defaults (1, 0)."""
    a0 = scenario.a0 + scenario.after_reject_a0_shift
    return gamma_expectation(lambda h: jax.nn.sigmoid(a0 - scenario.a1 * h), scenario.k_H,
                             scenario.theta_H * scenario.after_reject_H_scale)


def mean_support_size(scenario: Scenario, *, after_reject: bool = False):
    r"""``E[m(H)] = Σ_{j=0}^{M−1} P(c_p e^H > j)``, ``M = min(V_vocab, m_max)``: an exact sum.
    ``after_reject=True``: at the first position after a rejection (scale
    ``after_reject_H_scale·θ_H``)."""
    j = jnp.arange(scenario.m_max, dtype=jnp.result_type(float))
    h = jnp.maximum(jnp.log(j / scenario.c_p), 0.0)  # log(0) = -inf -> survival 1
    theta = scenario.theta_H * scenario.after_reject_H_scale if after_reject else scenario.theta_H
    surv = gammaincc(scenario.k_H, h / theta)
    return jnp.sum(jnp.where(j < scenario.V_vocab, surv, 0.0))


def mean_topp_bits(scenario: Scenario):
    """``b̄ = E[b(H)] = b_id + E[m(H)](b_id + b_prob)`` for the ``topp`` scheme."""
    return scenario.b_id + mean_support_size(scenario) * (scenario.b_id + scenario.b_prob)


def mean_topp_bits_after_reject(scenario: Scenario):
    """``b̄_r``: ``b̄`` at the first drafted position after a rejection."""
    return scenario.b_id + mean_support_size(scenario, after_reject=True) * (scenario.b_id + scenario.b_prob)
