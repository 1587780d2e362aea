r"""KV-cached LM-mode rounds: the draft step and the target's verification pass read a cache
instead of re-reading a context window (docs/model.md §1 steps 3–5, §4).

State of one sequence (:class:`SeqState`): the draft's and the target's
:class:`~.model.KVCache`, the text length ``n`` (absolute position of the next token) and the
last two tokens of the text.  Invariants at the start of a round:

* the target cache holds the keys/values of positions ``< n − 1``;
* the draft cache holds those of positions ``< n − 2``.

One round (:func:`draft_phase_cached` then :func:`verify_phase_cached`):

1. draft pass 0 feeds the last two tokens at positions ``n − 2, n − 1`` (one of them may already
   be cached: rewriting it is harmless), giving ``q_0``; pass ``i ≥ 1`` feeds the draft
   ``x_{i−1}`` at position ``n − 1 + i``, giving ``q_i``.  Each pass: entropy ``H_i``, leaky-bucket
   update and exit (§6), top-p truncation ``q̃_i`` with support ``m_i``, ``x_i ~ q̃_i`` —
   the same per-position kernel as the windowed :func:`~.rounds.draft_step`;
2. one target pass over ``[token n − 1, x_0 … x_{G−1}]`` at positions ``n − 1 … n + G − 1``
   gives ``p_0 … p_G`` (causal: ``p_i`` reads the drafts ``< i`` only), then lossless
   verification of the ``L`` sent drafts (:func:`~.sampling.verify_one`): ``A`` accepted, one
   corrected/bonus token;
3. ``n ← n + A + 1``.  The caches need no rollback: the entries of rejected or unsent drafts sit
   at positions ``≥ n_new − 1`` (target) / ``≥ n_new − 2`` (draft), which the next round
   overwrites before any query can see them (:meth:`~.model.TransformerLM.decode` masks keys at
   positions above the query's).  Per round the target decodes ``G + 1`` tokens and the draft
   ``G + 1`` tokens in ``G`` passes, whatever the length of the text: the cost per token does not
   depend on the context length (``python -m gelato_jax.lm.bench --context-sweep``).

Both models must use rotary positions with a sliding window (``LMConfig(pos="rope")``): the text
seen by a query is the ``W`` most recent bytes per layer, so a sequence can run any number of
rounds with a fixed-size cache.  Keys: the round key ``k`` is split exactly as the windowed
:func:`~.rounds.lm_round` splits it for a batch of one (``kd, kv = split(k)``; draft position
``i`` uses ``split(fold_in(kd, 0), G)[i]``, verification ``fold_in(kv, 0)``), so a round from a
freshly prefilled state equals the windowed round on the same context
(``tests/test_lm_kv_cache.py``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .model import KVCache
from .sampling import bucket_update, entropy_nats, topp_truncate, verify_one

__all__ = ["SeqState", "CachedDraft", "CachedRoundOut", "cache_extra", "prefill", "draft_phase_cached",
           "verify_phase_cached", "lm_round_cached", "check_cached_pair"]


class SeqState(NamedTuple):
    """Decoding state of one sequence (a leading ``R`` axis when batched)."""

    draft_cache: KVCache
    target_cache: KVCache
    length: jax.Array  # () int32: n, number of tokens of the text so far
    last2: jax.Array  # (2,) int32: tokens at positions n − 2, n − 1


class CachedDraft(NamedTuple):
    """Drafting phase of a cached round; ``G = γ_max``."""

    state: SeqState  # with the draft cache advanced (target cache untouched)
    entropy: jax.Array  # (G,) H_i at paid positions i < P, else 0
    support: jax.Array  # (G,) int32 m_i at paid positions, else 0
    drafts: jax.Array  # (G,) int32 drafted tokens (first L valid, 0 elsewhere)
    tokens: jax.Array  # (G,) int32 every token fed to / sampled by the draft (x_0 … x_{G−1})
    qt: jax.Array  # (G, V) truncated q̃ the drafts were sampled from (0 where not sent)
    sent: jax.Array  # () int32 L
    passes: jax.Array  # () int32 P
    verify_key: jax.Array


class CachedRoundOut(NamedTuple):
    """Outputs of a cached round for one sequence (``G = γ_max``)."""

    entropy: jax.Array  # (G,)
    support: jax.Array  # (G,) int32
    drafts: jax.Array  # (G,) int32 (first L valid)
    sent: jax.Array  # () int32 L
    passes: jax.Array  # () int32 P
    accepted: jax.Array  # () int32 A
    tokens: jax.Array  # () int32 N = A + 1
    bits: jax.Array  # () float32 topp payload of the L sent drafts
    emitted: jax.Array  # (G + 1,) int32 produced tokens (first N valid, then −1)
    state: SeqState  # the state after the round


def cache_extra(gamma_max: int) -> int:
    """Extra ring-buffer slots beyond the window ``W``: the target's chunk of ``γ_max + 1`` tokens
    needs ``≥ γ_max`` (:class:`~.model.KVCache`); stale entries of the previous round reach at most
    ``γ_max`` positions past the next round's first query.  ``γ_max + 1`` covers both."""
    return int(gamma_max) + 1


