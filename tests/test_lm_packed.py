"""Batched rounds that compute only the used positions (gelato_jax.lm.packed) against the per-sequence
KV-cached round (gelato_jax.lm.cached, itself tested against the windowed round and the full forward).

* prefill by one forward = ``vmap(cached.prefill)`` in every readable slot (lengths, last two tokens);
* over many rounds with budgets 0 … γ_max and fewer sent drafts than drafted (stale cache
  entries, sequences that skip drafting), the packed draft + verification phases give the same
  entropies (float32 summation order only), drafts, supports, acceptances, emitted tokens, payload
  bits and lengths as ``vmap`` of ``draft_phase_cached`` (no exit) + ``verify_phase_cached``, and
  caches that read the same next-token distributions;
* a sequence's results do not depend on the block size or on which sequences share its batch
  (entropies: to float32 rounding, the reduction over the vocabulary may follow the block's shape);
* the rollout does not depend on how its rounds are split into compiled scans.

Tiny untrained rotary pair (as tests/test_lm_kv_cache.py); tolerance as there.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gelato_jax.lm.cached import draft_phase_cached, prefill, verify_phase_cached
from gelato_jax.lm.model import LMConfig, TransformerLM
from gelato_jax.lm.packed import draft_packed, from_rows_layout, prefill_rows, verify_packed
from gelato_jax.lm.rounds import LMPair

C, G, W = 12, 4, 16
TOL = 2e-4
F32 = jnp.float32


@pytest.fixture(scope="module")
def rope_pair():
    cfg_d = LMConfig(n_layers=1, d_model=16, n_heads=2, max_len=32, pos="rope", window=W)
    cfg_t = LMConfig(n_layers=2, d_model=32, n_heads=2, max_len=32, pos="rope", window=W)
    return LMPair.from_models(TransformerLM(cfg_d, rngs=nnx.Rngs(0)), TransformerLM(cfg_t, rngs=nnx.Rngs(1)), C)


def _ctx(n, seed=0):
    return jax.random.randint(jax.random.key(seed), (n, C), 0, 256).astype(jnp.int32)


def _to_rows(st):
    from gelato_jax.lm.packed import to_rows_layout

    return st._replace(draft_cache=to_rows_layout(st.draft_cache), target_cache=to_rows_layout(st.target_cache))


@pytest.mark.parametrize("c_len", [C, 3 * W - 5])
def test_prefill_rows_equals_vmapped_prefill(rope_pair, c_len):
    """Every slot a later query can read (positions > c − 1 − W for the target, > c − 2 − W for the
    draft) holds what vmap(prefill) holds; the other slots are empty. Block sizes do not matter.
    A context longer than the window exercises the layers' restricted positions."""
    ctx = jax.random.randint(jax.random.key(3), (5, c_len), 0, 256).astype(jnp.int32)
    ref = _to_rows(jax.vmap(lambda c: prefill(rope_pair, c, G))(ctx))
    for block in (2, 64):
        got = jax.jit(lambda c: prefill_rows(rope_pair, c, G, block=block))(ctx)
        for a, b in ((ref.length, got.length), (ref.last2, got.last2)):
            np.testing.assert_array_equal(np.asarray(b), np.asarray(a))
        for name, n_fed in (("draft_cache", c_len - 2), ("target_cache", c_len - 1)):
            ca, cb = getattr(ref, name), getattr(got, name)
            pa, pb = np.asarray(ca.pos), np.asarray(cb.pos)
            kept = pb >= 0
            np.testing.assert_array_equal(pb[kept], pa[kept])
            assert sorted(pb[0][kept[0]]) == list(range(max(0, n_fed - W + 1), n_fed))
            for xa, xb in zip(ca.k + ca.v, cb.k + cb.v):
                xa, xb = np.swapaxes(np.asarray(xa), 1, 2), np.swapaxes(np.asarray(xb), 1, 2)  # (R, S, H, D)
                np.testing.assert_allclose(xb[kept], xa[kept], atol=TOL, rtol=0)


def _rounds(rope_pair, R, rounds, seed, block):
    """Both implementations side by side for ``rounds`` rounds from the same prefill."""
    ctx = _ctx(R, seed)
    st_ref = jax.vmap(lambda c: prefill(rope_pair, c, G))(ctx)
    st_new = prefill_rows(rope_pair, ctx, G)
    z, top_p = F32(0), F32(0.9)

    @jax.jit
    def ref(st, budget, sent, keys):
        d = jax.vmap(lambda s, b, k: draft_phase_cached(rope_pair, s, b, k, z, z, jnp.asarray(False), top_p, G))(
            st, budget, keys)
        return d.entropy, jax.vmap(lambda dd, s, p: verify_phase_cached(rope_pair, dd, s, p, F32(18), F32(16), G))(
            d, sent, jnp.minimum(sent + 1, d.passes))

    @jax.jit
    def new(st, budget, sent, keys):
        d = draft_packed(rope_pair, st, budget, keys, top_p, G, block=block)
        return d.entropy, verify_packed(rope_pair, d, sent, jnp.minimum(sent + 1, d.passes), F32(18), F32(16), G)

    outs = []
    for t in range(rounds):
        kb, ks, kk = jax.random.split(jax.random.key(100 + t), 3)
        budget = jax.random.randint(kb, (R,), 0, G + 1).astype(jnp.int32)
        sent = jnp.floor(jax.random.uniform(ks, (R,)) * (budget + 1)).astype(jnp.int32)  # 0 … budget
        keys = jax.random.split(kk, R)
        e_ref, o_ref = ref(st_ref, budget, sent, keys)
        e_new, o_new = new(st_new, budget, sent, keys)
        outs.append((budget, sent, e_ref, o_ref, e_new, o_new))
        st_ref, st_new = o_ref.state, o_new.state
    return outs, st_ref, st_new


