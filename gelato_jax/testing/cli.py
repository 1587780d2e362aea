"""``gelato check MODULE:CLASS``: run the invariants of ``gelato_jax.testing`` on a user's policy.

``MODULE`` is an importable module (``her_package.policies``; the current directory is on the
path) or a file (``her_policy.py``, ``path/to/policy.py``). ``--set field=value`` (repeatable,
after ``--config FILE.toml``) sets a policy field when the class has it and fixes a scenario
field (not drawn) otherwise. Prints one line per invariant (pass / FAIL with the shrunk
counterexample / skip) and exits 1 when an invariant fails, 2 on bad input.

This module imports nothing heavy at import time (the ``gelato`` parser loads it for every
command); hypothesis and chex are imported when the command runs.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys

from ..pytree import field_names
from ..cli_inputs import CLIError, add_model_args, parse_assignments, positive_int, read_model_tables

__all__ = ["add_parsers", "load_policy_class", "cmd_check"]


def load_policy_class(spec: str):
    """The class named by ``MODULE:CLASS`` (module path or ``.py`` file); ``CLIError`` otherwise."""
    if ":" not in spec:
        raise CLIError(f"gelato check: expected MODULE:CLASS (e.g. her_policy.py:MyPolicy), got {spec!r}")
    module, _, name = spec.rpartition(":")
    if not module or not name:
        raise CLIError(f"gelato check: expected MODULE:CLASS (e.g. her_policy.py:MyPolicy), got {spec!r}")
    if module.endswith(".py") or os.sep in module or "/" in module:
        path = os.path.abspath(module)
        if not os.path.isfile(path):
            raise CLIError(f"gelato check: file {module!r} does not exist")
        mod_name = "_gelato_check_" + os.path.splitext(os.path.basename(path))[0]
        spec_obj = importlib.util.spec_from_file_location(mod_name, path)
        mod = importlib.util.module_from_spec(spec_obj)
        sys.modules[mod_name] = mod  # dataclasses look their module up while the class is built
        sys.path.insert(0, os.path.dirname(path))  # her file may import its neighbours
        try:
            spec_obj.loader.exec_module(mod)
        except Exception as exc:
            sys.modules.pop(mod_name, None)
            raise CLIError(f"gelato check: importing {module!r} raised {type(exc).__name__}: {exc}") from None
        finally:
            sys.path.remove(os.path.dirname(path))
    else:
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            raise CLIError(f"gelato check: cannot import module {module!r} ({exc})") from None
    cls = getattr(mod, name, None)
    if cls is None:
        raise CLIError(f"gelato check: {module!r} has no attribute {name!r}")
    from ..policies.base import Policy

    if not (isinstance(cls, type) and issubclass(cls, Policy)):
        raise CLIError(f"gelato check: {spec} is not a subclass of gelato_jax.policies.Policy")
    return cls


def _split_fields(cls, args) -> tuple[dict, dict]:
    """``(policy_fields, scenario_fields)`` from ``--config`` then ``--set``."""
    from ..scenario import Scenario

    pol_names = set(field_names(cls))
    pol_kw, scen_kw = {}, {}
    if args.config:
        s, p, _ = read_model_tables(args.config)
        scen_kw.update(s)
        pol_kw.update(p)
    for k, v in parse_assignments(args.set).items():
        if k in pol_names:
            pol_kw[k] = v
        elif k in field_names(Scenario):
            scen_kw[k] = v
        else:
            raise CLIError(f"--set: unknown field {k!r}; scenario fields: {', '.join(field_names(Scenario))}; "
                           f"{cls.__name__} fields: {', '.join(sorted(pol_names)) or '(none)'}")
    for k in list(scen_kw):
        if k in pol_names:
            pol_kw[k] = scen_kw.pop(k)
    return pol_kw, scen_kw


def _names(text: str | None, allowed, flag: str):
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in allowed]
    if bad:
        raise CLIError(f"{flag}: unknown name(s) {bad}; allowed: {', '.join(allowed)}")
    return names


def cmd_check(args: argparse.Namespace) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)  # the checks' references and tolerances are float64
    try:
        from . import DECLARABLE, INVARIANTS, check_policy
    except ModuleNotFoundError as exc:
        raise CLIError(f"gelato check: {exc}") from None
    from ..scenario import Scenario

    cls = load_policy_class(args.target)
    pol_kw, scen_kw = _split_fields(cls, args)
    fixed = dict(scen_kw)
    Scenario(**fixed)  # a bad field: one line, exit 2, before any work
    policy = cls(**pol_kw)
    only = _names(args.only, list(INVARIANTS), "--only")
    declared = _names(args.declare, list(DECLARABLE), "--declare")
    if declared is not None:
        declared = sorted(set(declared) | set(getattr(cls, "declared_properties", ()) or ()))
    if not args.json:
        print(f"gelato check {args.target}: {args.examples} examples per property", flush=True)
    report = check_policy(policy, examples=args.examples, fixed=fixed, declared=declared, only=only, seed=args.seed)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        print(report.format())
    return report.exit_code


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "check",
        help="property-test your own policy class against the invariants of a drift-plus-penalty controller",
        description="Run the invariants of gelato_jax.testing (bounds, finiteness, the docs/model.md §8 energy and drift "
        "relations, purity, chunk/device independence, no recompilation, and the properties the class declares) on "
        "MODULE:CLASS; exit 1 when one fails.",
    )
    p.add_argument("target", metavar="MODULE:CLASS", help="e.g. her_policy.py:MyPolicy or her_pkg.policies:MyPolicy")
    add_model_args(p, policy=False, config_help="TOML file: [scenario] fields fixed (not drawn), [policy] fields of the class")
    p.add_argument("--examples", type=positive_int, default=25, help="hypothesis examples per property (default 25)")
    p.add_argument("--declare", metavar="NAMES", help="also check these declared properties (comma-separated): "
                   "monotone_in_queue, per_slot_optimal, greedy_limit")
    p.add_argument("--only", metavar="NAMES", help="run only these invariants (comma-separated)")
    p.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: derandomized)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=cmd_check)