def check_cached_pair(pair, gamma_max: int) -> None:
    """Raise ``ValueError`` unless both models of ``pair`` can decode with a KV cache."""
    for name, m in (("draft", pair.draft()), ("target", pair.target())):
        if m.cfg.pos != "rope":
            raise ValueError(f"KV-cached LM rounds need rotary, sliding-window models; the {name} model has "
                             f"pos={m.cfg.pos!r} (retrain with `gelato train-lm`)")
    if not isinstance(gamma_max, int) or gamma_max < 1:
        raise ValueError(f"gamma_max must be an integer >= 1, got {gamma_max!r}")


def prefill(pair, context, gamma_max: int, start: int = 0) -> SeqState:
    r"""State of one sequence after reading ``context (C,)`` (``C ≥ 2``) at positions
    ``start … start + C − 1``: the target caches positions ``< start + C − 1``, the draft
    ``< start + C − 2`` (the invariants of a round's start).  ``start > 0`` stands for a text that
    has already run ``start`` bytes (rotary attention depends on distances only, so this is the
    state of a long text whose last ``C`` bytes are ``context`` when ``C ≥ 2W``); the benchmark uses it
    to show that a round's cost does not depend on the text's length."""
    c = context.shape[-1]
    if c < 2:
        raise ValueError(f"context must hold at least 2 tokens, got {c}")
    context = context.astype(jnp.int32)
    extra = cache_extra(gamma_max)
    draft, target = pair.draft(), pair.target()
    pos = start + jnp.arange(c, dtype=jnp.int32)
    dc = draft.init_cache((), extra)
    tc = target.init_cache((), extra)
    step = extra + 1  # chunks of ≤ extra + 1 tokens never overwrite a key their own queries need
    for a in range(0, c - 1, step):
        b = min(a + step, c - 1)
        _, tc = target.decode(context[a:b], pos[a:b], tc)
        if a < c - 2:
            b2 = min(b, c - 2)
            _, dc = draft.decode(context[a:b2], pos[a:b2], dc)
    return SeqState(dc, tc, jnp.asarray(start + c, jnp.int32), context[c - 2:])


def _token_step(q, key, i, theta, halted, budget, H_th, Theta_th, exit_on, top_p):
    """Per-position kernel shared with the windowed :func:`~.rounds._draft_one`: entropy, bucket,
    top-p truncation and the sample."""
    h = entropy_nats(q)
    active = (~halted) & (i < budget)
    new_theta, overflow = bucket_update(theta, h, H_th, Theta_th)
    exits = overflow & exit_on
    send = active & ~exits
    qt, m = topp_truncate(q, top_p)
    x = jax.random.categorical(key, jnp.where(qt > 0, jnp.log(jnp.where(qt > 0, qt, 1.0)), -jnp.inf))
    x = x.astype(jnp.int32)
    theta = jnp.where(active, new_theta, theta)
    halted = halted | (active & exits) | (i + 1 >= budget)
    return x, h, m, qt, active, send, theta, halted


