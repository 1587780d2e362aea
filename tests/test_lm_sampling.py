"""Losslessness of speculative sampling with top-p truncation (docs/model.md §4, §8.7).

Sampling tests use fixed seeds; each chi-square test is declared at level 1e-3 (the false-failure
rate it would have under fresh seeds), binomial checks use 99.9 % Clopper–Pearson intervals.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from gelato_jax.lm.sampling import (
    bucket_update,
    entropy_nats,
    race_sample,
    topp_truncate,
    verification_law,
    verify_one,
)

ALPHA = 1e-3


def _rand_dist(rng, v, zeros=0):
    w = rng.gamma(0.5, size=v)
    if zeros:
        w[rng.choice(v, zeros, replace=False)] = 0.0
    return w / w.sum()


def test_topp_truncate_minimal_set():
    rng = np.random.default_rng(0)
    for trial in range(50):
        p = _rand_dist(rng, 12, zeros=trial % 3).astype(np.float32)
        top_p = float(rng.uniform(0.05, 1.0))
        qt, m = topp_truncate(jnp.asarray(p), top_p)
        qt = np.asarray(qt)
        kept = qt > 0
        assert int(m) == kept.sum() >= 1
        assert p[kept].sum() >= top_p - 1e-6 or kept.sum() == (p > 0).sum()
        # minimal: dropping the least likely kept token falls below top_p
        assert p[kept].sum() - p[kept].min() < top_p + 1e-6
        # kept tokens are the most likely ones, renormalised
        assert p[kept].min() >= p[~kept].max(initial=0.0)
        np.testing.assert_allclose(qt[kept], p[kept] / p[kept].sum(), rtol=1e-5)
    qt, m = topp_truncate(jnp.asarray([0.5, 0.0, 0.5]), 1.0)
    assert int(m) == 2 and float(qt[1]) == 0.0


def test_entropy_nats_matches_definition():
    p = jnp.asarray([0.5, 0.25, 0.25, 0.0])
    np.testing.assert_allclose(float(entropy_nats(p)), 1.5 * np.log(2), rtol=1e-6)


def test_bucket_update_leaky_bucket():
    H = [2.0, 0.5, 2.5, 1.6, 0.1]
    theta, seq = 0.0, []
    for h in H:
        theta, ex = bucket_update(theta, h, 1.5, 1.0)
        seq.append((float(theta), bool(ex)))
    # Θ: 0.5, 0 (clamped), 1.0 (not > 1), 1.1 (exit), 0
    np.testing.assert_allclose([s[0] for s in seq], [0.5, 0.0, 1.0, 1.1, 0.0], atol=1e-6)
    assert [s[1] for s in seq] == [False, False, False, True, False]


@pytest.mark.parametrize("top_p", [pytest.param(1.0, marks=pytest.mark.slow), 0.9, pytest.param(0.5, marks=pytest.mark.slow)])
def test_verification_law_equals_target_exactly(top_p):
    """Enumeration: for random p, q the law of the first emitted token equals p."""
    rng = np.random.default_rng(1)
    for trial in range(200):
        v = int(rng.integers(2, 9))
        p = _rand_dist(rng, v, zeros=int(rng.integers(0, v - 1)))
        q = _rand_dist(rng, v, zeros=int(rng.integers(0, v - 1)))
        qt, _ = topp_truncate(jnp.asarray(q), top_p)
        law = np.asarray(verification_law(jnp.asarray(p), qt))
        np.testing.assert_allclose(law, p, atol=1e-6)


def test_verification_law_not_target_without_residual():
    """The check has power: dropping the residual term breaks losslessness."""
    p = jnp.asarray([0.7, 0.2, 0.1])
    q = jnp.asarray([0.1, 0.2, 0.7])
    a = jnp.minimum(1.0, p / q)
    assert not np.allclose(np.asarray(q * a / jnp.sum(q * a)), np.asarray(p), atol=1e-2)


def test_race_sample_law_and_zero_weights():
    w = jnp.asarray([0.0, 3.0, 1.0, 0.0, 6.0])
    keys = jax.random.split(jax.random.key(2), 20000)
    x = np.asarray(jax.vmap(race_sample, in_axes=(0, None))(keys, w))
    counts = np.bincount(x, minlength=5)
    assert counts[0] == counts[3] == 0
    exp = np.asarray(w)[[1, 2, 4]] / 10.0 * len(x)
    assert stats.chisquare(counts[[1, 2, 4]], exp).pvalue > ALPHA


def _sample_verify(p_rows, q_rows, n, seed, n_sent):
    """Draw drafts from q̃ rows (independent positions) and verify n times."""
    g, v = q_rows.shape
    k1, k2 = jax.random.split(jax.random.key(seed))
    dk = jax.random.split(k1, (n, g))
    logq = jnp.where(q_rows > 0, jnp.log(jnp.where(q_rows > 0, q_rows, 1.0)), -jnp.inf)
    drafts = jax.vmap(jax.vmap(jax.random.categorical))(dk, jnp.broadcast_to(logq, (n, g, v))).astype(jnp.int32)
    vk = jax.random.split(k2, n)
    A, nxt = jax.vmap(verify_one, in_axes=(0, None, None, 0, None))(vk, p_rows, q_rows, drafts, n_sent)
    first = jnp.where(A > 0, drafts[:, 0], nxt)
    return np.asarray(A), np.asarray(nxt), np.asarray(first), np.asarray(drafts)


@pytest.mark.parametrize("top_p", [1.0, 0.8])
def test_verify_one_first_token_law_chisquare(top_p):
    """Sampling test of the implementation: first emitted token ~ p_0 (chi-square, level 1e-3)."""
    rng = np.random.default_rng(3)
    v, g, n = 6, 3, 40000
    p = jnp.asarray(np.stack([_rand_dist(rng, v, zeros=1) for _ in range(g + 1)]), jnp.float32)
    q = jnp.stack([topp_truncate(jnp.asarray(_rand_dist(rng, v), jnp.float32), top_p)[0] for _ in range(g)])
    A, nxt, first, _ = _sample_verify(p, q, n, seed=4, n_sent=g)
    counts = np.bincount(first, minlength=v)
    p0 = np.asarray(p[0], np.float64)
    assert counts[p0 == 0].sum() == 0
    pos = p0 > 0
    assert stats.chisquare(counts[pos], p0[pos] / p0[pos].sum() * n).pvalue > ALPHA
    # P(A >= 1) = Σ_x min(p0, q̃0): 99.9 % Clopper–Pearson interval
    expected = float(np.minimum(p0, np.asarray(q[0], np.float64)).sum())
    ci = stats.binomtest(int((A >= 1).sum()), n).proportion_ci(0.999)
    assert ci.low <= expected <= ci.high


def test_verify_one_bonus_token_from_p_when_all_accepted():
    """p = q̃ on every row: all L drafts accepted, bonus token drawn from p_L."""
    rng = np.random.default_rng(5)
    v, g, n = 5, 2, 20000
    rows = np.stack([_rand_dist(rng, v) for _ in range(g + 1)]).astype(np.float32)
    p = jnp.asarray(rows)
    q = jnp.asarray(rows[:g])
    A, nxt, _, _ = _sample_verify(p, q, n, seed=6, n_sent=g)
    assert np.all(A == g)
    counts = np.bincount(nxt, minlength=v)
    pg = rows[g].astype(np.float64)
    assert stats.chisquare(counts, pg / pg.sum() * n).pvalue > ALPHA


def test_verify_one_respects_n_sent():
    rng = np.random.default_rng(7)
    v, g = 5, 4
    rows = np.stack([_rand_dist(rng, v) for _ in range(g + 1)]).astype(np.float32)
    for n_sent in range(g + 1):
        A, nxt, _, _ = _sample_verify(jnp.asarray(rows), jnp.asarray(rows[:g]), 200, seed=n_sent, n_sent=n_sent)
        assert np.all(A == n_sent)  # p = q̃: every sent draft is accepted, none beyond L


def test_topp_bisection_equals_sort_reference():
    """The sort-free top-p rule keeps exactly the sort's set on random, sparse and tied
    distributions, in float32 and float64.  Masses are summed in different orders, so a token whose
    mass before it equals ``top_p`` exactly may go either way (e.g. 8 × 0.1 + 20 × 0.005 = 0.9):
    the tied row here avoids such exact boundaries."""
    from gelato_jax.lm.sampling import topp_truncate_sort

    rng = np.random.default_rng(5)
    rows = [_rand_dist(rng, 256, zeros=z) for z in (0, 5, 200) for _ in range(20)]
    rows += [np.full(256, 1 / 256), np.r_[np.full(8, 0.09), np.full(40, 0.007), np.zeros(208)],
             np.r_[1.0, np.zeros(255)], np.r_[0.5, 0.5, np.zeros(254)]]
    for dtype in (jnp.float32, jnp.float64):
        q = jnp.asarray(np.stack(rows), dtype)
        for top_p in (0.05, 0.5, 0.9, 0.95, 1.0):
            a, ma = jax.vmap(lambda r: topp_truncate(r, top_p))(q)
            b, mb = jax.vmap(lambda r: topp_truncate_sort(r, top_p))(q)
            np.testing.assert_array_equal(np.asarray(ma), np.asarray(mb))
            np.testing.assert_array_equal(np.asarray(a) > 0, np.asarray(b) > 0)


def test_sample_from_follows_weights():
    """Inverse-CDF sampling: chi-square goodness of fit at level 1e-3 (the false-failure rate),
    zero-weight tokens never drawn."""
    from scipy import stats

    from gelato_jax.lm.sampling import sample_from

    w = jnp.asarray([0.0, 0.1, 0.0, 0.4, 0.25, 0.25, 0.0], jnp.float32)
    n = 20000
    x = np.asarray(jax.vmap(lambda k: sample_from(k, w))(jax.random.split(jax.random.key(3), n)))
    counts = np.bincount(x, minlength=7)
    assert counts[[0, 2, 6]].sum() == 0
    nz = np.asarray(w) > 0
    assert stats.chisquare(counts[nz], n * np.asarray(w)[nz] / float(w.sum())).pvalue > 1e-3
