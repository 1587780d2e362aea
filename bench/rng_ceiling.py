"""Where a simulated round's time goes on CPU: each generator alone, all draws, whole simulator.

    python bench/rng_ceiling.py [--realizations 4096] [--rounds 300]

Prints realization-rounds per CPU-second (best of 3, float32) for stripped-down scans of the
same draws ``simulate`` uses and for the whole simulator under several policies; see the
"random-number ceiling" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

from gelato_jax import Gelato, Scenario, StaticSD, _gamma_table, rng
from gelato_jax import engine
from gelato_jax import simulator as sm


def _rate(fn, R: int, T: int) -> float:
    fn()  # compile
    best = float("inf")
    for _ in range(3):
        c0 = time.process_time()
        fn()
        best = min(best, time.process_time() - c0)
    return R * T / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--realizations", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=300)
    args = ap.parse_args()
    R, T = args.realizations, args.rounds
    scen, _, dt = engine.prepare(Scenario(), Gelato(), jnp.float32)
    table = engine.entropy_table(scen, dt)
    root = jax.random.key(0)
    idx = jnp.arange(R, dtype=jnp.uint32)
    n_u = 2 * scen.gamma_max + 2

    @jax.jit
    def threefry_only(root, idx):
        def one(i):
            key_r = jax.random.fold_in(root, i)

            def body(acc, t):
                return acc + _gamma_table.open_unit(jax.random.fold_in(key_r, t), (n_u,), dt).sum(), None

            return jax.lax.scan(body, jnp.zeros((), dt), jnp.arange(T, dtype=jnp.int32))[0]

        return jax.vmap(one)(idx)

    @jax.jit
    def mix32_only(root, idx):
        def one(i):
            key_r = rng.stream_key("mix32", jax.random.fold_in(root, i))

            def body(acc, t):
                return acc + rng.round_draws("mix32", key_r, t, n_u, 0, dt)[0].sum(), None

            return jax.lax.scan(body, jnp.zeros((), dt), jnp.arange(T, dtype=jnp.int32))[0]

        return jax.vmap(one)(idx)

    @jax.jit
    def draws_only(root, idx):
        def one(i):
            key_r, fading = sm._init_realization(scen, root, i, dt, table)

            def body(c, t):
                acc, fading = c
                d, fading = sm._draw_round(scen, key_r, fading, t, ar=False, dtype=dt)
                return (acc + d[0] + d[2].sum() + d[3].sum(), fading), None

            return jax.lax.scan(body, (jnp.zeros((), dt), fading), jnp.arange(T, dtype=jnp.int32))[0][0]

        return jax.vmap(one)(idx)

    rows = [
        (f"threefry only ({n_u} uniforms + fold_in)", lambda: jax.block_until_ready(threefry_only(root, idx))),
        (f"mix32 only ({n_u} uniforms)", lambda: jax.block_until_ready(mix32_only(root, idx))),
        ("all exogenous draws (default rng)", lambda: jax.block_until_ready(draws_only(root, idx))),
    ]
    for label, pol in [
        ("simulator, GELATO", Gelato()),
        ("simulator, GELATO exit=none", Gelato(exit="none")),
        ("simulator, StaticSD full", StaticSD(gamma=4)),
        ("simulator, StaticSD topp", StaticSD(gamma=4, payload="topp")),
    ]:
        sc, po, _ = engine.prepare(Scenario(), pol, jnp.float32)
        rows.append(
            (label, lambda sc=sc, po=po, aux=engine.precompute(sc, po), tab=engine.entropy_table(sc, dt): jax.block_until_ready(
                sm._simulate_chunk(sc, po, root, idx, aux, tab, rounds=T, ar=False, dtype=dt)))
        )
    print(f"R = {R}, T = {T}, float32, realization-rounds per CPU-second (best of 3)")
    for label, fn in rows:
        print(f"{label:44s} {_rate(fn, R, T):.3e}")


if __name__ == "__main__":
    main()
