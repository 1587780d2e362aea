"""``gelato figures --from DIR``: draw any saved sweep or compare folder.

The folder is read with ``gelato_jax.sweep.load_sweep`` (``gelato sweep``, ``gelato sweep
--policies``, ``gelato compare --grid``) or ``gelato_jax.compare.load_comparison`` (``gelato
compare --out`` without a grid). The user chooses the x axis (``--x W``), the metrics (one panel
column each, ``--y goodput,energy``) and the grouping (one line per value, ``--by policy``);
every other axis with more than one value becomes a row of panels (its value in the panel
title). Points are means over realizations with 95 % Student-t intervals. The title names every
fixed field that differs from the defaults (grid axes of one value, and the scenario the run
started from), the legend every policy field that differs from the policy's defaults, and a
bandwidth axis which link it sweeps.
"""

from __future__ import annotations

import itertools
import math
import os
from typing import Any, Sequence

import numpy as np

from . import _labels, _plot

__all__ = ["load_any", "figure_from", "draw_from"]


def load_any(directory: str):
    """A saved sweep / policies sweep / compare folder as a ``SweepResult`` (compare folders get
    the single axis ``policy``)."""
    from gelato_jax.compare import load_comparison
    from gelato_jax.sweep import SweepResult, load_sweep

    directory = os.fspath(directory)
    if os.path.isfile(os.path.join(directory, "sweep.json")):
        return load_sweep(directory)
    if os.path.isfile(os.path.join(directory, "compare.json")):
        cmp, rec = load_comparison(directory)
        metrics = {k: np.stack([cmp.metrics[n][k] for n in cmp.names]) for k in cmp.metrics[cmp.names[0]]}
        config = {"kind": "policies", "reference": cmp.reference, "scenario": rec.get("scenario", {}),
                  "policies": {n: {"policy": rec.get("policies", {}).get(n, {}).get("class", n).lower(),
                                   "policy_fields": rec.get("policies", {}).get(n, {}).get("fields", {})}
                               for n in cmp.names},
                  "grid": {}, "grid_order": [], "seed": cmp.seed}
        return SweepResult(("policy",), {"policy": np.asarray(cmp.names)}, metrics, cmp.realizations, cmp.rounds, config)
    raise ValueError(f"--from {directory!r}: no sweep.json or compare.json there (not a saved sweep or compare folder)")


def _metrics(res) -> dict[str, np.ndarray]:
    """The result's metrics plus compare's derived ones (power, mismatch rate) for sweeps."""
    out = dict(res.metrics)
    if "unverified" in out:
        from gelato_jax.compare import metrics_from_sweep

        for k, v in metrics_from_sweep(res.metrics).items():
            out.setdefault(k, v)
    return out


