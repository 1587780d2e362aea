"""Formulas of docs/model.md §2–§6 against hand calculations and independent scipy evaluations."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, special, stats

from gelato_jax import Scenario, channel, costs, tokens
from gelato_jax.controller import dpp_budget
from gelato_jax.early_exit import bucket_levels, leaky_bucket_exit


def _quad_mean_alpha(k, theta, a0, a1):
    f = lambda h: special.expit(a0 - a1 * h) * stats.gamma.pdf(h, k, scale=theta)
    pts = [0, 1e-8, 1e-3, 1.0, 5.0, 20.0, np.inf]
    return sum(integrate.quad(f, lo, hi, epsabs=0, epsrel=1e-13, limit=500)[0] for lo, hi in zip(pts, pts[1:]))


@pytest.mark.parametrize("k,theta,a0,a1", [(0.8, 1.5, 4.8, 1.8), (0.3, 2.0, 3.0, 1.0), (2.5, 0.7, 6.0, 3.0), (0.05, 1.5, 4.8, 1.8)])
def test_mean_acceptance_quadrature_relative_error_below_1e9(k, theta, a0, a1):
    s = Scenario(k_H=k, theta_H=theta, a0=a0, a1=a1)
    got = float(tokens.mean_acceptance(s))
    want = _quad_mean_alpha(k, theta, a0, a1)
    assert abs(got - want) / want < 1e-9


def test_mean_acceptance_default_is_0842():
    assert float(tokens.mean_acceptance(Scenario())) == pytest.approx(0.8422, abs=5e-5)  # docs/model.md §9


def test_mean_topp_bits_exact_piecewise_integral():
    # b(H) is a step function: integrate the Gamma law piecewise over the steps of m(H).
    s = Scenario()
    k, theta, cp, cap = 0.8, 1.5, 2.0, 1024
    edges = np.log(np.arange(1, cap + 1) / cp)  # m(H) = j on (log((j-1)/cp), log(j/cp)]
    cdf = stats.gamma.cdf(np.maximum(edges, 0.0), k, scale=theta)
    p_m = np.diff(np.concatenate([[0.0], cdf]))  # P(m = j) for j=1..cap-1 ... last gets the tail
    p_m[-1] += 1.0 - cdf[-1]
    mean_m = np.sum(np.arange(1, cap + 1) * p_m)
    want = 18 + mean_m * (18 + 16)
    got = float(tokens.mean_topp_bits(s))
    assert got == pytest.approx(want, rel=1e-10)
    assert got == pytest.approx(1071, abs=1)  # docs/model.md §9 "b̄ ≈ 1071 bits"


def test_support_size_and_bits():
    s = Scenario()
    h = jnp.array([0.0, math.log(1.5), math.log(3.0), 50.0])
    np.testing.assert_array_equal(tokens.support_size(s, h), [2, 3, 6, 1024])
    np.testing.assert_array_equal(tokens.topp_bits(s, h), 18 + np.array([2, 3, 6, 1024]) * 34)
    s2 = s.replace(V_vocab=100.0)
    assert float(tokens.support_size(s2, 50.0)) == 100


def test_acceptance_map_values():
    s = Scenario()
    assert float(tokens.acceptance_prob(s, 0.0)) == pytest.approx(special.expit(4.8))
    assert float(tokens.acceptance_prob(s, 0.25)) > 0.98  # "≈0.99 at H < 0.25"
    mid = float(np.mean(tokens.acceptance_prob(s, jnp.linspace(2, 4, 201))))
    assert 0.1 < mid < 0.5  # "≈0.36 at H in 2–4 nats" (average over the band ≈ 0.25)


def test_rates_hand_calculation():
    s = Scenario()
    snr = 0.2 * float(s.g0) * 2.0 / (10 ** (-19.7) * 1e6)
    assert float(channel.uplink_rate(s, 2.0)) == pytest.approx(1e6 * math.log2(1 + snr), rel=1e-12)
    snr_dl = 1.0 * float(s.g0) * 2.0 / (10 ** (-19.7) * 1e6)
    assert float(channel.downlink_rate(s, 2.0)) == pytest.approx(1e6 * math.log2(1 + snr_dl), rel=1e-12)
    # float32 at the fading clamp: tiny but positive rate, no NaN
    r32 = channel.uplink_rate(jax.tree.map(lambda x: jnp.float32(x), s), jnp.float32(1e-12))
    assert np.isfinite(r32) and r32 > 0


def test_latency_energy_hand_calculation():
    s = Scenario()
    r, rdl = 5e6, 8e6
    bits = 3 * 1000.0
    d = float(costs.latency(s, 4, 3, bits, 32.0, r, rdl))
    assert d == pytest.approx(4 * 0.015 + bits / r + 0.025 + 0.002 * 3 + 0.020 + 32 / rdl, rel=1e-12)
    e = float(costs.energy(s, 4, bits, r))
    assert e == pytest.approx(4 * 0.03 + 0.2 * bits / r, rel=1e-12)
    assert float(costs.energy(s, 0, 0.0, 1e-30)) == 0.0  # γ = 0 costs no energy even in outage
    assert float(costs.latency(s, 0, 0, 0.0, 32.0, 1e-30, rdl)) == pytest.approx(0.045 + 32 / rdl)


def test_payload_schemes():
    s = Scenario()
    h = jnp.array([0.1, 2.0, 4.0])
    assert float(costs.uplink_bits(s, "full", h, 2)) == 2 * (18 + 151936 * 16)
    assert float(costs.uplink_bits(s, "scalar", h, 3)) == 3 * 34
    assert float(costs.uplink_bits(s, "topp", h, 2)) == pytest.approx(float(jnp.sum(tokens.topp_bits(s, h[:2]))))
    assert float(costs.downlink_bits(s, "scalar", True)) == 32 + 151936 * 16
    assert float(costs.downlink_bits(s, "scalar", False)) == 32
    assert float(costs.downlink_bits(s, "topp", True)) == 32
    with pytest.raises(ValueError, match="payload"):
        costs.token_bits(s, "zip", h)


def test_expected_tokens_iid_closed_form_and_alpha_one():
    a = 0.842
    got = np.asarray(costs.expected_tokens_iid(a, 10))
    want = (1 - a ** (np.arange(11) + 1)) / (1 - a)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_array_equal(costs.expected_tokens_iid(1.0, 4), [1, 2, 3, 4, 5])
    g = jax.grad(lambda x: costs.expected_tokens_iid(x, 4)[-1])(1.0)
    assert np.isfinite(g) and g == pytest.approx(0 + 1 + 2 + 3 + 4)


def test_proxy_costs_hand_calculation():
    s = Scenario()
    ab, bb, r, rdl = 0.84, 1000.0, 5e6, 8e6
    pc = costs.proxy_costs(s, "topp", ab, bb, r, rdl)
    for g in (0, 3, 10):
        n = sum(ab**j for j in range(g + 1))
        d = g * 0.015 + g * bb / r + 0.025 + 0.002 * g + 0.02 + 32 / rdl
        e = g * 0.03 + 0.2 * g * bb / r
        assert float(pc.tokens[g]) == pytest.approx(n, rel=1e-12)
        assert float(pc.latency[g]) == pytest.approx(d, rel=1e-12)
        assert float(pc.energy[g]) == pytest.approx(e, rel=1e-12)
    pcs = costs.proxy_costs(s, "scalar", ab, 34.0, r, rdl)
    assert float(pcs.latency[3]) == pytest.approx(
        3 * 0.015 + 3 * 34 / r + 0.025 + 0.006 + 0.02 + (32 + (1 - ab**3) * 151936 * 16) / rdl, rel=1e-12
    )


def test_leaky_bucket_hand_example():
    H = jnp.array([1.0, 2.0, 2.2, 0.1, 3.0, 0.0])
    # x = H - 1.5: -0.5, 0.5, 0.7, -1.4, 1.5, -1.5 -> Θ: 0, 0.5, 1.2, 0, 1.5, 0
    np.testing.assert_allclose(bucket_levels(H, 1.5), [0, 0.5, 1.2, 0, 1.5, 0], atol=1e-12)
    assert tuple(map(int, leaky_bucket_exit(H, 6, 1.5, 1.0))) == (2, 3)  # Θ_3 = 1.2 > 1: L=2, P=3
    assert tuple(map(int, leaky_bucket_exit(H, 2, 1.5, 1.0))) == (2, 2)  # budget reached first
    assert tuple(map(int, leaky_bucket_exit(H, 6, 1.5, 1.3))) == (4, 5)
    assert tuple(map(int, leaky_bucket_exit(H, 0, 1.5, 0.0))) == (0, 0)


def test_dpp_budget_tie_breaks_and_outage():
    thr = jnp.array([1.0, 2.0, 2.0, 1.5])
    en = jnp.zeros(4)
    assert int(dpp_budget(1.0, 0.0, thr, en, False)) == 1  # tie 1 vs 2 -> smallest
    assert int(dpp_budget(1.0, 0.0, thr, en, True)) == 0  # outage -> only γ = 0
    assert int(dpp_budget(0.0, 5.0, thr, jnp.array([0.0, 1, 2, 3]), False)) == 0
    assert int(dpp_budget(0.0, 0.0, thr, en, False)) == 0  # all-zero objective -> γ = 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_written_out_logistic_equals_jax_sigmoid_bit_for_bit(dtype):
    # tokens.logistic replaces jax.nn.sigmoid in the acceptance (faster in the round kernel); it
    # must not change a single value: a dense grid over the range where σ is not 0 or 1, the tails, ±inf, NaN
    x = jnp.concatenate([jnp.linspace(-120.0, 120.0, 1_000_001, dtype=dtype),
                         jnp.asarray([-jnp.inf, jnp.inf, jnp.nan, 0.0, -0.0, 1e-30, -1e-30, 800.0, -800.0], dtype)])
    a = np.asarray(jax.jit(jax.nn.sigmoid)(x))
    b = np.asarray(jax.jit(tokens.logistic)(x))
    assert a.dtype == b.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(a, b)
