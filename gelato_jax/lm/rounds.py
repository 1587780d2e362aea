r"""LM-mode speculative-decoding rounds: jitted, vmapped over ``R`` sequences (docs/model.md §4, §6).

One round (§1 steps 3–5) for every sequence ``r``:

1. :func:`draft_step` advances all sequences by one draft position (one draft pass over a fixed
   window ``context ‖ drafts``; causal attention ignores the unfilled tail): entropy ``H_i``
   (nats) of the full draft distribution ``q``, leaky-bucket update and exit (§6), top-p
   truncation ``q̃`` with measured support ``m_i``, sampling ``x_i ~ q̃``.  A sequence is
   *active* at position ``i`` while not halted and ``i < γ̃_r``; an active pass is paid
   (``P += 1``); the token is kept (``L += 1``) unless the bucket overflowed at this pass.
2. :func:`draft_round` scans :func:`draft_step` over ``γ_max`` positions (static shapes,
   halted mask).
3. One target pass over ``context ‖ drafts`` gives ``p_0..p_{γ_max}``; :func:`~.sampling.verify_one`
   accepts ``A`` drafts and emits one corrected/bonus token, ``N = A + 1``.
4. The context window slides by ``N`` tokens.

:func:`lm_round` = :func:`draft_phase` (steps 1–2) then :func:`verify_phase` (steps 3–4).  The
LM-mode rollout (:mod:`.simulate`) runs :func:`draft_phase` without the exit (every budgeted
position drafted), evaluates the policy's own inner loop (``policy.draft``) on the observed
entropies, and verifies only the prefix that rule sends; for a causal rule this is the same round
as stopping inside the scan (the positions after the stop are drafted by the simulator only:
neither paid nor sent, and their draws do not affect the earlier positions' keys).

Window semantics: each round conditions both models on the last ``C`` bytes plus the drafts of
the round, so within a round the target sees between ``C`` and ``C + γ_max`` bytes; the emitted
stream follows, token by token, the target's sampling law given the bytes it actually saw
(tested in ``tests/test_lm_stream.py``).

Payload of the sent tokens (``topp`` scheme, §3): ``B = Σ_{i<L} (b_id + m_i (b_id + b_prob))``.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct

from .model import TransformerLM
from .sampling import DraftCarry, bucket_update, entropy_nats, topp_truncate, verify_one

__all__ = [
    "LMPair",
    "LMRoundOut",
    "DraftOut",
    "draft_phase",
    "verify_phase",
    "draft_step",
    "draft_round",
    "lm_round",
    "acceptance_pairs",
    "corpus_contexts",
    "validate_round_args",
]


class LMPair(struct.PyTreeNode):
    """Draft and target models as a pytree (graph definitions static, parameters as leaves).

    ``context_len`` (static) is the number ``C`` of context bytes each sequence keeps;
    ``C + γ_max`` must not exceed either model's ``max_len``.
    """

    draft_graph: Any = struct.field(pytree_node=False)
    draft_state: Any
    target_graph: Any = struct.field(pytree_node=False)
    target_state: Any
    context_len: int = struct.field(pytree_node=False, default=96)
    max_len: int = struct.field(pytree_node=False, default=128)

    @classmethod
    def from_models(cls, draft: TransformerLM, target: TransformerLM, context_len: int = 96) -> "LMPair":
        if not isinstance(context_len, int) or context_len < 1:
            raise ValueError(f"context_len must be a positive integer, got {context_len!r}")
        dg, ds = nnx.split(draft)
        tg, ts = nnx.split(target)
        return cls(dg, ds, tg, ts, context_len, min(draft.cfg.max_len, target.cfg.max_len))

    @classmethod
    def load(cls, weights_dir=None, context_len: int = 96) -> "LMPair":
        """The committed weights (:func:`~.weights_io.load_pair`) as an :class:`LMPair`."""
        from .weights_io import load_pair

        draft, target = load_pair(weights_dir)
        return cls.from_models(draft, target, context_len)

    def draft(self) -> TransformerLM:
        return nnx.merge(self.draft_graph, self.draft_state)

    def target(self) -> TransformerLM:
        return nnx.merge(self.target_graph, self.target_state)


class LMRoundOut(NamedTuple):
    """Outputs of :func:`lm_round`; ``G = γ_max``."""

    entropy: jax.Array  # (R, G) draft entropy H_i (nats) at evaluated positions i < P, else 0
    support: jax.Array  # (R, G) int32 top-p support size m_i at evaluated positions, else 0
    drafts: jax.Array  # (R, G) int32 drafted tokens (first L valid)
    sent: jax.Array  # (R,) int32 L: drafts sent
    passes: jax.Array  # (R,) int32 P: draft passes paid (L, or L + 1 after an exit)
    accepted: jax.Array  # (R,) int32 A: leading accepted drafts
    tokens: jax.Array  # (R,) int32 N = A + 1 tokens produced
    bits: jax.Array  # (R,) float payload bits of the L sent tokens (topp scheme)
    emitted: jax.Array  # (R, G + 1) int32 produced tokens (first N valid, then -1)
    context: jax.Array  # (R, C) int32 new context window


def _draft_one(model, carry: DraftCarry, key, i, budget, H_th, Theta_th, exit_on, top_p, context_len):
    logits = model(carry.buf[None])[0, context_len - 1 + i]
    q = jax.nn.softmax(logits.astype(jnp.float32))
    h = entropy_nats(q)
    active = (~carry.halted) & (i < budget)
    theta, overflow = bucket_update(carry.theta, h, H_th, Theta_th)
    exits = overflow & exit_on
    send = active & ~exits
    qt, m = topp_truncate(q, top_p)
    x = jax.random.categorical(key, jnp.where(qt > 0, jnp.log(jnp.where(qt > 0, qt, 1.0)), -jnp.inf))
    x = x.astype(jnp.int32)
    pos = context_len + i
    buf = carry.buf.at[pos].set(jnp.where(send, x, carry.buf[pos]))
    new = DraftCarry(
        buf=buf,
        theta=jnp.where(active, theta, carry.theta),
        halted=carry.halted | (active & exits) | (i + 1 >= budget),
        sent=carry.sent + send.astype(jnp.int32),
        passes=carry.passes + active.astype(jnp.int32),
    )
    out = (
        jnp.where(active, h, 0.0),
        jnp.where(active, m, 0),
        jnp.where(send, x, 0),
        jnp.where(send, qt, 0.0),
    )
    return new, out


def draft_step(pair: LMPair, carry: DraftCarry, keys, i, budget, H_th, Theta_th, exit_on, top_p):
    r"""Advance ``R`` sequences by one draft position (``jax.vmap`` of the per-sequence step).

    Args:
      pair: the models.
      carry: :class:`~.sampling.DraftCarry` with a leading ``R`` axis.
      keys: ``(R,)`` PRNG keys.
      i: position index (0-based) of this draft pass.
      budget: ``(R,)`` int drafting budgets ``γ̃``.
      H_th, Theta_th, exit_on, top_p: scalars of §6 / §3.

    Returns:
      ``(carry, (entropy (R,), support (R,), token (R,), q̃ (R, V)))``.
    """
    model = pair.draft()
    f = functools.partial(_draft_one, model, context_len=pair.context_len)
    return jax.vmap(f, in_axes=(0, 0, None, 0, None, None, None, None))(
        carry, keys, i, budget, H_th, Theta_th, exit_on, top_p
    )


draft_step_jit = jax.jit(draft_step)


def draft_round(pair: LMPair, context, budget, key, H_th, Theta_th, exit_on, top_p, gamma_max: int):
    r"""Draft up to ``γ̃_r ≤ γ_max`` tokens per sequence: ``lax.scan`` of :func:`draft_step`.

    Returns:
      ``(carry, (entropy, support, drafts, q̃))`` with per-position outputs of shape
      ``(R, G, ...)``.
    """
    r, c = context.shape
    buf = jnp.concatenate([context.astype(jnp.int32), jnp.zeros((r, gamma_max), jnp.int32)], axis=1)
    carry = DraftCarry(
        buf=buf,
        theta=jnp.zeros((r,), jnp.float32),
        halted=budget <= 0,
        sent=jnp.zeros((r,), jnp.int32),
        passes=jnp.zeros((r,), jnp.int32),
    )
    seq_keys = jax.vmap(lambda j: jax.random.fold_in(key, j))(jnp.arange(r))  # batch-independent
    keys = jnp.swapaxes(jax.vmap(lambda k: jax.random.split(k, gamma_max))(seq_keys), 0, 1)

    def body(carry, xs):
        i, k = xs
        return draft_step(pair, carry, k, i, budget, H_th, Theta_th, exit_on, top_p)

    carry, outs = jax.lax.scan(body, carry, (jnp.arange(gamma_max), keys))
    return carry, jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), outs)


class DraftOut(NamedTuple):
    """Drafting phase of a round (before the sent/passes decision is final); ``G = γ_max``."""

    buf: jax.Array  # (R, C + G) int32: context then the drafted tokens
    entropy: jax.Array  # (R, G) H_i at drafted positions i < P, else 0
    support: jax.Array  # (R, G) int32 m_i at drafted positions, else 0
    drafts: jax.Array  # (R, G) int32 drafted tokens (first L valid)
    qt: jax.Array  # (R, G, V) the truncated q̃ the drafts were sampled from (0 where not sent)
    sent: jax.Array  # (R,) int32 L
    passes: jax.Array  # (R,) int32 P
    verify_key: jax.Array  # PRNG key of the verification phase


def draft_phase(pair, context, budget, key, H_th, Theta_th, exit_on, top_p, gamma_max: int) -> DraftOut:
    r"""Drafting phase of :func:`lm_round` (traceable, not jitted): ``key`` is split into the
    drafting and verification keys exactly as :func:`lm_round` does.

    With ``exit_on`` false every position ``i < γ̃_r`` is drafted and sent (``L = P = γ̃``); an
    inner loop evaluated afterwards on the observed entropies may then keep a prefix
    (:func:`verify_phase` with its own ``sent``/``passes``).
    """
    kd, kv = jax.random.split(key)
    budget = budget.astype(jnp.int32)
    carry, (ent, sup, drafts, qt) = draft_round(pair, context, budget, kd, H_th, Theta_th, exit_on, top_p, gamma_max)
    return DraftOut(carry.buf, ent, sup, drafts, qt, carry.sent, carry.passes, kv)


def verify_phase(pair, context, d: DraftOut, sent, passes, b_id, b_prob, gamma_max: int) -> LMRoundOut:
    r"""Verification phase of :func:`lm_round` for ``sent ≤ d.sent`` drafts and ``passes ≤ d.passes``
    paid passes (traceable, not jitted).

    Only the first ``sent`` drafts of ``d`` are verified, returned and charged payload bits; the
    entropies/supports of positions ``≥ passes`` are zeroed (those positions were drafted by the
    simulator but are not part of the modelled round). The target pass reads ``d.buf``, which may
    hold drafts beyond ``sent``; by causal attention the distributions ``p_0..p_L`` that
    verification uses condition only on the context and the drafts ``< L``.
    """
    c = pair.context_len
    r = context.shape[0]
    sent = jnp.asarray(sent, jnp.int32)
    passes = jnp.asarray(passes, jnp.int32)
    pos = jnp.arange(gamma_max)[None]
    sent_mask = pos < sent[:, None]
    paid_mask = pos < passes[:, None]
    ent = jnp.where(paid_mask, d.entropy, 0.0)
    sup = jnp.where(paid_mask, d.support, 0)
    drafts = jnp.where(sent_mask, d.drafts, 0)
    logits = pair.target()(d.buf)[:, c - 1 : c + gamma_max]
    p = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    vkeys = jax.vmap(lambda j: jax.random.fold_in(d.verify_key, j))(jnp.arange(r))
    A, nxt = jax.vmap(verify_one)(vkeys, p, d.qt, drafts, sent)
    j = jnp.arange(gamma_max + 1)[None]
    drafts_ext = jnp.concatenate([drafts, jnp.zeros((r, 1), jnp.int32)], axis=1)
    emitted = jnp.where(j < A[:, None], drafts_ext, jnp.where(j == A[:, None], nxt[:, None], -1))
    full = jnp.concatenate([context.astype(jnp.int32), jnp.maximum(emitted, 0)], axis=1)
    new_ctx = jax.vmap(lambda row, n: jax.lax.dynamic_slice(row, (n,), (c,)))(full, A + 1)
    bits = jnp.sum(jnp.where(sent_mask, b_id + sup * (b_id + b_prob), 0), axis=1).astype(jnp.float32)
    new_ctx = new_ctx.astype(context.dtype)  # same carry type as the input (x64 or not)
    return LMRoundOut(ent, sup, drafts, sent, passes, A, A + 1, bits, emitted, new_ctx)


@functools.partial(jax.jit, static_argnames=("gamma_max",))
def _lm_round(pair, context, budget, key, H_th, Theta_th, exit_on, top_p, b_id, b_prob, *, gamma_max):
    d = draft_phase(pair, context, budget, key, H_th, Theta_th, exit_on, top_p, gamma_max)
    return verify_phase(pair, context, d, d.sent, d.passes, b_id, b_prob, gamma_max)


def _concrete(x):
    try:
        return np.asarray(x)
    except Exception:  # tracer: cannot validate inside a trace
        return None


def validate_round_args(pair: LMPair, context, budget, *, H_th, Theta_th, top_p, gamma_max) -> None:
    """Raise ``ValueError`` naming the parameter for invalid (concrete) round arguments."""
    if not isinstance(gamma_max, (int, np.integer)) or gamma_max < 1:
        raise ValueError(f"gamma_max must be an integer >= 1, got {gamma_max!r}")
    if pair.context_len + gamma_max > pair.max_len:
        raise ValueError(
            f"gamma_max must be <= max_len - context_len = {pair.max_len - pair.context_len}, got {gamma_max}")
    if np.ndim(context) != 2 or np.shape(context)[1] != pair.context_len:
        raise ValueError(f"context must have shape (R, {pair.context_len}), got {np.shape(context)}")
    if np.shape(budget) != (np.shape(context)[0],):
        raise ValueError(f"budget must have shape (R,) = ({np.shape(context)[0]},), got {np.shape(budget)}")
    checks = [
        ("budget", budget, lambda v: np.all((v >= 0) & (v <= gamma_max) & (v == np.round(v))),
         f"integers in [0, gamma_max={gamma_max}]"),
        ("H_th", H_th, lambda v: np.all(np.isfinite(v) & (v >= 0)), "[0, inf)"),
        ("Theta_th", Theta_th, lambda v: np.all(np.isfinite(v) & (v >= 0)), "[0, inf)"),
        ("top_p", top_p, lambda v: np.all((v > 0) & (v <= 1)), "(0, 1]"),
    ]
    for name, val, ok, rng in checks:
        v = _concrete(val)
        if v is not None and not ok(v):
            raise ValueError(f"{name} must be in {rng}, got {val!r}")
    cv = _concrete(context)
    if cv is not None and not np.all((cv >= 0) & (cv < 256)):
        raise ValueError("context must hold byte values in [0, 255]")


def lm_round(
    pair: LMPair,
    context,
    budget,
    key,
    *,
    H_th=1.5,
    Theta_th=1.0,
    exit=True,
    top_p=0.95,
    gamma_max: int = 10,
    b_id=18.0,
    b_prob=16.0,
) -> LMRoundOut:
    r"""One LM-mode speculative-decoding round for ``R`` sequences (docs/model.md §1 steps 3–5).

    Pure and jitted (static: ``gamma_max`` and the model architectures); ``budget``, ``H_th``,
    ``Theta_th``, ``exit``, ``top_p`` are traced, so changing them does not recompile.  Usable
    inside the core's ``lax.scan`` (validation is skipped for traced values).

    Args:
      pair: :class:`LMPair`.
      context: ``(R, C)`` int context bytes.
      budget: ``(R,)`` int drafting budgets ``γ̃ ∈ [0, γ_max]``; ``0`` = plain edge decoding.
      key: PRNG key; sequence ``r`` uses ``fold_in(key, r)``-derived keys, so its result does
        not depend on ``R`` or on the other rows.
      H_th, Theta_th: leaky-bucket threshold and capacity (§6), ``≥ 0``.
      exit: ``True``/``"bucket"`` for the entropy early exit, ``False``/``"none"`` to disable.
      top_p: top-p mass in ``(0, 1]`` (``1`` keeps the full support).
      gamma_max: static maximum budget (shape of the per-position outputs).
      b_id, b_prob: bits per token id and per probability (§3 defaults 18, 16).

    Returns:
      :class:`LMRoundOut`.

    Raises:
      ValueError: invalid arguments, naming the parameter and its allowed range.
    """
    if isinstance(exit, str):
        if exit not in ("bucket", "none"):
            raise ValueError(f"exit must be 'bucket', 'none' or a bool, got {exit!r}")
        exit = exit == "bucket"
    validate_round_args(pair, context, budget, H_th=H_th, Theta_th=Theta_th, top_p=top_p, gamma_max=gamma_max)
    f32 = jnp.float32
    context = jnp.asarray(context)
    if not jnp.issubdtype(context.dtype, jnp.integer):
        raise ValueError(f"context must be an integer array of byte values, got dtype {context.dtype}")
    return _lm_round(pair, context, jnp.asarray(budget, jnp.int32), key,
                     jnp.asarray(H_th, f32), jnp.asarray(Theta_th, f32), jnp.asarray(exit, bool),
                     jnp.asarray(top_p, f32), jnp.asarray(b_id, f32), jnp.asarray(b_prob, f32),
                     gamma_max=int(gamma_max))


def acceptance_pairs(out: LMRoundOut, *, with_position: bool = False):
    r"""``(entropy, accepted)`` pairs of one round, as numpy arrays.

    Draft ``i`` is verified iff ``i < L`` and ``i ≤ A`` (verification stops at the first
    rejection); it is accepted iff ``i < A``.  This is the conditional acceptance the surrogate's
    ``α(H)`` models (§4).  Also returns the support sizes of those positions, and with
    ``with_position`` their 1-based positions in the round and their sequence (row) indices.
    """
    ent = np.asarray(out.entropy)
    g = ent.shape[1]
    i = np.arange(g)[None]
    L = np.asarray(out.sent)[:, None]
    A = np.asarray(out.accepted)[:, None]
    mask = (i < L) & (i <= A)
    accepted = np.broadcast_to(i < A, ent.shape)[mask]
    if with_position:
        rows = np.broadcast_to(np.arange(ent.shape[0])[:, None], ent.shape)[mask]
        return ent[mask], accepted, np.asarray(out.support)[mask], np.broadcast_to(i + 1, ent.shape)[mask], rows
    return ent[mask], accepted, np.asarray(out.support)[mask]


def corpus_contexts(key, n: int, context_len: int = 96, split: str = "val") -> jax.Array:
    """``(n, context_len)`` windows of the corpus (§4) at offsets drawn with ``key``."""
    from .train import load_corpus

    tr, va, _ = load_corpus()
    data = va if split == "val" else tr
    starts = np.asarray(jax.random.randint(key, (n,), 0, len(data) - context_len))
    return jnp.asarray(data[starts[:, None] + np.arange(context_len)[None]].astype(np.int32))
