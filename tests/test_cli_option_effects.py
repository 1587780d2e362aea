"""No silently ignored flag (issue 16): every option of every ``gelato`` command has an effect or
is refused (exit status 2, one line on stderr).

``compare``, ``sweep`` and ``figures`` are covered by ``tests/test_sweep.py`` (its ``COVERAGE``
table); this file covers every other command. Each case of ``EFFECTS`` runs the command in
process twice, on a base command line and with the case's flags added, and reads one *probe* of
the run: an argument the command's work function received (the heavy internals - the simulator,
the verifier, the optimiser, the trainer, the benchmark - are replaced by recorders, so the
effect is shown by what they are asked to do), the printed output or a written file. The case
passes when the probe equals the expected value with the flags and differs from it without.
``REFUSALS`` are option combinations where an option has nothing to act on: the command must
refuse them before any work. ``test_every_option_is_covered`` fails for an option (of a new
command, too) that no case names.
"""

from __future__ import annotations

import importlib
import json
import os
import types

import pytest

from gelato_jax.cli import build_parser, main
from gelato_jax.policies import AdaEDL, Gelato, StaticSD

# covered in tests/test_sweep.py (COVERAGE, test_every_option_of_compare_sweep_figures_has_a_test)
ELSEWHERE = {"compare", "sweep", "figures"}


# ----------------------------------------------------------------------------- recorders
class Run:
    """What one command line did: exit status, stdout, stderr, and the recorded calls
    (``calls[name]`` = list of ``(args, kwargs)``)."""

    def __init__(self, rc, out, err, calls, tmp):
        self.rc, self.out, self.err, self.calls, self.tmp = rc, out, err, calls, tmp

    def kw(self, name, key, i=-1):
        return self.calls[name][i][1][key]

    def arg(self, name, pos, i=-1):
        return self.calls[name][i][0][pos]

    def n(self, name):
        return len(self.calls.get(name, []))

    @property
    def is_json(self):
        try:
            json.loads(self.out)
        except ValueError:
            return False
        return True


def _record(monkeypatch, calls, module, attr, ret, name=None):
    """Replace ``module.attr`` by a recorder (its calls under ``calls[name or attr]``) that returns
    ``ret(*args, **kwargs)``; ``module`` is a module name or an object."""
    mod = importlib.import_module(module) if isinstance(module, str) else module

    def fake(*a, **k):
        calls.setdefault(name or attr, []).append((a, k))
        return ret(*a, **k)

    monkeypatch.setattr(mod, attr, staticmethod(fake) if isinstance(mod, type) else fake)


@pytest.fixture(scope="module")
def tiny_result():
    """One real 2 x 10 simulation (the recorders of simulate return it)."""
    from gelato_jax import Scenario, simulate
    from gelato_jax.policies import Gelato

    return simulate(Scenario(), Gelato(V=0.1), seed=0, realizations=2, rounds=10, progress=False)


def _files(tmp):
    cfg = tmp / "c.toml"
    cfg.write_text("[scenario]\ndelta = 0.05\n")
    vcfg = tmp / "v.toml"
    vcfg.write_text('[policy]\nname = "gelato"\nV = 2.0\n')
    flat = tmp / "flat.csv"
    flat.write_text("entropy,accepted\n" + "".join(f"{0.1 * i:.1f},{i % 2}\n" for i in range(1, 21)))
    structured = tmp / "structured.csv"
    rows = ["sequence,round,position,entropy,accepted"]
    for s in range(2):
        for t in range(3):
            rows += [f"{s},{t},1,0.5,1", f"{s},{t},2,1.5,0", f"{s},{t},3,2.0,"]
    structured.write_text("\n".join(rows) + "\n")
    return {"CFG": str(cfg), "VCFG": str(vcfg), "FLAT": str(flat), "STRUCT": str(structured), "TMP": str(tmp)}


