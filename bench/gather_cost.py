"""Cost of the simulator's Gamma-table lookup on this machine (issue 14's physical limit).

    python bench/gather_cost.py

Times, inside a ``lax.scan`` of 300 steps over a (4096, 10) block of uniforms (one GELATO round's
entropy draws for 4096 realizations), per step and per CPU-second: the bits-indexed table lookup as
the simulator does it (``plain``), the same with ``optimization_barrier`` around the gather
(``barrier``: the gather in its own fusion), four 1-D gathers (``flat``), and no table
(``none``: the uniforms doubled). The difference plain − none is the gather's price.
"""
import time, jax, jax.numpy as jnp
from gelato_jax import _gamma_table as G
tab = G.gamma_table_bits(0.8, jnp.float32)
R=4096
def q_plain(u): return G._quantile_from_bits(tab, u)
def q_bar(u):  # the gather in its own fusion
    row, t = G.bits_row(u)
    c = jax.lax.optimization_barrier(tab.coef.at[jax.lax.optimization_barrier(row)].get(mode="promise_in_bounds"))
    return jnp.exp(((c[..., 3] * t + c[..., 2]) * t + c[..., 1]) * t + c[..., 0])
def q_flat(u):  # gather 4 separate 1-D tables
    row, t = G.bits_row(u)
    row = jax.lax.optimization_barrier(row)
    cs = [jax.lax.optimization_barrier(jnp.take(tab.coef[:, i], row)) for i in range(4)]
    return jnp.exp(((cs[3] * t + cs[2]) * t + cs[1]) * t + cs[0])
def run(q, T=300):
    def body(c, i):
        u = (jnp.arange(R*10, dtype=jnp.float32).reshape(R,10) * 0.6180339 + i*0.1 + c[:, :1]*1e-3) % 1.0
        u = jnp.clip(u, 1e-7, 1-1e-7)
        return c + q(u), None
    f = jax.jit(lambda c: jax.lax.scan(body, c, jnp.arange(T, dtype=jnp.float32))[0])
    c = jnp.zeros((R,10)); f(c).block_until_ready()
    best=9
    for _ in range(3):
        t0=time.process_time(); f(c).block_until_ready(); best=min(best,time.process_time()-t0)
    return best/T*1e3
if __name__ == "__main__":
  for n,q in [("plain",q_plain),("barrier",q_bar),("flat",q_flat),("none", lambda u: u*2.0)]:
      print(n, f"{run(q):.3f} ms CPU per round-step (4096x10)")
