"""KV-cached decoding and LM-mode rounds (gelato_jax.lm.model.decode, gelato_jax.lm.cached; docs/model.md §4).

Checked on tiny untrained rotary/sliding-window pairs (fast), float32 models:

* ``decode`` over chunks of any size computes the same logits as the full forward on the whole
  text, beyond the attention window (the ring buffer wraps several times);
* one cached round from a fresh prefill is the windowed round of ``lm_round`` on the same
  context (same keys: same entropies, drafts, acceptances, emitted tokens);
* after many cached rounds with rejections (stale cache entries), the caches still give the full
  forward's distributions on the text actually emitted (no rollback needed);
* the rollout's KV-cached path agrees with the per-round kernel and refuses learned positions.

Tolerances: the two computations differ only in float32 summation order; logits of these models
are O(1), so 2e-4 absolute is ~100 float32 ulps of accumulated error over ≤ 2 layers.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gelato_jax.lm.cached import draft_phase_cached, lm_round_cached, prefill, verify_phase_cached
from gelato_jax.lm.model import LMConfig, TransformerLM
from gelato_jax.lm.rounds import LMPair, lm_round

C, G, W = 12, 4, 16
TOL = 2e-4


@pytest.fixture(scope="module")
def rope_pair():
    cfg_d = LMConfig(n_layers=1, d_model=16, n_heads=2, max_len=32, pos="rope", window=W)
    cfg_t = LMConfig(n_layers=2, d_model=32, n_heads=2, max_len=32, pos="rope", window=W)
    return LMPair.from_models(TransformerLM(cfg_d, rngs=nnx.Rngs(0)), TransformerLM(cfg_t, rngs=nnx.Rngs(1)), C)


def test_decode_matches_full_forward_beyond_window():
    cfg = LMConfig(n_layers=2, d_model=32, n_heads=2, max_len=32, pos="rope", window=W)
    m = TransformerLM(cfg, rngs=nnx.Rngs(2))
    toks = jax.random.randint(jax.random.key(0), (3, 70), 0, 256).astype(jnp.int32)
    full = np.asarray(jax.jit(lambda t: m(t))(toks))
    dec = jax.jit(lambda t, p, c: m.decode(t, p, c))
    cache = m.init_cache((3,), extra=5)
    outs, p = [], 0
    for t in [6, 1, 1, 6, 6, 1, 6, 6, 6, 6, 1, 6, 6, 6, 6]:  # chunks ≤ extra + 1
        pos = jnp.broadcast_to(jnp.arange(p, p + t, dtype=jnp.int32), (3, t))
        lg, cache = dec(toks[:, p:p + t], pos, cache)
        outs.append(np.asarray(lg))
        p += t
    assert p == 70 and p > 3 * (W + 5)  # wrapped the ring buffer several times
    np.testing.assert_allclose(np.concatenate(outs, 1), full, atol=TOL, rtol=0)
    # the window is real: a 2-layer state at t depends on bytes t − 2(W − 1) … t, not on earlier ones
    fwd = jax.jit(lambda t: m(t)[:, -1])
    np.testing.assert_allclose(np.asarray(fwd(toks.at[:, :70 - 2 * W].set(0))), full[:, -1], atol=TOL, rtol=0)
    assert np.abs(np.asarray(fwd(toks.at[:, 70 - W].set(7))) - full[:, -1]).max() > 1e-3


def test_learned_positions_refuse_cache(pair):
    with pytest.raises(ValueError, match="rope"):
        pair.target().init_cache((1,), 4)


def _ctx(n, seed=0):
    return jax.random.randint(jax.random.key(seed), (n, C), 0, 256).astype(jnp.int32)


def test_first_cached_round_equals_windowed_round(rope_pair):
    from gelato_jax.lm.rounds import draft_phase, verify_phase

    R = 24
    ctx = _ctx(R)
    budget = jnp.asarray(np.arange(R) % (G + 1), jnp.int32)
    keys = jax.random.split(jax.random.key(5), R)
    f32 = jnp.float32
    H_th, Theta_th, top_p = f32(4.8), f32(0.3), f32(0.9)  # untrained models: H ≈ 5.0–5.5 nats

    @jax.jit
    def both(exit_on):
        def windowed(c, b, k):  # a batch of one windowed round (lm_round's two phases)
            d = draft_phase(rope_pair, c[None], b[None], k, H_th, Theta_th, exit_on, top_p, G)
            return jax.tree.map(lambda a: a[0], verify_phase(rope_pair, c[None], d, d.sent, d.passes, 18.0, 16.0, G))

        def cached(c, b, k):
            return lm_round_cached(rope_pair, prefill(rope_pair, c, G), b, k, H_th=H_th, Theta_th=Theta_th,
                                   exit_on=exit_on, top_p=top_p, gamma_max=G)

        return jax.vmap(windowed)(ctx, budget, keys), jax.vmap(cached)(ctx, budget, keys)

    sent = 0
    for exit_on in (True, False):
        w, got = both(jnp.asarray(exit_on))
        np.testing.assert_allclose(np.asarray(got.entropy), np.asarray(w.entropy), atol=TOL)
        for f in ("drafts", "sent", "passes", "accepted", "emitted", "support", "bits"):
            np.testing.assert_array_equal(np.asarray(getattr(got, f)), np.asarray(getattr(w, f)), err_msg=f)
        sent += int(np.asarray(w.sent).sum())
        if exit_on:  # non-vacuous: the exit fired before the budget in some rows
            assert np.any(np.asarray(w.passes) < np.asarray(budget))
    assert sent > R  # drafts were sent and verified


@pytest.mark.slow  # 116 s; the default suite keeps test_decode_matches_full_forward_beyond_window
def test_cache_after_many_rounds_equals_full_forward(rope_pair):
    """30 rounds (text grows ≈ 3× the window, rejections leave stale entries): the caches' next
    distributions equal the full forward on the emitted text."""
    R, rounds = 8, 30
    ctx = _ctx(R, 1)
    st = jax.vmap(lambda c: prefill(rope_pair, c, G))(ctx)
    step = jax.jit(jax.vmap(lambda s, k: lm_round_cached(rope_pair, s, jnp.int32(G), k, exit_on=False,
                                                         top_p=0.9, gamma_max=G)))
    text = [list(np.asarray(c)) for c in ctx]
    rejected = 0
    for t in range(rounds):
        out = step(st, jax.random.split(jax.random.key(t), R))  # one compile (same shapes every round)
        st = out.state
        e, n = np.asarray(out.emitted), np.asarray(out.tokens)
        rejected += int((np.asarray(out.accepted) < np.asarray(out.sent)).sum())
        for r in range(R):
            text[r].extend(e[r, :n[r]].tolist())
    lengths = np.asarray(st.length)
    assert all(len(text[r]) == lengths[r] for r in range(R)) and lengths.min() > 3 * W and rejected > 10
    draft, target = rope_pair.draft(), rope_pair.target()

    @jax.jit
    def next_logits(one):
        n = one.length
        lg_t, _ = target.decode(one.last2[1:], (n - 1)[None], one.target_cache)
        lg_d, _ = draft.decode(one.last2, jnp.stack([n - 2, n - 1]), one.draft_cache)
        return lg_t[-1], lg_d[-1]

    for r in range(R):
        full = jnp.asarray(text[r], jnp.int32)[None]
        lt, ld = next_logits(jax.tree.map(lambda a: a[r], st))
        np.testing.assert_allclose(np.asarray(lt), np.asarray(target(full)[0, -1]), atol=TOL)
        np.testing.assert_allclose(np.asarray(ld), np.asarray(draft(full)[0, -1]), atol=TOL)


@pytest.mark.slow  # 55 s; batch independence of the default (packed) path: test_lm_packed.py
def test_rollout_cached_path_runs_and_counts(rope_pair):
    from gelato_jax.lm.simulate import calibrated_scenario, rollout_lm, uses_kv_cache
    from gelato_jax.policies import Gelato

    assert uses_kv_cache(rope_pair)
    scen = calibrated_scenario(gamma_max=G)
    tr = rollout_lm(scen, Gelato(), realizations=6, rounds=5, pair=rope_pair, seed=3)
    a, s, p, n = (np.asarray(x) for x in (tr.accepted, tr.sent, tr.passes, tr.tokens))
    assert np.all(a <= s) and np.all(s <= p) and np.all(n == a + 1) and np.all(p <= G)
    # per realization, results do not depend on which others run with it
    tr2 = rollout_lm(scen, Gelato(), indices=[4, 1], rounds=5, pair=rope_pair, seed=3)
    np.testing.assert_array_equal(np.asarray(tr2.tokens), n[[4, 1]])
    np.testing.assert_array_equal(np.asarray(tr2.energy), np.asarray(tr.energy)[[4, 1]])
    # the windowed path remains selectable and differs only from the second round on
    tw = rollout_lm(scen, Gelato(), realizations=6, rounds=5, pair=rope_pair, seed=3, kv_cache=False)
    np.testing.assert_array_equal(np.asarray(tw.sent)[:, 0], s[:, 0])
    np.testing.assert_array_equal(np.asarray(tw.accepted)[:, 0], a[:, 0])
