"""Raw uint32 words of the simulator's generators on stdout, for statistical batteries.

    python bench/rng_stream.py STREAM [--seed 0] [--slots 22] [--realizations 4096] [--limit-words N]
    python bench/rng_stream.py a | dieharder -g 200 -d 0      # dieharder reads raw words on stdin

Streams (words written little-endian, as ``dieharder -g 200`` reads them):

* ``a``: one realization's ``mix32`` words in round order — round ``t = 0, 1, 2, …``, slots
  ``j = 0 … slots−1`` of each round (``rng.words``; the simulator's round uses
  ``2 γ_max + 2 = 22`` words in float32, 44 in float64).
* ``b``: the same counters across realizations: for each round ``t`` and slot ``j``, the words of
  realizations ``r = 0 … R−1`` in a row (catches correlation between realization keys).
* ``c``: the 23 bits the float32 uniforms use (``w >> 9``, ``rng._to_unit32``) of stream ``a``,
  packed back to back into a bit stream (32 values → 23 words), so every bit dieharder sees is a
  bit the simulator uses.
* ``threefry``: the control: one realization's words of ``Scenario(rng="threefry")``, i.e.
  ``jax.random.bits(fold_in(k_r, t), (slots,))`` in round order (the bits behind
  ``open_unit``).

Realization keys are the simulator's own (``model.init_realization`` for seed ``--seed``).
The writer stops at the end of the stream's counter space (``2³²`` rounds) rather than wrap, and at
``--limit-words`` if given; a closed pipe (dieharder done) ends it quietly. It runs one XLA thread.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from gelato_jax import Scenario, rng  # noqa: E402

try:
    from gelato_jax.model import init_realization  # noqa: E402
except ImportError:  # releases before gelato_jax.model
    from gelato_jax.model import init_realization  # noqa: E402

_U = jnp.uint32
STREAMS = ("a", "b", "c", "threefry")


def realization_keys(seed: int, realizations: int, kind: str = "mix32"):
    """Stream keys of realizations ``0 … R−1`` exactly as ``simulate`` derives them."""
    scen = Scenario(rng=kind)
    root = jax.random.key(seed)
    return jax.jit(jax.vmap(lambda r: init_realization(scen, root, r, jnp.float32)[0]))(
        jnp.arange(realizations, dtype=jnp.uint32)
    )


def _pack23(w):
    """Top 23 bits of each word, concatenated MSB first; ``w`` has a multiple of 32 entries
    (32 values of 23 bits fill exactly 23 words)."""
    v = (w >> _U(9)).reshape(-1, 32)
    out = [jnp.zeros(v.shape[:1], _U) for _ in range(23)]
    for i in range(32):
        word, off = divmod(23 * i, 32)
        if off + 23 <= 32:
            out[word] = out[word] | (v[:, i] << _U(32 - off - 23))
        else:
            spill = off + 23 - 32
            out[word] = out[word] | (v[:, i] >> _U(spill))
            out[word + 1] = out[word + 1] | (v[:, i] << _U(32 - spill))
    return jnp.stack(out, axis=1).reshape(-1)


def block_fn(stream: str, key, slots: int, rounds_per_block: int):
    """A jitted ``t0 ↦ words`` (uint32, flat) of rounds ``t0 … t0 + rounds_per_block − 1``."""
    if stream in ("a", "c"):

        def f(t0):
            t = t0 + jnp.arange(rounds_per_block, dtype=_U)
            w = jax.vmap(lambda tt: rng.words(key, tt, slots))(t).reshape(-1)
            return _pack23(w) if stream == "c" else w

    elif stream == "b":
        keys = key  # (R, 2)

        def f(t0):
            t = t0 + jnp.arange(rounds_per_block, dtype=_U)
            # (B, R, slots) -> (B, slots, R): realizations adjacent at equal (t, j)
            w = jax.vmap(lambda tt: jax.vmap(lambda k: rng.words(k, tt, slots))(keys))(t)
            return jnp.transpose(w, (0, 2, 1)).reshape(-1)

    elif stream == "threefry":

        def f(t0):
            t = t0 + jnp.arange(rounds_per_block, dtype=_U)
            return jax.vmap(lambda tt: jax.random.bits(jax.random.fold_in(key, tt), (slots,), _U))(t).reshape(-1)

    else:
        raise ValueError(f"stream must be one of {STREAMS}, got {stream!r}")
    return jax.jit(f)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("stream", choices=STREAMS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--slots", type=int, default=22, help="words per round (simulator: 2*gamma_max+2)")
    p.add_argument("--realizations", type=int, default=4096, help="stream b: realizations interleaved")
    p.add_argument("--realization", type=int, default=0, help="streams a, c, threefry: which realization")
    p.add_argument("--block-words", type=int, default=1 << 22, help="approximate words per write")
    p.add_argument("--limit-words", type=int, default=0, help="stop after this many words (0: no limit)")
    a = p.parse_args(argv)

    if a.stream == "b":
        key = realization_keys(a.seed, a.realizations)
        per_round = a.slots * a.realizations
    else:
        key = realization_keys(a.seed, a.realization + 1, "threefry" if a.stream == "threefry" else "mix32")[-1]
        per_round = a.slots
    B = max(1, a.block_words // per_round)
    if a.stream == "c":
        B = max(32, B - B % 32)  # whole groups of 32 values for the 23-bit packing (slots*B % 32 == 0)
    f = block_fn(a.stream, key, a.slots, B)
    out = sys.stdout.buffer
    written, t0 = 0, 0
    try:
        while t0 + B <= 2**32:
            w = np.asarray(f(jnp.uint32(t0))).astype("<u4", copy=False)
            if a.limit_words and written + w.size > a.limit_words:
                w = w[: a.limit_words - written]
            out.write(w.tobytes())
            written += w.size
            t0 += B
            if a.limit_words and written >= a.limit_words:
                break
        out.flush()
    except BrokenPipeError:
        try:
            sys.stdout = None  # dieharder closed the pipe: nothing left to flush
        finally:
            os._exit(0)
    if not (a.limit_words and written >= a.limit_words):
        print(f"rng_stream: {a.stream}: counter space exhausted after {written} words", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
