"""The tabulated Gamma inverse CDF (gelato_jax/_gamma_table.py) used for the surrogate entropies:
a deterministic bound on the Kolmogorov distance to Gamma(k), and KS tests of the draws that
simulate/sample_exogenous actually use."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from gelato_jax import Scenario, sample_exogenous
from gelato_jax._gamma_table import gamma_quantile, gamma_table

# KS tests: reject only at p < 1e-6, i.e. a false-failure rate of 1e-6 per test (the p-value of
# the exact KS test is uniform under the null).
P_MIN = 1e-6


def _u_grid():
    body = np.linspace(1e-6, 1 - 1e-6, 100_001)
    tails = np.logspace(-15, -1, 600)
    return np.concatenate([body, tails, 1 - tails])


@pytest.mark.parametrize("k", [0.05, 0.8, 1000.0])
def test_gamma_table_kolmogorov_distance_below_1e9_float64(k):
    """sup_u |F_k(Q̂_k(u)) − u| bounds the Kolmogorov distance between the sampled law and
    Gamma(k) (the sampler is monotone in u); checked on 1e5 body + 1200 tail points."""
    u = _u_grid()
    x = np.asarray(gamma_quantile(gamma_table(k, jnp.float64), jnp.asarray(u)), np.float64)
    assert np.all(np.diff(x[:100_001]) >= 0)  # monotone
    err = np.where(u < 0.5, np.abs(stats.gamma.cdf(x, k) - u), np.abs(stats.gamma.sf(x, k) - (1 - u)))
    assert err.max() < 1e-9, (k, err.max(), u[err.argmax()])


def test_gamma_table_float32_error_at_float32_resolution():
    u = np.linspace(1e-6, 1 - 1e-6, 20_001).astype(np.float32)
    x = np.asarray(gamma_quantile(gamma_table(0.8, jnp.float32), jnp.asarray(u)), np.float64)
    err = np.abs(stats.gamma.cdf(x, 0.8) - u.astype(np.float64))
    assert err.max() < 2e-6  # float32 carries 24 bits (6e-8 relative) in log-quantile space


@pytest.mark.parametrize(
    "scen",
    [Scenario(), Scenario(k_H=2.5, theta_H=0.4, energy_arrival="exponential")],
    ids=["default", "k2.5-exp"],
)
def test_simulator_draws_follow_their_laws(scen):
    """Entropies ~ Gamma(k_H, θ_H), fading ~ Exp(1), acceptance uniforms ~ U(0,1), arrivals ~
    E_bar·Exp(1) — exact KS tests on the draws of sample_exogenous (= simulate's draws)."""
    exo = sample_exogenous(scen, seed=123, realizations=40, rounds=150)
    H = np.asarray(exo.entropy, np.float64).ravel()
    assert stats.kstest(H, stats.gamma(float(scen.k_H), scale=float(scen.theta_H)).cdf).pvalue > P_MIN
    h = np.asarray(exo.channel_gain, np.float64).ravel()
    assert stats.kstest(h, stats.expon().cdf).pvalue > P_MIN
    U = np.asarray(exo.uniform, np.float64).ravel()
    assert U.min() >= 0 and U.max() < 1
    assert stats.kstest(U, stats.uniform().cdf).pvalue > P_MIN
    if scen.energy_arrival == "exponential":
        a = np.asarray(exo.energy_arrival, np.float64).ravel()
        assert stats.kstest(a, stats.expon(scale=float(scen.E_bar)).cdf).pvalue > P_MIN
    # positions within a round and the acceptance uniforms are uncorrelated with the entropies
    # (|r| < 5/sqrt(n): false-failure rate ≈ 6e-7 per check)
    n = H.size
    r = np.corrcoef(np.asarray(exo.entropy)[..., 0].ravel(), np.asarray(exo.entropy)[..., 1].ravel())[0, 1]
    assert abs(r) < 5 / np.sqrt(n / scen.gamma_max)
    r = np.corrcoef(H, U)[0, 1]
    assert abs(r) < 5 / np.sqrt(n)


def test_gamma_table_vmaps_over_shape():
    """A sweep over k_H builds one table per grid point inside one compiled program."""
    ks = jnp.asarray([0.5, 0.8, 3.0])
    tabs = jax.vmap(lambda k: gamma_table(k, jnp.float64))(ks)
    med = jax.vmap(lambda t: gamma_quantile(t, jnp.asarray(0.5)))(tabs)
    np.testing.assert_allclose(np.asarray(med), stats.gamma.median(np.asarray(ks)), rtol=1e-9)


def _grid_midpoints(bits: int) -> np.ndarray:
    """Uniforms on the generator's grid (midpoints of a ``bits``-bit grid): both extreme tails
    and a spread of the body (deterministic)."""
    q = np.concatenate([np.arange(0, 3000), np.linspace(0, 2**bits - 1, 20_001).astype(np.int64),
                        2**bits - 1 - np.arange(0, 3000)])
    return (q.astype(np.float64) + 0.5) * 2.0**-bits


# the simulator's sampler (``gamma_table_poly``, gather-free) and the bits-indexed table it replaced
# (``gamma_table_bits``, kept as the gather-based reference of bench/gather_cost.py): bounds with
# the measured values (float64 Kolmogorov: poly 0.7e-13–2.2e-13, bits 5e-13–9e-13 over k ∈ [0.05, 1000])
_TABLES = {"poly": ("gamma_table_poly", 1e-12, 3e-6, 2e-7), "bits": ("gamma_table_bits", 1e-11, 2e-6, 2e-7)}


@pytest.mark.parametrize("table", sorted(_TABLES))
@pytest.mark.parametrize("k", [0.05, 0.8, 1000.0])
def test_simulator_table_kolmogorov_distance_float64(k, table):
    """The table on the float64 grid of the generator's uniforms, extreme tails included:
    sup |F_k(Q̂_k(u)) − u| below the bound (the logit table's bound above is 1e-9) and monotone in u."""
    from gelato_jax import _gamma_table

    build, bound, _, _ = _TABLES[table]
    u = _grid_midpoints(52)
    x = np.asarray(gamma_quantile(getattr(_gamma_table, build)(k, jnp.float64), jnp.asarray(u)), np.float64)
    order = np.argsort(u)
    assert np.all(np.diff(x[order]) >= 0)
    err = np.where(u < 0.5, np.abs(stats.gamma.cdf(x, k) - u), np.abs(stats.gamma.sf(x, k) - (1 - u)))
    assert err.max() < bound, (k, err.max(), u[err.argmax()])


@pytest.mark.parametrize("table", sorted(_TABLES))
def test_simulator_table_float32_at_float32_resolution(table):
    """float32 (k = 0.8) on the generator's grid, tails included: the quantile's relative error stays
    at float32 rounding of the log-quantile (measured: poly 1.6e-6 — ``log v`` and the Horner sum
    each round to half an ulp of ``|y| ≤ 21`` —, bits 9.4e-7) and the Kolmogorov distance below two
    steps of the uniforms' 2^-23 grid (measured: poly 1.0e-7, bits 4.5e-8)."""
    from gelato_jax import _gamma_table

    build, _, rel_bound, kol_bound = _TABLES[table]
    u = _grid_midpoints(23)
    x = np.asarray(gamma_quantile(getattr(_gamma_table, build)(0.8, jnp.float32), jnp.asarray(u, jnp.float32)), np.float64)
    truth = np.where(u < 0.5, stats.gamma.ppf(u, 0.8), stats.gamma.isf(1 - u, 0.8))
    assert np.max(np.abs(x / truth - 1)) < rel_bound
    kol = np.where(u < 0.5, np.abs(stats.gamma.cdf(x, 0.8) - u), np.abs(stats.gamma.sf(x, 0.8) - (1 - u)))
    assert kol.max() < kol_bound


def test_poly_table_vmaps_over_k():
    """A sweep over ``k_H`` builds one polynomial table per value (host callback, sequential vmap)."""
    from gelato_jax._gamma_table import gamma_table_poly

    ks = jnp.asarray([0.3, 0.8, 5.0])
    med = jax.vmap(lambda k: gamma_quantile(gamma_table_poly(k, jnp.float64), jnp.asarray(0.5)))(ks)
    np.testing.assert_allclose(np.asarray(med), stats.gamma.median(np.asarray(ks)), rtol=1e-12)
