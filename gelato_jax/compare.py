r"""Paired comparison of policies on common random numbers (``gelato compare``).

Every policy is simulated on the **same** exogenous draws: realization ``r`` uses
``fold_in(key(seed), r)`` and round ``t`` ``fold_in(k_r, t)`` exactly as ``simulate`` does (the
draws of a round never depend on the policy: all ``γ_max`` entropies and uniforms are drawn
whether or not they are used). Per-realization time averages of two policies are therefore
paired, and the confidence interval of their difference is a paired Student-t interval over
realizations, much narrower than an unpaired one.

Metrics per realization (time averages over ``rounds``):
throughput ``mean N/D`` (tok/s, the objective), goodput ``ΣN/ΣD``, energy ``mean E`` (J/round),
energy per token ``ΣE/ΣN`` (J), energy per second ``ΣE/ΣD`` (W), queue mean/final (J),
budget, sent, tokens per round, latency per round, outage fraction, and quality for lossy policies
(UHLM): ``mismatch_rate = Σ mismatch / Σ unverified`` (fraction of kept-unverified tokens that
verification would have rejected; 0 when nothing was kept unverified) and
``mismatch_per_token = Σ mismatch / ΣN``.

Relative change of the reference (GELATO) against policy ``b``: ``100 (m_ref / m_b − 1)`` % with
``m`` the mean over realizations; its CI is the paired delta-method interval of the ratio of
means (linearisation ``d_i = x_ref,i − R x_b,i``, ``se = sd(d)/(√n m_b)``), Student-t with
``n − 1`` degrees of freedom.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any, Mapping, Sequence

import numpy as np

from .pytree import field_names

__all__ = ["METRICS", "Comparison", "compare", "paired_difference", "ratio_change", "metrics_from_sweep",
           "comparison_at", "grid_summary", "scenario_and_policies_from_args", "add_parsers"]

# (key, label, unit)
METRICS = (
    ("throughput", "throughput E[N/D]", "tok/s"),
    ("goodput", "goodput ΣN/ΣD", "tok/s"),
    ("energy", "energy per round", "J"),
    ("energy_per_token", "energy per token", "J"),
    ("power", "device power ΣE/ΣD", "W"),
    ("queue_mean", "queue mean Z", "J"),
    ("queue_final", "queue final Z_T", "J"),
    ("budget", "budget γ̃", ""),
    ("sent", "sent L", ""),
    ("tokens", "tokens N per round", ""),
    ("latency", "latency D", "s"),
    ("outage", "outage fraction", ""),
    ("mismatch_rate", "mismatch rate (unverified)", ""),
    ("mismatch_per_token", "mismatched per token", ""),
)
def _chunk_metrics(scenario, policy, root, indices, aux, table, *, rounds, ar, dtype):
    """Time averages of the realizations ``indices`` on ``simulate``'s draws:
    ``simulator.simulate_chunk`` plus the comparison's derived metrics (each ``(R,)``)."""
    import jax.numpy as jnp

    from .simulator import simulate_chunk

    s = simulate_chunk(scenario, policy, root, indices, rounds=rounds, ar=ar, dtype=dtype, aux=aux, table=table)
    return {
        "throughput": s["throughput"],
        "goodput": s["goodput"],
        "energy": s["energy"],
        "energy_per_token": s["energy_per_token"],
        "power": s["energy"] / s["latency"],
        "queue_mean": s["queue"],
        "queue_final": s["queue_final"],
        "budget": s["budget"],
        "sent": s["sent"],
        "tokens": s["tokens"],
        "latency": s["latency"],
        "outage": s["outage"],
        "mismatch_rate": jnp.where(s["unverified"] > 0, s["mismatch"] / jnp.maximum(s["unverified"], 1e-30), 0.0),
        "mismatch_per_token": s["mismatch"] / s["tokens"],
    }


@functools.lru_cache(maxsize=None)
def _compiled():
    import jax

    from . import engine

    @functools.partial(jax.jit, static_argnames=("rounds", "ar", "dtype", "mesh"))
    def run(scenario, policy, root, indices, aux, table, *, rounds, ar, dtype, mesh=None):
        def chunk(s, p, r, i, a, tab):
            return _chunk_metrics(s, p, r, i, a, tab, rounds=rounds, ar=ar, dtype=dtype)

        return engine.over_devices(chunk, mesh, sharded=3)(scenario, policy, root, indices, aux, table)

    return run


