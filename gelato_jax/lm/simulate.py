r"""LM-mode rollout: the surrogate's controller, costs, channel and queue with real tokens (docs/model.md §1, §4).

Each round of each realization ``r``:

1. exogenous channel gain ``h_t`` and energy arrival ``a_t`` — drawn by the surrogate simulator's
   own ``_draw_round`` from the same per-realization keys ``fold_in(key(seed), r)``, so LM mode
   and ``gelato_jax.simulate`` see the *same* channel and arrivals for the same seed (common
   random numbers; the surrogate's entropy/acceptance draws are discarded);
2. rates, outage and the policy's budget ``γ̃_t`` (0 in outage): ``simulator.round_decision``;
3. one LM round on the realization's own text — KV-cached (:mod:`.cached`, the default for the
   committed rotary/sliding-window pair: each sequence keeps its caches across rounds, the
   models see the whole text through their attention window; computed by :mod:`.packed`, which
   evaluates only the draft passes and target tokens the round uses, with every round of a chunk
   in one jitted ``lax.scan``) or windowed
   (:func:`~.rounds.lm_round`'s two phases on the last ``context_len`` bytes; learned-position
   models, ``kv_cache=False``): the draft model drafts all ``γ̃_t`` budgeted positions (entropies ``H_1..H_γ̃``);
   the policy's *own* inner loop ``policy.draft(scenario, aux, state, γ̃_t, H, obs)`` — the very
   function the surrogate rollout calls — gives ``(L, P)`` from those entropies (zero-padded to
   ``γ_max``), the round's ``obs`` (queue, rates, ``after_reject``) and the policy state (e.g.
   AdaEDL's ``λ``); lossless verification by the target model of the first ``L`` drafts →
   accepted ``A``, ``N = A + 1`` (``γ̃ = 0``: the edge decodes one token itself, ``N = 1``).
   Every supported inner loop is causal (the decision at position ``i`` reads ``H_1..H_i`` only;
   :func:`lm_inner_loop`), so this is the round in which the device stops drafting at ``P``: the
   positions after ``P`` are computed by the simulator only — not paid, not sent, not verified,
   not in the payload, so they cost no modelled latency or energy (and no simulation time either:
   the drafting scan has static shapes and evaluates all ``γ_max`` positions in any case);
4. uplink bits: ``topp`` payload → the measured top-p support of the sent drafts,
   ``Σ_{i<L} b_id + m_i (b_id + b_prob)``; ``full``/``scalar`` → ``costs.uplink_bits``'s per-token
   constants; downlink, latency, energy: ``simulator.round_costs``;
5. policy state update and ``Z_{t+1} = max(Z_t + E_t − a_t, 0)``: ``simulator.round_settle``.

Randomness: the LM key of round ``t`` of realization ``r`` is ``fold_in(fold_in(k_r, TAG), t)``
with ``k_r = fold_in(key(seed), r)`` (and the starting context is drawn from
``fold_in(k_r, TAG + 1)``), so a realization's result does not depend on which or how many
realizations run together.

The policy's proxy uses the scenario's surrogate constants (``a0, a1, k_H, theta_H, c_p``); the
companion scenario is :func:`calibrated_scenario` (fitted from LM mode by ``gelato calibrate``).
Top-p: the draft samples from ``q̃`` truncated to mass ``top_p`` (default 0.95) under the
``topp`` payload, and from the full ``q`` (``top_p = 1``) under ``full``/``scalar``, where the
device sends (or verification uses) the whole draft probability.

Policies (:func:`lm_inner_loop`): every lossless policy whose inner loop is one of the causal
rules ``none`` (the ``Policy`` default, ``StaticSD``, ``DSSD``, ``Oracle``, ``exit="none"``),
``bucket`` (``Gelato``/its ablations, ``ExitOnly``), ``marginal`` (``Gelato(exit="marginal")``,
``GreedyThroughput`` with ``Z ≡ 0``) or ``adaedl`` (``AdaEDL``, ``λ`` adapted by its
``update_state`` through ``round_settle``). Payload bits inside ``exit="marginal"``'s rule are the
scenario's *prediction* ``b(H)`` (``m(H)`` of the topp law, ``costs.token_bits``), as in the
surrogate: the rule is the device's forecast of the round's utility; the round is then charged
the measured top-p support (step 4). UHLM (skips verification: lossy) and policies with any other
``draft`` override raise ``ValueError``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import costs
from ..channel import in_outage
from ..policies.base import Policy
from ..scenario import Scenario, read_toml
from ..engine import check_positive_int, entropy_table, prepare
from ..simulator import (
    SimResult,
    Trajectory,
    _draw_round,
    _init_realization,
    initial_carry,
    round_costs,
    round_decision,
    round_settle,
)
from .cached import check_cached_pair
from .packed import draft_packed, prefill_rows, verify_packed
from .rounds import DraftOut, LMPair, draft_phase, validate_round_args, verify_phase

__all__ = [
    "CALIBRATION_PATH",
    "DEFAULT_TOP_P",
    "LM_INNER_LOOPS",
    "calibrated_scenario",
    "lm_inner_loop",
    "rollout_lm",
    "simulate_lm",
    "summarize",
    "uses_kv_cache",
]

CALIBRATION_PATH = Path(__file__).with_name("calibration.toml")
DEFAULT_TOP_P = 0.95
_TAG = 0x4C4D0000  # LM keys: fold_in(k_r, _TAG) per round, fold_in(k_r, _TAG + 1) for the context


# ----------------------------------------------------------------------------- scenario
def calibrated_scenario(path: str | Path | None = None, **overrides) -> Scenario:
    """The default ``Scenario`` with the LM-calibrated token constants (``a0, a1, k_H, theta_H,
    c_p`` from the ``[scenario]`` table of ``path``, default :data:`CALIBRATION_PATH`, the
    committed output of ``gelato calibrate``), ``V_vocab = 256`` (the byte-level LM's vocabulary,
    so the ``full``/``scalar`` payloads and the cap of ``m(H)`` match the LM), then ``overrides``.

    To re-calibrate: ``gelato calibrate --out DIR`` and pass ``DIR/calibration.toml``.
    """
    path = Path(path) if path is not None else CALIBRATION_PATH
    if not path.is_file():
        raise ValueError(
            f"calibration file {str(path)!r} does not exist; produce one with `gelato calibrate --out DIR` "
            "and pass DIR/calibration.toml")
    data = read_toml(path)
    table = data.get("scenario", data)
    if not isinstance(table, dict):
        raise ValueError(f"{path}: [scenario] must be a table")
    values: dict[str, Any] = {"V_vocab": 256.0}
    values.update({k: v for k, v in table.items() if not isinstance(v, dict)})
    values.update(overrides)
    return Scenario.from_dict(values)


# ----------------------------------------------------------------------------- policy → LM inner loop
LM_INNER_LOOPS = ("none", "bucket", "marginal", "adaedl")


def lm_inner_loop(policy: Policy) -> str:
    """Name of ``policy``'s inner loop if LM mode can run it, one of :data:`LM_INNER_LOOPS`.

    LM mode evaluates ``policy.draft`` itself on the entropies the draft model produced for all
    budgeted positions (:mod:`.simulate` step 3). That is the round of a device that stops at the
    rule's exit only if the rule is *causal* — whether position ``i`` is sent and drafting goes on
    depends on ``H_1..H_i`` (and on the round's observation and policy state) only. This holds for
    the four rules listed here (``early_exit.no_exit``, ``leaky_bucket_exit``, ``marginal_exit``:
    cumulative products/sums over ``l ≤ i`` and a first-stop scan; ``adaedl_exit``: a per-position
    test), and is checked on the LM's own rounds in ``tests/test_lm_inner_loops.py``. The rule is
    the policy's declaration ``Policy.inner_loop()``; a ``draft`` that declares none (``None``: a
    custom rule) is refused because its causality is unknown.

    Raises:
      ValueError: the policy skips verification (UHLM: lossy) or its inner loop is not one of
        the above.
    """
    name = type(policy).__name__
    if policy.skip_verification is not None:
        raise ValueError(f"policy {name} skips verification (lossy); LM mode supports lossless policies only")
    kind = policy.inner_loop()
    if kind in LM_INNER_LOOPS:
        return kind
    if kind is not None:
        raise ValueError(f"policy {name}: its inner loop {kind!r} has no LM-mode counterpart; LM mode implements "
                         f"{list(LM_INNER_LOOPS)}")
    raise ValueError(
        f"policy {name}: its inner loop ({name}.draft) is not one LM mode knows to be causal; LM mode runs "
        f"the inner loops {list(LM_INNER_LOOPS)} (Gelato, its ablations, ExitOnly, AdaEDL, StaticSD, DSSD, Oracle)")


# ----------------------------------------------------------------------------- one round, all realizations
@functools.lru_cache(maxsize=1)
def _validation_corpus() -> np.ndarray:
    from .train import load_corpus

    return load_corpus()[1]


def _initial_contexts(root, indices, context_len: int):
    """Per-realization starting windows of the validation corpus (``fold_in(k_r, TAG + 1)``)."""
    data = _validation_corpus()
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.fold_in(root, i), _TAG + 1))(jnp.asarray(indices))
    starts = np.asarray(jax.vmap(lambda k: jax.random.randint(k, (), 0, len(data) - context_len))(keys))
    return jnp.asarray(data[starts[:, None] + np.arange(context_len)[None]].astype(np.int32))


# Three jitted pieces per round: the policy-dependent halves are cheap to compile; the LM kernel
# (the expensive compile) depends only on the models, R and γ_max, so every policy shares it.
@functools.partial(jax.jit, static_argnames=("dtype",))
def _init(scenario, policy, root, indices, table, *, dtype):
    aux = policy.precompute(scenario)

    def one(index):
        key_r, fading = _init_realization(scenario, root, index, dtype, table)
        carry = initial_carry(scenario, policy, aux, dtype)
        return key_r, fading, carry

    return aux, jax.vmap(one)(indices)


@functools.partial(jax.jit, static_argnames=("dtype",))
def _before(scenario, policy, aux, key_r, fading, carry, t, *, dtype):
    """Channel/energy draws (the surrogate's, same keys), rates, outage and budgets."""

    def one(key_r, fading, carry):
        draws, fading = _draw_round(scenario, key_r, fading, t, ar=False, dtype=dtype)
        obs, budget = round_decision(scenario, policy, aux, carry, draws[0])
        return fading, draws[1], obs, budget

    return jax.vmap(one)(key_r, fading, carry)


@functools.partial(jax.jit, static_argnames=("gamma_max",))
def _lm_draft(pair, root, indices, ctx, budget, t, top_p, *, gamma_max):
    """Drafting phase per realization (all budgeted positions, no exit), with the round's key
    ``fold_in(fold_in(k_r, TAG), t)`` split as :func:`~.rounds.lm_round` splits it."""
    zero = jnp.zeros((), jnp.float32)

    def one(index, ctx_r, budget_r):
        k = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(root, index), _TAG), t)
        d = draft_phase(pair, ctx_r[None], budget_r[None], k, zero, zero, jnp.asarray(False), top_p, gamma_max)
        return d._replace(**{f: getattr(d, f)[0] for f in DraftOut._fields if f != "verify_key"})

    return jax.vmap(one)(indices, ctx, budget)


