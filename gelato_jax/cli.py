"""Command-line interface: ``gelato <command>`` (also ``python -m gelato_jax``).

Every command takes ``--json`` for machine-readable output. Invalid input prints one line
``gelato: error: ...`` on stderr and exits with status 2, without a traceback and without
writing a partial result.

Parameters (``gelato_jax.cli_inputs``, shared by every command): ``--config FILE.toml`` (a
``[scenario]`` table and a ``[policy]`` table with ``name = "gelato"``, or top-level keys), then
``--set field=value`` (repeatable), routed to the policy when the policy has that field and to the
scenario otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable, Sequence

from .pytree import field_names
from .cli_inputs import (  # noqa: F401 - re-exported
    CLIError,
    Parser,
    add_model_args,
    nonneg_int,
    parse_assignments,
    parse_value,
    positive_int,
    scenario_and_policy_from_args,
)

__all__ = ["main", "build_parser", "scenario_and_policy_from_args"]


# The input helpers live in ``gelato_jax.cli_inputs`` (shared by every command); other modules
# import them from there.


_TABLE_ROWS = [
    ("throughput", "throughput E[N/D]", "tok/s"),
    ("goodput", "goodput ΣN/ΣD", "tok/s"),
    ("energy", "energy per round", "J"),
    ("arrival", "energy budget per round", "J"),
    ("energy_per_token", "energy per token", "J"),
    ("queue_mean", "queue mean Z", "J"),
    ("queue_final", "queue final Z_T", "J"),
    ("budget", "budget γ̃", ""),
    ("sent", "sent L", ""),
    ("passes", "draft passes P", ""),
    ("accepted", "accepted A", ""),
    ("tokens", "tokens N", ""),
    ("latency", "latency D", "s"),
    ("outage", "outage fraction", ""),
]


def format_summary(summary: dict[str, dict[str, float]], title: str) -> str:
    lines = [title, f"{'metric':<26}{'mean':>12}   {'95% CI':<27}unit"]
    for key, label, unit in _TABLE_ROWS:
        if key not in summary:
            continue
        s = summary[key]
        lines.append(f"{label:<26}{s['mean']:>12.5g}   [{s['ci_low']:.5g}, {s['ci_high']:.5g}]".ljust(67) + unit)
    return "\n".join(lines)


def cmd_simulate(args: argparse.Namespace) -> int:
    from . import io as gio

    if args.out:
        gio.check_output_dir(args.out)
    t0 = time.time()
    if args.tokens == "lm":
        from .lm.cli import lm_scenario_and_policy_from_args, simulate_lm_from_args

        scenario, policy, name = lm_scenario_and_policy_from_args(args)
        res = simulate_lm_from_args(args, scenario, policy)
    else:
        from .simulator import simulate

        scenario, policy, name = scenario_and_policy_from_args(args)
        res = simulate(
            scenario,
            policy,
            seed=args.seed,
            realizations=args.realizations or _SURROGATE_REALIZATIONS,
            rounds=args.rounds or _SURROGATE_ROUNDS,
            chunk=args.chunk,
            devices=args.devices,
            progress=None if not args.quiet else False,
        )
    wall = time.time() - t0
    realizations, rounds = len(res.throughput), res.rounds
    summary = res.summary()
    meta = {
        "command": "simulate",
        "tokens": args.tokens,
        "policy": name,
        "policy_fields": _fields(policy),
        "scenario": scenario.to_dict(),
        "seed": args.seed,
        "realizations": realizations,
        "rounds": rounds,
        "wall_time_s": wall,
        "summary": summary,
    }
    if args.out:
        import os

        os.makedirs(args.out, exist_ok=True)
        gio.save_npz(os.path.join(args.out, "simulate.npz"), res.as_dict())
        gio.save_json(os.path.join(args.out, "simulate.json"), {**meta, "environment": gio.environment_info()})
    if args.json:
        print(json.dumps(gio.jsonable(meta), indent=2, allow_nan=False))
    else:
        title = (
            f"gelato simulate ({args.tokens} tokens): policy={name} {_fields(policy)}\n"
            f"{realizations} realizations x {rounds} rounds, seed {args.seed}, {wall:.1f} s"
        )
        print(format_summary(summary, title))
    return 0


_SURROGATE_REALIZATIONS = 256
_SURROGATE_ROUNDS = 5000


def _fields(obj) -> dict[str, Any]:
    return {n: getattr(obj, n) for n in field_names(obj)}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``gelato`` parser with every command, or, for ``command`` (one of ``COMMANDS``), with that
    command (and ``simulate``, defined here) only: ``main`` imports just the module that defines the
    command it runs (the others cost ≈ 0.5 s of imports per process, flax and sympy among them)."""
    parser = Parser(prog="gelato", description="GELATO device-edge speculative decoding: simulator and theory verifier")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)

    p = sub.add_parser("simulate", help="simulate a policy on a scenario and print time averages with 95%% CIs")
    add_model_args(p)
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument(
        "--tokens",
        choices=["surrogate", "lm"],
        default="surrogate",
        help="token layer: the calibrated surrogate (default) or the real tiny draft/target LM pair",
    )
    p.add_argument("--realizations", type=positive_int, default=None, help="default 256 (surrogate), 16 (lm)")
    p.add_argument("--rounds", type=positive_int, default=None, help="default 5000 (surrogate), 50 (lm)")
    p.add_argument("--chunk", type=positive_int, default=None, help="realizations per compiled call")
    p.add_argument("--devices", type=positive_int, default=None,
                   help="devices each chunk's realizations are split over (default: all; surrogate tokens)")
    p.add_argument("--out", metavar="DIR", help="save simulate.npz + simulate.json here")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_simulate)
    if command in (None, "simulate"):
        try:
            from .lm.cli import add_simulate_lm_args
        except ModuleNotFoundError:  # pragma: no cover - lm is part of the package
            pass
        else:
            add_simulate_lm_args(p)

    if command == "simulate":
        modules = ()
    elif command in COMMANDS:
        modules = (COMMANDS[command],)
    else:
        modules = _EXTENSIONS
    for module in modules:
        try:
            add = _load_extension(module)
        except ModuleNotFoundError as exc:  # an optional extra's dependency: the command says what to install
            if module not in _OPTIONAL:
                raise
            command, extra = _OPTIONAL[module]
            add = _needs_extra(command, extra, exc.name)
        if add is not None:
            add(sub)
    return parser


