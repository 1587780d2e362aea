r"""Random-number generators of the simulator: per-realization streams, one call per round.

Every realization ``r`` of a run with seed ``s`` owns a stream that depends on ``(s, r)`` only,
and round ``t`` of it reads the words at counter ``t`` of that stream, so results do not depend on
batch size, chunking, device or process count, nor on the number of rounds run. Two generators
(``Scenario.rng``, a static field, so ``--set rng=threefry`` works on every command):

* ``"mix32"`` (default): a counter-based keyed hash. The realization key ``(k0, k1)`` is two
  32-bit words drawn by JAX's threefry from ``fold_in(key(seed), r)`` (done once per realization,
  outside the round loop). Word ``j`` of round ``t`` is

      x_t = mix(t ⊕ k0),    w_{t,j} = mix((x_t + j·φ) ⊕ k1),    φ = 0x9E3779B9,

  where ``mix`` is the 32-bit avalanche permutation ``lowbias32`` (two xor-shift-multiply rounds;
  C. Wellons' hash prospector, bias 0.17). Every operation is a 32-bit integer ``xor``, shift,
  add or multiply, so XLA vectorises it on any backend and it needs no 64-bit integers. For
  fixed keys ``t ↦ x_t`` is a bijection of the 32-bit words (round streams never repeat within
  2³² rounds). Its output is validated as a stream by the dieharder battery
  (``bench/rng_battery.sh``, results in ``docs/rng.md``) and every draw's law by
  ``tests/test_rng.py``; it is a statistical generator, not a cryptographic one. Known structural
  limits (``docs/rng.md``): two realizations whose ``k0`` coincide (≈ R²/2³³ pairs) have streams
  related by a fixed bijection, and two rounds whose ``x_t`` differ by a multiple ``d·φ`` (≈
  43·T²/2³³ pairs per realization) share a block of words shifted by ``d`` slots.
* ``"threefry"``: JAX's threefry-2x32 (20 rounds, Random123): ``fold_in(k_r, t)`` and one
  ``jax.random.uniform`` call per round — the generator of earlier releases, bit for bit.

Uniforms are the midpoints ``(j + ½)·2^{-b}`` of a ``b``-bit grid (``b = 23`` in float32, 52 in
float64, as ``_gamma_table.open_unit``), so they are never 0 or 1. ``mix32`` builds a float64
uniform from two words (26 + 26 bits).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["RNGS", "DEFAULT_RNG", "mix32", "words", "round_draws", "stream_key"]

RNGS = ("mix32", "threefry")
DEFAULT_RNG = "mix32"

_U = jnp.uint32
_PHI = 0x9E3779B9


def mix32(x):
    """``lowbias32``: ``x ^= x >> 16; x *= 0x7feb352d; x ^= x >> 15; x *= 0x846ca68b; x ^= x >> 16``
    (a bijection of uint32 with full avalanche)."""
    x = x ^ (x >> _U(16))
    x = x * _U(0x7FEB352D)
    x = x ^ (x >> _U(15))
    x = x * _U(0x846CA68B)
    return x ^ (x >> _U(16))


def stream_key(rng: str, key):
    """The per-realization stream key from a JAX key (``fold_in(key(seed), r)`` or a split of it):
    the key itself for ``threefry``, two uint32 words drawn from it for ``mix32``."""
    if rng == "threefry":
        return key
    return jax.random.bits(key, (2,), _U)


def words(key2, t, n: int):
    """``n`` uint32 words of round ``t`` (any integer dtype) of the ``mix32`` stream ``key2``."""
    return _words_at(key2, mix32(jnp.asarray(t).astype(_U) ^ key2[0]), jnp.arange(n, dtype=_U))


def _to_unit32(w):
    return (w >> _U(9)).astype(jnp.float32) * jnp.float32(2.0**-23) + jnp.float32(2.0**-24)


def round_draws(rng: str, key, t, n: int, n_keys: int, dtype):
    """Round ``t`` of one realization's stream ``key`` (``stream_key``): ``n`` open-interval
    uniforms and ``n_keys`` JAX keys (for draws that need ``jax.random``: AR(1) entropies,
    Gauss–Markov and trace channels; ``n_keys = 0`` returns ``None``).

    ``threefry``: ``k = fold_in(key, t)``; the uniforms are ``open_unit(k)`` when no keys are asked
    for, else ``k_u, *keys = split(k, 1 + n_keys)`` and the uniforms come from ``k_u`` (the layout
    of earlier releases, bit for bit). ``mix32``: words ``0..n−1`` (``2n`` in float64) of the
    round; the keys are threefry keys whose data are the round's words from slot 2³¹ on."""
    dtype = jnp.dtype(dtype)
    if rng == "threefry":
        from ._gamma_table import open_unit

        k = jax.random.fold_in(key, t)
        if n_keys == 0:
            return open_unit(k, (n,), dtype), None
        ks = jax.random.split(k, 1 + n_keys)
        return open_unit(ks[0], (n,), dtype), ks[1:]
    x = mix32(jnp.asarray(t).astype(_U) ^ key[0])
    if dtype == jnp.float32:
        u = _to_unit32(_words_at(key, x, jnp.arange(n, dtype=_U)))
    else:
        w = _words_at(key, x, jnp.arange(2 * n, dtype=_U)).reshape(n, 2).astype(jnp.float64)
        hi = jnp.floor(w[:, 0] * 2.0**-6)  # the top 26 bits of each word
        lo = jnp.floor(w[:, 1] * 2.0**-6)
        u = (hi * 2.0**26 + lo) * 2.0**-52 + 2.0**-53
    if n_keys == 0:
        return u, None
    kw = _words_at(key, x, jnp.arange(2 * n_keys, dtype=_U) + _U(2**31)).reshape(n_keys, 2)
    return u, jax.vmap(jax.random.wrap_key_data)(kw)


def _words_at(key2, x, j):
    return mix32((x + j * _U(_PHI)) ^ key2[1])
