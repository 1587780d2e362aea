"""CLI commands of LM mode: ``gelato train-lm`` and ``gelato calibrate`` (docs/model.md §4).

The main CLI registers them with :func:`add_parsers`; they also run standalone as
``python -m gelato_jax.lm.cli <command> ...``.  Each handler returns an exit code.
"""

from __future__ import annotations

import argparse
import os
import json
import sys
from typing import Sequence

__all__ = ["add_parsers", "main", "cmd_train_lm", "cmd_calibrate", "add_simulate_lm_args", "simulate_lm_from_args",
           "lm_scenario_and_policy_from_args",
           "LM_DEFAULT_REALIZATIONS", "LM_DEFAULT_ROUNDS"]

# `gelato simulate --tokens lm` sizes when --realizations/--rounds are not given (cost per
# realization-round and compilation time: BENCHMARKS.md, LM mode).
LM_DEFAULT_REALIZATIONS = 16
LM_DEFAULT_ROUNDS = 50
# `gelato train-lm` steps per model when neither --steps nor --target-steps/--draft-steps is given
_TARGET_STEPS, _DRAFT_STEPS = 1400, 3000


def cmd_train_lm(args: argparse.Namespace) -> int:
    from .train import train

    which = ["draft", "target"] if args.which == "both" else [args.which]
    # refuse a step count that would not be used (no silently ignored input)
    if args.steps is not None and (args.target_steps is not None or args.draft_steps is not None):
        raise ValueError("--steps sets the steps of every model trained; give it or --target-steps/--draft-steps, not both")
    for attr, w in (("target_steps", "target"), ("draft_steps", "draft")):
        if getattr(args, attr) is not None and w not in which:
            raise ValueError(f"--{attr.replace('_', '-')} does not apply to --which {args.which}")
    default_steps = {"target": _TARGET_STEPS, "draft": _DRAFT_STEPS}
    out = {}
    for w in which:
        steps = args.steps if args.steps is not None else getattr(args, f"{w}_steps")
        steps = default_steps[w] if steps is None else steps
        rec = train(w, steps=steps, batch=args.batch, lr=args.lr, seed=args.seed, out_dir=args.out,
                    ckpt_dir=args.ckpt_dir, ckpt_every=args.ckpt_every, eval_every=args.eval_every,
                    quiet=args.quiet)
        out[w] = {k: rec[k] for k in ("steps", "n_params", "val_loss_nats_per_byte", "train_seconds")}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for w, r in out.items():
            print(f"{w}: {r['n_params']} params, {r['steps']} steps, val loss "
                  f"{r['val_loss_nats_per_byte']:.4f} nats/byte, {r['train_seconds']:.0f} s")
    return 0


# options of `gelato calibrate` that only LM mode reads (default None = not given) and their defaults
_CALIBRATE_LM_ONLY = (("rounds", "--rounds", 100), ("sequences", "--sequences", 64), ("gamma_max", "--gamma-max", 10),
                      ("top_p", "--top-p", 0.95), ("seed", "--seed", 0), ("weights", "--weights", None))


def _calibrate_lm_args(args: argparse.Namespace) -> dict:
    """The LM-mode options of ``calibrate`` (and ``entropy_process``) with their defaults filled in;
    with ``--csv`` (no LM run) a given one is refused (exit status 2) instead of ignored, and so
    are ``--entropy-process``, ``--write-rho`` and ``--export-csv`` for a flat CSV (no round
    structure for them to act on)."""
    if args.csv is not None:
        given = [flag for attr, flag, _ in _CALIBRATE_LM_ONLY if getattr(args, attr, None) is not None]
        if given:
            raise ValueError(f"{', '.join(given)} only {'apply' if len(given) > 1 else 'applies'} to LM mode; "
                             f"calibrate --csv fits the logged pairs and would ignore {'them' if len(given) > 1 else 'it'}")
        # options that need the round structure of the structured schema
        structural = [flag for flag, v in (("--entropy-process", getattr(args, "entropy_process", None) is not None),
                                           ("--write-rho", getattr(args, "write_rho", False)),
                                           ("--export-csv", getattr(args, "export_csv", None) is not None)) if v]
        if structural:
            from .calibrate import read_pairs_csv

            if "round_sequence" not in read_pairs_csv(args.csv):
                raise ValueError(f"{', '.join(structural)} need{'' if len(structural) > 1 else 's'} the round structure "
                                 f"of the structured schema (sequence,round,position,...); {args.csv} is a flat CSV")
    out = {attr: (default if getattr(args, attr, None) is None else getattr(args, attr))
           for attr, _, default in _CALIBRATE_LM_ONLY}
    out["entropy_process"] = getattr(args, "entropy_process", None) or "text"
    return out


