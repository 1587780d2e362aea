"""LM mode emits the target model's own sampling law (MODEL.md §4, §8.7), with real weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from gelato_jax.lm import train as train_mod
from gelato_jax.lm.rounds import LMPair, lm_round
from gelato_jax.lm.weights_io import load_pair

ALPHA = 1e-3  # level of each chi-square test (false-failure rate under fresh seeds)


@pytest.fixture(scope="module")
def models():
    return load_pair()


@pytest.mark.parametrize(
    "top_p, exit_on", [pytest.param(1.0, False, marks=pytest.mark.slow), (0.8, True)]
)
def test_lm_stream_follows_target_law(models, top_p, exit_on):
    """The first two emitted tokens of LM mode ~ the target model's own sampling law.

    R copies of one context run two rounds; the pair (t1, t2) is compared with
    p(t1 | ctx) p(t2 | ctx, t1) by chi-square (cells with expected count ≥ 5, rest pooled).
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
    t1 = e1[:, 0]
    t2 = np.where(np.asarray(o1.tokens) >= 2, e1[:, 1], e2[:, 0])
    p1 = np.asarray(jax.nn.softmax(target(ctx1[None])[0, -1]), np.float64)
    seqs = jnp.concatenate([jnp.broadcast_to(ctx1, (256, C)), jnp.arange(256)[:, None]], 1)
    p2 = np.asarray(jax.nn.softmax(target(seqs)[:, -1]), np.float64)
    joint = (p1[:, None] * p2).ravel()
    joint /= joint.sum()
    counts = np.bincount(t1 * 256 + t2, minlength=256 * 256).astype(np.float64)
    exp = joint * R
    big = exp >= 5
    assert big.sum() >= 5
    obs = np.append(counts[big], counts[~big].sum())
    ex = np.append(exp[big], exp[~big].sum())
    assert stats.chisquare(obs, ex * obs.sum() / ex.sum()).pvalue > ALPHA
    # the draft is not the target: the test would notice sampling from q instead of p
    assert np.asarray(o1.accepted).mean() < G
