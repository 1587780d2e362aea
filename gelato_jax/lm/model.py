r"""Byte-level causal transformers for LM mode (MODEL.md §4).

Two models share one architecture: a *target* (edge server, default 2 layers, ``d = 128``) and a
*draft* (device, default 1 layer, ``d = 32``).  Vocabulary: the 256 byte values.  Positions are
learned absolute embeddings up to ``max_len``; every forward pass in LM mode starts at position 0
with a fixed window of context bytes (no KV cache), so the shapes are static.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["LMConfig", "TransformerLM", "TARGET_CONFIG", "DRAFT_CONFIG", "count_params"]

VOCAB = 256


@dataclasses.dataclass(frozen=True)
class LMConfig:
    """Architecture of one byte-level causal transformer.

    Attributes:
      n_layers: number of pre-LayerNorm transformer blocks.
      d_model: residual width.
      n_heads: attention heads (``d_model % n_heads == 0``).
      max_len: number of learned positions (longest input sequence).
      mlp_ratio: hidden width of the MLP in units of ``d_model``.
    """

    n_layers: int = 2
    d_model: int = 128
    n_heads: int = 4
    max_len: int = 128
    mlp_ratio: int = 4

    def __post_init__(self):
        for name in ("n_layers", "d_model", "n_heads", "max_len", "mlp_ratio"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "LMConfig":
        return cls(**{f.name: int(data[f.name]) for f in dataclasses.fields(cls) if f.name in data})


TARGET_CONFIG = LMConfig(n_layers=2, d_model=128, n_heads=4, max_len=128)
DRAFT_CONFIG = LMConfig(n_layers=1, d_model=32, n_heads=2, max_len=128)


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

    def __call__(self, x):  # x: (B, T, d)
        b, t, d = x.shape
        h = self.qkv(self.ln1(x)).reshape(b, t, 3, self.n_heads, d // self.n_heads)
        q, k, v = h[:, :, 0], h[:, :, 1], h[:, :, 2]
        a = jax.nn.dot_product_attention(q, k, v, is_causal=True).reshape(b, t, d)
        x = x + self.proj(a)
        return x + self.fc2(jax.nn.gelu(self.fc1(self.ln2(x))))


class TransformerLM(nnx.Module):
    """Causal byte LM: ``tokens (B, T) int -> logits (B, T, 256)``, ``T ≤ max_len``."""

    def __init__(self, cfg: LMConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.embed = nnx.Embed(VOCAB, cfg.d_model, rngs=rngs)
        self.pos = nnx.Param(0.02 * jax.random.normal(rngs.params(), (cfg.max_len, cfg.d_model)))
        self.blocks = nnx.List([Block(cfg, rngs=rngs) for _ in range(cfg.n_layers)])
        self.ln_f = nnx.LayerNorm(cfg.d_model, rngs=rngs)
        self.head = nnx.Linear(cfg.d_model, VOCAB, rngs=rngs)

    def __call__(self, tokens):
        t = tokens.shape[-1]
        x = self.embed(tokens) + self.pos[...][:t]
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln_f(x))


def count_params(model: nnx.Module) -> int:
    return int(sum(math.prod(x.shape) for x in jax.tree.leaves(nnx.state(model, nnx.Param))))
