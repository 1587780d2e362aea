r"""Byte-level causal transformers for LM mode (docs/model.md §4), with incremental (KV-cached) decoding.

Two models share one architecture: a *target* (edge server, default 2 layers, ``d = 128``) and a
*draft* (device, default 1 layer, ``d = 32``).  Vocabulary: the 256 byte values.

Positions (``LMConfig.pos``):

* ``"rope"`` (the committed weights): rotary position embeddings on queries and keys, so
  attention scores depend on the *distance* between positions only, and *sliding-window*
  attention: a query at position ``t`` attends to the keys at positions ``t − W < s ≤ t``
  (``W = LMConfig.window``, 64 for the committed pair).  Training windows are ``max_len = 128``
  bytes long, longer than ``W``, so every distance the model sees at inference (``0 … W − 1``),
  and the sliding of the window itself, were seen in training.  This is what lets
  :meth:`TransformerLM.decode` advance a sequence indefinitely with a fixed-size KV cache
  (:class:`KVCache`, a ring buffer of ``W + extra`` slots): the cost of a decoding step does not
  depend on how long the text already is.
* ``"learned"``: learned absolute embeddings up to ``max_len`` (the previous weights; every
  forward pass starts at position 0, so LM mode must re-read a fixed window; no KV cache).

The full-sequence forward ``model(tokens)`` (training, the windowed rounds of :mod:`.rounds`)
and the cached :meth:`TransformerLM.decode` compute the same function: tested in
``tests/test_lm_kv_cache.py``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["LMConfig", "TransformerLM", "KVCache", "TARGET_CONFIG", "DRAFT_CONFIG", "count_params", "rope"]

VOCAB = 256


@dataclasses.dataclass(frozen=True)
class LMConfig:
    """Architecture of one byte-level causal transformer.

    Attributes:
      n_layers: number of pre-LayerNorm transformer blocks.
      d_model: residual width.
      n_heads: attention heads (``d_model % n_heads == 0``).
      max_len: ``"learned"``: number of learned positions (longest input sequence);
        ``"rope"``: the length of the training windows (any length decodes).
      mlp_ratio: hidden width of the MLP in units of ``d_model``.
      pos: ``"learned"`` absolute embeddings or ``"rope"`` rotary + sliding window (module doc).
      window: ``"rope"`` only: attention window ``W`` (a query at ``t`` sees the keys at
        ``t − W < s ≤ t``); ``0`` means ``max_len``.  With ``W < max_len`` training already shows
        the model the sliding regime of inference (a layer-``ℓ`` state then depends on up to
        ``ℓ (W − 1) + 1`` bytes).
    """

    n_layers: int = 2
    d_model: int = 128
    n_heads: int = 4
    max_len: int = 128
    mlp_ratio: int = 4
    pos: str = "learned"
    window: int = 0

    @property
    def attn_window(self) -> int:
        """The attention window ``W`` (``window`` or, when 0, ``max_len``)."""
        return self.window or self.max_len

    def __post_init__(self):
        for name in ("n_layers", "d_model", "n_heads", "max_len", "mlp_ratio"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if not isinstance(self.window, int) or self.window < 0:
            raise ValueError(f"window must be a non-negative integer, got {self.window!r}")
        if self.pos not in ("learned", "rope"):
            raise ValueError(f"pos must be 'learned' or 'rope', got {self.pos!r}")
        if self.pos == "rope" and (self.d_model // self.n_heads) % 2:
            raise ValueError(f"pos='rope' needs an even head width, got d_model/n_heads = {self.d_model // self.n_heads}")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "LMConfig":
        kw = {f.name: (str(data[f.name]) if f.name == "pos" else int(data[f.name]))
              for f in dataclasses.fields(cls) if f.name in data}
        return cls(**kw)


TARGET_CONFIG = LMConfig(n_layers=2, d_model=128, n_heads=4, max_len=128, pos="rope", window=64)
DRAFT_CONFIG = LMConfig(n_layers=1, d_model=32, n_heads=2, max_len=128, pos="rope", window=64)


def rope(x, positions):
    r"""Rotary position embedding of ``x (..., T, H, D)`` at integer ``positions (..., T)``.

    Pairs ``(x_j, x_{j + D/2})`` are rotated by the angle ``t · 10000^{−2j/D}``; then
    ``⟨rope(q, t), rope(k, s)⟩`` depends on ``t − s`` only.  Angles are computed in float32 from
    the integer positions (``t`` up to ~10⁵ keeps the angle error below 1e-2 rad·(t/10⁵)).
    """
    d = x.shape[-1]
    half = d // 2
    freq = 1.0 / (10000.0 ** (jnp.arange(half, dtype=jnp.float32) / half))
    ang = positions.astype(jnp.float32)[..., None] * freq  # (..., T, half)
    cos, sin = jnp.cos(ang)[..., None, :], jnp.sin(ang)[..., None, :]  # (..., T, 1, half)
    x1, x2 = x[..., :half], x[..., half:]
    return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1).astype(x.dtype)


class KVCache(NamedTuple):
    """Ring-buffer KV cache of one or more sequences (leading batch axes ``...``).

    ``k``, ``v``: per-layer tuples of ``(..., S, H, D)`` arrays (rotary keys, values); ``pos``:
    ``(..., S)`` int32 absolute position held by each slot (``−1``: empty).  Position ``t`` lives
    in slot ``t mod S``.  With ``S ≥ W + T − 1`` a chunk of ``T`` new tokens never
    overwrites a key that one of its own queries still needs; :meth:`TransformerLM.init_cache`
    sizes ``S = W + extra``.
    """

    k: tuple
    v: tuple
    pos: jax.Array


class Block(nnx.Module):
    """Pre-LN block: ``x + Attn(LN(x))`` then ``x + MLP(LN(x))``, causal attention."""

    def __init__(self, cfg: LMConfig, *, rngs: nnx.Rngs):
        d = cfg.d_model
        self.n_heads = cfg.n_heads
        self.ln1 = nnx.LayerNorm(d, rngs=rngs)
        self.qkv = nnx.Linear(d, 3 * d, rngs=rngs)
        self.proj = nnx.Linear(d, d, rngs=rngs)
        self.ln2 = nnx.LayerNorm(d, rngs=rngs)
        self.fc1 = nnx.Linear(d, cfg.mlp_ratio * d, rngs=rngs)
        self.fc2 = nnx.Linear(cfg.mlp_ratio * d, d, rngs=rngs)

    def _qkv(self, x):
        *lead, t, d = x.shape
        h = self.qkv(self.ln1(x)).reshape(*lead, t, 3, self.n_heads, d // self.n_heads)
        return h[..., 0, :, :], h[..., 1, :, :], h[..., 2, :, :]

    def _out(self, x, a):
        x = x + self.proj(a.reshape(x.shape))
        return x + self.fc2(jax.nn.gelu(self.fc1(self.ln2(x))))

    def __call__(self, x, positions=None, window=None):  # x: (B, T, d)
        q, k, v = self._qkv(x)
        if positions is None:  # learned absolute positions (added to the input), plain causal mask
            return self._out(x, jax.nn.dot_product_attention(q, k, v, is_causal=True))
        q, k = rope(q, positions), rope(k, positions)
        t = x.shape[-2]
        i = jnp.arange(t)
        mask = (i[None, :] <= i[:, None]) & (i[None, :] > i[:, None] - window)  # (T, T) query × key
        return self._out(x, jax.nn.dot_product_attention(q, k, v, mask=mask[None, None]))

    def decode(self, x, positions, k_cache, v_cache, slot_pos, window):
        r"""Incremental step: ``x (..., T, d)`` at ``positions (..., T)``; the cache's slots were
        already assigned the new positions (``slot_pos``); returns ``(x, k_cache, v_cache)``."""
        q, k, v = self._qkv(x)
        q, k = rope(q, positions), rope(k, positions)
        s = k_cache.shape[-3]
        slots = positions % s
        k_cache = _scatter(k_cache, slots, k)
        v_cache = _scatter(v_cache, slots, v)
        qp, kp = positions[..., :, None], slot_pos[..., None, :]  # (..., T, 1), (..., 1, S)
        mask = (kp >= 0) & (kp <= qp) & (kp > qp - window)  # (..., T, S)
        a = jax.nn.dot_product_attention(q, k_cache, v_cache, mask=mask[..., None, :, :])
        return self._out(x, a), k_cache, v_cache


def _scatter(cache, slots, new):
    """``cache[..., slots[..., j], :, :] = new[..., j, :, :]`` row by row (leading axes vmapped)."""
    if slots.ndim == 1:
        return cache.at[slots].set(new)
    return jax.vmap(_scatter)(cache, slots, new)


class TransformerLM(nnx.Module):
    """Causal byte LM: ``tokens (B, T) int -> logits (B, T, 256)``; :meth:`decode` for KV-cached steps."""

    def __init__(self, cfg: LMConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.embed = nnx.Embed(VOCAB, cfg.d_model, rngs=rngs)
        if cfg.pos == "learned":
            self.pos = nnx.Param(0.02 * jax.random.normal(rngs.params(), (cfg.max_len, cfg.d_model)))
        self.blocks = nnx.List([Block(cfg, rngs=rngs) for _ in range(cfg.n_layers)])
        self.ln_f = nnx.LayerNorm(cfg.d_model, rngs=rngs)
        self.head = nnx.Linear(cfg.d_model, VOCAB, rngs=rngs)

    def __call__(self, tokens):
        """Full causal forward from position 0: ``tokens (B, T) -> logits (B, T, 256)``
        (``T ≤ max_len`` for learned positions; any ``T`` for rope, sliding window)."""
        t = tokens.shape[-1]
        if self.cfg.pos == "learned":
            x = self.embed(tokens) + self.pos[...][:t]
            for blk in self.blocks:
                x = blk(x)
        else:
            x = self.embed(tokens)
            positions = jnp.arange(t)
            for blk in self.blocks:
                x = blk(x, positions, self.cfg.attn_window)
        return self.head(self.ln_f(x))

    def init_cache(self, batch_shape=(), extra: int = 16, dtype=jnp.float32) -> KVCache:
        """An empty :class:`KVCache` of ``W + extra`` slots (``W`` the attention window) (``extra ≥ T − 1`` for chunks of
        ``T`` tokens; see :class:`KVCache`) for sequences of leading shape ``batch_shape``."""
        if self.cfg.pos != "rope":
            raise ValueError("KV-cached decoding needs pos='rope' (learned absolute positions cannot slide)")
        cfg = self.cfg
        shape = (*batch_shape, cfg.attn_window + extra, cfg.n_heads, cfg.d_model // cfg.n_heads)
        z = tuple(jnp.zeros(shape, dtype) for _ in range(cfg.n_layers))
        return KVCache(z, z, jnp.full((*batch_shape, cfg.attn_window + extra), -1, jnp.int32))

    def decode(self, tokens, positions, cache: KVCache):
        r"""Incremental forward: feed ``tokens (..., T)`` at absolute ``positions (..., T)``
        (consecutive, following the cached ones) and return ``(logits (..., T, 256), cache)``.

        Each query at position ``t`` attends to the cached and new keys at ``t − W < s ≤ t``
        — the same function as ``model(tokens)[t]`` on the whole text (sliding window).  Slots of
        positions ``≥`` the new ones (e.g. rejected drafts of an earlier round) are masked out or
        overwritten, so rolling a sequence back is just feeding it again from the rollback point.
        Cost per call: ``O(T · (W + extra))`` attention plus ``O(T)`` MLP, independent of how
        many tokens the sequence already holds.
        """
        s = cache.pos.shape[-1]
        positions = jnp.asarray(positions, jnp.int32)
        slot_pos = _scatter(cache.pos[..., None, None], positions % s, positions[..., None, None])[..., 0, 0]
        x = self.embed(tokens)
        ks, vs = [], []
        for blk, kc, vc in zip(self.blocks, cache.k, cache.v):
            x, kc, vc = blk.decode(x, positions, kc, vc, slot_pos, self.cfg.attn_window)
            ks.append(kc)
            vs.append(vc)
        return self.head(self.ln_f(x)), KVCache(tuple(ks), tuple(vs), slot_pos)


def count_params(model: nnx.Module) -> int:
    return int(sum(math.prod(x.shape) for x in jax.tree.leaves(nnx.state(model, nnx.Param))))