@functools.partial(jax.jit, static_argnames=("dtype",))
def _decide(scenario, policy, aux, carry, obs, budget, entropy, *, dtype):
    """The policy's inner loop on the observed entropies: ``(sent, passes)`` per realization."""

    def one(carry, obs, budget, entropy):
        sent, passes = policy.draft(scenario, aux, carry[2], budget, entropy.astype(dtype), obs)
        return jnp.asarray(sent, jnp.int32), jnp.asarray(passes, jnp.int32)

    return jax.vmap(one)(carry, obs, budget, entropy)


@functools.partial(jax.jit, static_argnames=("gamma_max",))
def _lm_verify(pair, ctx, d, sent, passes, b_id, b_prob, *, gamma_max):
    """Verification phase per realization for the decided ``(sent, passes)``."""

    def one(ctx_r, d_r, sent_r, passes_r):
        d1 = d_r._replace(**{f: getattr(d_r, f)[None] for f in DraftOut._fields if f != "verify_key"})
        out = verify_phase(pair, ctx_r[None], d1, sent_r[None], passes_r[None], b_id, b_prob, gamma_max)
        return jax.tree.map(lambda a: a[0], out)

    return jax.vmap(one)(ctx, d, sent, passes)


@functools.partial(jax.jit, static_argnames=("gamma_max",))
def _prefill(pair, ctx, *, gamma_max):
    """KV-cached path: every realization's :class:`~.cached.SeqState` after its starting context
    (:func:`~.packed.prefill_rows`: the state of ``vmap(cached.prefill)`` in the layout of
    :func:`~.packed.to_rows_layout`)."""
    return prefill_rows(pair, ctx, gamma_max)


