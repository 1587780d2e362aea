"""Figure: the V trade-off — throughput → T* as V grows, queue and energy overdraft grow (saved results only)."""

from __future__ import annotations

import numpy as np

from . import _labels, _plot
from .runner import load_result


def draw(results_dir: str, out_dir: str) -> list[str]:
    rec = load_result(results_dir, "v_tradeoff")
    plt = _plot.pyplot()
    Vs = np.asarray(rec["V"], dtype=float)
    summ = rec["summary"]
    opt = rec["optimum"]

    def col(prefix, metric):
        rows = [summ[f"{prefix} V={V:g}"][metric] for V in Vs]
        return tuple(np.array([r[k] for r in rows]) for k in ("mean", "ci_low", "ci_high"))

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    for prefix, key in (("gelato", "gelato"), ("lyapunov-only", "lyapunov-only")):
        for ax, metric in zip(axes, ("throughput", "energy", "queue_mean")):
            m, lo, hi = col(prefix, metric)
            _plot.errorbar(ax, Vs, m, lo, hi, key)
    o = summ["oracle"]
    axes[0].axhline(opt["T_star"], color="k", lw=0.9, label=f"T* (LP) = {opt['T_star']:.2f}")
    axes[0].axhspan(opt["T_lower"], opt["T_upper"], color="k", alpha=0.08)
    axes[0].errorbar([Vs.max() * 1.6], [o["throughput"]["mean"]],
                     yerr=[[o["throughput"]["mean"] - o["throughput"]["ci_low"]], [o["throughput"]["ci_high"] - o["throughput"]["mean"]]],
                     fmt="*", color="k", ms=9, label="oracle, simulated")
    axes[1].axhline(rec["scenario"]["E_bar"], color="k", ls="--", lw=0.8, label="budget Ē")
    axes[1].plot([Vs.max() * 1.6], [o["energy"]["mean"]], "k*", ms=9)
    for ax, yl in zip(axes, ("throughput E[N/D] (tok/s)", "energy per round (J)", "mean queue Z (J)")):
        ax.set_xscale("log")
        ax.set_xlabel("V")
        ax.set_ylabel(yl)
        ax.grid(alpha=0.3)
    axes[2].set_yscale("log")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    fig.suptitle(
        f"V trade-off at {_labels.operating_point(rec['scenario'])} — {rec['realizations']} × {rec['rounds']} rounds; T* for the mean proxy without exit "
        "(GELATO's exit changes the realised costs); large V overdraws energy within a finite horizon", fontsize=8)
    fig.tight_layout()
    paths = _plot.save(fig, out_dir, "fig_v_tradeoff")
    plt.close(fig)
    return paths
