r"""The exact expectation proxy (``Gelato(proxy="exact")``, MODEL.md §5): ``E[N/D | γ̃, h]`` and
``E[E | γ̃, h]`` under the leaky-bucket exit.

Given the reference budget ``γ̃`` and the entropies ``H_1..H_γmax`` of a round, the inner loop is
deterministic: it sends ``L`` tokens with ``P ∈ {L, L+1}`` passes and ``B = Σ_{i≤L} b(H_i)``
uplink bits. Only acceptance is random, and given ``H`` its law is known in closed form
(Rao–Blackwellisation): ``P(A = a | H) = Π_{i≤a} α(H_i) · (1 − α(H_{a+1}))`` for ``a < L`` and
``Π_{i≤L} α(H_i)`` for ``a = L``. The remaining expectation over ``H`` is a sample average over
``EXACT_SAMPLES`` i.i.d. entropy vectors drawn once with the fixed key ``EXACT_SEED`` (the
table assumes i.i.d. entropies; with ``rho_H > 0`` it is the i.i.d. approximation):

* payload ``full``/``scalar`` (bits do not depend on ``H``): the table is the joint law
  ``prob[γ̃, L, P − L, A]``; ``E[N/D | γ̃, h] = Σ prob · (A + 1)/D(P, L, A; r(h), r_dl(h))`` is then
  exact given the law (its Monte Carlo error is the law's, reported by ``table_error``);
* payload ``topp`` (bits depend on ``H``): a sample-average approximation of ``E[N/D]`` tabulated
  on ``EXACT_GRID`` points of ``v = r_ref/(r + r_ref)`` (``r_ref = r(h = 1)``; ``v = 0`` is an
  infinite rate) and linearly interpolated in ``v`` at run time.

Energy is linear in ``P`` and ``B``: ``E[E | γ̃, h] = E[P] e_d + P_tx E[B]/r(h)`` with the
sample means of ``P`` and ``B`` (exact given the sample).

Everything is JAX and runs inside ``Gelato.precompute`` (once per compiled call).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gelato_jax import channel, costs, tokens
from gelato_jax.early_exit import leaky_bucket_exit, no_exit

from . import _generated

__all__ = [
    "EXACT_SAMPLES", "EXACT_GRID", "EXACT_SEED", "ExactTable", "ExactAux", "ExactCosts",
    "round_laws", "build_table", "exact_costs", "table_error", "policy_table_error",
]

EXACT_SAMPLES = 32768
EXACT_GRID = 256
EXACT_SEED = 20260529


class ExactTable(NamedTuple):
    """Precomputed exact-proxy table of one scenario and inner-loop setting."""

    mean_passes: Any  # (G+1,) E[P | γ̃]
    mean_bits: Any  # (G+1,) E[B | γ̃] uplink bits
    law: Any  # (G+1, G+1, 2, G+1) P(L, P−L, A | γ̃) (entropy-independent payloads; zeros for topp)
    v_grid: Any  # (K,) grid in v = r_ref/(r + r_ref) (topp)
    thr_grid: Any  # (G+1, K) E[N/D | γ̃, v] (topp; zeros otherwise)
    se_grid: Any  # (G+1, K) Monte Carlo standard error of thr_grid (topp)
    r_ref: Any  # scalar


class ExactAux(NamedTuple):
    """``Gelato.precompute`` output for ``proxy="exact"`` (first two fields as ``ScenarioStats``)."""

    alpha_bar: Any
    topp_bits: Any
    table: ExactTable


class ExactCosts(NamedTuple):
    """Per-budget expectations at one round's rates (arrays ``(γ_max+1,)``)."""

    throughput: Any  # E[N/D | γ̃, h]
    energy: Any  # E[E | γ̃, h]


def _entropies(scenario, n: int, dtype):
    """``(n, γ_max)`` i.i.d. ``Gamma(k_H, θ_H)`` entropies from the fixed key ``EXACT_SEED``."""
    key = jax.random.key(EXACT_SEED)
    k = jnp.asarray(scenario.k_H, dtype)
    return scenario.theta_H * jax.random.gamma(key, k, (n, scenario.gamma_max), dtype=dtype)


def round_laws(scenario, entropy, *, payload: str, exit: str, H_th, Theta_th):
    """Per entropy vector ``(G,)`` and budget ``γ̃ = 0..G``: ``(L, P, B, π)`` with ``π[a] =
    P(A = a | H)`` of shape ``(G+1, G+1)``."""
    G = scenario.gamma_max
    alpha = tokens.acceptance_prob(scenario, entropy)  # (G,)
    run = jnp.concatenate([jnp.ones((1,), alpha.dtype), jnp.cumprod(alpha)])  # (G+1,) Π_{i≤a}
    a = jnp.arange(G + 1)
    alpha_next = jnp.concatenate([alpha, jnp.zeros((1,), alpha.dtype)])  # α_{a+1}
    bits = costs.token_bits(scenario, payload, entropy)
    cumbits = jnp.concatenate([jnp.zeros((1,), bits.dtype), jnp.cumsum(bits)])

    def per_budget(budget):
        if exit == "bucket":
            L, P = leaky_bucket_exit(entropy, budget, H_th, Theta_th)
        else:
            L, P = no_exit(entropy, budget)
        pi = jnp.where(a < L, run * (1.0 - alpha_next), jnp.where(a == L, run, 0.0))
        return L, P, cumbits[L], pi

    return jax.vmap(per_budget)(jnp.arange(G + 1))


def _rates_from_v(scenario, v, r_ref):
    """Uplink rate, downlink rate at grid point ``v`` (``v = 0``: infinite rates)."""
    r = jnp.where(v > 0, r_ref * (1.0 - v) / jnp.where(v > 0, v, 1.0), jnp.inf)
    snr0 = scenario.mean_snr
    h = jnp.expm1(jnp.minimum(r / scenario.W, 1e4) * jnp.log(2.0)) / snr0
    return r, channel.downlink_rate(scenario, h)