def _setup(command, monkeypatch, calls, tiny):
    """Install the recorders of ``command``'s heavy internals."""
    if command == "simulate":
        _record(monkeypatch, calls, "gelato_jax.simulator", "simulate", lambda *a, **k: tiny)
        from gelato_jax.scenario import Scenario

        _record(monkeypatch, calls, "gelato_jax.lm.simulate", "simulate_lm", lambda *a, **k: tiny)
        _record(monkeypatch, calls, "gelato_jax.lm.simulate", "calibrated_scenario",
                lambda path, **kw: Scenario(**{"delta": 0.07, **kw}))
        from gelato_jax.lm.rounds import LMPair

        _record(monkeypatch, calls, LMPair, "load", lambda *a, **k: "PAIR")
    elif command == "theory":
        for mod in ("theory.bounds", "theory.renewal"):
            _record(monkeypatch, calls, mod, "constants", lambda s, p, quantiles: {"T_star": 1.0, "B": 2.0})
    elif command == "verify":
        rep = types.SimpleNamespace(
            wall_s=0.0, exit_code=0, summary_table=lambda: "TABLE",
            write=lambda out, figures=True: calls.setdefault("write", []).append(((out,), {"figures": figures}))
            or {"theorem_claims_hold": True, "rate_claims_hold": True})
        _record(monkeypatch, calls, "proofs_check.run", "verify", lambda *a, **k: rep)
    elif command == "tightness":
        _record(monkeypatch, calls, "proofs_check.atlas", "tightness_atlas",
                lambda *a, **k: {"fields": list(a[2]), "points": [], "wall_s": 0.0, "configuration": k["configuration"]})
    elif command == "headline":
        _record(monkeypatch, calls, "figures.headline", "run", lambda **k: "# HEADLINE TABLE", name="run")
        _record(monkeypatch, calls, "figures.fair", "run", lambda **k: "# FAIR TABLE", name="fair_run")
    elif command == "optimize":
        res = types.SimpleNamespace(
            summary=lambda: {"H_th": 1.0}, gain_ci=(0.0, 0.1), objective="per_round", payload="topp", H_th=1.0,
            Theta_th=0.5, T_star=30.0, defaults=(1.5, 0.5), T_star_default=29.0, gain=1.0, grid_T=[29.5],
            grid_best=(1.0, 0.5), surface_opt=30.0, V=0.1, lambda_star=60.0,
            v_choice={"rule": "kept", "predicted_queue": 6.0, "settle_rounds": 100.0})
        _record(monkeypatch, calls, "gelato_jax.optimize", "optimize", lambda *a, **k: res)

        def figure(res, path):
            open(path, "wb").close()
            return path

        _record(monkeypatch, calls, "gelato_jax.optimize", "contour_figure", figure)
    elif command == "check":
        report = types.SimpleNamespace(to_dict=lambda: {"ok": True}, format=lambda: "all pass", exit_code=0)
        _record(monkeypatch, calls, "gelato_jax.testing", "check_policy", lambda *a, **k: report)
    elif command == "train-lm":
        _record(monkeypatch, calls, "gelato_jax.lm.train", "train",
                lambda which, **k: {"steps": k["steps"], "n_params": 1, "val_loss_nats_per_byte": 1.0, "train_seconds": 0.0})
    elif command == "calibrate":
        res = {"fit": {"a0": 4.0, "a1": 1.5, "k_H": 0.8, "theta_H": 1.5}, "n_pairs": 10, "mean_acceptance": 0.5,
               "corr_entropy_accepted": -0.3, "toml": "cal.toml", "plot": "rel.png", "warnings": [], "not_estimated": {}}
        _record(monkeypatch, calls, "gelato_jax.lm.calibrate", "run_calibration", lambda **k: res)
        row = {"policy": "p", "metric": "m", "lm": 1.0, "surrogate": 1.0, "z": 0.0, "within": True}
        _record(monkeypatch, calls, "gelato_jax.lm.calibrate", "validate_calibration", lambda *a, **k: [row])
        crow = {"check": "mean acceptance", "n": 5, "observed": 0.5, "predicted": 0.5, "z": 0.0, "within": True}
        _record(monkeypatch, calls, "gelato_jax.lm.calibrate", "validate_csv_calibration", lambda *a, **k: [crow])
    elif command == "bench":
        _record(monkeypatch, calls, "gelato_jax.bench", "run_benchmark", lambda **k: {"kind": "benchmark"})
        _record(monkeypatch, calls, "gelato_jax.bench", "run_scaling", lambda **k: {"kind": "scaling"})
        _record(monkeypatch, calls, "gelato_jax.bench", "format_report", lambda rep: f"report of the {rep['kind']}")
    elif command == "launch":
        import gelato_jax.launch as launch

        class Proc:
            returncode = 0

            def __init__(self, argv, env):
                calls.setdefault("Popen", []).append(((argv,), {"env": env}))

            def poll(self):
                return 0

        monkeypatch.setattr(launch.subprocess, "Popen", Proc)
    else:  # pragma: no cover - a command without recorders
        raise AssertionError(command)


@pytest.fixture
def run(monkeypatch, tmp_path, capsys, tiny_result):
    """``run(argv) -> Run``: the command line in process, its heavy internals recorded."""
    files = _files(tmp_path)

    def go(argv):
        argv = [files.get(a, a.replace("TMP", str(tmp_path))) for a in argv]
        calls: dict = {}
        _setup(argv[0], monkeypatch, calls, tiny_result)
        capsys.readouterr()
        rc = main(argv)
        cap = capsys.readouterr()
        return Run(rc, cap.out, cap.err, calls, tmp_path)

    return go


