"""Benchmark: JAX simulate vs the numpy reference vs a pure-Python loop (same model, RNG included).

Usage (from the repository root):
    python bench/bench_core.py                      # R=4096, T=10,000; float32 and float64; 1 and 2 CPU devices
    python bench/bench_core.py --rounds 2000 --json --out bench/results
Same as ``gelato bench``; see gelato_jax/bench.py and BENCHMARKS.md.
"""

import sys

from gelato_jax.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
