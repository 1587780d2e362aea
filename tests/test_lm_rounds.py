"""LM-mode round invariants with small random-initialised models (docs/model.md §1, §3, §4, §6)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gelato_jax.lm.rounds import acceptance_pairs, draft_step_jit, lm_round
from gelato_jax.lm.sampling import DraftCarry, entropy_nats

C, G, R = 16, 4, 32


@pytest.fixture(scope="module")
def ctx():
    return jax.random.randint(jax.random.key(5), (R, C), 0, 256)


def _check(out, budget, ctx, b_id=18.0, b_prob=16.0):
    L, P, A, N = (np.asarray(x) for x in (out.sent, out.passes, out.accepted, out.tokens))
    assert np.all(L <= budget) and np.all(P <= budget)
    assert np.all((P == L) | (P == L + 1))
    assert np.all((A >= 0) & (A <= L)) and np.all(N == A + 1)
    sup = np.asarray(out.support)
    i = np.arange(G)[None]
    assert np.all((sup >= 1) == (i < P[:, None]))
    bits = np.where(i < L[:, None], b_id + sup * (b_id + b_prob), 0).sum(1)
    np.testing.assert_allclose(np.asarray(out.bits), bits, rtol=1e-6)
    em = np.asarray(out.emitted)
    j = np.arange(G + 1)[None]
    assert np.all((em >= 0) == (j < N[:, None]))
    dr = np.asarray(out.drafts)
    assert np.all(np.where(j[:, :G] < A[:, None], em[:, :G] == dr, True))
    full = np.concatenate([np.asarray(ctx), np.maximum(em, 0)], 1)
    for r in range(len(N)):
        np.testing.assert_array_equal(np.asarray(out.context)[r], full[r, N[r]:N[r] + C])


def test_lm_round_invariants_with_exit(pair, ctx):
    budget = np.arange(R) % (G + 1)
    probe = lm_round(pair, ctx, np.full(R, G), jax.random.key(0), exit=False, gamma_max=G)
    hmed = float(np.median(np.asarray(probe.entropy)))
    exit_positions = set()
    for s, (hth, tth) in enumerate([(1.5, 1.0), (hmed, 0.01), (hmed - 0.005, 0.01), (hmed + 0.01, 0.0)]):
        out = lm_round(pair, ctx, budget, jax.random.key(s), H_th=hth, Theta_th=tth, gamma_max=G, top_p=0.9)
        _check(out, budget, ctx)
        # leaky bucket recomputed from the returned entropies: the exit fires at the first overflow
        H = np.asarray(out.entropy)
        L, P = np.asarray(out.sent), np.asarray(out.passes)
        for r in range(R):
            theta, exit_at = 0.0, None
            for k in range(budget[r]):
                theta = max(0.0, theta + H[r, k] - hth)
                if theta > tth + 1e-5:
                    exit_at = k
                    break
            if exit_at is None:
                assert L[r] == P[r] == budget[r]
            else:
                assert P[r] == exit_at + 1 and L[r] == exit_at
                exit_positions.add(exit_at)
    assert {0, 1} <= exit_positions  # the thresholds exercised exits beyond the first pass


def test_lm_round_exit_off_and_zero_budget(pair, ctx):
    budget = np.full(R, G)
    budget[:4] = 0
    out = lm_round(pair, ctx, budget, jax.random.key(9), H_th=0.0, Theta_th=0.0, exit=False, gamma_max=G)
    _check(out, budget, ctx)
    np.testing.assert_array_equal(np.asarray(out.passes), budget)
    np.testing.assert_array_equal(np.asarray(out.sent), budget)
    assert np.all(np.asarray(out.tokens)[:4] == 1) and np.all(np.asarray(out.bits)[:4] == 0)
    # with exit on and zero thresholds every positive entropy exits at the first pass
    out = lm_round(pair, ctx, budget, jax.random.key(9), H_th=0.0, Theta_th=0.0, exit="bucket", gamma_max=G)
    assert np.all(np.asarray(out.passes)[4:] == 1) and np.all(np.asarray(out.sent) == 0)


def test_draft_entropy_matches_model(pair, ctx):
    budget = jnp.full((R,), G)
    carry = DraftCarry(jnp.concatenate([ctx, jnp.zeros((R, G), jnp.int32)], 1), jnp.zeros(R), budget <= 0,
                       jnp.zeros(R, jnp.int32), jnp.zeros(R, jnp.int32))
    keys = jax.random.split(jax.random.key(0), R)
    new, (h, m, x, qt) = draft_step_jit(pair, carry, keys, 0, budget, 1.5, 1.0, False, 1.0)
    q = jax.nn.softmax(pair.draft()(ctx)[:, -1])
    np.testing.assert_allclose(np.asarray(h), np.asarray(entropy_nats(q)), rtol=1e-4)
    np.testing.assert_array_equal(np.asarray(m), np.asarray(jnp.sum(q > 0, -1)))  # top_p = 1: full support
    np.testing.assert_array_equal(np.asarray(new.buf[:, C]), np.asarray(x))
    assert np.all(np.asarray(new.sent) == 1) and np.all(np.asarray(new.passes) == 1)


def test_lm_round_no_recompile_on_traced_args(pair, ctx):
    from gelato_jax.lm import rounds

    budget = np.full(R, 2)
    lm_round(pair, ctx, budget, jax.random.key(0), gamma_max=G)
    n = rounds._lm_round._cache_size()
    lm_round(pair, ctx, budget + 1, jax.random.key(1), H_th=0.3, Theta_th=2.0, exit=False, top_p=0.5, gamma_max=G)
    assert rounds._lm_round._cache_size() == n


def test_acceptance_pairs_counts(pair, ctx):
    out = lm_round(pair, ctx, np.full(R, G), jax.random.key(3), exit=False, gamma_max=G)
    e, a, m = acceptance_pairs(out)
    L, A = np.asarray(out.sent), np.asarray(out.accepted)
    assert a.sum() == A.sum()
    assert len(e) == np.minimum(A + 1, L).sum()


@pytest.mark.parametrize(
    "kw, name",
    [
        (dict(H_th=-0.1), "H_th"),
        (dict(Theta_th=-1.0), "Theta_th"),
        (dict(top_p=0.0), "top_p"),
        (dict(top_p=1.5), "top_p"),
        (dict(budget=np.full(R, G + 1)), "budget"),
        (dict(budget=np.full(R, -1)), "budget"),
        (dict(budget=np.full(R, 1.5)), "budget"),
        (dict(gamma_max=0), "gamma_max"),
        (dict(gamma_max=G + 1), "gamma_max"),
        (dict(exit="sometimes"), "exit"),
    ],
)
def test_lm_round_rejects_invalid(pair, ctx, kw, name):
    kw = dict(kw)
    budget = kw.pop("budget", np.full(R, 1))
    kw.setdefault("gamma_max", G)
    with pytest.raises(ValueError, match=name):
        lm_round(pair, ctx, budget, jax.random.key(0), **kw)


def test_lm_round_batch_independent_and_deterministic(pair, ctx):
    budget = np.full(R, G)
    a = lm_round(pair, ctx, budget, jax.random.key(4), gamma_max=G, exit=False)
    b = lm_round(pair, ctx[:8], budget[:8], jax.random.key(4), gamma_max=G, exit=False)
    c = lm_round(pair, ctx, budget, jax.random.key(4), gamma_max=G, exit=False)
    for f in ("drafts", "sent", "accepted", "emitted", "context"):
        np.testing.assert_array_equal(np.asarray(getattr(a, f))[:8], np.asarray(getattr(b, f)))
        np.testing.assert_array_equal(np.asarray(getattr(a, f)), np.asarray(getattr(c, f)))
    d = lm_round(pair, ctx, budget, jax.random.key(5), gamma_max=G, exit=False)
    assert not np.array_equal(np.asarray(a.drafts), np.asarray(d.drafts))


def test_lm_round_inside_scan(pair, ctx):
    """Usable from a jitted rollout: a lax.scan over rounds carrying the context."""

    @jax.jit
    def rollout(key, ctx):
        def body(c, k):
            o = lm_round(pair, c, jnp.full((R,), 3), k, H_th=1.0, Theta_th=0.5, gamma_max=G)
            return o.context, (o.tokens, o.passes)

        return jax.lax.scan(body, ctx, jax.random.split(key, 5))

    final, (n, p) = rollout(jax.random.key(0), ctx)
    assert n.shape == (5, R) and np.all(np.asarray(n) >= 1) and np.all(np.asarray(p) <= 3)
    assert final.shape == ctx.shape
