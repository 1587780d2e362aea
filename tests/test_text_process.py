"""``Scenario(entropy_process="text")``: entropies as one stationary process along the text,
continued across rounds (Gaussian copula of a latent AR(1), gelato_jax/simulator.py)."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from gelato_jax import Scenario, optimum, rollout, sample_exogenous, simulate
from gelato_jax._gamma_table import gamma_table
from gelato_jax.policies import Gelato, StaticSD
from gelato_jax.simulator import _FRESH_LAG, RoundCarry, _text_advance, _text_entropies

RHO = 0.6
SCEN = Scenario(entropy_process="text", rho_H=RHO)


def _carry(latent=0.0, lag=_FRESH_LAG, scen=SCEN):
    return RoundCarry(0, 0.0, (), False, jnp.asarray(latent), jnp.asarray(lag), gamma_table(scen.k_H, jnp.float64))


def test_marginals_and_lag_correlation_within_a_round():
    """From a fresh start every position is ``Gamma(k_H, θ_H)`` (KS, p > 1e-4: false-failure rate
    1e-4 per test) and the latent lag-one correlation is ``rho_H`` (Fisher z, 4.5 s.e.: ≈ 7e-6)."""
    import jax

    rng = np.random.default_rng(0)
    n = 4000
    eps = rng.standard_normal((n, SCEN.gamma_max))
    c = _carry()
    x, H = jax.vmap(lambda e: _text_entropies(SCEN, c, e))(jnp.asarray(eps))
    x, H = np.asarray(x), np.asarray(H)
    for i in (0, 5):
        assert stats.kstest(H[:, i], stats.gamma(SCEN.k_H, scale=SCEN.theta_H).cdf).pvalue > 1e-4
    r = np.corrcoef(x[:, 3], x[:, 4])[0, 1]
    assert abs(np.arctanh(r) - np.arctanh(RHO)) < 4.5 / math.sqrt(n - 3)
    # the continuation: x_1 = ρ^lag·latent + sqrt(1 − ρ^{2 lag})·ε_1
    x2, _ = _text_entropies(SCEN, _carry(latent=1.5, lag=2.0), jnp.asarray(eps[0]))
    assert float(x2[0]) == pytest.approx(RHO**2 * 1.5 + math.sqrt(1 - RHO**4) * eps[0, 0], rel=1e-12)


@pytest.mark.parametrize(
    "passes,tokens,latent,lag",
    [
        (1, 1, "x1", 1.0),  # one draft, rejected: text ends at position 1 (the correction)
        (1, 2, "x1", 2.0),  # one draft, accepted + bonus: next draft 2 steps after position 1
        (4, 2, "x2", 1.0),  # rejection at position 2 of 4 drafted
        (3, 4, "x3", 2.0),  # all 3 accepted + bonus (position 4 never drafted)
        (1, 1, "x1", 1.0),  # exit at position 1: nothing sent, the target emits position 1
        (0, 1, "old", 8.0),  # γ = 0: no draft; the anchor stays and the lag grows by one
    ],
)
def test_text_advance_cases(passes, tokens, latent, lag):
    x = jnp.asarray([0.1, 0.2, 0.3, 0.4])
    c = _carry(latent=-1.0, lag=7.0)
    new_latent, new_lag = _text_advance(c, x, jnp.asarray(passes), jnp.asarray(tokens))
    want = {"x1": 0.1, "x2": 0.2, "x3": 0.3, "old": -1.0}[latent]
    assert float(new_latent) == pytest.approx(want) and float(new_lag) == lag


def test_rounds_are_linked_and_hard_positions_are_revisited():
    """StaticSD(1) in text mode: consecutive rounds' acceptances are positively correlated (the
    next draft is one or two text steps away), while in round mode they are not (|corr| below
    4.5/√n; false-failure rate ≈ 7e-6). And the first draft is *harder* on average than the
    stationary law: a rejected draft leaves the next draft one step away (lag 1), an accepted one
    two steps (lag 2), so ``E[x'] = ρ·E[x·1{rej}] + ρ²·E[x·1{acc}] = (ρ − ρ²)·E[x·1{rej}] > 0`` —
    rounds stall at hard positions, as in a real LM. Welch z < −4.5 for the mean acceptance."""
    pol = StaticSD(gamma=1, payload="topp")
    out = {}
    for mode, scen in (("text", SCEN.replace(rho_H=0.9, d=100.0)), ("round", Scenario(d=100.0))):
        exo = sample_exogenous(scen, seed=4, realizations=64, rounds=300)
        acc = np.asarray(rollout(scen, pol, exo).accepted, np.float64)
        a, b = acc[:, :-1].ravel(), acc[:, 1:].ravel()
        out[mode] = (acc.mean(axis=1), np.corrcoef(a, b)[0, 1], a.size)
    (m_t, r_t, n), (m_r, r_r, _) = out["text"], out["round"]
    z = (m_t.mean() - m_r.mean()) / math.sqrt(m_t.var(ddof=1) / m_t.size + m_r.var(ddof=1) / m_r.size)
    assert z < -4.5
    assert r_t > 4.5 / math.sqrt(n)
    assert abs(r_r) < 4.5 / math.sqrt(n)


def test_rollout_equals_simulate_and_chunking_in_text_mode():
    pol = Gelato(V=1.0)
    sim = simulate(SCEN, pol, seed=5, realizations=5, rounds=200)
    tr = rollout(SCEN, pol, sample_exogenous(SCEN, seed=5, realizations=5, rounds=200))
    np.testing.assert_allclose(sim.throughput, np.mean(tr.tokens / tr.latency, axis=1), rtol=1e-12)
    np.testing.assert_allclose(sim.energy, np.mean(tr.energy, axis=1), rtol=1e-12)
    part = simulate(SCEN, pol, seed=5, realizations=5, rounds=200, chunk=2)
    np.testing.assert_array_equal(sim.throughput, part.throughput)


def test_text_mode_is_refused_where_rounds_must_be_iid():
    with pytest.raises(ValueError, match="entropy_process"):
        optimum(SCEN, Gelato())
    with pytest.raises(ValueError, match="entropy_process"):
        simulate(SCEN, Gelato(proxy="exact"), realizations=1, rounds=1)
    with pytest.raises(ValueError, match="entropy_process"):
        Scenario(entropy_process="words")


# ----------------------------------------------------------------------------- after_reject_latent
def _carry_rej(latent, rejected, scen):
    return RoundCarry(0, 0.0, (), jnp.asarray(rejected), jnp.asarray(latent), jnp.asarray(1.0),
                      gamma_table(scen.k_H, jnp.float64), jnp.asarray(rejected))


def test_after_reject_latent_replaces_the_first_step_after_a_rejected_draft_only():
    """``after_reject_latent = (mu, c, sigma)``: after a rejected draft ``x_1 = mu + c·x_a + sigma·ε_1``;
    after a round without a rejected draft (``text_rejected`` False: a bonus token, an exit with
    every sent draft accepted) the AR(1) step; later positions continue by the AR(1) (exact)."""
    lat = (0.3, 0.2, 0.5)
    scen = SCEN.replace(after_reject_latent=lat)
    eps = jnp.asarray(np.random.default_rng(1).standard_normal(SCEN.gamma_max))
    x, H = _text_entropies(scen, _carry_rej(1.5, True, scen), eps)
    assert float(x[0]) == pytest.approx(0.3 + 0.2 * 1.5 + 0.5 * float(eps[0]), rel=1e-12)
    assert float(x[1]) == pytest.approx(RHO * float(x[0]) + math.sqrt(1 - RHO**2) * float(eps[1]), rel=1e-12)
    x_no, _ = _text_entropies(scen, _carry_rej(1.5, False, scen), eps)
    x_ref, _ = _text_entropies(SCEN, _carry_rej(1.5, False, SCEN), eps)
    np.testing.assert_array_equal(np.asarray(x_no), np.asarray(x_ref))
    # without the field a rejection changes nothing in the latent step (the old law)
    x_old, _ = _text_entropies(SCEN, _carry_rej(1.5, True, SCEN), eps)
    np.testing.assert_array_equal(np.asarray(x_old), np.asarray(x_ref))


def test_after_reject_latent_neutral_value_reproduces_the_ar1_process():
    """``(0, rho_H, sqrt(1 − rho_H²))`` is the AR(1) step itself: simulate agrees with ``None`` (to
    rounding: the same formula, computed once with ``rho^1``)."""
    pol = StaticSD(gamma=4)
    a = simulate(SCEN, pol, seed=3, realizations=16, rounds=200)
    b = simulate(SCEN.replace(after_reject_latent=(0.0, RHO, math.sqrt(1 - RHO**2))), pol, seed=3, realizations=16,
                 rounds=200)
    for k in ("accepted", "throughput", "energy"):
        np.testing.assert_allclose(np.asarray(getattr(a, k)), np.asarray(getattr(b, k)), rtol=1e-9)


def test_after_reject_latent_moves_the_first_draft_after_a_rejection():
    """A large ``mu`` with small ``sigma`` makes the first draft after a rejection hard: fewer
    accepted drafts than without (a deterministic-size effect, far beyond the noise at this size)."""
    pol = StaticSD(gamma=4)
    base = simulate(SCEN, pol, seed=0, realizations=64, rounds=200)
    hard = simulate(SCEN.replace(after_reject_latent=(3.0, 0.0, 0.1)), pol, seed=0, realizations=64, rounds=200)
    assert float(np.mean(hard.accepted)) < float(np.mean(base.accepted)) - 0.1


@pytest.mark.parametrize("kwargs,match", [
    (dict(after_reject_latent=(0.1, 0.2, 0.5)), "after_reject_latent applies to entropy_process='text' only"),
    (dict(entropy_process="text", after_reject_latent=(0.1, 0.2)), "after_reject_latent: expected None or three"),
    (dict(entropy_process="text", after_reject_latent=(0.1, 1.5, 0.5)), r"c must be in \[-1, 1\]"),
    (dict(entropy_process="text", after_reject_latent=(0.1, 0.2, 0.0)), r"sigma must be in \(0, 5\]"),
    (dict(entropy_process="text", after_reject_latent=(9.0, 0.2, 0.5)), r"mu must be in \[-5, 5\]"),
    (dict(entropy_process="text", after_reject_latent=(0.1, 0.2, 0.5), after_reject_H_scale=1.1),
     "after_reject_H_scale must be 1 when Scenario.after_reject_latent is set"),
])
def test_after_reject_latent_is_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Scenario(**kwargs)


def test_after_reject_latent_is_not_in_the_fast_kernel():
    """The field exists only with the text process, which the fast kernel refuses."""
    from gelato_jax import kernel

    scen = Scenario(entropy_process="text", rho_H=0.5, after_reject_latent=(0.2, 0.2, 0.6))
    assert not kernel.supports(scen, StaticSD(gamma=4), ar=False)
    assert Scenario.from_dict(scen.to_dict()).after_reject_latent == (0.2, 0.2, 0.6)
