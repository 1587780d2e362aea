r"""Batched KV-cached rounds that compute only the positions a round uses (LM mode's rollout path).

:mod:`.cached` writes one round for one sequence with static shapes: every round runs all
``γ_max`` draft passes and a target pass over ``γ_max + 1`` tokens, whatever the round's budget
``γ̃`` and number ``L`` of sent drafts; ``jax.vmap`` over ``R`` sequences then evaluates
``R (2 γ_max + 1)`` positions per round.  In LM mode the budgets are small (γ̃ = 2 in 99.7 % of
the rounds of ``Gelato`` under the calibrated scenario, ``L ≈ 1.2``), so ≈ 80 % of that work is
padding.  This module computes the same round for a batch of ``R`` sequences, looping (with
traced trip counts: ``lax.while_loop`` / ``fori_loop``; the compiled program has static shapes)
only over the positions some sequence needs:

* the models advance by :func:`decode_step`: one token for every sequence of the batch, the
  sequences that do not need this step masked (their cache entries are not written), against
  ring buffers in the layout ``(R, H, S, D)`` (:func:`to_rows_layout`), where one query per
  sequence is a batched matrix-vector product over contiguous memory (≈ 13× faster on CPU than
  ``(R, S, H, D)`` at ``R = 1,024``; gathering each packed token's cache rows instead costs more
  than the whole step);
* drafting (no in-scan exit: LM mode's rollout drafts every budgeted position and lets the
  policy's inner loop decide afterwards, :mod:`.simulate` step 3), one loop with one decode per
  iteration (a single compiled decode): two steps read the last two tokens of every sequence (positions ``n − 2, n − 1``: the draft cache's invariant also for
  ``γ̃ = 0``), then pass ``i < max γ̃`` samples ``x_i`` (entropy, top-p, draw) only for the
  sequences with ``γ̃ > i`` — packed in blocks of :data:`DRAFT_BLOCK`, in order of decreasing
  budget so that they are a prefix — and decodes it for those with ``γ̃ > i + 1`` (the decode of
  ``x_{γ̃−1}`` is never read: the next round rewrites that position first);
* verification: the target decodes token ``j`` of ``[token n − 1, x_0 … x_{L−1}]`` only while
  the drafts before it are all accepted (``A + 1 ≤ L + 1`` tokens per sequence), testing draft
  ``j`` in the same step (the arithmetic and keys of :func:`~.sampling.verify_one`);
* every position a sequence uses is decoded by the same function of the same cache entries as in
  :mod:`.cached` (only entries no query reads are left unwritten), and every random draw uses the
  same per-sequence key, so a sequence's round is :func:`~.cached.draft_phase_cached` +
  :func:`~.cached.verify_phase_cached` up to float32 summation order, and does not depend on which
  other sequences are in the batch (``tests/test_lm_packed.py``);
* :func:`prefill_rows` fills the caches from the starting context by one full forward per model.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .cached import SeqState
from .model import KVCache, rope
from .sampling import accept_prob, entropy_nats, race_sample, residual, topp_truncate

__all__ = ["PackedDraft", "PackedRoundOut", "decode_step", "to_rows_layout", "from_rows_layout", "draft_packed", "verify_packed", "round_keys", "prefill_rows", "DRAFT_BLOCK"]

DRAFT_BLOCK = 128  # sequences per draft block
PREFILL_BLOCK = 64  # sequences per block of the prefill forward (0.78 vs 1.77 CPU-s unblocked at R = 1,024)


class PackedDraft(NamedTuple):
    """Drafting phase of a batch (leading ``R`` axis; ``G = γ_max``), as :class:`~.cached.CachedDraft`
    with the exit disabled (``sent = passes = γ̃``)."""

    state: SeqState
    entropy: jax.Array  # (R, G)
    support: jax.Array  # (R, G) int32
    drafts: jax.Array  # (R, G) int32
    qt: jax.Array  # (R, G, V)
    sent: jax.Array  # (R,) int32
    passes: jax.Array  # (R,) int32
    verify_key: jax.Array  # (R,) keys


class PackedRoundOut(NamedTuple):
    """Outputs of a batched round (fields of :class:`~.cached.CachedRoundOut`, leading ``R``)."""

    entropy: jax.Array
    support: jax.Array
    drafts: jax.Array
    sent: jax.Array
    passes: jax.Array
    accepted: jax.Array
    tokens: jax.Array
    bits: jax.Array
    emitted: jax.Array
    state: SeqState


def to_rows_layout(cache: KVCache) -> KVCache:
    """A batch of :class:`~.model.KVCache` (``(R, S, H, D)`` keys/values) in the layout of
    :func:`decode_step`, ``(R, H, S, D)`` (the attention of one query per sequence is then a
    batched matrix-vector product over contiguous memory: ≈ 13× faster on CPU at R = 1,024)."""
    sw = lambda a: jnp.swapaxes(a, -3, -2)
    return KVCache(tuple(map(sw, cache.k)), tuple(map(sw, cache.v)), cache.pos)


from_rows_layout = to_rows_layout  # the same transposition undoes it


def decode_step(model, cache: KVCache, tok, pos, live):
    r"""One token per sequence: feed ``tok (R,)`` at positions ``pos (R,)`` for the sequences with
    ``live (R,)`` (the others' cache entries are not written; their logits are garbage) against
    the ring buffers ``cache`` in the layout of :func:`to_rows_layout`.  Same function as
    :meth:`~.model.TransformerLM.decode` on a chunk of one token.  Returns ``(logits (R, V), cache)``."""
    n_rows, s = cache.pos.shape
    w = model.cfg.attn_window
    rows = jnp.where(live, jnp.arange(n_rows, dtype=jnp.int32), n_rows)
    slot = pos % s
    slot_pos = cache.pos.at[rows, slot].set(pos, mode="drop")
    mask = (slot_pos >= 0) & (slot_pos <= pos[:, None]) & (slot_pos > pos[:, None] - w)  # (R, S)
    x = model.embed(tok)
    ks, vs = [], []
    for blk, kc, vc in zip(model.blocks, cache.k, cache.v):
        q, k, v = blk._qkv(x[:, None])  # (R, 1, H, D)
        q, k = rope(q, pos[:, None])[:, 0], rope(k, pos[:, None])[:, 0]
        kc = kc.at[rows, :, slot].set(k, mode="drop")
        vc = vc.at[rows, :, slot].set(v[:, 0], mode="drop")
        sc = jnp.einsum("rhd,rhsd->rhs", q, kc) / math.sqrt(q.shape[-1])
        sc = jnp.where(mask[:, None, :], sc, jnp.finfo(sc.dtype).min)
        a = jnp.einsum("rhs,rhsd->rhd", jax.nn.softmax(sc, axis=-1), vc)
        x = blk._out(x, a.reshape(x.shape))
        ks.append(kc)
        vs.append(vc)
    return model.head(model.ln_f(x)), KVCache(tuple(ks), tuple(vs), slot_pos)


def _forward_cache(model, tokens, slots: int) -> KVCache:
    r"""Ring buffers (layout of :func:`to_rows_layout`, ``slots`` slots) of ``R`` sequences after
    reading ``tokens (R, C)`` at positions ``0 … C − 1``, by one causal forward (the
    sliding-window attention of :meth:`~.model.Block.__call__`) that keeps each layer's rotary
    keys and values.  Only what a later query can read is computed: a query at ``t ≥ C`` reads
    positions ``> t − W``, so every layer's buffer holds positions ``C − W + 1 … C − 1`` (slot
    ``p mod slots``; the other slots empty), the last layer computes only those keys and values,
    and layer ``ℓ`` computes its output (attention, MLP) only at the positions whose layer-``ℓ+1``
    keys are needed (and its keys ``W − 1`` positions further back); the head is not evaluated.
    The slots written hold what chunked :meth:`~.model.TransformerLM.decode` calls leave there."""
    import numpy as np

    c = tokens.shape[-1]
    w = model.cfg.attn_window
    n_layers = len(model.blocks)
    keep_from = max(0, c - w + 1)  # the positions any later query reads
    lo = [0] * n_layers  # layer ℓ's keys/values are computed for positions lo[ℓ] … c − 1
    lo[-1] = keep_from
    for li in range(n_layers - 2, -1, -1):
        lo[li] = max(0, lo[li + 1] - w + 1)
    s_idx = np.arange(slots)
    p_s = keep_from + (s_idx - keep_from) % slots  # the position ≥ keep_from in slot s …
    p_s = np.where(p_s < c, p_s, -1)  # … if there is one
    have = jnp.asarray(p_s >= 0)
    x = model.embed(tokens[:, lo[0]:])
    ks, vs = [], []
    for li, blk in enumerate(model.blocks):
        positions = jnp.arange(lo[li], c)
        q, k, v = blk._qkv(x)  # (R, c − lo[ℓ], H, D)
        q, k = rope(q, positions), rope(k, positions)
        take = jnp.asarray(np.maximum(p_s - lo[li], 0))
        for src, dst in ((k, ks), (v, vs)):
            buf = jnp.where(have[None, :, None, None], src[:, take], 0.0)  # (R, S, H, D)
            dst.append(jnp.swapaxes(buf, 1, 2))
        if li + 1 < n_layers:  # outputs at positions lo[ℓ+1] … c − 1 (queries) over keys lo[ℓ] …
            off = lo[li + 1] - lo[li]
            qi = jnp.arange(lo[li + 1], c)[:, None]
            ki = positions[None, :]
            mask = ((ki <= qi) & (ki > qi - w))[None, None]
            a = jax.nn.dot_product_attention(q[:, off:], k, v, mask=mask)
            x = blk._out(x[:, off:], a)
    r = tokens.shape[0]
    return KVCache(tuple(ks), tuple(vs), jnp.broadcast_to(jnp.asarray(p_s, jnp.int32), (r, slots)))


def _blocked(f, x, block: int):
    """``f`` over blocks of ``block`` rows of ``x`` in sequence (``lax.map``; rows padded by
    repeating the last one), concatenated: a smaller working set than one call on all rows."""
    r = x.shape[0]
    if r <= block:
        return f(x)
    nb = -(-r // block)
    xp = jnp.concatenate([x, jnp.broadcast_to(x[-1:], (nb * block - r, *x.shape[1:]))])
    out = jax.lax.map(f, xp.reshape(nb, block, *x.shape[1:]))
    return jax.tree.map(lambda a: a.reshape(nb * block, *a.shape[2:])[:r], out)


def prefill_rows(pair, context, gamma_max: int, block: int = PREFILL_BLOCK) -> SeqState:
    r"""The batch's :class:`~.cached.SeqState` after reading ``context (R, C)`` (``C ≥ 2``), in the
    layout of :func:`to_rows_layout`: the state of ``jax.vmap`` of :func:`~.cached.prefill`
    (``start = 0``) in every slot a later query can read (the others are left empty), computed by
    one forward per model (:func:`_forward_cache`) instead of chunked decodes (same function up to
    float32 summation order)."""
    from .cached import cache_extra

    context = jnp.asarray(context, jnp.int32)
    r, c = context.shape
    if c < 2:
        raise ValueError(f"context must hold at least 2 tokens, got {c}")
    extra = cache_extra(gamma_max)
    draft, target = pair.draft(), pair.target()
    tc = _blocked(lambda t: _forward_cache(target, t[:, :c - 1], target.cfg.attn_window + extra), context, block)
    if c > 2:
        dc = _blocked(lambda t: _forward_cache(draft, t[:, :c - 2], draft.cfg.attn_window + extra), context, block)
    else:
        dc = to_rows_layout(draft.init_cache((r,), extra))
    return SeqState(dc, tc, jnp.full((r,), c, jnp.int32), context[:, c - 2:])


def round_keys(keys, gamma_max: int):
    """Per-sequence round keys ``keys (R,)`` → the draft keys ``(R, G)`` and verification keys
    ``(R,)``, split exactly as :func:`~.cached.draft_phase_cached` / :func:`~.cached.verify_phase_cached`."""

    def one(k):
        kd, kv = jax.random.split(k)
        return jax.random.split(jax.random.fold_in(kd, 0), gamma_max), kv

    return jax.vmap(one)(keys)


def _n_blocks(n, size):
    return (n + size - 1) // size


def draft_packed(pair, state: SeqState, budget, keys, top_p, gamma_max: int, block: int = DRAFT_BLOCK) -> PackedDraft:
    r"""Drafting phase of ``R`` sequences (no exit): equals ``jax.vmap`` of
    :func:`~.cached.draft_phase_cached` with ``exit_on=False`` (module doc); ``keys (R,)`` the
    per-sequence round keys."""
    g = int(gamma_max)
    draft = pair.draft()
    r = state.length.shape[0]
    v = 256
    budget = jnp.asarray(budget, jnp.int32)
    n = state.length
    dkeys, vkeys = round_keys(keys, g)
    order = jnp.argsort(-budget, stable=True).astype(jnp.int32)  # decreasing budget: active = prefix
    pad = _n_blocks(r, block) * block - r
    order = jnp.concatenate([order, jnp.full((pad,), r, jnp.int32)])
    n_active = jax.vmap(lambda i: jnp.sum(budget > i))(jnp.arange(g + 1, dtype=jnp.int32))  # (G + 1,)
    ent = jnp.zeros((r, g), jnp.float32)
    sup = jnp.zeros((r, g), jnp.int32)
    drafts = jnp.zeros((r, g), jnp.int32)
    qt_all = jnp.zeros((r, g, v), jnp.float32)
    q_all = jnp.zeros((r, v), jnp.float32)
    sample = jax.vmap(lambda k, q: _sample(k, q, top_p))

    def sample_blocks(i, q_all, carry):  # pass i for the sequences with γ̃ > i (a prefix of `order`)
        def body(c):
            b, ent, sup, drafts, qt_all = c
            sl = jax.lax.dynamic_slice(order, (b * block,), (block,))
            live = (b * block + jnp.arange(block)) < n_active[i]
            rw = jnp.where(live, sl, r)
            rc = jnp.minimum(rw, r - 1)
            x, h, m, qt = sample(dkeys[rc, i], q_all[rc])
            ent = ent.at[rw, i].set(h, mode="drop")
            sup = sup.at[rw, i].set(m, mode="drop")
            drafts = drafts.at[rw, i].set(x, mode="drop")
            qt_all = qt_all.at[rw, i].set(qt, mode="drop")
            return b + 1, ent, sup, drafts, qt_all

        return jax.lax.while_loop(lambda c: c[0] < _n_blocks(n_active[i], block), body, (0, *carry))[1:]

    # one loop, one decode per iteration (a single compiled decode): iteration k decodes
    #   k = 0: token n − 2 (every sequence), k = 1: token n − 1 (every sequence) → q_0,
    #   k ≥ 2: x_{k−2} at position n + k − 2 for the sequences with γ̃ > k − 1 → q_{k−1},
    # then (k ≥ 1) runs drafting pass k − 1 (a no-op once k − 1 ≥ max γ̃).
    def step(k, c):
        q_all, dc, ent, sup, drafts, qt_all = c
        km = jnp.maximum(k - 2, 0)
        tok = jnp.where(k == 0, state.last2[:, 0],
                        jnp.where(k == 1, state.last2[:, 1], jax.lax.dynamic_index_in_dim(drafts, km, 1, False)))
        pos = jnp.where(k == 0, n - 2, jnp.where(k == 1, n - 1, n + km))
        live = (k <= 1) | (budget > k - 1)
        lg, dc = decode_step(draft, dc, tok, pos, live)
        q_new = jax.nn.softmax(lg.astype(jnp.float32), axis=-1)
        q_all = jnp.where((live & (k >= 1))[:, None], q_new, q_all)
        ent, sup, drafts, qt_all = jax.lax.cond(
            k >= 1, lambda cc: sample_blocks(jnp.maximum(k - 1, 0), q_all, cc), lambda cc: cc,
            (ent, sup, drafts, qt_all))
        return q_all, dc, ent, sup, drafts, qt_all

    n_pass = jnp.minimum(jnp.max(budget, initial=0), g)
    _, dc, ent, sup, drafts, qt_all = jax.lax.fori_loop(
        0, jnp.maximum(n_pass, 1) + 1, step, (q_all, state.draft_cache, ent, sup, drafts, qt_all))
    return PackedDraft(state._replace(draft_cache=dc), ent, sup, drafts, qt_all, budget, budget, vkeys)


def _sample(key, q, top_p):
    """The per-position kernel of :func:`~.cached._token_step` without the bucket (no exit)."""
    h = entropy_nats(q)
    qt, m = topp_truncate(q, top_p)
    x = jax.random.categorical(key, jnp.where(qt > 0, jnp.log(jnp.where(qt > 0, qt, 1.0)), -jnp.inf))
    return x.astype(jnp.int32), h, m, qt


def verify_packed(pair, d: PackedDraft, sent, passes, b_id, b_prob, gamma_max: int) -> PackedRoundOut:
    r"""Verification of the first ``sent ≤ d.sent`` drafts of each sequence (``passes`` paid):
    equals ``jax.vmap`` of :func:`~.cached.verify_phase_cached`.  The target decodes token ``j``
    of a sequence only while its drafts ``< j`` are all accepted and ``j ≤ L`` (``A + 1`` tokens:
    the stream needs no more, and the cache needs positions ``< n + A`` only), one step per
    position for the whole batch until every sequence has stopped."""
    g = int(gamma_max)
    st = d.state
    target = pair.target()
    r = st.length.shape[0]
    n = st.length
    sent = jnp.asarray(sent, jnp.int32)
    passes = jnp.asarray(passes, jnp.int32)
    pos = jnp.arange(g, dtype=jnp.int32)[None]
    sent_mask = pos < sent[:, None]
    paid_mask = pos < passes[:, None]
    ent = jnp.where(paid_mask, d.entropy, 0.0)
    sup = jnp.where(paid_mask, d.support, 0)
    drafts = jnp.where(sent_mask, d.drafts, 0)
    feed = jnp.concatenate([st.last2[:, 1:], drafts], axis=1)  # (R, G + 1)
    v = 256
    # lossless verification (sampling.verify_one's arithmetic and keys) fused into the target's
    # steps: step j decodes token j of the sequences still running (drafts < j all accepted,
    # j ≤ L), tests draft j, and a sequence stops at its first rejection or at j = L (bonus);
    # p_A and q̃_A (0 for the bonus) are kept for the residual draw.
    vk = jax.vmap(lambda kk: jax.random.split(jax.random.fold_in(kk, 0)))(d.verify_key)  # (R, 2): ku, kr
    u = jax.vmap(lambda kk: jax.random.uniform(kk, (g,), dtype=jnp.float32))(vk[:, 0])  # (R, G)
    rr = jnp.arange(r)

    def body(c):
        j, tc, running, A, p_sel, q_sel = c
        live = running & (sent >= j)
        lg, tc = decode_step(target, tc, jax.lax.dynamic_index_in_dim(feed, j, 1, keepdims=False), n - 1 + j, live)
        p_j = jax.nn.softmax(lg.astype(jnp.float32), axis=-1)
        jd = jnp.minimum(j, g - 1)
        x = jax.lax.dynamic_index_in_dim(drafts, jd, 1, keepdims=False)
        q_j = jax.lax.dynamic_index_in_dim(d.qt, jd, 1, keepdims=False)  # (R, V)
        is_draft = j < sent
        acc = jax.lax.dynamic_index_in_dim(u, jd, 1, keepdims=False) < accept_prob(p_j[rr, x], q_j[rr, x])
        stop = live & ~(is_draft & acc)
        A = jnp.where(stop, j, A)
        p_sel = jnp.where(stop[:, None], p_j, p_sel)
        q_sel = jnp.where(stop[:, None], jnp.where(is_draft[:, None], q_j, 0.0), q_sel)
        return j + 1, tc, running & ~stop, A, p_sel, q_sel

    zv = jnp.zeros((r, v), jnp.float32)
    init = (jnp.zeros((), jnp.int32), st.target_cache, jnp.ones((r,), bool), jnp.zeros((r,), jnp.int32), zv, zv)
    _, tc, _, A, p_sel, q_sel = jax.lax.while_loop(lambda c: jnp.any(c[2]), body, init)
    res = residual(p_sel, q_sel)
    res = jnp.where(jnp.sum(res, axis=-1, keepdims=True) > 0, res, p_sel)
    nxt = jax.vmap(race_sample)(vk[:, 1], res)
    j = jnp.arange(g + 1)[None]
    drafts_ext = jnp.concatenate([drafts, jnp.zeros((r, 1), jnp.int32)], axis=1)
    emitted = jnp.where(j < A[:, None], drafts_ext, jnp.where(j == A[:, None], nxt[:, None], -1))
    prev = jnp.where(A > 0, drafts_ext[jnp.arange(r), jnp.maximum(A - 1, 0)], st.last2[:, 1])
    new = SeqState(st.draft_cache, tc, n + A + 1, jnp.stack([prev, nxt], axis=1).astype(jnp.int32))
    bits = jnp.sum(jnp.where(sent_mask, b_id + sup * (b_id + b_prob), 0), axis=1).astype(jnp.float32)
    return PackedRoundOut(ent, sup, drafts, sent, passes, A, A + 1, bits, emitted, new)
