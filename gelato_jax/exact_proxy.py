r"""The exact expectation proxy (``Gelato(proxy="exact")``, docs/model.md §5): ``E[N/D | γ̃, h]`` and
``E[E | γ̃, h]`` under the leaky-bucket exit.

Given the reference budget ``γ̃`` and the entropies ``H_1..H_γmax`` of a round, the inner loop is
deterministic: it sends ``L`` tokens with ``P ∈ {L, L+1}`` passes and ``B = Σ_{i≤L} b(H_i)``
uplink bits. Only acceptance is random, and given ``H`` its law is known in closed form
(Rao–Blackwellisation): ``P(A = a | H) = Π_{i≤a} α(H_i) · (1 − α(H_{a+1}))`` for ``a < L`` and
``Π_{i≤L} α(H_i)`` for ``a = L``. The remaining expectation over ``H`` is a sample average over
``EXACT_SAMPLES`` i.i.d. entropy vectors drawn with the fixed key ``EXACT_SEED`` in chunks of
``EXACT_CHUNK`` (the table assumes i.i.d. entropies; with ``rho_H > 0`` it is the i.i.d.
approximation):

* payload ``full``/``scalar`` (bits do not depend on ``H``): the table is the joint law
  ``prob[γ̃, L, P − L, A]``; ``E[N/D | γ̃, h] = Σ prob · (A + 1)/D(P, L, A; r(h), r_dl(h))`` is then
  exact given the law (its Monte Carlo error is the law's, reported by ``table_error``);
* payload ``topp`` (bits depend on ``H``): a sample-average approximation of ``E[N/D]`` tabulated
  on ``EXACT_GRID`` points of ``v = r_ref/(r + r_ref)`` (``r_ref = r(h = 1)``; ``v = 0`` is an
  infinite rate) and interpolated in ``v`` (cubic, Catmull–Rom) at run time.

Energy is linear in ``P`` and ``B``: ``E[E | γ̃, h] = E[P] e_d + P_tx E[B]/r(h)`` with the
sample means of ``P`` and ``B`` (exact given the sample).

Everything is JAX and runs inside ``Gelato.precompute`` (once per compiled call).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from theory import _generated

from . import channel, costs, tokens
from .early_exit import leaky_bucket_exit, no_exit

__all__ = [
    "EXACT_SAMPLES", "EXACT_GRID", "EXACT_CHUNK", "EXACT_SEED", "ExactTable", "ExactAux", "ExactCosts",
    "round_laws", "build_table", "exact_costs", "table_error", "policy_table_error", "table_entropies", "rates_from_v",
]

EXACT_SAMPLES = 131072
EXACT_GRID = 64
EXACT_CHUNK = 8192
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


def table_entropies(scenario, n: int, dtype, chunk: int = 0):
    """``(n, γ_max)`` i.i.d. ``Gamma(k_H, θ_H)`` entropies of chunk ``chunk`` (key
    ``fold_in(key(EXACT_SEED), chunk)``)."""
    key = jax.random.fold_in(jax.random.key(EXACT_SEED), chunk)
    k = jnp.asarray(scenario.k_H, dtype)
    return scenario.theta_H * jax.random.gamma(key, k, (n, scenario.gamma_max), dtype=dtype)


def round_laws(scenario, entropy, *, payload: str, exit: str, H_th, Theta_th):
    """Per entropy vector ``(G,)`` and budget ``γ̃ = 0..G``: ``(L, P, B, π)`` with ``π[a] =
    P(A = a | H)`` of shape ``(G+1, G+1)``."""
    G = scenario.gamma_max
    alpha = tokens.acceptance_prob(scenario, entropy)  # (G,); i.i.d. rounds only (Scenario.after_reject_* neutral)
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


def rates_from_v(scenario, v, r_ref):
    """Uplink rate, downlink rate at grid point ``v`` (``v = 0``: infinite rates)."""
    r = jnp.where(v > 0, r_ref * (1.0 - v) / jnp.where(v > 0, v, 1.0), jnp.inf)
    snr0 = scenario.mean_snr
    h = jnp.expm1(jnp.minimum(r / scenario.W, 1e4) * jnp.log(2.0)) / snr0
    return r, channel.downlink_rate(scenario, h)


def build_table(scenario, *, payload: str, exit: str, H_th, Theta_th, samples: int = EXACT_SAMPLES,
                grid: int = EXACT_GRID, chunk: int = EXACT_CHUNK, chunk_offset=0) -> ExactTable:
    """The exact-proxy table (JAX; call inside ``jit``). The sample is processed in chunks of
    ``chunk`` entropy vectors (memory ``O(chunk · γ_max² + chunk · γ_max · grid)``);
    ``chunk_offset`` (may be traced) starts at that chunk of the fixed-seed sample, so
    ``samples=chunk, chunk_offset=j`` is the table of chunk ``j`` alone (``optimum``'s Monte Carlo
    error of ``T*`` uses them)."""
    costs.check_payload(payload)
    if exit not in ("bucket", "none"):
        raise ValueError(f"exit must be 'bucket' or 'none', got {exit!r}")
    chunk = min(chunk, samples)
    if samples % chunk:
        raise ValueError(f"samples ({samples}) must be a multiple of chunk ({chunk})")
    dtype = jnp.result_type(float)
    G = scenario.gamma_max
    K = grid
    r_ref = channel.uplink_rate(scenario, jnp.asarray(1.0, dtype))
    r_floor = jnp.maximum(scenario.r_min, channel.uplink_rate(scenario, scenario.h_min))
    v_grid = jnp.linspace(0.0, 1.0, K, dtype=dtype) * (r_ref / (r_floor + r_ref))
    r_k, r_dl_k = jax.vmap(lambda v: rates_from_v(scenario, v, r_ref))(v_grid)  # (K,)
    a = jnp.arange(G + 1, dtype=dtype)
    topp = payload == "topp"

    def body(acc, i):
        H = table_entropies(scenario, chunk, dtype, i + chunk_offset)
        L, P, B, pi = jax.vmap(
            lambda e: round_laws(scenario, e, payload=payload, exit=exit, H_th=H_th, Theta_th=Theta_th))(H)
        # L, P, B: (c, G+1); pi: (c, G+1, G+1)
        s_p, s_b, s_law, s_y, s_y2 = acc
        s_p = s_p + jnp.sum(P.astype(dtype), axis=0)
        s_b = s_b + jnp.sum(B, axis=0)
        if topp:
            n_given_h = jnp.sum(pi * (a + 1.0), axis=-1)  # (c, G+1) E[N | H]; D does not depend on A
            d_fixed = _generated.round_latency(P, L, 0.0, 0.0, 1.0, 1.0, scenario.tau_d, scenario.t_v0,
                                               scenario.t_v1, scenario.delta)  # (c, G+1) without airtimes
            air = jnp.where(B[..., None] > 0, B[..., None] / r_k, 0.0)
            d = d_fixed[..., None] + air + scenario.b_dl / r_dl_k  # (c, G+1, K)
            y = n_given_h[..., None] / d  # E[N/D | H] at every grid rate
            s_y = s_y + jnp.sum(y, axis=0)
            s_y2 = s_y2 + jnp.sum(y * y, axis=0)
        else:
            onehot_L = jax.nn.one_hot(L, G + 1, dtype=dtype)  # (c, G+1, G+1)
            onehot_x = jax.nn.one_hot(P - L, 2, dtype=dtype)  # (c, G+1, 2)
            xa = (onehot_x[..., :, None] * pi[..., None, :]).reshape(chunk, G + 1, 2 * (G + 1))
            s_law = s_law + jnp.einsum("mgl,mgk->glk", onehot_L, xa).reshape(G + 1, G + 1, 2, G + 1)
        return (s_p, s_b, s_law, s_y, s_y2), None

    zeros_g = jnp.zeros((G + 1,), dtype)
    init = (zeros_g, zeros_g, jnp.zeros((G + 1, G + 1, 2, G + 1), dtype), jnp.zeros((G + 1, K), dtype),
            jnp.zeros((G + 1, K), dtype))
    (s_p, s_b, s_law, s_y, s_y2), _ = jax.lax.scan(body, init, jnp.arange(samples // chunk))
    mean_y = s_y / samples
    var_y = jnp.maximum(s_y2 / samples - mean_y**2, 0.0)
    return ExactTable(s_p / samples, s_b / samples, s_law / samples, v_grid, mean_y,
                      jnp.sqrt(var_y / samples), r_ref)


def _cubic_interp(v, grid, rows):
    """Catmull–Rom cubic interpolation of ``rows (n, K)`` on the uniform ``grid (K,)`` at scalar
    ``v`` (clamped to the grid; one-sided slopes at the ends). Error ``O(Δv³)``."""
    K = grid.shape[0]
    step = grid[1] - grid[0]
    u = jnp.clip((v - grid[0]) / step, 0.0, K - 1.0)
    i = jnp.clip(jnp.floor(u).astype(jnp.int32), 0, K - 2)
    t = u - i
    p0 = rows[:, jnp.maximum(i - 1, 0)]
    p1 = rows[:, i]
    p2 = rows[:, i + 1]
    p3 = rows[:, jnp.minimum(i + 2, K - 1)]
    m1 = jnp.where(i > 0, (p2 - p0) / 2, p2 - p1)
    m2 = jnp.where(i + 2 <= K - 1, (p3 - p1) / 2, p2 - p1)
    t2, t3 = t * t, t * t * t
    return (2 * t3 - 3 * t2 + 1) * p1 + (t3 - 2 * t2 + t) * m1 + (-2 * t3 + 3 * t2) * p2 + (t3 - t2) * m2


def exact_costs(scenario, payload: str, table: ExactTable, rate, rate_dl) -> ExactCosts:
    """``E[N/D | γ̃, h]`` and ``E[E | γ̃, h]`` for every budget at uplink/downlink rates."""
    G = scenario.gamma_max
    energy = _generated.round_energy(table.mean_passes, 0.0, 1.0, scenario.e_d, scenario.P_tx) + (
        scenario.P_tx * jnp.where(table.mean_bits > 0, table.mean_bits / rate, 0.0)
    )
    if payload == "topp":
        v = table.r_ref / (rate + table.r_ref)
        return ExactCosts(_cubic_interp(v, table.v_grid, table.thr_grid), energy)
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
