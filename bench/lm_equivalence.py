"""LM mode, new code against another checkout: the same rollout's trajectories field by field.

    python bench/lm_equivalence.py POLICY R T OLD_ROOT      # POLICY: gelato | static | adaedl

Runs ``rollout_lm(calibrated_scenario(), policy, realizations=R, rounds=T, seed=3,
record_entropy=True)`` once with this checkout's ``gelato_jax`` and once with ``OLD_ROOT``'s (each
in a subprocess) and prints, per field, the number of differing entries and the largest
difference (issue 17, BENCHMARKS.md "LM mode speed (session 5)").
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

CODE = r'''
import sys, numpy as np
sys.path.insert(0, sys.argv[5])
from gelato_jax.lm.simulate import rollout_lm, calibrated_scenario
from gelato_jax.policies import Gelato, StaticSD, AdaEDL
pol = {"gelato": Gelato(), "static": StaticSD(gamma=5), "adaedl": AdaEDL()}[sys.argv[1]]
tr, ent = rollout_lm(calibrated_scenario(), pol, realizations=int(sys.argv[2]), rounds=int(sys.argv[3]), seed=3,
                     record_entropy=True)
np.savez(sys.argv[4], ent=ent, **{f: np.asarray(getattr(tr, f)) for f in tr._fields})
'''


def main(argv):
    pol, R, T, old_root = argv
    new_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as d:
        out = {}
        for tag, root in (("old", old_root), ("new", new_root)):
            out[tag] = os.path.join(d, f"{tag}.npz")
            subprocess.run([sys.executable, "-c", CODE, pol, R, T, out[tag], root], cwd=root, check=True,
                           env=dict(os.environ, PYTHONPATH=root))
        a, b = np.load(out["old"]), np.load(out["new"])
        for f in a.files:
            x, y = a[f], b[f]
            print(f, x.shape, "n_neq", int(np.sum(x != y)), "maxdiff", float(np.max(np.abs(x.astype(float) - y))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
