"""``gelato verify [--quick] [--config FILE.toml] [--set FIELD=VALUE ...] [--only a,b] [--strict]
[--out DIR] [--json] [--seed N]``.

Runs every check of docs/model.md §8 on the five configurations derived from the scenario and policy
given with ``--config``/``--set`` (the same ``[scenario]``/``[policy]`` input as ``gelato
simulate``; ``proofs_check.run.derive_configs``) by calling the Python API
``proofs_check.verify``; writes ``report.md``, ``report.json``, ``sweep_<config>.npz`` and PNG
figures to ``--out`` (default ``verify-report``), prints a summary table (or the JSON report with
``--json``) and exits with status 1 when a claim of the theorem fails (with ``--strict``, also a
rate beyond the theorem), 0 otherwise ("not run", "inconclusive", "observation" and "not
applicable" are reported, not failures). Invalid input: one line, exit 2, nothing written. Heavy
imports happen inside ``cmd_verify`` so ``gelato --help`` stays fast.

``gelato tightness --grid FIELD=VALUES ... [--config FILE.toml] [--set f=v ...] [--configuration a|b]
[--quick] [--out DIR] [--json]``: the tightness atlas (``proofs_check.atlas.tightness_atlas``) —
per grid point ``T*``, ``λ*``, ``B``, the measured ``κ̂ = lim V·G_L`` with its CI, the
second-order ``σ²/4``, ``κ̂/B``, the regime; ``DIR/atlas.json`` (``"points"``), per-point files
(a rerun skips finished points) and heatmaps when two grid fields vary. ``--size FIELD=VALUE``
overrides one of the sizes (``proofs_check.atlas.AtlasSizes``). Several processes
(``gelato launch --processes N -- tightness ...``, ``--coordinator/--num-processes/--process-id``,
``--distributed``; docs/distributed.md): each process runs the grid points it owns, process 0
merges them into ``atlas.json`` and prints the table.

``gelato verify`` takes the same several-process flags (and ``--size FIELD=VALUE`` for any field
of ``proofs_check.run.Sizes``): each process runs the configurations and global checks it owns
(``proofs_check.run.run_verify``), process 0 writes the report and prints the summary, and sets
the exit status; the other processes print nothing and exit with 0.
"""

from __future__ import annotations

import argparse
import shlex

from gelato_jax.cli_inputs import add_model_args, nonneg_int, positive_int
from gelato_jax.pytree import field_names

__all__ = ["add_parsers", "cmd_verify", "cmd_tightness", "CONFIG_NAMES"]

CONFIG_NAMES = ("a-exact-dpp", "b-gelato-exact", "c-gelato-paper", "d-random-arrivals", "e-gauss-markov", "f-time-average")