_VALIDATION_SIZES = (("lm_realizations", "--lm-realizations"), ("lm_rounds", "--lm-rounds"),
                     ("surrogate_realizations", "--surrogate-realizations"), ("surrogate_rounds", "--surrogate-rounds"))


def parse_policy_spec(spec: str):
    """``NAME[:field=value[:field=value...]]`` → a policy (``gelato_jax.policies.make``), e.g.
    ``gelato:exit=none``, ``static:gamma=4:payload=topp``, ``adaedl``."""
    from ..cli_inputs import parse_value
    from ..policies import make

    name, *items = [t.strip() for t in spec.split(":")]
    fields = {}
    for item in items:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise ValueError(f"--policy expects NAME[:field=value...], got {spec!r}")
        k, v = item.split("=", 1)
        fields[k.strip()] = parse_value(v.strip())
    try:
        return make(name, **fields)
    except TypeError as e:
        raise ValueError(f"--policy {spec!r}: {e}") from None


def _validation_args(args: argparse.Namespace) -> dict:
    """The ``--validate`` options (sizes, policies, an existing ``--calibration``), checked: each needs
    ``--validate`` in LM mode, sizes are positive integers; ``--calibration`` refuses the fit's own
    options (it validates the given TOML without refitting)."""
    given = [flag for attr, flag in _VALIDATION_SIZES if getattr(args, attr, None) is not None]
    given += ["--policy"] if getattr(args, "policy", None) else []
    given += ["--calibration"] if getattr(args, "calibration", None) is not None else []
    if given and not args.validate:
        raise ValueError(f"{', '.join(given)} need{'' if len(given) > 1 else 's'} --validate")
    if given and args.csv is not None:
        raise ValueError(f"{', '.join(given)} only appl{'y' if len(given) > 1 else 'ies'} to the LM-mode validation; "
                         "calibrate --csv --validate checks the CSV's own held-out pairs")
    out: dict = {}
    for attr, flag in _VALIDATION_SIZES:
        v = getattr(args, attr, None)
        if v is not None:
            if v < 1:
                raise ValueError(f"{flag} must be a positive integer, got {v}")
            out[attr] = v
    if getattr(args, "policy", None):
        out["policies"] = [parse_policy_spec(p) for item in args.policy for p in item.split(",") if p.strip()]
    if getattr(args, "calibration", None) is not None:
        fit_flags = [flag for attr, flag, _ in _CALIBRATE_LM_ONLY if attr not in ("seed", "weights")
                     and getattr(args, attr, None) is not None]
        fit_flags += [flag for flag, on in (("--entropy-process", getattr(args, "entropy_process", None) is not None),
                                            ("--write-rho", args.write_rho), ("--pooled", args.pooled),
                                            ("--export-csv", getattr(args, "export_csv", None) is not None)) if on]
        if fit_flags:
            raise ValueError(f"{', '.join(fit_flags)} configure{'' if len(fit_flags) > 1 else 's'} a fit; --calibration "
                             "validates the given file without refitting")
        if not os.path.isfile(args.calibration):
            raise ValueError(f"--calibration: file {args.calibration!r} does not exist")
    return out


