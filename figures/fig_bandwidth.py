"""Figure: Throughput and energy vs uplink bandwidth (reads saved results only)."""

from __future__ import annotations

from ._sweep_fig import draw_sweep


def draw(results_dir: str, out_dir: str) -> list[str]:
    return draw_sweep(results_dir, out_dir, "bandwidth", logx=True, title="Throughput and energy vs bandwidth")
