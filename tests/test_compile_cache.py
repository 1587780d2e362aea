"""gelato_jax.compile_cache: the simulator's programs go to JAX's persistent compilation cache
(they hold no host callback) and a second process loads them, with the same results."""

import json
import os
import subprocess
import sys

import pytest

_SCRIPT = r"""
import json, logging, sys
import gelato_jax
from gelato_jax import Scenario, simulate, sweep
from gelato_jax.policies import Gelato

path = gelato_jax.compile_cache.enable(min_compile_s=0.0)
hits, skipped = [], []

class Catch(logging.Handler):
    def emit(self, record):
        msg = record.getMessage()
        if msg.startswith("Persistent compilation cache hit for"):
            hits.append(msg.split("'")[1])
        if "because it uses host callbacks" in msg:
            skipped.append(msg.split("'")[1])

log = logging.getLogger("jax._src.compiler")
log.setLevel(logging.DEBUG)
log.addHandler(Catch())
r = simulate(Scenario(), Gelato(), seed=1, realizations=6, rounds=40)
s = sweep(Scenario(), Gelato(), grid={"V": [0.5, 2.0], "k_H": [0.8, 2.0]}, seed=1, realizations=4, rounds=30)
print(json.dumps({"path": path, "hits": hits, "skipped": skipped, "thr": r.throughput.tolist(),
                  "sweep": s.metrics["throughput"].tolist()}))
"""


def _run(env):
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_simulate_and_sweep_programs_are_cached_and_reused(tmp_path):
    env = {**os.environ, "GELATO_COMPILE_CACHE": str(tmp_path / "xla"), "JAX_ENABLE_X64": "1"}
    first = _run(env)
    assert first["path"] == str(tmp_path / "xla")
    # no program of simulate or sweep was refused for a host callback (the Gamma table is an input)
    assert not [m for m in first["skipped"] if "simulate" in m or "run" in m], first["skipped"]
    assert any(p.name.endswith("-cache") or p.is_file() for p in (tmp_path / "xla").iterdir())
    second = _run(env)
    assert any("_simulate_chunk" in m for m in second["hits"]), second["hits"]
    assert any(m == "jit_run" or m.endswith("run") for m in second["hits"]), second["hits"]
    assert second["thr"] == first["thr"]  # loaded programs give the compiled ones' results, bit for bit
    assert second["sweep"] == first["sweep"]


def test_switched_off_and_default_path(tmp_path, monkeypatch):
    from gelato_jax import compile_cache

    monkeypatch.setenv("GELATO_COMPILE_CACHE", "0")
    assert compile_cache.default_path() is None
    monkeypatch.setenv("GELATO_COMPILE_CACHE", str(tmp_path / "c"))
    assert compile_cache.default_path() == str(tmp_path / "c")
    monkeypatch.delenv("GELATO_COMPILE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache.default_path() == str(tmp_path / "xdg" / "gelato-jax" / "xla")
    with pytest.raises(ValueError, match="min_compile_s"):
        compile_cache.enable(min_compile_s=-1.0)