def _ci(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over the last axis and the 95 % Student-t half-width."""
    from scipy import stats

    x = np.asarray(x, np.float64)
    n = x.shape[-1]
    m = x.mean(axis=-1)
    if n < 2:
        return m, np.zeros_like(m)
    return m, stats.t.ppf(0.975, n - 1) * x.std(axis=-1, ddof=1) / math.sqrt(n)


def _policy_label(res, label: str) -> str:
    pol = res.config.get("policies", {}).get(label)
    if pol is None:
        return label
    diffs = _labels.policy_differences(pol.get("policy", label), pol.get("policy_fields", {}), res.config.get("grid", {}))
    style = _plot.STYLE.get(label, {}).get("label", label)
    return f"{style} ({', '.join(diffs)})" if diffs else style


def plan(res, x: str | None, by: str | None) -> tuple[str, str | None, list[str]]:
    """``(x, by, facet_fields)``: defaults and checks (one-line ``ValueError`` on a bad choice)."""
    fields = list(res.fields)
    if not fields:
        raise ValueError("the saved result has no axis to draw")
    if by is None and "policy" in fields and x != "policy" and len(fields) > 1:
        by = "policy"
    if by is not None and by not in fields:
        raise ValueError(f"--by {by!r} is not an axis of the saved result; axes: {fields}")
    if x is None:
        cand = [f for f in fields if f != by and len(res.coords[f]) > 1]
        x = cand[0] if cand else next(f for f in fields if f != by) if len(fields) > 1 else fields[0]
    if x not in fields:
        raise ValueError(f"--x {x!r} is not an axis of the saved result; axes: {fields}")
    if by == x:
        raise ValueError(f"--x and --by are both {x!r}")
    facets = [f for f in fields if f not in (x, by) and len(res.coords[f]) > 1]
    return x, by, facets


def draw_from(res, out_dir: str, *, x: str | None = None, y: Sequence[str] = ("goodput", "energy"),
              by: str | None = None, stem: str = "fig_from", title: str = "") -> list[str]:
    """Draw ``res`` (a ``SweepResult``) to ``out_dir/stem.png`` and ``.pdf``; returns the paths."""
    fig = figure_from(res, x=x, y=y, by=by, title=title)
    paths = _plot.save(fig, out_dir, stem)
    _plot.pyplot().close(fig)
    return paths


def figure_from(res, *, x: str | None = None, y: Sequence[str] = ("goodput", "energy"),
                by: str | None = None, title: str = ""):
    """The matplotlib figure of ``draw_from`` (not saved)."""
    metrics = _metrics(res)
    bad = [m for m in y if m not in metrics]
    if bad or not y:
        raise ValueError(f"--y: unknown metric(s) {bad}; metrics of this result: {', '.join(metrics)}")
    x, by, facets = plan(res, x, by)
    fields = list(res.fields)
    scen = res.config.get("scenario", {})
    fixed = [_labels.fmt_value(f, res.coords[f][0]) for f in fields if f not in (x, by, *facets)
             and f != "policy"]
    fixed += _labels.scenario_differences(scen, exclude=fields)
    if "policy" in fields and "policy" not in (x, by, *facets):
        fixed.append(f"policy = {_policy_label(res, str(res.coords['policy'][0]))}")
    if "policy" not in fields and res.config.get("policy"):
        diffs = _labels.policy_differences(res.config["policy"], res.config.get("policy_fields", {}), fields)
        fixed.append(f"policy = {res.config['policy']}" + (f" ({', '.join(diffs)})" if diffs else ""))
    rows = list(itertools.product(*(range(len(res.coords[f])) for f in facets))) or [()]
    plt = _plot.pyplot()
    fig, axes = plt.subplots(len(rows), len(y), figsize=(4.2 * len(y), 3.3 * len(rows)), squeeze=False)
    xs = np.asarray(res.coords[x])
    categorical = xs.dtype.kind in "US"
    xlabel, xf = _labels.axis_label(x, scen) if not categorical else (x, 1.0)
    groups = list(range(len(res.coords[by]))) if by else [None]
    for r, row in enumerate(rows):
        for c, metric in enumerate(y):
            ax = axes[r][c]
            ylabel, yf = _labels.metric_label(metric)
            for g in groups:
                idx: list[Any] = []
                for f in fields:
                    if f == x:
                        idx.append(slice(None))
                    elif f == by:
                        idx.append(g)
                    elif f in facets:
                        idx.append(row[facets.index(f)])
                    else:
                        idx.append(0)
                m, h = _ci(metrics[metric][tuple(idx)])
                name = str(res.coords[by][g]) if by else None
                if by == "policy":
                    st = dict(_plot.STYLE.get(name, {}), label=_policy_label(res, name))
                elif by:
                    st = dict(label=_labels.fmt_value(by, res.coords[by][g]), marker="o")
                else:
                    st = dict(marker="o")
                if categorical:
                    pos = np.arange(len(xs)) + (0 if g is None else (g - (len(groups) - 1) / 2) * 0.8 / len(groups))
                    bar_kw = {k: v for k, v in st.items() if k in ("color", "label")}
                    if x == "policy" and by is None:
                        bar_kw["color"] = [_plot.STYLE.get(str(v), {}).get("color", "C9") for v in xs]
                    ax.bar(pos, m * yf, width=0.8 / len(groups), yerr=h * yf, capsize=2, **bar_kw)
                else:
                    ax.errorbar(xs * xf, m * yf, yerr=h * yf, capsize=2, ms=4, lw=1.2, **st)
            if metric == "energy" and "E_bar" in scen and x != "E_bar" and "E_bar" not in facets and by != "E_bar":
                e_bar = res.coords["E_bar"][0] if "E_bar" in fields else scen["E_bar"]
                ax.axhline(float(e_bar), color="k", ls="--", lw=0.8, label="budget Ē")
            if metric == "energy" and x == "E_bar":
                ax.plot(xs * xf, xs, "k--", lw=0.8, label="budget Ē")
            if categorical:
                ax.set_xticks(np.arange(len(xs)), [_policy_label(res, str(v)) if x == "policy" else str(v) for v in xs],
                              rotation=30, ha="right", fontsize=7)
            elif len(xs) > 2 and np.all(xs > 0) and xs.max() / xs.min() >= 20:
                ax.set_xscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            if facets:
                ax.set_title(", ".join(_labels.fmt_value(f, res.coords[f][i]) for f, i in zip(facets, row)), fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        axes[0][0].legend(fontsize=7)
    head = title or f"{', '.join(_labels.metric_label(m)[0].split(' (')[0] for m in y)} vs {xlabel.split(' (')[0]}"
    sub = f"{res.realizations} realizations × {res.rounds} rounds, means with 95% CIs"
    if fixed:
        sub += "; fixed: " + ", ".join(fixed)
    fig.suptitle(f"{head}\n{sub}", fontsize=8)
    fig.tight_layout()
    return fig
