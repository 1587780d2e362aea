r"""The model of one round (MODEL.md §1–§6): exogenous draws, the per-round step, its carry.

One round (MODEL.md §1): observe ``h_t`` and ``Z_t``; the policy picks ``γ̃_t`` (0 in outage);
the inner loop drafts ``P_t`` passes and sends ``L_t`` tokens; the edge accepts the leading run of
``A_t`` drafts (draft ``i`` accepted iff ``U_{t,i} < α(H_{t,i})``), ``N_t = A_t + 1``; latency
and energy follow §3; ``Z_{t+1} = max(Z_t + E_t − a_t, 0)`` with the actual energy.
The carry also remembers whether the round ended with a rejected draft (``A_t < L_t``) or an
entropy exit (``P_t > L_t``, the device rejecting its own draft): the next round's first position
then follows ``Scenario.after_reject_*`` (no effect at the defaults).

Randomness: realization ``r`` owns the stream keyed by ``fold_in(key(seed), r)`` and round ``t``
reads counter ``t`` of it (one generator call for all the uniforms of the round, see
``draw_round`` and ``gelato_jax.rng``; ``Scenario.rng`` picks the generator), so results do not
depend on batch size, chunking, device count or the number of rounds.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _gamma_table, channel, costs, rng, tokens
from .arrivals import arrival_law
from .channels import fading_of
from .policies.base import Policy, RoundObs, RoundOutcome
from .scenario import Scenario

__all__ = ["Exogenous", "Trajectory", "RoundCarry", "initial_carry", "round_step", "round_decision", "round_costs",
           "round_settle", "skipped_round", "scan_rounds", "draw_round", "init_realization", "entropy_ar"]


class RoundCarry(NamedTuple):
    """Per-realization state carried from round to round."""

    t: Any  # round index (int32)
    queue: Any  # Z_t
    policy_state: Any
    rejected: Any  # the previous round ended with a rejection or an entropy exit (bool; False before round 0)
    # entropy_process="text" only (None otherwise): the latent text score x at the last text
    # position used, the number of text steps from there to the next round's first draft, and the
    # Gamma quantile table
    latent: Any = None
    lag: Any = None
    table: Any = None
    # entropy_process="text" only: the previous round ended with a rejected draft (A < L), as opposed
    # to an entropy exit with every sent draft accepted (Scenario.after_reject_latent reads it)
    text_rejected: Any = None


# lag before the first round: ρ^lag = 0 for every ρ < 1 in floating point, so x_1 ~ N(0, 1)
_FRESH_LAG = 2.0**40


def initial_carry(scenario: Scenario, policy: Policy, aux, dtype) -> RoundCarry:
    """``t = 0``, ``Z_0 = 0``, the policy's initial state, no rejection before the first round
    (and, for ``entropy_process="text"``, a fresh stationary start of the text process)."""
    carry = RoundCarry(jnp.zeros((), jnp.int32), jnp.zeros((), dtype), policy.init_state(scenario, aux),
                       jnp.zeros((), bool))
    if scenario.entropy_process != "text":
        return carry
    return carry._replace(latent=jnp.zeros((), dtype), lag=jnp.asarray(_FRESH_LAG, dtype),
                          table=_gamma_table.gamma_table(scenario.k_H, dtype), text_rejected=jnp.zeros((), bool))


def _text_entropies(scenario: Scenario, carry: RoundCarry, eps):
    """``entropy_process="text"``: latent scores ``x`` ``(γ_max,)`` of this round's draft positions
    from the innovations ``eps`` and the carried ``(latent, lag)``, and their entropies
    ``θ_H·Q_k(Φ(x))``; after a rejected draft with ``Scenario.after_reject_latent`` set, the first
    score is that law's regression on the carried latent."""
    rho = jnp.asarray(scenario.rho_H, eps.dtype)
    c1 = rho**carry.lag
    x1 = c1 * carry.latent + jnp.sqrt(1.0 - c1 * c1) * eps[0]
    if scenario.after_reject_latent is not None:
        # after a rejected draft (the anchor is then the rejected position, lag 1): the fitted
        # regression x_1 = mu + c·x_a + sigma·ε instead of the AR(1) step (Scenario docstring)
        mu, c, sd = (jnp.asarray(v, eps.dtype) for v in scenario.after_reject_latent)
        x1 = jnp.where(carry.text_rejected, mu + c * carry.latent + sd * eps[0], x1)
    s = jnp.sqrt(1.0 - rho * rho)

    def step(x, e):
        x = rho * x + s * e
        return x, x

    _, rest = jax.lax.scan(step, x1, eps[1:], unroll=True)
    x = jnp.concatenate([x1[None], rest])
    return x, scenario.theta_H * _gamma_table.gamma_quantile_of_normal(carry.table, x)


