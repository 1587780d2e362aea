r"""Measure the numbers README.md quotes and write them to ``docs/readme_numbers.json``.

    .venv/bin/python bench/readme_numbers.py          # ≈ 2–4 min on 2 shared CPU cores

Each entry has the measured ``value``, how it was measured (``what``) and the exact phrase
README.md must contain (``readme``, with the value formatted in); ``tests/test_readme.py``
checks that every phrase is in README.md, so a README number cannot drift from a measurement
without the test failing. Rerun this script after a change to the model, then update README.md
where the test points.

Measured (float64):
* ``T*``, ``λ*`` of the defaults for the mean proxy without exit, by ``optimum()``'s default
  method (exact integration over the Exp(1) fading law); ``λ*`` is ill-conditioned
  (docs/model.md §8.8), so the quantised LP (1,024 quantiles) gives another value, also recorded.
* GELATO at ``V = 0.1`` (the default of ``Gelato`` and of ``gelato compare``), 256 realizations
  × 2000 rounds, seed 0: mean queue, final queue ``Z_T``, energy per round against ``Ē``.
* The same at ``W = 5 MHz, Ē = 0.03 J`` (a regime where ``V = 0.1`` does not meet the budget
  within 2000 rounds): the energy overspend ``100 (ā/Ē − 1)`` %.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("JAX_ENABLE_X64", "1")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

R, T, SEED = 256, 2000, 0


def main() -> int:
    import numpy as np

    from gelato_jax import Scenario, optimum, simulate
    from gelato_jax import io as gio
    from gelato_jax.policies import Gelato

    t0 = time.time()
    entries = {}

    def put(key, value, what, readme):
        entries[key] = {"value": float(value), "what": what, "readme": readme.format(v=value)}

    s = Scenario()
    opt = optimum(s, Gelato(exit="none"))
    put("T_star", opt.T_star, "optimum(Scenario(), Gelato(exit='none')).T_star (exact integration)", "`T* = {v:.3f} tok/s`")
    put("lambda_star", opt.lambda_star, "optimum(Scenario(), Gelato(exit='none')).lambda_star (exact integration)",
        "`λ* = {v:.2f}`")
    lp = optimum(s, Gelato(exit="none"), method="quantised", quantiles=1024)
    put("lambda_star_lp1024", lp.lambda_star, "optimum(..., method='quantised', quantiles=1024).lambda_star",
        "{v:.2f} with 1,024 fading quantiles")

    g = simulate(s, Gelato(V=0.1), seed=SEED, realizations=R, rounds=T)
    put("queue_mean_v01", np.mean(g.queue_mean), f"simulate(Scenario(), Gelato(V=0.1), seed={SEED}, realizations={R}, rounds={T}): mean queue",
        "mean queue {v:.2f} J")
    put("queue_final_v01", np.mean(g.queue_final), "same run: mean final queue Z_T", "final queue `Z_T` {v:.2f} J")
    put("energy_v01", np.mean(g.energy), "same run: mean energy per round (Ē = 0.06 J)", "{v:.4f} J/round")
    put("lambda_V", 0.1 * opt.lambda_star, "V·λ* at V = 0.1", "`V·λ*` = {v:.2f} J")

    s2 = Scenario(W=5e6, E_bar=0.03)
    g2 = simulate(s2, Gelato(V=0.1), seed=SEED, realizations=R, rounds=T)
    over = 100 * (np.mean(g2.energy) / 0.03 - 1)
    put("overspend_w5_e003", over, f"simulate(Scenario(W=5e6, E_bar=0.03), Gelato(V=0.1), seed={SEED}, {R} x {T}): "
        "100 (mean energy / Ē − 1) %", "{v:+.1f} % over the budget")
    put("queue_final_w5_e003", np.mean(g2.queue_final), "same run: mean final queue Z_T", "`Z_T` = {v:.2f} J")

    out = {"command": "python bench/readme_numbers.py", "seed": SEED, "realizations": R, "rounds": T,
           "wall_time_s": time.time() - t0, "environment": gio.environment_info(), "numbers": entries}
    path = os.path.join(ROOT, "docs", "readme_numbers.json")
    gio.save_json(path, out)
    for k, e in entries.items():
        print(f"{k:<24} {e['value']:.6g}   README: {e['readme']}")
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
