"""The independent numpy reference (gelato_jax/reference.py, written from docs/model.md §1–§6) against
the JAX core: same exogenous arrays → same per-round trajectory; and same laws when each draws
its own randomness."""

import numpy as np
import pytest

from gelato_jax import Scenario, rollout, sample_exogenous, simulate, tokens
from gelato_jax import reference as ref
from gelato_jax.policies import Gelato, StaticSD

R, T = 8, 150
EPS = np.finfo(np.float64).eps

SCENARIOS = {
    "default": Scenario(),
    # far device: frequent outages (rate < r_min) and costly airtime; random arrivals
    "far-exponential": Scenario(d=1200.0, energy_arrival="exponential"),
    # correlated fading and AR(1) entropies, uniform arrivals, larger gamma_max, small m_max,
    # 50 MHz links (so that the `full` and `scalar` payloads are worth drafting)
    "correlated-wideband": Scenario(
        channel="gauss_markov", rho=0.9, rho_H=0.6, energy_arrival="uniform", gamma_max=12, m_max=64, W=50e6, W_dl=50e6
    ),
    # the first position after a rejected round has its own entropy scale and intercept (LM calibration)
    "after-reject": Scenario(after_reject_H_scale=1.4, after_reject_a0_shift=-0.6),
}
POLICIES = [
    Gelato(V=1.0),
    Gelato(V=0.2, exit="none"),
    Gelato(V=20.0, payload="scalar", H_th=1.0, Theta_th=0.5),
    Gelato(V=3.0, payload="full"),
    StaticSD(gamma=3),
    StaticSD(gamma=5, payload="topp"),
    StaticSD(gamma=2, payload="scalar"),
]
INT_FIELDS = ("budget", "sent", "passes", "accepted", "tokens")
FLOAT_FIELDS = ("latency", "energy", "rate", "arrival", "uplink_bits", "downlink_bits")


@pytest.fixture(scope="module", params=list(SCENARIOS))
def case(request):
    scen = SCENARIOS[request.param]
    return scen, sample_exogenous(scen, seed=7, realizations=R, rounds=T)


def _assert_same(tr, want, energy_scale):
    for k in INT_FIELDS:
        np.testing.assert_array_equal(np.asarray(getattr(tr, k)), want[k], err_msg=k)
    # float fields are computed by the same formulas in a different order: a few ulps
    for k in FLOAT_FIELDS:
        np.testing.assert_allclose(np.asarray(getattr(tr, k)), want[k], rtol=64 * EPS, atol=0, err_msg=k)
    # the queue is a running sum of T terms: its rounding error grows at most linearly in T
    np.testing.assert_allclose(np.asarray(tr.queue), want["queue"], rtol=64 * EPS, atol=8 * T * EPS * energy_scale, err_msg="queue")


def test_reference_scenario_constants_match_core():
    s = Scenario()
    assert ref.mean_acceptance(0.8, 1.5, 4.8, 1.8) == pytest.approx(float(tokens.mean_acceptance(s)), rel=1e-10)
    assert ref.mean_topp_bits(0.8, 1.5, 2.0, 1024, 18.0, 16.0) == pytest.approx(float(tokens.mean_topp_bits(s)), rel=1e-10)
    # docs/model.md §9 values
    assert ref.mean_acceptance(0.8, 1.5, 4.8, 1.8) == pytest.approx(0.842, abs=5e-4)
    assert ref.mean_topp_bits(0.8, 1.5, 2.0, 1024, 18.0, 16.0) == pytest.approx(1071, abs=1)


# every policy on the default scenario and a spread over the others by default; the full
# scenario x policy matrix (incl. AR(1) entropies, Gauss-Markov fading, 50 MHz links, gamma_max=12,
# m_max=64) is marked slow (each pair compiles once, ~1-2 s on 2 cores)
QUICK = {("default", i) for i in range(len(POLICIES))} | {("far-exponential", 0), ("far-exponential", 4)} | {
    ("after-reject", 0), ("after-reject", 2), ("after-reject", 5)}
CASES = [
    pytest.param(name, i, id=f"{name}-{repr(POLICIES[i])[:60]}",
                 marks=() if (name, i) in QUICK else pytest.mark.slow)
    for name in SCENARIOS for i in range(len(POLICIES))
]
_EXO = {}


def _exo(name):
    if name not in _EXO:
        _EXO[name] = sample_exogenous(SCENARIOS[name], seed=7, realizations=R, rounds=T)
    return _EXO[name]


@pytest.mark.parametrize("name,i", CASES)
def test_reference_rollout_matches_core(name, i):
    scen, exo, policy = SCENARIOS[name], _exo(name), POLICIES[i]
    tr = rollout(scen, policy, exo)
    want = ref.rollout(scen, policy, exo)
    _assert_same(tr, want, energy_scale=float(np.max(want["energy"])))
    # the comparison is not vacuous: drafts are sent and some are rejected; at 1 MHz GELATO's
    # budget varies from round to round with `topp` (with `full`/`scalar` gamma = 0 is optimal
    # at 1 MHz, so GELATO drafts with them only at 50 MHz)
    if isinstance(policy, Gelato) and (policy.payload == "topp" or scen.W > 1e7):
        assert want["sent"].max() > 0
        assert np.any(want["accepted"] < want["sent"])
        if policy.payload == "topp" and scen.W < 1e7:
            assert len(np.unique(want["budget"])) > 1


