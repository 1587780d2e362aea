"""``gelato figures``: compute missing results (or all with ``--run``) and draw every figure;
``gelato headline``: the paper's 1 MHz and 140 ms comparisons, written to ``docs/headline.md``."""

from __future__ import annotations

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


def cmd_figures(args) -> int:
    import sys

    from . import runner

    names = _names(args.only)
    if args.draw_only and args.run:
        raise ValueError("--draw-only and --run exclude each other")
    log = (lambda *_: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    if not args.draw_only:
        todo = names if args.run else [n for n in names if not os.path.isfile(os.path.join(args.results, f"{n}.json"))]
        if todo:
            runner.run_all(args.results, quick=args.quick, seed=args.seed, only=todo, log=log)
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

    text = headline.run(out_md=args.out, results_dir=args.results, quick=args.quick, seed=args.seed,
                        draw_only=args.draw_only, quiet=args.quiet)
    if args.print:
        print(text)
    else:
        print(args.out)
    return 0


def add_parsers(subparsers) -> None:
    from gelato_jax.cli import _nonneg_int

    p = subparsers.add_parser("figures", help="compute (if missing) and draw the paper-style figures (PNG + PDF)")
    p.add_argument("--results", default=DEFAULT_RESULTS, help=f"saved results folder (default {DEFAULT_RESULTS})")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"figure folder (default {DEFAULT_OUT})")
    p.add_argument("--only", help="comma-separated subset of bandwidth,delta,energy_budget,v_tradeoff,ablation")
    p.add_argument("--run", action="store_true", help="recompute results even if saved")
    p.add_argument("--draw-only", action="store_true", help="never compute; fail if a result is missing")
    p.add_argument("--quick", action="store_true", help="small sizes (8 realizations x 1000 rounds, fewer points)")
    p.add_argument("--seed", type=_nonneg_int, default=0)
    p.add_argument("--docs", metavar="DIR", help="also write small README PNGs here (e.g. docs)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_figures)

    h = subparsers.add_parser("headline", help="GELATO vs each baseline at the paper's 1 MHz and 140 ms points -> docs/headline.md")
    h.add_argument("--out", default=os.path.join("docs", "headline.md"), help="markdown file to write (default docs/headline.md)")
    h.add_argument("--results", default=os.path.join("runs", "headline"), help="saved results folder")
    h.add_argument("--quick", action="store_true", help="16 realizations x 1000 rounds instead of 64 x 3000")
    h.add_argument("--draw-only", action="store_true", help="only rewrite the table from saved results")
    h.add_argument("--seed", type=_nonneg_int, default=0)
    h.add_argument("--print", action="store_true", help="print the markdown")
    h.add_argument("--quiet", action="store_true")
    h.set_defaults(func=cmd_headline)
