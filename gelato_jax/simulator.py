r"""The simulator's public entry points: ``rollout``, ``sample_exogenous`` and ``simulate``.

The round itself (MODEL.md §1–§6: draws, decision, inner loop, costs, queue) lives in
``gelato_jax.model`` and is re-exported here; the chunking, streaming sums and sharding in
``gelato_jax.engine``; the random numbers in ``gelato_jax.rng``.

``rollout`` replays given ``Exogenous`` arrays and returns per-round ``(R, T)`` arrays;
``simulate`` draws inside the ``lax.scan`` and streams time averages, memory ``O(R)``.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from . import engine
from .model import (  # noqa: F401  (re-exported: the public round API and the drivers' pieces)
    _FRESH_LAG, Exogenous, RoundCarry, Trajectory, _draw_round, _draws_from, _entropy_ar, _init_realization, _is_zero,
    _round_uniforms, _text_advance, _text_entropies, initial_carry, round_costs, round_decision, round_settle,
    round_step, scan_rounds,
)
from .engine import check_positive_int, prepare
from .policies.base import Policy
from .scenario import Scenario

__all__ = ["Exogenous", "Trajectory", "SimResult", "RoundCarry", "initial_carry", "sample_exogenous", "round_step",
           "rollout", "simulate"]


# ----------------------------------------------------------------------------- rollout
@jax.jit
def _rollout(scenario, policy, exo, aux):

    def one(exo_r):
        carry0 = initial_carry(scenario, policy, aux, exo_r.channel_gain.dtype)
        _, rows = jax.lax.scan(lambda c, x: round_step(scenario, policy, aux, c, x), carry0, tuple(exo_r))
        return rows

    return jax.vmap(one)(exo)


def rollout(scenario: Scenario, policy: Policy, exogenous: Exogenous, *, aux=None) -> Trajectory:
    """Replay ``exogenous`` through ``policy``; returns per-round ``(R, T)`` arrays.

    ``Z_0 = 0``; ``queue[:, t]`` is the ``Z_t`` used for round ``t``'s decision. ``aux``: the
    policy's ``precompute`` for this pair (``engine.precompute``; default: computed here, cached),
    e.g. one shared by rollouts that differ only in ``V`` (``engine.shared_precompute``).
    """
    if not isinstance(exogenous, Exogenous):
        raise ValueError("exogenous must be a gelato_jax.Exogenous")
    scenario, policy, dtype = prepare(scenario, policy, None)
    exo = Exogenous(*(jnp.asarray(x) for x in exogenous))
    if exo.channel_gain.ndim != 2:
        raise ValueError(f"Exogenous.channel_gain must have shape (R, T), got {exo.channel_gain.shape}")
    R, T = exo.channel_gain.shape
    g = scenario.gamma_max
    for name, arr, shape in [
        ("energy_arrival", exo.energy_arrival, (R, T)),
        ("entropy", exo.entropy, (R, T, g)),
        ("uniform", exo.uniform, (R, T, g)),
    ]:
        if arr.shape != shape:
            raise ValueError(f"Exogenous.{name} must have shape {shape} (R, T{', gamma_max' if len(shape) == 3 else ''}), got {arr.shape}")
    exo = Exogenous(
        jnp.maximum(exo.channel_gain.astype(dtype), scenario.h_min),
        exo.energy_arrival.astype(dtype),
        exo.entropy.astype(dtype),
        exo.uniform.astype(dtype),
    )
    return _rollout(scenario, policy, exo, engine.precompute(scenario, policy) if aux is None else aux)


@functools.partial(jax.jit, static_argnames=("rounds", "ar", "dtype"))
def _sample_chunk(scenario, root, indices, table, *, rounds, ar, dtype):
    def one(index):
        key_r, fading = _init_realization(scenario, root, index, dtype, table)

        def body(fading, t):
            draws, fading = _draw_round(scenario, key_r, fading, t, ar=ar, dtype=dtype)
            return fading, draws

        _, draws = jax.lax.scan(body, fading, jnp.arange(rounds, dtype=jnp.int32))
        return draws

    return Exogenous(*jax.vmap(one)(indices))


def sample_exogenous(scenario: Scenario, *, seed: int, realizations: int, rounds: int, dtype=None) -> Exogenous:
    """Materialise the exogenous draws that ``simulate`` would use for the same seed
    (``(R, T)`` and ``(R, T, γ_max)`` arrays)."""
    realizations = check_positive_int("realizations", realizations)
    rounds = check_positive_int("rounds", rounds)
    seed = check_positive_int("seed", seed, lo=0)
    scenario, _, dtype = prepare(scenario, _NullPolicy(), dtype)
    root = jax.random.key(seed)
    idx = jnp.arange(realizations, dtype=jnp.uint32)
    return _sample_chunk(scenario, root, idx, engine.entropy_table(scenario, dtype), rounds=rounds,
                         ar=_entropy_ar(scenario), dtype=dtype)


class _NullPolicy(Policy):
    pass


# ----------------------------------------------------------------------------- simulate
@dataclasses.dataclass(frozen=True)
class SimResult:
    """Per-realization time averages from ``simulate`` (each a ``(R,)`` numpy array).

    throughput: mean of ``N_t / D_t`` (tokens/s) — the objective of §3.
    goodput: ``Σ N_t / Σ D_t`` (tokens/s).
    energy: mean ``E_t`` (J/round); arrival: mean ``a_t``; energy_per_token: ``Σ E_t / Σ N_t``.
    queue_mean: mean ``Z_t`` over ``t = 0..T-1``; queue_final: ``Z_T``.
    budget, sent, passes, accepted, tokens, latency: per-round means; outage: fraction of rounds.
    unverified, mismatch: per-round means of tokens kept without verification by lossy policies
    (UHLM) and of those verification would have rejected (0 for lossless policies).
    """

    throughput: np.ndarray
    goodput: np.ndarray
    energy: np.ndarray
    energy_per_token: np.ndarray
    arrival: np.ndarray
    queue_mean: np.ndarray
    queue_final: np.ndarray
    budget: np.ndarray
    sent: np.ndarray
    passes: np.ndarray
    accepted: np.ndarray
    tokens: np.ndarray
    latency: np.ndarray
    outage: np.ndarray
    rounds: int
    unverified: np.ndarray | None = None
    mismatch: np.ndarray | None = None

    def as_dict(self) -> dict[str, np.ndarray]:
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name != "rounds" and getattr(self, f.name) is not None
        }

    def summary(self, confidence: float = 0.95) -> dict[str, dict[str, float]]:
        """Mean over realizations with a Student-t confidence interval for each metric."""
        from scipy import stats

        out = {}
        for name, x in self.as_dict().items():
            x = np.asarray(x, dtype=np.float64)
            n = x.size
            mean = float(np.mean(x))
            if n > 1 and np.std(x) > 0:
                sem = float(np.std(x, ddof=1) / math.sqrt(n))
                half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * sem)
            else:
                half = 0.0
            out[name] = {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": n}
        return out


def simulate_realization(scenario: Scenario, policy: Policy, root, index, *, rounds: int, ar: bool, dtype, aux=None,
                         table=None):
    """Time averages of one realization (a dict of scalars); vmappable over ``index`` and over
    scenario/policy leaves (``engine.realization_sums`` with ``simulate``'s metrics). ``aux``: the
    policy's ``precompute``, ``table``: ``engine.entropy_table`` (each computed in the program if
    ``None``)."""
    sums, carry = engine.realization_sums(scenario, policy, root, index, rounds=rounds, ar=ar, dtype=dtype, aux=aux,
                                          table=table)
    return _averages(sums, carry, rounds, dtype)


def _averages(sums, carry, rounds, dtype):
    T = jnp.asarray(rounds, dtype)
    out = {k: v / T for k, v in sums.items()}
    out["goodput"] = sums["tokens"] / sums["latency"]
    out["energy_per_token"] = sums["energy"] / sums["tokens"]
    out["queue_final"] = carry.queue
    return out


def simulate_chunk(scenario: Scenario, policy: Policy, root, indices, *, rounds: int, ar: bool, dtype, aux=None,
                   table=None):
    """``simulate_realization`` for every realization of ``indices`` (a dict of ``(R,)`` arrays).

    Where ``kernel.supports`` the pair (Rayleigh fading, round entropies without the within-round
    AR(1), the per-round objective, ``mix32``), the chunk runs as one round with realizations on the minor axis
    (``gelato_jax.kernel``: the same draws and operations, 1.0–6× faster per CPU-second); otherwise
    ``simulate_realization`` is ``vmap``-ed. Vmappable over scenario/policy leaves (sweeps)."""
    sums, carry = engine.chunk_sums(scenario, policy, root, indices, rounds=rounds, ar=ar, dtype=dtype, aux=aux,
                                    table=table)
    return _averages(sums, carry, rounds, dtype)


@functools.partial(jax.jit, static_argnames=("rounds", "ar", "dtype", "mesh"))
def _simulate_chunk(scenario, policy, root, indices, aux, table, *, rounds, ar, dtype, mesh=None):
    def chunk(s, p, r, i, a, tab):
        return simulate_chunk(s, p, r, i, rounds=rounds, ar=ar, dtype=dtype, aux=a, table=tab)

    return engine.over_devices(chunk, mesh, sharded=3)(scenario, policy, root, indices, aux, table)


def simulate(
    scenario: Scenario,
    policy: Policy,
    *,
    seed: int = 0,
    realizations: int = 1024,
    rounds: int = 10_000,
    chunk: int | None = None,
    dtype=None,
    devices: int | None = None,
    progress: bool | None = False,
) -> SimResult:
    """Simulate ``realizations`` independent realizations of ``rounds`` rounds each.

    Args:
      scenario, policy: the model and the controller.
      seed: root seed; realization ``r`` uses ``fold_in(key(seed), r)``.
      realizations, rounds: sizes (memory is ``O(realizations)``, not ``O(R·T)``).
      chunk: realizations per compiled call (default: all at once). Results are identical for
        any chunk (the last chunk is padded, so every call has the same shape).
      dtype: ``float32`` or ``float64`` (default: JAX's default float).
      devices: local devices each chunk's realizations are split over (default: all of the
        default backend's; on CPU, ``gelato_jax.xla_cpu.configure()`` makes one per core). Results
        are identical for any count (a chunk is padded to a multiple of it).
      progress: show a tqdm bar over chunks (``None``: only on a terminal).
    Returns:
      ``SimResult`` of per-realization time averages.
    """
    realizations = check_positive_int("realizations", realizations)
    rounds = check_positive_int("rounds", rounds)
    seed = check_positive_int("seed", seed, lo=0)
    chunk = realizations if chunk is None else check_positive_int("chunk", chunk)
    chunk = min(chunk, realizations)
    scenario, policy, dtype = prepare(scenario, policy, dtype)
    ar = _entropy_ar(scenario)
    root = jax.random.key(seed)
    mesh = engine.device_mesh(devices)
    aux = engine.precompute(scenario, policy)  # once, not in every chunk
    table = engine.entropy_table(scenario, dtype)
    merged = engine.run_chunks(
        lambda idx: _simulate_chunk(scenario, policy, root, idx, aux, table, rounds=rounds, ar=ar, dtype=dtype, mesh=mesh),
        realizations, chunk, desc="simulate", progress=progress, sharding=engine.realization_sharding(mesh))
    return SimResult(
        throughput=merged["throughput"],
        goodput=merged["goodput"],
        energy=merged["energy"],
        energy_per_token=merged["energy_per_token"],
        arrival=merged["arrival"],
        queue_mean=merged["queue"],
        queue_final=merged["queue_final"],
        budget=merged["budget"],
        sent=merged["sent"],
        passes=merged["passes"],
        accepted=merged["accepted"],
        tokens=merged["tokens"],
        latency=merged["latency"],
        outage=merged["outage"],
        rounds=rounds,
        unverified=merged["unverified"],
        mismatch=merged["mismatch"],
    )
