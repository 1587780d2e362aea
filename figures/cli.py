"""``gelato figures``: compute missing results (or all with ``--run``) and draw every figure;
``gelato headline``: the paper's 1 MHz and 140 ms comparisons, written to ``docs/headline.md``."""

from __future__ import annotations

import argparse
import os

__all__ = ["add_parsers", "cmd_figures", "draw_all"]

DEFAULT_RESULTS = os.path.join("runs", "figures", "results")
DEFAULT_OUT = os.path.join("runs", "figures")


def draw_all(results_dir: str, out_dir: str, only=None) -> list[str]:
    """Draw every figure (or those in ``only``) from saved results; returns the written paths."""
    import importlib

    from . import FIGURES

    paths = []
    for name in only or FIGURES:
        mod = importlib.import_module(f"figures.fig_{name}")
        paths += mod.draw(results_dir, out_dir)
    return paths


def _names(text):
    from . import FIGURES

    if not text:
        return list(FIGURES)
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in FIGURES]
    if bad:
        raise ValueError(f"--only must be a comma-separated subset of {list(FIGURES)}, got {bad}")
    return names


_FROM_ONLY = ("x", "y", "by", "name", "title")
_RUN_ONLY = ("only", "run", "draw_only", "quick", "docs", "set", "grid", "config", "seed", "results")


def cmd_from(args) -> int:
    """``gelato figures --from DIR``: one figure of a saved sweep/compare folder."""
    from .from_dir import draw_from, load_any

    given = [f"--{k.replace('_', '-')}" for k in _RUN_ONLY if getattr(args, k, None)]
    if given:
        raise ValueError(f"--from draws a saved folder; {', '.join(given)} apply to the built-in figures only")
    res = load_any(getattr(args, "from"))
    y = [t.strip() for t in (args.y or "goodput,energy").split(",") if t.strip()]
    stem = args.name or f"fig_{os.path.basename(os.path.normpath(getattr(args, 'from'))) or 'from'}"
    if not stem.replace("_", "").replace("-", "").replace(".", "").isalnum():
        raise ValueError(f"--name {stem!r}: use letters, digits, '_', '-', '.'")
    for p in draw_from(res, args.out, x=args.x, y=y, by=args.by, stem=stem, title=args.title or ""):
        print(p)
    return 0


def _requested(args):
    """``(base scenario or None, {param: values})`` from ``--config``/``--set``/``--grid``."""
    from gelato_jax.compare import grid_from_args

    from . import runner

    grid = grid_from_args(args)
    if "policies" in vars(args) and args.policies:
        raise ValueError("--grid policy=...: the built-in figures have fixed policy sets; use gelato compare --grid "
                         "and gelato figures --from")
    params = {spec["param"] for spec in runner.SWEEPS.values() if spec["param"]}
    bad = [f for f in grid if f not in params]
    if bad:
        raise ValueError(f"--grid {bad[0]}: the built-in sweeps vary {sorted(params)}; for other axes use "
                         "gelato compare --grid ... --out DIR and gelato figures --from DIR")
    base = None
    if args.set or args.config:
        from gelato_jax.compare import scenario_and_policies_from_args

        ns = argparse.Namespace(config=args.config, set=args.set, policies="gelato", pset=None)
        base, _ = scenario_and_policies_from_args(ns)
    return base, grid


def _stale(results_dir: str, name: str, base, grid) -> bool:
    """True when the saved result ``name`` is missing or was made for another base scenario or
    other sweep values than requested (so ``--set``/``--grid`` never draw old numbers)."""
    import json

    from gelato_jax import Scenario

    from . import runner

    path = os.path.join(results_dir, f"{name}.json")
    if not os.path.isfile(path):
        return True
    with open(path) as fh:
        rec = json.load(fh)
    want = (base or Scenario()).to_dict()
    if rec.get("scenario") is not None and {k: rec["scenario"].get(k) for k in want} != want:
        return True
    spec = runner.SWEEPS.get(name)
    if spec and spec["param"] in grid and [float(v) for v in rec.get("values", [])] != [float(v) for v in grid[spec["param"]]]:
        return True
    return False


