r"""The V sweep as one compiled program, and the choice of the V grid and horizon.

``v_sweep`` runs ``jax.vmap`` over ``V`` (a leaf of the policy pytree) of ``jax.vmap`` over
realizations of ``gelato_jax.simulator.simulate_realization``; chunks of realizations reuse the
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

from gelato_jax.simulator import _entropy_ar, _prepare, simulate_realization

__all__ = ["v_grid", "horizon", "v_sweep", "sweep_cache_size", "SWEEP_FIELDS"]

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


@functools.partial(jax.jit, static_argnames=("rounds", "ar", "dtype"))
def _sweep_chunk(scenario, policy, Vs, root, indices, *, rounds, ar, dtype):
    def per_V(V):
        pol = policy.replace(V=V)
        one = lambda i: simulate_realization(scenario, pol, root, i, rounds=rounds, ar=ar, dtype=dtype)
        out = jax.vmap(one)(indices)
        return {k: out[k] for k in SWEEP_FIELDS}

    return jax.vmap(per_V)(Vs)


def sweep_cache_size() -> int:
    """Number of compiled variants of the sweep program so far (``jit``'s cache size)."""
    return _sweep_chunk._cache_size()


def v_sweep(scenario, policy, Vs, *, seed: int, realizations: int, rounds: int, chunk: int | None = None, dtype=None, progress: bool | None = None, desc: str = "V sweep"):
    """Per-realization time averages for every ``V``: a dict of ``(n_V, R)`` numpy arrays.

    ``policy`` must have a leaf ``V``; ``Vs`` is a 1-D array of positive values. Returns the
    dict plus ``"calls"`` (compiled calls made) under the key ``"_calls"``.
    """
    from tqdm.auto import tqdm

    if not hasattr(policy, "V"):
        raise ValueError(f"policy {type(policy).__name__} has no field V to sweep")
    Vs = np.asarray(Vs, np.float64)
    if Vs.ndim != 1 or Vs.size == 0 or not np.all(np.isfinite(Vs)) or np.any(Vs < 0):
        raise ValueError("Vs must be a non-empty 1-D array of finite values >= 0")
    for name, v in (("realizations", realizations), ("rounds", rounds)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    chunk = min(int(chunk or realizations), realizations)
    scenario, policy, dtype = _prepare(scenario, policy, dtype)
    ar = _entropy_ar(scenario)
    root = jax.random.key(seed)
    n_chunks = -(-realizations // chunk)
    parts = []
    Vj = jnp.asarray(Vs, dtype)
    with tqdm(total=n_chunks, desc=desc, unit="chunk", disable=None if progress is None else not progress, leave=False) as bar:
        for c in range(n_chunks):
            start = c * chunk
            idx = jnp.asarray(np.arange(start, start + chunk, dtype=np.uint32))
            out = _sweep_chunk(scenario, policy, Vj, root, idx, rounds=int(rounds), ar=ar, dtype=dtype)
            n_valid = min(chunk, realizations - start)
            parts.append({k: np.asarray(v)[:, :n_valid] for k, v in out.items()})
            bar.update(1)
    merged = {k: np.concatenate([p[k] for p in parts], axis=1) for k in parts[0]}
    merged["_calls"] = n_chunks
    return merged
