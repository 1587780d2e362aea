"""gelato_jax.optimum: LP = dual, energy feasibility, monotonicity in Ē, bracket, oracle, errors."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from gelato_jax import Scenario, channel, costs, tokens
from gelato_jax.optimum import optimum, outage_threshold, proxy_tables
from gelato_jax.policies import Gelato, StaticSD

Q = 256  # bins: small for speed; the agreement/bracket properties hold for any size


@pytest.fixture(scope="module")
def base():
    return optimum(Scenario(), Gelato(exit="none"), quantiles=Q)


def test_lp_equals_dual_and_energy_feasible(base):
    o = base
    assert abs(o.T_star - o.T_star_dual) <= o.tolerance
    assert o.energy <= o.E_bar * (1 + 1e-9)
    assert o.energy == pytest.approx(o.E_bar, rel=1e-6)  # the budget binds at the defaults
    assert o.lambda_star == pytest.approx(o.lambda_star_lp, rel=1e-4)
    assert o.T_lower - o.tolerance <= o.T_star <= o.T_upper + o.tolerance
    np.testing.assert_allclose(o.probs.sum(axis=1), 1.0, atol=1e-9)
    assert np.all(o.probs >= 0)
    assert o.weights.sum() == pytest.approx(1.0, abs=1e-12)


def test_defaults_match_model_md_and_bracket_shrinks():
    # docs/model.md §9: T* ≈ 32.13 tok/s, λ* ≈ 57 (mean proxy, no exit). The continuous optimum lies in
    # [T_lower, T_upper], whose width falls like 1/quantiles (monotone g_λ).
    o = optimum(Scenario(), Gelato(exit="none"), quantiles=2048)
    assert o.T_lower <= 32.13 + 0.005 and o.T_upper >= 32.13 - 0.005
    assert 55 <= o.lambda_star <= 60
    o_small = optimum(Scenario(), Gelato(exit="none"), quantiles=Q)
    assert (o.T_upper - o.T_lower) < (o_small.T_upper - o_small.T_lower)


def test_monotone_in_energy_budget():
    s = Scenario()
    vals = [optimum(s, Gelato(exit="none"), quantiles=Q, E_bar=e) for e in (0.02, 0.04, 0.06, 0.12, 1.0)]
    t = [v.T_star for v in vals]
    assert all(b >= a - 1e-9 for a, b in zip(t, t[1:]))
    assert all(v.energy <= v.E_bar * (1 + 1e-9) for v in vals)
    lam = [v.lambda_star for v in vals]
    assert all(b <= a + 1e-6 for a, b in zip(lam, lam[1:]))  # λ* non-increasing in Ē
    # a budget that does not bind: λ* = 0 and T* = E_h[max_γ T(γ, h)]
    top = vals[-1]
    assert top.lambda_star == 0.0
    allowed = np.ones_like(top.throughput, bool)
    allowed[top.outage, 1:] = False
    best = np.where(allowed, top.throughput, -np.inf).max(axis=1)
    assert top.T_star == pytest.approx(float(top.weights @ best), rel=1e-9)


def test_oracle_budget_attains_t_star_by_monte_carlo(base):
    """Sample h ~ Exp(1) and u ~ U(0,1), play γ = budget(h, u): the mean proxy throughput and
    energy at the true h match T* (within the quantisation bracket) and Ē. n = 40000,
    4.5 standard errors (two-sided false-failure rate ≈ 7e-6 each)."""
    o = base
    s = Scenario()
    rng = np.random.default_rng(7)
    n = 40_000
    h = np.maximum(rng.exponential(size=n), s.h_min)
    u = rng.uniform(size=n)
    g = np.asarray(o.budget(h, u))
    T, E, out = proxy_tables(s, Gelato(exit="none"), h)
    assert np.all(g[out] == 0)
    t = T[np.arange(n), g]
    e = E[np.arange(n), g]
    se_t, se_e = t.std() / np.sqrt(n), e.std() / np.sqrt(n)
    assert o.T_lower - 4.5 * se_t <= t.mean() <= o.T_upper + 4.5 * se_t
    assert e.mean() <= o.E_bar + 4.5 * se_e


def test_mean_proxy_table_is_core_proxy_costs(base):
    s = Scenario()
    k = 100
    h = base.h_nodes[k]
    pc = costs.proxy_costs(s, "topp", tokens.mean_acceptance(s), tokens.mean_topp_bits(s),
                           channel.uplink_rate(s, h), channel.downlink_rate(s, h))
    np.testing.assert_allclose(base.throughput[k], np.asarray(pc.throughput), rtol=1e-12)
    np.testing.assert_allclose(base.energy_table[k], np.asarray(pc.energy), rtol=1e-12)


def test_outage_bins_only_gamma_zero():
    s = Scenario(r_min=2e6)  # a sizeable outage probability
    o = optimum(s, Gelato(exit="none"), quantiles=64)
    h_out = outage_threshold(s)
    assert np.any(o.outage)
    assert h_out in o.h_edges  # no bin straddles the threshold
    assert np.all(o.h_nodes[o.outage] < h_out) and np.all(o.h_nodes[~o.outage] >= h_out)
    np.testing.assert_array_equal(o.probs[o.outage, 0], 1.0)
    assert abs(o.T_star - o.T_star_dual) <= o.tolerance


def test_trace_law_is_exact_and_other_payloads():
    s = Scenario(channel="trace", channel_trace=(0.2, 1.0, 1.0, 3.0))
    o = optimum(s, StaticSD(gamma=4), quantiles=16)
    assert len(o.weights) == 3 and o.weights == pytest.approx([0.25, 0.5, 0.25])
    assert o.T_lower == o.T_upper == o.T_star_dual
    assert abs(o.T_star - o.T_star_dual) <= o.tolerance
    o2 = optimum(Scenario(), Gelato(exit="none", payload="scalar"), quantiles=64)
    assert abs(o2.T_star - o2.T_star_dual) <= o2.tolerance and o2.energy <= o2.E_bar * (1 + 1e-9)


def test_bad_inputs():
    s, p = Scenario(), Gelato()
    for kw in ({"quantiles": 3}, {"quantiles": 2.5}, {"E_bar": -1.0}, {"E_bar": float("nan")}, {"E_bar": "x"}):
        with pytest.raises(ValueError):
            optimum(s, p, **kw)
    with pytest.raises(ValueError, match="scenario"):
        optimum("x", p)
    with pytest.raises(ValueError, match="policy"):
        optimum(s, "gelato")


def test_gauss_markov_uses_the_exp1_marginal(base):
    o = optimum(Scenario(channel="gauss_markov", rho=0.9), Gelato(exit="none"), quantiles=Q)
    assert o.T_star == pytest.approx(base.T_star, rel=1e-12)



@settings(max_examples=8, deadline=None)
@given(
    E_bar=st.floats(0.005, 0.3),
    d=st.floats(50.0, 1500.0),
    r_min=st.floats(0.0, 3e6),
    delta=st.floats(0.0, 0.2),
)
def test_lp_equals_dual_on_random_scenarios(E_bar, d, r_min, delta):
    s = Scenario(E_bar=E_bar, d=d, r_min=r_min, delta=delta)
    o = optimum(s, Gelato(exit="none"), quantiles=64)
    assert abs(o.T_star - o.T_star_dual) <= o.tolerance
    assert o.energy <= E_bar * (1 + 1e-9)
    assert o.T_lower - o.tolerance <= o.T_star <= o.T_upper + o.tolerance
    np.testing.assert_array_equal(o.probs[o.outage, 0], 1.0)
