"""``python -m theory`` and ``gelato theory``: print the derived constants and bounds for a scenario
and policy (``add_parsers`` registers the ``gelato`` subcommand)."""

from __future__ import annotations

import argparse
import json
import sys


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="python -m theory", description=__doc__)
    p.add_argument("--config", help="scenario TOML file (default: MODEL.md §9 defaults)")
    p.add_argument("--V", type=float, default=10.0, help="drift-plus-penalty weight V (default 10)")
    p.add_argument("--proxy", default="mean", help="Gelato proxy: mean or exact (default mean)")
    p.add_argument("--exit", default="bucket", help="inner loop: bucket, none, or marginal (with --proxy mean or ewma) (default bucket)")
    p.add_argument("--payload", default="topp", help="payload: topp, full or scalar (default topp)")
    p.add_argument("--quantiles", type=int, default=1024, help="bins of h for T* (default 1024)")
    p.add_argument("--json", action="store_true", help="print JSON")
    return p


def run(args) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)  # theory constants in float64
    from gelato_jax import Scenario
    from gelato_jax.policies import Gelato

    from . import bounds

    scenario = Scenario.from_toml(args.config) if args.config else Scenario()
    policy = Gelato(V=args.V, proxy=args.proxy, exit=args.exit, payload=args.payload)
    out = bounds.constants(scenario, policy, quantiles=args.quantiles)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k:>18}: {v}")
    return 0


def add_parsers(subparsers) -> None:
    """Register ``gelato theory`` (for ``gelato_jax.cli``)."""
    p = subparsers.add_parser("theory", help="print derived constants and bounds (E_max, B, C, T*, bounds)")
    build_parser(p)
    p.set_defaults(func=run)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