def _exists(path):
    return lambda r: os.path.exists(os.path.join(str(r.tmp), path))


# ----------------------------------------------------------------------------- the cases
# base command line of each command (the case's flags are added to it)
BASE = {
    "simulate": ["simulate", "--realizations", "2", "--rounds", "10"],
    "theory": ["theory"],
    "verify": ["verify", "--out", "TMP/rep"],
    "tightness": ["tightness", "--grid", "W=1e6,2e6", "--out", "TMP/atlas"],
    "headline": ["headline", "--out", "TMP/h.md", "--results", "TMP/res"],
    "optimize": ["optimize"],
    "check": ["check", "gelato_jax.policies:Gelato"],
    "train-lm": ["train-lm", "--ckpt-dir", "TMP/ckpt"],
    "calibrate": ["calibrate", "--out", "TMP/cal"],
    "bench": ["bench"],
    "launch": ["launch", "--processes", "2", "--", "sweep", "--grid", "V=0.1,1"],
}

# (command, flags added to BASE[command], probe, value the probe has with the flags and not without)
EFFECTS = [
    # simulate (surrogate): what the simulator is asked for, and the output
    ("simulate", ["--seed", "7"], lambda r: r.kw("simulate", "seed"), 7),
    ("simulate", ["--realizations", "3"], lambda r: r.kw("simulate", "realizations"), 3),
    ("simulate", ["--rounds", "11"], lambda r: r.kw("simulate", "rounds"), 11),
    ("simulate", ["--chunk", "2"], lambda r: r.kw("simulate", "chunk"), 2),
    ("simulate", ["--devices", "1"], lambda r: r.kw("simulate", "devices"), 1),
    ("simulate", ["--quiet"], lambda r: r.kw("simulate", "progress"), False),
    ("simulate", ["--policy", "static"], lambda r: type(r.arg("simulate", 1)).__name__, "StaticSD"),
    ("simulate", ["--set", "V=2.5"], lambda r: r.arg("simulate", 1).V, 2.5),
    ("simulate", ["--config", "CFG"], lambda r: r.arg("simulate", 0).delta, 0.05),
    ("simulate", ["--json"], lambda r: r.is_json, True),
    ("simulate", ["--out", "TMP/sim"], _exists("sim/simulate.json"), True),
    # simulate --tokens lm: LM mode runs instead, with the LM-only flags
    ("simulate", ["--tokens", "lm"], lambda r: (r.n("simulate_lm"), r.n("simulate")), (1, 0)),
    ("simulate", ["--tokens", "lm", "--top-p", "0.5"], lambda r: r.kw("simulate_lm", "top_p"), 0.5),
    ("simulate", ["--tokens", "lm", "--weights", "W_DIR"],
     lambda r: (r.arg("load", 0), r.kw("simulate_lm", "pair")), ("W_DIR", "PAIR")),
    ("simulate", ["--tokens", "lm", "--calibration", "CFG"],
     lambda r: os.path.basename(r.arg("calibrated_scenario", 0) or ""), "c.toml"),
    ("simulate", ["--tokens", "lm", "--calibration", "none"], lambda r: r.n("calibrated_scenario"), 0),
    # theory: the scenario, policy and quantiles the constants are computed for
    ("theory", ["--V", "3"], lambda r: r.arg("constants", 1).V, 3.0),
    ("theory", ["--proxy", "exact"], lambda r: r.arg("constants", 1).proxy, "exact"),
    ("theory", ["--exit", "none"], lambda r: r.arg("constants", 1).exit, "none"),
    ("theory", ["--payload", "full"], lambda r: r.arg("constants", 1).payload, "full"),
    ("theory", ["--quantiles", "64"], lambda r: r.kw("constants", "quantiles"), 64),
    ("theory", ["--set", "W=3e6"], lambda r: r.arg("constants", 0).W, 3e6),
    ("theory", ["--config", "CFG"], lambda r: r.arg("constants", 0).delta, 0.05),
    ("theory", ["--json"], lambda r: r.is_json, True),
    # verify: what the verifier is asked for, and where the report goes
    ("verify", ["--only", "a"], lambda r: r.kw("verify", "only"), ("a-exact-dpp",)),
    ("verify", ["--quick"], lambda r: r.kw("verify", "quick"), True),
    ("verify", ["--strict"], lambda r: r.kw("verify", "strict"), True),
    ("verify", ["--seed", "7"], lambda r: r.kw("verify", "seed"), 7),
    ("verify", ["--quiet"], lambda r: r.kw("verify", "progress"), False),
    ("verify", ["--jobs", "1"], lambda r: r.kw("verify", "jobs"), 1),
    ("verify", ["--set", "E_bar=0.03"], lambda r: r.arg("verify", 0).E_bar, 0.03),
    ("verify", ["--config", "CFG"], lambda r: r.arg("verify", 0).delta, 0.05),
    ("verify", ["--no-figures"], lambda r: r.kw("write", "figures"), False),
    ("verify", ["--out", "TMP/rep2"], lambda r: os.path.basename(r.arg("write", 0)), "rep2"),
    ("verify", ["--json"], lambda r: r.is_json, True),
    ("verify", ["--size", "realizations=8"], lambda r: r.kw("verify", "sizes").realizations, 8),
    # tightness
    ("tightness", ["--grid", "delta=0.02,0.14"], lambda r: sorted(r.arg("tightness_atlas", 2)), ["delta"]),
    ("tightness", ["--configuration", "b"], lambda r: r.kw("tightness_atlas", "configuration"), "b"),
    ("tightness", ["--quick"], lambda r: r.kw("tightness_atlas", "quick"), True),
    ("tightness", ["--seed", "5"], lambda r: r.kw("tightness_atlas", "seed"), 5),
    ("tightness", ["--no-figures"], lambda r: r.kw("tightness_atlas", "figures"), False),
    ("tightness", ["--quiet"], lambda r: r.kw("tightness_atlas", "progress"), False),
    ("tightness", ["--out", "TMP/atlas2"], lambda r: os.path.basename(r.kw("tightness_atlas", "out")), "atlas2"),
    ("tightness", ["--set", "E_bar=0.03"], lambda r: r.arg("tightness_atlas", 0).E_bar, 0.03),
    ("tightness", ["--config", "CFG"], lambda r: r.arg("tightness_atlas", 0).delta, 0.05),
    ("tightness", ["--json"], lambda r: r.is_json, True),
    ("tightness", ["--size", "realizations=8"], lambda r: r.kw("tightness_atlas", "sizes").realizations, 8),
    # headline
    ("headline", ["--fair"], lambda r: (r.n("fair_run"), r.n("run"), os.path.basename(r.kw("fair_run", "out_md"))),
     (1, 0, "h.md")),
    ("headline", ["--quick"], lambda r: r.kw("run", "quick"), True),
    ("headline", ["--draw-only"], lambda r: r.kw("run", "draw_only"), True),
    ("headline", ["--seed", "3"], lambda r: r.kw("run", "seed"), 3),
    ("headline", ["--quiet"], lambda r: r.kw("run", "quiet"), True),
    ("headline", ["--results", "TMP/res2"], lambda r: os.path.basename(r.kw("run", "results_dir")), "res2"),
    ("headline", ["--out", "TMP/h2.md"], lambda r: os.path.basename(r.kw("run", "out_md")), "h2.md"),
    ("headline", ["--print"], lambda r: r.out.strip(), "# HEADLINE TABLE"),
    # optimize: what the optimiser is asked for
    ("optimize", ["--objective", "time_average"], lambda r: r.kw("optimize", "objective"), "time_average"),
    ("optimize", ["--queue-limit", "2"], lambda r: r.kw("optimize", "queue_limit"), 2.0),
    ("optimize", ["--settle-rounds", "100"], lambda r: r.kw("optimize", "settle_rounds"), 100.0),
    ("optimize", ["--h-range", "0.5,3"], lambda r: tuple(r.kw("optimize", "box")[0]), (0.5, 3.0)),
    ("optimize", ["--theta-range", "0,2"], lambda r: tuple(r.kw("optimize", "box")[1]), (0.0, 2.0)),
    ("optimize", ["--grid", "3"], lambda r: r.kw("optimize", "grid"), 3),
    ("optimize", ["--starts", "2"], lambda r: r.kw("optimize", "starts"), 2),
    ("optimize", ["--steps", "5"], lambda r: r.kw("optimize", "steps"), 5),
    ("optimize", ["--samples", "4096"],
     lambda r: (r.kw("optimize", "samples"), r.kw("optimize", "replicate_samples")), (4096, 4096)),
    ("optimize", ["--replicates", "3"], lambda r: r.kw("optimize", "replicates"), 3),
    ("optimize", ["--fast"], lambda r: r.kw("optimize", "exact"), False),
    ("optimize", ["--quiet"], lambda r: r.kw("optimize", "progress"), None),
    ("optimize", ["--set", "W=3e6"], lambda r: r.arg("optimize", 0).W, 3e6),
    ("optimize", ["--config", "CFG"], lambda r: r.arg("optimize", 0).delta, 0.05),
    ("optimize", ["--json"], lambda r: r.is_json, True),
    ("optimize", ["--out", "TMP/opt"], lambda r: (_exists("opt/optimize.json")(r), _exists("opt/optimize_contour.png")(r)),
     (True, True)),
    # check: what the property checks are asked for
    ("check", ["--examples", "3"], lambda r: r.kw("check_policy", "examples"), 3),
    ("check", ["--declare", "monotone_in_queue"], lambda r: r.kw("check_policy", "declared"), ["monotone_in_queue"]),
    ("check", ["--only", "finite"], lambda r: r.kw("check_policy", "only"), ["finite"]),
    ("check", ["--seed", "5"], lambda r: r.kw("check_policy", "seed"), 5),
    ("check", ["--set", "V=2"], lambda r: r.arg("check_policy", 0).V, 2),
    ("check", ["--config", "CFG"], lambda r: r.kw("check_policy", "fixed"), {"delta": 0.05}),
    ("check", ["--json"], lambda r: r.is_json, True),
    # train-lm: what the trainer is asked for
    ("train-lm", ["--which", "draft"], lambda r: [a[0][0] for a in r.calls["train"]], ["draft"]),
    ("train-lm", ["--steps", "5"], lambda r: [k["steps"] for _, k in r.calls["train"]], [5, 5]),
    ("train-lm", ["--target-steps", "7"], lambda r: r.kw("train", "steps", 1), 7),
    ("train-lm", ["--draft-steps", "8"], lambda r: r.kw("train", "steps", 0), 8),
    ("train-lm", ["--batch", "4"], lambda r: r.kw("train", "batch"), 4),
    ("train-lm", ["--lr", "0.01"], lambda r: r.kw("train", "lr"), 0.01),
    ("train-lm", ["--seed", "3"], lambda r: r.kw("train", "seed"), 3),
    ("train-lm", ["--out", "W_DIR"], lambda r: r.kw("train", "out_dir"), "W_DIR"),
    ("train-lm", ["--ckpt-dir", "TMP/ck2"], lambda r: os.path.basename(r.kw("train", "ckpt_dir")), "ck2"),
    ("train-lm", ["--ckpt-every", "5"], lambda r: r.kw("train", "ckpt_every"), 5),
    ("train-lm", ["--eval-every", "6"], lambda r: r.kw("train", "eval_every"), 6),
    ("train-lm", ["--quiet"], lambda r: r.kw("train", "quiet"), True),
    ("train-lm", ["--json"], lambda r: r.is_json, True),
    # calibrate (LM mode unless --csv): what the fit and the validation are asked for
    ("calibrate", ["--rounds", "7"], lambda r: r.kw("run_calibration", "rounds"), 7),
    ("calibrate", ["--sequences", "3"], lambda r: r.kw("run_calibration", "sequences"), 3),
    ("calibrate", ["--gamma-max", "4"], lambda r: r.kw("run_calibration", "gamma_max"), 4),
    ("calibrate", ["--top-p", "0.5"], lambda r: r.kw("run_calibration", "top_p"), 0.5),
    ("calibrate", ["--seed", "2"], lambda r: r.kw("run_calibration", "seed"), 2),
    ("calibrate", ["--weights", "W_DIR"], lambda r: r.kw("run_calibration", "weights_dir"), "W_DIR"),
    ("calibrate", ["--entropy-process", "round"], lambda r: r.kw("run_calibration", "entropy_process"), "round"),
    ("calibrate", ["--entropy-process", "round", "--write-rho"], lambda r: r.kw("run_calibration", "write_rho"), True),
    ("calibrate", ["--pooled"], lambda r: r.kw("run_calibration", "positional"), False),
    ("calibrate", ["--export-csv", "TMP/pairs.csv"],
     lambda r: os.path.basename(r.kw("run_calibration", "export_csv") or ""), "pairs.csv"),
    ("calibrate", ["--quiet"], lambda r: r.kw("run_calibration", "quiet"), True),
    ("calibrate", ["--out", "TMP/cal2"], lambda r: os.path.basename(r.kw("run_calibration", "out_dir")), "cal2"),
    ("calibrate", ["--csv", "STRUCT"], lambda r: r.kw("run_calibration", "csv").endswith("structured.csv"), True),
    ("calibrate", ["--validate", "--seed", "2"], lambda r: (r.n("validate_calibration"), r.kw("validate_calibration", "seed")),
     (1, 2)),
    ("calibrate", ["--csv", "STRUCT", "--validate"], lambda r: r.n("validate_csv_calibration"), 1),
    ("calibrate", ["--validate", "--json"], lambda r: json.loads(r.out)["validation"][0]["policy"], "p"),
    ("calibrate", ["--json"], lambda r: r.is_json, True),
    # the LM-mode validation's own options (each compared with --validate without it)
    ("calibrate", ["--lm-realizations", "5", "--validate"], lambda r: r.kw("validate_calibration", "lm_realizations"), 5),
    ("calibrate", ["--lm-rounds", "7", "--validate"], lambda r: r.kw("validate_calibration", "lm_rounds"), 7),
    ("calibrate", ["--surrogate-realizations", "9", "--validate"],
     lambda r: r.kw("validate_calibration", "surrogate_realizations"), 9),
    ("calibrate", ["--surrogate-rounds", "11", "--validate"], lambda r: r.kw("validate_calibration", "surrogate_rounds"), 11),
    ("calibrate", ["--policy", "adaedl,static:gamma=3", "--policy", "gelato:exit=none", "--validate"],
     lambda r: [repr(p) for p in r.kw("validate_calibration", "policies")],
     [repr(p) for p in (AdaEDL(), StaticSD(gamma=3), Gelato(exit="none"))]),
    ("calibrate", ["--calibration", "CFG", "--validate"],
     lambda r: (r.n("run_calibration"), r.arg("validate_calibration", 0).endswith(".toml")), (0, True)),
    # bench: what the benchmark is asked for
    ("bench", ["--realizations", "8"], lambda r: r.kw("run_benchmark", "realizations"), 8),
    ("bench", ["--rounds", "9"], lambda r: r.kw("run_benchmark", "rounds"), 9),
    ("bench", ["--numpy-rounds", "5"], lambda r: r.kw("run_benchmark", "numpy_rounds"), 5),
    ("bench", ["--python-realizations", "2"], lambda r: r.kw("run_benchmark", "python_realizations"), 2),
    ("bench", ["--python-rounds", "3"], lambda r: r.kw("run_benchmark", "python_rounds"), 3),
    ("bench", ["--dtype", "float64"], lambda r: r.kw("run_benchmark", "dtypes"), ("float64",)),
    ("bench", ["--devices", "1"], lambda r: r.kw("run_benchmark", "devices"), (1,)),
    ("bench", ["--seed", "4"], lambda r: r.kw("run_benchmark", "seed"), 4),
    ("bench", ["--repeats", "2"], lambda r: r.kw("run_benchmark", "repeats"), 2),
    ("bench", ["--quiet"], lambda r: r.kw("run_benchmark", "progress"), False),
    ("bench", ["--scaling", "10,20"], lambda r: (r.n("run_benchmark"), r.kw("run_scaling", "sizes")), (0, (10, 20))),
    ("bench", ["--scaling", "10", "--rounds", "9", "--dtype", "float64", "--seed", "4"],
     lambda r: {k: r.kw("run_scaling", k) for k in ("rounds", "dtype", "seed")}, {"rounds": 9, "dtype": "float64", "seed": 4}),
    ("bench", ["--out", "TMP/b"], _exists("b/bench.json"), True),
    ("bench", ["--json"], lambda r: r.is_json, True),
    # launch: the processes started
    ("launch", ["--processes", "3"], lambda r: sorted(k["env"]["JAX_PROCESS_ID"] for _, k in r.calls["Popen"]),
     ["0", "1", "2"]),
    ("launch", ["--port", "12345"], lambda r: r.kw("Popen", "env")["JAX_COORDINATOR_ADDRESS"], "127.0.0.1:12345"),
]