def test_packed_rounds_equal_cached_rounds(rope_pair):
    R = 20
    outs, st_ref, st_new = _rounds(rope_pair, R, rounds=25, seed=1, block=8)
    rejected = skipped = 0
    for budget, sent, e_ref, o_ref, e_new, o_new in outs:
        np.testing.assert_allclose(np.asarray(e_new), np.asarray(e_ref), atol=TOL)
        np.testing.assert_allclose(np.asarray(o_new.entropy), np.asarray(o_ref.entropy), atol=TOL)
        for f in ("support", "drafts", "sent", "passes", "accepted", "tokens", "emitted", "bits"):
            np.testing.assert_array_equal(np.asarray(getattr(o_new, f)), np.asarray(getattr(o_ref, f)), err_msg=f)
        rejected += int(np.sum(np.asarray(o_ref.accepted) < np.asarray(sent)))
        skipped += int(np.sum(np.asarray(budget) == 0))
    assert rejected > 20 and skipped > 20  # stale entries and drafting-free rounds occurred
    np.testing.assert_array_equal(np.asarray(st_new.length), np.asarray(st_ref.length))
    assert np.asarray(st_new.length).min() > C + W + G + 1  # the 21-slot ring buffers wrapped
    np.testing.assert_array_equal(np.asarray(st_new.last2), np.asarray(st_ref.last2))
    # the caches read the same next-token distributions (the slots they hold may differ where the
    # reference wrote positions no query reads)
    draft, target = rope_pair.draft(), rope_pair.target()
    new_ref = st_new._replace(draft_cache=from_rows_layout(st_new.draft_cache),
                              target_cache=from_rows_layout(st_new.target_cache))

    @jax.jit
    def next_logits(st):
        def one(s):
            n = s.length
            lt, _ = target.decode(s.last2[1:], (n - 1)[None], s.target_cache)
            ld, _ = draft.decode(s.last2, jnp.stack([n - 2, n - 1]), s.draft_cache)
            return lt[-1], ld[-1]

        return jax.vmap(one)(st)

    for a, b in zip(next_logits(st_ref), next_logits(new_ref)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=TOL)


def test_packed_round_independent_of_block_and_companions(rope_pair):
    R = 12
    ctx = _ctx(R, 2)
    st = prefill_rows(rope_pair, ctx, G)
    budget = jnp.asarray(np.arange(R) % (G + 1), jnp.int32)
    sent = jnp.maximum(budget - 1, 0)
    keys = jax.random.split(jax.random.key(9), R)

    def run(st, budget, sent, keys, block):
        d = draft_packed(rope_pair, st, budget, keys, F32(0.9), G, block=block)
        return verify_packed(rope_pair, d, sent, d.passes, F32(18), F32(16), G)

    full = jax.jit(run, static_argnums=4)(st, budget, sent, keys, 128)
    small = jax.jit(run, static_argnums=4)(st, budget, sent, keys, 3)
    sub = np.asarray([7, 2, 11, 4])
    part = jax.jit(run, static_argnums=4)(jax.tree.map(lambda a: a[sub], st), budget[sub], sent[sub], keys[sub], 2)
    for g_ in (small, part):  # entropies: the reduction order over V may follow the block's shape
        e = np.asarray(full.entropy) if g_ is small else np.asarray(full.entropy)[sub]
        np.testing.assert_allclose(np.asarray(g_.entropy), e, rtol=1e-6, atol=0)
    for f in ("support", "drafts", "accepted", "emitted", "bits"):
        a = np.asarray(getattr(full, f))
        np.testing.assert_array_equal(np.asarray(getattr(small, f)), a, err_msg=f)
        np.testing.assert_array_equal(np.asarray(getattr(part, f)), a[sub], err_msg=f)


def test_rollout_independent_of_scan_segments(rope_pair):
    from gelato_jax.lm.simulate import calibrated_scenario, rollout_lm
    from gelato_jax.policies import Gelato

    scen = calibrated_scenario(gamma_max=G)
    a, ea = rollout_lm(scen, Gelato(), realizations=3, rounds=20, pair=rope_pair, seed=4, record_entropy=True)
    b, eb = rollout_lm(scen, Gelato(), realizations=3, rounds=20, pair=rope_pair, seed=4, record_entropy=True,
                       progress=True)  # a progress bar splits the 20 rounds into scans of 2
    for f in a._fields:
        np.testing.assert_array_equal(np.asarray(getattr(b, f)), np.asarray(getattr(a, f)), err_msg=f)
    np.testing.assert_array_equal(eb, ea)
