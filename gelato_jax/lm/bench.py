"""Timing of LM mode on this machine (MODEL.md §4): ``python -m gelato_jax.lm.bench``.

Default: times (after compilation, best of ``--repeat``) the vmapped windowed draft step, the
verification (one target pass + speculative sampling) and a full windowed
:func:`~.rounds.lm_round` at ``R`` sequences (the pre-KV-cache path, kept for learned-position
models).

``--context-sweep``: the draft round's cost per drafted token, KV-cached (:mod:`.cached`, and the
rollout's batched :mod:`.packed` path) at text lengths ``n`` = 96 … 16,384 bytes, and windowed at
context windows ``C`` = 32, 64, 96 — the cached costs do not depend on ``n`` (fixed-size ring
buffers), the windowed one grows with ``C``.

``--rollout``: ``simulate_lm`` at ``--sequences`` realizations × ``--rounds`` rounds twice in one
process: the first call includes compilation, the second is warm; wall and CPU seconds of both,
and realization-rounds per second of the warm one (``gelato simulate --tokens lm`` runs the same
code).
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


def _timed(f):
    t0, c0 = time.perf_counter(), time.process_time()
    out = f()
    return out, time.perf_counter() - t0, time.process_time() - c0


def context_sweep(pair, R: int, G: int, repeat: int) -> dict:
    """Draft-round seconds per drafted token: cached at several text lengths, windowed at several
    window lengths (same models, ``R`` sequences, ``G`` positions, no exit)."""
    from .cached import draft_phase_cached, prefill
    from .rounds import LMPair, corpus_contexts, draft_round

    z = jnp.float32(0)
    keys = jax.random.split(jax.random.key(1), R)
    out = {"cached_s_per_token": {}, "windowed_s_per_token": {}}
    ctx = corpus_contexts(jax.random.key(0), R, 96)
    dr = jax.jit(jax.vmap(lambda s, k: draft_phase_cached(pair, s, jnp.int32(G), k, z, z, jnp.asarray(False),
                                                          jnp.float32(0.95), G)))
    from .packed import draft_packed, to_rows_layout

    out["packed_s_per_token"] = {}
    budget = jnp.full((R,), G, jnp.int32)
    dp = jax.jit(lambda s, k: draft_packed(pair, s, budget, k, jnp.float32(0.95), G).entropy)
    for n in (96, 1024, 16384):
        st = jax.jit(jax.vmap(lambda c: prefill(pair, c, G, start=n - 96)))(ctx)
        out["cached_s_per_token"][n] = _best(lambda: dr(st, keys), repeat) / (R * G)
        sp = st._replace(draft_cache=to_rows_layout(st.draft_cache), target_cache=to_rows_layout(st.target_cache))
        out["packed_s_per_token"][n] = _best(lambda: dp(sp, keys), repeat) / (R * G)
    for c in (32, 64, 96):
        p = LMPair(pair.draft_graph, pair.draft_state, pair.target_graph, pair.target_state, c, pair.max_len)
        budget = jnp.full((R,), G, jnp.int32)
        f = jax.jit(lambda k, p=p, c=c: draft_round(p, ctx[:, -c:], budget, k, 1.5, 1.0, False, 0.95, G))
        out["windowed_s_per_token"][c] = _best(lambda: f(jax.random.key(2)), repeat) / (R * G)
    return out


def rollout(R: int, rounds: int, policy: str = "gelato") -> dict:
    from ..policies import Gelato
    from .simulate import calibrated_scenario, simulate_lm

    scen = calibrated_scenario()
    res = {}
    for name in ("first (incl. compile)", "warm"):
        r, wall, cpu = _timed(lambda: simulate_lm(scen, Gelato(), realizations=R, rounds=rounds, seed=0))
        res[name] = {"wall_s": wall, "cpu_s": cpu, "realization_rounds_per_s": R * rounds / wall,
                     "mean_tokens_per_round": float(np.mean(r.tokens))}
    res["compile_s_estimate"] = res["first (incl. compile)"]["wall_s"] - res["warm"]["wall_s"]
    return res


def main(argv=None) -> int:
    from .rounds import LMPair, corpus_contexts, draft_round, draft_step_jit, lm_round
    from .sampling import DraftCarry, verify_one

    ap = argparse.ArgumentParser(prog="python -m gelato_jax.lm.bench")
    ap.add_argument("--sequences", type=int, default=64)
    ap.add_argument("--gamma-max", type=int, default=10)
    ap.add_argument("--context", type=int, default=96)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=50, help="--rollout: rounds per realization")
    ap.add_argument("--context-sweep", action="store_true", help="cached vs windowed draft cost per token")
    ap.add_argument("--rollout", action="store_true", help="simulate_lm twice (with and without compilation)")
    a = ap.parse_args(argv)
    R, G = a.sequences, a.gamma_max
    info = {"R": R, "gamma_max": G, "device": str(jax.devices()[0])}
    if a.rollout:
        print(json.dumps({**info, "rounds": a.rounds, **rollout(R, a.rounds)}, indent=2))
        return 0
    pair = LMPair.load(context_len=a.context)
    if a.context_sweep:
        print(json.dumps({**info, **context_sweep(pair, R, G, a.repeat)}, indent=2))
        return 0
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
    res = {**info, "context": a.context, "draft_step_s": t_step, "draft_round_s": t_draft,
           "verify_s": t_ver, "lm_round_s": t_round, "mean_tokens_per_seq_round": n,
           "tokens_per_s": R * n / t_round}
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
