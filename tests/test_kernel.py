"""``gelato_jax.kernel`` (the round with realizations on the minor axis) against the per-realization
path (``engine.realization_sums`` under ``vmap``): the same sums (integers exactly, floats to the last
bits of XLA's transcendental functions) for every registered
policy and the proxies, payloads, exits and arrival laws the kernel handles; ``supports`` refuses
the settings it does not reproduce (then ``simulate`` falls back to the per-realization path)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gelato_jax import Scenario, engine, kernel, simulate
from gelato_jax import simulator as sm
from gelato_jax.policies import DSSD, UHLM, AdaEDL, ExitOnly, Gelato, GreedyThroughput, LyapunovOnly, StaticSD

R, T = 12, 60


def _both(scenario, policy, dtype=None, seed=4):
    scenario, policy, dtype = engine.prepare(scenario, policy, dtype)
    assert kernel.supports(scenario, policy, ar=False)
    aux = engine.precompute(scenario, policy)
    root = jax.random.key(seed)
    idx = jnp.arange(R, dtype=jnp.uint32)
    flat, carry = jax.jit(lambda: kernel.chunk_sums(scenario, policy, root, idx, rounds=T, dtype=dtype, aux=aux,
                                                    metrics=engine.simulate_metrics))()
    per, carry_r = jax.jit(jax.vmap(lambda i: engine.realization_sums(scenario, policy, root, i, rounds=T, ar=False,
                                                                      dtype=dtype, aux=aux)))(idx)
    return flat, carry, per, carry_r


# sums of integer-valued metrics: equal exactly. Float metrics: the kernel applies the same operations
# in the same order, but XLA evaluates transcendental functions (log1p of the rates, exp, the
# sigmoid) with different vector widths in the two programs, which can differ in the last bit
# (measured: 1 ulp of one round's energy for Gelato(exit="none") in float64, 3e-16 relative in a
# time average); every other case here is bit-identical.
_INTEGER = ("budget", "sent", "passes", "accepted", "tokens", "outage", "unverified", "mismatch")


def _assert_equal(flat, carry, per, carry_r, rtol=1e-13):
    assert set(flat) == set(per)
    for k in per:
        if k in _INTEGER:
            np.testing.assert_array_equal(np.asarray(flat[k]), np.asarray(per[k]), err_msg=k)
        else:
            np.testing.assert_allclose(np.asarray(flat[k]), np.asarray(per[k]), rtol=rtol, atol=0, err_msg=k)
    np.testing.assert_allclose(np.asarray(carry.queue), np.asarray(carry_r.queue), rtol=rtol, atol=1e-15)
    np.testing.assert_array_equal(np.asarray(carry.rejected), np.asarray(carry_r.rejected))
    for a, b in zip(jax.tree.leaves(carry.policy_state), jax.tree.leaves(carry_r.policy_state)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol)


# the default suite covers each branch of the kernel (GELATO's own DPP search on the mean proxy, a
# vmapped choose_budget (exact proxy), a constant budget with the full payload, the skip hook);
# the other variants run under ``-m slow``
_slow = pytest.mark.slow
POLICIES = [
    Gelato(V=1.0),
    pytest.param(Gelato(V=1.0, payload="scalar", exit="none"), marks=_slow),
    pytest.param(Gelato(V=1.0, proxy="ewma"), marks=_slow),
    Gelato(V=1.0, proxy="exact"),
    pytest.param(Gelato(V=1.0, exit="marginal", payload="full"), marks=_slow),
    StaticSD(gamma=3),
    pytest.param(DSSD(), marks=_slow),
    pytest.param(AdaEDL(), marks=_slow),
    UHLM(),
    pytest.param(GreedyThroughput(), marks=_slow),
    pytest.param(LyapunovOnly(), marks=_slow),
    pytest.param(ExitOnly(), marks=_slow),
]


def _id(p):
    return f"{type(p).__name__}-{getattr(p, 'proxy', '')}-{getattr(p, 'exit', '')}-{p.payload}"


@pytest.mark.parametrize("policy", POLICIES, ids=_id)
def test_kernel_equals_per_realization_path_float64(policy):
    # a scenario where the queue, outages and both exits matter: low budget, narrow band
    _assert_equal(*_both(Scenario(E_bar=0.04, W=5e5, r_min=2e5), policy))


@pytest.mark.parametrize("arrival", ["constant", pytest.param("exponential", marks=_slow),
                                     pytest.param("uniform", marks=_slow)])
def test_kernel_equals_per_realization_path_float32(arrival):
    _assert_equal(*_both(Scenario(energy_arrival=arrival), Gelato(V=0.5), dtype=jnp.float32), rtol=2e-6)


def test_kernel_under_vmap_over_V_equals_per_realization_path():
    """As in the V sweeps: the kernel vmapped over the policy leaf ``V`` (common random numbers)."""
    scen, pol, dt = engine.prepare(Scenario(), Gelato(), None)
    aux = engine.precompute(scen, pol)
    root = jax.random.key(1)
    idx = jnp.arange(R, dtype=jnp.uint32)
    Vs = jnp.asarray([0.01, 0.3, 5.0])
    flat = jax.jit(jax.vmap(lambda V: sm.simulate_chunk(scen, pol.replace(V=V), root, idx, rounds=T, ar=False,
                                                         dtype=dt, aux=aux)))(Vs)
    per = jax.jit(jax.vmap(lambda V: jax.vmap(lambda i: sm.simulate_realization(
        scen, pol.replace(V=V), root, i, rounds=T, ar=False, dtype=dt, aux=aux))(idx)))(Vs)
    for k in per:
        np.testing.assert_allclose(np.asarray(flat[k]), np.asarray(per[k]), rtol=1e-13, err_msg=k)
    assert len(np.unique(np.asarray(flat["budget"]).mean(axis=1))) >= 2  # V matters


@pytest.mark.parametrize("policy", [Gelato(V=1.0), pytest.param(Gelato(V=1.0, proxy="ewma"), marks=_slow),
                                    pytest.param(AdaEDL(), marks=_slow)], ids=_id)
def test_kernel_equals_per_realization_path_after_reject(policy):
    """The round after a rejection has its own law (first position's entropy scale and acceptance
    intercept; the mean proxy's ᾱ_1, b̄_1)."""
    _assert_equal(*_both(Scenario(after_reject_H_scale=2.0, after_reject_a0_shift=-0.7), policy))


@pytest.mark.parametrize("scenario", [
    Scenario(channel="gauss_markov", rho=0.9),
    Scenario(rho_H=0.5),
    Scenario(entropy_process="text", rho_H=0.5),
    Scenario(rng="threefry"),
    Scenario(objective="time_average", P_bar=0.5),
], ids=["gauss_markov", "ar", "text", "threefry", "time_average"])
def test_supports_refuses_what_it_does_not_reproduce(scenario):
    ar = sm._entropy_ar(scenario)
    assert not kernel.supports(scenario, Gelato(), ar=ar)


def test_simulate_runs_the_kernel_inside_jit(monkeypatch):
    """The choice depends on static fields only, so ``simulate`` (scenario and policy traced as
    arguments of the compiled chunk) does run the kernel."""
    calls = []
    real = kernel.chunk_sums
    monkeypatch.setattr(kernel, "chunk_sums", lambda *a, **k: calls.append(1) or real(*a, **k))
    simulate(Scenario(after_reject_H_scale=1.5), Gelato(V=0.7), seed=1, realizations=3, rounds=20)
    assert calls


def test_simulate_falls_back_where_unsupported():
    """A scenario the kernel refuses still simulates (per-realization path), chunk-invariant."""
    scen = Scenario(channel="gauss_markov", rho=0.8)
    a = simulate(scen, Gelato(V=1.0), seed=3, realizations=5, rounds=80)
    b = simulate(scen, Gelato(V=1.0), seed=3, realizations=5, rounds=80, chunk=2)
    np.testing.assert_array_equal(a.throughput, b.throughput)
    assert np.all(np.isfinite(a.throughput))


def test_kernel_with_custom_metrics_and_warm_start():
    """The Lagrangian sweep's metrics (they evaluate the policy's proxy per realization, so the kernel
    calls them under ``vmap``) from a warm-started queue: the same sums as the per-realization path."""
    from proofs_check.sweep import _lagrangian_metrics

    scen, pol, dt = engine.prepare(Scenario(), Gelato(V=2.0), None)
    aux = engine.precompute(scen, pol)
    root = jax.random.key(9)
    idx = jnp.arange(R, dtype=jnp.uint32)
    metrics = _lagrangian_metrics(pol, aux, jnp.asarray(40.0), jnp.asarray(20))
    z0 = jnp.asarray(3.0)
    flat, carry = jax.jit(lambda: kernel.chunk_sums(scen, pol, root, idx, rounds=T, dtype=dt, aux=aux, metrics=metrics,
                                                    queue0=z0))()
    per, carry_r = jax.jit(jax.vmap(lambda i: engine.realization_sums(scen, pol, root, i, rounds=T, ar=False, dtype=dt,
                                                                      metrics=metrics, queue0=z0, aux=aux)))(idx)
    _assert_equal(flat, carry, per, carry_r)
    assert float(np.min(np.asarray(flat["queue_burn"]))) > 0  # the warm start is seen at the window start
