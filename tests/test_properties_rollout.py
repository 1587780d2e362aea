"""Property-based tests over whole rollouts (issue 9, invariants 1, 3, 4, 5, 6, 7, 9).

Hypothesis draws scenario leaves, policy knobs and the exogenous randomness (a numpy seed plus
the parameters of the fading, energy-arrival and entropy laws, with deep fades, zero arrivals
and entropies exactly at the bucket threshold mixed in); shapes are fixed (``R × T`` below,
``γ_max = 10``), so each policy configuration compiles once. Per-round references are computed
in numpy from docs/model.md §2–§6.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from gelato_jax import Exogenous, Scenario, rollout, simulate
from gelato_jax import simulator as sim_mod
from gelato_jax import tokens
from gelato_jax.policies import REGISTRY, Gelato, StaticSD
from gelato_jax.testing import strategies as gst
from gelato_jax.testing.strategies import log_uniform  # noqa: F401 (re-exported for test_properties_matrix)
from test_properties import bucket_reference  # docs/model.md §6 leaky bucket, literal loop

R, T, GMAX = 3, 40, 10
REL = 1e-9  # relative tolerance for "numerically tied" budgets in the float64 reference
# tests that compile per parameter or call ``simulate`` (a fixed ~0.3 s per call) run a fraction
# of the profile's examples
FEW = settings(max_examples=max(4, settings.default.max_examples // 4))
FEWER = settings(max_examples=max(3, settings.default.max_examples // 8))


# strategies: gelato_jax.testing.strategies (one home); the rollouts use the 24 leaves of the
# round's formulas and exogenous arrays of shape (R, T[, GMAX])
scenarios = gst.scenarios


def exogenous(H_th: float = 1.5):
    return gst.exogenous(R=R, T=T, gamma_max=GMAX, H_th=H_th)


# ----------------------------------------------------------------------------- numpy references
def np_rates(s: Scenario, h):
    g0 = 10.0 ** (-(128.1 + 37.6 * np.log10(s.d / 1000.0)) / 10.0)
    n0 = 10.0 ** ((s.N0_dBm_Hz + s.NF_dB - 30.0) / 10.0)
    h = np.maximum(np.asarray(h, np.float64), s.h_min)
    r = s.W * np.log1p(s.P_tx * g0 * h / (n0 * s.W)) / np.log(2.0)
    r_dl = s.W_dl * np.log1p(s.P_edge * g0 * h / (n0 * s.W_dl)) / np.log(2.0)
    return r, r_dl


def np_token_bits(s: Scenario, payload: str, H):
    if payload == "topp":
        m = np.minimum(min(s.V_vocab, s.m_max), np.ceil(s.c_p * np.exp(H)))
        return s.b_id + m * (s.b_id + s.b_prob)
    per = s.b_id + (s.V_vocab * s.b_prob if payload == "full" else s.b_prob)
    return np.full(np.shape(H), per)


_scenario_stats = jax.jit(lambda s: (tokens.mean_acceptance(s), tokens.mean_topp_bits(s)))


def np_mean_proxy_utility(s: Scenario, payload: str, V, queue, rate, rate_dl):
    """``U_t(γ) = V N̂/D̂ − Z_t Ê`` for every round (…, γ_max + 1), docs/model.md §5 mean proxy
    (``ᾱ``, ``b̄`` from the library's quadrature, tested against scipy in test_formulas)."""
    ab, bb = (float(x) for x in _scenario_stats(s))
    bb = bb if payload == "topp" else float(np_token_bits(s, payload, 0.0))
    g = np.arange(s.gamma_max + 1.0)
    r, rdl = rate[..., None], rate_dl[..., None]
    n_hat = np.cumsum(ab**g)
    bits = g * bb
    bits_dl = s.b_dl + (payload == "scalar") * (1 - ab**g) * s.V_vocab * s.b_prob
    air = np.where(bits > 0, bits / r, 0.0)
    air_dl = np.where(bits_dl > 0, bits_dl / rdl, 0.0)
    tau_d, e_d = s.c_d / s.f, s.kappa * s.c_d * s.f**2
    d_hat = g * tau_d + air + s.t_v0 + s.t_v1 * g + s.delta + air_dl
    e_hat = g * e_d + s.P_tx * air
    return V * n_hat / d_hat - queue[..., None] * e_hat


def check_trajectory(s: Scenario, payload: str, exo: Exogenous, tr) -> None:
    """Invariants 3, 5, 6 and the §3 cost formulas on every round of every realization."""
    chex.assert_tree_all_finite(tr)
    b, L, P, A, N = (np.asarray(x) for x in (tr.budget, tr.sent, tr.passes, tr.accepted, tr.tokens))
    Z, E, a = (np.asarray(x, np.float64) for x in (tr.queue, tr.energy, tr.arrival))
    unverified = np.broadcast_to(np.asarray(getattr(tr, "unverified", 0)), b.shape)
    # budgets and the inner loop
    assert np.all((0 <= L) & (L <= b) & (b <= s.gamma_max))
    assert np.all((P == L) | (P == L + 1)) and np.all(P <= b)
    # tokens: verified rounds produce the leading run of accepted drafts plus one
    H, U = np.asarray(exo.entropy), np.asarray(exo.uniform)
    alpha = 1.0 / (1.0 + np.exp(-(s.a0 - s.a1 * H)))
    pos = np.arange(s.gamma_max)
    lead = np.cumprod((U < alpha) & (pos < L[..., None]), axis=-1).sum(-1)
    verified = unverified == 0
    np.testing.assert_array_equal(A[verified], lead[verified])
    np.testing.assert_array_equal(N[verified], A[verified] + 1)
    assert np.all((1 <= N[verified]) & (N[verified] <= L[verified] + 1))
    np.testing.assert_array_equal(N[~verified], unverified[~verified])
    # outage rounds draft nothing and cost no device energy
    rate = np.asarray(tr.rate)
    r_np, rdl_np = np_rates(s, exo.channel_gain)
    np.testing.assert_allclose(rate, r_np, rtol=1e-9)
    outage = rate < s.r_min
    assert np.all(b[outage] == 0)
    assert np.all(E[P == 0] == 0.0)
    # queue: Z_0 = 0, Z ≥ 0, exact update, energy bound on every path
    assert np.all(Z >= 0) and np.all(Z[:, 0] == 0)
    np.testing.assert_array_equal(Z[:, 1:], np.maximum(Z[:, :-1] + E[:, :-1] - a[:, :-1], 0.0))
    Z_T = np.maximum(Z[:, -1] + E[:, -1] - a[:, -1], 0.0)
    slack = 1e-12 * (np.abs(E).sum(1) + np.abs(a).sum(1))  # float64 summation error over T terms
    assert np.all(E.sum(1) <= a.sum(1) + Z_T + slack)
    # §3 costs of verified rounds, from the per-round quantities
    bits = np.where(pos < L[..., None], np_token_bits(s, payload, H), 0.0).sum(-1)
    bits_dl = np.asarray(tr.downlink_bits, np.float64)
    if payload in ("topp", "full"):
        np.testing.assert_array_equal(bits_dl[verified], s.b_dl)
    np.testing.assert_allclose(np.asarray(tr.uplink_bits)[verified], bits[verified], rtol=1e-12)
    air = np.where(bits > 0, bits / rate, 0.0)
    air_dl = np.where(bits_dl > 0, bits_dl / rdl_np, 0.0)
    tau_d, e_d = s.c_d / s.f, s.kappa * s.c_d * s.f**2
    lat = P * tau_d + air + s.t_v0 + s.t_v1 * L + s.delta + air_dl
    np.testing.assert_allclose(np.asarray(tr.latency)[verified], lat[verified], rtol=1e-9)
    np.testing.assert_allclose(E[verified], (P * e_d + s.P_tx * air)[verified], rtol=1e-9, atol=1e-300)


def check_bruteforce_budgets(s: Scenario, payload: str, V: float, exo: Exogenous, tr) -> None:
    """Invariant 1 on every round: the budget maximises the mean-proxy objective at ``Z_t``."""
    rate = np.asarray(tr.rate)
    _, rdl = np_rates(s, exo.channel_gain)
    u = np_mean_proxy_utility(s, payload, V, np.asarray(tr.queue), rate, rdl)
    allowed = (np.arange(s.gamma_max + 1) == 0) | (rate >= s.r_min)[..., None]
    u = np.where(allowed, u, -np.inf)
    best = u.max(-1, keepdims=True)
    scale = np.abs(np.where(allowed, u, 0.0)).max(-1, keepdims=True) + 1e-300
    near = u >= best - REL * scale
    b = np.asarray(tr.budget)
    chosen_ok = np.take_along_axis(near, b[..., None], -1)[..., 0]
    assert np.all(chosen_ok), f"rounds whose budget is not a maximiser: {np.argwhere(~chosen_ok)[:5]}"
    unique = near.sum(-1) == 1
    np.testing.assert_array_equal(b[unique], np.argmax(near, -1)[unique])


# ----------------------------------------------------------------------------- GELATO variants
GELATO_CONFIGS = [
    dict(proxy="mean", exit="bucket", payload="topp"),
    dict(proxy="mean", exit="none", payload="topp"),
    dict(proxy="mean", exit="bucket", payload="scalar"),
    dict(proxy="ewma", exit="bucket", payload="topp"),
]


@pytest.mark.parametrize("config", GELATO_CONFIGS, ids=lambda c: "-".join(c.values()))
@given(
    data=st.data(),
    scen=scenarios(),
    V=st.one_of(log_uniform(1e-3, 1e3), st.just(0.0)),
    H_th=st.one_of(st.floats(0.0, 4.0), st.just(1.5)),
    Theta_th=st.one_of(st.floats(0.0, 4.0), st.just(0.0)),
    ewma_beta=st.floats(0.01, 1.0),
)
def test_gelato_rollout_invariants(config, data, scen, V, H_th, Theta_th, ewma_beta):
    """Invariants 1, 3, 4, 5, 6 on generated rollouts of every GELATO variant."""
    pol = Gelato(V=V, H_th=H_th, Theta_th=Theta_th, ewma_beta=ewma_beta, **config)
    exo = data.draw(exogenous(H_th=H_th))
    tr = rollout(scen, pol, exo)
    check_trajectory(scen, pol.payload, exo, tr)
    b, L, P = (np.asarray(x) for x in (tr.budget, tr.sent, tr.passes))
    H = np.asarray(exo.entropy)
    if pol.exit == "none":
        np.testing.assert_array_equal(L, b)
        np.testing.assert_array_equal(P, b)
    else:
        for idx in np.ndindex(R, T):
            assert (L[idx], P[idx]) == bucket_reference(H[idx], b[idx], H_th, Theta_th), idx
    if pol.proxy == "mean":
        check_bruteforce_budgets(scen, pol.payload, V, exo, tr)
    if V == 0.0:  # V = 0: nothing is ever worth energy
        np.testing.assert_array_equal(b, 0)
        np.testing.assert_array_equal(np.asarray(tr.energy), 0.0)


@given(data=st.data(), scen=scenarios(), gamma=st.integers(0, GMAX))
def test_static_sd_rollout_invariants(data, scen, gamma):
    """StaticSD: the fixed budget outside outage, whole budget sent, invariants 3, 5, 6."""
    exo = data.draw(exogenous())
    tr = rollout(scen, StaticSD(gamma=gamma), exo)
    check_trajectory(scen, "full", exo, tr)
    outage = np.asarray(tr.rate) < scen.r_min
    np.testing.assert_array_equal(np.asarray(tr.budget), np.where(outage, 0, gamma))
    np.testing.assert_array_equal(tr.sent, tr.budget)


@pytest.mark.parametrize("name", sorted(REGISTRY))
@FEW
@given(data=st.data(), scen=scenarios())
def test_every_registered_policy_keeps_round_invariants(name, data, scen):
    """Invariants 3, 5, 6 hold for every policy in the registry (default knobs)."""
    cls = REGISTRY[name]
    # policies whose tables depend on the scenario (the LP oracle) are built for it
    pol = cls.solve(scen, quantiles=64) if hasattr(cls, "solve") else cls()
    exo = data.draw(exogenous())
    tr = rollout(scen, pol, exo)
    check_trajectory(scen, pol.payload, exo, tr)


# ----------------------------------------------------------------------------- invariant 7
@given(data=st.data(), scen=scenarios(), V=log_uniform(1e-3, 1e3))
def test_greedy_rollout_picks_proxy_throughput_maximiser(data, scen, V):
    """Invariant 7: with ``Z ≡ 0`` (arrivals cover every round's energy) each budget maximises the
    proxy throughput; the registered greedy policy, if any, does so whatever the queue."""
    exo = data.draw(exogenous())
    exo = exo._replace(energy_arrival=np.full((R, T), 1e300))  # the queue never leaves 0
    tr = rollout(scen, Gelato(V=V, exit="none"), exo)
    np.testing.assert_array_equal(tr.queue, 0.0)
    check_bruteforce_budgets(scen, "topp", 1.0, exo, tr)  # Z = 0: argmax of T̂ (V scales out)
    greedy = REGISTRY.get("greedy")
    if greedy is not None:
        tight = exo._replace(energy_arrival=np.zeros((R, T)))  # the queue grows, greedy ignores it
        trg = rollout(scen, greedy(), tight)
        zero_q = trg._replace(queue=jnp.zeros_like(trg.queue))
        check_bruteforce_budgets(scen, greedy().payload, 1.0, tight, zero_q)


@given(data=st.data(), scen=scenarios(), V=log_uniform(1e-8, 1e-2))
def test_small_v_spends_only_below_a_queue_threshold_proportional_to_v(data, scen, V):
    """Invariant 7: a round drafts (spends energy) only if ``Z_t ≤ V · max_γ (T̂(γ) − T̂(0))/Ê(γ)``,
    so as ``V → 0`` GELATO spends no energy once ``Z > 0``."""
    exo = data.draw(exogenous())
    tr = rollout(scen, Gelato(V=V, exit="none"), exo)
    rate = np.asarray(tr.rate)
    _, rdl = np_rates(scen, exo.channel_gain)
    zero = np.zeros_like(rate)
    t_hat = np_mean_proxy_utility(scen, "topp", 1.0, zero, rate, rdl)  # V = 1, Z = 0: T̂
    e_hat = -np_mean_proxy_utility(scen, "topp", 0.0, np.ones_like(rate), rate, rdl)  # Ê
    thresh = V * np.max((t_hat[..., 1:] - t_hat[..., :1]) / e_hat[..., 1:], axis=-1)
    spend = np.asarray(tr.budget) > 0
    Z = np.asarray(tr.queue)
    note(f"spending rounds {spend.sum()}, max Z/threshold {np.max(Z[spend] / thresh[spend], initial=0)}")
    assert np.all(Z[spend] <= thresh[spend] * (1 + 1e-9))


# ----------------------------------------------------------------------------- invariant 9
@given(data=st.data(), scen=scenarios(), perm=st.permutations(range(R)), V=log_uniform(1e-2, 1e2))
def test_rollout_is_equivariant_to_realization_order(data, scen, perm, V):
    """Invariant 9: permuting the realizations permutes the trajectories (bit for bit)."""
    exo = data.draw(exogenous())
    pol = Gelato(V=V, proxy="ewma")
    tr = rollout(scen, pol, exo)
    trp = rollout(scen, pol, Exogenous(*(np.asarray(x)[list(perm)] for x in exo)))
    for name, x, y in zip(tr._fields, tr, trp):
        np.testing.assert_array_equal(np.asarray(x)[list(perm)], y, err_msg=name)


NREAL, ROUNDS = 5, 30


@jax.jit
def _simulate_indices(scenario, policy, seed, indices):
    fn = lambda i: sim_mod.simulate_realization(
        scenario, policy, jax.random.key(seed), i, rounds=ROUNDS, ar=False, dtype=jnp.float64
    )
    return jax.vmap(fn)(indices)


@FEWER
@given(
    scen=scenarios(),
    V=log_uniform(1e-2, 1e2),
    seed=st.integers(0, 2**31 - 1),
    perm=st.permutations(range(NREAL)),
)
def test_simulate_invariant_to_chunk_and_realization_order(scen, V, seed, perm):
    """Invariant 9: ``simulate`` gives identical per-realization results with chunks of 2 (the
    last one padded) as in one batch, and a realization's result depends only on its index (any
    order of indices, any batch). One chunk size keeps compilation to one extra program; other
    chunk sizes are covered in test_rollout."""
    pol = Gelato(V=V)
    full = simulate(scen, pol, seed=seed, realizations=NREAL, rounds=ROUNDS)
    part = simulate(scen, pol, seed=seed, realizations=NREAL, rounds=ROUNDS, chunk=2)
    for k, v in full.as_dict().items():
        np.testing.assert_array_equal(v, getattr(part, k), err_msg=f"{k} chunk=2")
    out = _simulate_indices(scen, pol, seed, np.asarray(perm, np.uint32))
    for k in ("throughput", "energy", "queue", "queue_final", "sent"):
        np.testing.assert_array_equal(np.asarray(out[k]), getattr(full, "queue_mean" if k == "queue" else k)[list(perm)], err_msg=k)
