"""The realization-minor round kernel against the per-realization path, side by side.

    python bench/kernel_ab.py [--realizations 4096] [--rounds 500] [--dtype float32] [--out FILE.json]

For each policy (defaults of the scenario and of the policy class), one compiled program per path
with the scenario, policy and precompute passed as arguments (as ``simulate`` does: no constant
folding of their leaves), run alternately, best of 3 per CPU-second and wall: ``kernel`` is
``gelato_jax.kernel.chunk_sums`` (what ``simulate`` runs where ``kernel.supports`` the pair),
``per-realization`` is ``engine.realization_sums`` under ``vmap`` (the fallback). A float32 run
wants ``JAX_ENABLE_X64`` unset (under x64 JAX's default float, float64, leaks into the policies'
constants). See BENCHMARKS.md (issue 14, session 5).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time

import jax
import jax.numpy as jnp

from gelato_jax import Scenario, engine, kernel
from gelato_jax.policies import REGISTRY, Gelato


@functools.partial(jax.jit, static_argnames=("rounds", "dtype"))
def _kernel(scen, pol, aux, root, idx, *, rounds, dtype):
    return kernel.chunk_sums(scen, pol, root, idx, rounds=rounds, dtype=dtype, aux=aux, metrics=engine.simulate_metrics)


@functools.partial(jax.jit, static_argnames=("rounds", "dtype"))
def _per_realization(scen, pol, aux, root, idx, *, rounds, dtype):
    return jax.vmap(lambda i: engine.realization_sums(scen, pol, root, i, rounds=rounds, ar=False, dtype=dtype,
                                                      aux=aux))(idx)


def _time(fn) -> tuple[float, float]:
    best_cpu = best_wall = float("inf")
    for _ in range(3):
        c0, w0 = time.process_time(), time.perf_counter()
        jax.block_until_ready(fn())
        best_cpu = min(best_cpu, time.process_time() - c0)
        best_wall = min(best_wall, time.perf_counter() - w0)
    return best_cpu, best_wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--realizations", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=500)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    R, T = args.realizations, args.rounds
    policies = [cls() for cls in REGISTRY.values()] + [Gelato(proxy="exact"), Gelato(proxy="ewma")]
    rows = []
    for policy in policies:
        scen, pol, dt = engine.prepare(Scenario(), policy, jnp.dtype(args.dtype))
        aux = engine.precompute(scen, pol)
        root = jax.random.key(0)
        idx = jnp.arange(R, dtype=jnp.uint32)
        fk = lambda: _kernel(scen, pol, aux, root, idx, rounds=T, dtype=dt)
        fp = lambda: _per_realization(scen, pol, aux, root, idx, rounds=T, dtype=dt)
        jax.block_until_ready(fk())
        jax.block_until_ready(fp())
        (ck, wk), (cp, wp) = _time(fk), _time(fp)
        name = type(pol).__name__ + (f"(proxy={pol.proxy})" if isinstance(pol, Gelato) else "")
        row = {"policy": name, "kernel_per_cpu_s": R * T / ck, "kernel_wall": R * T / wk,
               "per_realization_per_cpu_s": R * T / cp, "per_realization_wall": R * T / wp}
        row["speedup_per_cpu_s"] = row["kernel_per_cpu_s"] / row["per_realization_per_cpu_s"]
        rows.append(row)
        print(f"{name:28s} kernel {row['kernel_per_cpu_s']:.3g}/CPU-s ({row['kernel_wall']:.3g} wall)   "
              f"per-realization {row['per_realization_per_cpu_s']:.3g}/CPU-s ({row['per_realization_wall']:.3g} wall)"
              f"   x{row['speedup_per_cpu_s']:.2f}", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"realizations": R, "rounds": T, "dtype": args.dtype, "rows": rows,
                       "load_average": os.getloadavg(), "x64": bool(jax.config.jax_enable_x64)}, f, indent=1)


if __name__ == "__main__":
    main()
