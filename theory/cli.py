"""``python -m theory`` and ``gelato theory``: print the derived constants and bounds for a scenario
and policy (``add_parsers`` registers the ``gelato`` subcommand).

Scenario and policy input as for every ``gelato`` command (``gelato_jax.cli_inputs``):
``--config FILE.toml`` (``[scenario]`` and ``[policy]`` tables) and repeatable
``--set field=value``; the policy is ``Gelato``. ``--V``, ``--proxy``, ``--exit``, ``--payload``
are shortcuts that override the file (refused beside ``--set`` of the same field; ``V`` defaults
to 10 when given nowhere).
With ``--set objective=time_average`` (and ``--set P_bar=…``, W) it prints the time-average problem
of docs/model.md §11 instead (``theory.renewal.constants``): ``T_star`` (tokens/s) by the Charnes–Cooper LP
and ``T_star_dinkelbach`` by Dinkelbach's iteration, ``lambda_star``, ``theta_star``, ``B``,
``D_min`` and the renewal bounds.
"""

from __future__ import annotations

import argparse
import json
import sys

from gelato_jax.cli_inputs import add_model_args, parse_assignments, positive_int, read_model_tables, scenario_and_policy_from_args

_DEFAULT_V = 10.0


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="python -m theory", description=__doc__)
    add_model_args(p, policy=False)
    p.add_argument("--V", type=float, default=None, help=f"drift-plus-penalty weight V (default {_DEFAULT_V:g})")
    p.add_argument("--proxy", default=None, help="Gelato proxy: mean or exact (default mean)")
    p.add_argument("--exit", default=None, help="inner loop: bucket, none, or marginal (with --proxy mean or ewma) (default bucket)")
    p.add_argument("--payload", default=None, help="payload: topp, full or scalar (default topp)")
    p.add_argument("--quantiles", type=positive_int, default=1024, help="bins of h for T* (default 1024)")
    p.add_argument("--json", action="store_true", help="print JSON")
    return p


def scenario_and_policy(args):
    """``(Scenario, Gelato)`` of ``gelato theory``'s arguments (validated; ``ValueError`` naming the
    field otherwise)."""
    scenario, policy, _ = scenario_and_policy_from_args(args, allowed_policies=("gelato",))
    given = set(parse_assignments(getattr(args, "set", None)))
    over = {k: getattr(args, k) for k in ("V", "proxy", "exit", "payload") if getattr(args, k, None) is not None}
    both = sorted(given & set(over))
    if both:  # the shortcut would silently replace the --set value: refuse (both are on the command line)
        raise ValueError(f"--{both[0]} and --set {both[0]}=... both set {both[0]}; give one")
    if getattr(args, "config", None):
        given |= set(read_model_tables(args.config)[1])
    if "V" not in over and "V" not in given:
        over["V"] = _DEFAULT_V
    if over:
        policy = policy.replace(**over)
        policy.validate(scenario)
    return scenario, policy


def run(args) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)  # theory constants in float64
    from . import bounds

    scenario, policy = scenario_and_policy(args)
    if scenario.objective == "time_average":  # docs/model.md §11: tokens/s under the power budget P_bar
        from . import renewal

        out = renewal.constants(scenario, policy, quantiles=args.quantiles)
    else:
        out = bounds.constants(scenario, policy, quantiles=args.quantiles)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k:>18}: {v}")
    return 0


def add_parsers(subparsers) -> None:
    """Register ``gelato theory`` (for ``gelato_jax.cli``)."""
    p = subparsers.add_parser("theory", help="print derived constants and bounds (E_max, B, C, T*, bounds) for --config/--set")
    build_parser(p)
    p.set_defaults(func=run)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except ValueError as exc:
        print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
