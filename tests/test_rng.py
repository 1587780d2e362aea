"""Law tests of every exogenous draw of the default generator ``mix32`` (gelato_jax/rng.py), and
the generator guarantees (chunk invariance, rollout = simulate, field validation).

Draws come from ``sample_exogenous`` (what ``simulate`` uses), seeds are fixed, so every run is
the same run; the thresholds say how often a *correct* generator would fail them on a fresh seed:

* marginals: one-sample Kolmogorov–Smirnov tests, failing at ``p < P_KS = 1e-4``;
* independence: correlations ``z = √N·corr`` of the probability-integral transforms (PIT, exactly
  U(0,1) under the model) against exact means and variances, so ``z ~ N(0, 1)`` for independent
  slots; each family (all slot pairs of a round, all slot pairs of consecutive rounds, of
  consecutive realizations) fails if its largest ``|z|`` exceeds the Bonferroni bound at family
  level ``P_FAM = 1e-4``; plus χ² tests of 16×16 pair histograms failing at ``p < P_FAM``.

About 45 such assertions in all, so a correct generator fails this file with probability
≤ 45·1e-4 ≈ 5e-3 on a fresh seed (for these fixed seeds: never). The float32 and float64 uniforms
are built differently (top 23 bits of one word vs 26 + 26 bits of two), so both are tested; the
suite runs with ``JAX_ENABLE_X64=1`` (tests/conftest.py), so float64 is tested in process.
"""

import pathlib
import sys
import zlib

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from gelato_jax import Exogenous, Scenario, StaticSD, rollout, sample_exogenous, simulate

P_KS = 1e-4
P_FAM = 1e-4
R, T = 192, 160  # 30,720 rounds per sample; γ_max = 10 positions per round
DTYPES = [jnp.float32, jnp.float64]
DT_IDS = ["f32", "f64"]

_cache = {}


def _seed(dtype, **kw):
    return zlib.crc32(repr((jnp.dtype(dtype).name, sorted(kw.items()))).encode()) % 100_000


def _sample(dtype, **kw):
    """A cached ``(h, a, H, U)`` sample of ``Scenario(**kw)``, float64 numpy arrays."""
    key = (jnp.dtype(dtype).name, tuple(sorted(kw.items())))
    if key not in _cache:
        exo = sample_exogenous(Scenario(**kw), seed=_seed(dtype, **kw), realizations=R, rounds=T, dtype=dtype)
        _cache[key] = tuple(np.asarray(x, np.float64) for x in exo)
    return _cache[key]


def _ks(x, cdf, label, args=()):
    p = stats.kstest(np.ravel(x), cdf, args=args).pvalue
    assert p > P_KS, f"{label}: KS p = {p:.3g} (n = {np.size(x)})"


def _pit(s: Scenario, exo, dtype):
    """``(R, T, 2 γ_max + 2)`` PIT values of a round's draws in the generator's slot order:
    fading, arrival, entropies, acceptance uniforms (each exactly U(0,1) under the model; the
    acceptance uniforms ``j·2^-b`` are moved to the midpoints of their grid)."""
    h, a, H, U = exo
    half = 2.0 ** -(24 if jnp.dtype(dtype) == jnp.float32 else 53)
    arr = 1.0 - np.exp(-a / s.E_bar) if s.energy_arrival == "exponential" else a / (2 * s.E_bar)
    return np.concatenate(
        [np.exp(-h)[..., None], arr[..., None], stats.gamma.cdf(H, s.k_H, scale=s.theta_H), U + half], axis=-1
    )


def _z(A, B):
    """``√N·corr`` of the columns of two ``(N, k)`` U(0,1) samples against the exact moments."""
    A = (A - 0.5) * np.sqrt(12.0)
    B = (B - 0.5) * np.sqrt(12.0)
    return A.T @ B / np.sqrt(A.shape[0])


def _assert_family(z, label):
    z = np.asarray(z).ravel()
    crit = stats.norm.isf(P_FAM / (2 * z.size))
    i = int(np.argmax(np.abs(z)))
    assert abs(z[i]) < crit, f"{label}: |z| = {abs(z[i]):.2f} at pair {i} > {crit:.2f} ({z.size} pairs)"


