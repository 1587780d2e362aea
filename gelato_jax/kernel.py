r"""The round with realizations on the minor axis: ``simulate``'s time averages for a whole chunk.

``engine.realization_sums`` runs one realization and is ``vmap``-ed over a chunk, so every array of
a round has the layout ``(R, γ_max)``: XLA's CPU loops then run over rows of 10 positions, and the
reductions over positions (the accepted run, the uplink bits, the budget search) are reductions
along a minor axis of length 10. Profiled (``bench/BENCHMARKS.md``, issue 14), the same round with
the layout ``(γ_max, R)`` — every position a contiguous vector of the chunk's realizations, every
reduction over positions an unrolled chain of elementwise operations — runs 1.0–6× faster per
CPU-second. This module is that round, for the common case:

* the scenario: i.i.d. fading drawn by inversion of the round's uniform (``channels.Fading.iid``:
  Rayleigh), round entropies without the within-round AR(1) (``entropy_process=
  "round"``, ``rho_H = 0``; ``after_reject_*`` any), ``objective="per_round"``, the ``mix32``
  generator — static fields only, so the choice is made when tracing, whatever the leaves;
* any policy: its hooks (``choose_budget``, ``draft``, ``update_state``, ``skip_verification``,
  ``downlink_bits``) are called per realization under ``vmap`` with the positions axis kept major;
  GELATO's drift-plus-penalty search (``Gelato.choose_budget`` with the per-round objective) is
  done on the ``(γ_max + 1, R)`` proxy by an unrolled comparison chain (the same maximiser as
  ``controller.dpp_budget``: the first maximum, ``γ = 0`` in outage).

It draws exactly the words of ``model.scan_rounds`` and applies the operations of
``model.round_step`` in the same order (the bucket levels, acceptances, costs and queue), so its
results equal the per-realization path's: integers exactly, floats to the last bit of XLA's
vectorised transcendental functions, which may differ by an ulp between the two programs
(``tests/test_kernel.py``: 12 policy variants, three arrival laws, under ``vmap`` over ``V``).
``supports`` says when it applies; ``simulator.simulate_chunk`` falls back to the per-realization
path otherwise.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import _gamma_table, channel, controller, costs, early_exit, rng, tokens
from .arrivals import arrival_law
from .channels import fading_of
from .model import RoundCarry, Trajectory, skipped_round
from .policies.base import Policy, RoundObs, RoundOutcome
from .scenario import Scenario

__all__ = ["supports", "chunk_sums"]


def supports(scenario: Scenario, policy: Policy, *, ar: bool) -> bool:
    """Whether ``chunk_sums`` reproduces ``model.round_step`` for this pair (static fields only)."""
    return (fading_of(scenario).iid and scenario.entropy_process == "round" and not ar
            and scenario.objective == "per_round" and scenario.rng == "mix32")


def _is_dpp(policy: Policy, scenario: Scenario) -> bool:
    """The declared drift-plus-penalty search on the mean proxy at a fixed ``ᾱ`` (one proxy for the
    whole chunk: ``costs.proxy_costs`` takes batched rates, not a batched acceptance)."""
    return policy.budget_rule(scenario) == "dpp" and policy.proxy == "mean"


def _dpp_budget(V, queue, throughput, energy, outage):
    """``controller.dpp_budget`` for ``(n, R)`` proxies: the same scaled objective, its first
    maximiser by an unrolled chain (``>`` keeps the first of equal values, as ``argmax``)."""
    u = controller.scaled_utility(V, queue, throughput, energy)
    ok = jnp.logical_not(outage)
    best = u[0]
    budget = jnp.zeros(jnp.shape(outage), jnp.int32)
    for g in range(1, u.shape[0]):
        ug = jnp.where(ok & jnp.logical_not(jnp.isnan(u[g])), u[g], -jnp.inf)
        better = ug > best
        best = jnp.where(better, ug, best)
        budget = jnp.where(better, g, budget)
    return budget


def _flat_draft(policy: Policy):
    """The inner loop on ``(γ_max, R)`` entropies where the policy's ``draft`` is one of the
    layout-free rules of ``early_exit`` (they scan the leading axis and compare elementwise), else
    ``None`` (then ``draft`` runs per realization under ``vmap``: XLA re-evaluated the bucket's
    recursion there many times over inside its fusions, ≈ 10× slower)."""
    kind = policy.inner_loop()
    if kind == "bucket":
        return lambda entropy, budget: _leaky_bucket(entropy, budget, policy.H_th, policy.Theta_th)
    if kind == "none":
        return early_exit.no_exit
    return None


def _leaky_bucket(entropy, budget, H_th, Theta_th):
    """``early_exit.leaky_bucket_exit`` on ``(γ_max, R)`` entropies: the same recursion and first
    overflow, unrolled over the positions in Python (each step on vectors of the chunk)."""
    dtype = jnp.result_type(entropy, H_th)
    theta = jnp.zeros(budget.shape, dtype)
    first = jnp.full(budget.shape, -1, jnp.int32)
    for i in range(entropy.shape[0]):
        theta = jnp.maximum(0.0, theta + entropy[i] - H_th)
        over = (theta > Theta_th) & (i < budget) & (first < 0)
        first = jnp.where(over, i, first)
    any_exit = first >= 0
    return jnp.where(any_exit, first, budget), jnp.where(any_exit, first + 1, budget)


def _materialise(x):
    """``x`` computed once and stored: a conditional is a fusion boundary for XLA (an
    ``optimization_barrier`` is removed before fusion on CPU), so consumers read the stored
    values instead of each re-evaluating the chain that produced them (profiled: the bucket
    recursion and the accepted run were re-evaluated by four fusions). CPU only: elsewhere a
    conditional may cost a device-to-host read of its predicate, and ``x`` is returned as is."""
    if jax.default_backend() != "cpu":
        return x
    leaf = jnp.ravel(jax.tree.leaves(x)[0])[0]  # one element: a reduction over the chunk cost a pass per call
    if jnp.issubdtype(leaf.dtype, jnp.floating):  # on the bits: true for NaNs too
        leaf = jax.lax.bitcast_convert_type(leaf, jnp.int32 if leaf.dtype.itemsize == 4 else jnp.int64)
    pred = (leaf >= 0) | (leaf < 0)  # always true, but not known to XLA
    return jax.lax.cond(pred, lambda v: v, lambda v: jax.tree.map(jnp.zeros_like, v), x)


def _row_min(x):
    out = x[0]
    for i in range(1, x.shape[0]):
        out = jnp.minimum(out, x[i])
    return out


def chunk_sums(scenario: Scenario, policy: Policy, root, indices, *, rounds: int, dtype, aux, metrics, queue0=None,
               table=None):
    """Sums over ``rounds`` rounds of ``metrics(scenario, t, carry, draws, row)`` (the per-realization
    function of ``engine.realization_sums``, called here under ``vmap``) for the realizations
    ``indices`` ``(R,)``, from ``Z_0 = queue0`` (default 0); returns ``(sums: dict of (R,), final
    RoundCarry with (R,) leaves)``; ``table``: ``engine.entropy_table`` (built here if ``None``).
    Only for pairs ``supports`` accepts."""
    g = scenario.gamma_max
    dtype = jnp.dtype(dtype)
    R = indices.shape[0]

    # per-realization stream keys and initial state, as model.init_realization / initial_carry
    def init(i):
        _, k_rounds = jax.random.split(jax.random.fold_in(root, i))
        return rng.stream_key("mix32", k_rounds)

    keys = jax.vmap(init)(indices)
    k0, k1 = keys[:, 0], keys[:, 1]
    table = _gamma_table.gamma_table_poly(scenario.k_H, dtype) if table is None else table
    pstate0 = jax.vmap(lambda _: policy.init_state(scenario, aux))(indices)
    z0 = jnp.zeros((R,), dtype) if queue0 is None else jnp.broadcast_to(jnp.asarray(queue0, dtype), (R,))
    carry0 = RoundCarry(jnp.zeros((), jnp.int32), z0, pstate0, jnp.zeros((R,), bool))

    # the round's uniforms: slot 0 fading, 1 arrival, 2 .. γ_max + 1 entropies, then acceptances;
    # slot 1 is not generated where the arrival law does not read it (constant arrivals)
    law = arrival_law(scenario)
    used = [j for j in range(2 * g + 2) if j != 1 or law.reads_uniform]
    n_u = len(used)
    words = [w for j in used for w in ((2 * j, 2 * j + 1) if dtype == jnp.float64 else (j,))]
    slots = jnp.asarray(words, dtype=jnp.uint32)[:, None]

    def uniforms(t):
        """``rng.round_draws("mix32", key, t, 2γ_max + 2, 0, dtype)[used]`` of every realization, as ``(n_u, R)``."""
        x = rng.mix32(t.astype(jnp.uint32) ^ k0)
        w = rng.mix32((x[None, :] + slots * jnp.uint32(rng._PHI)) ^ k1[None, :])
        if dtype == jnp.float32:
            return rng._to_unit32(w)
        w = w.reshape(n_u, 2, R).astype(jnp.float64)
        hi = jnp.floor(w[:, 0] * 2.0**-6)
        lo = jnp.floor(w[:, 1] * 2.0**-6)
        return (hi * 2.0**26 + lo) * 2.0**-52 + 2.0**-53

    pos = jnp.arange(g, dtype=jnp.int32)[:, None]
    dpp = _is_dpp(policy, scenario)
    flat_draft = _flat_draft(policy)
    vm = jax.vmap  # per-realization hooks: realizations on axis 0 of (R,) leaves, axis 1 of (γ, R)

    first = n_u - 2 * g  # the row of slot 2 (the first entropy)

    def draws_of(u):
        h = jnp.maximum(fading_of(scenario).from_uniform(u[0]), jnp.asarray(scenario.h_min, dtype))
        a = law.sample(scenario.E_bar, u[1] if law.reads_uniform else u[0])
        # stored once: XLA otherwise fuses the sampler into several consumers (StaticSD: ≈ 10× the work)
        entropy = _materialise(jnp.asarray(scenario.theta_H, dtype) * _gamma_table.gamma_quantile(table, u[first : first + g]))
        uniform = u[first + g :] - jnp.asarray(2.0 ** -(24 if dtype == jnp.float32 else 53), dtype)
        return h, a, entropy, uniform

    def step(carry, t, draws):
        h, arrival, entropy, uniform = draws
        pstate, rejected = carry.policy_state, carry.rejected
        # tokens.after_reject_entropy / acceptance_by_position with the positions on axis 0
        scale = jnp.where(rejected, jnp.asarray(scenario.after_reject_H_scale, entropy.dtype), 1.0)
        entropy = entropy.at[0].multiply(scale.astype(entropy.dtype))
        rate = channel.uplink_rate(scenario, h)
        rate_dl = channel.downlink_rate(scenario, h)
        outage = channel.in_outage(scenario, rate)
        tt = jnp.broadcast_to(carry.t, (R,))
        obs = RoundObs(tt, carry.queue, h, rate, rate_dl, outage, rejected)
        if dpp:  # the policy's own mean proxy on the chunk's rates: (γ_max + 1, R)
            pc = policy.proxy_costs(scenario, aux, pstate, obs)
            budget = _dpp_budget(policy.V, carry.queue, pc.throughput, pc.energy, outage)
        else:
            budget = vm(lambda s, o: policy.choose_budget(scenario, aux, s, o))(pstate, obs)
        budget = _materialise(jnp.where(outage, 0, jnp.clip(budget, 0, g)).astype(jnp.int32))
        if flat_draft is not None:
            sent, passes = flat_draft(entropy, budget)
        else:
            sent, passes = vm(lambda s, b, e, o: policy.draft(scenario, aux, s, b, e, o), in_axes=(0, 0, 1, 0))(
                pstate, budget, entropy, obs)
        # materialised: otherwise XLA copies the whole bucket recursion into each consumer's fusion
        sent, passes = _materialise((jnp.asarray(sent, jnp.int32), jnp.asarray(passes, jnp.int32)))

        shift = jnp.where((pos == 0) & rejected[None], scenario.after_reject_a0_shift, 0.0)
        accept = (uniform < tokens.logistic((scenario.a0 + shift) - scenario.a1 * entropy)) & (pos < sent[None])
        accepted = _materialise(_row_min(jnp.where(accept, g, pos)).astype(jnp.int32))
        n_tokens = accepted + 1
        bits = costs.token_bits(scenario, policy.payload, entropy)
        sent_bits = jnp.where(pos < sent[None], bits, 0.0)
        bits_ul = sent_bits[0]
        for i in range(1, g):  # unrolled (a reduce over the leading axis ran as its own, slower, kernel)
            bits_ul = bits_ul + sent_bits[i]
        if policy.downlink_bits is None:
            bits_dl = costs.downlink_bits(scenario, policy.payload, accepted < sent)
        else:
            bits_dl = vm(lambda r: policy.downlink_bits(scenario, r))(accepted < sent)
        lat = costs.latency(scenario, passes, sent, bits_ul, bits_dl, rate, rate_dl)
        en = costs.energy(scenario, passes, bits_ul, rate)
        zero = jnp.zeros((R,), jnp.int32)
        unverified, mismatch = zero, zero
        if policy.skip_verification is not None:
            skip = vm(lambda s, e, l: policy.skip_verification(scenario, aux, s, e, l), in_axes=(0, 1, 0))(
                pstate, entropy, sent) & (sent > 0)
            sent, accepted, n_tokens, bits_ul, bits_dl, lat, en, unverified, mismatch = skipped_round(
                scenario, skip, sent, passes, accepted, n_tokens, bits_ul, bits_dl, lat, en)
        row = Trajectory(budget, sent, passes, accepted, n_tokens, lat, en, carry.queue, rate, arrival, bits_ul, bits_dl,
                         unverified, mismatch)
        outcome = RoundOutcome(row.budget, row.sent, row.passes, row.accepted, row.tokens, row.latency, row.energy,
                               row.arrival)
        new_pstate = vm(lambda s, o: policy.update_state(scenario, aux, s, o))(pstate, outcome)
        new_queue = jnp.maximum(carry.queue + row.energy - row.arrival, 0.0)
        new_rejected = (row.accepted < row.sent) | (row.passes > row.sent)
        new = carry._replace(t=carry.t + 1, queue=new_queue, policy_state=new_pstate, rejected=new_rejected)
        return new, row

    def metrics_of(t, carry, draws, row):
        """``metrics`` per realization (carry leaves and row fields on axis 0, the draws' positions
        major), each metric ``(R,)``."""
        per = RoundCarry(jnp.broadcast_to(carry.t, (R,)), carry.queue, carry.policy_state, carry.rejected)
        return vm(lambda c, d, r: metrics(scenario, t, c, d, r), in_axes=(0, (0, 0, 1, 1), 0))(per, draws, row)

    # metric names (static), from a shape-only trace of one round
    probe_u = jnp.full((n_u, R), 0.5, dtype)
    names = list(jax.eval_shape(lambda: metrics_of(carry0.t, carry0, draws_of(probe_u),
                                                   step(carry0, carry0.t, draws_of(probe_u))[1])))
    # integer metrics bounded by γ_max + 1 per round (declared by ``metrics``): exact int32 sums,
    # equal to the compensated float sums (which are exact for integers below 2²⁴) at a third of the work
    small = getattr(metrics, "small_integers", frozenset()) if rounds * (g + 1) < 2**31 else frozenset()
    exact = [k in small for k in names]

    def body(c, t):
        carry, (total, comp), u = c
        draws = draws_of(u)
        new_carry, row = step(carry, t, draws)
        m = metrics_of(t, carry, draws, row)
        # compensated summation, as engine._kahan, one (R,) accumulator per metric (a stacked
        # (n, R) accumulator was emitted as separate unfused passes over the stack)
        new_total, new_comp = [], []
        for i, k in enumerate(names):
            if exact[i]:
                new_total.append(total[i] + jnp.broadcast_to(jnp.asarray(m[k]).astype(jnp.int32), (R,)))
                new_comp.append(comp[i])
                continue
            y = jnp.broadcast_to(jnp.asarray(m[k]).astype(dtype), (R,)) - comp[i]
            tot = total[i] + y
            new_total.append(tot)
            new_comp.append((tot - total[i]) - y)
        return (new_carry, (tuple(new_total), tuple(new_comp)), uniforms(t + 1)), None

    zero = tuple(jnp.zeros((R,), jnp.int32 if e else dtype) for e in exact)
    t0 = jnp.zeros((), jnp.int32)
    (carry, (total, _), _), _ = jax.lax.scan(body, (carry0, (zero, zero), uniforms(t0)),
                                             jnp.arange(rounds, dtype=jnp.int32))
    return {k: total[i].astype(dtype) for i, k in enumerate(names)}, carry