def _with(base, flags):
    """``base`` with ``flags`` added; a flag already in ``base`` gets the new value."""
    args = list(base)
    for i, f in enumerate(flags):
        if f.startswith("--") and f in args and i + 1 < len(flags) and not flags[i + 1].startswith("--"):
            args[args.index(f) + 1] = flags[i + 1]
            flags = flags[:i] + ["", ""] + flags[i + 2:]
    if "--" in args:  # launch: its own options before the command
        k = args.index("--")
        return args[:k] + [f for f in flags if f] + args[k:]
    return args + [f for f in flags if f]


def _id(case):
    return f"{case[0]} {' '.join(case[1])}"


@pytest.mark.parametrize("case", EFFECTS, ids=[_id(c) for c in EFFECTS])
def test_option_has_an_effect(case, run):
    command, flags, probe, expected = case
    base = BASE[command]
    # the LM-mode and --csv cases compare with the same mode without the option
    if command == "simulate" and "--tokens" in flags and flags != ["--tokens", "lm"]:
        base = base + ["--tokens", "lm"]
        flags = [f for f in flags if f not in ("--tokens", "lm")]
    if command == "calibrate" and "--csv" in flags and flags != ["--csv", "STRUCT"]:
        base = base + ["--csv", "STRUCT"]
        flags = [f for f in flags if f not in ("--csv", "STRUCT")]
    if command == "calibrate" and flags[:2] == ["--entropy-process", "round"] and len(flags) > 2:
        base, flags = base + flags[:2], flags[2:]
    if command == "bench" and flags[0] == "--scaling" and len(flags) > 2:
        base, flags = base + ["--scaling", "10"], flags[2:]
    if command == "calibrate" and "--validate" in flags[1:] and "--csv" not in flags:
        base, flags = base + ["--validate"], [f for f in flags if f != "--validate"]  # the option's effect on --validate
    if command == "calibrate" and flags[0] == "--validate" and len(flags) > 1:
        base, flags = base + flags[1:], flags[:1]  # --validate's effect, given the rest
    without = run(base)  # first: a file the option writes is not there yet
    assert without.rc == 0, without.err
    try:
        got = probe(without)
    except (KeyError, IndexError, ValueError, AttributeError, TypeError):  # the call or output is not there at all
        got = KeyError
    assert got != expected
    with_ = run(_with(base, flags))
    assert with_.rc == 0, with_.err
    assert probe(with_) == expected