def _text_advance(carry: RoundCarry, x, passes, n_tokens):
    """The text advanced by ``n_tokens``; the next round's first draft is ``n_tokens + 1``
    positions after this round's start. Its latent anchor is the last drafted position the text
    reached, ``m = min(n_tokens, passes)`` (``lag = n_tokens + 1 − m``); a round without draft
    passes keeps the old anchor (``lag += n_tokens``)."""
    m = jnp.minimum(n_tokens, passes)
    drafted = m >= 1
    anchor = x[jnp.maximum(m - 1, 0)]
    latent = jnp.where(drafted, anchor, carry.latent)
    lag = jnp.where(drafted, (n_tokens + 1 - m).astype(carry.lag.dtype), carry.lag + n_tokens)
    return latent.astype(carry.latent.dtype), lag


class Exogenous(NamedTuple):
    """Exogenous randomness of ``R`` realizations × ``T`` rounds.

    channel_gain: ``(R, T)`` unit-mean small-scale fading ``h_t`` (path loss comes from the scenario).
    energy_arrival: ``(R, T)`` energy budget ``a_t`` of each round (J).
    entropy: ``(R, T, γ_max)`` draft entropies (nats) of the positions a round may draft.
    uniform: ``(R, T, γ_max)`` acceptance uniforms: draft ``i`` accepted iff ``U < α(H)``.
    """

    channel_gain: Any
    energy_arrival: Any
    entropy: Any
    uniform: Any


class Trajectory(NamedTuple):
    """Per-round outputs of ``rollout``, each ``(R, T)``. ``queue`` is ``Z_t`` before the update."""

    budget: Any
    sent: Any
    passes: Any
    accepted: Any
    tokens: Any
    latency: Any
    energy: Any
    queue: Any
    rate: Any
    arrival: Any
    uplink_bits: Any
    downlink_bits: Any
    unverified: Any = 0  # tokens kept without verification (lossy policies such as UHLM), else 0
    mismatch: Any = 0  # of those, how many verification would have rejected (U >= alpha(H))


