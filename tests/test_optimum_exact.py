"""gelato_jax.optimum(method="exact"): closed-form toy, docs/model.md §8.8 values, complementary slackness
checked by an independent quadrature, convergence of the quantised LP, slack budget, marginals."""

import importlib
import math
import types

import numpy as np
import pytest
from scipy.integrate import quad

from gelato_jax import Scenario
from gelato_jax.optimum import optimum, optimum_convergence
from gelato_jax.policies import Gelato

om = importlib.import_module("gelato_jax.optimum")

A = (Scenario(V_vocab=64), Gelato(exit="none", payload="full"))  # configuration (a) of docs/model.md §8.8


@pytest.fixture(scope="module")
def exact_a():
    return optimum(*A)


class _ToyEval:
    """Two actions under h ~ Exp(1): γ=0: T = 1, E = 0; γ=1: T = 2h, E = 1. The λ-policy switches
    at s = (1 + λ)/2, so G(λ) = 1 + 2e^{−s}, e(λ) = e^{−s}, λ* = −2 ln Ē − 1, T* = λ*Ē + 1 + 2Ē."""

    aux = None

    def __call__(self, h):
        h = np.asarray(h, float)
        T = np.stack([np.ones_like(h), 2.0 * h], -1)
        E = np.stack([np.zeros_like(h), np.ones_like(h)], -1)
        return T, E


def test_toy_closed_form_to_1e10():
    s = Scenario(r_min=0.0)  # no outage; h_min = 1e-12 (its atom carries γ = 0 as the closed form does)
    for E_bar in (0.1, 0.3):
        prob, pl, lam, T_p, T_d, energy, info = om._solve_exact(s, Gelato(exit="none"), E_bar, _ToyEval())
        lam_true = -2.0 * math.log(E_bar) - 1.0
        T_true = lam_true * E_bar + 1.0 + 2.0 * E_bar
        assert lam == pytest.approx(lam_true, rel=1e-10, abs=0)
        assert T_d == pytest.approx(T_true, rel=1e-10, abs=0) and T_p == pytest.approx(T_true, rel=1e-10, abs=0)
        assert energy == pytest.approx(E_bar, rel=1e-12)
        np.testing.assert_allclose(pl.switches, [(1.0 + lam_true) / 2.0], rtol=1e-12)
        # G(λ) off the optimum too
        for x in (0.0, 1.0, 7.5):
            assert prob.G(x) == pytest.approx(1.0 + 2.0 * math.exp(-(1.0 + x) / 2.0), rel=1e-12)
        assert info["kappa"] == pytest.approx(0.5 * E_bar, rel=1e-6)  # −de/dλ = e^{−s}/2
        assert abs(lam - lam_true) <= info["lam_err"]


def test_model_md_values_and_complementary_slackness(exact_a):
    """docs/model.md §8.8: λ* = 56.76–56.77 (10⁶ quantiles), T* ≈ 32.1326. e(λ*) = Ē to 1e-9, checked by an
    independent adaptive quadrature (scipy quad) of the λ*-policy between its switching points."""
    o = exact_a
    assert o.method == "exact" and not o.slack
    assert 56.75 <= o.lambda_star <= 56.78
    assert o.T_star == pytest.approx(32.1326, abs=5e-5)
    assert o.lambda_star_precision <= 1e-6 * o.lambda_star
    assert o.tolerance <= 1e-9 * o.T_star
    assert abs(o.T_star - o.T_star_dual) <= o.tolerance
    assert o.energy == pytest.approx(o.E_bar, rel=1e-9)
    s, p = A
    ev = om._ProxyEval(s, p)
    h_out, h_min = om.outage_threshold(s), s.h_min
    pts = np.concatenate([[h_min], o.switching_points, [60.0]])
    gam = [int(np.argmax(o.probs[np.searchsorted(o.h_edges, 0.5 * (a + b), side="right") - 1])) for a, b in zip(pts[:-1], pts[1:])]
    t = e = 0.0
    for (a, b), g in zip(zip(pts[:-1], pts[1:]), gam):
        brk = [x for x in (1e-9, 1e-6, 1e-4, h_out, 1e-2, 1.0, 10.0) if a < x < b]
        ft = lambda h, g=g: float(ev(np.array([h]))[0][0, g]) * math.exp(-h)  # noqa: E731
        fe = lambda h, g=g: float(ev(np.array([h]))[1][0, g]) * math.exp(-h)  # noqa: E731
        t += quad(ft, a, b, points=brk or None, epsabs=1e-14, epsrel=1e-13, limit=200)[0]
        e += quad(fe, a, b, points=brk or None, epsabs=1e-14, epsrel=1e-13, limit=200)[0]
    t += (1 - math.exp(-h_min)) * float(ev(np.array([h_min]))[0][0, 0])  # the clamp's atom (outage: γ = 0)
    assert e == pytest.approx(o.E_bar, rel=1e-9)
    assert t == pytest.approx(o.T_star, rel=1e-10)
    # the dual is minimal at λ*: D(λ* ± 1 %) ≥ D(λ*), and the policy at λ* is the one reported
    ev2 = om._ProxyEval(s, p)
    prob = om._ExactProblem(s, p, ev2)
    D = lambda x: x * o.E_bar + prob.G(x)  # noqa: E731
    assert D(0.99 * o.lambda_star) >= o.T_star_dual - 1e-12 and D(1.01 * o.lambda_star) >= o.T_star_dual - 1e-12


