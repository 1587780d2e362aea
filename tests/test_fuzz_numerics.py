"""Numerical hardening (issue 9): extreme but valid inputs never produce NaN or inf.

Scenarios are drawn over many decades (tiny and huge rates, bandwidths, powers, distances, draft
costs, vocabularies, entropies; ``V`` up to 1e300; tiny energy budgets, so the queue ``Z`` grows
large) and the trajectories are checked with ``chex.assert_tree_all_finite``.

Domain: every value must be representable in the simulation dtype, and so must the rates: the
SNR at the fading clamp, ``P_tx g0 h_min / (N0 W)``, is kept above 1e-280 (float64) or 1e-30
(float32); below that the rate underflows to exactly 0 and a round that must send bits takes
infinite time. Valid scenarios outside the float32 range (e.g. ``h_min = 1e-300``,
``kappa = 1e30``, ``V = 1e308`` cast to float32) are listed in the issue-9 report: the simulator
casts them to inf/0 without an error.
"""

from __future__ import annotations

import chex
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gelato_jax import rollout, simulate
from gelato_jax.policies import Gelato, StaticSD
from gelato_jax.testing import strategies as gst

R, T, GMAX = 2, 40, 10


# strategies: gelato_jax.testing.strategies (one home)
log_uniform = gst.log_uniform
extreme_scenarios = gst.extreme_scenarios


def extreme_exogenous():
    return gst.extreme_exogenous(R=R, T=T, gamma_max=GMAX)


big_V = st.one_of(log_uniform(1e-300, 1e300), st.just(0.0), st.just(1e308))


@given(data=st.data(), scen=extreme_scenarios(float32=False), V=big_V, exit=st.sampled_from(["bucket", "none"]))
def test_extreme_float64_rollouts_are_finite(data, scen, V, exit):
    exo = data.draw(extreme_exogenous())
    tr = rollout(scen, Gelato(V=V, exit=exit, H_th=1.5, Theta_th=1.0), exo)
    chex.assert_tree_all_finite(tr)
    Z, E = np.asarray(tr.queue), np.asarray(tr.energy)
    assert np.all(Z >= 0) and np.all(E >= 0) and np.all(np.asarray(tr.latency) > 0)
    b = np.asarray(tr.budget)
    assert np.all((0 <= b) & (b <= GMAX))


@given(data=st.data(), scen=extreme_scenarios(float32=False), gamma=st.integers(0, GMAX))
def test_extreme_float64_static_rollouts_are_finite(data, scen, gamma):
    exo = data.draw(extreme_exogenous())
    chex.assert_tree_all_finite(rollout(scen, StaticSD(gamma=gamma, payload="topp"), exo))


@settings(max_examples=max(4, settings.default.max_examples // 3))
@given(
    scen=extreme_scenarios(float32=True),
    V=st.one_of(log_uniform(1e-30, 1e30), st.just(0.0)),
    seed=st.integers(0, 2**31 - 1),
)
def test_extreme_float32_simulations_are_finite(scen, V, seed):
    res = simulate(scen, Gelato(V=V), seed=seed, realizations=R, rounds=T, dtype=jnp.float32)
    chex.assert_tree_all_finite(res.as_dict())
    assert res.throughput.dtype == np.float32 and np.all(res.throughput > 0)
