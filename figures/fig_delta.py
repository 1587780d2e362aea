"""Figure: Throughput and energy vs fixed latency δ (reads saved results only)."""

from __future__ import annotations

from ._sweep_fig import draw_sweep


def draw(results_dir: str, out_dir: str) -> list[str]:
    return draw_sweep(results_dir, out_dir, "delta", logx=False, title="Throughput and energy vs fixed latency δ")
