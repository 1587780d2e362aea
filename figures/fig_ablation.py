"""Figure: ablation bar chart — GELATO vs its parts and the oracle (reads saved results only)."""

from __future__ import annotations

import numpy as np

from . import _labels, _plot
from .runner import load_result


def draw(results_dir: str, out_dir: str) -> list[str]:
    rec = load_result(results_dir, "ablation")
    plt = _plot.pyplot()
    names = rec["names"]
    summ = rec["summary"][0]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, (metric, ylabel) in zip(axes, [("throughput", "throughput E[N/D] (tok/s)"), ("goodput", "goodput ΣN/ΣD (tok/s)"),
                                           ("energy", "energy per round (J)")]):
        m = np.array([summ[n][metric]["mean"] for n in names])
        lo = np.array([summ[n][metric]["ci_low"] for n in names])
        hi = np.array([summ[n][metric]["ci_high"] for n in names])
        colors = [_plot.STYLE.get(n, {}).get("color", "C9") for n in names]
        ax.bar(range(len(names)), m, yerr=[m - lo, hi - m], color=colors, capsize=3)
        ax.set_xticks(range(len(names)), [_plot.STYLE.get(n, {}).get("label", n) for n in names], rotation=35, ha="right", fontsize=7)
        ax.set_ylabel(ylabel)
        if metric == "energy":
            ax.axhline(rec["scenario"]["E_bar"], color="k", ls="--", lw=0.8, label="budget Ē")
            ax.set_yscale("log")
            ax.legend(fontsize=7)
        else:
            finite = m[np.isfinite(m)]
            ax.set_ylim(0, 1.15 * max(finite.max(), 1e-9))
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"Ablation at {_labels.operating_point(rec['scenario'])} — {rec['realizations']} × {rec['rounds']}, 95% CIs", fontsize=9)
    fig.tight_layout()
    paths = _plot.save(fig, out_dir, "fig_ablation")
    plt.close(fig)
    return paths