@functools.partial(jax.jit, static_argnames=("dtype", "gamma_max", "record"), donate_argnames=("state",))
def _rounds_packed(scenario, policy, aux, pair, root, indices, key_r, fading, carry, state, ts, top_p, b_id, b_prob, *,
                   dtype, gamma_max, record):
    """KV-cached rounds ``ts`` of every realization in one ``lax.scan`` (no per-round dispatch; the
    caches are updated in place): the same steps as the per-round path (:func:`_before`,
    drafting, :func:`_decide`, verification, :func:`_after`), the LM phases by
    :func:`~.packed.draft_packed` / :func:`~.packed.verify_packed` (only the positions the round
    uses).  ``state`` (the caches, :func:`~.packed.to_rows_layout`) is donated.  ``record``: 0 rows
    only, 1 also the entropies, 2 also ``(entropy, support, sent, accepted)``."""

    def step(c, t):
        fading, carry, state = c
        fading, arrival, obs, budget = _before(scenario, policy, aux, key_r, fading, carry, t, dtype=dtype)
        keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(root, i), _TAG), t))(indices)
        d = draft_packed(pair, state, budget, keys, top_p, gamma_max)
        sent, passes = _decide(scenario, policy, aux, carry, obs, budget, d.entropy, dtype=dtype)
        out = verify_packed(pair, d, sent, passes, b_id, b_prob, gamma_max)
        carry, row = _after(scenario, policy, aux, carry, obs, budget, arrival, out.sent, out.passes, out.accepted,
                            out.bits, dtype=dtype, gamma_max=gamma_max)
        ys = (row,)
        if record >= 1:
            ys = ys + (out.entropy,)
        if record >= 2:
            ys = ys + (out.support, out.sent, out.accepted)
        return (fading, carry, out.state), ys

    (fading, carry, state), ys = jax.lax.scan(step, (fading, carry, state), ts)
    return fading, carry, state, ys