def add_parsers(subparsers) -> None:
    p = subparsers.add_parser(
        "verify",
        help="check every claim of the drift-plus-penalty theorem (docs/model.md §8) on a scenario and write a report",
        description="Empirical verification of docs/model.md §8 on the configurations derived from the scenario "
        "(--config FILE.toml, --set FIELD=VALUE): per-slot optimality, energy on every path, O(1/V) throughput gap, "
        "O(V) queue, scaling slopes, closed forms, losslessness.",
    )
    add_model_args(p, policy=False, config_help="scenario/policy TOML file ([scenario], [policy] tables, as for simulate)")
    p.add_argument("--only", action="append", metavar="a,b",
                   help="run only these configurations: letters or names of " + ", ".join(CONFIG_NAMES) + " (comma-separated, repeatable; default a-e, and f too when the scenario's objective is time_average)")
    p.add_argument("--quick", action="store_true", help="small sizes, 1,024 realizations per V: about 4 minutes on 2 CPU cores (default: the full run, 4,096 realizations, sized to finish on 2 CPU cores within an hour)")
    p.add_argument("--strict", action="store_true", help="rates beyond the theorem (log-log slopes of §8.5) also set exit status 1")
    p.add_argument("--out", metavar="DIR", default="verify-report", help="report folder (default: verify-report)")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the summary table")
    p.add_argument("--seed", type=nonneg_int, default=0, help="root seed (default 0)")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--jobs", type=positive_int, default=None,
                   help="configurations run at the same time, in threads (default 2; the verdicts do not depend on it); "
                        "with several processes, in each process")
    p.add_argument("--size", action="append", default=None, metavar="FIELD=VALUE",
                   help="override one size of the run (--quick's or the full run's; repeatable): a field of "
                        "proofs_check.run.Sizes (realizations, chunk, lo, hi, n_coarse, n_fine, settle_factor, min_rounds, "
                        "rollout_realizations, rollout_rounds_cap, mc_samples, lossless_samples, quantiles, informative_points, "
                        "informative_decades, scaling_points, scaling_decades, scaling_rounds, scaling_burn, "
                        "scaling_realizations, tightness_quantiles, tightness_sim_realizations, tightness_sim_rounds; "
                        "the decades as LO,HI), e.g. --size realizations=256")
    p.add_argument("--distributed", action="store_true",
                   help="several processes, layout auto-detected (SLURM, TPU pod, Open MPI): see docs/distributed.md")
    from gelato_jax.distributed import add_args as add_distributed_args

    add_distributed_args(p)  # --coordinator, --num-processes, --process-id, --connect-timeout
    p.set_defaults(func=cmd_verify)

    t = subparsers.add_parser(
        "tightness",
        help="tightness atlas: the measured constant lim V*G_L vs the bound's B and the second-order sigma^2/4 over a scenario grid",
        description="Per grid point (the scenario from --config/--set with the grid's fields set): T*, lambda*, B, the measured "
        "asymptotic constant lim V*G_L with its CI from a stationary sweep, the second-order prediction sigma^2/4, their ratios "
        "and the regime (proofs_check.atlas). Resumable: finished points in --out are skipped.",
    )
    add_model_args(t, policy=False, config_help="scenario/policy TOML file ([scenario], [policy] tables, as for simulate)")
    t.add_argument("--grid", action="append", required=True, metavar="FIELD=VALUES",
                   help="a scenario field and its values: v1,v2,... | logspace:a:b:n | linspace:a:b:n (repeatable: the cartesian product)")
    t.add_argument("--configuration", choices=("a", "b"), default="a",
                   help="C = 0 configuration per point: a (exact DPP, default) or b (GELATO with the exact proxy)")
    t.add_argument("--quick", action="store_true", help="small sizes (a 2x2 grid in a few minutes on 2 CPU cores)")
    t.add_argument("--size", action="append", default=None, metavar="FIELD=VALUE",
                   help="override one size of the run (--quick's or the full run's; repeatable): realizations, chunk, n_V, "
                        "decades, relax_times, top_decades, burn, min_rounds, rounds_cap, quantiles, plan_quantiles, "
                        "tightness_quantiles, sim_realizations, sim_rounds (proofs_check.atlas.AtlasSizes), e.g. "
                        "--size realizations=128 --size rounds_cap=200000")
    t.add_argument("--out", metavar="DIR", default="tightness-atlas", help="output folder (default: tightness-atlas); a rerun resumes")
    t.add_argument("--json", action="store_true", help="print the atlas JSON instead of the table")
    t.add_argument("--seed", type=nonneg_int, default=0, help="root seed (default 0)")
    t.add_argument("--no-figures", action="store_true", help="skip the heatmaps")
    t.add_argument("--quiet", action="store_true", help="no per-point progress lines")
    t.add_argument("--distributed", action="store_true",
                   help="several processes, layout auto-detected (SLURM, TPU pod, Open MPI): see docs/distributed.md")
    add_distributed_args(t)  # --coordinator, --num-processes, --process-id, --connect-timeout
    t.set_defaults(func=cmd_tightness)


def _uses_field(cfg, field: str, base_p) -> bool:
    """Does configuration ``cfg`` (``run.derive_configs``) read the user's policy ``field``? ``V``
    is swept by every configuration; a field the configuration sets is not the user's; the bucket's
    thresholds act only with ``exit="bucket"``, ``ewma_beta`` only with ``proxy="ewma"``, the
    ratio rule's fields only in the time-average configuration (f)."""
    if field == "V" or field in cfg.policy:
        return False
    eff = {**{n: getattr(base_p, n) for n in field_names(base_p)}, **cfg.policy}
    if field in ("H_th", "Theta_th"):
        return eff["exit"] == "bucket"
    if field == "ewma_beta":
        return eff["proxy"] == "ewma"
    if field in ("ratio", "ratio_nodes"):
        return cfg.name == "f-time-average"
    return True


def refuse_unused_policy_fields(args, configs, base_p, command: str) -> None:
    """A policy field given with ``--set``/``--config`` that none of ``configs`` reads would be
    silently ignored: refuse it (one line, exit status 2)."""
    from gelato_jax.cli_inputs import explicit_policy_fields

    for field in sorted(explicit_policy_fields(args, field_names(base_p))):
        if not any(_uses_field(c, field, base_p) for c in configs):
            why = ("it sweeps V over its own grid" if field == "V" else
                   f"configuration{'s' if len(configs) > 1 else ''} {', '.join(c.name for c in configs)} "
                   f"set{'' if len(configs) > 1 else 's'} or do{'' if len(configs) > 1 else 'es'} not use {field}")
            raise ValueError(f"{field}: gelato {command} would ignore the given value ({why})")


def _g(x) -> str:
    if x is None:
        return "—"
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(_g(v) for v in x) + "]"
    try:
        return f"{float(x):.3g}"
    except (TypeError, ValueError):
        return str(x)


