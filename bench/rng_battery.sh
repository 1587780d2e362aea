#!/usr/bin/env bash
# Statistical battery (dieharder) on the simulator's default generator "mix32" (gelato_jax/rng.py).
#
#   bash bench/rng_battery.sh                 # the documented subset on streams a, b, c + threefry control
#   STREAMS="a b" bash bench/rng_battery.sh   # some streams only
#   TESTS="0 2 102" bash bench/rng_battery.sh # some dieharder tests only (numbers of `dieharder -l`)
#   ALL=1 bash bench/rng_battery.sh           # dieharder -a instead of the subset (hours on 2 cores)
#   SEED=7 bash bench/rng_battery.sh          # another simulator seed (other realization keys)
#
# Streams (bench/rng_stream.py writes raw little-endian uint32 words; `dieharder -g 200` reads them
# from stdin): a = one realization's 22 words per round in round order; b = the same (round, slot)
# across 4096 consecutive realizations; c = the 23 bits of each word that float32 uniforms use,
# packed back to back; threefry = the control, Scenario(rng="threefry")'s words.
#
# Every test is one dieharder run on a fresh stream from round 0, with dieharder's default sizes
# (tsamples; psamples = 100 p-values combined by a KS test) unless the test's line below says
# otherwise. Per-test output goes to $OUT/<stream>.txt; a PASSED/WEAK/FAILED count per stream is
# printed at the end and written to $OUT/summary.txt. dieharder's thresholds: WEAK if the final
# p < 0.005 or > 0.995 (1% of results by chance), FAILED if p < 1e-6 or > 1 - 1e-6.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
OUT=${OUT:-/tmp/rng_battery}
SEED=${SEED:-0}
STREAMS=${STREAMS:-"a b c threefry"}
# The subset: every diehard test rated "Good" by `dieharder -l` (not 5-7 "Suspect", not 14 "Do
# Not Use", and not 17 marsaglia_tsang_gcd: 10^7 words per p-value, 9 minutes alone on a loaded
# 2-core machine; ALL=1 runs it), the three STS tests and the ten RGB/DAB tests. One run of
# sts_serial (102) reports 30 results (tuple sizes 1..16); rgb_bitdist (200) runs at n = 8 bits,
# rgb_minimum_distance (201) in 2 dimensions (8 minutes), rgb_lagged_sum (203) at lag 16, the
# other tests at dieharder's defaults.
TESTS=${TESTS:-"0 1 2 3 4 8 9 10 11 12 13 15 16 100 101 102 200 201 202 203 204 205 206 207 208 209"}

if ! command -v dieharder >/dev/null 2>&1; then
    echo "rng_battery: installing dieharder" >&2
    apt-get install -y dieharder || { apt-get update && apt-get install -y dieharder; }
fi

extra_args() { # per-test options beyond dieharder's defaults
    case "$1" in
        200) echo "-n 8" ;;
        201) echo "-n 2" ;; # as under -a; without -n it runs at ntuple 0, which every generator fails
        203) echo "-n 16" ;;
        *) echo "" ;;
    esac
}

run_one() { # stream, dieharder selection args...
    local s=$1
    shift
    # shellcheck disable=SC2068
    nice -n 10 "$PY" bench/rng_stream.py "$s" --seed "$SEED" \
        | nice -n 10 dieharder -g 200 $@ \
        | grep -E '\|' | grep -v -E 'test_name|rng_name|stdin_input_raw' || true
}

mkdir -p "$OUT"
: > "$OUT/summary.txt"
for s in $STREAMS; do
    f="$OUT/$s.txt"
    : > "$f"
    if [ "${ALL:-0}" = 1 ]; then
        run_one "$s" -a >> "$f"
    else
        for d in $TESTS; do
            t0=$(date +%s)
            # shellcheck disable=SC2046
            run_one "$s" -d "$d" $(extra_args "$d") >> "$f"
            echo "stream $s test $d: $(( $(date +%s) - t0 )) s" >&2
        done
    fi
    p=$(grep -c PASSED "$f" || true); w=$(grep -c WEAK "$f" || true); x=$(grep -c FAILED "$f" || true)
    echo "stream $s (seed $SEED): $(wc -l < "$f") results: PASSED $p, WEAK $w, FAILED $x" | tee -a "$OUT/summary.txt"
    grep -E 'WEAK|FAILED' "$f" | sed "s/^/  stream $s: /" | tee -a "$OUT/summary.txt" || true
done