# (command line, text the one-line error must contain): an option with nothing to act on
REFUSALS = [
    (["simulate", "--top-p", "0.5"], "--top-p only applies to LM mode"),
    (["simulate", "--tokens", "lm", "--devices", "2"], "--devices applies to --tokens surrogate"),
    (["simulate", "--weights", "W_DIR"], "--weights only applies to LM mode"),
    (["simulate", "--calibration", "CFG"], "--calibration only applies to LM mode"),
    (["headline", "--draw-only", "--quick"], "--quick does not apply to --draw-only"),
    (["headline", "--draw-only", "--seed", "1"], "--seed does not apply to --draw-only"),
    (["optimize", "--queue-limit", "2", "--settle-rounds", "100"], "not allowed with argument"),
    (["train-lm", "--which", "draft", "--target-steps", "5"], "--target-steps does not apply to --which draft"),
    (["train-lm", "--which", "target", "--draft-steps", "5"], "--draft-steps does not apply to --which target"),
    (["train-lm", "--steps", "5", "--target-steps", "6"], "not both"),
    (["calibrate", "--csv", "FLAT", "--rounds", "7"], "--rounds only applies to LM mode"),
    (["calibrate", "--csv", "FLAT", "--sequences", "3"], "--sequences only applies to LM mode"),
    (["calibrate", "--csv", "FLAT", "--gamma-max", "4"], "--gamma-max only applies to LM mode"),
    (["calibrate", "--csv", "FLAT", "--top-p", "0.5"], "--top-p only applies to LM mode"),
    (["calibrate", "--csv", "FLAT", "--seed", "2", "--validate"], "--seed only applies to LM mode"),
    (["calibrate", "--csv", "FLAT", "--weights", "W_DIR"], "--weights only applies to LM mode"),
    (["calibrate", "--csv", "FLAT", "--entropy-process", "text"], "--entropy-process needs the round structure"),
    (["calibrate", "--csv", "FLAT", "--entropy-process", "round", "--write-rho"], "--write-rho need the round structure"),
    (["calibrate", "--csv", "FLAT", "--export-csv", "TMP/x.csv"], "--export-csv needs the round structure"),
    (["calibrate", "--lm-rounds", "7"], "--lm-rounds needs --validate"),
    (["calibrate", "--calibration", "CFG"], "--calibration needs --validate"),
    (["calibrate", "--csv", "FLAT", "--validate", "--policy", "adaedl"], "--policy only applies to the LM-mode validation"),
    (["calibrate", "--validate", "--lm-realizations", "0"], "--lm-realizations must be a positive integer"),
    (["calibrate", "--validate", "--surrogate-realizations", "-1", "--surrogate-rounds", "3"],
     "--surrogate-realizations must be a positive integer"),
    (["calibrate", "--validate", "--policy", "nosuch"], "policy must be one of"),
    (["calibrate", "--validate", "--policy", "static:gamma"], "--policy expects NAME[:field=value...]"),
    (["calibrate", "--validate", "--calibration", "CFG", "--sequences", "3"], "--sequences configures a fit"),
    (["calibrate", "--validate", "--calibration", "TMP/missing.toml"], "does not exist"),
    (["bench", "--scaling", "10", "--realizations", "8"], "--realizations does not apply to bench --scaling"),
    (["bench", "--scaling", "10", "--numpy-rounds", "5", "--python-realizations", "2", "--python-rounds", "3"],
     "--numpy-rounds, --python-realizations, --python-rounds do not apply to bench --scaling"),
    (["bench", "--scaling", "10", "--devices", "1"], "--devices does not apply to bench --scaling"),
    (["bench", "--scaling", "10", "--dtype", "float32,float64"], "runs one dtype"),
    (["launch", "--processes", "2", "--", "simulate"], "does not split its work"),
    # a --set/--config field the command would override or not read
    (["theory", "--V", "3", "--set", "V=2"], "--V and --set V=... both set V"),
    (["verify", "--set", "V=2"], "V: gelato verify would ignore the given value (it sweeps V"),
    (["verify", "--set", "proxy=exact"], "proxy: gelato verify would ignore"),
    (["verify", "--set", "ewma_beta=0.2"], "ewma_beta: gelato verify would ignore"),
    (["verify", "--only", "a", "--set", "H_th=2"], "H_th: gelato verify would ignore"),
    (["verify", "--config", "VCFG"], "V: gelato verify would ignore"),
    (["tightness", "--grid", "W=1e6,2e6", "--set", "V=2"], "V: gelato tightness would ignore"),
    (["tightness", "--grid", "W=1e6,2e6", "--set", "H_th=2"], "configuration a-exact-dpp sets or does not use H_th"),
    # several processes (the real runs: tests/test_distributed.py)
    (["tightness", "--grid", "W=1e6,2e6", "--distributed", "--coordinator", "h:1", "--num-processes", "2", "--process-id", "2"],
     "--process-id must be in 0..1"),
    (["tightness", "--grid", "W=1e6,2e6", "--connect-timeout", "5"], "--connect-timeout applies to several processes only"),
    (["verify", "--distributed", "--coordinator", "h:1", "--num-processes", "2", "--process-id", "2"],
     "--process-id must be in 0..1"),
    (["verify", "--connect-timeout", "5"], "--connect-timeout applies to several processes only"),
    (["optimize", "--set", "proxy=mean"], "proxy: gelato optimize would ignore"),
    (["optimize", "--set", "ewma_beta=0.2"], "ewma_beta: gelato optimize would ignore"),
]


