"""gelato_jax.exact_proxy / Gelato(proxy="exact"): the table against an independent numpy Monte Carlo of
docs/model.md §3–§6 (leaky bucket, acceptance, bits, latency, energy)."""

import jax
import numpy as np
import pytest

from gelato_jax import Scenario, channel
from gelato_jax.optimum import optimum, proxy_tables
from gelato_jax.policies import Gelato
from gelato_jax import exact_proxy as ep

M_TABLE = 8192  # table samples in tests (the default is larger); its SE enters the tolerance


def _numpy_rounds(s, budget, h, payload, exit, n, seed, H_th=1.5, Theta_th=1.0):
    """Independent numpy simulation of n rounds at fixed budget and gain: per-round N/D and E."""
    rng = np.random.default_rng(seed)
    G = s.gamma_max
    H = rng.gamma(s.k_H, s.theta_H, (n, G))
    U = rng.uniform(size=(n, G))
    acc_p = 1 / (1 + np.exp(-(s.a0 - s.a1 * H)))
    snr = s.P_tx * float(s.g0) * h / (float(s.N0) * s.W)
    r = s.W * np.log2(1 + snr)
    r_dl = s.W_dl * np.log2(1 + s.P_edge * float(s.g0) * h / (float(s.N0) * s.W_dl))
    sent = np.full(n, budget)
    passes = np.full(n, budget)
    if exit == "bucket":
        theta = np.zeros(n)
        done = np.zeros(n, bool)
        for i in range(budget):
            theta = np.maximum(0, theta + H[:, i] - H_th)
            ex = (theta > Theta_th) & ~done
            sent[ex], passes[ex] = i, i + 1
            done |= ex
    pos = np.arange(G)
    acc = (U < acc_p) & (pos < sent[:, None])
    A = np.cumprod(acc, axis=1).sum(axis=1)
    if payload == "topp":
        m = np.minimum(min(s.V_vocab, s.m_max), np.ceil(s.c_p * np.exp(H)))
        bits = s.b_id + m * (s.b_id + s.b_prob)
    elif payload == "full":
        bits = np.full((n, G), s.b_id + s.V_vocab * s.b_prob)
    else:
        bits = np.full((n, G), s.b_id + s.b_prob)
    B = np.where(pos < sent[:, None], bits, 0).sum(axis=1)
    Bdl = s.b_dl + ((payload == "scalar") & (A < sent)) * s.V_vocab * s.b_prob
    tau, e_d = s.c_d / s.f, s.kappa * s.c_d * s.f**2
    D = passes * tau + B / r + s.t_v0 + s.t_v1 * sent + s.delta + Bdl / r_dl
    E = passes * e_d + s.P_tx * B / r
    return (A + 1) / D, E


@pytest.mark.parametrize("payload,exit", [
    ("topp", "bucket"),
    pytest.param("scalar", "bucket", marks=pytest.mark.slow),
    pytest.param("topp", "none", marks=pytest.mark.slow),
])
def test_table_matches_independent_monte_carlo(payload, exit):
    """Gelato(proxy="exact")'s own tables (as ``optimum`` sees them) against n = 40000 independent
    numpy rounds per (budget, h); tolerance 4.5 combined standard errors (test sample and the
    table's EXACT_SAMPLES), 6 comparisons per case: false-failure rate < 1e-4."""
    s = Scenario()
    hs = [0.3, 1.0, 2.5]
    T, E, _ = proxy_tables(s, Gelato(proxy="exact", exit=exit, payload=payload), np.array(hs))
    n, m = 40_000, ep.EXACT_SAMPLES
    for k, (budget, h) in enumerate(zip([3, 6, 10], hs)):
        thr, en = _numpy_rounds(s, budget, h, payload, exit, n, seed=budget)
        se_t = thr.std() * np.sqrt(1 / n + 1 / m)
        se_e = en.std() * np.sqrt(1 / n + 1 / m) + 1e-15
        assert abs(T[k, budget] - thr.mean()) <= 4.5 * se_t, (budget, h)
        assert abs(E[k, budget] - en.mean()) <= 4.5 * se_e, (budget, h)
        # budget 0: deterministic (N = 1, no drafting)
        thr0, _ = _numpy_rounds(s, 0, h, payload, exit, 2, seed=0)
        assert T[k, 0] == pytest.approx(thr0[0], rel=1e-6) and E[k, 0] == 0.0