def _print_validation(rows, out) -> None:
    print("calibrated surrogate vs LM mode (z = (surrogate − LM)/s.e.; |z| ≤ 3.29 agrees at 1e-3):")
    for r in rows:
        print(f"  {r['policy'][:44]:44s} {r['metric']:10s} LM {r['lm']:9.4f}  surrogate {r['surrogate']:9.4f}  "
              f"z {r['z']:+6.2f}{'' if r['within'] else '  DISAGREES'}")
    print(f"wrote {out}/validation.md")


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .calibrate import run_calibration

    val = _validation_args(args)
    lm = _calibrate_lm_args(args)
    if getattr(args, "calibration", None) is not None:  # validate an existing calibration, no fit
        from .calibrate import validate_calibration

        rows = validate_calibration(args.calibration, seed=lm["seed"], weights_dir=lm["weights"], out_dir=args.out,
                                    quiet=args.quiet, **val)
        if args.json:
            print(json.dumps({"calibration": args.calibration, "validation": rows}, indent=2))
        else:
            _print_validation(rows, args.out)
        return 0
    res = run_calibration(
        csv=args.csv, out_dir=args.out, rounds=lm["rounds"], sequences=lm["sequences"],
        gamma_max=lm["gamma_max"], top_p=lm["top_p"], seed=lm["seed"], weights_dir=lm["weights"],
        quiet=args.quiet, write_rho=args.write_rho, positional=not args.pooled,
        entropy_process=lm["entropy_process"], export_csv=getattr(args, "export_csv", None),
    )
    for w in res.get("warnings", []):
        print(f"gelato calibrate: warning: {w}", file=sys.stderr)
    if not args.json:  # (--json: printed at the end, with the validation rows under "validation")
        f = res["fit"]
        print(f"pairs: {res['n_pairs']}  mean acceptance: {res['mean_acceptance']:.4f}  "
              f"corr(H, accepted): {res['corr_entropy_accepted']:.4f}")
        print(f"a0 = {f['a0']:.4f}  a1 = {f['a1']:.4f}  k_H = {f['k_H']:.4f}  theta_H = {f['theta_H']:.4f}"
              + (f"  c_p = {f['c_p']:.4f}" if "c_p" in f else "")
              + (f"  rho_H = {f['rho_text']:.4f} ± {f['rho_text_se']:.4f}" if res.get("entropy_process") == "text"
                 and "rho_text_se" in f else ""))
        for name, v in res.get("not_estimated", {}).items():
            print(f"{name}: not estimated ({v['reason']}); the scenario keeps {name} = {v['kept']!r}")
        if "export_csv" in res:
            print(f"wrote {res['export_csv']['rows']} rows to {res['export_csv']['path']} (structured schema, "
                  "docs/lm_logs.md)")
        if "after_reject" in res:
            fp = res["after_reject"]
            print(f"first draft after a rejection: after_reject_a0_shift = {f['after_reject_a0_shift']:.4f} ± {f['after_reject_a0_shift_se']:.4f}"
                  + (f"  after_reject_H_scale = {f['after_reject_H_scale']:.4f} ± {f['after_reject_H_scale_se']:.4f}" if "after_reject_H_scale" in f else "")
                  + f"; acceptance there {fp['acceptance']:.4f} ± {fp['se']:.4f} (pooled map predicts "
                  f"{fp['pooled_map_prediction']:.4f}, positional map {fp['positional_map_prediction']:.4f})")
            if "after_reject_latent" in f:
                (mu, c, sd), se = f["after_reject_latent"], f.get("after_reject_latent_se", (float("nan"),) * 3)
                print(f"text process after a rejection: after_reject_latent = ({mu:.4f} ± {se[0]:.4f}, {c:.4f} ± "
                      f"{se[1]:.4f}, {sd:.4f} ± {se[2]:.4f}) (z_1 = mu + c z_a + sigma eps; after_reject_H_scale "
                      "written as 1)")
        print(f"wrote {res['toml']} and {res['plot']}")
    if args.validate and args.csv is not None:
        from .calibrate import validate_csv_calibration

        rows = validate_csv_calibration(args.csv, out_dir=args.out, positional=not args.pooled)
        if not args.json:
            print("calibration vs the CSV's own held-out pairs (|z| ≤ 3.29, Hosmer-Lemeshow p > 1e-3 agree at 1e-3):")
            for r in rows:
                stat = f"p {r['p']:.3g}" if "p" in r else f"z {r['z']:+6.2f}"
                print(f"  {r['check'][:64]:64s} n {r['n']:6d}  obs {r['observed']:8.4f}  pred {r['predicted']:8.4f}  "
                      f"{stat}{'' if r['within'] else '  DISAGREES'}")
            print(f"wrote {args.out}/validation.md")
    elif args.validate:
        from .calibrate import validate_calibration

        rows = validate_calibration(res["toml"], seed=lm["seed"], weights_dir=lm["weights"], out_dir=args.out,
                                    quiet=args.quiet, **val)
        if not args.json:
            _print_validation(rows, args.out)
    if args.json:
        if args.validate:
            res = dict(res, validation=rows)
        print(json.dumps(res, indent=2))
    return 0


