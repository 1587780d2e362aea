"""Shared command-line input of every ``gelato`` command: ``--config FILE.toml`` and ``--set``.

One parser for the scenario and policy of ``simulate``, ``sweep``, ``compare``, ``verify``,
``theory`` and LM mode:

* ``--config FILE.toml``: a ``[scenario]`` table and a ``[policy]`` table (``name = "gelato"``
  picks the policy), or top-level scenario keys;
* ``--set field=value`` (repeatable), applied after the file, routed to the policy when the
  policy has that field and to the scenario otherwise.

Invalid input raises ``ValueError`` (``CLIError`` for command-line syntax) with one line naming
the field and its allowed range; ``gelato_jax.cli.main`` prints it and exits with status 2.
Light module: no JAX import until a scenario is built.
"""

from __future__ import annotations

import argparse
from typing import Any, Sequence

__all__ = [
    "CLIError",
    "Parser",
    "parse_value",
    "parse_assignments",
    "read_model_tables",
    "explicit_scenario_fields",
    "explicit_policy_fields",
    "scenario_and_policy_from_args",
    "add_model_args",
    "positive_int",
    "nonneg_int",
]


class CLIError(ValueError):
    """Invalid command-line input (one line; exit status 2)."""


class Parser(argparse.ArgumentParser):
    """``argparse`` parser whose errors raise ``CLIError`` (one line, exit 2) instead of exiting."""

    def error(self, message: str):  # one line, exit 2
        raise CLIError(f"{self.prog}: {message}")


def parse_value(text: str) -> Any:
    """``"true"``/``"false"`` → bool, then int, then float, ``a,b`` → tuple, else the string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    if "," in text:
        return tuple(parse_value(t) for t in text.split(",") if t.strip())
    return text


def parse_assignments(items: Sequence[str] | None, flag: str = "--set") -> dict[str, Any]:
    """``["W=5e6", "exit=none"]`` → ``{"W": 5000000.0, "exit": "none"}`` (later items win)."""
    out: dict[str, Any] = {}
    for item in items or ():
        if "=" not in item:
            raise CLIError(f"{flag} expects field=value, got {item!r}")
        key, value = item.split("=", 1)
        key = key.strip()
        if not key:
            raise CLIError(f"{flag} expects field=value, got {item!r}")
        out[key] = parse_value(value.strip())
    return out


def read_model_tables(path: str) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """``(scenario_fields, policy_fields, policy_name)`` of a ``--config`` TOML file."""
    from .scenario import read_toml

    data = read_toml(path)
    scen_tbl = data.get("scenario", {})
    pol_tbl = data.get("policy", {})
    if not isinstance(scen_tbl, dict) or not isinstance(pol_tbl, dict):
        raise CLIError(f"{path}: 'scenario' and 'policy' must be tables ([scenario], [policy])")
    pol_kw = dict(pol_tbl)
    name = pol_kw.pop("name", None)
    scen_kw = dict(scen_tbl)
    for k, v in data.items():
        if k not in ("scenario", "policy"):
            if isinstance(v, dict):
                raise CLIError(f"{path}: unknown table [{k}] (allowed: [scenario], [policy])")
            scen_kw[k] = v
    return scen_kw, pol_kw, name


def explicit_scenario_fields(args: argparse.Namespace) -> set[str]:
    """Scenario fields the user gave in ``--config`` or ``--set``."""
    from .pytree import field_names
    from .scenario import Scenario

    keys: set[str] = set()
    if getattr(args, "config", None):
        scen_kw, _, _ = read_model_tables(args.config)
        keys |= set(scen_kw)
    keys |= set(parse_assignments(getattr(args, "set", None)))
    return keys & set(field_names(Scenario))


def explicit_policy_fields(args: argparse.Namespace, names) -> set[str]:
    """Which of the policy fields ``names`` the user gave in ``--config`` (either table: a policy
    field in ``[scenario]`` goes to the policy) or ``--set``."""
    keys: set[str] = set(parse_assignments(getattr(args, "set", None)))
    if getattr(args, "config", None):
        scen_kw, pol_kw, _ = read_model_tables(args.config)
        keys |= set(scen_kw) | set(pol_kw)
    return keys & set(names)


def scenario_and_policy_from_args(args: argparse.Namespace, *, default_policy: str = "gelato", allowed_policies: Sequence[str] | None = None):
    """Build ``(Scenario, Policy, policy_name)`` from ``--config``, ``--policy`` and ``--set``.

    ``allowed_policies`` restricts the policy (e.g. ``("gelato",)`` for ``verify`` and ``theory``).
    The policy is validated against the scenario."""
    from . import policies
    from .pytree import field_names
    from .scenario import Scenario

    scen_kw: dict[str, Any] = {}
    pol_kw: dict[str, Any] = {}
    name = None
    if getattr(args, "config", None):
        s, p, name = read_model_tables(args.config)
        scen_kw.update(s)
        pol_kw.update(p)
    cli_name = getattr(args, "policy", None)
    if cli_name is not None:
        name = cli_name
    elif name is None:
        name = default_policy
    key = str(name).lower().replace("_", "-")
    allowed = sorted(policies.REGISTRY) if allowed_policies is None else list(allowed_policies)
    if key not in policies.REGISTRY or key not in allowed:
        raise CLIError(f"--policy must be one of {allowed}, got {name!r}")
    pol_cls = policies.REGISTRY[key]
    pol_fields = set(field_names(pol_cls))
    for k, v in parse_assignments(getattr(args, "set", None)).items():
        if k in pol_fields:
            pol_kw[k] = v
        elif k in field_names(Scenario):
            scen_kw[k] = v
        else:
            raise CLIError(
                f"--set: unknown field {k!r}; scenario fields: {', '.join(field_names(Scenario))}; "
                f"{pol_cls.__name__} fields: {', '.join(field_names(pol_cls))}"
            )
    moved = {k: scen_kw.pop(k) for k in list(scen_kw) if k in pol_fields}
    pol_kw.update(moved)
    scenario = Scenario.from_dict(scen_kw)
    policy = pol_cls(**pol_kw)
    policy.validate(scenario)
    return scenario, policy, key


def add_model_args(p: argparse.ArgumentParser, *, policy: bool = True, config_help: str = "scenario/policy TOML file ([scenario], [policy] tables)") -> None:
    """``--config FILE.toml``, repeatable ``--set FIELD=VALUE`` and (``policy=True``) ``--policy``."""
    p.add_argument("--config", metavar="FILE.toml", help=config_help)
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override a scenario or policy field (repeatable)")
    if policy:
        p.add_argument("--policy", help="policy name (default: gelato)")


def _int_at_least(lo: int, what: str):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {v}")
        return v

    return parse


#: ``argparse`` type: an integer ≥ 1
positive_int = _int_at_least(1, "positive")
#: ``argparse`` type: an integer ≥ 0
nonneg_int = _int_at_least(0, "non-negative")
