"""``gelato verify [--quick] [--out DIR] [--json] [--seed N] [--config NAME ...]``.

Runs every check of MODEL.md §8 (``proofs_check.run``), writes ``report.md``, ``report.json``,
``sweep_<config>.npz`` and PNG figures to ``--out`` (default ``verify-report``), prints a summary
table (or the JSON report with ``--json``) and exits with status 1 when a claim fails, 0 otherwise
("not run", "inconclusive" and "observation" are reported, not failures). Heavy imports happen
inside ``cmd_verify`` so ``gelato --help`` stays fast.
"""

from __future__ import annotations

import argparse

from gelato_jax.cli import _nonneg_int

__all__ = ["add_parsers", "cmd_verify"]

CONFIG_NAMES = ("a-exact-dpp", "b-gelato-exact", "c-gelato-paper", "d-random-arrivals", "e-gauss-markov")


def add_parsers(subparsers) -> None:
    p = subparsers.add_parser(
        "verify",
        help="check every claim of the drift-plus-penalty theorem (MODEL §8) and write a report",
        description="Empirical verification of MODEL.md §8: per-slot optimality, energy on every path, "
        "O(1/V) throughput gap, O(V) queue, scaling slopes, closed forms, losslessness.",
    )
    p.add_argument("--quick", action="store_true", help="small sizes: a few minutes on 2 CPU cores (default: the full run, sized for a GPU/TPU)")
    p.add_argument("--out", metavar="DIR", default="verify-report", help="report folder (default: verify-report)")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the summary table")
    p.add_argument("--seed", type=_nonneg_int, default=0, help="root seed (default 0)")
    p.add_argument("--config", action="append", choices=CONFIG_NAMES, help="run only this configuration (repeatable)")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_verify)


def cmd_verify(args: argparse.Namespace) -> int:
    import json
    import os

    if not os.environ.get("JAX_ENABLE_X64"):
        import jax

        jax.config.update("jax_enable_x64", True)  # the theory checks run in float64
    from gelato_jax import io as gio

    from .report import exit_code, summary_table, write_report
    from .run import run_verify

    out = args.out
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out!r} exists and is not a directory")
    result = run_verify(quick=args.quick, seed=args.seed, configs=args.config, progress=False if args.quiet else None)
    rep = write_report(result, out, environment=gio.environment_info(), figures=not args.no_figures)
    if args.json:
        print(json.dumps(rep, indent=2))
    else:
        print(f"gelato verify{' --quick' if args.quick else ''}: {result['wall_s']:.0f} s, report in {out}/report.md")
        print(summary_table(result["verdicts"]))
        print("ALL CLAIMS HOLD" if rep["all_claims_hold"] else "SOME CLAIMS FAILED")
    return exit_code(result["verdicts"])
