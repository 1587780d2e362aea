"""Shared plotting helpers (matplotlib Agg; every figure is saved as PNG and PDF)."""

from __future__ import annotations

import os

import numpy as np

STYLE = {
    "gelato": dict(color="C3", marker="o", label="GELATO"),
    "static": dict(color="C0", marker="s", label="Static SD"),
    "dssd": dict(color="C1", marker="^", label="DSSD"),
    "adaedl": dict(color="C2", marker="v", label="AdaEDL"),
    "uhlm": dict(color="C4", marker="D", label="U-HLM (lossy)"),
    "greedy": dict(color="C5", marker="x", label="greedy (Z≡0)"),
    "lyapunov-only": dict(color="C6", marker="<", label="Lyapunov-only"),
    "exit-only": dict(color="C7", marker=">", label="exit-only"),
    "oracle": dict(color="k", marker="*", label="oracle (T*)"),
}


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, out_dir: str, stem: str, dpi: int = 150) -> list[str]:
    """Write ``stem.png`` and ``stem.pdf`` atomically; return their paths."""
    import io

    from gelato_jax.io import atomic_write_bytes

    paths = []
    for ext in ("png", "pdf"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=dpi, bbox_inches="tight")
        path = os.path.join(out_dir, f"{stem}.{ext}")
        atomic_write_bytes(path, buf.getvalue())
        paths.append(path)
    return paths


def series(record: dict, name: str, metric: str):
    """Means and CI bounds of ``metric`` for policy ``name`` over a sweep's values."""
    s = [v[name][metric] for v in record["summary"]]
    m = np.array([x["mean"] for x in s])
    lo = np.array([x["ci_low"] for x in s])
    hi = np.array([x["ci_high"] for x in s])
    return m, lo, hi


def errorbar(ax, x, m, lo, hi, name, **kw):
    st = dict(STYLE.get(name, dict(label=name)))
    st.update(kw)
    ax.errorbar(x, m, yerr=[m - lo, hi - m], capsize=2, ms=4, lw=1.2, **st)