def test_outage_rounds_are_exercised():
    scen, exo = SCENARIOS["far-exponential"], _exo("far-exponential")
    want = ref.rollout(scen, Gelato(V=1.0), exo)
    out = want["rate"] < scen.r_min
    assert 0 < out.mean() < 1
    assert np.all(want["budget"][out] == 0)


@pytest.mark.parametrize("name,seed", [("far-exponential", 3), ("after-reject", 5)])
def test_python_loop_matches_numpy_reference(name, seed):
    scen = SCENARIOS[name]
    exo = sample_exogenous(scen, seed=seed, realizations=3, rounds=60)
    for pol in (Gelato(V=2.0), Gelato(V=20.0, payload="scalar"), StaticSD(gamma=4, payload="topp")):
        vec = ref.rollout(scen, pol, exo)
        loop = ref.python_loop_rollout(scen, pol, exo)
        for k in ref.ROLLOUT_FIELDS:
            np.testing.assert_allclose(np.asarray(loop[k], np.float64), vec[k], rtol=64 * EPS, atol=1e-15, err_msg=k)


def test_reference_after_reject_constants_match_core():
    s = SCENARIOS["after-reject"]
    p = ref.params(s, Gelato())
    assert p.alpha_bar_rej == pytest.approx(float(tokens.mean_acceptance_after_reject(s)), rel=1e-10)
    assert p.b_bar_rej == pytest.approx(float(tokens.mean_topp_bits_after_reject(s)), rel=1e-10)
    # after a rejection the first position is harder: lower acceptance, larger payload
    assert p.alpha_bar_rej < p.alpha_bar - 0.05 and p.b_bar_rej > p.b_bar
    # defaults: no after-rejection effect, bit for bit in the core
    d = Scenario()
    assert float(tokens.mean_acceptance_after_reject(d)) == float(tokens.mean_acceptance(d))
    assert float(tokens.mean_topp_bits_after_reject(d)) == float(tokens.mean_topp_bits(d))


def test_reference_float32_close_to_float64():
    scen, exo = SCENARIOS["default"], _exo("default")
    a = ref.rollout(scen, Gelato(V=1.0), exo, dtype=np.float32)
    b = ref.rollout(scen, Gelato(V=1.0), exo, dtype=np.float64)
    assert a["latency"].dtype == np.float32
    # budgets may flip at near-ties in float32; the bulk must agree
    assert np.mean(a["budget"] == b["budget"]) > 0.95


def test_reference_simulate_same_laws_as_core():
    """Different random streams (PCG64 vs threefry), same model: per-realization mean throughput
    and energy agree in distribution. Welch z-test with |z| < 5: false-failure rate ≈ 6e-7 per
    assertion (normal tails; 256 realizations per side make the CLT accurate here)."""
    scen, pol = Scenario(), Gelato(V=1.0)
    n, rounds = 200, 100
    a = ref.simulate(scen, pol, seed=0, realizations=n, rounds=rounds)
    b = simulate(scen, pol, seed=0, realizations=n, rounds=rounds)
    for k in ("throughput", "energy", "budget", "sent", "accepted"):
        x, y = a[k], getattr(b, k)
        z = (x.mean() - y.mean()) / np.sqrt(x.var(ddof=1) / n + y.var(ddof=1) / n)
        assert abs(z) < 5.0, (k, x.mean(), y.mean(), z)


def test_reference_simulate_same_laws_as_core_after_reject():
    """As above with the after-rejection law (different streams; Welch |z| < 5, false-failure
    rate ≈ 6e-7 per assertion)."""
    scen, pol = SCENARIOS["after-reject"], StaticSD(gamma=3, payload="topp")
    n, rounds = 200, 100
    a = ref.simulate(scen, pol, seed=1, realizations=n, rounds=rounds)
    b = simulate(scen, pol, seed=1, realizations=n, rounds=rounds)
    for k in ("throughput", "energy", "accepted"):
        x, y = a[k], getattr(b, k)
        z = (x.mean() - y.mean()) / np.sqrt(x.var(ddof=1) / n + y.var(ddof=1) / n)
        assert abs(z) < 5.0, (k, x.mean(), y.mean(), z)


def test_reference_rejects_unsupported_policy():
    with pytest.raises(ValueError, match="proxy"):
        ref.params(Scenario(), Gelato(proxy="ewma"))
    with pytest.raises(ValueError, match="exit must be 'bucket' or 'none'"):
        ref.params(Scenario(), Gelato(exit="marginal"))