def draft_phase_cached(pair, state: SeqState, budget, key, H_th, Theta_th, exit_on, top_p,
                       gamma_max: int) -> CachedDraft:
    r"""Draft up to ``budget ≤ γ_max`` tokens for one sequence from its cache (traceable).

    ``gamma_max`` passes are always evaluated (static shapes); positions ``≥ budget`` or after an
    exit are neither paid nor sent.  ``key`` is the round key (split as in the module doc).
    """
    g = int(gamma_max)
    draft = pair.draft()
    kd, kv = jax.random.split(key)
    keys = jax.random.split(jax.random.fold_in(kd, 0), g)
    budget = jnp.asarray(budget, jnp.int32)
    n = state.length
    logits, dc = draft.decode(state.last2, jnp.stack([n - 2, n - 1]), state.draft_cache)
    q0 = jax.nn.softmax(logits[-1].astype(jnp.float32))
    zf = jnp.zeros((), jnp.float32)

    def body(carry, xs):
        q, dc, theta, halted, sent, passes = carry
        i, k = xs
        x, h, m, qt, active, send, theta, halted = _token_step(
            q, k, i, theta, halted, budget, H_th, Theta_th, exit_on, top_p)
        sent = sent + send.astype(jnp.int32)
        passes = passes + active.astype(jnp.int32)
        lg, dc = draft.decode(x[None], (n + i)[None], dc)  # x_i at position n + i → q_{i+1}
        q = jax.nn.softmax(lg[0].astype(jnp.float32))
        out = (jnp.where(active, h, 0.0), jnp.where(active, m, 0), jnp.where(send, x, 0), x,
               jnp.where(send, qt, 0.0))
        return (q, dc, theta, halted, sent, passes), out

    init = (q0, dc, zf, budget <= 0, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
    # the last pass's decode (x_{G−1} → q_G) is never used; scanning G − 1 decodes + a final
    # sampling step would save it, at the cost of a second code path; it is 1/(G+1) of the draft.
    (_, dc, _, _, sent, passes), (ent, sup, drafts, toks, qt) = jax.lax.scan(
        body, init, (jnp.arange(g, dtype=jnp.int32), keys))
    return CachedDraft(state._replace(draft_cache=dc), ent, sup, drafts, toks, qt, sent, passes, kv)


def verify_phase_cached(pair, d: CachedDraft, sent, passes, b_id, b_prob, gamma_max: int) -> CachedRoundOut:
    r"""Target pass from the cache and lossless verification of the first ``sent ≤ d.sent`` drafts,
    ``passes ≤ d.passes`` paid (as :func:`~.rounds.verify_phase`); advances the state."""
    g = int(gamma_max)
    st = d.state
    n = st.length
    sent = jnp.asarray(sent, jnp.int32)
    passes = jnp.asarray(passes, jnp.int32)
    pos = jnp.arange(g, dtype=jnp.int32)
    sent_mask = pos < sent
    paid_mask = pos < passes
    ent = jnp.where(paid_mask, d.entropy, 0.0)
    sup = jnp.where(paid_mask, d.support, 0)
    drafts = jnp.where(sent_mask, d.drafts, 0)
    feed = jnp.concatenate([st.last2[1:], drafts])
    logits, tc = pair.target().decode(feed, n - 1 + jnp.arange(g + 1, dtype=jnp.int32), st.target_cache)
    p = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    A, nxt = verify_one(jax.random.fold_in(d.verify_key, 0), p, d.qt, drafts, sent)
    j = jnp.arange(g + 1)
    drafts_ext = jnp.concatenate([drafts, jnp.zeros((1,), jnp.int32)])
    emitted = jnp.where(j < A, drafts_ext, jnp.where(j == A, nxt, -1))
    prev = jnp.where(A > 0, drafts_ext[jnp.maximum(A - 1, 0)], st.last2[1])
    new = SeqState(st.draft_cache, tc, n + A + 1, jnp.stack([prev, nxt]).astype(jnp.int32))
    bits = jnp.sum(jnp.where(sent_mask, b_id + sup * (b_id + b_prob), 0)).astype(jnp.float32)
    return CachedRoundOut(ent, sup, drafts, sent, passes, A, A + 1, bits, emitted, new)


def lm_round_cached(pair, state: SeqState, budget, key, *, H_th=1.5, Theta_th=1.0, exit_on=True, top_p=0.95,
                    gamma_max: int = 10, b_id=18.0, b_prob=16.0) -> CachedRoundOut:
    """One cached round of one sequence (traceable; ``jax.vmap`` it over sequences): the drafting
    phase with the in-scan exit, then verification of what it sent."""
    f32 = jnp.float32
    d = draft_phase_cached(pair, state, budget, key, jnp.asarray(H_th, f32), jnp.asarray(Theta_th, f32),
                           jnp.asarray(exit_on, bool), jnp.asarray(top_p, f32), gamma_max)
    return verify_phase_cached(pair, d, d.sent, d.passes, jnp.asarray(b_id, f32), jnp.asarray(b_prob, f32), gamma_max)
