"""Paper-style figures and the headline table (``gelato figures``, ``gelato headline``).

``figures.runner`` computes every result and saves it (``.npz`` + JSON sidecar, atomically);
each ``figures.fig_*`` module draws one figure from saved results only (matplotlib Agg, PNG + PDF);
``figures.headline`` writes ``docs/headline.md``.
"""

FIGURES = ("bandwidth", "delta", "energy_budget", "v_tradeoff", "ablation")
