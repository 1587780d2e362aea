"""LM-mode speed (issue 17): ``simulate_lm`` at R realizations × T rounds, compile reported separately.

    python bench/lm_speed.py [--realizations 1024] [--rounds 10] [--policy gelato]
    python bench/lm_speed.py --compare /tmp/lm_old --repeat 2   # A/B against another checkout

Each measurement runs in a fresh subprocess with the checkout's ``gelato_jax`` first on
``sys.path``: ``simulate_lm`` is called twice with the same arguments; the first call includes
compilation, the second is warm.  Reported: wall and CPU seconds (``resource.getrusage`` of the
process: user + sys of all its threads) of both calls, the compile estimate (first − warm), and
realization-rounds per wall second and per CPU second of the warm call.  On a shared machine the
per-CPU-second rate is the figure to compare; ``--compare`` alternates the two checkouts so that
both see the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
from gelato_jax.lm.simulate import calibrated_scenario, simulate_lm
from gelato_jax import policies
R, T, name = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
pol = {"gelato": policies.Gelato, "static": lambda: policies.StaticSD(gamma=4), "adaedl": policies.AdaEDL}[name]()
scen = calibrated_scenario()

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

out = {}
for label in ("first", "warm"):
    c0, w0 = cpu(), time.perf_counter()
    res = simulate_lm(scen, pol, realizations=R, rounds=T, seed=0)
    out[label] = {"wall_s": time.perf_counter() - w0, "cpu_s": cpu() - c0}
out["mean_tokens_per_round"] = float(np.mean(res.tokens))
out["mean_budget"] = float(np.mean(res.budget))
print("RESULT " + json.dumps(out))
"""


def measure(root: str, R: int, T: int, policy: str) -> dict:
    env = dict(os.environ, PYTHONPATH=root)
    p = subprocess.run([sys.executable, "-c", _CHILD, root, str(R), str(T), policy], capture_output=True, text=True,
                       env=env, cwd=root)
    line = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")]
    if p.returncode or not line:
        raise RuntimeError(f"{root}: rc={p.returncode}\n{p.stderr[-3000:]}")
    r = json.loads(line[0][7:])
    w = r["warm"]
    r["compile_wall_s"] = r["first"]["wall_s"] - w["wall_s"]
    r["compile_cpu_s"] = r["first"]["cpu_s"] - w["cpu_s"]
    r["rr_per_wall_s"] = R * T / w["wall_s"]
    r["rr_per_cpu_s"] = R * T / w["cpu_s"]
    return r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bench/lm_speed.py")
    ap.add_argument("--realizations", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--policy", default="gelato", choices=["gelato", "static", "adaedl"])
    ap.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--compare", default=None, help="another checkout (e.g. a git worktree of the old code)")
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args(argv)
    roots = [("new", a.root)] + ([("old", a.compare)] if a.compare else [])
    rows = []
    for rep in range(a.repeat):
        for tag, root in (roots if rep % 2 == 0 else roots[::-1]):
            r = measure(root, a.realizations, a.rounds, a.policy)
            rows.append({"code": tag, "root": root, **r})
            print(json.dumps(rows[-1]), flush=True)
    print("| code | first call wall / CPU (s) | warm wall / CPU (s) | compile CPU (s) | warm realization-rounds/s (wall) | per CPU-s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        f, w = r["first"], r["warm"]
        print(f"| {r['code']} | {f['wall_s']:.1f} / {f['cpu_s']:.1f} | {w['wall_s']:.2f} / {w['cpu_s']:.2f} | "
              f"{r['compile_cpu_s']:.1f} | {r['rr_per_wall_s']:.0f} | {r['rr_per_cpu_s']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