def build_table(scenario, *, payload: str, exit: str, H_th, Theta_th, samples: int = EXACT_SAMPLES,
                grid: int = EXACT_GRID) -> ExactTable:
    """The exact-proxy table (JAX; call inside ``jit``)."""
    costs._check_payload(payload)
    if exit not in ("bucket", "none"):
        raise ValueError(f"exit must be 'bucket' or 'none', got {exit!r}")
    dtype = jnp.result_type(float)
    G = scenario.gamma_max
    H = _entropies(scenario, samples, dtype)
    L, P, B, pi = jax.vmap(lambda e: round_laws(scenario, e, payload=payload, exit=exit, H_th=H_th, Theta_th=Theta_th))(H)
    # shapes: L, P, B (M, G+1); pi (M, G+1, G+1)
    mean_passes = jnp.mean(P.astype(dtype), axis=0)
    mean_bits = jnp.mean(B, axis=0)
    r_ref = channel.uplink_rate(scenario, jnp.asarray(1.0, dtype))
    K = grid
    if payload == "topp":
        law = jnp.zeros((G + 1, G + 1, 2, G + 1), dtype)
        r_floor = jnp.maximum(scenario.r_min, channel.uplink_rate(scenario, scenario.h_min))
        v_max = r_ref / (r_floor + r_ref)
        v_grid = jnp.linspace(0.0, 1.0, K, dtype=dtype) * v_max
        a = jnp.arange(G + 1, dtype=dtype)
        n_given_h = jnp.sum(pi * (a + 1.0), axis=-1)  # (M, G+1) E[N | H]; D does not depend on A
        d_fixed = _generated.round_latency(P, L, 0.0, 0.0, 1.0, 1.0, scenario.tau_d, scenario.t_v0,
                                           scenario.t_v1, scenario.delta)  # (M, G+1) without airtimes

        def at_v(v):
            r, r_dl = _rates_from_v(scenario, v, r_ref)
            d = d_fixed + jnp.where(B > 0, B / r, 0.0) + scenario.b_dl / r_dl
            per = n_given_h / d  # (M, G+1) E[N/D | H]
            return jnp.mean(per, axis=0), jnp.std(per, axis=0) / jnp.sqrt(samples)

        thr, se = jax.lax.map(at_v, v_grid)
        thr_grid, se_grid = thr.T, se.T
    else:
        onehot_L = jax.nn.one_hot(L, G + 1, dtype=dtype)  # (M, G+1, G+1)
        onehot_x = jax.nn.one_hot(P - L, 2, dtype=dtype)  # (M, G+1, 2)
        xa = (onehot_x[..., :, None] * pi[..., None, :]).reshape(samples, G + 1, 2 * (G + 1))
        law = (jnp.einsum("mgl,mgk->glk", onehot_L, xa) / samples).reshape(G + 1, G + 1, 2, G + 1)
        v_grid = jnp.zeros((K,), dtype)
        thr_grid = jnp.zeros((G + 1, K), dtype)
        se_grid = jnp.zeros((G + 1, K), dtype)
    return ExactTable(mean_passes, mean_bits, law, v_grid, thr_grid, se_grid, r_ref)


def exact_costs(scenario, payload: str, table: ExactTable, rate, rate_dl) -> ExactCosts:
    """``E[N/D | γ̃, h]`` and ``E[E | γ̃, h]`` for every budget at uplink/downlink rates."""
    G = scenario.gamma_max
    energy = _generated.round_energy(table.mean_passes, 0.0, 1.0, scenario.e_d, scenario.P_tx) + (
        scenario.P_tx * jnp.where(table.mean_bits > 0, table.mean_bits / rate, 0.0)
    )
    if payload == "topp":
        v = table.r_ref / (rate + table.r_ref)
        thr = jax.vmap(lambda row: jnp.interp(v, table.v_grid, row))(table.thr_grid)
        return ExactCosts(thr, energy)
    dtype = jnp.result_type(float)
    Lg = jnp.arange(G + 1, dtype=dtype)[:, None, None]
    x = jnp.arange(2, dtype=dtype)[None, :, None]
    a = jnp.arange(G + 1, dtype=dtype)[None, None, :]
    b = costs.token_bits(scenario, payload, jnp.zeros(()))
    bits_ul = Lg * b
    bits_dl = costs.downlink_bits(scenario, payload, a < Lg)
    d = costs.latency(scenario, Lg + x, Lg, bits_ul, bits_dl, rate, rate_dl)  # (G+1, 2, G+1)
    thr = jnp.sum(table.law * ((a + 1.0) / d)[None], axis=(1, 2, 3))
    return ExactCosts(thr, energy)


def table_error(table: ExactTable, payload: str, samples: int = EXACT_SAMPLES):
    """Monte Carlo error of the table: for ``topp`` the largest relative standard error of
    ``E[N/D]`` over the grid; otherwise the largest binomial standard error of a law cell,
    ``sqrt(p(1−p)/M)`` (an upper bound: Rao–Blackwellised cells vary less)."""
    if payload == "topp":
        return jnp.max(table.se_grid / table.thr_grid)
    p = table.law
    return jnp.max(jnp.sqrt(p * (1 - p) / samples))


def policy_table_error(scenario, policy) -> float:
    """``table_error`` of the exact table for ``policy``'s inner loop and payload (Python float)."""
    fn = jax.jit(lambda s, p: table_error(
        build_table(s, payload=p.payload, exit=p.exit, H_th=p.H_th, Theta_th=p.Theta_th), p.payload))
    return float(fn(scenario, policy))
