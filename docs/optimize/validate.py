"""Validation of ``gelato optimize`` by simulation (docs/optimize.md): the optimised controller and
the default one on common random numbers, paired 95 % CIs of throughput and energy, against the
predicted gain ``T*(optimum) − T*(defaults)``.

    .venv/bin/python docs/optimize/validate.py docs/optimize/defaults/optimize.json [--set W=5e6 ...]
        [--realizations 128] [--rounds 4000] [--seed 0]

Reads the optimiser's JSON (thresholds, V, predicted gain and its CI; the time-average objective
is compared on goodput ΣN/ΣD, the per-round one on E[N/D]), writes ``validation.json``
next to it and prints one line per metric.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from gelato_jax import Scenario
from gelato_jax.cli_inputs import parse_assignments
from gelato_jax.compare import compare
from gelato_jax.policies import Gelato


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("result")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--realizations", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    res = json.load(open(a.result))
    scenario = Scenario.from_dict(parse_assignments(a.set))
    V = float(res["V"])
    d = res["defaults"]
    pols = {
        "optimised": Gelato(proxy="exact", V=V, H_th=float(res["H_th"]), Theta_th=float(res["Theta_th"])),
        "default": Gelato(proxy="exact", V=V, H_th=float(d["H_th"]), Theta_th=float(d["Theta_th"])),
    }
    t0 = time.perf_counter()
    cmp = compare(scenario, pols, seed=a.seed, realizations=a.realizations, rounds=a.rounds, reference="optimised")
    vs = cmp.versus()["default"]
    summ = cmp.summary()
    out = {
        "predicted_gain": res["gain"], "predicted_gain_ci": res["gain_ci"],
        "T_star": res["T_star"], "T_star_default": res["T_star_default"], "V": V,
        "H_th": res["H_th"], "Theta_th": res["Theta_th"], "set": a.set,
        "realizations": a.realizations, "rounds": a.rounds, "seed": a.seed,
        "throughput_diff": vs["throughput"]["diff"], "throughput_change_pct": vs["throughput"]["change_pct"],
        "energy_diff": vs["energy"]["diff"], "goodput_diff": vs["goodput"]["diff"],
        "queue_mean_diff": vs["queue_mean"]["diff"],
        "summary": {k: {m: summ[k][m] for m in ("throughput", "energy", "queue_mean", "goodput")} for k in summ},
        "seconds": time.perf_counter() - t0,
    }
    # the objective's metric: E[N/D] per round (per_round) or tokens per second ΣN/ΣD (time_average)
    metric = "goodput_diff" if res.get("objective") == "time_average" else "throughput_diff"
    out["metric"] = metric
    lo, hi = out[metric]["ci_low"], out[metric]["ci_high"]
    pl, ph = res["gain_ci"]
    out["agrees"] = bool(max(lo, pl) <= min(hi, ph))  # the two 95 % intervals overlap
    out["predicted_in_simulated_ci"] = bool(lo <= res["gain"] <= hi)
    path = os.path.join(os.path.dirname(os.path.abspath(a.result)), "validation.json")
    with open(path, "w") as fh:
        json.dump(out, fh, indent=2)
    for k in ("throughput_diff", "energy_diff", "goodput_diff", "queue_mean_diff"):
        x = out[k]
        print(f"{k:18s} {x['mean']:+.5g}  95% CI [{x['ci_low']:+.5g}, {x['ci_high']:+.5g}]")
    print(f"predicted gain     {res['gain']:+.5g}  95% CI [{pl:+.5g}, {ph:+.5g}]  vs {metric}: agrees={out['agrees']}")
    for k, v in out["summary"].items():
        print(k, {m: round(v[m]["mean"], 5) for m in v})
    print(f"wrote {path} ({out['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