def add_simulate_lm_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``gelato simulate`` that only LM mode (``--tokens lm``) reads."""
    parser.add_argument("--top-p", type=float, default=None,
                        help="LM mode: top-p mass of the draft sampling (default 0.95 for the topp payload, else 1)")
    parser.add_argument("--weights", default=None, help="LM mode: weights directory (default: the committed pair)")
    parser.add_argument("--calibration", default=None, metavar="FILE.toml",
                        help="LM mode: calibration the scenario starts from (default: the committed one; "
                             "'none' = the plain defaults); refused without --tokens lm")
    inner = parser.get_default("func")
    if inner is not None:  # refuse the LM-only flags on the surrogate path (no silently ignored input)
        def func(args, _inner=inner):
            _refuse_lm_flags_for_surrogate(args)
            return _inner(args)

        func.__wrapped__ = inner
        parser.set_defaults(func=func)


_LM_ONLY_FLAGS = (("calibration", "--calibration"), ("top_p", "--top-p"), ("weights", "--weights"))


def _refuse_lm_flags_for_surrogate(args: argparse.Namespace) -> None:
    """``gelato simulate`` without ``--tokens lm``: LM-only flags have no effect, so refuse them
    (exit status 2) instead of ignoring them silently; with ``--tokens lm``, the same for the
    surrogate's ``--devices``."""
    if getattr(args, "tokens", "lm") == "lm":
        if getattr(args, "devices", None) is not None:  # the surrogate's option, the other way round
            raise ValueError("--devices applies to --tokens surrogate (LM mode runs on one device)")
        return
    given = [flag for attr, flag in _LM_ONLY_FLAGS if getattr(args, attr, None) is not None]
    if not given:
        return
    hint = (" (to run the surrogate on a calibration, pass it as --config FILE.toml, plus --set V_vocab=256 for the "
            "byte-level LM's vocabulary as LM mode does)" if "--calibration" in given else "")
    raise ValueError(f"{', '.join(given)} only {'apply' if len(given) > 1 else 'applies'} to LM mode (--tokens lm); the surrogate would ignore "
                     f"{'them' if len(given) > 1 else 'it'}{hint}")


def lm_scenario_and_policy_from_args(args: argparse.Namespace):
    """``(Scenario, Policy, policy_name)`` of LM mode: the committed LM calibration
    (:func:`~.simulate.calibrated_scenario`, or ``--calibration FILE``; ``none`` = plain defaults)
    with the ``--config``/``--set`` scenario fields on top; the policy as for the surrogate."""
    from ..cli_inputs import explicit_scenario_fields, scenario_and_policy_from_args
    from .simulate import calibrated_scenario

    scenario, policy, name = scenario_and_policy_from_args(args)
    calib = getattr(args, "calibration", None)
    if calib is None or str(calib).lower() != "none":
        given = scenario.to_dict()
        scenario = calibrated_scenario(calib, **{k: given[k] for k in explicit_scenario_fields(args)})
        policy.validate(scenario)
    return scenario, policy, name


def simulate_lm_from_args(args: argparse.Namespace, scenario=None, policy=None):
    """``gelato simulate --tokens lm``: the parsed ``simulate`` arguments → ``SimResult``.

    ``scenario``/``policy`` default to :func:`lm_scenario_and_policy_from_args`.
    ``args.realizations``/``args.rounds`` of ``None`` mean :data:`LM_DEFAULT_REALIZATIONS` ×
    :data:`LM_DEFAULT_ROUNDS`; reads ``seed``, ``chunk``, ``quiet`` and (optional) ``top_p``,
    ``weights`` (see :func:`add_simulate_lm_args`).
    """
    from .rounds import LMPair
    from .simulate import simulate_lm

    if scenario is None or policy is None:
        scenario, policy, _ = lm_scenario_and_policy_from_args(args)
    top_p = getattr(args, "top_p", None)
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"--top-p must be in (0, 1], got {top_p}")
    weights = getattr(args, "weights", None)
    pair = LMPair.load(weights) if weights else None
    realizations = getattr(args, "realizations", None) or LM_DEFAULT_REALIZATIONS
    rounds = getattr(args, "rounds", None) or LM_DEFAULT_ROUNDS
    return simulate_lm(scenario, policy, seed=getattr(args, "seed", 0) or 0, realizations=realizations,
                       rounds=rounds, pair=pair, top_p=top_p, chunk=getattr(args, "chunk", None),
                       progress=None if not getattr(args, "quiet", False) else False)