@pytest.mark.parametrize("argv,needle", REFUSALS, ids=[" ".join(a) for a, _ in REFUSALS])
def test_option_without_effect_is_refused(argv, needle, run):
    r = run(argv)
    assert r.rc == 2, (r.rc, r.out, r.err)
    assert len(r.err.strip().splitlines()) == 1 and needle in r.err, r.err
    heavy = {"simulate", "simulate_lm", "run_calibration", "run_benchmark", "run_scaling", "train", "run", "fair_run",
             "optimize", "Popen", "verify", "tightness_atlas", "constants", "check_policy"}
    assert not heavy & set(r.calls), r.calls  # refused before any work


@pytest.mark.parametrize("argv,probe,expected", [
    (["verify", "--set", "H_th=2"], lambda r: r.arg("verify", 1).H_th, 2.0),  # (b), (c), (e) use the bucket
    (["verify", "--only", "f", "--set", "ratio_nodes=64"], lambda r: r.arg("verify", 1).ratio_nodes, 64),
    (["tightness", "--grid", "W=1e6,2e6", "--configuration", "b", "--set", "H_th=2"],
     lambda r: r.arg("tightness_atlas", 1).H_th, 2.0),
    (["optimize", "--set", "proxy=exact", "--set", "H_th=2"], lambda r: r.arg("optimize", 1).H_th, 2.0),
    (["theory", "--config", "VCFG", "--V", "3"], lambda r: r.arg("constants", 1).V, 3.0),  # the shortcut beats the file
])
def test_policy_fields_the_command_reads_are_not_refused(argv, probe, expected, run):
    r = run(argv + (["--out", "TMP/o"] if argv[0] in ("verify", "tightness") else []))
    assert r.rc == 0, r.err
    assert probe(r) == expected


def test_seed_changes_a_real_simulation(capsys):
    """Beside the recorded arguments: two seeds give two different runs, one seed the same run."""
    def thr(seed):
        assert main(["simulate", "--realizations", "2", "--rounds", "10", "--quiet", "--json", "--seed", seed]) == 0
        return json.loads(capsys.readouterr().out)["summary"]["throughput"]["mean"]

    a, b = thr("1"), thr("2")
    assert a != b and thr("1") == a


def test_every_option_is_covered():
    """Every option of every command outside ``ELSEWHERE`` is in an ``EFFECTS`` or ``REFUSALS`` case."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    assert set(sub.choices) == set(BASE) | ELSEWHERE, sorted(set(sub.choices) ^ (set(BASE) | ELSEWHERE))
    covered = {(c, f) for c, flags, *_ in EFFECTS for f in flags if f.startswith("--")}
    covered |= {(a[0], f) for a, _ in REFUSALS for f in a if f.startswith("--")}
    missing = []
    for command in BASE:
        for action in sub.choices[command]._actions:
            for opt in action.option_strings:
                if opt.startswith("--") and opt != "--help" and (command, opt) not in covered:
                    missing.append(f"{command} {opt}")
    assert not missing, missing