def simulate_metrics(scenario, policy, *, seed: int, realizations: int, rounds: int, chunk: int | None = None, dtype=None,
                     devices: int | None = None):
    """Per-realization metrics (dict of ``(R,)`` arrays) of one policy on ``simulate``'s draws
    (each chunk's realizations split over ``devices`` local devices, default all, as ``simulate``)."""
    import jax

    from . import engine
    from .model import entropy_ar

    realizations = engine.check_positive_int("realizations", realizations)
    rounds = engine.check_positive_int("rounds", rounds)
    seed = engine.check_positive_int("seed", seed, lo=0)
    chunk = realizations if chunk is None else min(engine.check_positive_int("chunk", chunk), realizations)
    scenario, policy, dtype = engine.prepare(scenario, policy, dtype)
    ar = entropy_ar(scenario)
    root = jax.random.key(seed)
    mesh = engine.device_mesh(devices)
    aux, table = engine.precompute(scenario, policy), engine.entropy_table(scenario, dtype)
    out = engine.run_chunks(
        lambda idx: _compiled()(scenario, policy, root, idx, aux, table, rounds=rounds, ar=ar, dtype=dtype, mesh=mesh),
        realizations, chunk, desc="compare", sharding=engine.realization_sharding(mesh))
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def _t_half(sd: float, n: int, confidence: float) -> float:
    from scipy import stats

    if n < 2 or not np.isfinite(sd) or sd == 0:
        return 0.0
    return float(stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n))


def paired_difference(x, y, confidence: float = 0.95) -> dict[str, float]:
    """Mean of ``x − y`` over paired realizations with a Student-t CI."""
    d = np.asarray(x, np.float64) - np.asarray(y, np.float64)
    m = float(np.mean(d))
    h = _t_half(float(np.std(d, ddof=1)) if d.size > 1 else 0.0, d.size, confidence)
    return {"mean": m, "ci_low": m - h, "ci_high": m + h}


def ratio_change(x, y, confidence: float = 0.95) -> dict[str, float]:
    """``100 (mean x / mean y − 1)`` % with the paired delta-method CI (see module docstring).

    Returns NaNs when ``mean y`` is 0 (no relative change is defined)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    my = float(np.mean(y))
    if my == 0:
        nan = float("nan")
        return {"mean": nan, "ci_low": nan, "ci_high": nan}
    R = float(np.mean(x)) / my
    d = x - R * y
    h = _t_half(float(np.std(d, ddof=1)) if d.size > 1 else 0.0, d.size, confidence) / abs(my)
    return {"mean": 100 * (R - 1), "ci_low": 100 * (R - h - 1), "ci_high": 100 * (R + h - 1)}


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Per-realization metrics of each policy (``metrics[name][key]`` is ``(R,)``) on common draws."""

    names: tuple
    reference: str
    metrics: dict
    seed: int
    realizations: int
    rounds: int

    def summary(self, confidence: float = 0.95) -> dict[str, dict[str, dict[str, float]]]:
        """``summary[name][metric] = {mean, ci_low, ci_high}`` (unpaired Student-t per policy)."""
        out = {}
        for name in self.names:
            out[name] = {}
            for key, _, _ in METRICS:
                x = self.metrics[name][key]
                m = float(np.mean(x))
                h = _t_half(float(np.std(x, ddof=1)) if x.size > 1 else 0.0, x.size, confidence)
                out[name][key] = {"mean": m, "ci_low": m - h, "ci_high": m + h}
        return out

    def versus(self, confidence: float = 0.95) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
        """Reference vs each other policy: ``versus[b][metric] = {"diff": ..., "change_pct": ...}``
        with ``diff = ref − b`` and ``change_pct = 100 (ref/b − 1)``, paired CIs."""
        ref = self.metrics[self.reference]
        out = {}
        for name in self.names:
            if name == self.reference:
                continue
            out[name] = {
                key: {
                    "diff": paired_difference(ref[key], self.metrics[name][key], confidence),
                    "change_pct": ratio_change(ref[key], self.metrics[name][key], confidence),
                }
                for key, _, _ in METRICS
            }
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        return {f"{n}__{k}": v for n in self.names for k, v in self.metrics[n].items()}