def add_parsers(subparsers) -> None:
    """Register ``train-lm`` and ``calibrate`` on an ``argparse`` subparsers object."""
    p = subparsers.add_parser("train-lm", help="train the byte-level draft/target LM pair (LM mode)")
    p.add_argument("--which", choices=["draft", "target", "both"], default="both")
    p.add_argument("--steps", type=int, default=None, help="steps for every model trained (instead of the two below)")
    p.add_argument("--target-steps", type=int, default=None, help=f"default {_TARGET_STEPS}")
    p.add_argument("--draft-steps", type=int, default=None, help=f"default {_DRAFT_STEPS}")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="weights directory (default: the package's lm/weights)")
    p.add_argument("--ckpt-dir", default="runs/lm_ckpt")
    p.add_argument("--ckpt-every", type=int, default=100)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_train_lm)

    c = subparsers.add_parser("calibrate", help="fit α(H), the entropy law and c_p from LM mode or a CSV")
    c.add_argument("--csv", default=None,
                   help="CSV of logged pairs: structured sequence,round,position,entropy,accepted (optional support, "
                        "after_reject; fits everything LM mode fits) or flat entropy,accepted (docs/lm_logs.md)")
    c.add_argument("--out", default="runs/calibration")
    c.add_argument("--rounds", type=int, default=None, help="LM mode: rounds per sequence (default 100; refused with --csv)")
    c.add_argument("--sequences", type=int, default=None, help="LM mode: sequences (default 64; refused with --csv)")
    c.add_argument("--gamma-max", type=int, default=None, help="LM mode: drafts per round (default 10; refused with --csv)")
    c.add_argument("--top-p", type=float, default=None, help="LM mode: top-p of the drafts (default 0.95; refused with --csv)")
    c.add_argument("--seed", type=int, default=None, help="LM mode: seed (default 0; refused with --csv)")
    c.add_argument("--weights", default=None, help="LM mode: weights directory (default: the committed pair; refused with --csv)")
    c.add_argument("--entropy-process", choices=("text", "round"), default=None,
                   help="surrogate entropy process to calibrate (LM mode): 'text' (default) continues a latent "
                        "AR(1) along the text across rounds with the fitted rho_H; 'round' draws each round afresh "
                        "(docs/model.md §4); refused for a flat --csv")
    c.add_argument("--write-rho", action="store_true",
                   help="with --entropy-process round: also write the within-round AR(1) correlation rho_H "
                        "(always reported in calibration.json); it makes the surrogate agree worse with LM mode; refused for a "
                        "flat --csv")
    c.add_argument("--validate", action="store_true",
                   help="then validate: in LM mode, run LM mode and the calibrated surrogate side by side (Gelato no "
                        "exit / bucket exit, StaticSD(4)) and report z statistics; with --csv, fit on half of the "
                        "log and check the other half (mean acceptance, reliability bins, accepted drafts per round); "
                        "writes validation.md")
    c.add_argument("--calibration", default=None, metavar="FILE.toml",
                   help="with --validate: validate this calibration TOML as it is (no fit; the fit's options are "
                        "refused)")
    c.add_argument("--lm-realizations", type=int, default=None,
                   help="with --validate (LM mode): LM-mode sequences (default 32)")
    c.add_argument("--lm-rounds", type=int, default=None, help="with --validate (LM mode): LM-mode rounds (default 100)")
    c.add_argument("--surrogate-realizations", type=int, default=None,
                   help="with --validate (LM mode): surrogate realizations (default 256)")
    c.add_argument("--surrogate-rounds", type=int, default=None,
                   help="with --validate (LM mode): surrogate rounds (default: --lm-rounds, the same horizon; a "
                        "policy with a transient, e.g. AdaEDL's adapted threshold, differs between horizons)")
    c.add_argument("--policy", action="append", default=None, metavar="NAME[:field=value...]",
                   help="with --validate (LM mode): a policy to validate, e.g. gelato:exit=none, "
                        "static:gamma=4:payload=topp, adaedl (repeat, or comma-separate; default: Gelato no exit, "
                        "Gelato bucket exit, StaticSD(4, topp))")
    c.add_argument("--export-csv", default=None, metavar="FILE",
                   help="also write the pairs in the structured log schema (sequence, round, position, entropy, "
                        "accepted, support, after_reject; docs/lm_logs.md); refused for a flat --csv")
    c.add_argument("--pooled", action="store_true",
                   help="fit one entropy law and acceptance map for all positions (docs/model.md §4 as written); by "
                        "default the first draft of a round after a rejection gets its own scale and intercept "
                        "(after_reject_H_scale, after_reject_a0_shift) where the data allow it")
    c.add_argument("--quiet", action="store_true")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_calibrate)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gelato-lm")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parsers(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as e:
        print(f"gelato: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
