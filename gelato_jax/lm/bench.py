"""Timing of LM mode on this machine (docs/model.md §4): ``python -m gelato_jax.lm.bench``.

Times (after compilation, best of ``--repeat``) the vmapped draft step, the verification
(one target pass + speculative sampling) and a full :func:`~.rounds.lm_round`, at ``R``
sequences, and reports produced tokens per second of LM-mode rounds.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np


def _best(f, repeat):
    jax.block_until_ready(f())
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(f())
        ts.append(time.perf_counter() - t0)
    return min(ts)


def main(argv=None) -> int:
    from .rounds import LMPair, corpus_contexts, draft_round, draft_step_jit, lm_round
    from .sampling import DraftCarry, verify_one

    ap = argparse.ArgumentParser(prog="python -m gelato_jax.lm.bench")
    ap.add_argument("--sequences", type=int, default=64)
    ap.add_argument("--gamma-max", type=int, default=10)
    ap.add_argument("--context", type=int, default=96)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args(argv)
    R, G = a.sequences, a.gamma_max
    pair = LMPair.load(context_len=a.context)
    ctx = corpus_contexts(jax.random.key(0), R, a.context)
    budget = jnp.full((R,), G, jnp.int32)
    carry = DraftCarry(jnp.concatenate([ctx, jnp.zeros((R, G), jnp.int32)], 1), jnp.zeros(R), budget <= 0,
                       jnp.zeros(R, jnp.int32), jnp.zeros(R, jnp.int32))
    keys = jax.random.split(jax.random.key(1), R)
    t_step = _best(lambda: draft_step_jit(pair, carry, keys, 0, budget, 1.5, 1.0, True, 0.95), a.repeat)
    dr = jax.jit(lambda k: draft_round(pair, ctx, budget, k, 1.5, 1.0, False, 0.95, G))
    t_draft = _best(lambda: dr(jax.random.key(2)), a.repeat)
    c, (_, _, drafts, qt) = dr(jax.random.key(2))

    @jax.jit
    def verify(k):
        p = jax.nn.softmax(pair.target()(c.buf)[:, a.context - 1:], -1)
        return jax.vmap(verify_one)(jax.random.split(k, R), p, qt, drafts, c.sent)

    t_ver = _best(lambda: verify(jax.random.key(3)), a.repeat)
    outs = []
    t_round = _best(lambda: outs.append(lm_round(pair, ctx, np.full(R, G), jax.random.key(len(outs)),
                                                 gamma_max=G)) or outs[-1], a.repeat)
    n = float(np.mean([np.asarray(o.tokens).mean() for o in outs]))
    res = {"R": R, "gamma_max": G, "context": a.context, "draft_step_s": t_step, "draft_round_s": t_draft,
           "verify_s": t_ver, "lm_round_s": t_round, "mean_tokens_per_seq_round": n,
           "tokens_per_s": R * n / t_round, "device": str(jax.devices()[0])}
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
