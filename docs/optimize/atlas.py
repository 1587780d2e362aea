"""README figure of ``gelato optimize``: optimal thresholds and gain across bandwidth and δ.

    .venv/bin/python docs/optimize/atlas.py [OUT_DIR]     (default docs/optimize)

One compiled program over the grid (``gelato_jax.optimize.atlas``); writes ``atlas.json`` and
``atlas.png``.
"""

import json
import os
import sys

from gelato_jax.optimize import atlas, atlas_figure

out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
rec = atlas(W=(0.5e6, 1e6, 2e6, 5e6), delta=(0.02, 0.14))
with open(os.path.join(out, "atlas.json"), "w") as fh:
    json.dump(rec, fh, indent=2)
print(atlas_figure(rec, os.path.join(out, "atlas.png")), f"{rec['seconds']:.0f} s")
for i, w in enumerate(rec["W"]):
    for j, d in enumerate(rec["delta"]):
        print(f"W={w:g} delta={d:g}: H_th={rec['H_th'][i][j]:.3f} Theta_th={rec['Theta_th'][i][j]:.3f} "
              f"T*={rec['T_star'][i][j]:.3f} default={rec['T_star_default'][i][j]:.3f} gain={rec['gain_pct'][i][j]:+.2f}% "
              f"reps={[round(x, 4) for x in rec['gain_replicates'][i][j]]}")