def metrics_from_sweep(m: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """This module's ``METRICS`` from ``gelato_jax.sweep``'s per-realization metrics (same
    definitions as ``_chunk_metrics``: power ``ΣE/ΣD``, mismatch rate over kept-unverified tokens)."""
    unv, mis = np.asarray(m["unverified"], np.float64), np.asarray(m["mismatch"], np.float64)
    f = {k: np.asarray(v, np.float64) for k, v in m.items()}
    return {
        "throughput": f["throughput"], "goodput": f["goodput"], "energy": f["energy"],
        "energy_per_token": f["energy_per_token"], "power": f["energy"] / f["latency"],
        "queue_mean": f["queue"], "queue_final": f["queue_final"], "budget": f["budget"], "sent": f["sent"],
        "tokens": f["tokens"], "latency": f["latency"], "outage": f["outage"],
        "mismatch_rate": np.where(unv > 0, mis / np.maximum(unv, 1e-30), 0.0),
        "mismatch_per_token": mis / f["tokens"],
    }


def comparison_at(res, index: Sequence[int] = ()) -> Comparison:
    """The paired ``Comparison`` of a policies sweep (``sweep.sweep_policies``) at one grid point
    (``index`` over the grid fields, the axes after ``policy``)."""
    if not res.fields or res.fields[0] != "policy":
        raise ValueError("comparison_at needs a policies sweep (first axis 'policy')")
    labels = tuple(str(x) for x in res.coords["policy"])
    idx = tuple(index)
    metrics = {lab: metrics_from_sweep({k: v[(i, *idx)] for k, v in res.metrics.items()}) for i, lab in enumerate(labels)}
    return Comparison(labels, res.config["reference"], metrics, int(res.config["seed"]), res.realizations, res.rounds)


def grid_summary(res, confidence: float = 0.95) -> dict[str, Any]:
    """JSON-ready summary of a policies sweep: one entry per grid point with the grid values,
    each policy's means (Student-t CI) and the reference's paired differences and changes."""
    import itertools

    grid_fields = res.fields[1:]
    points = []
    for idx in itertools.product(*(range(len(res.coords[f])) for f in grid_fields)):
        cmp = comparison_at(res, idx)
        points.append({
            "grid": {f: float(res.coords[f][i]) for f, i in zip(grid_fields, idx)},
            "summary": cmp.summary(confidence),
            "versus": cmp.versus(confidence),
        })
    return {"command": "compare", "policies": [str(x) for x in res.coords["policy"]],
            "reference": res.config["reference"], "fields": list(grid_fields), "confidence": confidence,
            "realizations": res.realizations, "rounds": res.rounds, "seed": res.config["seed"],
            "config": res.config, "points": points}


def compare(
    scenario,
    policies: Mapping[str, Any],
    *,
    seed: int = 0,
    realizations: int = 64,
    rounds: int = 2000,
    reference: str | None = None,
    chunk: int | None = None,
    progress: bool | None = False,
) -> Comparison:
    """Simulate each policy of ``policies`` (``{label: Policy}``) on the same draws.

    Args:
      scenario: a ``Scenario``.
      policies: labels → policies (at least one).
      seed, realizations, rounds: as in ``simulate``; every policy sees the same draws.
      reference: label the others are compared against (default: ``"gelato"`` if present, else the
        first label).
    Returns:
      ``Comparison`` with paired per-realization metrics.
    """
    from .policies import Policy

    if not policies:
        raise ValueError("policies must name at least one policy")
    for label, pol in policies.items():
        if not isinstance(pol, Policy):
            raise ValueError(f"policies[{label!r}] must be a gelato_jax Policy, got {type(pol).__name__}")
        pol.validate(scenario)
    names = tuple(policies)
    if reference is None:
        reference = "gelato" if "gelato" in policies else names[0]
    if reference not in policies:
        raise ValueError(f"reference must be one of {list(names)}, got {reference!r}")
    from tqdm.auto import tqdm

    metrics = {}
    bar = tqdm(names, desc="compare", unit="policy", disable=(not progress) if progress is not None else None)
    for label in bar:
        metrics[label] = simulate_metrics(
            scenario, policies[label], seed=seed, realizations=realizations, rounds=rounds, chunk=chunk
        )
    return Comparison(names, reference, metrics, seed, realizations, rounds)


# ----------------------------------------------------------------------------- CLI
# GELATO's V in comparisons: at the defaults λ* ≈ 57 tok/s/J, so the queue settles near V·λ* ≈ 6 J
# within a few hundred rounds; with the policy default V = 1 it needs thousands of rounds and a
# short comparison would show GELATO over its energy budget. Override with --pset gelato.V=...
DEFAULT_V = 0.1
DEFAULT_POLICIES = ("gelato", "static", "dssd", "adaedl", "uhlm", "greedy", "lyapunov-only", "exit-only")


def parse_policy_specs(names: Sequence[str], psets: Sequence[str] | None, scenario=None):
    """Build ``{label: Policy}`` from registry names and ``--pset NAME.FIELD=VALUE`` overrides.

    A label may be ``label=name`` to run one registry policy twice with different fields
    (e.g. ``gelato-v2=gelato`` and ``--pset gelato-v2.V=2``). ``oracle`` is solved on
    ``scenario`` (``Oracle.solve``; its fields: ``quantiles``, ``payload``)."""
    from . import policies as P
    from .cli_inputs import parse_assignments

    labels: dict[str, str] = {}
    for item in names:
        item = item.strip()
        if not item:
            continue
        label, _, name = item.partition("=")
        name = (name or label).lower().replace("_", "-")
        if name not in P.REGISTRY and name not in P.SOLVED:
            raise ValueError(f"--policies: unknown policy {name!r}; allowed: {sorted(P.REGISTRY) + sorted(P.SOLVED)}")
        if label in labels:
            raise ValueError(f"--policies: label {label!r} given twice")
        labels[label] = name
    if not labels:
        raise ValueError("--policies must name at least one policy")
    fields: dict[str, dict[str, Any]] = {k: {} for k in labels}
    for key, value in parse_assignments(psets, flag="--pset").items():
        label, dot, field = key.partition(".")
        targets = list(labels) if label == "*" else [label]
        if not dot or (label != "*" and label not in labels):
            raise ValueError(f"--pset expects LABEL.FIELD=VALUE with LABEL in {list(labels)} or '*', got {key!r}")
        for lab in targets:
            if labels[lab] == "oracle":
                if field in ("quantiles", "payload"):
                    fields[lab][field] = value
                elif label != "*":
                    raise ValueError(f"--pset: oracle fields are quantiles, payload; got {field!r}")
                continue
            cls = P.REGISTRY[labels[lab]]
            if field in field_names(cls):
                fields[lab][field] = value
            elif label != "*":
                raise ValueError(f"--pset: {cls.__name__} has no field {field!r}; fields: {', '.join(field_names(cls))}")
    out = {}
    for lab, name in labels.items():
        if name == "oracle":
            if scenario is None:
                raise ValueError("the oracle policy needs a scenario (Oracle.solve(scenario))")
            out[lab] = P.Oracle.solve(scenario, **fields[lab])
        else:
            out[lab] = P.REGISTRY[name](**fields[lab])
    return out


def _fmt_ci(s: Mapping[str, float], pct: bool = False) -> str:
    if pct:
        if not all(np.isfinite(s[k]) and abs(s[k]) < 1e5 for k in ("mean", "ci_low", "ci_high")):
            return "n/a (reference ~ 0)"
        return f"{s['mean']:+.2f}% [{s['ci_low']:+.2f}, {s['ci_high']:+.2f}]"
    return f"{s['mean']:.4g} [{s['ci_low']:.4g}, {s['ci_high']:.4g}]"


def format_comparison(cmp: Comparison, title: str = "") -> str:
    summ = cmp.summary()
    width = max(12, *(len(n) + 2 for n in cmp.names))
    lines = [title] if title else []
    head = f"{'metric':<28}" + "".join(f"{n:>{width}}" for n in cmp.names) + "  unit"
    lines += [head, "-" * len(head)]
    for key, label, unit in METRICS:
        lines.append(f"{label:<28}" + "".join(f"{summ[n][key]['mean']:>{width}.4g}" for n in cmp.names) + f"  {unit}")
    vs = cmp.versus()
    if vs:
        lines += ["", f"{cmp.reference} vs each policy: paired change 100·(ref/other − 1) with 95% CI"]
        keys = ("throughput", "goodput", "energy", "energy_per_token", "queue_mean")
        lines.append(f"{'policy':<16}" + "".join(f"{k:>36}" for k in keys))
        for name, d in vs.items():
            lines.append(f"{name:<16}" + "".join(f"{_fmt_ci(d[k]['change_pct'], True):>36}" for k in keys))
        lines += ["", f"{cmp.reference} − policy: paired difference with 95% CI"]
        lines.append(f"{'policy':<16}" + "".join(f"{k:>36}" for k in keys))
        for name, d in vs.items():
            lines.append(f"{name:<16}" + "".join(f"{_fmt_ci(d[k]['diff']):>36}" for k in keys))
    return "\n".join(lines)


def _policy_fields(p) -> dict:
    out = {}
    for f in field_names(p):
        v = getattr(p, f)
        if hasattr(v, "shape") and np.ndim(v) > 0:
            v = f"array{tuple(np.shape(v))}"  # oracle tables: too large for the sidecar
        out[f] = v
    return out


def comparison_record(cmp: Comparison, scenario, policies: Mapping[str, Any], wall: float) -> dict:
    return {
        "command": "compare",
        "names": list(cmp.names),
        "reference": cmp.reference,
        "policies": {
            lab: {"class": type(p).__name__, "fields": _policy_fields(p)}
            for lab, p in policies.items()
        },
        "scenario": scenario.to_dict(),
        "seed": cmp.seed,
        "realizations": cmp.realizations,
        "rounds": cmp.rounds,
        "wall_time_s": wall,
        "summary": cmp.summary(),
        "versus": cmp.versus(),
    }


def save_comparison(out_dir: str, cmp: Comparison, record: Mapping[str, Any], stem: str = "compare") -> None:
    """Write ``stem.npz`` (per-realization arrays ``label__metric``) and ``stem.json`` atomically."""
    import os

    from . import io as gio

    os.makedirs(out_dir, exist_ok=True)
    gio.save_npz(os.path.join(out_dir, f"{stem}.npz"), cmp.arrays())
    gio.save_json(os.path.join(out_dir, f"{stem}.json"), {**record, "environment": gio.environment_info()})


def load_comparison(out_dir: str, stem: str = "compare") -> tuple[Comparison, dict]:
    """Read back what ``save_comparison`` wrote."""
    import json
    import os

    with open(os.path.join(out_dir, f"{stem}.json")) as fh:
        record = json.load(fh)
    with np.load(os.path.join(out_dir, f"{stem}.npz")) as z:
        arrays = {k: z[k] for k in z.files}
    names = tuple(record["names"])
    metrics = {n: {k.split("__", 1)[1]: v for k, v in arrays.items() if k.split("__", 1)[0] == n} for n in names}
    cmp = Comparison(names, record["reference"], metrics, record["seed"], record["realizations"], record["rounds"])
    return cmp, record


def scenario_and_policies_from_args(args, default_names: Sequence[str] = DEFAULT_POLICIES, *, grid: bool = False):
    """``(Scenario, {label: Policy})`` of ``gelato compare`` and ``gelato sweep --policies``.

    The scenario comes from ``--config`` (a ``[scenario]`` table or top-level keys) and ``--set``
    (scenario fields only); policies from ``--policies`` and ``--pset LABEL.FIELD=VALUE``. GELATO
    and Lyapunov-only default to ``V = DEFAULT_V`` unless a ``--pset`` sets their ``V``. A
    ``[policy]`` table or a policy field in ``--set`` is refused (it names one policy; here
    ``--pset`` says which), never dropped. ``grid``: the policies will run over a grid, where the
    oracle (solved for one scenario) is refused before it is solved."""
    from .cli_inputs import CLIError, parse_assignments, read_model_tables
    from .scenario import Scenario

    scen_kw: dict[str, Any] = {}
    if getattr(args, "config", None):
        scen_kw, pol_kw, pname = read_model_tables(args.config)
        if pol_kw or pname is not None:
            raise CLIError(f"{args.config}: a [policy] table names one policy; with several policies use "
                           "--policies and --pset LABEL.FIELD=VALUE")
    from . import policies as P

    for k, v in parse_assignments(getattr(args, "set", None)).items():
        if k not in field_names(Scenario):
            owners = sorted(n for n, c in P.REGISTRY.items() if k in field_names(c))
            hint = f" ({k!r} is a policy field of {', '.join(owners)}: use --pset LABEL.{k}=VALUE)" if owners else ""
            raise CLIError(f"--set: unknown scenario field {k!r}{hint}; fields: {', '.join(field_names(Scenario))}")
        scen_kw[k] = v
    scenario = Scenario.from_dict(scen_kw)
    names = [n for n in args.policies.split(",") if n.strip()] if args.policies else list(default_names)
    if grid and any((n.partition("=")[2] or n).strip() == "oracle" for n in names):
        raise CLIError("the oracle policy is solved for one scenario; it cannot run over a --grid "
                       "(drop it, or compare it without --grid)")
    psets = list(args.pset or [])
    for item in names:  # GELATO-family default V for comparisons (see DEFAULT_V)
        label, _, name = item.strip().partition("=")
        if (name or label) in ("gelato", "lyapunov-only") and not any(
            p.split("=", 1)[0].strip() in (f"{label}.V", "*.V") for p in psets
        ):
            psets.insert(0, f"{label}.V={DEFAULT_V}")
    return scenario, parse_policy_specs(names, psets, scenario)


def grid_from_args(args) -> dict[str, list[float]]:
    """``--grid-file`` then ``--grid FIELD=VALUES`` (later wins); ``policy=a,b`` is an alias of
    ``--policies a,b`` (it sets ``args.policies``; both at once are refused)."""
    from .sweep import parse_grid_spec, read_grid_file

    grid: dict[str, list[float]] = {}
    if getattr(args, "grid_file", None):
        grid.update(read_grid_file(args.grid_file))
    for spec in getattr(args, "grid", None) or ():
        name, _, values = spec.partition("=")
        if name.strip() == "policy":
            if getattr(args, "policies", None):
                raise ValueError("--grid policy=... and --policies both name the policies; give one")
            args.policies = values
            continue
        name, vals = parse_grid_spec(spec)
        grid[name] = vals
    return grid


def format_grid(summary: Mapping[str, Any]) -> str:
    """Text table of ``grid_summary``: per grid point, each policy's throughput, goodput and
    energy, and the reference's paired change against each other policy (95 % CI)."""
    ref = summary["reference"]
    lines = []
    for pt in summary["points"]:
        head = ", ".join(f"{f}={v:.4g}" for f, v in pt["grid"].items()) or "(single point)"
        lines.append(head)
        for lab in summary["policies"]:
            m = pt["summary"][lab]
            line = (f"  {lab:<16} throughput {m['throughput']['mean']:9.4g}  goodput {m['goodput']['mean']:9.4g} tok/s"
                    f"  energy {m['energy']['mean']:9.4g} J/round")
            if lab != ref:
                v = pt["versus"][lab]
                line += (f"   {ref} vs {lab}: goodput {_fmt_ci(v['goodput']['change_pct'], True)}"
                         f", energy {_fmt_ci(v['energy']['change_pct'], True)}")
            lines.append(line)
    return "\n".join(lines)


def cmd_compare(args) -> int:
    import json

    from . import io as gio

    grid = grid_from_args(args)
    scenario, pols = scenario_and_policies_from_args(args, grid=bool(grid))
    if args.out:
        gio.check_output_dir(args.out)
    t0 = time.time()
    if grid:
        from .sweep import sweep_policies

        res = sweep_policies(scenario, pols, grid, reference=args.reference, seed=args.seed,
                             realizations=args.realizations, rounds=args.rounds, chunk=args.chunk, out=args.out,
                             progress=False if args.quiet else None)
        wall = time.time() - t0
        summary = grid_summary(res)
        if args.json:
            print(json.dumps(gio.jsonable({**summary, "wall_time_s": wall, "out": args.out}), indent=2))
        else:
            print(f"gelato compare: {', '.join(summary['policies'])} over "
                  f"{' x '.join(f'{f}[{len(res.coords[f])}]' for f in summary['fields'])} on common random numbers\n"
                  f"{res.realizations} realizations x {res.rounds} rounds, seed {args.seed}, {wall:.1f} s"
                  f" -> {args.out or '(memory)'}; paired change 100·(ref/other − 1) with 95% CI")
            print(format_grid(summary))
        return 0
    cmp = compare(
        scenario,
        pols,
        seed=args.seed,
        realizations=args.realizations,
        rounds=args.rounds,
        reference=args.reference,
        chunk=args.chunk,
        progress=None if not args.quiet else False,
    )
    wall = time.time() - t0
    record = comparison_record(cmp, scenario, pols, wall)
    if args.out:
        save_comparison(args.out, cmp, record)
    if args.json:
        print(json.dumps(gio.jsonable(record), indent=2))
    else:
        title = (
            f"gelato compare: {', '.join(cmp.names)} on common random numbers\n"
            f"{cmp.realizations} realizations x {cmp.rounds} rounds, seed {cmp.seed}, {wall:.1f} s"
        )
        print(format_comparison(cmp, title))
    return 0


def add_policy_args(p, default: str = f"default: {','.join(DEFAULT_POLICIES)}") -> None:
    """``--policies``, ``--pset`` and ``--reference`` (``gelato compare``, ``gelato sweep``)."""
    p.add_argument("--policies", help=f"comma-separated registry names (or oracle), or label=name ({default})")
    p.add_argument("--pset", action="append", metavar="LABEL.FIELD=VALUE",
                   help=f"policy field override; LABEL '*' = every policy that has FIELD (gelato and lyapunov-only default to V={DEFAULT_V} here)")
    p.add_argument("--reference", help="label compared against (default: gelato)")


def add_grid_args(p) -> None:
    """``--grid FIELD=VALUES`` (repeatable) and ``--grid-file FILE.toml`` (``grid_from_args``)."""
    p.add_argument("--grid", action="append", metavar="FIELD=VALUES",
                   help="grid axis: FIELD=logspace:A:B:N | linspace:A:B:N | v1,v2,... (repeatable; policy=a,b = --policies)")
    p.add_argument("--grid-file", metavar="FILE.toml", help="TOML with a [grid] table (FIELD = [..] or \"logspace:A:B:N\")")


def add_parsers(subparsers) -> None:
    from .cli_inputs import nonneg_int, positive_int

    p = subparsers.add_parser(
        "compare",
        help="run several policies on common random numbers (optionally over a --grid); paired 95%% CIs",
        description=(
            "Simulate policies on the same channel, entropy and acceptance draws and report throughput, "
            "goodput, energy, energy per token, queue and quality with paired 95% confidence intervals "
            "of the reference (default gelato) against each policy. With --grid, every policy runs at "
            "every grid point on the same draws (one resumable folder with --out; summary.json holds "
            "one entry per grid point)."
        ),
    )
    add_policy_args(p)
    p.add_argument("--config", metavar="FILE.toml", help="scenario TOML ([scenario] table or top-level keys)")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="override a scenario field (repeatable; W_dl=W ties the downlink bandwidth to W)")
    add_grid_args(p)
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--realizations", type=positive_int, default=64)
    p.add_argument("--rounds", type=positive_int, default=2000)
    p.add_argument("--chunk", type=positive_int, default=None, help="realizations per compiled call (and per saved chunk with --grid)")
    p.add_argument("--out", metavar="DIR", help="save results here (compare.npz + compare.json; with --grid a resumable sweep folder)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_compare)
