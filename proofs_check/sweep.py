r"""The V sweep as one compiled program, and the choice of the V grid and horizon.

``v_sweep`` runs ``jax.vmap`` over ``V`` (a leaf of the policy pytree) of a chunk of
realizations (``gelato_jax.simulator.simulate_chunk``); chunks of realizations reuse the
same compiled program (every call has the same shapes; the last chunk is padded). Realization
``r`` uses ``fold_in(key(seed), r)`` for every ``V`` (common random numbers), so results do not
depend on the chunk size and differences between ``V`` values are not blurred by independent noise.

Grid and horizon (``v_grid``): the natural scale of ``V`` is ``V₀ = ε/λ*`` (``λ*`` the optimal
energy price, ``ε`` the Slater slack): the queue settles near ``Z ≈ V λ*``, i.e. after about
``V λ*/ε = V/V₀`` rounds. For ``V ≪ V₀`` the queue stays at its one-round floor and the controller
is energy-dominated (a large gap); for ``V ≫ V₀`` it spends above budget until ``Z`` has grown
(energy overdraft ``Z_T/T``). The grid is a coarse log grid over ``[V₀·10^lo, V₀·10^hi]`` joined with
a fine log grid over ``[0.1 V₀, V₀]``, where the gap decays, and (``extra``) the values where the
``1/V`` scaling of the gap is tested (chosen by ``proofs_check.run.plan_grid`` from the theory
constants); the horizon is ``T = K · V_max/V₀`` rounds (``K`` settling times at the largest ``V``).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from gelato_jax import engine
from gelato_jax.model import entropy_ar
from gelato_jax.simulator import simulate_chunk

__all__ = ["v_grid", "horizon", "v_sweep", "sweep_cache_size", "SWEEP_FIELDS", "lagrangian_sweep", "LAGRANGIAN_FIELDS"]

SWEEP_FIELDS = ("throughput", "energy", "arrival", "queue", "queue_final", "tokens", "latency", "budget", "sent", "passes", "outage")


def v_grid(V0: float, *, lo: float, hi: float, n_coarse: int, n_fine: int, extra=()) -> np.ndarray:
    """Sorted unique ``V`` values: ``n_coarse`` log-spaced over ``V0·[10^lo, 10^hi]`` and
    ``n_fine`` log-spaced over ``V0·[0.1, 1]``, plus ``extra`` (in units of ``V0``; kept first,
    a coarse or fine value within 0.08 decades of a kept value is dropped)."""
    if not (math.isfinite(V0) and V0 > 0):
        raise ValueError(f"V0 must be a positive finite number, got {V0}")
    if not hi > lo:
        raise ValueError(f"grid decades must satisfy hi > lo, got lo={lo}, hi={hi}")
    extra = np.asarray(extra, np.float64).reshape(-1)
    if not np.all(np.isfinite(extra) & (extra > 0)):
        raise ValueError(f"extra V values must be positive and finite, got {extra}")
    coarse = np.logspace(lo, hi, n_coarse)
    fine = np.logspace(-1, 0, n_fine) if n_fine > 0 else np.zeros(0)
    # merge values closer than 0.08 decades (keep the extra, then the coarse one)
    grid = list(extra)
    for v in (*coarse, *fine):
        if not grid or np.min(np.abs(np.log10(np.asarray(grid)) - np.log10(v))) > 0.08:
            grid.append(v)
    return V0 * np.sort(np.asarray(grid))


def horizon(V_max: float, V0: float, *, settle_factor: float, minimum: int, multiple: int = 100) -> int:
    """``T = max(minimum, settle_factor · V_max/V0)`` rounded up to a multiple of ``multiple``."""
    T = max(float(minimum), settle_factor * V_max / V0)
    return int(math.ceil(T / multiple) * multiple)


@functools.partial(jax.jit, static_argnames=("rounds", "ar", "dtype", "mesh"))
def _sweep_chunk(scenario, policy, Vs, root, indices, aux, table, *, rounds, ar, dtype, mesh=None):
    def chunk(scenario, policy, Vs, root, indices, aux, table):
        def per_V(V):
            pol = policy.replace(V=V)
            out = simulate_chunk(scenario, pol, root, indices, rounds=rounds, ar=ar, dtype=dtype, aux=aux, table=table)
            return {k: out[k] for k in SWEEP_FIELDS}

        return jax.vmap(per_V)(Vs)

    # every device its own realizations, outputs (V, realizations)
    return engine.over_devices(chunk, mesh, sharded=4, out_axis=1)(scenario, policy, Vs, root, indices, aux, table)


def sweep_cache_size() -> int:
    """Number of compiled variants of the sweep program so far (``jit``'s cache size)."""
    return _sweep_chunk._cache_size()


def _sweep_setup(scenario, policy, Vs, seed, realizations, rounds, chunk, dtype):
    """Shared argument checks and set-up of ``v_sweep`` and ``lagrangian_sweep``: ``(Vs, chunk,
    scenario, policy, dtype, ar, root, n_chunks)``."""
    Vs = np.asarray(Vs, np.float64)
    if Vs.ndim != 1 or Vs.size == 0 or not np.all(np.isfinite(Vs)) or np.any(Vs < 0):
        raise ValueError("Vs must be a non-empty 1-D array of finite values >= 0")
    for name, v in (("realizations", realizations), ("rounds", rounds)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    chunk = min(int(chunk or realizations), realizations)
    scenario, policy, dtype = engine.prepare(scenario, policy, dtype)
    return (Vs, chunk, scenario, policy, dtype, entropy_ar(scenario), jax.random.key(seed),
            -(-realizations // chunk))


def _run_chunks(call, chunk, realizations, n_chunks, desc, progress, mesh=None):
    """``engine.run_chunks`` over ``(n_V, chunk)`` outputs (realizations on axis 1; each chunk's
    realizations split over ``mesh``); adds ``"_calls"``."""
    merged = engine.run_chunks(call, realizations, chunk, axis=1, desc=desc, progress=progress,
                               sharding=engine.realization_sharding(mesh))
    merged["_calls"] = n_chunks
    return merged


def v_sweep(scenario, policy, Vs, *, seed: int, realizations: int, rounds: int, chunk: int | None = None, dtype=None, progress: bool | None = None, desc: str = "V sweep",
            devices: int | None = None):
    """Per-realization time averages for every ``V``: a dict of ``(n_V, R)`` numpy arrays.

    ``policy`` must have a leaf ``V``; ``Vs`` is a 1-D array of positive values; each chunk's
    realizations are split over ``devices`` local devices (default all; results identical for
    any count). Returns the dict plus ``"calls"`` (compiled calls made) under the key ``"_calls"``.
    """
    if not hasattr(policy, "V"):
        raise ValueError(f"policy {type(policy).__name__} has no field V to sweep")
    Vs, chunk, scenario, policy, dtype, ar, root, n_chunks = _sweep_setup(
        scenario, policy, Vs, seed, realizations, rounds, chunk, dtype)
    Vj = jnp.asarray(Vs, dtype)
    aux = engine.shared_precompute(scenario, policy, "V", Vj)  # None: computed per V in the program
    table = engine.entropy_table(scenario, dtype)
    mesh = engine.device_mesh(devices)
    return _run_chunks(lambda idx: _sweep_chunk(scenario, policy, Vj, root, idx, aux, table, rounds=int(rounds), ar=ar,
                                                dtype=dtype, mesh=mesh),
                       chunk, realizations, n_chunks, desc, progress, mesh)


# ----------------------------------------------------------------------------- Lagrangian sweep
#: per-realization outputs of ``lagrangian_sweep`` (each over the full horizon and, suffix ``_w``,
#: over the window ``t ≥ burn(V)``)
LAGRANGIAN_FIELDS = ("throughput", "energy", "arrival", "queue", "queue_sq", "regret")


def _lagrangian_metrics(pol, aux, lam, burn):
    """Per-round metrics of the Lagrangian sweep for ``engine.realization_sums``: throughput,
    energy, arrival, queue, queue², the per-round Lagrangian regret at price ``lam``, each also
    weighted by the window indicator ``t ≥ burn`` (suffix ``_w``), and ``Z`` at the window start
    (``queue_burn``: only the round ``t = burn`` contributes)."""
    from gelato_jax import channel
    from gelato_jax.policies.base import RoundObs

    def metrics(scenario, t, carry, draws, row):
        # the per-round problem the controller solved, at this round's rates: L(γ) = T̂ − λ·Ê
        h = draws[0]
        rate = channel.uplink_rate(scenario, h)
        rate_dl = channel.downlink_rate(scenario, h)
        outage = channel.in_outage(scenario, rate)
        pc = pol.proxy_costs(scenario, aux, carry.policy_state, RoundObs(t, carry.queue, h, rate, rate_dl, outage, carry.rejected))
        L = pc.throughput - lam * pc.energy
        allowed = (jnp.arange(L.shape[-1]) == 0) | ~outage
        M = jnp.max(jnp.where(allowed, L, -jnp.inf))
        add = {"throughput": row.tokens / row.latency, "energy": row.energy, "arrival": row.arrival,
               "queue": row.queue, "queue_sq": row.queue**2, "regret": M - L[row.budget]}
        dt = row.energy.dtype
        w = (t >= burn).astype(dt)
        out = {}
        for k, x in add.items():
            out[k] = x
            out[k + "_w"] = w * x
        out["queue_burn"] = jnp.where(t == burn, row.queue, 0.0).astype(dt)
        return out

    return metrics


@functools.partial(jax.jit, static_argnames=("rounds", "ar", "dtype", "mesh"))
def _lagrangian_chunk(scenario, policy, Vs, burns, z0s, lam, root, indices, shared_aux, table, *, rounds, ar, dtype,
                      mesh=None):
    def chunk(scenario, policy, Vs, burns, z0s, lam, root, indices, shared_aux, table):
        lam = jnp.asarray(lam, dtype)

        def per_V(V, burn, z0):
            pol = policy.replace(V=V)
            aux = pol.precompute(scenario) if shared_aux is None else shared_aux
            metrics = _lagrangian_metrics(pol, aux, lam, burn)

            sums, carry = engine.chunk_sums(scenario, pol, root, indices, rounds=rounds, ar=ar, dtype=dtype,
                                            metrics=metrics, queue0=z0, aux=aux, table=table)
            # sums, divided on the host (lagrangian_sweep): XLA compiled the division by the traced
            # window length differently with one and with two devices (last-bit differences)
            out = {k: sums[k] for k in LAGRANGIAN_FIELDS}
            out.update({k + "_w": sums[k + "_w"] for k in LAGRANGIAN_FIELDS})
            out["queue_final"] = carry.queue
            out["queue_burn"] = sums["queue_burn"]
            return out

        return jax.vmap(per_V)(Vs, burns, z0s)

    return engine.over_devices(chunk, mesh, sharded=7, out_axis=1)(scenario, policy, Vs, burns, z0s, lam, root, indices,
                                                                    shared_aux, table)


def lagrangian_sweep(scenario, policy, Vs, burns, lam, *, z0=None, seed: int, realizations: int, rounds: int, chunk: int | None = None, dtype=None, progress: bool | None = None, desc: str = "Lagrangian sweep",
                     devices: int | None = None):
    r"""Per-realization time averages for every ``V`` with the per-round Lagrangian regret.

    Runs the same rounds as ``v_sweep`` (same ``_draw_round``/``round_step``, realization ``r`` from
    ``fold_in(key(seed), r)``) and accumulates, besides throughput ``N_t/D_t``, energy, arrival and
    queue, the regret of the chosen budget in the per-round Lagrangian problem at price ``lam``:
    ``ℓ_t = max_γ L(γ, h_t) − L(γ_t, h_t)``, ``L = T̂ − lam·Ê`` (the policy's own proxy tables at the
    round's rates; only ``γ = 0`` in outage). Each average is returned over the full horizon and,
    with suffix ``_w``, over the window ``burns[i] ≤ t < rounds`` (one window start per ``V``);
    ``queue_burn`` is ``Z`` at the window start, ``queue_final`` is ``Z_T``. ``z0``: initial queue
    per ``V`` (default 0, the theorem's ``Z_0``; a warm start ``Z_0 = V·λ*`` skips the transient when
    the stationary regime is measured); ``devices`` as ``v_sweep``. Returns a dict of
    ``(n_V, R)`` numpy arrays plus ``"_calls"``.
    """
    if not hasattr(policy, "V") or not hasattr(policy, "proxy_costs"):
        raise ValueError(f"policy {type(policy).__name__} needs fields V and a proxy_costs method")
    Vs, chunk, scenario, policy, dtype, ar, root, n_chunks = _sweep_setup(
        scenario, policy, Vs, seed, realizations, rounds, chunk, dtype)
    burns = np.asarray(burns)
    if burns.shape != Vs.shape or not np.all((burns >= 0) & (burns < rounds) & (burns == np.floor(burns))):
        raise ValueError(f"burns must be integers in [0, rounds) with the shape of Vs {Vs.shape}, got {burns}")
    if not (math.isfinite(float(lam)) and float(lam) >= 0):
        raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
    z0 = np.zeros_like(Vs) if z0 is None else np.asarray(z0, np.float64)
    if z0.shape != Vs.shape or not np.all(np.isfinite(z0) & (z0 >= 0)):
        raise ValueError(f"z0 must be finite values >= 0 with the shape of Vs {Vs.shape}, got {z0}")
    Vj = jnp.asarray(Vs, dtype)
    Zj = jnp.asarray(z0, dtype)
    Bj = jnp.asarray(burns.astype(np.int32))
    aux = engine.shared_precompute(scenario, policy, "V", Vj)  # None: computed per V in the program
    table = engine.entropy_table(scenario, dtype)
    mesh = engine.device_mesh(devices)
    out = _run_chunks(
        lambda idx: _lagrangian_chunk(scenario, policy, Vj, Bj, Zj, float(lam), root, idx, aux, table, rounds=int(rounds),
                                      ar=ar, dtype=dtype, mesh=mesh),
        chunk, realizations, n_chunks, desc, progress, mesh)
    n_all = np.asarray(rounds, out["throughput"].dtype)
    n_w = (n_all - burns.astype(out["throughput"].dtype))[:, None]
    for k in LAGRANGIAN_FIELDS:
        out[k] = out[k] / n_all
        out[k + "_w"] = out[k + "_w"] / n_w
    return out
