r"""The one simulation driver: prepare, scan, streaming averages, chunks.

Every command that simulates the surrogate model runs through here — ``simulate``, ``compare``,
``sweep``, the V sweeps of ``proofs_check`` (``v_sweep``, ``lagrangian_sweep``) and the tightness
atlas:

* ``prepare``: validate the scenario/policy pair and cast its float leaves to the run's dtype
  (refusing values the dtype cannot hold).
* ``realization_sums``: one realization — ``model.scan_rounds`` over the rounds, drawing each
  round's exogenous randomness inside the scan (memory ``O(1)`` per realization), and
  accumulating per-round metrics in **one stacked vector** with compensated (Kahan) summation.
  One vector instead of one accumulator per metric lets XLA update every sum in a single loop
  (profiled: 13 separate Kahan accumulators were ~40 of the ~70 kernels of a GELATO round).
  ``metrics`` chooses what is summed (the default is ``simulate``'s); ``queue0`` warm-starts
  ``Z_0``.
* ``chunk_sums``: ``realization_sums`` for a chunk of realizations — ``gelato_jax.kernel`` (the round
  with realizations on the minor axis, 1.0–6× faster on CPU) where it supports the pair, else
  ``realization_sums`` under ``vmap``.
* ``run_chunks``: realizations in chunks of a fixed size (the last one padded, so one compiled
  program serves every chunk), optionally sharded over devices, with a progress bar; chunks can
  be skipped (resume) and handed to a callback as they finish (chunk files).

Realization ``r`` draws from its own stream (``gelato_jax.rng``), so results are identical for
any chunk size, padding, device count or process count.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from . import channel
from .pytree import leaf_fields
from .model import initial_carry, init_realization, round_step, scan_rounds
from .policies.base import Policy
from .scenario import Scenario

__all__ = ["prepare", "check_positive_int", "precompute", "entropy_table", "shared_precompute", "realization_sums", "chunk_sums",
           "simulate_metrics", "run_chunks", "device_mesh", "realization_sharding",
           "over_devices"]


def prepare(scenario: Scenario, policy: Policy, dtype):
    """Validate ``(scenario, policy)`` for one run and cast their float leaves to ``dtype``
    (default: JAX's default float); returns ``(scenario, policy, dtype)``. Raises ``ValueError``
    naming the field for incompatible settings or values the dtype cannot hold."""
    if not isinstance(scenario, Scenario):
        raise ValueError(f"scenario must be a gelato_jax.Scenario, got {type(scenario).__name__}")
    if not isinstance(policy, Policy):
        raise ValueError(f"policy must be a gelato_jax.policies.Policy, got {type(policy).__name__}")
    policy.validate(scenario)
    if policy.proxy == "exact":
        scenario.check_iid_rounds("proxy='exact' (its table is the law of one i.i.d. round)")
    dtype = jnp.dtype(dtype or jnp.result_type(float))
    if dtype not in (jnp.dtype("float32"), jnp.dtype("float64")):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    if dtype == jnp.float64 and not jax.config.jax_enable_x64:
        raise ValueError("dtype=float64 needs jax_enable_x64 (set JAX_ENABLE_X64=1 before importing jax)")

    def cast(x):
        if isinstance(x, (float, np.floating)) or (hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)):
            return jnp.asarray(x, dtype)
        return x

    _check_representable(scenario, policy, dtype)
    return jax.tree.map(cast, scenario), jax.tree.map(cast, policy), dtype


def _check_representable(scenario: Scenario, policy: Policy, dtype) -> None:
    """Refuse valid parameters that the chosen float type cannot hold.

    Every finite leaf must not overflow to inf; quantities that must stay positive (``h_min`` and
    the derived draft time, draft energy and SNR scale) must not fall below the smallest normal
    number (XLA on CPU flushes subnormals to 0). Either would silently corrupt results. Values
    that may legitimately be 0 (e.g. ``a1``, ``V``) may underflow harmlessly.
    """
    info = jnp.finfo(dtype)
    hint = "use float64 (JAX_ENABLE_X64=1, dtype=float64) or rescale the units"

    def check(label: str, value, positive: bool) -> None:
        try:
            arr = np.abs(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError, jax.errors.TracerArrayConversionError):
            return
        bad = np.isfinite(arr) & (arr > float(info.max))
        if positive:
            bad |= np.isfinite(arr) & (arr < float(info.tiny))
        if np.any(bad):
            shown = float(np.asarray(value, dtype=np.float64)[bad].ravel()[0]) if arr.ndim else float(value)
            raise ValueError(
                f"{label} = {shown:g} is outside the normal range of {jnp.dtype(dtype).name} "
                f"([{float(info.tiny):.3g}, {float(info.max):.3g}] in magnitude); {hint}"
            )

    for obj in (scenario, policy):
        for name in leaf_fields(type(obj)):
            check(f"{type(obj).__name__}.{name}", getattr(obj, name), positive=(obj is scenario and name == "h_min"))
    derived = {
        "Scenario draft pass time c_d/f": lambda: np.float64(scenario.c_d) / np.float64(scenario.f),
        "Scenario draft pass energy kappa*c_d*f^2": lambda: np.float64(scenario.kappa) * np.float64(scenario.c_d) * np.float64(scenario.f) ** 2,
        "Scenario uplink SNR scale P_tx*g0/(N0*W)": lambda: np.float64(scenario.P_tx)
        * 10.0 ** (-(128.1 + 37.6 * np.log10(np.float64(scenario.d) / 1000.0)) / 10.0)
        / (10.0 ** ((np.float64(scenario.N0_dBm_Hz) + np.float64(scenario.NF_dB) - 30.0) / 10.0) * np.float64(scenario.W)),
    }
    with np.errstate(over="ignore", under="ignore"):
        for label, fn in derived.items():
            try:
                value = fn()
            except (TypeError, jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
                continue
            check(label, value, positive=True)


def check_positive_int(name: str, value, lo: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


# ----------------------------------------------------------------------------- precompute once
# ``policy.precompute(scenario)`` (the proxy's constants; for ``proxy="exact"`` a Monte Carlo table
# of the inner loop's law, ≈ 2 s of CPU and ≈ 4 s of compilation at the defaults) is evaluated
# once per (scenario, policy) on the host and handed to the compiled programs as an argument,
# instead of being compiled into, and re-run by, every chunk of every program.
_AUX_CACHE: dict = {}
_AUX_CACHE_SIZE = 16


@jax.jit
def _precompute_jit(scenario, policy):
    return policy.precompute(scenario)


def _key(tree):
    leaves, treedef = jax.tree.flatten(tree)
    parts = []
    for leaf in leaves:
        a = np.asarray(leaf)
        parts.append((a.dtype.str, a.shape, a.tobytes()))
    return treedef, tuple(parts)


def precompute(scenario: Scenario, policy: Policy):
    """``policy.precompute(scenario)`` compiled and run once, cached by the values of both pytrees
    (leaves must be concrete: call it outside ``jit``)."""
    key = ("aux", _key((scenario, policy)), jnp.dtype(jnp.result_type(float)).str)
    aux = _AUX_CACHE.get(key)
    if aux is None:
        aux = _precompute_jit(scenario, policy)
        if len(_AUX_CACHE) >= _AUX_CACHE_SIZE:
            _AUX_CACHE.pop(next(iter(_AUX_CACHE)))
        _AUX_CACHE[key] = aux
    return aux


def entropy_table(scenario: Scenario, dtype):
    """The surrogate entropy sampler's table (``_gamma_table.gamma_table_poly(k_H, dtype)``),
    built on the host, to hand to a compiled program as its ``table`` argument; ``None`` where
    ``k_H`` is traced (the program then builds it through a host callback).

    Passed as an argument rather than built inside, the program holds no host callback, so JAX's
    persistent compilation cache can keep it (a second process, or a second run of a command,
    reuses the compiled program) — and ``k_H`` stays a leaf: a new value needs no recompilation."""
    from ._gamma_table import gamma_table_poly

    k = scenario.k_H
    if isinstance(k, jax.core.Tracer):
        return None
    return gamma_table_poly(k, jnp.dtype(dtype))


def shared_precompute(scenario: Scenario, policy: Policy, field: str, values):
    """The ``precompute`` shared by every point of a sweep over the policy leaf ``field``, or
    ``None`` when it depends on that field (then each point must compute its own inside the
    program). Independence is decided by tracing: ``jax.vmap(..., out_axes=None)`` refuses an
    output that depends on the mapped value."""
    values = jnp.asarray(values)

    def at(v):
        return policy.replace(**{field: v}).precompute(scenario)

    try:
        jax.eval_shape(jax.vmap(at, out_axes=None), values[:1])
    except Exception:  # noqa: BLE001 - batched output (ValueError) or a precompute that cannot trace V: per point
        return None
    return precompute(scenario, policy)  # the same for every value of ``field``


# ----------------------------------------------------------------------------- streaming sums
def simulate_metrics(scenario, t, carry, draws, row) -> dict:
    """``simulate``'s per-round metrics of a round ``row`` (a ``Trajectory`` row)."""
    return {
        "throughput": row.tokens / row.latency,
        "tokens": row.tokens,
        "latency": row.latency,
        "energy": row.energy,
        "arrival": row.arrival,
        "queue": row.queue,
        "budget": row.budget,
        "sent": row.sent,
        "passes": row.passes,
        "accepted": row.accepted,
        "outage": channel.in_outage(scenario, row.rate),
        "unverified": row.unverified,
        "mismatch": row.mismatch,
    }


#: the metrics of ``simulate_metrics`` that are integers in ``[0, γ_max + 1]`` every round: the
#: round kernel sums them exactly in int32 (where ``rounds·(γ_max + 1) < 2³¹``) instead of with a
#: compensated float sum — the same values, a third of the work (BENCHMARKS.md, issue 14, session 7)
simulate_metrics.small_integers = frozenset({"tokens", "budget", "sent", "passes", "accepted", "outage", "unverified",
                                             "mismatch"})


def _kahan(acc, x):
    """Compensated summation of vectors: ``acc = (sum, compensation)``. Keeps float32 time
    averages over 10⁵+ rounds accurate to a few ulp instead of ~1e-5 relative."""
    total, comp = acc
    y = x - comp
    new = total + y
    return new, (new - total) - y


def realization_sums(scenario: Scenario, policy: Policy, root, index, *, rounds: int, ar: bool, dtype,
                     metrics: Callable = simulate_metrics, queue0=None, aux=None, table=None):
    """Sums over the rounds of one realization of ``metrics(scenario, t, carry_before, draws, row)``
    (a dict of scalars; ``carry_before`` is the ``RoundCarry`` the round started from, ``draws``
    its exogenous draws ``(h, a, entropy, uniform)``, ``row`` its ``Trajectory`` row).

    Vmappable over ``index`` and over scenario/policy leaves. ``queue0``: ``Z_0`` (default 0).
    ``aux``: the policy's ``precompute`` (computed here if not given); ``table``: the entropy
    sampler's ``entropy_table(scenario, dtype)`` (built here if not given). Returns
    ``(sums: dict, final RoundCarry)``."""
    aux = policy.precompute(scenario) if aux is None else aux
    key_r, fading = init_realization(scenario, root, index, dtype, table)
    carry0 = initial_carry(scenario, policy, aux, dtype)
    if queue0 is not None:
        carry0 = carry0._replace(queue=jnp.asarray(queue0, dtype))
    # the metric names (static), from a shape-only trace of one round
    names = list(jax.eval_shape(
        lambda: metrics(scenario, jnp.zeros((), jnp.int32), carry0, *_probe(scenario, policy, aux, carry0, dtype))))

    def step(c, t, draws):
        carry, acc = c
        new_carry, row = round_step(scenario, policy, aux, carry, draws)
        m = metrics(scenario, t, carry, draws, row)
        x = jnp.stack([jnp.asarray(m[k]).astype(dtype) for k in names])
        return new_carry, _kahan(acc, x)

    zero = jnp.zeros((len(names),), dtype)
    carry, (total, _) = scan_rounds(scenario, key_r, fading, (carry0, (zero, zero)), step, rounds, ar=ar, dtype=dtype)
    return {k: total[i] for i, k in enumerate(names)}, carry


def chunk_sums(scenario: Scenario, policy: Policy, root, indices, *, rounds: int, ar: bool, dtype,
               metrics: Callable = simulate_metrics, queue0=None, aux=None, table=None):
    """``realization_sums`` for every realization of ``indices`` ``(R,)``: ``(sums: dict of (R,),
    final RoundCarry with (R,) leaves)``. Runs ``gelato_jax.kernel`` (the round with realizations
    on the minor axis) where it supports the pair, otherwise ``realization_sums`` under ``vmap``;
    the results are the same (integers exactly, floats to the last bit). Vmappable over
    scenario/policy leaves."""
    from . import kernel

    aux = policy.precompute(scenario) if aux is None else aux
    if kernel.supports(scenario, policy, ar=ar):
        return kernel.chunk_sums(scenario, policy, root, indices, rounds=rounds, dtype=dtype, aux=aux, metrics=metrics,
                                 queue0=queue0, table=table)
    return jax.vmap(lambda i: realization_sums(scenario, policy, root, i, rounds=rounds, ar=ar, dtype=dtype,
                                               metrics=metrics, queue0=queue0, aux=aux, table=table))(indices)


def _probe(scenario, policy, aux, carry0, dtype):
    g = scenario.gamma_max
    z = jnp.zeros((), dtype)
    draws = (jnp.ones((), dtype), z, jnp.ones((g,), dtype), jnp.full((g,), 0.5, dtype))
    return draws, round_step(scenario, policy, aux, carry0, draws)[1]


# ----------------------------------------------------------------------------- devices
def device_mesh(devices: int | None = None):
    """A one-axis mesh ``("r",)`` over the first ``devices`` local devices of the default backend
    (default: all of them), or ``None`` where that is one device. Raises ``ValueError`` for more
    devices than are visible."""
    local = jax.local_devices()
    n = len(local) if devices is None else check_positive_int("devices", devices)
    if n > len(local):
        raise ValueError(f"devices must be <= {len(local)} (visible devices), got {n}")
    if n == 1:
        return None
    from jax.sharding import AxisType

    return jax.make_mesh((n,), ("r",), devices=local[:n], axis_types=(AxisType.Explicit,))


def realization_sharding(mesh):
    """``NamedSharding(mesh, P("r"))`` for a chunk's realization indices (``None`` for ``None``)."""
    if mesh is None:
        return None
    from jax.sharding import NamedSharding, PartitionSpec

    return NamedSharding(mesh, PartitionSpec("r"))


def over_devices(fn: Callable, mesh, *, sharded: int, out_axis: int = 0) -> Callable:
    """``fn`` with its positional argument ``sharded`` (a realization axis, length a multiple of
    the mesh size) split over ``mesh``'s devices and the other arguments replicated; every device
    runs ``fn`` on its own realizations, without communication (``shard_map``), and the outputs'
    axis ``out_axis`` is the realizations'. ``mesh=None``: ``fn`` itself.

    ``shard_map`` rather than a sharded ``jit`` input: under ``jit``'s partitioner the kernel's
    fusion barriers (``kernel._materialise``, a ``cond`` on a reduction over the chunk) became
    all-reduces across devices, four per round (BENCHMARKS.md, issue 14, session 7)."""
    if mesh is None:
        return fn
    from jax.sharding import PartitionSpec as P

    def specs(n_args):
        return tuple(P("r") if i == sharded else P() for i in range(n_args))

    def wrapped(*args):
        out_spec = P(*([None] * out_axis), "r")
        return jax.shard_map(fn, mesh=mesh, in_specs=specs(len(args)), out_specs=out_spec, check_vma=False)(*args)

    return wrapped


# ----------------------------------------------------------------------------- chunks
def run_chunks(call: Callable, realizations: int, chunk: int, *, axis: int = 0, todo: Iterable[int] | None = None,
               on_chunk: Callable | None = None, keep: bool = True, desc: str = "simulate", progress: bool | None = False,
               sharding=None) -> dict[str, np.ndarray] | None:
    """Run ``call(indices)`` over realizations ``0 .. realizations − 1`` in chunks of ``chunk``.

    ``indices`` is a uint32 array of length ``chunk`` (padded past ``realizations``: one compiled
    program for every chunk; at least 2) or, with ``sharding``, a length rounded up to a multiple
    of the device count (at least 2 per device) and placed with that sharding. The outputs (dicts
    of arrays whose ``axis`` runs over the chunk's realizations) are trimmed to the valid
    realizations; ``on_chunk(c, start, stop, arrays)`` is called as each chunk finishes; ``todo``
    restricts the chunks run (resume). Returns the outputs concatenated along ``axis``
    (``keep=False``: ``None``)."""
    from tqdm.auto import tqdm

    n_chunks = -(-realizations // chunk)
    todo = list(range(n_chunks)) if todo is None else list(todo)
    # at least 2 realizations per device: XLA compiles a length-1 realization axis differently
    # (degenerate dimensions removed) and its float results then differ in the last bit
    n_dev = 1 if sharding is None else sharding.mesh.size
    width = max(-(-chunk // n_dev), 2) * n_dev
    parts: dict[int, Mapping[str, np.ndarray]] = {}
    bar = tqdm(total=n_chunks, initial=n_chunks - len(todo), desc=desc, unit="chunk", leave=False,
               disable=(not progress) if progress is not None else None)
    try:
        for c in todo:
            start, stop = c * chunk, min((c + 1) * chunk, realizations)
            idx_np = np.arange(start, start + width, dtype=np.uint32)
            if sharding is None:
                idx = jnp.asarray(idx_np)
            else:
                idx = jax.make_array_from_callback((width,), sharding, lambda i: idx_np[i])
            out = call(idx)
            arrays = {k: np.take(np.asarray(v), np.arange(stop - start), axis=axis) for k, v in out.items()}
            if on_chunk is not None:
                on_chunk(c, start, stop, arrays)
            if keep:
                parts[c] = arrays
            bar.update(1)
    finally:
        bar.close()
    if not keep:
        return None
    order = sorted(parts)
    return {k: np.concatenate([parts[c][k] for c in order], axis=axis) for k in parts[order[0]]}
