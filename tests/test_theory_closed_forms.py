"""theory.closed_forms / theory._generated: sympy = JAX, closed forms vs Monte Carlo, α = 1 limit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from scipy import stats

from gelato_jax import Scenario, costs, tokens
from theory import _generated, closed_forms as cf, codegen


def test_generated_file_is_up_to_date():
    with open(codegen.GENERATED_PATH, encoding="utf-8") as fh:
        assert fh.read() == codegen.generate(), "run: python -m theory.codegen"


def test_sympy_sum_identities():
    # the closed form, its α = 1 limit and the Taylor polynomial are the same function
    assert cf.N_iid_at_one == cf.gamma + 1
    for g in range(0, 9):
        poly = sp.expand(sp.summation(cf.alpha**cf.j, (cf.j, 0, g)))
        assert sp.simplify(cf.N_iid_closed.subs(cf.gamma, g) - poly) == 0
        # for γ < SERIES_ORDER the Taylor polynomial is exact (degree γ)
        if g < cf.SERIES_ORDER:
            assert sp.expand(cf.N_iid_series.subs(cf.gamma, g).subs(cf.x, cf.alpha - 1) - poly) == 0


def test_lambdified_equals_sympy_at_random_points():
    rng = np.random.default_rng(0)
    f = sp.lambdify((cf.alpha, cf.gamma), cf.N_iid_closed, "jax")
    for a in rng.uniform(0.0, 0.99, 20):
        got = np.asarray(_generated.expected_tokens_iid(a, 12))
        want = [float(cf.N_iid_closed.subs({cf.alpha: sp.Float(a, 30), cf.gamma: g})) for g in range(13)]
        np.testing.assert_allclose(got, want, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(f(a, jnp.arange(13.0))), want, rtol=1e-12)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_alpha_one_limit_value_and_gradient(dtype):
    rtol = 1e-12 if dtype == jnp.float64 else 2e-5
    g = np.arange(11)
    alphas = np.array([1.0, 1.0 - 1e-9, 1.0 - 1e-3, 1.0 - 2.5e-3, 0.5, 0.0])
    got = np.asarray(jax.jit(_generated.expected_tokens_iid, static_argnums=1)(jnp.asarray(alphas, dtype), 10))
    a_in = np.asarray(alphas.astype(dtype), np.float64)
    want = np.array([[sum(a**k for k in range(n + 1)) for n in g] for a in a_in])
    np.testing.assert_allclose(got, want, rtol=rtol)
    assert np.all(np.isfinite(got))
    grad = jax.jacfwd(lambda a: _generated.expected_tokens_iid(a, 10))(jnp.asarray(1.0, dtype))
    np.testing.assert_allclose(np.asarray(grad), g * (g + 1) / 2, rtol=rtol)
    grad_rev = jax.grad(lambda a: jnp.sum(_generated.expected_tokens_iid(a, 10)))(jnp.asarray(1.0, dtype))
    assert np.isfinite(grad_rev) and float(grad_rev) == pytest.approx(float(np.sum(g * (g + 1) / 2)), rel=rtol)
    # the gradient is exact on both sides of the branch switch
    thr = codegen.SERIES_THRESHOLD["float64"]
    for a in (1 - thr * 0.999, 1 - thr * 1.001):
        got = jax.grad(lambda a: _generated.expected_tokens_iid(a, 10)[-1])(a)
        assert float(got) == pytest.approx(sum(k * a ** (k - 1) for k in range(1, 11)), rel=1e-9)


def test_position_dependent_equals_sympy():
    rng = np.random.default_rng(1)
    n = 7
    al = rng.uniform(0.2, 1.0, n)
    got = np.asarray(_generated.expected_tokens_position(al))
    sym = sp.IndexedBase("alpha")
    for g in range(n + 1):
        f = sp.lambdify([[sym[k] for k in range(1, n + 1)]], cf.N_pos(g), "jax")
        assert float(f(list(al))) == pytest.approx(got[g], rel=1e-12)
    # constant α reduces to the i.i.d. closed form
    np.testing.assert_allclose(
        np.asarray(_generated.expected_tokens_position(np.full(n, 0.8))),
        np.asarray(_generated.expected_tokens_iid(0.8, n)), rtol=1e-12)
    with pytest.raises(ValueError, match="g"):
        cf.N_pos(-1)


def test_latency_energy_equal_core_costs():
    s = Scenario()
    rng = np.random.default_rng(2)
    for _ in range(5):
        P, L = rng.integers(0, 11, 2)
        B, Bdl, r, rdl = rng.uniform(0, 1e4), rng.uniform(1, 1e3), rng.uniform(1e5, 1e7), rng.uniform(1e5, 1e7)
        want_d = costs.latency(s, P, L, B, Bdl, r, rdl)
        want_e = costs.energy(s, P, B, r)
        got_d = _generated.round_latency(P, L, B, Bdl, r, rdl, s.tau_d, s.t_v0, s.t_v1, s.delta)
        got_e = _generated.round_energy(P, B, r, s.e_d, s.P_tx)
        assert float(got_d) == pytest.approx(float(want_d), rel=1e-12)
        assert float(got_e) == pytest.approx(float(want_e), rel=1e-12)


def test_expected_tokens_vs_monte_carlo():
    """E[N] under the logistic map and the Gamma entropy law (no exit, i.i.d. entropies) is
    N_iid(ᾱ). 200k rounds; tolerance 4.5 standard errors per budget (11 budgets: false-failure
    rate < 11 · 7e-6 ≈ 1e-4)."""
    s = Scenario()
    n = 200_000
    rng = np.random.default_rng(1234)
    H = rng.gamma(s.k_H, s.theta_H, (n, s.gamma_max))
    U = rng.uniform(size=(n, s.gamma_max))
    acc = U < 1.0 / (1.0 + np.exp(-(s.a0 - s.a1 * H)))
    run = np.cumprod(acc, axis=1)
    abar = float(tokens.mean_acceptance(s))
    want = np.asarray(_generated.expected_tokens_iid(abar, s.gamma_max))
    for g in range(s.gamma_max + 1):
        N = 1 + run[:, :g].sum(axis=1)
        se = N.std(ddof=1) / np.sqrt(n) if g else 0.0
        assert abs(N.mean() - want[g]) <= 4.5 * se + 1e-12, (g, N.mean(), want[g], se)
    # ᾱ itself: binomial test of the first-position acceptance
    k1 = int(acc[:, 0].sum())
    assert stats.binomtest(k1, n, abar).pvalue > 1e-4