def cmd_tightness(args: argparse.Namespace) -> int:
    import json
    import os
    import sys

    import jax

    jax.config.update("jax_enable_x64", True)  # before jax.distributed: the atlas runs float64 in this process
    from gelato_jax import distributed
    from gelato_jax.cli_inputs import scenario_and_policy_from_args

    from .atlas import ATLAS_FULL, ATLAS_QUICK, parse_grid, parse_sizes, tightness_atlas

    layout = distributed.layout_from_args(args)  # several processes: checked before anything runs
    out = args.out
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out!r} exists and is not a directory")
    grid = parse_grid(args.grid)
    sizes = parse_sizes(ATLAS_QUICK if args.quick else ATLAS_FULL, args.size) if args.size else None
    scenario, policy, _ = scenario_and_policy_from_args(args, allowed_policies=("gelato",))
    from .run import derive_configs

    cfg = {c.name.split("-", 1)[0]: c for c in derive_configs(scenario, policy)}[args.configuration]
    refuse_unused_policy_fields(args, [cfg], policy, "tightness")
    if layout is not None and layout.num_processes != 1:
        distributed.initialize(layout)
    res = tightness_atlas(scenario, policy, grid, quick=args.quick, seed=args.seed, out=out, progress=False if args.quiet else None,
                          configuration=args.configuration, figures=not args.no_figures, sizes=sizes)
    if distributed.is_initialized() and distributed.process_index() != 0:  # process 0 prints the table
        return 0
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    fields = res["fields"]
    head = [*fields, "status", "T*", "lambda*", "B", "kappa_hat", "kappa_hat CI", "sigma2/4", "kappa_hat/B", "kappa_hat/(sigma2/4)", "regime", "G_L large V"]
    rows = []
    for p in res["points"]:
        rows.append([_g(p["point"][f]) for f in fields] + [p.get("status", "?")] + [
            _g(p.get(k)) for k in ("T_star", "lambda_star", "B", "measured_constant", "measured_ci", "predicted_constant",
                                   "ratio_measured_to_B", "ratio_measured_to_predicted")] + [str(p.get("regime") or "—"), str(p.get("flattening") or "—")])
    w = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    print(f"gelato tightness: {len(rows)} points, {res['wall_s']:.0f} s, configuration {res['configuration']}, atlas in {out}/atlas.json",
          file=sys.stdout)
    for r in [head, *rows]:
        print("  ".join(f"{str(x):<{wi}}" for x, wi in zip(r, w)).rstrip())
    for p in res["points"]:
        if p.get("status") != "done":
            print(f"  {p['point']}: {p.get('status')}: {p.get('reason')}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    import json
    import os
    import sys

    import jax

    jax.config.update("jax_enable_x64", True)  # the CLI owns its process: the checks run in float64 (before jax.distributed)
    from gelato_jax import distributed
    from gelato_jax.cli_inputs import scenario_and_policy_from_args

    from .run import FULL, QUICK, default_configs, derive_configs, parse_sizes, resolve_only, verify, write_once

    # every input is validated before anything runs or is written
    layout = distributed.layout_from_args(args)  # several processes: checked before anything runs
    out = args.out
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out!r} exists and is not a directory")
    only = resolve_only(args.only)
    sizes = parse_sizes(QUICK if args.quick else FULL, args.size) if args.size else None
    scenario, policy, _ = scenario_and_policy_from_args(args, allowed_policies=("gelato",))
    configs = derive_configs(scenario, policy)
    selected = only if only is not None else default_configs(scenario)
    runnable = [c for c in configs if c.name in selected and not c.not_applicable]
    if runnable:  # (none applicable: the report says why; nothing is ignored that would have run)
        refuse_unused_policy_fields(args, runnable, policy, "verify")
    argv = getattr(args, "_argv", None)
    command = "gelato " + shlex.join(argv if argv is not None else sys.argv[1:])
    if layout is not None and layout.num_processes != 1:
        distributed.initialize(layout)
    rep = verify(scenario, policy, quick=args.quick, seed=args.seed, only=only, progress=False if args.quiet else None,
                 strict=args.strict, command=command, jobs=args.jobs, sizes=sizes)
    d = write_once(rep, out, figures=not args.no_figures)  # several processes: process 0 writes, the others wait
    if d is None:  # not process 0: it prints nothing, and its exit status is not the verdict's (process 0's is)
        return 0
    if args.json:
        print(json.dumps(d, indent=2))
    else:
        print(f"{command}: {rep.wall_s:.0f} s, report in {out}/report.md")
        print(rep.summary_table())
        th_ok = d["theorem_claims_hold"]
        print("ALL CLAIMS OF THE THEOREM HOLD" if th_ok else "SOME CLAIMS OF THE THEOREM FAILED")
        if not d["rate_claims_hold"]:
            print("some rates beyond the theorem failed" + (" (--strict: exit status 1)" if args.strict else " (not failing the run; --strict to make them)"))
    return rep.exit_code
