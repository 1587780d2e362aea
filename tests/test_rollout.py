"""Rollout/simulate: per-round invariants, agreement, chunk invariance, no recompilation."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gelato_jax import Exogenous, Scenario, rollout, sample_exogenous, simulate
from gelato_jax import simulator as rollout_mod
from gelato_jax.policies import Gelato, StaticSD

R, T = 8, 400
SCEN = Scenario()


@pytest.fixture(scope="module")
def exo():
    return sample_exogenous(SCEN, seed=11, realizations=R, rounds=T)


POLICIES = [
    Gelato(V=1.0),
    Gelato(V=1.0, exit="none"),
    Gelato(V=0.05, proxy="ewma"),
    Gelato(V=20.0, payload="scalar"),
    StaticSD(gamma=3),
    StaticSD(gamma=5, payload="topp"),
]


def test_exogenous_shapes_and_ranges(exo):
    chex.assert_shape(exo.channel_gain, (R, T))
    chex.assert_shape(exo.energy_arrival, (R, T))
    chex.assert_shape(exo.entropy, (R, T, SCEN.gamma_max))
    chex.assert_shape(exo.uniform, (R, T, SCEN.gamma_max))
    assert np.all(np.asarray(exo.channel_gain) >= SCEN.h_min)
    assert np.all(np.asarray(exo.entropy) >= 0)
    u = np.asarray(exo.uniform)
    assert np.all((u >= 0) & (u < 1))
    np.testing.assert_array_equal(exo.energy_arrival, 0.06)


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: repr(p)[:60])
def test_rollout_per_round_invariants(exo, policy):
    tr = rollout(SCEN, policy, exo)
    chex.assert_tree_all_finite(tr)
    b, L, P, A, N = (np.asarray(x) for x in (tr.budget, tr.sent, tr.passes, tr.accepted, tr.tokens))
    assert np.all((0 <= L) & (L <= b) & (b <= SCEN.gamma_max))
    assert np.all((P == L) | (P == L + 1))
    assert np.all((1 <= N) & (N <= L + 1)) and np.all(N == A + 1)
    Z = np.asarray(tr.queue)
    assert np.all(Z >= 0) and np.all(Z[:, 0] == 0)
    # the queue update is exactly max(Z + E - a, 0)
    np.testing.assert_array_equal(Z[:, 1:], np.maximum(Z[:, :-1] + np.asarray(tr.energy)[:, :-1] - np.asarray(tr.arrival)[:, :-1], 0.0))
    # energy on every path: sum E_t <= sum a_t + Z_T
    E, a = np.asarray(tr.energy), np.asarray(tr.arrival)
    Z_T = np.maximum(Z[:, -1] + E[:, -1] - a[:, -1], 0)
    assert np.all(E.sum(1) <= a.sum(1) + Z_T + 1e-9)
    # accepted = leading run of U < alpha(H) among the sent drafts
    alpha = 1 / (1 + np.exp(-(SCEN.a0 - SCEN.a1 * np.asarray(exo.entropy))))
    ok = np.asarray(exo.uniform) < alpha
    pos = np.arange(SCEN.gamma_max)
    lead = np.cumprod(ok & (pos < L[..., None]), axis=-1).sum(-1)
    np.testing.assert_array_equal(A, lead)
    # outage rounds draft nothing
    out = np.asarray(tr.rate) < SCEN.r_min
    assert np.all(b[out] == 0)


def test_static_sd_always_drafts_gamma_except_in_outage(exo):
    tr = rollout(SCEN, StaticSD(gamma=3), exo)
    out = np.asarray(tr.rate) < SCEN.r_min
    np.testing.assert_array_equal(np.asarray(tr.budget)[~out], 3)
    np.testing.assert_array_equal(np.asarray(tr.sent), np.asarray(tr.budget))


def test_exit_none_sends_the_whole_budget(exo):
    tr = rollout(SCEN, Gelato(V=1.0, exit="none"), exo)
    np.testing.assert_array_equal(tr.sent, tr.budget)
    np.testing.assert_array_equal(tr.passes, tr.budget)


def test_gelato_budget_matches_bruteforce_objective(exo):
    """Recompute U(γ) = V T̂ − Z Ê in numpy from docs/model.md §5 and compare the argmax every round."""
    pol = Gelato(V=0.5, exit="none")
    tr = rollout(SCEN, pol, exo)
    from gelato_jax import tokens

    ab = float(tokens.mean_acceptance(SCEN))
    bb = float(tokens.mean_topp_bits(SCEN))
    g = np.arange(SCEN.gamma_max + 1)
    r = np.asarray(tr.rate)[..., None]
    h = np.asarray(exo.channel_gain)[..., None]
    rdl = 1e6 * np.log2(1 + 1.0 * float(SCEN.g0) * h / (float(SCEN.N0) * 1e6))
    N = (1 - ab ** (g + 1)) / (1 - ab)
    D = g * 0.015 + np.where(g > 0, g * bb / r, 0) + 0.025 + 0.002 * g + 0.02 + 32 / rdl
    E = g * 0.03 + 0.2 * np.where(g > 0, g * bb / r, 0)
    U = pol.V * N / D - np.asarray(tr.queue)[..., None] * E
    U = np.where((g == 0) | (r >= SCEN.r_min), U, -np.inf)
    want = np.argmax(U, axis=-1)
    np.testing.assert_array_equal(np.asarray(tr.budget), want)


@pytest.mark.parametrize("policy", [Gelato(V=1.0), Gelato(V=1.0, proxy="ewma"), StaticSD(gamma=2)], ids=str)
def test_rollout_and_simulate_agree(policy):
    sim = simulate(SCEN, policy, seed=5, realizations=6, rounds=300)
    exo = sample_exogenous(SCEN, seed=5, realizations=6, rounds=300)
    tr = rollout(SCEN, policy, exo)
    np.testing.assert_allclose(sim.throughput, np.mean(tr.tokens / tr.latency, axis=1), rtol=1e-12)
    np.testing.assert_allclose(sim.energy, np.mean(tr.energy, axis=1), rtol=1e-12)
    np.testing.assert_allclose(sim.queue_mean, np.mean(tr.queue, axis=1), rtol=1e-12)
    np.testing.assert_allclose(sim.budget, np.asarray(tr.budget).mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(sim.goodput, np.sum(tr.tokens, 1) / np.sum(tr.latency, 1), rtol=1e-12)
    Z_T = np.maximum(np.asarray(tr.queue)[:, -1] + np.asarray(tr.energy)[:, -1] - 0.06, 0)
    np.testing.assert_allclose(sim.queue_final, Z_T, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "scen",
    [Scenario(), Scenario(channel="gauss_markov", rho=0.9, energy_arrival="exponential", rho_H=0.5)],
    ids=["iid", "correlated"],
)
def test_simulate_chunk_invariance_bit_identical(scen):
    pol = Gelato(V=1.0)
    full = simulate(scen, pol, seed=2, realizations=7, rounds=200)
    for chunk in (1, 3):
        part = simulate(scen, pol, seed=2, realizations=7, rounds=200, chunk=chunk)
        for k, v in full.as_dict().items():
            np.testing.assert_array_equal(v, getattr(part, k), err_msg=f"{k} chunk={chunk}")
    # a realization does not depend on how many others run with it
    one = simulate(scen, pol, seed=2, realizations=1, rounds=200)
    assert one.throughput[0] == full.throughput[0]


def test_v_sweep_does_not_recompile():
    simulate(SCEN, Gelato(V=1.0), seed=0, realizations=4, rounds=50)
    n0 = rollout_mod._simulate_chunk._cache_size()
    for V in (0.1, 3.0, 100.0):
        simulate(SCEN, Gelato(V=V), seed=1, realizations=4, rounds=50)
    assert rollout_mod._simulate_chunk._cache_size() == n0


def test_simulate_float32_finite_and_close_to_float64():
    pol = Gelato(V=1.0)
    r32 = simulate(SCEN, pol, seed=0, realizations=16, rounds=500, dtype=jnp.float32)
    r64 = simulate(SCEN, pol, seed=0, realizations=16, rounds=500, dtype=jnp.float64)
    for v in r32.as_dict().values():
        assert np.all(np.isfinite(v))
    assert r32.throughput.dtype == np.float32
    np.testing.assert_allclose(r32.throughput.mean(), r64.throughput.mean(), rtol=5e-3)


def test_extreme_inputs_stay_finite():
    scen = Scenario(d=5000.0, r_min=0.0, W=1e3, energy_arrival="uniform")  # tiny rates, no outage rule
    res = simulate(scen, Gelato(V=1e6), seed=0, realizations=4, rounds=100, dtype=jnp.float32)
    for v in res.as_dict().values():
        assert np.all(np.isfinite(v))
    res = simulate(SCEN, Gelato(V=0.0), seed=0, realizations=4, rounds=100)
    np.testing.assert_array_equal(res.energy, 0.0)  # V = 0: γ = 0 always, no energy


def test_trace_channel_replay():
    scen = Scenario(channel="trace", channel_trace=(0.5, 1.0, 2.0))
    exo = sample_exogenous(scen, seed=0, realizations=3, rounds=7)
    h = np.asarray(exo.channel_gain)
    for row in h:
        start = [0.5, 1.0, 2.0].index(row[0])
        np.testing.assert_array_equal(row, np.array([0.5, 1.0, 2.0])[(start + np.arange(7)) % 3])


def test_rollout_input_validation(exo):
    with pytest.raises(ValueError, match="entropy"):
        rollout(SCEN, Gelato(), exo._replace(entropy=exo.entropy[..., :3]))
    with pytest.raises(ValueError, match="StaticSD.gamma"):
        rollout(SCEN, StaticSD(gamma=11), exo)
    with pytest.raises(ValueError, match="realizations"):
        simulate(SCEN, Gelato(), realizations=0, rounds=10)
    with pytest.raises(ValueError, match="policy"):
        simulate(SCEN, "gelato", realizations=1, rounds=10)


@pytest.mark.parametrize(
    "scen,pol,needle",
    [
        (Scenario(kappa=1e30), Gelato(), "draft pass energy"),
        (Scenario(h_min=1e-300), Gelato(), "Scenario.h_min"),
        (Scenario(V_vocab=1e300), Gelato(), "Scenario.V_vocab"),
        (Scenario(), Gelato(V=1e308), "Gelato.V"),
    ],
)
def test_values_not_representable_in_float32_are_refused(scen, pol, needle):
    with pytest.raises(ValueError, match=needle):
        simulate(scen, pol, realizations=2, rounds=5, dtype=jnp.float32)
    # the same values are fine in float64
    res = simulate(scen, pol, realizations=2, rounds=5, dtype=jnp.float64)
    assert res.throughput.shape == (2,)


def test_shared_precompute_only_when_independent_of_the_swept_field():
    import dataclasses as dc

    from gelato_jax import engine

    # Gelato's precompute does not read V: one aux for every V, equal to the policy's own
    shared = engine.shared_precompute(SCEN, Gelato(V=1.0), "V", jnp.asarray([0.1, 1.0, 10.0]))
    own = engine.precompute(SCEN, Gelato(V=1.0))
    assert shared is not None
    for a, b in zip(jax.tree.leaves(shared), jax.tree.leaves(own)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    @dc.dataclass(frozen=True)
    class ReadsV:  # a policy whose precompute depends on the swept field
        V: float = 1.0

        def replace(self, **kw):
            return dc.replace(self, **kw)

        def precompute(self, scenario):
            return jnp.asarray(self.V) * 2.0

    assert engine.shared_precompute(SCEN, ReadsV(), "V", jnp.asarray([0.1, 1.0])) is None