def test_quantised_lp_converges_to_exact():
    """With P_edge = 1e-4 the integrand is smooth on the scale of the bins: the midpoint rule of the
    equal-probability bins has error O(n⁻²) (Euler–Maclaurin; the switching points add O(n⁻²) as
    well), so 4× the bins must shrink |ΔT*| by ≥ 8 (slope ≤ −1.5; measured −1.8 to −2). The
    exact T* lies in every quantised bracket [T_lower, T_upper] (rigorous: g_λ is monotone in h),
    and |Δλ*| ≤ 3 E_max/(n κ): the quantised e(λ) is a step function whose error is at most the
    energy range times the probability of the bins holding switching points."""
    s, p = Scenario(V_vocab=64, P_edge=1e-4), Gelato(exit="none", payload="full")
    c = optimum_convergence(s, p, quantiles=(512, 2048))
    ex = c["exact"]
    r1, r2 = c["rows"]
    assert abs(r2["dT"]) <= abs(r1["dT"]) / 8
    E_max = float(np.max(ex.energy_table))
    for r in c["rows"]:
        assert r["T_lower"] - 1e-9 <= ex.T_star <= r["T_upper"] + 1e-9
        assert abs(r["dT"]) <= r["T_upper"] - r["T_lower"]
        assert abs(r["dlambda"]) <= 3 * E_max / (r["quantiles"] * ex.kappa)


def test_default_scenario_inside_quantised_bracket(exact_a):
    """The default scenario's quantised error falls only logarithmically (docs/optimum.md: the γ = 0
    throughput of outage rounds rises from 0 over h ≈ h_c ≈ 7e-7, far below one bin), but the
    bracket is rigorous at every n."""
    q = optimum(*A, method="quantised", quantiles=1024)
    assert q.T_lower <= exact_a.T_star <= q.T_upper
    assert q.T_star > exact_a.T_star  # midpoint rule over-estimates the concave rise at h ≈ h_c


def test_slack_budget_lambda_zero():
    s = Scenario(V_vocab=64, E_bar=5.0)  # same static fields as A: no new compilation
    o = optimum(s, A[1])
    assert o.lambda_star == 0.0 and o.slack and o.energy < 5.0
    assert o.T_star == o.T_star_dual
    q = optimum(s, A[1], method="quantised", quantiles=256)
    assert q.lambda_star == 0.0 and q.T_lower <= o.T_star <= q.T_upper


def test_marginals_and_methods():
    with pytest.raises(ValueError, match="Scenario.channel must be one of"):
        om._marginal(types.SimpleNamespace(channel="rician"))
    assert om._marginal(Scenario(channel="gauss_markov", rho=0.9)) == "exp1"
    # a trace is a discrete law: method="exact" solves the LP on its distinct values (no error)
    tr = optimum(Scenario(channel="trace", channel_trace=(0.2, 1.0, 1.0, 3.0)), Gelato(exit="none"), method="exact")
    assert tr.method == "exact" and len(tr.weights) == 3 and tr.T_lower == tr.T_upper == tr.T_star_dual
    with pytest.raises(ValueError, match="method"):
        optimum(*A, method="bins")
    with pytest.raises(ValueError, match="quantiles"):
        optimum(*A, method="exact", quantiles=64)
    # the default is exact; an explicit bin count keeps the quantised method (callers before it)
    assert optimum(*A, quantiles=64).method == "quantised"


def test_gauss_markov_equals_rayleigh(exact_a):
    o = optimum(Scenario(V_vocab=64, channel="gauss_markov", rho=0.9), A[1])
    assert o.T_star == exact_a.T_star and o.lambda_star == exact_a.lambda_star


def test_exact_bins_are_the_optimal_policy(exact_a):
    """Sample h ~ Exp(1), play γ = budget(h, u) of the exact bins (the deterministic λ*-policy):
    the proxy throughput/energy at the true h match T* and Ē within 4.5 standard errors
    (n = 20000; two-sided false-failure rate ≈ 7e-6 each)."""
    from gelato_jax.optimum import proxy_tables

    o = exact_a
    s, p = A
    rng = np.random.default_rng(11)
    n = 20_000
    h = np.maximum(rng.exponential(size=n), s.h_min)
    g = np.asarray(o.budget(h, rng.uniform(size=n)))
    T, E, out = proxy_tables(s, p, h)
    assert np.all(g[out] == 0)
    t, e = T[np.arange(n), g], E[np.arange(n), g]
    assert abs(t.mean() - o.T_star) <= 4.5 * t.std() / np.sqrt(n)
    assert abs(e.mean() - o.E_bar) <= 4.5 * e.std() / np.sqrt(n)
    np.testing.assert_array_equal(o.probs.max(axis=1), 1.0)  # one-hot rows
