"""``gelato_jax.xla_cpu`` (the XLA:CPU flags of the ``gelato`` command) and ``simulate`` over
several CPU devices (``engine.over_devices``): results bit-identical for any device count."""

import os
import subprocess
import sys
import textwrap

import pytest

from gelato_jax import xla_cpu


def _python(code: str, **env_extra) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", xla_cpu.ENV_DEVICES, xla_cpu.ENV_SWITCH)}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          timeout=600)


_PROBE = """
    import os
    from gelato_jax import xla_cpu
    added = xla_cpu.configure()
    import jax
    print("ADDED", added)
    print("FLAGS", os.environ.get("XLA_FLAGS", ""))
    print("DEVICES", len(jax.devices("cpu")))
"""


def _lines(proc):
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {ln.split(" ", 1)[0]: ln.split(" ", 1)[1] for ln in proc.stdout.splitlines() if " " in ln}


def test_configure_adds_the_device_count_before_jax_starts():
    out = _lines(_python(_PROBE, GELATO_CPU_DEVICES="3"))
    assert out["DEVICES"] == "3"
    assert "--xla_force_host_platform_device_count=3" in out["FLAGS"]
    assert ("--xla_cpu_prefer_vector_width=512" in out["FLAGS"]) == xla_cpu.has_avx512()


def test_configure_keeps_the_users_flags_and_can_be_switched_off():
    out = _lines(_python(_PROBE, XLA_FLAGS="--xla_force_host_platform_device_count=1 --xla_cpu_prefer_vector_width=256"))
    assert out["DEVICES"] == "1" and out["ADDED"] == "[]"
    assert out["FLAGS"] == "--xla_force_host_platform_device_count=1 --xla_cpu_prefer_vector_width=256"
    out = _lines(_python(_PROBE, GELATO_XLA_CPU="0", GELATO_CPU_DEVICES="3"))
    assert out["ADDED"] == "[]" and out["DEVICES"] == "1" and out["FLAGS"] == ""


def test_configure_after_jax_started_raises_or_does_nothing():
    import jax.numpy as jnp

    jnp.zeros(1).block_until_ready()  # the backend is running in this (test) process
    before = os.environ.get("XLA_FLAGS")
    with pytest.raises(RuntimeError, match="before JAX's first computation"):
        xla_cpu.configure()
    assert xla_cpu.configure(strict=False) == []
    assert os.environ.get("XLA_FLAGS") == before


def test_bad_device_count_is_a_one_line_error():
    with pytest.raises(ValueError, match="positive integer"):
        xla_cpu.recommended_flags(0)
    proc = subprocess.run([sys.executable, "-m", "gelato_jax", "simulate"], capture_output=True, text=True,
                          env=dict(os.environ, GELATO_CPU_DEVICES="two"), timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "GELATO_CPU_DEVICES must be a positive integer" in proc.stderr


def test_simulate_refuses_more_devices_than_visible():
    from gelato_jax import Gelato, Scenario, simulate

    with pytest.raises(ValueError, match="devices must be <="):
        simulate(Scenario(), Gelato(), realizations=4, rounds=3, devices=64)


_DEVICES = """
    import jax
    jax.config.update("jax_num_cpu_devices", 3)
    jax.config.update("jax_enable_x64", True)
    import numpy as np
    from gelato_jax import Scenario, simulate, Gelato, StaticSD
    assert len(jax.devices()) == 3
    CASES
    for scen, pol, dt, configs in cases:
        runs = [simulate(scen, pol, seed=2, realizations=7, rounds=60, dtype=dt, chunk=c, devices=d) for c, d in configs]
        for r in runs[1:]:
            for k, v in r.as_dict().items():
                assert np.array_equal(v, runs[0].as_dict()[k]), (type(pol).__name__, dt, k)
    print("SAME")
"""

# (scenario, policy, dtype, [(chunk, devices), ...]); Gauss-Markov fading runs the per-realization path
_FAST = """cases = [(Scenario(), Gelato(), "float64", [(7, 1), (7, 3), (1, 3)]),
             (Scenario(channel="gauss_markov", rho=0.6), StaticSD(), "float32", [(7, 1), (2, 2)])]"""
_MORE = """cases = [(s, p, dt, [(7, 1), (7, 3), (2, 2), (1, 3), (5, 1), (1, 1)])
             for s in (Scenario(), Scenario(channel="gauss_markov", rho=0.6))
             for p in (Gelato(), StaticSD()) for dt in ("float32", "float64")]"""


def test_simulate_bit_identical_for_any_device_count_and_chunk():
    proc = _python(_DEVICES.replace("CASES", _FAST))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SAME" in proc.stdout


@pytest.mark.slow
def test_simulate_bit_identical_more_device_chunk_policy_dtype_combinations():
    proc = _python(_DEVICES.replace("CASES", _MORE))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SAME" in proc.stdout


_SWEEPS = """
    import jax
    jax.config.update("jax_num_cpu_devices", 3)
    jax.config.update("jax_enable_x64", True)
    import numpy as np
    from gelato_jax import Scenario, Gelato
    from gelato_jax.compare import simulate_metrics
    from proofs_check.sweep import lagrangian_sweep, v_sweep
    Vs = np.array([0.5, 20.0])
    kw = dict(seed=1, realizations=7, rounds=80)
    def same(a, b, what):
        for k in a:
            if not k.startswith("_"):
                assert np.array_equal(a[k], b[k]), (what, k)
    # one (chunk, devices) layout per driver: each layout is a new compiled program (≈ 8 s here)
    same(v_sweep(Scenario(), Gelato(), Vs, **kw, devices=1), v_sweep(Scenario(), Gelato(), Vs, **kw, devices=3), "v_sweep")
    lag = lambda **o: lagrangian_sweep(Scenario(), Gelato(), Vs, np.array([10, 30]), 0.7, z0=Vs * 0.7, **kw, **o)
    same(lag(devices=1), lag(chunk=2, devices=2), "lagrangian_sweep")
    same(simulate_metrics(Scenario(), Gelato(V=2.0), **kw, devices=1),
         simulate_metrics(Scenario(), Gelato(V=2.0), **kw, chunk=2, devices=3), "compare")
    print("SAME")
"""


def test_verify_sweeps_and_compare_bit_identical_for_any_device_count():
    """proofs_check's V and Lagrangian sweeps and compare's runs split chunks over the devices too
    (the Lagrangian window averages are divided on the host: XLA compiled that division
    differently for one and for two devices)."""
    proc = _python(_SWEEPS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SAME" in proc.stdout