# ----------------------------------------------------------------------------- randomness
def _is_zero(x) -> bool:
    try:
        return bool(np.all(np.asarray(x) == 0))
    except (TypeError, jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return False


def _entropy_ar(scenario: Scenario) -> bool:
    """Static switch: draw the within-round AR(1) entropies only when ``rho_H`` may be non-zero
    (``entropy_process="round"``; the ``"text"`` process uses ``rho_H`` for its latent chain)."""
    return scenario.entropy_process == "round" and not _is_zero(scenario.rho_H)


def _round_uniforms(scenario: Scenario, key_r, t, *, ar: bool, dtype):
    """The generator's output for round ``t``: ``(u, keys)`` (``rng.round_draws``): the
    ``2 γ_max + 2`` uniforms and, where a draw needs ``jax.random`` (AR(1) entropies, channels
    other than Rayleigh), two keys (channel, entropies); ``keys`` is ``None`` otherwise."""
    n_keys = 2 if (ar or not fading_of(scenario).iid) else 0
    return rng.round_draws(scenario.rng, key_r, t, 2 * scenario.gamma_max + 2, n_keys, dtype)


def _draws_from(scenario: Scenario, fading_state, t, uniforms_keys, *, ar: bool, dtype):
    """The exogenous draws of round ``t`` from the generator's output ``(u, keys)``
    (``_round_uniforms``): ``u[0]`` → Rayleigh fading ``h = −log u`` (other channels use their
    key), ``u[1]`` → random energy arrival (unused for constant arrivals), ``u[2:γ_max+2]`` →
    entropies by the tabulated Gamma inverse CDF (``entropy_process="text"``: standard-normal
    innovations ``Φ^{-1}(u)`` of the latent text process, turned into entropies by
    ``round_step``), ``u[γ_max+2:]`` → acceptance uniforms. AR(1) entropies use
    ``jax.random.gamma``/``beta`` (exact, slower) on their key. Returns
    ``((h, a, entropy, uniform), fading_state)``."""
    u, keys = uniforms_keys
    ch_state, table = fading_state
    g = scenario.gamma_max
    k_ch, k_h = (keys[0], keys[1]) if keys is not None else (None, None)
    fading = fading_of(scenario)
    if fading.iid:  # by inversion of the round's own uniform
        h = jnp.maximum(fading.from_uniform(u[0]), jnp.asarray(scenario.h_min, dtype))
    else:
        h, ch_state = channel.next_fading(k_ch, scenario, ch_state, t, dtype)
    a = arrival_law(scenario).sample(scenario.E_bar, u[1])
    if scenario.entropy_process == "text":  # innovations of the latent text process (round_step)
        entropy = jax.scipy.special.ndtri(u[2 : g + 2])
    else:
        entropy = tokens.sample_entropies(
            k_h, scenario, g, ar=ar, dtype=dtype, table=None if ar else table, uniforms=u[2 : g + 2]
        )
    uniform = u[g + 2 :] - jnp.asarray(2.0 ** -(24 if jnp.dtype(dtype) == jnp.float32 else 53), dtype)
    return (h, a, entropy, uniform), (ch_state, table)


def _draw_round(scenario: Scenario, key_r, fading_state, t, *, ar: bool, dtype):
    """The exogenous draws of round ``t`` of one realization (``_round_uniforms`` then
    ``_draws_from``); ``fading_state = (channel state, Gamma table)`` from ``_init_realization``."""
    uk = _round_uniforms(scenario, key_r, t, ar=ar, dtype=dtype)
    return _draws_from(scenario, fading_state, t, uk, ar=ar, dtype=dtype)


def scan_rounds(scenario: Scenario, key_r, fading_state, carry, step, rounds: int, *, ar: bool, dtype, start=0):
    """``lax.scan`` over rounds ``start .. start + rounds − 1`` of one realization:
    ``carry = step(carry, t, draws)`` with the round's exogenous draws.

    The generator's output for round ``t + 1`` is computed in round ``t`` and carried: the loop
    state is materialised, so XLA does not fuse the generator into the consumers of the uniforms
    (inside a fusion it re-evaluated the whole hash once per table-coefficient read). Returns the
    final ``carry``."""
    t0 = jnp.asarray(start, jnp.int32)
    uk0 = _round_uniforms(scenario, key_r, t0, ar=ar, dtype=dtype)

    def body(c, t):
        inner, fading, uk = c
        draws, fading = _draws_from(scenario, fading, t, uk, ar=ar, dtype=dtype)
        uk = _round_uniforms(scenario, key_r, t + 1, ar=ar, dtype=dtype)
        return (step(inner, t, draws), fading, uk), None

    (carry, _, _), _ = jax.lax.scan(body, (carry, fading_state, uk0), t0 + jnp.arange(rounds, dtype=jnp.int32))
    return carry


def _init_realization(scenario: Scenario, root, index, dtype, table=None):
    """Round stream key and initial ``(channel state, Gamma table)`` of realization ``index``.
    The table depends on the scenario only (under ``vmap`` over realizations it is not batched);
    ``table``: ``entropy_table(scenario, dtype)`` built outside the program (default: built here)."""
    k_init, k_rounds = jax.random.split(jax.random.fold_in(root, index))
    table = _gamma_table.gamma_table_poly(scenario.k_H, dtype) if table is None else table
    return rng.stream_key(scenario.rng, k_rounds), (channel.init_fading(k_init, scenario, dtype), table)


# ----------------------------------------------------------------------------- one round
def round_step(scenario: Scenario, policy: Policy, aux, carry, exo_t):
    """One round for one realization. ``carry`` is a ``RoundCarry``,
    ``exo_t = (h, a, entropy (γ_max,), uniform (γ_max,))`` with base-law entropies (position 1 is
    rescaled here after a rejection). Returns ``(carry, Trajectory row)``."""
    pstate, rejected = carry.policy_state, carry.rejected
    h, arrival, entropy, uniform = exo_t
    text = scenario.entropy_process == "text"
    if text:  # the exogenous slot holds the innovations of the latent text process
        x, entropy = _text_entropies(scenario, carry, entropy)
    entropy = tokens.after_reject_entropy(scenario, entropy, rejected)
    obs, budget = round_decision(scenario, policy, aux, carry, h)
    sent, passes = policy.draft(scenario, aux, pstate, budget, entropy, obs)

    pos = jnp.arange(scenario.gamma_max)
    accept = (uniform < tokens.acceptance_by_position(scenario, entropy, rejected)) & (pos < sent)
    # the leading run of accepted drafts = index of the first position not accepted (a min-reduce;
    # XLA's cumprod is a slow reduce-window on CPU)
    accepted = jnp.min(jnp.where(accept, scenario.gamma_max, pos)).astype(jnp.int32)
    n_tokens = accepted + 1

    bits_ul = costs.uplink_bits(scenario, policy.payload, entropy, sent)
    bits_dl, lat, en = round_costs(scenario, policy, obs, sent, passes, accepted, bits_ul)
    unverified = jnp.zeros((), jnp.int32)
    mismatch = jnp.zeros((), jnp.int32)

    # optional policy hook (lossy policies, e.g. UHLM): keep the ``sent`` drafts on the device
    # without upload or verification. Such a round costs only its draft passes; its tokens are
    # unverified, and ``mismatch`` counts those verification would have rejected (sent − A).
    if policy.skip_verification is not None:
        skip = policy.skip_verification(scenario, aux, pstate, entropy, sent) & (sent > 0)
        sent, accepted, n_tokens, bits_ul, bits_dl, lat, en, unverified, mismatch = skipped_round(
            scenario, skip, sent, passes, accepted, n_tokens, bits_ul, bits_dl, lat, en)

    row = Trajectory(
        budget, sent, passes, accepted, n_tokens, lat, en, carry.queue, obs.rate, arrival, bits_ul, bits_dl,
        unverified, mismatch,
    )
    new_carry, row = round_settle(scenario, policy, aux, carry, row)
    if text:
        latent, lag = _text_advance(carry, x, row.passes, row.tokens)
        new_carry = new_carry._replace(latent=latent, lag=lag, text_rejected=row.accepted < row.sent)
    return new_carry, row


def skipped_round(scenario: Scenario, skip, sent, passes, accepted, n_tokens, bits_ul, bits_dl, lat, en):
    """Where ``skip`` (the ``skip_verification`` hook): the round keeps its ``sent`` drafts unverified
    and costs only its draft passes. Elementwise (any shape). Returns ``(sent, accepted, tokens,
    bits_ul, bits_dl, latency, energy, unverified, mismatch)``."""
    zero = jnp.zeros_like(sent)
    unverified = jnp.where(skip, sent, zero)
    mismatch = jnp.where(skip, sent - accepted, zero)
    return (jnp.where(skip, zero, sent), jnp.where(skip, zero, accepted), jnp.where(skip, sent, n_tokens),
            jnp.where(skip, 0.0, bits_ul), jnp.where(skip, 0.0, bits_dl), jnp.where(skip, passes * scenario.tau_d, lat),
            jnp.where(skip, passes * scenario.e_d, en), unverified, mismatch)


# Shared with LM mode (gelato_jax.lm.simulate): the parts of a round that do not depend on how
# entropies, sent/passes and acceptances are produced.
def round_decision(scenario: Scenario, policy: Policy, aux, carry, h):
    """Rates, outage and the policy's budget (0 in outage, clipped to ``[0, γ_max]``) for fading
    ``h`` and ``carry`` (a ``RoundCarry``). Returns ``(RoundObs, budget int32)``."""
    t, queue, pstate, rejected = carry.t, carry.queue, carry.policy_state, carry.rejected
    rate = channel.uplink_rate(scenario, h)
    rate_dl = channel.downlink_rate(scenario, h)
    outage = channel.in_outage(scenario, rate)
    obs = RoundObs(t, queue, h, rate, rate_dl, outage, rejected)
    budget = policy.choose_budget(scenario, aux, pstate, obs)
    budget = jnp.where(outage, 0, jnp.clip(budget, 0, scenario.gamma_max)).astype(jnp.int32)
    return obs, budget


def round_costs(scenario: Scenario, policy: Policy, obs: RoundObs, sent, passes, accepted, bits_ul):
    """Downlink bits, latency and device energy of a verified round (MODEL §3):
    ``(bits_dl, D, E)``."""
    # optional policy hook: its own downlink payload (e.g. DSSD with a top-k target distribution)
    if policy.downlink_bits is None:
        bits_dl = costs.downlink_bits(scenario, policy.payload, accepted < sent)
    else:
        bits_dl = policy.downlink_bits(scenario, accepted < sent)
    lat = costs.latency(scenario, passes, sent, bits_ul, bits_dl, obs.rate, obs.rate_dl)
    en = costs.energy(scenario, passes, bits_ul, obs.rate)
    return bits_dl, lat, en


def round_settle(scenario: Scenario, policy: Policy, aux, carry, row: Trajectory):
    """Policy state update and ``Z_{t+1} = max(Z_t + E_t − a_t, 0)`` from a round's ``row``
    (``row.queue`` must be ``Z_t``); with ``Scenario.objective == "time_average"`` (MODEL §11, an
    average-power budget) the round's allowance is ``P̄·D_t`` instead of ``a_t``:
    ``Z_{t+1} = max(Z_t + E_t − P̄·D_t, 0)``. Returns ``(RoundCarry(t + 1, Z_{t+1}, policy_state,
    A_t < L_t or P_t > L_t), row)``."""
    outcome = RoundOutcome(row.budget, row.sent, row.passes, row.accepted, row.tokens, row.latency, row.energy, row.arrival)
    pstate = policy.update_state(scenario, aux, carry.policy_state, outcome)
    if scenario.objective == "time_average":
        new_queue = jnp.maximum(carry.queue + row.energy - scenario.P_bar * row.latency, 0.0)
    else:
        new_queue = jnp.maximum(carry.queue + row.energy - row.arrival, 0.0)
    rejected = (row.accepted < row.sent) | (row.passes > row.sent)
    return carry._replace(t=carry.t + 1, queue=new_queue, policy_state=pstate, rejected=rejected), row


# public names of the pieces the drivers (gelato_jax.engine, LM mode, proofs_check) build on
draw_round = _draw_round
init_realization = _init_realization
entropy_ar = _entropy_ar
