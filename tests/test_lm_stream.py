"""LM mode emits the target model's own sampling law (docs/model.md §4, §8.7), with real weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from gelato_jax.lm import train as train_mod
from gelato_jax.lm.rounds import LMPair, lm_round
from gelato_jax.lm.weights_io import load_pair

ALPHA = 1e-3  # level of each chi-square test (false-failure rate under fresh seeds)


@pytest.fixture(scope="module")
def models():
    return load_pair()


def _pearson(groups):
    """Pearson statistic and df over groups of (observed, expected) cells; cells with expected
    count < 5 are pooled per group; each group's total is conditioned on (df = cells − 1)."""
    stat, df = 0.0, 0
    for obs, exp in groups:
        big = exp >= 5
        o = np.append(obs[big], obs[~big].sum())
        e = np.append(exp[big], exp[~big].sum())
        keep = e > 0
        o, e = o[keep], e[keep]
        stat += float(((o - e) ** 2 / e).sum())
        df += len(o) - 1
    return stat, df


@pytest.mark.parametrize(
    "top_p, exit_on", [pytest.param(1.0, False, marks=pytest.mark.slow), (0.8, True)]
)
def test_lm_stream_follows_target_law(models, top_p, exit_on):
    """The first two emitted tokens of LM mode follow the target model's own sampling law.

    R copies of one context ``c`` run two rounds.  First token: ``t1 ~ p(· | c)``.  Second
    token: when the first draft was accepted (``N1 ≥ 2``) it comes from the same target pass,
    ``t2 ~ p(· | c, t1)``; otherwise from round 2, whose fixed window has slid by one byte,
    ``t2 ~ p(· | c[1:], t1)``.  Each law is checked by a chi-square test at level 1e-3
    (the second conditionally on ``(t1, N1 ≥ 2)``, expected counts ≥ 5, rest pooled).
    """
    draft, target = models
    C, G, R = 32, 4, 1500
    pair = LMPair.from_models(draft, target, C)
    _, va, _ = train_mod.load_corpus()
    ctx1 = jnp.asarray(va[1000:1000 + C].astype(np.int32))
    ctx = jnp.broadcast_to(ctx1, (R, C))
    budget = np.full(R, G)
    key = jax.random.key(11 if exit_on else 12)
    o1 = lm_round(pair, ctx, budget, jax.random.fold_in(key, 1), top_p=top_p, exit=exit_on, gamma_max=G)
    o2 = lm_round(pair, o1.context, budget, jax.random.fold_in(key, 2), top_p=top_p, exit=exit_on, gamma_max=G)
    e1, e2 = np.asarray(o1.emitted), np.asarray(o2.emitted)
    same = np.asarray(o1.tokens) >= 2
    t1 = e1[:, 0]
    t2 = np.where(same, e1[:, 1], e2[:, 0])

    def probs(seqs):
        return special.softmax(np.asarray(target(seqs)[:, -1], np.float64), axis=-1)

    p1 = probs(ctx1[None])[0]
    stat, df = _pearson([(np.bincount(t1, minlength=256).astype(float), p1 * R)])
    assert df >= 4 and stats.chi2.sf(stat, df) > ALPHA
    tok = jnp.arange(256)[:, None]
    p_full = probs(jnp.concatenate([jnp.broadcast_to(ctx1, (256, C)), tok], 1))
    p_win = probs(jnp.concatenate([jnp.broadcast_to(ctx1[1:], (256, C - 1)), tok], 1))
    groups = []
    for grp, pt in ((same, p_full), (~same, p_win)):
        for v in np.unique(t1[grp]):
            sel = grp & (t1 == v)
            groups.append((np.bincount(t2[sel], minlength=256).astype(float), pt[v] / pt[v].sum() * sel.sum()))
    stat, df = _pearson(groups)
    assert df >= 5 and stats.chi2.sf(stat, df) > ALPHA
    # the check has power: the draft is not the target, so drafts are rejected
    assert np.asarray(o1.accepted).mean() < G and same.any() and (~same).any()


def test_lm_stream_kv_cached_follows_target_law(models):
    """The KV-cached rounds (``gelato_jax.lm.cached``, the rollout's path) emit the target's law on
    the text itself: from one context ``c``, ``t1 ~ p(· | c)`` and ``t2 ~ p(· | c, t1)`` whether
    ``t2`` comes from round 1 (first draft accepted) or from round 2 (read from the caches after a
    rejection left stale draft entries) — no window slides.  Chi-square tests at level 1e-3 each."""
    from gelato_jax.lm.cached import lm_round_cached, prefill

    draft, target = models
    if draft.cfg.pos != "rope":
        pytest.skip("committed weights use learned positions (no KV cache)")
    C, G, R = 32, 4, 1500
    pair = LMPair.from_models(draft, target, C)
    _, va, _ = train_mod.load_corpus()
    ctx1 = jnp.asarray(va[1000:1000 + C].astype(np.int32))
    st = prefill(pair, ctx1, G)
    st = jax.tree.map(lambda a: jnp.broadcast_to(a, (R, *a.shape)), st)
    step = jax.jit(jax.vmap(lambda s, k: lm_round_cached(pair, s, jnp.int32(G), k, top_p=0.8, gamma_max=G)))
    key = jax.random.key(13)
    o1 = step(st, jax.random.split(jax.random.fold_in(key, 1), R))
    o2 = step(o1.state, jax.random.split(jax.random.fold_in(key, 2), R))
    e1, e2 = np.asarray(o1.emitted), np.asarray(o2.emitted)
    same = np.asarray(o1.tokens) >= 2
    t1 = e1[:, 0]
    t2 = np.where(same, e1[:, 1], e2[:, 0])

    def probs(seqs):
        return special.softmax(np.asarray(target(seqs)[:, -1], np.float64), axis=-1)

    p1 = probs(ctx1[None])[0]
    stat, df = _pearson([(np.bincount(t1, minlength=256).astype(float), p1 * R)])
    assert df >= 4 and stats.chi2.sf(stat, df) > ALPHA
    p_full = probs(jnp.concatenate([jnp.broadcast_to(ctx1, (256, C)), jnp.arange(256)[:, None]], 1))
    groups = []
    for v in np.unique(t1):
        sel = t1 == v
        groups.append((np.bincount(t2[sel], minlength=256).astype(float), p_full[v] / p_full[v].sum() * sel.sum()))
    stat, df = _pearson(groups)
    assert df >= 5 and stats.chi2.sf(stat, df) > ALPHA
    assert same.any() and (~same).any()  # both paths to t2 occur