def _chi2_pairs(x, y, label, bins=16):
    c, _, _ = np.histogram2d(np.ravel(x), np.ravel(y), bins=bins, range=[[0, 1], [0, 1]])
    p = stats.chisquare(c.ravel()).pvalue
    assert p > P_FAM, f"{label}: chi2 p = {p:.3g}"


# ----------------------------------------------------------------------------- marginals
@pytest.mark.parametrize(
    "law, dtype",
    [("constant", jnp.float32), ("exponential", jnp.float32), ("uniform", jnp.float64)],
    ids=["constant-f32", "exponential-f32", "uniform-f64"],
)  # each law's formula is the same in both dtypes; the uniforms behind them differ by dtype
# (one sample per (law, dtype): each new one is a compile, ~3 s)
def test_marginal_laws(law, dtype):
    s = Scenario(energy_arrival=law)
    assert s.rng == "mix32"  # the default generator
    h, a, H, U = _sample(dtype, energy_arrival=law)
    _ks(h, "expon", f"fading {law}")
    if law == "constant":
        np.testing.assert_array_equal(a, np.float64(np.asarray(s.E_bar, dtype)))
    elif law == "exponential":
        _ks(a / s.E_bar, "expon", "arrival/E_bar ~ Exp(1)")
    else:
        _ks(a / s.E_bar, "uniform", "arrival/E_bar ~ U(0, 2)", args=(0.0, 2.0))
    _ks(H, "gamma", f"entropies {law}", args=(s.k_H, 0, s.theta_H))
    _ks(H[..., s.gamma_max - 1], "gamma", "entropy at the last position", args=(s.k_H, 0, s.theta_H))
    assert U.min() >= 0.0 and U.max() < 1.0
    _ks(U, "uniform", f"acceptance uniforms {law}")


LAW = {jnp.float32: "exponential", jnp.float64: "uniform"}  # the random-arrival sample of each dtype


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("k_H", [0.3, 5.0])
def test_gamma_entropies_other_shapes(k_H, dtype):
    s = Scenario(k_H=k_H)
    H = _sample(dtype, k_H=k_H, energy_arrival=LAW[dtype])[2]  # k_H is a leaf: no new compile
    _ks(H, "gamma", f"Gamma({k_H}, {s.theta_H})", args=(k_H, 0, s.theta_H))
    # the lower tail, where the inverse-CDF table works hardest at small k_H
    q = stats.gamma.ppf(0.01, k_H, scale=s.theta_H)
    low = H[H < q]
    n, frac = H.size, low.size / H.size
    assert abs(frac - 0.01) < 4.5 * np.sqrt(0.01 * 0.99 / n), f"P(H < q_0.01) = {frac:.5f}"
    _ks(low, lambda x: stats.gamma.cdf(x, k_H, scale=s.theta_H) / 0.01, "lower 1% tail")


def test_float64_uniforms_use_both_words():
    """float64 uniforms are ``(hi·2²⁶ + lo)·2⁻⁵²``: the low 26 bits ``frac(U·2²⁶)`` must be U(0,1)
    and independent of the high part (a float32-grade uniform in float64 would fail both)."""
    U = _sample(jnp.float64, energy_arrival=LAW[jnp.float64])[3].ravel()
    hi = np.floor(U * 2**26)
    lo = U * 2**26 - hi
    _ks(lo, "uniform", "low 26 bits")
    _assert_family(_z((hi / 2**26)[:, None], lo[:, None]), "corr(high, low bits)")


# ----------------------------------------------------------------------------- independence
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_slots_rounds_and_realizations_independent(dtype):
    s = Scenario(energy_arrival=LAW[dtype])
    P = _pit(s, _sample(dtype, energy_arrival=LAW[dtype]), dtype)  # (R, T, 22)
    k = P.shape[-1]
    _ks(P, "uniform", "all PIT values")
    flat = P.reshape(-1, k)
    iu = np.triu_indices(k, 1)
    _assert_family(_z(flat, flat)[iu], "slots of one round")
    _assert_family(_z(P[:, :-1].reshape(-1, k), P[:, 1:].reshape(-1, k)), "round t vs t+1 (all slot pairs)")
    _assert_family(_z(P[:, :-2].reshape(-1, k), P[:, 2:].reshape(-1, k)), "round t vs t+2 (all slot pairs)")
    _assert_family(_z(P[:-1].reshape(-1, k), P[1:].reshape(-1, k)), "realization r vs r+1 (all slot pairs)")
    # distributional (not only linear) dependence: non-overlapping pairs in 16x16 histograms
    _chi2_pairs(P[..., 0:k:2], P[..., 1:k:2], "slot 2i vs 2i+1")
    _chi2_pairs(P[:, 0:-1:2], P[:, 1::2], "round 2t vs 2t+1")
    _chi2_pairs(P[0:-1:2], P[1::2], "realization 2r vs 2r+1")


