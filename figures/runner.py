r"""Compute and save the results the figures draw (``gelato figures`` runs this first).

Every point is a paired comparison on common random numbers (``gelato_jax.compare``): the same seed
gives every policy the same channel, entropy and acceptance draws. GELATO runs with ``V = 0.1``
[ours]: at the defaults ``λ* ≈ 57`` so the queue settles near ``V λ* ≈ 6`` J within a few hundred
rounds, well inside the horizon (larger ``V`` gains < 1 % throughput but needs far longer
horizons, see the V trade-off figure).

Sizes: full ``32 × 3000`` (realizations × rounds), ``--quick`` ``8 × 1000``; each sweep value is
one compiled call per policy class (scenario leaves such as ``W`` do not recompile).
Results: ``<results>/<name>.npz`` (per-realization arrays ``label__metric`` of shape
``(n_values, R)``) and ``<results>/<name>.json`` (configuration, means with CIs, paired changes).
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

import numpy as np

__all__ = ["SWEEPS", "GELATO_V", "run_sweep", "run_v_tradeoff", "run_all", "load_result", "save_sweep", "save_v_tradeoff"]

from gelato_jax.compare import DEFAULT_V as GELATO_V  # noqa: E402  (one value for compare, figures, headline)
MAIN = ("gelato", "static", "dssd", "adaedl", "uhlm")
ABLATION = ("gelato", "greedy", "lyapunov-only", "exit-only", "static", "oracle")

# name -> (scenario field, full values, quick values, policies, axis label, scale for the axis)
SWEEPS: dict[str, dict[str, Any]] = {
    "bandwidth": dict(param="W", values=[0.5e6, 1e6, 2e6, 5e6, 10e6, 20e6], quick=[0.5e6, 1e6, 5e6, 20e6],
                      policies=MAIN, label="uplink bandwidth W (MHz)", scale=1e-6),
    "delta": dict(param="delta", values=[0.02, 0.05, 0.08, 0.11, 0.14, 0.17, 0.2], quick=[0.02, 0.08, 0.14, 0.2],
                  policies=MAIN, label="fixed latency δ (ms)", scale=1e3),
    "energy_budget": dict(param="E_bar", values=[0.03, 0.045, 0.06, 0.08, 0.1, 0.12], quick=[0.03, 0.06, 0.12],
                          policies=MAIN, label="energy budget Ē (J/round)", scale=1.0),
    "ablation": dict(param=None, values=[None], quick=[None], policies=ABLATION, label="", scale=1.0),
}
V_VALUES = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
V_QUICK = [0.01, 0.1, 1.0]


def _policies(names, scenario):
    from gelato_jax.compare import parse_policy_specs

    psets = [f"{n}.V={GELATO_V}" for n in names if n in ("gelato", "lyapunov-only")]
    return parse_policy_specs(list(names), psets, scenario)


def _save(results_dir: str, name: str, arrays: dict, record: dict) -> None:
    from gelato_jax import io as gio

    os.makedirs(results_dir, exist_ok=True)
    gio.save_npz(os.path.join(results_dir, f"{name}.npz"), arrays)
    gio.save_json(os.path.join(results_dir, f"{name}.json"), {**record, "environment": gio.environment_info()})


def load_result(results_dir: str, name: str) -> dict:
    """The JSON sidecar of a saved result (figures read only this and the ``.npz``)."""
    import json

    path = os.path.join(results_dir, f"{name}.json")
    if not os.path.isfile(path):
        raise ValueError(f"no saved result {path!r}: run `gelato figures --run` (or --quick) first")
    with open(path) as fh:
        return json.load(fh)


def run_sweep(name: str, *, results_dir: str, quick: bool, seed: int, realizations: int, rounds: int, base=None, log=print,
              values=None):
    """Run sweep ``name`` of ``SWEEPS`` (over ``values`` if given) and save it."""
    from gelato_jax import Scenario
    from gelato_jax.compare import compare

    spec = SWEEPS[name]
    base = base or Scenario()
    if values is None:
        values = spec["quick"] if quick else spec["values"]
    cmps = []
    t0 = time.time()
    for v in values:
        scen = base if spec["param"] is None else base.replace(**{spec["param"]: v})
        pols = _policies(spec["policies"], scen)
        cmps.append(compare(scen, pols, seed=seed, realizations=realizations, rounds=rounds))
        log(f"  {name}: {spec['param']}={v} done ({time.time() - t0:.0f} s)")
    return save_sweep(results_dir, name, values, cmps, base.to_dict(), wall=time.time() - t0)


def save_sweep(results_dir: str, name: str, values, cmps, scenario: dict, wall: float = 0.0) -> dict:
    """Save the comparisons ``cmps`` (one per sweep value) as sweep ``name``; returns the record."""
    spec = SWEEPS[name]
    arrays: dict[str, list] = {}
    for cmp in cmps:
        for k, arr in cmp.arrays().items():
            arrays.setdefault(k, []).append(arr)
    c0 = cmps[0]
    record = {
        "name": name, "param": spec["param"], "values": list(values), "label": spec["label"], "scale": spec["scale"],
        "names": list(c0.names), "reference": c0.reference, "gelato_V": GELATO_V, "seed": c0.seed,
        "realizations": c0.realizations, "rounds": c0.rounds, "scenario": scenario,
        "summary": [c.summary() for c in cmps], "versus": [c.versus() for c in cmps], "wall_time_s": wall,
    }
    _save(results_dir, name, {k: np.stack(v) for k, v in arrays.items()}, record)
    return record


def run_v_tradeoff(*, results_dir: str, quick: bool, seed: int, realizations: int, rounds: int, base=None, log=print):
    """GELATO and Lyapunov-only over ``V`` on common draws, plus the oracle (``T*``) point."""
    from gelato_jax import Scenario
    from gelato_jax.compare import compare
    from gelato_jax.optimum import optimum
    from gelato_jax.policies import Gelato, LyapunovOnly, Oracle

    base = base or Scenario()
    Vs = V_QUICK if quick else V_VALUES
    t0 = time.time()
    opt = optimum(base, Gelato(exit="none"))
    pols = {"oracle": Oracle.from_optimum(opt)}
    for V in Vs:
        pols[f"gelato V={V:g}"] = Gelato(V=V)
        pols[f"lyapunov-only V={V:g}"] = LyapunovOnly(V=V)
    cmp = compare(base, pols, seed=seed, realizations=realizations, rounds=rounds, reference="oracle")
    log(f"  v_tradeoff done ({time.time() - t0:.0f} s)")
    return save_v_tradeoff(results_dir, Vs, cmp, opt.summary(), base.to_dict(), wall=time.time() - t0)


def save_v_tradeoff(results_dir: str, Vs, cmp, optimum_summary: dict, scenario: dict, wall: float = 0.0) -> dict:
    """Save the V trade-off comparison (labels ``oracle``, ``gelato V=…``, ``lyapunov-only V=…``)."""
    record = {
        "name": "v_tradeoff", "V": list(Vs), "names": list(cmp.names), "reference": cmp.reference, "seed": cmp.seed,
        "realizations": cmp.realizations, "rounds": cmp.rounds, "scenario": scenario,
        "optimum": optimum_summary, "summary": cmp.summary(), "wall_time_s": wall,
    }
    _save(results_dir, "v_tradeoff", cmp.arrays(), record)
    return record


def run_all(results_dir: str, *, quick: bool = False, seed: int = 0, only=None, log: Callable = print,
            base=None, values: dict | None = None) -> None:
    """Compute and save the results of the built-in figures. ``base``: the scenario every run
    starts from (default ``Scenario()``); ``values``: ``{param: values}`` replacing the values of
    the sweeps over that param (``gelato figures --set``/``--grid``)."""
    R, T = (8, 1000) if quick else (32, 3000)
    names = list(only) if only else ["bandwidth", "delta", "energy_budget", "ablation", "v_tradeoff"]
    values = dict(values or {})
    for name in names:
        log(f"figures: computing {name} ({R} realizations x {T} rounds)")
        if name == "v_tradeoff":
            run_v_tradeoff(results_dir=results_dir, quick=quick, seed=seed, realizations=R, rounds=T, log=log, base=base)
        else:
            run_sweep(name, results_dir=results_dir, quick=quick, seed=seed, realizations=R, rounds=T, log=log,
                      base=base, values=values.get(SWEEPS[name]["param"]))
