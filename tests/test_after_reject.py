"""The law of the first drafted position after a rejected round (Scenario.after_reject_H_scale,
after_reject_a0_shift): sampling, closed forms, mean proxy, refusals. The defaults must reproduce
docs/model.md §4 bit for bit; other values must give the laws the docstrings state."""

import numpy as np
import pytest
import sympy as sp
from scipy import integrate, special, stats

from gelato_jax import Scenario, costs, sample_exogenous, tokens
from gelato_jax.policies import StaticSD

from theory import closed_forms as cf

SCEN = Scenario(after_reject_H_scale=1.5, after_reject_a0_shift=-0.7)


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
def test_mean_acceptance_after_reject_against_quad(scale, shift):
    s = Scenario(after_reject_H_scale=scale, after_reject_a0_shift=shift)
    f = lambda h: special.expit(s.a0 + shift - s.a1 * h) * stats.gamma.pdf(h, s.k_H, scale=s.theta_H * scale)
    want = sum(integrate.quad(f, lo, hi, epsabs=0, epsrel=1e-12, limit=400)[0]
               for lo, hi in [(0, 1e-6), (1e-6, 1.0), (1.0, 20.0), (20.0, np.inf)])
    assert float(tokens.mean_acceptance_after_reject(s)) == pytest.approx(want, rel=1e-9)


def test_defaults_are_bit_identical():
    d = Scenario()
    assert float(tokens.mean_acceptance_after_reject(d)) == float(tokens.mean_acceptance(d))
    assert float(tokens.mean_topp_bits_after_reject(d)) == float(tokens.mean_topp_bits(d))
    H = np.linspace(0.0, 6.0, 10)[None, :]
    for flag in (False, True):
        np.testing.assert_array_equal(np.asarray(tokens.acceptance_by_position(d, H, np.array([flag]))),
                                      np.asarray(tokens.acceptance_prob(d, H)))
        np.testing.assert_array_equal(np.asarray(tokens.after_reject_entropy(d, H, np.array([flag]))), H)
    ab, bb = tokens.mean_acceptance(d), tokens.mean_topp_bits(d)
    plain = costs.proxy_costs(d, "scalar", ab, bb, 2e6, 3e6)
    first = costs.proxy_costs(d, "scalar", ab, bb, 2e6, 3e6, alpha_bar_1=ab, b_bar_1=bb)
    for x, y in zip(plain, first):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_exogenous_entropies_are_base_law_and_rescaled_after_rejection():
    """``sample_exogenous`` draws the base law for every position; ``after_reject_entropy`` scales
    position 1 only when the round follows a rejection. KS at 4096 draws, p > 1e-4 (the KS
    p-value is uniform under the null: false-failure rate 1e-4)."""
    exo = sample_exogenous(SCEN, seed=11, realizations=64, rounds=64)
    H = np.asarray(exo.entropy).reshape(-1, SCEN.gamma_max)
    assert stats.kstest(H[:, 0], stats.gamma(SCEN.k_H, scale=SCEN.theta_H).cdf).pvalue > 1e-4
    after = np.asarray(tokens.after_reject_entropy(SCEN, H, np.ones(H.shape[0], bool)))
    np.testing.assert_array_equal(after[:, 1:], H[:, 1:])
    np.testing.assert_allclose(after[:, 0], H[:, 0] * SCEN.after_reject_H_scale, rtol=1e-15)
    same = np.asarray(tokens.after_reject_entropy(SCEN, H, np.zeros(H.shape[0], bool)))
    np.testing.assert_array_equal(same, H)
    a_rej = np.asarray(tokens.acceptance_by_position(SCEN, H[:4], np.ones(4, bool)))
    a_ok = np.asarray(tokens.acceptance_by_position(SCEN, H[:4], np.zeros(4, bool)))
    np.testing.assert_array_equal(a_rej[:, 1:], a_ok[:, 1:])
    assert np.all(a_rej[:, 0] < a_ok[:, 0])  # negative shift


def _flags(tr):
    """Per-round flag: the previous round of the same realization had a rejection (False at t=0)."""
    rej = np.asarray(tr.accepted) < np.asarray(tr.sent)
    return np.concatenate([np.zeros((rej.shape[0], 1), bool), rej[:, :-1]], axis=1)


@pytest.mark.parametrize("g", [1, 4])
def test_mean_proxy_tokens_match_monte_carlo_given_the_flag(g):
    """Without an exit, ``N̂(γ) = 1 + ᾱ_1 Σ_{j<γ} ᾱ^j`` with ``ᾱ_1 = ᾱ_r`` after a rejection and
    ``ᾱ`` otherwise is exactly ``E[N | flag]``. Given the flag a round's draws are independent of
    the past, so the rounds with each flag are i.i.d. samples: agreement within 4.5 standard
    errors (two-sided false-failure rate ≈ 7e-6 per comparison). The i.i.d. form is measurably
    wrong after a rejection (the test can fail)."""
    from gelato_jax import rollout

    scen = SCEN.replace(d=100.0)  # no outage: every round drafts g tokens
    exo = sample_exogenous(scen, seed=3, realizations=128, rounds=200)
    tr = rollout(scen, StaticSD(gamma=g, payload="topp"), exo)
    flag, n = _flags(tr), np.asarray(tr.tokens, np.float64)
    ab, ar = tokens.mean_acceptance(scen), tokens.mean_acceptance_after_reject(scen)
    bb, br = tokens.mean_topp_bits(scen), tokens.mean_topp_bits_after_reject(scen)
    want = {True: costs.proxy_costs(scen, "topp", ab, bb, 2e6, 3e6, alpha_bar_1=ar, b_bar_1=br).tokens[g],
            False: costs.proxy_costs(scen, "topp", ab, bb, 2e6, 3e6).tokens[g]}
    for f in (True, False):
        x = n[flag == f]
        se = x.std(ddof=1) / np.sqrt(x.size)
        assert abs(x.mean() - float(want[f])) < 4.5 * se, (f, x.mean(), float(want[f]), se)
    x = n[flag]
    assert abs(x.mean() - float(want[False])) > 4.5 * x.std(ddof=1) / np.sqrt(x.size)


def test_theory_entry_points_refuse_dependent_rounds():
    from gelato_jax import optimum, simulate as sim
    from gelato_jax.policies import Gelato

    with pytest.raises(ValueError, match="after_reject_H_scale"):
        optimum(SCEN, Gelato())
    with pytest.raises(ValueError, match="i.i.d. rounds"):
        sim(SCEN, Gelato(proxy="exact"), realizations=2, rounds=2)
    # the defaults are i.i.d. rounds
    Scenario().check_iid_rounds("test")
