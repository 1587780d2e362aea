#!/usr/bin/env bash
# Run the core benchmark on an accelerator (GPU/TPU) and record absolute figures.
# Usage: bench/gpu.sh [extra `gelato bench` args]   (results in bench/results/gpu-<date>/bench.json)
# Needs a jax build for the accelerator (e.g. pip install -U "jax[cuda12]").
# The numpy / pure-Python baselines still run on the host CPU; the JAX runs use the default
# backend (the accelerator) with 1 device; realizations are scaled up to fill the device.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
"$PY" -c "import jax; d=jax.devices(); print('backend', jax.default_backend(), d); assert jax.default_backend() != 'cpu', 'no accelerator visible to jax'"
out="bench/results/gpu-$(date -u +%Y%m%dT%H%M%SZ)"
"$PY" -m gelato_jax bench --realizations "${R:-262144}" --rounds "${T:-10000}" --devices 1 \
  --numpy-rounds 20 --python-rounds 200 --quiet --out "$out" "$@"
echo "saved $out/bench.json"
