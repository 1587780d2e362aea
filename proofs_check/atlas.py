r"""Tightness atlas (issue 13 item 6): the tight constant of the stationary Lagrangian gap over a
grid of scenarios.

``tightness_atlas(scenario, policy, grid)`` runs, per grid point (the base scenario with the grid's
fields set; every combination of the values), the C = 0 configuration ``configuration`` of
``proofs_check.run.derive_configs`` ((a) exact DPP by default; (b) GELATO with the exact proxy) and
measures:

* ``T*``, ``λ*``, ``B`` (and ``B_worst``), ``ε``, ``V₀ = ε/λ*`` (``proofs_check.theory_adapter``);
* a modest stationary sweep (``proofs_check.sweep.lagrangian_sweep``, warm start ``Z_0 = Vλ*``)
  at ``n_V`` values of ``V`` in the asymptotic range, sized from the quadrature's
  ``κ = −de/dλ`` (``proofs_check.tightness.price_quadrature``): the window holds
  ``relax_times`` relaxation times ``V/κ`` at the largest ``V`` (``window_fraction`` ≥ 0.95), the
  largest ``V`` as large as the horizon cap allows (up to ``V₀·10^top_decades``) and, where the cap
  allows, the smallest ``V`` at least ``V_linear`` (``tightness.linearity``: where the queue's
  linearisation holds) and ``10·V₀`` (``plan_stationary``);
* ``κ̂ = lim V·G_L`` with its CI, the second-order prediction ``σ²/4``, ``κ̂/B``, ``κ̂/(σ²/4)``, the
  regime and the flattening verdict (``tightness.tightness_summary``).

Each finished point is written atomically to ``out/points/point_<index>.json`` with a hash of
everything that determines it (scenario, policy, sizes, seed, configuration); a rerun with the
same ``out`` skips points whose file carries the same hash. ``out/atlas.json`` holds every point
under ``"points"``; with two grid fields of more than one value, heatmaps ``out/atlas_<q>.png``.

Float64 like ``proofs_check.verify``: with ``jax_enable_x64`` off the atlas runs in a child Python
with ``JAX_ENABLE_X64=1``.

Points are run one after another (each its own compiled sweep: a field such as ``gamma_max``
changes the shapes), not stacked into one program.

Several processes (``jax.distributed``; ``gelato launch --processes N -- tightness ...``, or
``gelato tightness --coordinator/--num-processes/--process-id``, SLURM, TPU pods:
docs/distributed.md): process 0 lists the points still to run (no point file with the right
hash), every process runs the points it owns (``gelato_jax.distributed.owned``: round-robin over
that list) on its own devices and writes their point files, and after a barrier process 0 merges
all point files into ``atlas.json`` and draws the heatmaps. A point's seed is the root seed (no
process index, no point count enters it), so every point, and ``atlas.json``'s numbers, are the
same for any process count; a process killed mid-run leaves only whole point files and a rerun
(any process count) resumes from them. ``out`` must be a folder every process can read and
write; the processes must already compute in float64 (``jax_enable_x64`` on before
``jax.distributed.initialize``): the float64 child process cannot join the job.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import sys
import time
from typing import Any, Callable

import numpy as np

from gelato_jax.pytree import field_names

from .sizes import parse_size_overrides

__all__ = ["AtlasSizes", "ATLAS_QUICK", "ATLAS_FULL", "tightness_atlas", "parse_grid", "parse_sizes", "plan_stationary",
           "ATLAS_CONFIGURATIONS"]

ATLAS_CONFIGURATIONS = ("a", "b")
_VERSION = 1


@dataclasses.dataclass(frozen=True)
class AtlasSizes:
    """Sizes of one atlas point."""

    realizations: int  # of the stationary sweep, per V
    chunk: int
    n_V: int  # V values per point
    decades: float  # span of the V values (log10 V_max/V_min)
    relax_times: float  # relaxation times V/κ in the window at the largest V
    top_decades: float  # V_max ≤ V₀·10^top_decades
    burn: float  # fraction of the horizon discarded
    min_rounds: int
    rounds_cap: int  # the horizon never exceeds this (V_max is lowered instead)
    quantiles: int  # optimum()/theory quantisation (fallback only: the exact method is used)
    plan_quantiles: int  # quadrature nodes for κ when planning the V values
    tightness_quantiles: int  # quadrature nodes of tightness_summary
    sim_realizations: int  # fixed-price simulation (σ² where the energy of a round is random)
    sim_rounds: int


# --quick: 32 realizations, 3 V over half a decade, 20,000–60,000 rounds: ≤ 5.8·10⁶ rounds per point
# (the minimum horizon keeps the CI of κ̂ near ±10–30 % where the relaxation is fast)
ATLAS_QUICK = AtlasSizes(realizations=32, chunk=32, n_V=3, decades=0.5, relax_times=5.0, top_decades=3.5, burn=0.1, min_rounds=20_000,
                         rounds_cap=60_000, quantiles=1024, plan_quantiles=4096, tightness_quantiles=16384,
                         sim_realizations=16, sim_rounds=1000)
ATLAS_FULL = AtlasSizes(realizations=256, chunk=128, n_V=4, decades=1.0, relax_times=10.0, top_decades=4.5, burn=0.1, min_rounds=10_000,
                        rounds_cap=1_000_000, quantiles=4096, plan_quantiles=16384, tightness_quantiles=65536,
                        sim_realizations=256, sim_rounds=20_000)


# ----------------------------------------------------------------------------- inputs
def parse_grid(grid) -> dict[str, list]:
    """``grid``: a mapping ``field → values`` (a list, a number or a spec string) or a list of
    ``FIELD=VALUES`` strings (``gelato_jax.sweep.parse_grid_spec``: ``v1,v2``, ``logspace:a:b:n``,
    ``linspace:a:b:n``). Every field must be a ``Scenario`` field; ``ValueError`` otherwise."""
    from gelato_jax.scenario import Scenario
    from gelato_jax.sweep import _parse_values, parse_grid_spec

    if isinstance(grid, dict):
        items = [(str(k), _parse_values(str(k), v)) for k, v in grid.items()]
    else:
        items = [parse_grid_spec(t) for t in ([grid] if isinstance(grid, str) else list(grid))]
    if not items:
        raise ValueError("tightness atlas: --grid needs at least one FIELD=VALUES")
    out: dict[str, list] = {}
    for name, vals in items:
        if name not in field_names(Scenario):
            raise ValueError(f"--grid: {name!r} is not a scenario field; scenario fields: {', '.join(field_names(Scenario))}")
        if name in out:
            raise ValueError(f"--grid: field {name!r} given twice")
        out[name] = list(vals)
    return out


def parse_sizes(base: AtlasSizes, items) -> AtlasSizes:
    """``base`` with the ``FIELD=VALUE`` overrides in ``items`` (``gelato tightness --size``): any
    ``AtlasSizes`` field; integers >= 1 (``n_V`` >= 2), ``burn`` in [0, 1), the other numbers > 0.
    ``ValueError`` (one line) otherwise."""
    return parse_size_overrides(base, items, int_min={"n_V": 2},
                                float_rules={"burn": (lambda v: 0.0 <= v < 1.0, "in [0, 1)")},
                                default_float=(lambda v: v > 0, "a finite number > 0"))


def _points(grid: dict[str, list]) -> list[dict[str, Any]]:
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


def _policy_dict(policy) -> dict[str, Any]:
    from .run import _py

    return {n: _py(getattr(policy, n)) for n in field_names(policy)}


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- one point
def plan_stationary(kappa: float, V0: float, sizes: AtlasSizes, V_linear: float | None = None) -> tuple[np.ndarray, int, str]:
    r"""``(Vs, rounds, note)``: ``n_V`` values over ``decades`` decades ending at ``V_max``, and a
    horizon whose window ``(1 − burn)·rounds`` holds ``relax_times`` relaxation times ``V_max/κ``.

    The second-order constant is a large-``V`` limit, so ``V_max`` is as large as the horizon cap
    allows, ``V_cap = κ·(1 − burn)·rounds_cap/relax_times``, up to ``V₀·10^top_decades`` (beyond it
    ``G_L`` sinks under the sweep's resolution); and at least ``10^decades·max(10·V₀, V_linear)``
    (the whole grid in the range where the queue's linearisation holds) when the cap allows. When
    the cap keeps the grid below ``V_linear`` (or ``10·V₀``) a note says so."""
    V_lo_want = max(10.0 * V0, V_linear or 0.0)
    V_cap = kappa * (1.0 - sizes.burn) * sizes.rounds_cap / sizes.relax_times
    V_hi = min(V0 * 10.0**sizes.top_decades, V_cap)
    V_hi = max(V_hi, min(V_lo_want * 10.0**sizes.decades, V_cap))
    note = ""
    if V_hi * 10.0**-sizes.decades < V_lo_want * (1 - 1e-9):
        need = sizes.relax_times * V_lo_want * 10.0**sizes.decades / kappa / (1.0 - sizes.burn)
        note = (f"the asymptotic range V >= {V_lo_want:.3g} needs {need:.3g} rounds (> cap {sizes.rounds_cap}); "
                f"V lowered to V_max = kappa*(1-burn)*cap/{sizes.relax_times:g} = {V_hi:.3g}")
    need = sizes.relax_times * V_hi / kappa / (1.0 - sizes.burn)
    rounds = int(min(sizes.rounds_cap, max(sizes.min_rounds, math.ceil(need / 100.0) * 100)))
    Vs = V_hi * np.logspace(-sizes.decades, 0.0, sizes.n_V)
    return Vs, int(rounds), note


def _run_point(index: int, point: dict, scenario, policy, configuration: str, sizes: AtlasSizes, seed: int) -> dict[str, Any]:
    from gelato_jax.scenario import Scenario

    from . import checks
    from .run import _policy_for, _proxy_is_exact, derive_configs
    from .sweep import lagrangian_sweep
    from .theory_adapter import theory_constants
    from .tightness import linearity, price_quadrature, tightness_summary

    t0 = time.time()
    base = scenario if scenario is not None else Scenario()
    scen = Scenario.from_dict({**base.to_dict(), **point})
    cfg = {c.name.split("-", 1)[0]: c for c in derive_configs(scen, policy)}[configuration]
    rec: dict[str, Any] = {"index": index, "point": dict(point), "configuration": cfg.name, "notes": []}
    if cfg.not_applicable:
        rec.update(status="not applicable", reason=cfg.not_applicable)
        return rec
    s, p = _policy_for(cfg, rec["notes"])
    th = theory_constants(s, p, quantiles=sizes.quantiles)
    if _proxy_is_exact(p) and getattr(p, "proxy", None) == "mean" and th.delta_T not in (None, 0.0):
        # as in proofs_check.run.run_config: (a)'s mean proxy is E[N/D | γ, h] analytically; theory.bounds
        # measures δ_T against its sampled exact table
        rec["notes"].append(f"theory.bounds reports delta_T = {th.delta_T:.3g} against its sampled exact table; the mean proxy "
                            "is exact by construction here (exit=none, payload=full): C = 0")
        th.delta_T = 0.0
    rec.update(T_star=th.T_star, lambda_star=th.lambda_star, B=th.B, B_worst=th.B_worst, eps=th.eps, delta_T=th.delta_T,
               T_star_method=th.T_star_method)
    need = th.need("T_star", "lambda_star", "B", "eps")
    if need:
        rec.update(status="not run", reason=need)
        return rec
    if th.delta_T is not None and th.delta_T > 0:
        rec.update(status="not run", reason=f"delta_T = {th.delta_T:.3g} > 0: C > 0, no 1/V law and no tight constant")
        return rec
    lam = float(th.lambda_star)
    V0 = th.eps / lam if lam > 0 else 1e-3
    quad = price_quadrature(s, p, quantiles=sizes.plan_quantiles)
    kappa = quad.kappa(lam) if lam > 0 else quad.kappa(0.0)
    if not kappa > 0:
        rec.update(status="not run", reason=f"kappa = -de/dlambda = {kappa:.3g} at lambda*: no relaxation time to size the sweep")
        return rec
    m = quad.moments(lam)
    sig2 = max(m["energy_sq"] - m["energy"] ** 2, 1e-300)
    V_lin = linearity(quad, lam, sig2, kappa, [V0])["V_linear"] if lam > 0 else None
    Vs, rounds, note = plan_stationary(kappa, V0, sizes, V_lin)
    if note:
        rec["notes"].append(note)
    burn = int(sizes.burn * rounds)
    ls = lagrangian_sweep(s, p, Vs, np.full(Vs.shape, burn), lam, z0=Vs * lam, seed=seed + 2, realizations=sizes.realizations,
                          rounds=rounds, chunk=min(sizes.chunk, sizes.realizations), progress=False, desc=f"atlas point {index}")
    ls.pop("_calls", None)
    v_sl = checks.check_lagrangian_slope(Vs, ls["regret_w"], queue_mean=ls["queue_w"], seed=seed, n_resamples=999,
                                         min_decades=min(1.0, sizes.decades) - 1e-6)
    t = tightness_summary(s, p, {"lambda_star": lam, "B": th.B}, ls, Vs=Vs, rounds=rounds, burn=burn,
                          quantiles=sizes.tightness_quantiles, sim_realizations=sizes.sim_realizations, sim_rounds=sizes.sim_rounds,
                          seed=seed + 3, slope=v_sl.details.get("slope"), slope_ci=v_sl.details.get("slope_ci"))
    meas = t["measured_constant"]
    rec.update(
        status="done", V0=V0, V=Vs.tolist(), rounds=rounds, burn=burn, realizations=sizes.realizations,
        kappa_plan=float(kappa), V_linear=V_lin,
        measured_constant=meas, measured_ci=t["measured_ci"], predicted_constant=t["predicted_constant"],
        ratio_measured_to_B=(meas / th.B) if th.B else None, ratio_B_to_measured=t["ratio_B_to_measured"],
        ratio_measured_to_predicted=t["ratio_measured_to_predicted"], regime=t["regime"], predicted_slope=t["predicted_slope"],
        slope=v_sl.details.get("slope"), slope_ci=v_sl.details.get("slope_ci"), prediction_applies=t["prediction_applies"],
        flattening=t["flattening"]["verdict"], sigma2=t["sigma2"], kappa=t["kappa"], floors=t["floors"], tightness=t,
    )
    rec["wall_s"] = time.time() - t0
    return rec


# ----------------------------------------------------------------------------- output
def _atomic_json(path: str, obj) -> None:
    from .report import _plain

    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(_plain(obj), fh, indent=1)
    os.replace(tmp, path)


_HEAT = (("ratio_measured_to_B", "κ̂ / B (measured constant over the theorem's)", True),
         ("ratio_measured_to_predicted", "κ̂ / (σ²/4) (measured over second-order prediction)", False),
         ("measured_constant", "κ̂ = lim V·G_L (tok/s)", True))


def _heatmaps(result: dict, out: str) -> list[str]:
    varying = [k for k, v in result["grid"].items() if len(v) > 1]
    if len(varying) != 2:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fx, fy = varying
    xs, ys = result["grid"][fx], result["grid"][fy]
    files = []
    for key, title, log in _HEAT:
        Z = np.full((len(ys), len(xs)), np.nan)
        for pt in result["points"]:
            v = pt.get(key)
            if v is None or pt.get("status") != "done":
                continue
            Z[ys.index(pt["point"][fy]), xs.index(pt["point"][fx])] = float(v)
        fig, ax = plt.subplots(figsize=(1.2 * len(xs) + 3, 0.9 * len(ys) + 2.5))
        data = np.log10(np.where(Z > 0, Z, np.nan)) if log else Z
        im = ax.imshow(data, origin="lower", aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs])
        ax.set_yticks(range(len(ys)), [f"{y:g}" for y in ys])
        ax.set_xlabel(fx)
        ax.set_ylabel(fy)
        for i in range(len(ys)):
            for j in range(len(xs)):
                if np.isfinite(Z[i, j]):
                    ax.text(j, i, f"{Z[i, j]:.3g}", ha="center", va="center", color="w", fontsize=8)
        fig.colorbar(im, ax=ax, label=("log10 " if log else "") + key)
        ax.set_title(f"{title}\nconfiguration {result['configuration']}", fontsize=9)
        fig.tight_layout()
        path = os.path.join(out, f"atlas_{key}.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        files.append(path)
    return files


def _progress_fn(progress) -> Callable[[int, int, dict, bool], None]:
    if callable(progress):
        return progress
    if progress is False:
        return lambda *a: None

    def show(i, n, rec, skipped):
        what = "skipped (finished)" if skipped else f"{rec.get('status')} in {rec.get('wall_s') or 0.0:.0f} s"
        if rec.get("reason"):
            what += f" ({rec['reason']})"
        print(f"[atlas {i + 1}/{n}] {rec['point']}: {what}", file=sys.stderr, flush=True)

    return show


# ----------------------------------------------------------------------------- entry point
def tightness_atlas(scenario=None, policy=None, grid=None, *, quick: bool = True, seed: int = 0, out=None, progress=None,
                    configuration: str = "a", sizes: AtlasSizes | None = None, figures: bool = True) -> dict[str, Any]:
    r"""The tight constant over ``grid`` (see the module docstring); returns ``{"grid", "fields",
    "configuration", "sizes", "seed", "points": [one dict per grid point], "heatmaps", "wall_s",
    "environment"}``. Each point: ``point`` (its field values), ``status`` (``done``, ``not run``,
    ``not applicable`` with ``reason``), ``T_star``, ``lambda_star``, ``B``, ``B_worst``, ``V``,
    ``rounds``, ``measured_constant``, ``measured_ci``, ``predicted_constant``,
    ``ratio_measured_to_B``, ``ratio_measured_to_predicted``, ``regime``, ``flattening``,
    ``sigma2``, ``kappa``, ``tightness`` (the full ``tightness_summary``), ``config_hash``, ``wall_s``,
    ``process`` (the process that ran it), ``resumed`` (read from an earlier run's point file).

    scenario: base ``Scenario`` (default docs/model.md §9); policy: base ``Gelato`` (as for verify);
    grid: ``{field: values}`` or ``["FIELD=VALUES", ...]`` over scenario fields; quick:
    ``ATLAS_QUICK`` (else ``ATLAS_FULL``; ``sizes`` overrides); configuration: ``"a"`` (exact DPP)
    or ``"b"`` (GELATO, exact proxy); out: folder for the per-point files, ``atlas.json`` and the
    heatmaps (a rerun resumes); progress: ``None``/``True`` one line per point on stderr, ``False``
    nothing, or a callable ``(i, n, record, skipped)`` (in-process only).

    Several processes: in a ``jax.distributed`` job (initialised before the call, with
    ``jax_enable_x64`` on) every process calls this with the same arguments and an ``out`` they
    all see; each runs the points it owns, process 0 writes ``atlas.json`` and the heatmaps, and
    every process returns the same points (see the module docstring).
    """
    g = parse_grid(grid)
    if configuration not in ATLAS_CONFIGURATIONS:
        raise ValueError(f"configuration must be one of {ATLAS_CONFIGURATIONS} (C = 0 configurations), got {configuration!r}")
    from .run import check_api_inputs

    check_api_inputs(scenario, policy, out, "the atlas runs")
    sizes = sizes or (ATLAS_QUICK if quick else ATLAS_FULL)
    # validate every point before anything runs
    from gelato_jax.scenario import Scenario

    base = scenario if scenario is not None else Scenario()
    for pt in _points(g):
        Scenario.from_dict({**base.to_dict(), **pt})
    from .run import _x64_enabled

    if _processes() > 1:
        if out is None:
            raise ValueError("a tightness atlas over several processes needs out (a folder every process can read and write)")
        if not _x64_enabled():
            raise ValueError("a tightness atlas over several processes needs jax_enable_x64 on in every process before "
                             "jax.distributed.initialize (the float64 child process cannot join the job)")
    if _x64_enabled():
        from .run import _check_float64

        _check_float64(scenario, policy)
        return _atlas_here(scenario, policy, g, sizes=sizes, seed=seed, out=out, progress=progress, configuration=configuration,
                           figures=figures, mode="in process, jax_enable_x64 already on")
    return _atlas_child(scenario, policy, g, sizes=sizes, seed=seed, out=out, progress=progress, configuration=configuration, figures=figures)


def _processes() -> int:
    """The number of processes of the ``jax.distributed`` job this process is in (1 without one;
    does not start a JAX backend when there is none)."""
    from gelato_jax import distributed

    return distributed.process_count() if distributed.is_initialized() else 1


def _point_hash(base_s, base_p, point: dict, configuration: str, sizes: AtlasSizes, seed: int) -> str:
    """The hash a point file carries: everything that determines the point's result (its
    scenario, the base policy, the configuration, the sizes, the root seed; not the process count)."""
    from gelato_jax.scenario import Scenario

    s_pt = Scenario.from_dict({**base_s.to_dict(), **point})
    return _hash({"v": _VERSION, "scenario": s_pt.to_dict(), "policy": _policy_dict(base_p), "configuration": configuration,
                  "sizes": dataclasses.asdict(sizes), "seed": seed})


def _load_point(path: str, h: str):
    """The record in the point file ``path`` if it is readable and carries the hash ``h``, else ``None``."""
    if not os.path.exists(path):
        return None
    try:
        with open(path) as fh:
            old = json.load(fh)
    except (OSError, ValueError):
        return None
    return old if isinstance(old, dict) and old.get("config_hash") == h else None


def _atlas_here(scenario, policy, grid, *, sizes, seed, out, progress, configuration, figures, mode) -> dict[str, Any]:
    import jax.numpy as jnp

    from gelato_jax import distributed

    from .run import _canonical, environment

    if jnp.zeros(()).dtype != jnp.float64:  # pragma: no cover - guarded by the caller
        raise RuntimeError("tightness atlas: JAX does not compute in float64 here")
    scenario, policy = _canonical(scenario, policy)
    from gelato_jax.policies import Gelato
    from gelato_jax.scenario import Scenario

    base_s = scenario if scenario is not None else Scenario()
    base_p = policy if policy is not None else Gelato()
    show = _progress_fn(progress)
    t0 = time.time()
    pts = _points(grid)
    pdir = None
    if out is not None:
        pdir = os.path.join(out, "points")
        os.makedirs(pdir, exist_ok=True)
    n_proc = _processes()
    rank = distributed.process_index() if n_proc > 1 else 0
    hashes = [_point_hash(base_s, base_p, pt, configuration, sizes, seed) for pt in pts]
    paths = [None if pdir is None else os.path.join(pdir, f"point_{i:04d}.json") for i in range(len(pts))]
    # process 0's view of the finished points decides what runs (another process may be writing
    # its first point file while a later one looks); every process runs the points it owns
    records: dict[int, dict] = {}
    todo = []
    if rank == 0:
        for i in range(len(pts)):
            old = None if paths[i] is None else _load_point(paths[i], hashes[i])
            if old is None:
                todo.append(i)
            else:
                old["resumed"] = True
                records[i] = old
                show(i, len(pts), old, True)
    if n_proc > 1:
        todo = distributed.share(todo, "atlas-todo")
        mine = distributed.owned(todo)
    else:
        mine = todo
    for i in mine:
        t_pt = time.time()
        rec = _run_point(i, pts[i], base_s, base_p, configuration, sizes, seed)
        rec["config_hash"] = hashes[i]
        rec["process"] = rank  # provenance, like wall_s: the numbers do not depend on it
        if rec.get("wall_s") is None:
            rec["wall_s"] = time.time() - t_pt
        if paths[i] is not None:
            _atomic_json(paths[i], rec)
            distributed.chunk_written()  # test hook: GELATO_FAULT_KILL_AFTER_CHUNKS kills a process here
        records[i] = rec
        show(i, len(pts), rec, False)
    if n_proc > 1:
        distributed.barrier("atlas-points")  # every point file is written before anyone merges
        for i in range(len(pts)):
            if i in records:
                continue
            rec = _load_point(paths[i], hashes[i])
            if rec is None:
                raise RuntimeError(f"tightness atlas: point {i}'s file {paths[i]} is missing or damaged after every "
                                   "process finished; rerun the same command to compute it")
            if i not in todo:
                rec["resumed"] = True
            records[i] = rec
    records = [records[i] for i in range(len(pts))]
    from .report import _plain

    result = {
        "grid": grid,
        "fields": list(grid),
        "configuration": configuration,
        "base_scenario": base_s.to_dict(),
        "base_policy": _policy_dict(base_p),
        "sizes": dataclasses.asdict(sizes),
        "seed": seed,
        "points": [_plain(r) for r in records],
        "wall_s": time.time() - t0,
        "environment": {**environment(mode), "processes": n_proc},
        "heatmaps": [],
    }
    if out is not None and rank == 0:  # several processes: process 0 merges
        if figures:
            result["heatmaps"] = _heatmaps(result, out)
        _atomic_json(os.path.join(out, "atlas.json"), result)
    if n_proc > 1:
        distributed.barrier("atlas-merged")  # atlas.json is there when any process returns
    return result


def _atlas_child(scenario, policy, grid, *, sizes, seed, out, progress, configuration, figures) -> dict[str, Any]:
    """``_atlas_here`` in a child Python with ``JAX_ENABLE_X64=1``; the result comes back as JSON."""
    import tempfile

    job = {"scenario": None if scenario is None else scenario.to_dict(), "policy": None if policy is None else _policy_dict(policy),
           "grid": grid, "sizes": dataclasses.asdict(sizes), "seed": seed, "out": None if out is None else os.fspath(out),
           "progress": progress if isinstance(progress, bool) else None, "configuration": configuration, "figures": figures}
    with tempfile.TemporaryDirectory(prefix="gelato-atlas-") as tmp:
        src, dst = os.path.join(tmp, "job.json"), os.path.join(tmp, "result.json")
        with open(src, "w") as fh:
            json.dump(job, fh)
        from .run import run_float64_child

        proc = run_float64_child("proofs_check.atlas", src, dst)
        if not os.path.exists(dst):
            raise RuntimeError(f"tightness atlas: the float64 child process failed (exit status {proc.returncode})")
        with open(dst) as fh:
            res = json.load(fh)
    if "error" in res:
        kind, msg = res["error"]
        raise (ValueError if kind == "ValueError" else RuntimeError)(msg)
    return res


def _child_main(src: str, dst: str) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)
    with open(src) as fh:
        job = json.load(fh)
    try:
        from gelato_jax.policies import Gelato
        from gelato_jax.scenario import Scenario

        scenario = None if job["scenario"] is None else Scenario.from_dict(job["scenario"])
        policy = None if job["policy"] is None else Gelato(**job["policy"])
        res = _atlas_here(scenario, policy, job["grid"], sizes=AtlasSizes(**job["sizes"]), seed=job["seed"], out=job["out"],
                          progress=job["progress"], configuration=job["configuration"], figures=job["figures"],
                          mode="child process with JAX_ENABLE_X64=1 (the caller's JAX had x64 off)")
    except ValueError as exc:
        res = {"error": ("ValueError", str(exc))}
    from .report import _plain

    with open(dst, "w") as fh:
        json.dump(_plain(res), fh)
    return 0