@pytest.mark.slow
def test_topp_interpolation_matches_direct_sample_average():
    """The rate-grid interpolation of the topp table against the direct sample average at the
    exact rate (same entropy sample): a deterministic error, measured 2.2e-7 relative (cubic, 64 points)."""
    from theory import _generated

    s = Scenario()
    tab = jax.jit(lambda s: ep.build_table(s, payload="topp", exit="bucket", H_th=1.5, Theta_th=1.0,
                                           samples=2048, grid=ep.EXACT_GRID))(s)
    H = ep.table_entropies(s, 2048, np.float64, 0)
    L, P, B, pi = jax.vmap(lambda e: ep.round_laws(s, e, payload="topp", exit="bucket", H_th=1.5, Theta_th=1.0))(H)
    for h in (0.05, 0.7, 4.0):
        r, r_dl = channel.uplink_rate(s, h), channel.downlink_rate(s, h)
        d = _generated.round_latency(P, L, B, s.b_dl, r, r_dl, s.tau_d, s.t_v0, s.t_v1, s.delta)
        direct = np.mean(np.sum(np.asarray(pi) * (np.arange(s.gamma_max + 1) + 1.0), -1) / np.asarray(d), 0)
        got = np.asarray(ep.exact_costs(s, "topp", tab, r, r_dl).throughput)
        np.testing.assert_allclose(got, direct, rtol=1e-6)


def test_law_is_a_probability_table_and_no_exit_matches_closed_form():
    s = Scenario()
    tab = jax.jit(lambda s: ep.build_table(s, payload="full", exit="none", H_th=1.5, Theta_th=1.0,
                                           samples=M_TABLE, grid=8))(s)
    law = np.asarray(tab.law)
    np.testing.assert_allclose(law.sum(axis=(1, 2, 3)), 1.0, rtol=1e-12)
    assert np.all(law >= 0)
    # without exit L = P = γ̃ and E[A + 1] = N_iid(ᾱ) (Rao-Blackwellised sample mean of Π α(H_i))
    from gelato_jax import tokens
    from theory import _generated

    abar = float(tokens.mean_acceptance(s))
    n_iid = np.asarray(_generated.expected_tokens_iid(abar, s.gamma_max))
    a = np.arange(s.gamma_max + 1)
    for g in range(s.gamma_max + 1):
        assert law[g, g, 0].sum() == pytest.approx(1.0, abs=1e-12)
        # per-sample value ∈ [1, g+1]: SE ≤ g/(2√M); 4.5 SE
        assert abs(float(law[g, g, 0] @ (a + 1)) - n_iid[g]) <= 4.5 * max(g, 1e-9) / (2 * np.sqrt(M_TABLE))
    assert float(ep.table_error(tab, "full", M_TABLE)) < 0.01


def test_gelato_exact_plugs_into_optimum():
    s = Scenario()
    p = Gelato(proxy="exact", exit="bucket")
    o = optimum(s, p, quantiles=64)
    assert o.proxy == "exact"
    assert abs(o.T_star - o.T_star_dual) <= o.tolerance
    assert o.energy <= o.E_bar * (1 + 1e-9)
    with pytest.raises(ValueError, match="proxy"):
        Gelato(proxy="perfect")


@pytest.mark.slow
def test_gelato_exact_runs_in_simulate():
    from gelato_jax import simulate

    s = Scenario()
    res = simulate(s, Gelato(proxy="exact", V=1.0), seed=0, realizations=2, rounds=50)
    thr = np.asarray(res.throughput)
    assert np.all(np.isfinite(thr)) and np.all(thr > 0)
