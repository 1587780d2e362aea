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

import math

import chex
import jax.numpy as jnp
import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gelato_jax import Exogenous, Scenario, rollout, simulate
from gelato_jax.policies import Gelato, StaticSD

R, T, GMAX = 2, 40, 10


def log_uniform(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(math.log10(lo), math.log10(hi)).map(lambda x: float(min(max(10.0**x, lo), hi)))


def snr_at_clamp(s: Scenario) -> float:
    g0 = 10.0 ** (-(128.1 + 37.6 * math.log10(s.d / 1000.0)) / 10.0)
    n0 = 10.0 ** ((s.N0_dBm_Hz + s.NF_dB - 30.0) / 10.0)
    return min(s.P_tx / (n0 * s.W), s.P_edge / (n0 * s.W_dl)) * g0 * s.h_min


@st.composite
def extreme_scenarios(draw, *, float32: bool) -> Scenario:
    big = 1e12 if float32 else 1e30
    s = Scenario(
        W=draw(log_uniform(1e2, 1e10)),
        W_dl=draw(log_uniform(1e2, 1e10)),
        P_tx=draw(log_uniform(1e-6, 1e2)),
        P_edge=draw(log_uniform(1e-6, 1e2)),
        d=draw(log_uniform(1.0, 1e6)),
        h_min=draw(log_uniform(1e-30 if float32 else 1e-200, 1.0)),
        r_min=draw(st.one_of(st.just(0.0), log_uniform(1e-3, 1e9))),
        c_d=draw(log_uniform(1.0, 1e12)),
        f=draw(log_uniform(1e3, 1e11)),
        kappa=draw(log_uniform(1e-35, 1e-20)),
        t_v0=draw(st.one_of(st.just(0.0), log_uniform(1e-9, 10.0))),
        t_v1=draw(st.one_of(st.just(0.0), log_uniform(1e-9, 10.0))),
        delta=draw(log_uniform(1e-6, 10.0)),
        V_vocab=draw(log_uniform(1.0, big)),
        b_id=draw(log_uniform(1e-3, 1e3)),
        b_prob=draw(log_uniform(1e-3, 1e3)),
        b_dl=draw(st.one_of(st.just(0.0), log_uniform(1e-3, 1e9))),
        c_p=draw(log_uniform(1e-6, 1e6)),
        k_H=draw(log_uniform(0.05, 1e3)),
        theta_H=draw(log_uniform(1e-4, 1e4)),
        a0=draw(st.floats(-1e3, 1e3)),
        a1=draw(st.floats(0.0, 1e3)),
        E_bar=draw(log_uniform(1e-30, 1e6)),
    )
    assume(snr_at_clamp(s) > (1e-30 if float32 else 1e-280))
    return s


@st.composite
def extreme_exogenous(draw) -> Exogenous:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    h = rng.exponential(1.0, (R, T)) * 10.0 ** draw(st.floats(-300.0, 3.0))  # clamped to h_min
    a = rng.exponential(1.0, (R, T)) * 10.0 ** draw(st.floats(-30.0, 6.0))
    H = rng.gamma(0.8, 10.0 ** draw(st.floats(-4.0, 4.0)), (R, T, GMAX))
    return Exogenous(h, a, H, rng.uniform(size=(R, T, GMAX)))


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
