r"""The exact-proxy table as a differentiable function of the bucket thresholds ``(H_th, Θ_th)``.

``gelato_jax.exact_proxy.build_table`` estimates ``E[N/D | γ̃, r]``, ``E[P | γ̃]``, ``E[B | γ̃]`` (and,
for entropy-independent payloads, the law of ``(L, P − L, A)``) by a sample average over i.i.d.
entropy vectors. Its value is piecewise constant in the thresholds (a sample's exit position jumps
when a bucket level crosses ``Θ_th``), so it has no useful gradient. This module estimates the
same expectations with an estimator that is **continuous and piecewise smooth** in
``(H_th, Θ_th)`` for a fixed sample, so that ``jax.grad``/``jax.jacfwd`` give unbiased gradients
(a Lipschitz, a.e.-differentiable estimator: derivative and expectation commute).

Construction (a local change of variables near the thresholds). Along a round the bucket is
``Θ_0 = 0``, ``Θ_i = max(0, Θ_{i−1} + H_i − H_th)`` and the round exits at position ``i`` iff
``H_i > c_i := Θ_th + H_th − Θ_{i−1}``. For each sample path of base entropies
``H⁰_1..H⁰_G ~ Gamma(k_H, θ_H)`` (the same sample as the Monte Carlo table) the indicator
``1{H_i ≤ c_i}`` is replaced by a continuous weight ``w_i``: the entropy axis is cut into
*levels* on which the uplink bits of a token are constant (the ``topp`` support
``m(H) = ⌈c_p e^H⌉`` jumps at ``H = log(k/c_p)``; extra cuts every ``CUT`` nats keep levels
narrow). A sample ``H⁰_i`` in level ``[a, b)`` is

* kept as it is when ``b ≤ c_i`` (``w_i = 1``),
* squeezed linearly into ``[a, c_i]`` when the level contains ``c_i``:
  ``H_i = a + s(H⁰_i − a)``, ``s = (c_i − a)/(b − a)``, ``w_i = s f(H_i)/f(H⁰_i)`` (change of
  variables, ``f`` the Gamma density),
* dropped (``w_i = 0``) when ``a ≥ c_i``;

the round continues with weight ``w_i`` and exits at ``i`` with weight ``1 − w_i`` (then
``L = i − 1``, ``P = i``, and only ``H_{<i}`` is used). For every ``g``,
``E[w_i g(H_i)] = ∫_0^{c_i} g f`` and ``E[1 − w_i] = P(H > c_i)``, so the estimator is unbiased;
the bits of ``H_i`` never jump (its level is fixed), and everything is continuous in ``c_i``
(``s → 1`` at ``c_i = b``, ``w → 0`` at ``c_i = a``). Each sample keeps total mass 1 (exit + continuation),
so the variance stays close to the plain table's (a Rao–Blackwellised exit ``W_{i−1}P(H > c_i)``
was tried first: unbiased, but it added mass to kept samples and had 8× the variance).

The path weight ``W_i = Π_{j≤i} w_j`` and the exit weights ``W_{i−1}(1 − w_i)`` replace the
indicators of the exit position; ``E[N | H] = 1 + Σ_{k≤L} Π_{l≤k} α(H_l)`` is used as in the table
(Rao–Blackwellised acceptance). All samples whose levels lie below the thresholds' reach are
exactly the table's samples, so the two estimators differ only near the thresholds.

Everything is JAX (float64 recommended: ``jax.enable_x64``); ``table(...)`` returns a
``gelato_jax.exact_proxy.ExactTable`` that ``exact_costs`` and ``gelato_jax.optimum`` consume as they
are. ``t_star`` is ``T*`` of the exit-aware per-round problem (docs/model.md §8.3, ``proxy="exact"``) on
an equal-probability quantisation of the fading law, differentiable in the thresholds by the
envelope theorem (the price ``λ*`` is held fixed: ``∂D/∂λ = 0`` at the optimum).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

from . import channel, costs, tokens

__all__ = ["level_edges", "table", "proxy_on_nodes", "t_star", "Quantisation", "quantisation", "CUT", "means",
           "renewal_on_nodes", "t_star_time_average"]

#: extra level cuts (nats) where the bits do not change: narrow levels keep the squeeze weights near 1
CUT = 0.25
#: offset of those cuts (an irrational fraction of ``CUT``): the estimator has a kink where a
#: threshold sum ``c_i`` sits exactly on a cut, so the cuts avoid round numbers such as 2.5
CUT_OFFSET = CUT * (math.sqrt(5.0) - 1.0) / 2.0


def level_edges(scenario, payload: str, h_reach: float) -> np.ndarray:
    """Sorted level edges ``0 = e_0 < … < e_n`` (numpy, float64); the last level is ``[e_n, ∞)``.

    Edges: every jump of the token bits of ``payload`` (``topp``: ``H = log(k/c_p)`` for integers
    ``c_p < k < min(V_vocab, m_max)``), plus cuts every ``CUT`` nats up to ``h_reach + 1``. The
    continuation branch needs ``c_i ≤ Θ_th + H_th < e_n``: ``h_reach`` must bound
    ``Θ_th + H_th`` over every threshold the table is evaluated at (``table`` checks it)."""
    costs.check_payload(payload)
    top = float(h_reach) + 1.0
    cuts = [np.concatenate([[0.0], np.arange(CUT_OFFSET, top + CUT, CUT)])]
    if payload == "topp":
        c_p = float(np.asarray(scenario.c_p))
        cap = min(float(np.asarray(scenario.V_vocab)), float(np.asarray(scenario.m_max)))
        k = np.arange(math.floor(c_p) + 1, int(cap))
        h = np.log(k / c_p)
        cuts.append(h[(h > 0) & (h < top)])
    e = np.unique(np.concatenate(cuts))
    e = e[np.concatenate([[True], np.diff(e) > 1e-9])]
    return e


def _level_bits(scenario, payload, edges):
    """Bits of one token on each level ``[e_j, e_{j+1})`` (constant there by construction)."""
    mid = jnp.concatenate([0.5 * (edges[:-1] + edges[1:]), edges[-1:] + 0.5 * CUT])
    return costs.token_bits(scenario, payload, mid)


def _prepare(scenario, payload, H_th, Theta_th, edges, samples, chunk):
    """Checked arguments of ``table``/``means``: ``(chunk, dtype, H_th, Θ_th, edges, level bits)``."""
    costs.check_payload(payload)
    chunk = min(chunk, samples)
    if samples % chunk:
        raise ValueError(f"samples ({samples}) must be a multiple of chunk ({chunk})")
    dtype = jnp.result_type(float)
    edges = jnp.asarray(edges, dtype)
    return (chunk, dtype, jnp.asarray(H_th, dtype), jnp.asarray(Theta_th, dtype), edges,
            _level_bits(scenario, payload, edges))


def _draws(scenario, chunk: int, dtype, i, seed):
    """Chunk ``i`` of base entropies ``(chunk, γ_max)``: the exact-proxy table's own sample
    (``seed=None``) or an independent one (key ``fold_in(key(seed), i)``)."""
    from . import exact_proxy

    if seed is None:
        return exact_proxy.table_entropies(scenario, chunk, dtype, i)
    key = jax.random.fold_in(jax.random.key(seed), i)
    k = jnp.asarray(scenario.k_H, dtype)
    return scenario.theta_H * jax.random.gamma(key, k, (chunk, scenario.gamma_max), dtype=dtype)


def _log_pdf(h, k, theta):
    return (k - 1.0) * jnp.log(h) - h / theta - gammaln(k) - k * jnp.log(theta)


def _paths(scenario, payload, H_th, Theta_th, H0, edges, bits_lv):
    """One chunk of sample paths ``H0 (c, G)`` → per path: exit probabilities ``q (c, G)`` at
    positions 1..G, path weights ``W (c, G+1)`` (``W_0 = 1``), acceptance products
    ``R (c, G+1)`` (``R_0 = 1``), cumulative bits ``Bc (c, G+1)``."""
    dtype = H0.dtype
    k = jnp.asarray(scenario.k_H, dtype)
    th = jnp.asarray(scenario.theta_H, dtype)
    lv = jnp.clip(jnp.searchsorted(edges, H0, side="right") - 1, 0, edges.shape[0] - 1)  # threshold-free
    a = edges[lv]
    b = jnp.concatenate([edges[1:], jnp.full((1,), jnp.inf, dtype)])[lv]
    bits = bits_lv[lv]

    def step(carry, x):
        level, W = carry
        h0, a_, b_ = x
        c = Theta_th + H_th - level  # ≥ H_th on a live path; a dropped path (W = 0) may go below 0
        finite = jnp.isfinite(b_)
        width = jnp.where(finite, b_ - a_, 1.0)
        s = jnp.where(finite, jnp.clip((c - a_) / width, 0.0, 1.0), 0.0)
        pos = s > 0
        s_safe = jnp.where(pos, s, 1.0)
        h = a_ + s_safe * (h0 - a_)
        # w = s f(h)/f(h0); exactly 1 when s = 1 (h = h0)
        logw = jnp.log(s_safe) + _log_pdf(h, k, th) - _log_pdf(h0, k, th)
        w = jnp.where(pos, jnp.where(s_safe < 1.0, jnp.exp(logw), 1.0), 0.0)
        h = jnp.where(pos, h, 0.0)  # dropped (W = 0 from here): any finite value
        q = W * (1.0 - w)  # exit at this position: E[1 − w] = P(H > c), per-sample mass conserved
        W = W * w
        level = jnp.maximum(0.0, level + h - H_th)
        return (level, W), (q, W, h)

    zero = jnp.zeros(H0.shape[:1], dtype)
    _, (q, W, H) = jax.lax.scan(step, (zero, zero + 1.0), (H0.T, a.T, b.T))
    q, W, H = q.T, W.T, H.T  # (c, G)
    alpha = tokens.acceptance_prob(scenario, H)
    one = jnp.ones(H0.shape[:1] + (1,), dtype)
    R = jnp.concatenate([one, jnp.cumprod(alpha, axis=1)], axis=1)
    W = jnp.concatenate([one, W], axis=1)
    Bc = jnp.concatenate([0.0 * one, jnp.cumsum(bits, axis=1)], axis=1)
    return q, W, R, Bc


def table(scenario, *, payload: str, H_th, Theta_th, edges, samples: int = 131072, chunk: int = 8192,
          grid: int = 64, seed: int | None = None):
    """The exact-proxy table of ``Gelato(proxy="exact", exit="bucket", payload=payload)`` at
    thresholds ``(H_th, Θ_th)``, as a smooth JAX function of them (call under ``jit``; float64).

    Same fields, grid and entropy sample as ``gelato_jax.exact_proxy.build_table`` (``seed=None``: its
    ``EXACT_SEED`` and chunk keys; another ``seed`` gives an independent sample). ``edges`` from
    ``level_edges`` (``Θ_th + H_th`` must stay below ``edges[-1]``: larger values give ``nan``).
    """
    from theory import _generated
    from . import exact_proxy

    chunk, dtype, H_th, Theta_th, edges, bits_lv = _prepare(scenario, payload, H_th, Theta_th, edges, samples, chunk)
    G = scenario.gamma_max
    K = grid
    r_ref = channel.uplink_rate(scenario, jnp.asarray(1.0, dtype))
    r_floor = jnp.maximum(scenario.r_min, channel.uplink_rate(scenario, scenario.h_min))
    v_grid = jnp.linspace(0.0, 1.0, K, dtype=dtype) * (r_ref / (r_floor + r_ref))
    r_k, r_dl_k = jax.vmap(lambda v: exact_proxy.rates_from_v(scenario, v, r_ref))(v_grid)
    topp = payload == "topp"
    gi = jnp.arange(G + 1)
    pos = jnp.arange(1, G + 1)  # exit position j (L = j − 1, P = j)
    b_dl = costs.downlink_bits(scenario, payload, jnp.zeros((), bool))

    def draws(i):
        return _draws(scenario, chunk, dtype, i, seed)

    def body(acc, i):
        H0 = draws(i)
        q, W, R, Bc = _paths(scenario, payload, H_th, Theta_th, H0, edges, bits_lv)
        n = jnp.cumsum(R, axis=1)  # (c, G+1): E[N | H, L = i] = 1 + Σ_{k≤i} R_k
        # budget γ̃: exits at j ≤ γ̃ (weights q_j) + completion (weight W_γ̃)
        before = (pos[None, :] <= gi[:, None]).astype(dtype)  # (G+1, G): j ≤ γ̃
        s_p, s_b, s_law, s_y, s_y2 = acc
        p_budget = q @ (before * pos).T + W * gi  # (c, G+1)
        b_budget = (q * Bc[:, :-1]) @ before.T + W * Bc
        s_p = s_p + jnp.sum(p_budget, axis=0)
        s_b = s_b + jnp.sum(b_budget, axis=0)
        if topp:
            d_exit = _generated.round_latency(pos, pos - 1, 0.0, 0.0, 1.0, 1.0, scenario.tau_d, scenario.t_v0,
                                              scenario.t_v1, scenario.delta)  # (G,)
            d_full = _generated.round_latency(gi, gi, 0.0, 0.0, 1.0, 1.0, scenario.tau_d, scenario.t_v0,
                                              scenario.t_v1, scenario.delta)  # (G+1,)
            air_e = jnp.where(Bc[:, :-1, None] > 0, Bc[:, :-1, None] / r_k, 0.0) + b_dl / r_dl_k
            air_f = jnp.where(Bc[..., None] > 0, Bc[..., None] / r_k, 0.0) + b_dl / r_dl_k
            y_e = n[:, :-1, None] / (d_exit[None, :, None] + air_e)  # (c, G, K)
            y_f = n[..., None] / (d_full[None, :, None] + air_f)  # (c, G+1, K)
            ye_w = q[..., None] * y_e
            cum = jnp.concatenate([jnp.zeros_like(ye_w[:, :1]), jnp.cumsum(ye_w, axis=1)], axis=1)  # Σ_{j≤γ̃}
            y = cum + W[..., None] * y_f  # (c, G+1, K)
            s_y = s_y + jnp.sum(y, axis=0)
            s_y2 = s_y2 + jnp.sum(y * y, axis=0)
        else:
            a = jnp.arange(G + 1)
            alpha_next = jnp.concatenate([R[:, 1:] / jnp.where(R[:, :-1] > 0, R[:, :-1], 1.0),
                                          jnp.zeros_like(R[:, :1])], axis=1)  # α_{a+1}
            # π_L(a) = R_a (1 − α_{a+1}) for a < L, R_L for a = L
            pi = jnp.where(a[None, None, :] < gi[None, :, None], (R * (1.0 - alpha_next))[:, None, :],
                           jnp.where(a[None, None, :] == gi[None, :, None], R[:, None, :], 0.0))  # (c, L, a)
            p_exit = q[..., None] * pi[:, :-1, :]  # (c, G, a): exit at j = L + 1
            p_full = W[..., None] * pi  # (c, G+1, a)
            m_exit = (gi[:, None] > jnp.arange(G)[None, :]).astype(dtype)  # (γ̃, L): L < γ̃
            law1 = jnp.einsum("gl,cla->gla", m_exit, p_exit)  # (G+1, G, a)
            law1 = jnp.concatenate([law1, jnp.zeros((G + 1, 1, G + 1), dtype)], axis=1)
            law0 = jnp.eye(G + 1, dtype=dtype)[:, :, None] * jnp.sum(p_full, axis=0)[None]
            s_law = s_law + jnp.stack([law0, law1], axis=2)
        return (s_p, s_b, s_law, s_y, s_y2), None

    zeros_g = jnp.zeros((G + 1,), dtype)
    init = (zeros_g, zeros_g, jnp.zeros((G + 1, G + 1, 2, G + 1), dtype), jnp.zeros((G + 1, K), dtype),
            jnp.zeros((G + 1, K), dtype))
    (s_p, s_b, s_law, s_y, s_y2), _ = jax.lax.scan(jax.checkpoint(body), init, jnp.arange(samples // chunk))
    ok = (H_th + Theta_th) < edges[-1]
    nan = jnp.where(ok, 1.0, jnp.nan)
    mean_y = s_y / samples
    var_y = jnp.maximum(s_y2 / samples - mean_y**2, 0.0)
    return exact_proxy.ExactTable(nan * s_p / samples, nan * s_b / samples, nan * s_law / samples, v_grid,
                                  nan * mean_y, jnp.sqrt(var_y / samples), r_ref)


class Quantisation(NamedTuple):
    """Equal-probability bins of the fading law (``optimum.h_quantisation`` midpoints)."""

    nodes: Any  # (n,) gains
    weights: Any  # (n,) probabilities
    outage: Any  # (n,) bool


def quantisation(scenario, n: int = 4096) -> Quantisation:
    """``n`` equal-probability bins of ``h`` (plus the outage edge), numpy float64."""
    from .optimum import h_quantisation, outage_threshold

    _, nodes, w, _, _, _ = h_quantisation(scenario, int(n))
    return Quantisation(nodes, w, nodes < outage_threshold(scenario))


def proxy_on_nodes(scenario, payload: str, tab, nodes):
    """``(T, E)`` ``(n, γ_max+1)``: the exact proxy of table ``tab`` at gains ``nodes``."""
    from . import exact_proxy

    def one(h):
        rate = channel.uplink_rate(scenario, h)
        rate_dl = channel.downlink_rate(scenario, h)
        c = exact_proxy.exact_costs(scenario, payload, tab, rate, rate_dl)
        return c.throughput, c.energy

    return jax.vmap(one)(jnp.asarray(nodes))


def t_star(T, E, quant: Quantisation, E_bar, *, iters: int = 200):
    r"""``(T*, λ*, e)`` of ``max_p E_h Σ p T`` s.t. ``E_h Σ p E ≤ Ē`` on the quantised law (JAX).

    ``T*`` is the dual value ``λ*Ē + Σ_k w_k max_γ (T − λ*E)`` (``γ = 0`` only in outage), ``λ*``
    the root of ``e(λ) = Ē`` by bisection (``iters`` halvings of ``[0, λ_hi]``; ``λ* = 0`` when the
    budget does not bind). ``λ*`` is a ``stop_gradient``: the gradient of ``T*`` with respect to
    anything ``T``, ``E`` depend on is the envelope-theorem gradient ``E_h[∂T − λ*∂E]`` of the
    λ*-policy. ``e`` is the mean energy of the λ*-policy."""
    w = jnp.asarray(quant.weights)
    allowed = jnp.ones(T.shape, bool).at[:, 1:].set(~jnp.asarray(quant.outage)[:, None])
    Ts, Es = jax.lax.stop_gradient(T), jax.lax.stop_gradient(E)

    def energy_at(lam):
        g = jnp.where(allowed, Ts - lam * Es, -jnp.inf)
        k = jnp.argmax(g, axis=1)
        return w @ jnp.take_along_axis(Es, k[:, None], 1)[:, 0]

    e0 = energy_at(0.0)
    t_min = w @ jnp.min(jnp.where(allowed, Ts, jnp.inf), axis=1)
    e_min = w @ jnp.min(jnp.where(allowed, Es, jnp.inf), axis=1)
    d0 = w @ jnp.max(jnp.where(allowed, Ts, -jnp.inf), axis=1)
    lam_hi = jnp.maximum((d0 - t_min) / jnp.maximum(E_bar - e_min, 1e-300), 1e-12) * 1.001

    def bisect(_, lohi):
        lo, hi = lohi
        mid = 0.5 * (lo + hi)
        over = energy_at(mid) > E_bar
        return jnp.where(over, mid, lo), jnp.where(over, hi, mid)

    lo, hi = jax.lax.fori_loop(0, iters, bisect, (jnp.zeros_like(lam_hi), lam_hi))
    lam = jnp.where(e0 <= E_bar, 0.0, hi)
    lam = jax.lax.stop_gradient(lam)
    g = jnp.where(allowed, T - lam * E, -jnp.inf)
    value = lam * E_bar + w @ jnp.max(g, axis=1)
    k = jnp.argmax(jax.lax.stop_gradient(g), axis=1)
    e = w @ jnp.take_along_axis(Es, k[:, None], 1)[:, 0]
    return value, lam, e


# ----------------------------------------------------------------------------- time-average form
def means(scenario, *, payload: str, H_th, Theta_th, edges, samples: int = 131072, chunk: int = 8192,
          seed: int | None = None):
    """The renewal means of ``gelato_jax.renewal.build_table`` (``E[N]``, ``E[P]``, ``E[L]``,
    ``E[B]``, ``P(A < L)`` per budget) at thresholds ``(H_th, Θ_th)``, smooth in them (the same
    estimator as ``table``; same sample for ``seed=None`` and the same chunk). JAX, float64."""
    from .renewal import RenewalTable

    chunk, dtype, H_th, Theta_th, edges, bits_lv = _prepare(scenario, payload, H_th, Theta_th, edges, samples, chunk)
    G = scenario.gamma_max
    gi = jnp.arange(G + 1)
    pos = jnp.arange(1, G + 1)
    before = (pos[None, :] <= gi[:, None]).astype(dtype)  # (G+1, G): exit position j ≤ γ̃

    def draws(i):
        return _draws(scenario, chunk, dtype, i, seed)

    def body(acc, i):
        q, W, R, Bc = _paths(scenario, payload, H_th, Theta_th, draws(i), edges, bits_lv)
        n = jnp.cumsum(R, axis=1)

        def mix(x_exit, x_full):  # Σ_{j≤γ̃} q_j x_exit[j] + W_γ̃ x_full[γ̃]  → (c, G+1)
            return (q * x_exit) @ before.T + W * x_full

        parts = (mix(n[:, :-1], n), mix(pos.astype(dtype), gi.astype(dtype)), mix((pos - 1).astype(dtype), gi.astype(dtype)),
                 mix(Bc[:, :-1], Bc), mix(1.0 - R[:, :-1], 1.0 - R))
        return tuple(s + jnp.sum(x, axis=0) for s, x in zip(acc, parts)), None

    init = tuple(jnp.zeros((G + 1,), dtype) for _ in range(5))
    sums, _ = jax.lax.scan(jax.checkpoint(body), init, jnp.arange(samples // chunk))
    nan = jnp.where((H_th + Theta_th) < edges[-1], 1.0, jnp.nan)
    return RenewalTable(*(nan * s / samples for s in sums))


def renewal_on_nodes(scenario, payload: str, tab, nodes):
    """``(N̂, D̂, Ê)`` ``(n, γ_max+1)`` of renewal means ``tab`` at gains ``nodes``."""
    from .renewal import table_costs

    def one(h):
        pc = table_costs(scenario, payload, tab, channel.uplink_rate(scenario, h), channel.downlink_rate(scenario, h))
        return pc.tokens, pc.latency, pc.energy

    return jax.vmap(one)(jnp.asarray(nodes))


def t_star_time_average(N, D, E, quant: Quantisation, P_bar, *, outer: int = 40, iters: int = 200):
    r"""``(T*, λ*, power)`` of ``max E[N]/E[D]`` s.t. ``E[E]/E[D] ≤ P̄`` on the quantised law (JAX;
    docs/model.md §11), by Dinkelbach's iteration as ``renewal.dinkelbach`` (inner price by bisection,
    the two policies at the crossing mixed), ``outer`` iterations (superlinear: converged in < 10
    at the defaults). ``θ*``, ``λ*`` and the optimal policy are held fixed (``stop_gradient``) and
    the value is written ``θ* + E_p*[N − θ*D − λ*(E − P̄D)] / E_p*[D]`` (= ``θ*`` since the bracket
    vanishes at the optimum): its gradient is the Charnes–Cooper LP's envelope gradient."""
    w = jnp.asarray(quant.weights)
    allowed = jnp.ones(N.shape, bool).at[:, 1:].set(~jnp.asarray(quant.outage)[:, None])
    Ns, Ds, Es = (jax.lax.stop_gradient(x) for x in (N, D, E))
    b = Es - P_bar * Ds
    G1 = N.shape[1]

    def price_policy(a, lam):
        k = jnp.argmax(jnp.where(allowed, a - lam * b, -jnp.inf), axis=1)
        return jax.nn.one_hot(k, G1, dtype=N.dtype), w @ jnp.take_along_axis(b, k[:, None], 1)[:, 0]

    def inner(theta):
        a = Ns - theta * Ds
        p0, e0 = price_policy(a, 0.0)

        def grow(hi):
            return hi * 2.0

        hi = jax.lax.while_loop(lambda h: (price_policy(a, h)[1] > 0.0) & (h < 1e300), grow, jnp.ones_like(theta))

        def bis(_, lohi):
            lo, hi = lohi
            mid = 0.5 * (lo + hi)
            pos = price_policy(a, mid)[1] > 0.0
            return jnp.where(pos, mid, lo), jnp.where(pos, hi, mid)

        lo, hi = jax.lax.fori_loop(0, iters, bis, (jnp.zeros_like(hi), hi))
        pa, ea = price_policy(a, lo)
        pb, eb = price_policy(a, hi)
        qq = jnp.where(ea != eb, ea / jnp.where(ea != eb, ea - eb, 1.0), 0.0)
        probs = (1.0 - qq) * pa + qq * pb
        slack = e0 <= 0.0
        return jnp.where(slack, 0.0, hi), jnp.where(slack, p0, probs)

    def dink(_, theta):
        _, p = inner(theta)
        new = (w @ jnp.sum(p * Ns, 1)) / (w @ jnp.sum(p * Ds, 1))
        return jnp.maximum(theta, new)

    theta0 = (w @ Ns[:, 0]) / (w @ Ds[:, 0])
    theta = jax.lax.fori_loop(0, outer, dink, theta0)
    lam, p = inner(theta)
    theta, lam, p = (jax.lax.stop_gradient(x) for x in (theta, lam, p))
    mD = w @ jnp.sum(p * Ds, 1)
    value = theta + (w @ jnp.sum(p * (N - theta * D - lam * (E - P_bar * D)), 1)) / mD
    power = (w @ jnp.sum(p * Es, 1)) / mD
    return value, lam, power
