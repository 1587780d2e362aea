"""The first-drafted-position law (Scenario.first_H_scale, first_a0_shift): sampling, closed forms,
mean proxy. The defaults must reproduce MODEL §4 bit for bit; other values must give the laws
the docstrings state."""

import numpy as np
import pytest
import sympy as sp
from scipy import integrate, special, stats

from gelato_jax import Scenario, costs, sample_exogenous, simulate, tokens
from gelato_jax.policies import StaticSD

from theory import closed_forms as cf

SCEN = Scenario(first_H_scale=1.5, first_a0_shift=-0.7)


def test_closed_form_identity_first_position():
    """``N_pos`` with ``α_2 = … = α_γ = α`` equals ``N_iid(α, γ) + (α_1 − α) N_iid(α, γ − 1)``, the
    form ``costs.proxy_costs`` evaluates (sympy, exact)."""
    a, a1 = sp.symbols("a a1", positive=True)
    A = sp.IndexedBase("alpha")
    n_iid = lambda g: sum(a**j for j in range(g + 1))
    for g in range(1, 8):
        expr = cf.N_pos(g).subs({A[1]: a1, **{A[i]: a for i in range(2, g + 1)}})
        assert sp.expand(expr - (n_iid(g) + (a1 - a) * n_iid(g - 1))) == 0


@pytest.mark.parametrize("scale,shift", [(1.5, -0.7), (0.6, 0.4)])
def test_mean_acceptance_first_against_quad(scale, shift):
    s = Scenario(first_H_scale=scale, first_a0_shift=shift)
    f = lambda h: special.expit(s.a0 + shift - s.a1 * h) * stats.gamma.pdf(h, s.k_H, scale=s.theta_H * scale)
    want = sum(integrate.quad(f, lo, hi, epsabs=0, epsrel=1e-12, limit=400)[0]
               for lo, hi in [(0, 1e-6), (1e-6, 1.0), (1.0, 20.0), (20.0, np.inf)])
    assert float(tokens.mean_acceptance_first(s)) == pytest.approx(want, rel=1e-9)


def test_defaults_are_bit_identical():
    d = Scenario()
    assert float(tokens.mean_acceptance_first(d)) == float(tokens.mean_acceptance(d))
    assert float(tokens.mean_topp_bits_first(d)) == float(tokens.mean_topp_bits(d))
    H = np.linspace(0.0, 6.0, 10)[None, :]
    np.testing.assert_array_equal(np.asarray(tokens.acceptance_by_position(d, H)),
                                  np.asarray(tokens.acceptance_prob(d, H)))
    ab, bb = tokens.mean_acceptance(d), tokens.mean_topp_bits(d)
    plain = costs.proxy_costs(d, "scalar", ab, bb, 2e6, 3e6)
    first = costs.proxy_costs(d, "scalar", ab, bb, 2e6, 3e6, alpha_bar_1=ab, b_bar_1=bb)
    for x, y in zip(plain, first):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("ar", [False, True], ids=["iid", "ar1"])
def test_sampled_first_position_law(ar):
    """Column 0 of the simulator's entropies is ``Gamma(k, first_H_scale·θ)``, column 1 is
    ``Gamma(k, θ)``: Kolmogorov–Smirnov at 4096 draws each; threshold p > 1e-4 (false-failure
    rate 1e-4 per test: the KS p-value is uniform under the null)."""
    s = SCEN.replace(rho_H=0.5) if ar else SCEN
    exo = sample_exogenous(s, seed=11, realizations=64, rounds=64)
    H = np.asarray(exo.entropy).reshape(-1, s.gamma_max)
    assert stats.kstest(H[:, 0], stats.gamma(s.k_H, scale=s.theta_H * s.first_H_scale).cdf).pvalue > 1e-4
    assert stats.kstest(H[:, 1], stats.gamma(s.k_H, scale=s.theta_H).cdf).pvalue > 1e-4
    # and the test has power: column 0 is not Gamma(k, θ)
    assert stats.kstest(H[:, 0], stats.gamma(s.k_H, scale=s.theta_H).cdf).pvalue < 1e-4


def test_mean_proxy_tokens_match_monte_carlo():
    """Without an exit, ``N̂(γ) = 1 + ᾱ_1 Σ_{j<γ} ᾱ^j`` is exactly ``E[N]``: StaticSD(γ) rollouts
    agree within 4.5 standard errors (two-sided false-failure rate ≈ 7e-6 per γ)."""
    ab, a1 = tokens.mean_acceptance(SCEN), tokens.mean_acceptance_first(SCEN)
    proxy = costs.proxy_costs(SCEN, "topp", ab, tokens.mean_topp_bits(SCEN), 2e6, 3e6, alpha_bar_1=a1,
                              b_bar_1=tokens.mean_topp_bits_first(SCEN))
    iid = costs.proxy_costs(SCEN, "topp", ab, tokens.mean_topp_bits(SCEN), 2e6, 3e6)
    for g in (1, 4):
        res = simulate(SCEN.replace(d=100.0), StaticSD(gamma=g, payload="topp"), seed=3, realizations=256, rounds=200)
        x = np.asarray(res.tokens)
        se = x.std(ddof=1) / np.sqrt(x.size)
        assert abs(x.mean() - float(proxy.tokens[g])) < 4.5 * se, (g, x.mean(), float(proxy.tokens[g]), se)
        # the i.i.d. form is measurably wrong here (the test can fail)
        assert abs(x.mean() - float(iid.tokens[g])) > 4.5 * se
