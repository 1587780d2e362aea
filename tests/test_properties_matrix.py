"""The larger property matrix (``pytest -m slow``): static configurations the default suite keeps
fixed (``gamma_max``, channel model, energy arrivals, AR(1) entropies), draws from
``sample_exogenous`` instead of synthetic arrays, and invariance to the device count with 4 fake
CPU devices in a subprocess (issue 9, invariants 1, 3–6, 9)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gelato_jax import Scenario, rollout, sample_exogenous
from gelato_jax.policies import Gelato

from gelato_jax.testing.strategies import log_uniform
from test_properties_rollout import check_bruteforce_budgets, check_trajectory  # noqa: E402

pytestmark = pytest.mark.slow

# a covering subset of gamma_max × channel × arrivals × entropy correlation (each compiles once)
MATRIX = [
    dict(gamma_max=1, channel="rayleigh", energy_arrival="constant", rho_H=0.0),
    dict(gamma_max=4, channel="gauss_markov", energy_arrival="exponential", rho_H=0.6),
    dict(gamma_max=32, channel="trace", energy_arrival="uniform", rho_H=0.0),
    dict(gamma_max=4, channel="trace", energy_arrival="constant", rho_H=0.9),
    dict(gamma_max=32, channel="rayleigh", energy_arrival="exponential", rho_H=0.3),
    dict(gamma_max=1, channel="gauss_markov", energy_arrival="uniform", rho_H=0.6),
]
TRACE = (0.05, 0.3, 1.0, 2.5, 1e-9, 0.8, 4.0)


@pytest.mark.parametrize("static", MATRIX, ids=lambda c: "-".join(str(v) for v in c.values()))
@pytest.mark.parametrize("exit", ["bucket", "none"])
@settings(max_examples=max(10, settings.default.max_examples))
@given(
    seed=st.integers(0, 2**31 - 1),
    V=st.one_of(log_uniform(1e-3, 1e3), st.just(0.0)),
    E_bar=log_uniform(1e-3, 0.3),
    d=log_uniform(50.0, 1500.0),
    rho=st.floats(0.0, 0.99),
    k_H=log_uniform(0.2, 3.0),
    H_th=st.floats(0.0, 3.0),
    Theta_th=st.floats(0.0, 3.0),
)
def test_property_matrix(static, exit, seed, V, E_bar, d, rho, k_H, H_th, Theta_th):
    scen = Scenario(
        **static,
        channel_trace=TRACE if static["channel"] == "trace" else None,
        rho=rho,
        E_bar=E_bar,
        d=d,
        k_H=k_H,
    )
    pol = Gelato(V=V, exit=exit, H_th=H_th, Theta_th=Theta_th)
    exo = sample_exogenous(scen, seed=seed, realizations=4, rounds=60)
    tr = rollout(scen, pol, exo)
    check_trajectory(scen, "topp", exo, tr)
    check_bruteforce_budgets(scen, "topp", V, exo, tr)
    if exit == "none":
        np.testing.assert_array_equal(tr.sent, tr.budget)


_DEVICES = textwrap.dedent(
    """
    import jax
    jax.config.update("jax_num_cpu_devices", 4)
    jax.config.update("jax_enable_x64", True)
    import numpy as np
    from gelato_jax import Scenario, simulate
    from gelato_jax.policies import Gelato
    from gelato_jax.sweep import sweep, METRICS
    assert len(jax.devices()) == 4
    rng = np.random.default_rng(2024)
    for trial in range(3):
        scen = Scenario(d=float(10 ** rng.uniform(1.7, 3.2)), k_H=float(10 ** rng.uniform(-0.7, 0.5)),
                        r_min=float(rng.choice([0.0, 1e5])), energy_arrival=str(rng.choice(["constant", "exponential"])))
        grid = {"V": [0.0, float(10 ** rng.uniform(-2, 3))], "E_bar": [float(10 ** rng.uniform(-3, -0.5))]}
        seed = int(rng.integers(0, 2**31 - 1))
        runs = {(c, d): sweep(scen, Gelato(), grid, seed=seed, realizations=7, rounds=30, chunk=c, devices=d,
                              progress=False) for c, d in [(7, 1), (7, 4), (3, 4), (2, 3)]}
        base = runs[(7, 1)]
        for key, r in runs.items():
            for k in METRICS:
                assert np.array_equal(r.metrics[k], base.metrics[k]), (trial, key, k)
                assert np.all(np.isfinite(r.metrics[k])), (trial, key, k)
        # the unsharded simulate() gives the same integer counters at every grid point
        for i, V in enumerate(grid["V"]):
            ref = simulate(scen.replace(E_bar=grid["E_bar"][0]), Gelato(V=V), seed=seed, realizations=7, rounds=30)
            for k in ("budget", "sent", "passes", "accepted", "tokens"):
                assert np.array_equal(base.metrics[k][i, 0], getattr(ref, k)), (trial, V, k)
    print("DEVICES-OK")
    """
)


def test_sweep_results_do_not_depend_on_device_count_4_fake_devices():
    """Invariant 9: the sharded sweep gives bit-identical results on 1, 3 and 4 (fake CPU)
    devices and any chunk size, for generated scenarios; counters equal unsharded ``simulate``."""
    env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", _DEVICES], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "DEVICES-OK" in proc.stdout