def _needs_extra(command: str, extra: str, missing: str | None) -> Callable:
    """``add_parsers`` of a command whose extra is not installed: ``gelato COMMAND ...`` exits 2 with
    what to install (the other commands are unaffected)."""

    def add(sub) -> None:
        p = sub.add_parser(command, help=f"(needs the {extra} extra: pip install 'gelato-jax[{extra}]')")
        p.add_argument("rest", nargs=argparse.REMAINDER)

        def func(args):
            raise ValueError(f"gelato {command} needs the {extra} extra ({missing} is not installed): "
                             f"pip install 'gelato-jax[{extra}]'")

        p.set_defaults(func=func)

    return add


# Modules that register more subcommands with ``add_parsers(subparsers)``, and the commands each
# registers (tests/test_cli.py checks the two agree).
_EXTENSION_COMMANDS = {
    "gelato_jax.sweep": ("sweep",),
    "gelato_jax.compare": ("compare",),
    "gelato_jax.bench": ("bench",),
    "gelato_jax.lm.cli": ("train-lm", "calibrate"),
    "proofs_check.cli": ("verify", "tightness"),
    "theory.cli": ("theory",),
    "figures.cli": ("figures", "headline"),
    "gelato_jax.testing.cli": ("check",),
    "gelato_jax.optimize": ("optimize",),
    "gelato_jax.launch": ("launch",),
}
_EXTENSIONS = tuple(_EXTENSION_COMMANDS)
# every command -> the module that defines it ("simulate": this one)
COMMANDS = {"simulate": __name__, **{c: m for m, cs in _EXTENSION_COMMANDS.items() for c in cs}}
# extensions that need an optional extra: module -> (command, extra)
_OPTIONAL = {"gelato_jax.testing.cli": ("check", "testing")}


def _load_extension(module: str) -> Callable | None:
    import importlib

    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return None
        raise
    return getattr(mod, "add_parsers", None)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        from . import compile_cache, xla_cpu

        xla_cpu.configure(strict=False)  # one CPU device per core, 512-bit vectors: before JAX starts
        compile_cache.enable()  # compiled programs kept on disk for the next command (GELATO_COMPILE_CACHE=0: off)
        argv = list(sys.argv[1:] if argv is None else argv)
        # the command is the first word (the top-level parser has no options but --help)
        parser = build_parser(argv[0] if argv and argv[0] in COMMANDS else None)
        args = parser.parse_args(argv)
        args._argv = argv  # the command line, for reports
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return int(args.func(args) or 0)
    except BrokenPipeError:  # e.g. `gelato simulate | head`
        return 0
    except (ValueError, OSError) as exc:  # includes CLIError and Scenario/Policy validation
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not msg.startswith("gelato"):
            msg = f"gelato: error: {msg}"
        print(msg, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gelato: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
