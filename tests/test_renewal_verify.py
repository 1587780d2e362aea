"""Configuration ``f-time-average`` of ``gelato verify`` (proofs_check.time_average)."""

import numpy as np
import pytest

from gelato_jax import Scenario
from gelato_jax.policies import Gelato
from proofs_check import run as vrun
from proofs_check import time_average as vta


def test_f_is_derived_from_the_user_scenario_and_others_stay_per_round():
    user = Scenario(objective="time_average", P_bar=0.4, delta=0.14, W=2e6)
    cfgs = {c.name: c for c in vrun.derive_configs(user, Gelato(H_th=1.2))}
    assert "f-time-average" in cfgs and vrun.resolve_only("f") == ("f-time-average",)
    s, p = vrun._policy_for(cfgs["f-time-average"], [])
    assert (s.objective, float(s.P_bar), float(s.delta), float(s.W)) == ("time_average", 0.4, 0.14, 2e6)
    assert (p.exit, p.proxy, p.ratio, float(p.H_th)) == ("none", "mean", "known", 1.2)
    notes = []
    s_c, _ = vrun._policy_for(cfgs["c-gelato-paper"], notes)
    assert s_c.objective == "per_round" and notes
    # rounds that are not i.i.d.: (f) does not apply either
    na = {c.name: c for c in vrun.derive_configs(Scenario(entropy_process="text"))}
    assert na["f-time-average"].not_applicable


def test_numpy_theta_is_the_root():
    """``ratio_theta_numpy`` (the verifier's independent θ(Z)) solves Φ(θ) = 0 on a small table."""
    rng = np.random.default_rng(0)
    K, G = 5, 4
    N = np.cumsum(rng.uniform(0.5, 1, (1, G)), 1).repeat(K, 0)
    D = 0.05 + 0.02 * np.arange(G) + rng.uniform(0, 0.01, (K, G))
    E = 0.03 * np.arange(G) * rng.uniform(0.5, 1.5, (K, G))
    w = np.full(K, 1 / K)
    allowed = np.ones((K, G), bool)
    Z = np.array([0.0, 3.0, 30.0])
    th = vta.ratio_theta_numpy(2.0, Z, 0.5, N, D, E, allowed, w)
    for z, t in zip(Z, th):
        phi = w @ (2.0 * N - z * (E - 0.5 * D) - t * D).max(axis=1)
        assert abs(phi) <= 1e-12 * (2.0 * N.max() + z * E.max() + abs(t) * D.max())


@pytest.mark.slow
def test_f_time_average_tiny_run_passes():
    """A tiny run of the whole configuration: every theorem claim passes (none FAILs)."""
    sizes = vrun.Sizes(
        realizations=4, chunk=4, lo=-1.0, hi=1.0, n_coarse=3, n_fine=2, settle_factor=5.0, min_rounds=200,
        rollout_realizations=2, rollout_rounds_cap=200, mc_samples=2000, lossless_samples=2000, quantiles=256,
        scaling_points=3, scaling_decades=(1.0, 2.0), scaling_rounds=400, scaling_realizations=4,
        tightness_quantiles=2048)
    cfg = {c.name: c for c in vrun.derive_configs()}["f-time-average"]
    res = vrun.run_config(cfg, sizes)
    assert not [v.claim for v in res.verdicts if v.status == "FAIL" and v.category == "theorem"]
    assert res.constants["T_star"] > 0 and len(res.data["V"]) >= 3