def test_streams_differ_by_generator_and_seed():
    scen = Scenario(energy_arrival="uniform")
    a = _sample(jnp.float64, energy_arrival="uniform")
    b = sample_exogenous(scen.replace(rng="threefry"), seed=_seed(jnp.float64, energy_arrival="uniform"),
                         realizations=4, rounds=100)  # the program of the threefry test below
    c = sample_exogenous(scen, seed=_seed(jnp.float64, energy_arrival="uniform") + 1, realizations=R, rounds=T)
    for i, f in enumerate(Exogenous._fields):
        x = a[i]
        assert not np.any(x[:4, :100] == np.asarray(getattr(b, f))), f
        assert not np.any(x == np.asarray(getattr(c, f))), f


# ----------------------------------------------------------------------------- guarantees
def test_threefry_chunk_invariance_and_rollout_equals_simulate():
    """``Scenario(rng="threefry")``: bit-identical results for any chunk size, and ``rollout`` on
    ``sample_exogenous`` equals ``simulate`` per realization. (tests/test_rollout.py checks both
    with the default generator: three policies, and two scenarios for chunking.)"""
    scen, pol = Scenario(rng="threefry", energy_arrival="uniform"), StaticSD(gamma=3)
    full = simulate(scen, pol, seed=5, realizations=4, rounds=100)
    part = simulate(scen, pol, seed=5, realizations=4, rounds=100, chunk=3)
    for k, v in full.as_dict().items():
        np.testing.assert_array_equal(v, getattr(part, k), err_msg=f"{k} chunk=3")
    tr = rollout(scen, pol, sample_exogenous(scen, seed=5, realizations=4, rounds=100))
    np.testing.assert_allclose(full.throughput, np.mean(tr.tokens / tr.latency, axis=1), rtol=1e-12)
    np.testing.assert_allclose(full.energy, np.mean(tr.energy, axis=1), rtol=1e-12)
    np.testing.assert_allclose(full.arrival, np.mean(tr.arrival, axis=1), rtol=1e-12)
    np.testing.assert_allclose(full.queue_mean, np.mean(tr.queue, axis=1), rtol=1e-12)
    np.testing.assert_allclose(full.accepted, np.asarray(tr.accepted).mean(axis=1), rtol=1e-12)


def test_unknown_rng_is_refused_naming_the_field():
    with pytest.raises(ValueError, match=r"rng"):
        Scenario(rng="bogus")


def test_battery_stream_is_the_simulators_stream():
    """bench/rng_stream.py (what dieharder reads) writes the words behind ``simulate``'s uniforms."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))
    try:
        import rng_stream
    finally:
        sys.path.pop(0)
    seed = _seed(jnp.float32)
    h, _, _, U = _sample(jnp.float32)  # Scenario() in float32: constant arrivals
    keys = rng_stream.realization_keys(seed, 3)
    w = np.asarray(rng_stream.block_fn("a", keys[1], 22, 6)(jnp.uint32(0))).reshape(6, 22)
    u = (w >> 9).astype(np.float32) * np.float32(2.0**-23)  # acceptance uniforms: u − 2⁻²⁴
    np.testing.assert_array_equal(U[1, :6], u[:, 12:])
    np.testing.assert_allclose(h[1, :6], -np.log(u[:, 0] + np.float32(2.0**-24)), rtol=1e-6)
    wb = np.asarray(rng_stream.block_fn("b", keys, 22, 6)(jnp.uint32(0))).reshape(6, 22, 3)
    np.testing.assert_array_equal(wb[:, :, 1], w)
    # stream c: 23-bit fields packed MSB first
    v = np.random.default_rng(0).integers(0, 2**32, 64, dtype=np.uint32)
    bits = "".join(format(int(x) >> 9, "023b") for x in v)
    want = np.array([int(bits[i : i + 32], 2) for i in range(0, len(bits), 32)], np.uint32)
    np.testing.assert_array_equal(np.asarray(rng_stream._pack23(jnp.asarray(v))), want)