def uses_kv_cache(pair: LMPair) -> bool:
    """Whether LM mode runs ``pair`` with KV-cached rounds (:mod:`.cached`: both models rotary with
    a sliding window) rather than the windowed rounds of :mod:`.rounds` (learned positions)."""
    return pair.draft_graph is not None and all(
        m.cfg.pos == "rope" for m in (pair.draft(), pair.target()))


@functools.partial(jax.jit, static_argnames=("dtype", "gamma_max"))
def _after(scenario, policy, aux, carry, obs, budget, arrival, sent, passes, accepted, bits_topp, *, dtype, gamma_max):
    """Payload bits, costs (``round_costs``), policy update and queue (``round_settle``)."""

    def one(carry, obs, budget, arrival, sent, passes, accepted, bits_topp):
        if policy.payload == "topp":
            bits_ul = bits_topp.astype(dtype)
        else:
            bits_ul = costs.uplink_bits(scenario, policy.payload, jnp.zeros((gamma_max,), dtype), sent)
        bits_dl, lat, en = round_costs(scenario, policy, obs, sent, passes, accepted, bits_ul)
        zero = jnp.zeros((), jnp.int32)
        row = Trajectory(budget, sent, passes, accepted, accepted + 1, lat, en, carry[1], obs.rate, arrival,
                         bits_ul, bits_dl, zero, zero)
        return round_settle(scenario, policy, aux, carry, row)

    return jax.vmap(one)(carry, obs, budget, arrival, sent, passes, accepted, bits_topp)


