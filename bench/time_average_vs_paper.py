r"""Tokens per second at equal measured power: the paper's GELATO (per-round objective ``E[N/D]``
under a per-round energy budget ``Ē``) against the time-average GELATO (docs/model.md §11: ``ΣN/ΣD`` under
an average-power budget ``P̄``, ratio rule with θ(Z) of the known fading law).

For every bandwidth ``W`` (uplink) and fixed latency ``δ``:

1. the paper's GELATO (``Gelato(V=V_paper)``, leaky-bucket exit, top-p payload, mean proxy, the
   scenario's ``Ē``) is simulated; its measured power ``P = mean_r ΣE/ΣD`` is the target;
2. the time-average GELATO (the same inner loop, proxy and payload) is simulated with ``P̄ = P``,
   then once more with ``P̄`` scaled by ``P / measured`` (its finite-horizon overdraft
   ``Z_T/ΣD`` makes it spend slightly more than ``P̄``), so both spend the same measured power;
3. both run on common random numbers (``gelato_jax.compare.simulate_metrics``: realization ``r``
   sees the same channel, entropies and uniforms under either policy), so tokens per second and
   power are compared by paired Student-t intervals over realizations
   (``compare.paired_difference``, ``compare.ratio_change``).

Writes ``bench/results/time_average_vs_paper.json`` and ``figures/time_average_vs_paper.png``.
Usage: ``python bench/time_average_vs_paper.py [--realizations R] [--rounds T] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from gelato_jax import Scenario  # noqa: E402
from gelato_jax.compare import paired_difference, ratio_change, simulate_metrics  # noqa: E402
from gelato_jax.policies import Gelato  # noqa: E402

WS = (0.5e6, 1e6, 2e6, 5e6)
DELTAS = (0.02, 0.14)


def one_setting(W, delta, *, V_paper, V_ta, realizations, rounds, seed, extra=None):
    base = Scenario(W=W, delta=delta, **(extra or {}))
    sim = lambda s, p: simulate_metrics(s, p, seed=seed, realizations=realizations, rounds=rounds)  # noqa: E731
    paper = sim(base, Gelato(V=V_paper))
    target = float(np.mean(paper["power"]))
    ta_pol = Gelato(V=V_ta, ratio="known")
    p_bar = target
    ta = sim(base.replace(objective="time_average", P_bar=p_bar), ta_pol)
    p_bar = p_bar * target / float(np.mean(ta["power"]))
    ta = sim(base.replace(objective="time_average", P_bar=p_bar), ta_pol)
    from gelato_jax.renewal import time_average_optimum

    opt = time_average_optimum(base.replace(objective="time_average", P_bar=target), Gelato(), quantiles=2048)
    row = {
        "W": W, "delta": delta, "P_target": target, "P_bar_used": p_bar,
        "power_paper": float(np.mean(paper["power"])), "power_time_average": float(np.mean(ta["power"])),
        "power_diff": paired_difference(ta["power"], paper["power"]),
        "goodput_paper": float(np.mean(paper["goodput"])), "goodput_time_average": float(np.mean(ta["goodput"])),
        "goodput_diff": paired_difference(ta["goodput"], paper["goodput"]),
        "goodput_change_pct": ratio_change(ta["goodput"], paper["goodput"]),
        "throughput_paper": float(np.mean(paper["throughput"])), "throughput_time_average": float(np.mean(ta["throughput"])),
        "throughput_diff": paired_difference(ta["throughput"], paper["throughput"]),
        "T_star_time_average_proxy": opt.T_star,
    }
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--realizations", type=int, default=32)
    p.add_argument("--rounds", type=int, default=8000)
    p.add_argument("--V-paper", type=float, default=0.1, help="V of the paper's GELATO (Gelato's default)")
    p.add_argument("--V-ta", type=float, default=1.0, help="V of the time-average GELATO")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--d", type=float, default=None, help="device distance (m; default: the scenario's 300 m)")
    p.add_argument("--E-bar", type=float, default=None, help="the paper's per-round energy budget (J; default 0.06)")
    p.add_argument("--quick", action="store_true", help="one setting (W = 1 MHz, δ = 20 ms)")
    p.add_argument("--out", default=os.path.join(HERE, "results", "time_average_vs_paper.json"))
    p.add_argument("--figure", default=os.path.join(os.path.dirname(HERE), "figures", "time_average_vs_paper.png"))
    a = p.parse_args(argv)
    settings = [(1e6, 0.02)] if a.quick else [(W, d) for d in DELTAS for W in WS]
    rows = []
    t0 = time.time()
    for W, d in settings:
        t1 = time.time()
        extra = {k: v for k, v in (("d", a.d), ("E_bar", a.E_bar)) if v is not None}
        r = one_setting(W, d, V_paper=a.V_paper, V_ta=a.V_ta, realizations=a.realizations, rounds=a.rounds, seed=a.seed,
                        extra=extra)
        r["wall_s"] = time.time() - t1
        rows.append(r)
        g, c = r["goodput_diff"], r["goodput_change_pct"]
        print(f"W={W / 1e6:g} MHz δ={d * 1e3:g} ms  P={r['P_target']:.4f} W (time-avg {r['power_time_average']:.4f})  "
              f"goodput paper {r['goodput_paper']:.3f} time-avg {r['goodput_time_average']:.3f}  "
              f"Δ {g['mean']:+.3f} [{g['ci_low']:+.3f}, {g['ci_high']:+.3f}] tok/s  "
              f"({c['mean']:+.2f}% [{c['ci_low']:+.2f}, {c['ci_high']:+.2f}])  {r['wall_s']:.0f} s", flush=True)
    rec = {"command": "python bench/time_average_vs_paper.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "realizations": a.realizations, "rounds": a.rounds, "V_paper": a.V_paper, "V_time_average": a.V_ta,
           "seed": a.seed, "d": a.d, "E_bar": a.E_bar, "wall_s": time.time() - t0, "rows": rows,
           "note": "paired 95% Student-t CIs over realizations on common random numbers; power = mean over "
                   "realizations of ΣE/ΣD; goodput = ΣN/ΣD (tokens per second)"}
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as fh:
        json.dump(rec, fh, indent=2)
    try:
        _figure(rows, a.figure)
    except Exception as exc:  # a figure is a by-product; the JSON is the result
        print(f"figure not written: {exc}", file=sys.stderr)
    return 0


def _figure(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), squeeze=False)
    for j, d in enumerate(sorted({r["delta"] for r in rows})):
        ax = axes[0, j]
        rs = sorted([r for r in rows if r["delta"] == d], key=lambda r: r["W"])
        W = np.array([r["W"] / 1e6 for r in rs])
        for key, lab, mk in (("goodput_paper", "paper GELATO (per-round)", "o"),
                             ("goodput_time_average", "time-average GELATO", "s")):
            ax.plot(W, [r[key] for r in rs], mk + "-", label=lab)
        ax.plot(W, [r["T_star_time_average_proxy"] for r in rs], "k:", lw=1, label="T* (time-average, proxy)")
        ax.set_xscale("log")
        ax.set_xlabel("uplink bandwidth W (MHz)")
        ax.set_ylabel("tokens per second ΣN/ΣD")
        ax.set_title(f"δ = {d * 1e3:g} ms, equal measured power", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
