"""One sweep figure: goodput, energy per round (with the budget) and energy per token vs a parameter."""

from __future__ import annotations

import numpy as np

from . import _labels, _plot
from .runner import load_result


def draw_sweep(results_dir: str, out_dir: str, name: str, *, logx: bool = False, title: str = "") -> list[str]:
    rec = load_result(results_dir, name)
    plt = _plot.pyplot()
    x = np.asarray(rec["values"], dtype=float) * rec["scale"]
    xlabel = _labels.axis_label(rec["param"], rec["scenario"])[0] if rec["param"] == "W" else rec["label"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    panels = [("goodput", "goodput ΣN/ΣD (tok/s)", 1.0), ("energy", "device energy per round (J)", 1.0),
              ("energy_per_token", "energy per token (mJ)", 1e3)]
    for ax, (metric, ylabel, f) in zip(axes, panels):
        for n in rec["names"]:
            m, lo, hi = _plot.series(rec, n, metric)
            _plot.errorbar(ax, x, m * f, lo * f, hi * f, n)
        if metric == "energy":
            ebar = np.array([rec["scenario"]["E_bar"]] * len(x)) if rec["param"] != "E_bar" else x
            ax.plot(x, ebar, "k--", lw=0.8, label="budget Ē")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if logx:
            ax.set_xscale("log")
        if metric != "goodput":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fixed = _labels.operating_point(rec["scenario"], exclude=[rec["param"]])
    fig.suptitle(f"{title} — {rec['realizations']} realizations × {rec['rounds']} rounds, 95% CIs, GELATO V={rec['gelato_V']}\n"
                 f"fixed: {fixed}", fontsize=9)
    fig.tight_layout()
    paths = _plot.save(fig, out_dir, f"fig_{name}")
    plt.close(fig)
    return paths
