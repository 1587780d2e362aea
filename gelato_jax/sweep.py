r"""Parameter sweeps: a grid of scenario/policy fields × realizations, sharded, chunked, resumable.

``gelato sweep --grid V=logspace:-4:1:13 --grid E_bar=0.03,0.06,0.09 --realizations 4096
--rounds 10000 --out runs/v-ebar`` runs every grid point (the Cartesian product, first field
slowest) on the same realizations. Grid fields must be pytree *leaves* of ``Scenario`` or of
the policy (numeric knobs such as ``V``, ``E_bar``, ``W``, ``delta``, ``k_H``): all grid points
then run in **one compiled program** (``vmap`` over the stacked leaves, ``vmap`` over
realizations, ``lax.scan`` over rounds; ``simulator.simulate_chunk`` per chunk).
Static fields (``gamma_max``, ``channel``, ``proxy``…) change shapes or code and are refused.

Several policies: ``gelato sweep --policies gelato,dssd,static --grid W=... --out DIR`` (or
``sweep_policies``; ``gelato compare --grid`` is the same run) runs every policy over the same
grid on common random numbers: one resumable ``sweep`` folder per policy under ``DIR``,
``DIR/sweep.json`` listing them, ``DIR/summary.json`` with each grid point's paired comparison;
``load_sweep(DIR)`` stacks them along a first axis ``policy``. ``SweepResult.to_xarray()`` and
``to_dataframe()`` label every axis (``open_dataset(DIR)`` in one call).

Sharding: the realization axis of each chunk is split over a mesh of the visible local devices
(``engine.over_devices``: every device runs its own realizations, no communication; chunks are
padded to a multiple of the device count; padded realizations are computed and dropped).
Realization ``r`` always uses the key ``fold_in(key(seed), r)``, so results are bit-identical for
any chunk size and device count.

Chunks and resume: realizations run in chunks; each finished chunk is written atomically as
``chunk-NNNNN.npz`` (metrics, shape ``(n_grid_points, chunk)``) and then its JSON sidecar
``chunk-NNNNN.json`` (config hash, sha256 of the npz, realization range, seed, versions, git
commit, wall time). ``sweep.json`` holds the configuration. Rerunning the same command skips
every chunk whose sidecar, hash and npz check out, and recomputes missing, truncated or corrupt
ones; a different configuration in the same folder is refused with the list of differences.

Several processes (a TPU pod slice, GPU hosts, or ``gelato launch --processes N -- sweep ...`` on
one machine; ``gelato_jax.distributed`` and docs/distributed.md): every process runs the same
command with ``--coordinator HOST:PORT --num-processes N --process-id I`` (or the environment
variables ``JAX_COORDINATOR_ADDRESS``/``JAX_NUM_PROCESSES``/``JAX_PROCESS_ID``, or
``--distributed`` to auto-detect SLURM and TPU pods) and the same ``--out`` folder on a shared
file system. Process 0 lists the chunks still to do and shares the list; process ``i`` computes
every ``N``-th of them on its own devices (mesh of ``jax.local_devices()``) and writes them with
the same atomic chunk files and sidecars; after a barrier every process loads the folder and
process 0 prints the summary. The folder is the same as a single-process run's, and a killed run
resumes with any process count. Without ``--chunk`` a new folder gets ``ceil(R / N)``
realizations per chunk (one chunk per process); a resumed folder keeps its chunk size.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
import json
import math
import os
import time
from typing import Any, Mapping, Sequence

import numpy as np

from .pytree import field_names, leaf_fields, static_fields

__all__ = ["SweepResult", "parse_grid_spec", "read_grid_file", "sweep", "sweep_policies", "load_sweep", "open_dataset", "add_parsers"]

_FORMAT = 2  # 2: mismatch and unverified added to METRICS (format-1 folders are refused, not mixed)
METRICS = (
    "throughput",
    "goodput",
    "energy",
    "energy_per_token",
    "arrival",
    "queue",
    "queue_final",
    "budget",
    "sent",
    "passes",
    "accepted",
    "tokens",
    "latency",
    "outage",
    "mismatch",
    "unverified",
)


# ----------------------------------------------------------------------------- grid specs
def parse_grid_spec(text: str) -> tuple[str, list[float]]:
    """``FIELD=logspace:a:b:n`` (``10^a..10^b``), ``FIELD=linspace:a:b:n`` or ``FIELD=v1,v2,...``."""
    if "=" not in text:
        raise ValueError(f"--grid expects FIELD=VALUES, got {text!r}")
    name, spec = (x.strip() for x in text.split("=", 1))
    if not name or not spec:
        raise ValueError(f"--grid expects FIELD=VALUES, got {text!r}")
    return name, _parse_values(name, spec)


def _parse_values(name: str, spec: Any) -> list[float]:
    if isinstance(spec, (list, tuple)):
        vals = list(spec)
    elif isinstance(spec, (int, float)) and not isinstance(spec, bool):
        vals = [spec]
    elif isinstance(spec, str) and spec.split(":", 1)[0] in ("logspace", "linspace"):
        parts = spec.split(":")
        if len(parts) != 4:
            raise ValueError(f"grid {name}: expected {parts[0]}:START:STOP:N, got {spec!r}")
        try:
            a, b, n = float(parts[1]), float(parts[2]), int(parts[3])
        except ValueError:
            raise ValueError(f"grid {name}: expected {parts[0]}:START:STOP:N with numbers, got {spec!r}") from None
        if n < 1:
            raise ValueError(f"grid {name}: N must be >= 1, got {n}")
        fn = np.logspace if parts[0] == "logspace" else np.linspace
        vals = fn(a, b, n).tolist()
    elif isinstance(spec, str):
        vals = []
        for t in spec.split(","):
            t = t.strip()
            if not t:
                continue
            try:
                vals.append(int(t) if t.lstrip("+-").isdigit() else float(t))
            except ValueError:
                raise ValueError(f"grid {name}: {t!r} is not a number") from None
    else:
        raise ValueError(f"grid {name}: expected a list of numbers or a spec string, got {spec!r}")
    if not vals:
        raise ValueError(f"grid {name}: no values")
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"grid {name}: values must be finite numbers, got {v!r}")
    return vals


def read_grid_file(path: str) -> dict[str, list[float]]:
    """A TOML file with a ``[grid]`` table: ``V = "logspace:-4:1:13"`` or ``E_bar = [0.03, 0.06]``."""
    from .scenario import read_toml

    data = read_toml(path)
    tbl = data.get("grid", data)
    if not isinstance(tbl, dict):
        raise ValueError(f"{path}: [grid] must be a table")
    return {str(k): _parse_values(str(k), v) for k, v in tbl.items() if not isinstance(v, dict)}


# ----------------------------------------------------------------------------- results
@dataclasses.dataclass(frozen=True)
class SweepResult:
    """Sweep results labeled by grid field.

    fields: grid field names (axis order); coords: field → coordinate vector;
    metrics: metric → array of shape ``(*[len(coords[f]) for f in fields], realizations)``
    (per-realization time averages, as in ``SimResult``); config: the sweep configuration.
    """

    fields: tuple[str, ...]
    coords: dict[str, np.ndarray]
    metrics: dict[str, np.ndarray]
    realizations: int
    rounds: int
    config: dict[str, Any]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(self.coords[f]) for f in self.fields)

    def mean(self, metric: str) -> np.ndarray:
        """Mean over realizations, shape ``self.shape``."""
        return self.metrics[metric].mean(axis=-1)

    def __getitem__(self, metric: str) -> np.ndarray:
        return self.metrics[metric]

    def __repr__(self) -> str:
        axes = ", ".join(f"{f}[{len(self.coords[f])}]" for f in self.fields)
        return (f"SweepResult({axes} x realization[{self.realizations}], {self.rounds} rounds, "
                f"metrics: {', '.join(self.metrics)})")

    def to_xarray(self):
        """An ``xarray.Dataset``: dimensions ``(*fields, "realization")``, one variable per metric,
        the grid values as coordinates and the configuration (JSON) in ``attrs["config"]``.

        Needs the optional extra ``pip install 'gelato-jax[analysis]'`` (xarray)."""
        try:
            import xarray as xr
        except ImportError:
            raise ImportError("SweepResult.to_xarray needs xarray: pip install 'gelato-jax[analysis]'") from None
        dims = (*self.fields, "realization")
        coords = {f: np.asarray(self.coords[f]) for f in self.fields}
        coords["realization"] = np.arange(self.realizations)
        data = {k: (dims, np.asarray(v)) for k, v in self.metrics.items()}
        attrs = {"rounds": self.rounds, "realizations": self.realizations,
                 "config": json.dumps(self.config, sort_keys=True, default=str)}
        return xr.Dataset(data, coords=coords, attrs=attrs)

    def to_dataframe(self):
        """A ``pandas.DataFrame`` in long form: a ``MultiIndex`` over ``(*fields, "realization")``
        and one column per metric (needs pandas, in the ``analysis`` extra)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("SweepResult.to_dataframe needs pandas: pip install 'gelato-jax[analysis]'") from None
        index = pd.MultiIndex.from_product(
            [np.asarray(self.coords[f]) for f in self.fields] + [np.arange(self.realizations)],
            names=[*self.fields, "realization"])
        return pd.DataFrame({k: np.asarray(v).ravel() for k, v in self.metrics.items()}, index=index)


