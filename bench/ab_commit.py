"""A/B speed of the simulator between an older commit and the working tree, in one run.

    python bench/ab_commit.py COMMIT [--realizations 4096] [--rounds 2000] [--repeats 2]

Checks COMMIT out into a temporary git worktree and alternates ``old, new, old, new, ...`` runs of
``gelato_jax.simulate`` (Gelato at the defaults, float32; one warm-up compile per run, best of 3
timed calls) in fresh interpreters, so both versions see the same machine load. Prints
realization-rounds per CPU-second of each run. Machines here are noisy: compare the ratio.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = r"""
import sys, time
from gelato_jax import Scenario, simulate
from gelato_jax.policies import Gelato
R, T = int(sys.argv[1]), int(sys.argv[2])
s, p = Scenario(), Gelato()
simulate(s, p, seed=0, realizations=R, rounds=50, dtype="float32")
best = float("inf")
for _ in range(3):
    t0 = time.process_time()
    simulate(s, p, seed=1, realizations=R, rounds=T, dtype="float32")
    best = min(best, time.process_time() - t0)
print(R * T / best)
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("commit")
    ap.add_argument("--realizations", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args(argv)
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(repo), "worktree", "add", "-q", "--detach", str(old), a.commit], check=True)
        try:
            for _ in range(a.repeats):
                for name, path in (("old", old), ("new", repo)):
                    env = dict(os.environ, PYTHONPATH=str(path))
                    out = subprocess.run([sys.executable, "-c", _CHILD, str(a.realizations), str(a.rounds)], env=env,
                                         cwd=tmp, capture_output=True, text=True, check=True)
                    print(f"{name}: {float(out.stdout.strip().splitlines()[-1]):.3g} realization-rounds per CPU-second",
                          flush=True)
        finally:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(old)], check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
