"""Laws of the exogenous draws (docs/model.md §2, §4, §1): marginals and correlations.

Each check compares a sample statistic with its exact value using a tolerance of Z standard
errors estimated from the same sample (CLT). With Z = 5 the false-failure rate is ≈ 6e-7 per
assertion (two-sided normal tail), so the ~20 assertions here fail spuriously with probability
< 2e-5; the seeds are fixed, so a run is reproducible anyway.
"""

import numpy as np
import pytest
from scipy import stats

from gelato_jax import Scenario, sample_exogenous

Z = 5.0
R, T = 64, 400


def _close_mean(x, want, label):
    x = np.asarray(x, dtype=np.float64).ravel()
    se = x.std(ddof=1) / np.sqrt(x.size)
    assert abs(x.mean() - want) <= Z * se, f"{label}: mean {x.mean():.5g} vs {want:.5g} (se {se:.2g})"


def _close_corr(a, b, want, label):
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    za = (a - a.mean()) / a.std()
    zb = (b - b.mean()) / b.std()
    prod = za * zb
    se = prod.std(ddof=1) / np.sqrt(prod.size)
    assert abs(prod.mean() - want) <= Z * se + 2.0 / prod.size, f"{label}: corr {prod.mean():.4f} vs {want} (se {se:.2g})"


@pytest.fixture(scope="module")
def iid():
    return sample_exogenous(Scenario(), seed=123, realizations=R, rounds=T)


def test_rayleigh_fading_is_unit_exponential_iid(iid):
    h = np.asarray(iid.channel_gain)
    _close_mean(h, 1.0, "E[h]")
    _close_mean(h**2, 2.0, "E[h^2]")
    _close_corr(h[:, :-1], h[:, 1:], 0.0, "corr(h_t, h_t+1)")
    assert stats.kstest(h.ravel()[:5000], "expon").pvalue > 1e-6


def test_iid_entropies_are_gamma(iid):
    s = Scenario()
    H = np.asarray(iid.entropy)
    for pos in (0, s.gamma_max - 1):
        _close_mean(H[..., pos], s.k_H * s.theta_H, f"E[H_{pos}]")
        _close_mean((H[..., pos] - s.k_H * s.theta_H) ** 2, s.k_H * s.theta_H**2, f"Var[H_{pos}]")
    _close_corr(H[..., 0], H[..., 1], 0.0, "corr(H_1, H_2)")
    assert stats.kstest(H[..., 3].ravel()[:5000], "gamma", args=(s.k_H, 0, s.theta_H)).pvalue > 1e-6


def test_acceptance_uniforms(iid):
    U = np.asarray(iid.uniform)
    _close_mean(U, 0.5, "E[U]")
    _close_mean(U**2, 1 / 3, "E[U^2]")


def test_ar1_entropies_have_gamma_marginals_and_lag_one_correlation():
    s = Scenario(rho_H=0.6)
    H = np.asarray(sample_exogenous(s, seed=7, realizations=R, rounds=T).entropy)
    for pos in (0, 1, s.gamma_max - 1):
        _close_mean(H[..., pos], s.k_H * s.theta_H, f"E[H_{pos}]")
        _close_mean((H[..., pos] - s.k_H * s.theta_H) ** 2, s.k_H * s.theta_H**2, f"Var[H_{pos}]")
    _close_corr(H[..., 0], H[..., 1], 0.6, "corr(H_1, H_2)")
    _close_corr(H[..., 4], H[..., 6], 0.36, "corr(H_5, H_7)")
    assert stats.kstest(H[..., 5].ravel()[:5000], "gamma", args=(s.k_H, 0, s.theta_H)).pvalue > 1e-6


def test_gauss_markov_fading_marginal_and_correlation():
    rho = 0.8
    s = Scenario(channel="gauss_markov", rho=rho)
    h = np.asarray(sample_exogenous(s, seed=9, realizations=R, rounds=T).channel_gain)
    _close_mean(h, 1.0, "E[h]")
    _close_corr(h[:, :-1], h[:, 1:], rho**2, "corr(h_t, h_t+1)")  # |x|^2 of a CN AR(1)
    assert stats.kstest(h[:, 0], "expon").pvalue > 1e-6  # stationary start


@pytest.mark.parametrize("law", ["exponential", "uniform"])
def test_random_energy_arrivals_have_mean_E_bar(law):
    s = Scenario(energy_arrival=law, E_bar=0.05)
    a = np.asarray(sample_exogenous(s, seed=3, realizations=R, rounds=T).energy_arrival)
    assert np.all(a >= 0)
    _close_mean(a, 0.05, f"E[a] ({law})")
    var = 0.05**2 if law == "exponential" else (0.1**2) / 12
    _close_mean((a - 0.05) ** 2, var, f"Var[a] ({law})")
    if law == "uniform":
        assert a.max() <= 0.1


def test_draws_do_not_depend_on_number_of_realizations_or_rounds():
    s = Scenario()
    big = sample_exogenous(s, seed=1, realizations=5, rounds=30)
    small = sample_exogenous(s, seed=1, realizations=2, rounds=10)
    for a, b in zip(big, small):
        np.testing.assert_array_equal(np.asarray(a)[:2, :10], np.asarray(b))