# ----------------------------------------------------------------------------- configuration
def _fields_of(obj) -> dict[str, Any]:
    out = {}
    for n in field_names(obj):
        v = getattr(obj, n)
        if isinstance(v, tuple):
            v = list(v)
        elif not isinstance(v, (str, int, float, type(None))):
            v = np.asarray(v).tolist()
        out[n] = v
    return out


def _build_points(scenario, policy, grid: Mapping[str, Sequence[float]]):
    """Validate every grid point; return (fields, coords, per-point scenarios, per-point policies)."""
    from .scenario import Scenario

    pol_cls = type(policy)
    fields = tuple(grid)
    if not fields:
        raise ValueError("sweep: the grid is empty; give at least one --grid FIELD=VALUES")
    for name in fields:
        if name in field_names(pol_cls):
            owner = pol_cls
        elif name in field_names(Scenario):
            owner = Scenario
        else:
            raise ValueError(
                f"grid field {name!r} is neither a Scenario field nor a {pol_cls.__name__} field "
                f"(Scenario: {', '.join(leaf_fields(Scenario))}; {pol_cls.__name__}: {', '.join(leaf_fields(pol_cls))})"
            )
        if name in static_fields(owner):
            raise ValueError(
                f"grid field {name!r} is static in {owner.__name__} (it changes shapes or code and would "
                f"recompile); sweepable fields: {', '.join(leaf_fields(owner))}"
            )
    coords = {f: list(grid[f]) for f in fields}
    scens, pols = [], []
    for combo in itertools.product(*(coords[f] for f in fields)):
        s_kw = {f: v for f, v in zip(fields, combo) if f not in field_names(pol_cls)}
        p_kw = {f: v for f, v in zip(fields, combo) if f in field_names(pol_cls)}
        s = scenario.replace(**s_kw) if s_kw else scenario
        p = policy.replace(**p_kw) if p_kw else policy
        p.validate(s)
        scens.append(s)
        pols.append(p)
    return fields, coords, scens, pols