def _indices(realizations, indices):
    if indices is None:
        return np.arange(check_positive_int("realizations", realizations), dtype=np.int64)
    idx = np.asarray(indices)
    if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer) or np.any(idx < 0) \
            or np.any(idx >= 2**31):
        raise ValueError(f"indices must be a non-empty 1-D sequence of integers in [0, 2**31), got {indices!r}")
    return idx.astype(np.int64)


def _run(scenario, policy, *, seed, realizations, rounds, pair, top_p, chunk, dtype, progress, indices=None,
         record_entropy=False, kv_cache=None, record_pairs=False):
    all_idx = _indices(realizations, indices)
    rounds = check_positive_int("rounds", rounds)
    seed = check_positive_int("seed", seed, lo=0)
    n = all_idx.size
    chunk = n if chunk is None else check_positive_int("chunk", chunk)
    chunk = min(chunk, n)
    lm_inner_loop(policy)  # refuse lossy policies and inner loops not known to be causal
    scenario, policy, dtype = prepare(scenario, policy, dtype)
    if pair is None:
        pair = LMPair.load()
    if not isinstance(pair, LMPair):
        raise ValueError(f"pair must be a gelato_jax.lm.LMPair, got {type(pair).__name__}")
    if top_p is None:
        top_p = DEFAULT_TOP_P if policy.payload == "topp" else 1.0
    g = scenario.gamma_max
    cached = uses_kv_cache(pair) if kv_cache is None else bool(kv_cache)
    if cached:
        check_cached_pair(pair, g)
    validate_round_args(pair, np.zeros((1, pair.context_len), np.int32), np.zeros((1,), np.int32),
                        H_th=0.0, Theta_th=0.0, top_p=top_p, gamma_max=g)
    f32 = jnp.float32
    top_p_arr = jnp.asarray(top_p, f32)
    b_id, b_prob = jnp.asarray(scenario.b_id, f32), jnp.asarray(scenario.b_prob, f32)
    root = jax.random.key(seed)
    table = entropy_table(scenario, dtype)
    from tqdm.auto import tqdm

    n_chunks = -(-n // chunk)
    rows, q_final, ents, pair_log = [], [], [], []
    bar = tqdm(total=n_chunks * rounds, desc="simulate (LM)", unit="round",
               disable=(not progress) if progress is not None else None)
    # rounds per compiled scan (KV-cached path): all of them, or with a progress bar the largest
    # divisor of ``rounds`` giving ≥ 10 updates (one compiled length; results do not depend on it)
    seg = rounds if bar.disable else max(d for d in range(1, max(1, rounds // 10) + 1) if rounds % d == 0)
    try:
        for c in range(n_chunks):
            part = all_idx[c * chunk:(c + 1) * chunk]
            n_valid = part.size
            part = np.concatenate([part, np.full(chunk - n_valid, part[-1])])  # pad: same shape every chunk
            idx = jnp.asarray(part.astype(np.uint32))
            aux, (key_r, fading, carry) = _init(scenario, policy, root, idx, table, dtype=dtype)
            ctx = _initial_contexts(root, idx, pair.context_len)
            chunk_rows, chunk_ents, chunk_pairs = [], [], []
            if cached:
                state = _prefill(pair, ctx, gamma_max=g)
                record = 2 if record_pairs else (1 if record_entropy else 0)
                for t0 in range(0, rounds, seg):
                    ts = jnp.arange(t0, min(t0 + seg, rounds), dtype=jnp.int32)
                    fading, carry, state, ys = _rounds_packed(
                        scenario, policy, aux, pair, root, idx, key_r, fading, carry, state, ts, top_p_arr, b_id,
                        b_prob, dtype=dtype, gamma_max=g, record=record)
                    # (T, R) → per-round lists as the per-round path produces them
                    chunk_rows.extend(jax.tree.map(lambda a, i=i: a[i], ys[0]) for i in range(ts.shape[0]))
                    if record_entropy:
                        chunk_ents.extend(np.asarray(ys[1]))
                    if record_pairs:
                        chunk_pairs.extend(zip(*(np.asarray(a) for a in ys[1:])))
                    bar.update(int(ts.shape[0]))
                del state
            for t in (range(rounds) if not cached else ()):
                tt = jnp.asarray(t, jnp.int32)
                fading, arrival, obs, budget = _before(scenario, policy, aux, key_r, fading, carry, tt, dtype=dtype)
                d = _lm_draft(pair, root, idx, ctx, budget, tt, top_p_arr, gamma_max=g)
                sent, passes = _decide(scenario, policy, aux, carry, obs, budget, d.entropy, dtype=dtype)
                out = _lm_verify(pair, ctx, d, sent, passes, b_id, b_prob, gamma_max=g)
                ctx = out.context
                carry, row = _after(scenario, policy, aux, carry, obs, budget, arrival, out.sent, out.passes,
                                    out.accepted, out.bits, dtype=dtype, gamma_max=g)
                chunk_rows.append(row)
                if record_entropy:
                    chunk_ents.append(np.asarray(out.entropy))
                if record_pairs:
                    chunk_pairs.append((np.asarray(out.entropy), np.asarray(out.support), np.asarray(out.sent),
                                        np.asarray(out.accepted)))
                bar.update(1)
            rows.append(jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs], axis=1)[:n_valid], *chunk_rows))
            q_final.append(np.asarray(carry[1])[:n_valid])
            if record_entropy:
                ents.append(np.stack(chunk_ents, axis=1)[:n_valid])
            if record_pairs:
                pair_log.append(tuple(np.stack(a, axis=1)[:n_valid] for a in zip(*chunk_pairs)))
    finally:
        bar.close()
    traj = Trajectory(*(np.concatenate([getattr(r, f) for r in rows]) for f in Trajectory._fields))
    entropy = np.concatenate(ents) if record_entropy else None
    if record_pairs:
        return traj, np.concatenate(q_final), scenario, entropy, tuple(np.concatenate(a) for a in zip(*pair_log))
    return traj, np.concatenate(q_final), scenario, entropy


def rollout_lm(
    scenario: Scenario,
    policy: Policy,
    *,
    seed: int = 0,
    realizations: int = 16,
    rounds: int = 50,
    pair: LMPair | None = None,
    top_p: float | None = None,
    chunk: int | None = None,
    dtype=None,
    progress: bool | None = False,
    indices=None,
    record_entropy: bool = False,
    kv_cache: bool | None = None,
):
    """Per-round ``(R, T)`` numpy arrays of LM mode (fields as ``gelato_jax.rollout``;
    ``queue[:, t]`` is ``Z_t``; ``unverified``/``mismatch`` are 0: every round is verified).

    Returns the ``Trajectory``, or with ``record_entropy=True`` ``(Trajectory, entropy)`` where
    ``entropy`` ``(R, T, γ_max)`` holds the draft entropies (nats, float32) of the paid positions
    ``i < P`` of each round and 0 after them.

    Args:
      scenario, policy: the model and the controller (see the module docstring for the policies
        LM mode supports); :func:`calibrated_scenario` is the companion scenario.
      seed: root seed; realization ``r`` uses keys derived from ``fold_in(key(seed), r)``.
      realizations, rounds: sizes (BENCHMARKS.md, LM mode, for the cost per realization-round).
      pair: the draft/target models (default: the committed weights, ``LMPair.load()``).
      top_p: top-p mass of the draft's sampling distribution (default 0.95 for the ``topp``
        payload, 1 otherwise).
      chunk: realizations per batch (results do not depend on it).
      dtype: float dtype of the cost/queue arithmetic (the models run in float32).
      progress: tqdm bar over rounds (``None``: only on a terminal).
      indices: realization indices to run (default ``range(realizations)``, which is then
        ignored); realization ``r`` gives the same result whichever others run with it.
      record_entropy: also return the per-round entropies (see above).
      kv_cache: ``None`` (default): KV-cached rounds (:mod:`.cached`) when both models are rotary
        with a sliding window (the committed pair), else the windowed rounds of :mod:`.rounds`
        (each round re-reads the last ``context_len`` bytes); ``True`` requires the cache,
        ``False`` forces the windowed rounds.  The two condition on different texts (sliding
        window over the whole text vs a fixed re-read window), so their results differ.
    """
    traj, _, _, ent = _run(scenario, policy, seed=seed, realizations=realizations, rounds=rounds, pair=pair,
                           top_p=top_p, chunk=chunk, dtype=dtype, progress=progress, indices=indices,
                           record_entropy=record_entropy, kv_cache=kv_cache)
    return (traj, ent) if record_entropy else traj


def summarize(scenario: Scenario, traj: Trajectory, queue_final) -> SimResult:
    """Per-realization time averages of a ``(R, T)`` trajectory, with the meaning of
    ``gelato_jax.simulate``'s ``SimResult`` (``queue_final`` is ``Z_T``)."""
    t = lambda x: np.asarray(x, np.float64)
    tokens, latency, energy = t(traj.tokens), t(traj.latency), t(traj.energy)
    outage = np.asarray(in_outage(scenario, jnp.asarray(traj.rate)))
    return SimResult(
        throughput=np.mean(tokens / latency, axis=1),
        goodput=tokens.sum(1) / latency.sum(1),
        energy=energy.mean(1),
        energy_per_token=energy.sum(1) / tokens.sum(1),
        arrival=t(traj.arrival).mean(1),
        queue_mean=t(traj.queue).mean(1),
        queue_final=t(queue_final),
        budget=t(traj.budget).mean(1),
        sent=t(traj.sent).mean(1),
        passes=t(traj.passes).mean(1),
        accepted=t(traj.accepted).mean(1),
        tokens=tokens.mean(1),
        latency=latency.mean(1),
        outage=outage.astype(np.float64).mean(1),
        rounds=int(tokens.shape[1]),
        unverified=np.broadcast_to(t(traj.unverified), tokens.shape).mean(1),
        mismatch=np.broadcast_to(t(traj.mismatch), tokens.shape).mean(1),
    )


def simulate_lm(
    scenario: Scenario,
    policy: Policy,
    *,
    seed: int = 0,
    realizations: int = 16,
    rounds: int = 50,
    pair: LMPair | None = None,
    top_p: float | None = None,
    chunk: int | None = None,
    dtype=None,
    progress: bool | None = False,
    indices=None,
    kv_cache: bool | None = None,
) -> SimResult:
    """LM-mode counterpart of ``gelato_jax.simulate``: same ``SimResult`` fields and meaning,
    with entropies, sent/passes, acceptances and ``topp`` payload bits from the models.
    Arguments as :func:`rollout_lm`."""
    traj, q_final, scen, _ = _run(scenario, policy, seed=seed, realizations=realizations, rounds=rounds, pair=pair,
                               top_p=top_p, chunk=chunk, dtype=dtype, progress=progress, indices=indices,
                               kv_cache=kv_cache)
    return summarize(scen, traj, q_final)
