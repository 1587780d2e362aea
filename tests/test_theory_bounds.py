"""theory.bounds: constants, B worst ≥ actual, B against Monte Carlo, the theorem's evaluators."""

import numpy as np
import pytest
import sympy as sp

from gelato_jax import Scenario, channel
from gelato_jax.policies import Gelato, StaticSD
from theory import bounds as tb


def test_drift_step_identities():
    x = sp.Symbol("x", real=True)
    # max(x, 0)² ≤ x² on both branches
    for val in (-2, -0.5, 0, 0.7, 3):
        assert float(sp.Max(x, 0).subs(x, val) ** 2) <= float((x**2).subs(x, val))
    assert sp.simplify(tb.drift_identity - tb.drift_bound) == 0


def test_arrival_moments_by_monte_carlo():
    """E[a²] of each arrival law (sympy integrals) vs 400k samples, 4.5 SE (false-failure ≈ 7e-6)."""
    rng = np.random.default_rng(3)
    eb, n = 0.06, 400_000
    draws = {"constant": np.full(n, eb), "exponential": rng.exponential(eb, n), "uniform": rng.uniform(0, 2 * eb, n)}
    for law, a in draws.items():
        want = float(tb.arrival_second_moment[law].subs(tb.Ebar, eb))
        se = (a**2).std() / np.sqrt(n)
        assert abs((a**2).mean() - want) <= 4.5 * se + 1e-15, law


@pytest.mark.parametrize("law", ["constant", "exponential", "uniform"])
def test_B_worst_at_least_actual_and_actual_is_attained(law):
    s = Scenario(energy_arrival=law)
    for pol in (None, StaticSD(gamma=4)):
        bw, ba = tb.drift_constant(s, pol, "worst"), tb.drift_constant(s, pol, "actual")
        assert bw >= ba > 0
    # 'actual' is the sup over energies in [0, E_max]: attained at an end point, checked on a grid
    em, eb = tb.E_max(s), float(s.E_bar)
    m2 = float(tb.arrival_second_moment[law].subs(tb.Ebar, eb))
    grid = np.linspace(0, em, 1001)
    assert tb.drift_constant(s, None, "actual") == pytest.approx(0.5 * np.max(grid**2 - 2 * grid * eb + m2), rel=1e-12)


def test_E_max_T_max_slater():
    s = Scenario()
    # hand calculation at the defaults: 10 passes of 30 mJ + 10 tokens of b_max bits at r_min
    bmax = 18 + 1024 * 34
    assert tb.E_max(s) == pytest.approx(10 * 0.03 + 0.2 * 10 * bmax / 1e5, rel=1e-9)
    assert tb.E_max(s, StaticSD(gamma=4)) > tb.E_max(s)  # the full payload costs more
    # the worst round (γ_max passes, largest payload, at the outage edge) costs exactly E_max
    from gelato_jax import costs

    h_out = float(np.expm1(s.r_min / s.W * np.log(2)) / float(s.mean_snr))
    r = float(channel.uplink_rate(s, h_out))
    assert r == pytest.approx(s.r_min, rel=1e-9)
    assert float(costs.energy(s, 10, 10 * bmax, r)) == pytest.approx(tb.E_max(s), rel=1e-9)
    assert tb.T_max(s) == pytest.approx(max(1 / 0.045, 11 / (10 * 0.017 + 0.045)), rel=1e-12)
    assert tb.slater_slack(s) == pytest.approx(0.06)
    ts = tb.slater_throughput(s, quantiles=256)
    assert 1 / (0.045 + 32 / float(channel.downlink_rate(s, 1e-3))) < ts < 1 / 0.045


def test_theorem_evaluators_and_bad_inputs():
    assert tb.throughput_gap_bound(1.0, 0.5, 3.0) == pytest.approx(0.5)
    assert tb.throughput_bound(30.0, 1.0, 0.5, 3.0) == pytest.approx(29.5)
    assert tb.queue_bound(1.0, 0.0, 2.0, 50.0, 30.0, 0.06, T_slater=20.0) == pytest.approx((1 + 2 * 30) / 0.06)
    with pytest.raises(ValueError, match="T_slater"):
        tb.queue_bound(1.0, 0.0, 2.0, 50.0, 30.0, 0.06)
    with pytest.raises(ValueError, match="V"):
        tb.throughput_gap_bound(1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="B"):
        tb.throughput_gap_bound(-1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="kind"):
        tb.drift_constant(Scenario(), None, "typical")
    with pytest.raises(ValueError, match="scenario"):
        tb.E_max("default")
    assert tb.energy_path_bound([0.06, 0.06], 0.1) == pytest.approx(0.06 + 0.05)


def test_queue_bound_with_T_star_is_invalid_counterexample():
    ce = tb.counterexample_queue_bound(V=100.0, E_bar=1.0, rounds=50_000)
    assert ce["queue_mean"] > ce["bound_with_T_star"]  # docs/model.md §8.4's form fails
    assert ce["queue_mean"] <= ce["bound_with_T_slater"]  # the derived form holds


def test_proxy_error_mean_vs_exact():
    s = Scenario()
    assert tb.proxy_error(s, Gelato(proxy="exact", V=5.0)) == 0.0
    det = tb.proxy_error_details(s, Gelato(proxy="mean", exit="bucket", V=5.0), quantiles=32)
    # A4: the mean proxy never under-estimates the energy (the exit only removes passes and bits)
    assert det["delta_E"] <= 1e-12
    assert det["C"] == pytest.approx(5.0 * max(0.0, det["delta_T"]))
    with pytest.raises(ValueError, match="ewma"):
        tb.proxy_error(s, Gelato(proxy="ewma"))