def _config(scenario, policy, fields, coords, *, seed, realizations, rounds, dtype) -> dict[str, Any]:
    from . import policies

    name = next((k for k, c in policies.REGISTRY.items() if c is type(policy)), type(policy).__name__)
    return {
        "format": _FORMAT,
        "scenario": _fields_of(scenario),
        "policy": name,
        "policy_fields": _fields_of(policy),
        "grid": {f: [float(v) for v in coords[f]] for f in fields},
        "grid_order": list(fields),
        "seed": int(seed),
        "realizations": int(realizations),
        "rounds": int(rounds),
        "dtype": str(dtype),
    }


def _hash(config: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def _diff(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k, "<missing>"), b.get(k, "<missing>")
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: {va!r} -> {vb!r}")
    return out


# ----------------------------------------------------------------------------- compiled kernel
def _stack(objs, fields, dtype):
    """Stack per-point pytrees: grid fields become ``(G,)`` leaves, others stay scalars.
    Returns ``(stacked, in_axes)``."""
    import jax
    import jax.numpy as jnp

    base = objs[0]
    cls = type(base)
    leaves, treedef = jax.tree_util.tree_flatten(base)
    new, axes = [], []
    for name, leaf in zip(leaf_fields(cls), leaves):
        # grid fields, and leaves derived from them (``W_dl = "W"`` ties W_dl to W), vary by point
        varies = name in fields or any(
            not np.array_equal(np.asarray(getattr(o, name)), np.asarray(getattr(base, name))) for o in objs[1:])
        if varies:
            vals = np.asarray([np.asarray(getattr(o, name)) for o in objs])
            dt = dtype if np.issubdtype(vals.dtype, np.floating) or np.issubdtype(jnp.result_type(leaf), np.floating) else vals.dtype
            new.append(jnp.asarray(vals, dt))
            axes.append(0)
        else:
            new.append(leaf)
            axes.append(None)
    return treedef.unflatten(new), treedef.unflatten(axes)


def _kernel():
    import functools

    import jax

    from .simulator import simulate_chunk

    from . import engine

    @functools.partial(jax.jit, static_argnames=("rounds", "ar", "dtype", "s_axes", "p_axes", "mesh"))
    def run(scen, pol, root, indices, table, *, rounds, ar, dtype, s_axes, p_axes, mesh=None):
        def points(scen, pol, root, indices, table):
            def per_point(s, p, tab):
                return simulate_chunk(s, p, root, indices, rounds=rounds, ar=ar, dtype=dtype, table=tab)

            # the entropy table varies with the points exactly where k_H does
            return jax.vmap(per_point, in_axes=(s_axes.tree, p_axes.tree, s_axes.tree.k_H))(scen, pol, table)

        # every device its own realizations, outputs (points, realizations)
        return engine.over_devices(points, mesh, sharded=3, out_axis=1)(scen, pol, root, indices, table)

    return run


class _Static:
    """Hashable wrapper of an ``in_axes`` pytree (static argument of the jitted kernel)."""

    def __init__(self, tree):
        import jax

        self.tree = tree
        self._key = repr(jax.tree_util.tree_flatten(tree, is_leaf=lambda x: x is None))

    def __hash__(self):
        return hash(self._key)

    def __eq__(self, other):
        return isinstance(other, _Static) and self._key == other._key


_KERNEL = None


def _get_kernel():
    global _KERNEL
    if _KERNEL is None:
        _KERNEL = _kernel()
    return _KERNEL


# ----------------------------------------------------------------------------- chunk files
def _chunk_paths(out: str, c: int) -> tuple[str, str]:
    return os.path.join(out, f"chunk-{c:05d}.npz"), os.path.join(out, f"chunk-{c:05d}.json")


def _saved_chunk(out) -> int | None:
    """The chunk size recorded in ``out/sweep.json`` (``None`` without a readable one)."""
    if out is None:
        return None
    try:
        with open(os.path.join(os.fspath(out), "sweep.json")) as fh:
            c = json.load(fh).get("chunk")
    except (OSError, ValueError, AttributeError):
        return None
    return c if isinstance(c, int) and not isinstance(c, bool) and c >= 1 else None


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _chunk_ok(out: str, c: int, config_hash: str, start: int, stop: int, n_points: int) -> bool:
    """True if chunk ``c`` is complete and intact (sidecar, config hash, checksum, shapes)."""
    npz, side = _chunk_paths(out, c)
    try:
        with open(side) as fh:
            meta = json.load(fh)
        if meta.get("config_hash") != config_hash or meta.get("start") != start or meta.get("stop") != stop:
            return False
        if _sha256_file(npz) != meta.get("npz_sha256"):
            return False
        with np.load(npz) as z:
            return all(k in z.files and z[k].shape == (n_points, stop - start) for k in METRICS)
    except (OSError, ValueError, KeyError, json.JSONDecodeError, EOFError):
        return False
    except Exception:  # zipfile.BadZipFile and friends: a damaged file is simply recomputed
        return False


def _write_chunk(out, c, arrays, meta):
    from . import io as gio

    npz, side = _chunk_paths(out, c)
    gio.save_npz(npz, arrays)
    meta = dict(meta, npz_sha256=_sha256_file(npz))
    gio.save_json(side, meta)  # the sidecar is written last: it marks the chunk as finished


# ----------------------------------------------------------------------------- the sweep
def sweep(
    scenario,
    policy,
    grid: Mapping[str, Sequence[float]],
    *,
    seed: int = 0,
    realizations: int = 1024,
    rounds: int = 10_000,
    chunk: int | None = None,
    out: str | None = None,
    dtype=None,
    devices: int | None = None,
    progress: bool | None = None,
) -> SweepResult:
    """Run ``policy`` on ``scenario`` over the Cartesian product of ``grid`` × realizations.

    Args:
      scenario, policy: the base model; ``grid`` maps leaf field names (of either) to values.
      seed: realization ``r`` uses ``fold_in(key(seed), r)`` at every grid point.
      realizations, rounds: sizes; chunk: realizations per compiled call (default: all).
      out: folder for ``sweep.json`` and the chunk files (resumable); ``None`` keeps everything
        in memory.
      dtype: float32 or float64 (default: JAX's default float).
      devices: number of devices for the mesh (default: all visible devices).
      progress: tqdm bar over chunks (``None``: only on a terminal).
    Returns:
      ``SweepResult`` (the same as ``load_sweep(out)``).
    """
    import jax
    from jax.sharding import NamedSharding, PartitionSpec

    from . import distributed, engine
    from . import io as gio
    from .model import entropy_ar

    realizations = engine.check_positive_int("realizations", realizations)
    rounds = engine.check_positive_int("rounds", rounds)
    seed = engine.check_positive_int("seed", seed, lo=0)
    if chunk is None:  # a resumed folder keeps its chunk size; N processes get one chunk each
        chunk = _saved_chunk(out) or -(-realizations // jax.process_count())
    chunk = min(engine.check_positive_int("chunk", chunk), realizations)
    mesh = engine.device_mesh(devices)  # several processes: each runs its own chunks on its own devices
    n_dev = 1 if mesh is None else mesh.size
    fields, coords, scens, pols = _build_points(scenario, policy, grid)
    prepared = [engine.prepare(s, p, dtype) for s, p in zip(scens, pols)]
    dt = prepared[0][2]
    ar = any(entropy_ar(s) for s in scens)
    config = _config(scenario, policy, fields, coords, seed=seed, realizations=realizations, rounds=rounds, dtype=dt)
    chash = _hash(config)
    n_points = len(scens)
    n_chunks = -(-realizations // chunk)
    writer = jax.process_index() == 0
    if jax.process_count() > 1 and out is None:
        raise ValueError("a sweep over several processes needs --out (a folder every process can read and write)")

    if out is not None:
        out = os.fspath(out)
        man_path = os.path.join(out, "sweep.json")
        if os.path.exists(man_path):
            try:
                with open(man_path) as fh:
                    old = json.load(fh)
            except (OSError, json.JSONDecodeError):
                old = None
            if old is not None and old.get("config_hash") != chash:
                diffs = _diff(old.get("config", {}), config)
                raise ValueError(
                    f"{out} holds a sweep with a different configuration ({'; '.join(diffs[:5]) or 'hash differs'}); "
                    "use a new --out folder or delete the old one"
                )
            if old is not None and old.get("chunk") != chunk:
                raise ValueError(
                    f"{out} was written with --chunk {old.get('chunk')}; resume with the same chunk size "
                    f"(results do not depend on it) or use a new --out folder"
                )
        if writer:
            gio.save_json(man_path, {"config": config, "config_hash": chash, "chunk": chunk, "n_chunks": n_chunks,
                                     "environment": gio.environment_info()})

    s_stack, s_axes = _stack([p[0] for p in prepared], fields, dt)
    p_stack, p_axes = _stack([p[1] for p in prepared], fields, dt)
    table = engine.entropy_table(s_stack, dt)  # one per point where k_H is on the grid (stacked on axis 0)
    idx_sharding = engine.realization_sharding(mesh)
    if mesh is not None:
        s_stack, p_stack, table = jax.device_put((s_stack, p_stack, table), NamedSharding(mesh, PartitionSpec()))
    root = jax.random.key(seed)
    kernel = _get_kernel()
    env = gio.environment_info() if out is not None else None

    todo = [c for c in range(n_chunks)
            if out is None or not _chunk_ok(out, c, chash, c * chunk, min((c + 1) * chunk, realizations), n_points)
            ] if writer else []
    if jax.process_count() > 1:  # process 0's list, round-robin: each process computes only its own chunks
        todo = distributed.owned(distributed.share(todo, "sweep-todo"))
    mem: dict[int, dict[str, np.ndarray]] = {}
    timer = [time.time()]

    def call(idx):
        timer[0] = time.time()
        res = kernel(s_stack, p_stack, root, idx, table, rounds=rounds, ar=ar, dtype=dt,
                     s_axes=_Static(s_axes), p_axes=_Static(p_axes), mesh=mesh)
        return {k: res[_SRC[k]] for k in METRICS}

    def finished(c, start, stop, arrays):
        if out is None:
            mem[c] = arrays
        else:  # every process writes the chunks it computed
            _write_chunk(out, c, arrays, {"config_hash": chash, "chunk": c, "start": start, "stop": stop,
                                          "seed": seed, "wall_time_s": time.time() - timer[0], "devices": n_dev,
                                          "process": jax.process_index(), "environment": env})
            distributed.chunk_written()

    engine.run_chunks(call, realizations, chunk, axis=1, todo=todo, on_chunk=finished, keep=False, desc="sweep",
                      progress=progress, sharding=idx_sharding)
    if out is None:
        return _assemble(config, [mem[c] for c in range(n_chunks)])
    distributed.barrier("sweep")  # several processes: every chunk is written before anyone loads
    return load_sweep(out)


_SRC = {k: k for k in METRICS}


def _assemble(config: Mapping[str, Any], parts: list[dict[str, np.ndarray]]) -> SweepResult:
    fields = tuple(config["grid_order"])
    coords = {f: np.asarray(config["grid"][f]) for f in fields}
    shape = tuple(len(coords[f]) for f in fields)
    R = int(config["realizations"])
    metrics = {}
    for k in METRICS:
        arr = np.concatenate([p[k] for p in parts], axis=1)
        if arr.shape[1] != R:
            raise ValueError(f"sweep results hold {arr.shape[1]} realizations, expected {R}")
        metrics[k] = arr.reshape(*shape, R)
    return SweepResult(fields, coords, metrics, R, int(config["rounds"]), dict(config))


def load_sweep(directory: str) -> SweepResult:
    """Load a finished sweep folder as arrays labeled by grid field (``SweepResult``).

    Raises ``ValueError`` if the folder has no ``sweep.json`` or a chunk is missing or damaged
    (rerun the same ``gelato sweep`` command to complete it)."""
    directory = os.fspath(directory)
    man_path = os.path.join(directory, "sweep.json")
    try:
        with open(man_path) as fh:
            man = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{directory}: not a sweep folder (cannot read sweep.json: {exc})") from None
    if man.get("kind") == "policies":
        return _load_policies(directory, man)
    if man.get("config", {}).get("format") != _FORMAT:
        raise ValueError(f"{directory}: sweep format {man.get('config', {}).get('format')} (this version reads "
                         f"format {_FORMAT}); rerun the sweep into a new folder")
    config, chash, chunk, n_chunks = man["config"], man["config_hash"], man["chunk"], man["n_chunks"]
    R = int(config["realizations"])
    n_points = int(np.prod([len(config["grid"][f]) for f in config["grid_order"]]))
    parts, bad = [], []
    for c in range(n_chunks):
        start, stop = c * chunk, min((c + 1) * chunk, R)
        if not _chunk_ok(directory, c, chash, start, stop, n_points):
            bad.append(c)
            continue
        with np.load(_chunk_paths(directory, c)[0]) as z:
            parts.append({k: z[k] for k in METRICS})
    if bad:
        raise ValueError(f"{directory}: {len(bad)} of {n_chunks} chunks missing or damaged (first: {bad[0]}); "
                         "rerun the same sweep command to complete it")
    return _assemble(config, parts)


# ----------------------------------------------------------------------------- policies x grid
_LABEL_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def _policy_dir(out: str, label: str) -> str:
    return os.path.join(out, f"policy-{label}")


def sweep_policies(
    scenario,
    policies: Mapping[str, Any],
    grid: Mapping[str, Sequence[float]],
    *,
    reference: str | None = None,
    seed: int = 0,
    realizations: int = 1024,
    rounds: int = 10_000,
    chunk: int | None = None,
    out: str | None = None,
    dtype=None,
    devices: int | None = None,
    progress: bool | None = None,
) -> SweepResult:
    """Every policy of ``policies`` (``{label: Policy}``) over the same grid and the same draws.

    Common random numbers: each policy runs ``sweep`` with the same ``seed``, so realization ``r``
    of every policy at every grid point uses ``fold_in(key(seed), r)`` (a round's draws never
    depend on the policy) and per-realization results are paired across policies.

    Grid fields are Scenario fields, or policy fields that *every* policy has (a field that only
    some policies have would leave the others constant along that axis: refused). With an empty
    grid the result has the single axis ``policy``.

    ``out``: one folder; policy ``label`` is a resumable ``sweep`` in ``out/policy-<label>/`` and
    ``out/sweep.json`` lists the policies (a rerun with another policy set or grid is refused).
    ``out/summary.json`` holds, per grid point, the grid values, each policy's means with 95 %
    CIs and the reference's paired differences (``gelato_jax.compare.grid_summary``).

    Returns a ``SweepResult`` whose first axis is ``policy`` (coordinates: the labels).
    """
    from . import io as gio
    from .policies import Oracle, Policy

    if not policies:
        raise ValueError("policies must name at least one policy")
    labels = tuple(policies)
    for label, pol in policies.items():
        if not isinstance(pol, Policy):
            raise ValueError(f"policies[{label!r}] must be a gelato_jax Policy, got {type(pol).__name__}")
        if not label or not set(label) <= _LABEL_OK:
            raise ValueError(f"policy label {label!r}: use letters, digits, '_', '.', '-' (it names a folder)")
        if isinstance(pol, Oracle) and grid:
            raise ValueError("the oracle policy is solved for one scenario; it cannot run over a --grid")
    if reference is None:
        reference = "gelato" if "gelato" in policies else labels[0]
    if reference not in policies:
        raise ValueError(f"reference must be one of {list(labels)}, got {reference!r}")
    if "policy" in grid:
        raise ValueError("grid field 'policy': give the policies as --policies (a policy is not a number)")
    from .scenario import Scenario

    for name in grid:
        if name in field_names(Scenario):
            continue
        lacking = [lab for lab, pol in policies.items() if name not in field_names(pol)]
        if lacking:
            raise ValueError(f"grid field {name!r} is not a Scenario field and policies {lacking} have no such field; "
                             f"sweep it per policy with separate runs, or drop those policies")
    run_grid = dict(grid) or None  # no grid: one point (``_single_point``)
    if out is not None:
        out = os.fspath(out)
        man_path = os.path.join(out, "sweep.json")
        manifest = {"kind": "policies", "format": _FORMAT, "policies": list(labels), "reference": reference,
                    "grid": {f: [float(v) for v in grid[f]] for f in grid}, "grid_order": list(grid),
                    "seed": int(seed), "realizations": int(realizations), "rounds": int(rounds)}
        if os.path.exists(man_path):
            try:
                with open(man_path) as fh:
                    old = json.load(fh)
            except (OSError, json.JSONDecodeError):
                old = None
            if old is not None:
                if old.get("kind") != "policies":
                    raise ValueError(f"{out} holds a single-policy sweep; use a new --out folder")
                diffs = _diff({k: old.get(k) for k in manifest}, manifest)
                if diffs:
                    raise ValueError(f"{out} holds a policies sweep with a different configuration "
                                     f"({'; '.join(diffs[:5])}); use a new --out folder or delete the old one")
        os.makedirs(out, exist_ok=True)
        import jax

        if jax.process_index() == 0:
            gio.save_json(man_path, manifest)
    parts = []
    for label in labels:
        kw = dict(seed=seed, realizations=realizations, rounds=rounds, chunk=chunk, dtype=dtype, devices=devices,
                  progress=progress, out=None if out is None else _policy_dir(out, label))
        if run_grid is None:
            parts.append(_single_point(scenario, policies[label], **kw))
        else:
            parts.append(sweep(scenario, policies[label], run_grid, **kw))
    res = _stack_policies(labels, reference, parts, dict(grid))
    if out is not None:
        from .compare import grid_summary

        import jax

        if jax.process_index() == 0:
            gio.save_json(os.path.join(out, "summary.json"), grid_summary(res))
    return res


def _single_point(scenario, policy, **kw) -> SweepResult:
    """A policy at one scenario as a ``SweepResult`` with no grid axis: a one-value grid over a
    leaf the policy and scenario already hold (``E_bar``, its own value), then that axis dropped."""
    res = sweep(scenario, policy, {"E_bar": [float(np.asarray(scenario.E_bar))]}, **kw)
    return SweepResult((), {}, {k: v[0] for k, v in res.metrics.items()}, res.realizations, res.rounds,
                       {**res.config, "grid": {}, "grid_order": []})


def _stack_policies(labels, reference, parts: Sequence[SweepResult], grid) -> SweepResult:
    fields = ("policy", *parts[0].fields)
    coords = {"policy": np.asarray(labels), **{f: np.asarray(parts[0].coords[f]) for f in parts[0].fields}}
    metrics = {k: np.stack([p.metrics[k] for p in parts]) for k in METRICS}
    config = {
        "kind": "policies",
        "policies": {lab: {"policy": p.config["policy"], "policy_fields": p.config["policy_fields"]}
                     for lab, p in zip(labels, parts)},
        "reference": reference,
        "scenario": parts[0].config["scenario"],
        "grid": {f: [float(v) for v in grid[f]] for f in grid},
        "grid_order": list(grid),
        "seed": parts[0].config["seed"],
        "realizations": parts[0].realizations,
        "rounds": parts[0].rounds,
        "dtype": parts[0].config["dtype"],
    }
    return SweepResult(fields, coords, metrics, parts[0].realizations, parts[0].rounds, config)


def _load_policies(directory: str, man: Mapping[str, Any]) -> SweepResult:
    labels = tuple(man["policies"])
    parts = []
    for lab in labels:
        r = load_sweep(_policy_dir(directory, lab))
        if not man["grid_order"]:
            r = SweepResult((), {}, {k: v[0] for k, v in r.metrics.items()}, r.realizations, r.rounds,
                            {**r.config, "grid": {}, "grid_order": []})
        parts.append(r)
    return _stack_policies(labels, man["reference"], parts, {f: man["grid"][f] for f in man["grid_order"]})


def open_dataset(directory: str):
    """``load_sweep(directory).to_xarray()``: a saved sweep or compare folder as an
    ``xarray.Dataset`` in one call (needs the ``analysis`` extra)."""
    return load_sweep(directory).to_xarray()


# ----------------------------------------------------------------------------- CLI
def cmd_sweep(args: argparse.Namespace) -> int:
    from .cli_inputs import scenario_and_policy_from_args

    from . import distributed
    from .compare import grid_from_args

    distributed.initialize_from_args(args)  # several processes: --coordinator/--num-processes/--process-id

    grid = grid_from_args(args)  # ``--grid policy=a,b`` sets args.policies
    if args.dtype not in (None, "float32", "float64"):
        raise ValueError(f"--dtype must be float32 or float64, got {args.dtype!r}")
    if args.policies:
        return _cmd_sweep_policies(args, grid)
    for flag, val in (("--pset", args.pset), ("--reference", args.reference)):
        if val:
            raise ValueError(f"{flag} needs --policies (several policies on common random numbers)")
    scenario, policy, name = scenario_and_policy_from_args(args)
    t0 = time.time()
    res = sweep(scenario, policy, grid, seed=args.seed, realizations=args.realizations, rounds=args.rounds,
                chunk=args.chunk, out=args.out, dtype=args.dtype, devices=args.devices,
                progress=False if args.quiet else None)
    wall = time.time() - t0
    if distributed.process_index() != 0:  # process 0 prints the summary
        return 0
    summary = {
        "out": args.out,
        "policy": name,
        "fields": list(res.fields),
        "shape": list(res.shape),
        "realizations": res.realizations,
        "rounds": res.rounds,
        "wall_time_s": wall,
        "coords": {f: res.coords[f].tolist() for f in res.fields},
        "throughput_mean": res.mean("throughput").tolist(),
        "energy_mean": res.mean("energy").tolist(),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"gelato sweep: policy={name}, grid {' x '.join(f'{f}[{len(res.coords[f])}]' for f in res.fields)} "
              f"x {res.realizations} realizations x {res.rounds} rounds, {wall:.1f} s -> {args.out or '(memory)'}")
        thr, en = res.mean("throughput").ravel(), res.mean("energy").ravel()
        for i, combo in enumerate(itertools.product(*(res.coords[f] for f in res.fields))):
            label = ", ".join(f"{f}={v:.4g}" for f, v in zip(res.fields, combo))
            print(f"  {label:<40} throughput {thr[i]:9.4g} tok/s   energy {en[i]:9.4g} J/round")
    return 0


def _cmd_sweep_policies(args: argparse.Namespace, grid) -> int:
    """``gelato sweep --policies a,b,...``: ``sweep_policies`` (common random numbers)."""
    import jax

    from . import io as gio
    from .compare import format_grid, grid_summary, scenario_and_policies_from_args

    if args.policy:
        raise ValueError("--policy and --policies exclude each other (one policy, or several on common draws)")
    if not grid:
        raise ValueError("sweep: the grid is empty; give at least one --grid FIELD=VALUES (or use gelato compare)")
    scenario, pols = scenario_and_policies_from_args(args, grid=True)
    t0 = time.time()
    res = sweep_policies(scenario, pols, grid, reference=args.reference, seed=args.seed,
                         realizations=args.realizations, rounds=args.rounds, chunk=args.chunk, out=args.out,
                         dtype=args.dtype, devices=args.devices, progress=False if args.quiet else None)
    wall = time.time() - t0
    if jax.process_index() != 0:  # process 0 prints the summary
        return 0
    summary = grid_summary(res)
    if args.json:
        print(json.dumps(gio.jsonable({**summary, "wall_time_s": wall, "out": args.out}), indent=2))
    else:
        print(f"gelato sweep: policies {','.join(summary['policies'])}, grid "
              f"{' x '.join(f'{f}[{len(res.coords[f])}]' for f in summary['fields'])} x {res.realizations} "
              f"realizations x {res.rounds} rounds, {wall:.1f} s -> {args.out or '(memory)'}")
        print(format_grid(summary))
    return 0


def add_parsers(subparsers) -> None:
    from .cli_inputs import add_model_args, nonneg_int, positive_int
    from .compare import add_grid_args, add_policy_args

    p = subparsers.add_parser("sweep", help="grid sweep over scenario/policy fields x realizations (sharded, resumable)")
    add_model_args(p)
    add_policy_args(p, default="several policies on common random numbers; without it: --policy, one policy")
    add_grid_args(p)
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--realizations", type=positive_int, default=256)
    p.add_argument("--rounds", type=positive_int, default=5000)
    p.add_argument("--chunk", type=positive_int, default=None, help="realizations per saved chunk")
    p.add_argument("--out", metavar="DIR", help="results folder (resumable); omit to keep results in memory")
    p.add_argument("--dtype", default=None, help="float32 or float64")
    p.add_argument("--devices", type=positive_int, default=None, help="devices in the mesh (default: all)")
    p.add_argument("--distributed", action="store_true",
                   help="several processes, layout auto-detected (SLURM, TPU pod, Open MPI): see docs/distributed.md")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    from .distributed import add_args as add_distributed_args

    add_distributed_args(p)  # --coordinator, --num-processes, --process-id, --connect-timeout
    p.set_defaults(func=cmd_sweep)