def cmd_figures(args) -> int:
    import sys

    from . import runner

    if getattr(args, "from"):
        return cmd_from(args)
    given = [f"--{k}" for k in _FROM_ONLY if getattr(args, k, None)]
    if given:
        raise ValueError(f"{', '.join(given)} choose what --from DIR draws; give --from DIR")
    names = _names(args.only)
    args.results = DEFAULT_RESULTS if args.results is None else args.results
    args.seed = 0 if args.seed is None else args.seed
    if args.draw_only and args.run:
        raise ValueError("--draw-only and --run exclude each other")
    base, grid = _requested(args)
    if grid and not any(runner.SWEEPS.get(n, {}).get("param") in grid for n in names):
        raise ValueError(f"--grid {next(iter(grid))}: none of the selected figures ({', '.join(names)}) sweeps it")
    log = (lambda *_: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    if args.draw_only and (base is not None or grid):
        raise ValueError("--draw-only never computes; --set/--config/--grid need a run (drop --draw-only)")
    if not args.draw_only:
        todo = names if args.run else [n for n in names if _stale(args.results, n, base, grid)]
        if todo:
            runner.run_all(args.results, quick=args.quick, seed=args.seed, only=todo, log=log, base=base, values=grid)
    elif args.quick:
        raise ValueError("--quick sets the sizes of a run; --draw-only never runs")
    paths = draw_all(args.results, args.out, names)
    if args.docs:
        from . import fig_bandwidth, fig_v_tradeoff  # noqa: F401  (small README copies)

        paths += _docs_copies(args.results, args.docs)
    for p in paths:
        print(p)
    return 0


def _docs_copies(results_dir: str, docs_dir: str) -> list[str]:
    """Small PNGs for the README (bandwidth sweep and ablation), low dpi, PNG only."""
    import matplotlib

    matplotlib.use("Agg")
    from . import _plot, fig_ablation, fig_bandwidth

    out = []
    orig = _plot.save

    def small(fig, out_dir, stem, dpi=150):
        fig.set_size_inches(fig.get_size_inches() * 0.8)
        import io

        from gelato_jax.io import atomic_write_bytes

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=72, bbox_inches="tight")
        path = os.path.join(docs_dir, f"{stem}.png")
        atomic_write_bytes(path, buf.getvalue())
        return [path]

    _plot.save = small
    try:
        out += fig_bandwidth.draw(results_dir, docs_dir)
        out += fig_ablation.draw(results_dir, docs_dir)
    finally:
        _plot.save = orig
    return out


def cmd_headline(args) -> int:
    from . import headline

    if args.draw_only:  # nothing is computed: the run's options would be ignored, so refuse them
        given = [f for f, v in (("--quick", args.quick), ("--seed", args.seed is not None)) if v]
        if given:
            raise ValueError(f"{', '.join(given)} {'do' if len(given) > 1 else 'does'} not apply to --draw-only "
                             "(it only rewrites the table from the saved results)")
    args.seed = 0 if args.seed is None else args.seed
    if args.fair:
        from . import fair

        out = args.out or os.path.join("docs", "headline_fair.md")
        text = fair.run(out_md=out, results_dir=args.results, quick=args.quick, seed=args.seed,
                        draw_only=args.draw_only, quiet=args.quiet)
        print(text if args.print else out)
        return 0
    args.out = args.out or os.path.join("docs", "headline.md")
    text = headline.run(out_md=args.out, results_dir=args.results, quick=args.quick, seed=args.seed,
                        draw_only=args.draw_only, quiet=args.quiet)
    if args.print:
        print(text)
    else:
        print(args.out)
    return 0


def add_parsers(subparsers) -> None:
    from gelato_jax.cli_inputs import nonneg_int

    p = subparsers.add_parser("figures", help="compute (if missing) and draw the paper-style figures (PNG + PDF)")
    p.add_argument("--results", default=None, help=f"saved results folder (default {DEFAULT_RESULTS})")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"figure folder (default {DEFAULT_OUT})")
    p.add_argument("--only", help="comma-separated subset of bandwidth,delta,energy_budget,v_tradeoff,ablation")
    p.add_argument("--run", action="store_true", help="recompute results even if saved")
    p.add_argument("--draw-only", action="store_true", help="never compute; fail if a result is missing")
    p.add_argument("--quick", action="store_true", help="small sizes (8 realizations x 1000 rounds, fewer points)")
    p.add_argument("--seed", type=nonneg_int, default=None, help="seed of the built-in figures' runs (default 0)")
    p.add_argument("--docs", metavar="DIR", help="also write small README PNGs here (e.g. docs)")
    p.add_argument("--config", metavar="FILE.toml", help="base scenario of the built-in figures' runs")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help="base scenario field of the built-in figures' runs (repeatable)")
    p.add_argument("--grid", action="append", metavar="FIELD=VALUES",
                   help="values of a built-in sweep (W, delta or E_bar), e.g. --grid W=0.5e6,1e6,5e6")
    p.add_argument("--from", metavar="DIR", help="draw a saved sweep or compare folder (gelato sweep/compare --out DIR)")
    p.add_argument("--x", help="with --from: x-axis field (default: the first axis with several values)")
    p.add_argument("--y", help="with --from: comma-separated metrics, one panel each (default goodput,energy)")
    p.add_argument("--by", help="with --from: one line per value of this axis (default policy)")
    p.add_argument("--name", help="with --from: file stem (default fig_<folder name>)")
    p.add_argument("--title", help="with --from: figure title")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_figures)

    h = subparsers.add_parser("headline", help="GELATO vs each baseline at the paper's 1 MHz and 140 ms points -> docs/headline.md")
    h.add_argument("--out", default=None, help="markdown file to write (default docs/headline.md; with --fair docs/headline_fair.md)")
    h.add_argument("--fair", action="store_true",
                   help="equal-energy framings instead: each fixed-γ baseline at the γ meeting Ē, GELATO at each baseline's energy")
    h.add_argument("--results", default=os.path.join("runs", "headline"), help="saved results folder")
    h.add_argument("--quick", action="store_true", help="16 realizations x 1000 rounds instead of 64 x 3000")
    h.add_argument("--draw-only", action="store_true", help="only rewrite the table from saved results")
    h.add_argument("--seed", type=nonneg_int, default=None, help="seed of the runs (default 0; refused with --draw-only)")
    h.add_argument("--print", action="store_true", help="print the markdown")
    h.add_argument("--quiet", action="store_true")
    h.set_defaults(func=cmd_headline)
