"""GELATO's inner-loop variant ``exit="marginal"`` [ours] (docs/model.md §6; ``early_exit.marginal_exit``).

Rule under test: at position ``i ≤ γ̃`` (pass ``i`` run and paid, ``H_i`` observed) token ``i`` is
sent and drafting goes on iff ``V·(T̂(i, i) − T̂(i−1, i)) > Z·(E(i, i) − E(i−1, i))``, where
``T̂(k, P) = N̂_k / D(k, P)``, ``N̂_k = 1 + Σ_{j≤k} Π_{l≤j} α_l(H_l)`` (position 1 with the
intercept ``a0 + after_reject_a0_shift`` when the round follows a rejection) and ``D``, ``E`` are the
round latency/energy of docs/model.md §3 with the uplink bits of the first ``k`` tokens and the expected
downlink bits. The first failing ``i`` gives ``(sent, passes) = (i − 1, i)``; no failure gives
``(γ̃, γ̃)``. Ties stop.

The reference below is a literal per-position loop over Python floats, written from that rule
and docs/model.md §3/§4 (σ, ``m(H)``, bits, latency, energy), not from the library's helpers; it uses the
same association order as ``costs.latency``/``costs.energy`` so that the comparison is exact.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gelato_jax import Scenario, rollout, sample_exogenous, simulate
from gelato_jax.costs import PAYLOADS
from gelato_jax.early_exit import marginal_exit, marginal_gains
from gelato_jax.policies import Gelato, GreedyThroughput, LyapunovOnly
from test_properties import log_uniform, scenario_kwargs

GMAX = 10  # Scenario().gamma_max: every test keeps the default shape (one trace per payload)


# ----------------------------------------------------------------------------- literal reference
def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _token_bits(s: Scenario, payload: str, h: float) -> float:
    b_id, b_prob = float(s.b_id), float(s.b_prob)
    if payload == "topp":
        m = min(float(s.V_vocab), float(s.m_max), math.ceil(float(s.c_p) * math.exp(h)))
        return b_id + m * (b_id + b_prob)
    if payload == "full":
        return b_id + float(s.V_vocab) * b_prob
    return b_id + b_prob


def marginal_reference(s: Scenario, payload: str, H, budget: int, V: float, Z: float, r: float, r_dl: float,
                       after_reject: bool = False):
    """docs/model.md §6 ``exit="marginal"``, one position at a time: returns ``(sent, passes)``."""
    f = float
    tau_d, e_d = f(s.tau_d), f(s.e_d)
    b_ok = f(s.b_dl)  # downlink bits without a rejection
    b_rej = f(s.b_dl) + (f(s.V_vocab) * f(s.b_prob) if payload == "scalar" else 0.0)

    def air(bits, rate):
        return bits / rate if bits > 0 else 0.0

    def dl(p_all_accepted):  # expected downlink bits
        return b_ok + (1.0 - p_all_accepted) * (b_rej - b_ok)

    def D(P, k, bits, bits_dl):
        return P * tau_d + air(bits, r) + f(s.t_v0) + f(s.t_v1) * k + f(s.delta) + air(bits_dl, r_dl)

    def E(P, bits):
        return P * e_d + f(s.P_tx) * air(bits, r)

    prod, n_hat, bits = 1.0, 1.0, 0.0  # Π α, N̂ and uplink bits of the tokens sent so far
    for i in range(1, budget + 1):
        h = float(H[i - 1])
        a0 = f(s.a0) + (f(s.after_reject_a0_shift) if i == 1 and after_reject else 0.0)
        alpha = _sigmoid(a0 - f(s.a1) * h)
        prod_i = prod * alpha
        n_i = n_hat + prod_i
        bits_i = bits + _token_bits(s, payload, h)
        P = float(i)  # pass i is paid whether or not token i is sent
        dT = n_i / D(P, P, bits_i, dl(prod_i)) - n_hat / D(P, P - 1.0, bits, dl(prod))
        dE = E(P, bits_i) - E(P, bits)
        if not V * dT > Z * dE:
            return i - 1, i
        prod, n_hat, bits = prod_i, n_i, bits_i
    return budget, budget


# ----------------------------------------------------------------------------- strategies
@st.composite
def marginal_scenarios(draw) -> Scenario:
    """Random scenario values (``test_properties.scenario_kwargs``) or the defaults, each with a
    random after-rejection intercept shift."""
    kw = draw(st.one_of(scenario_kwargs(), st.just({})))
    kw["after_reject_a0_shift"] = float(draw(st.floats(-3.0, 3.0)))
    return Scenario(**kw)


# no subnormal floats: XLA on CPU flushes them to zero while the Python reference keeps them;
# mostly the bulk of the entropy law (where α is not tiny), sometimes far into the tail
entropies = hnp.arrays(
    np.float64,
    GMAX,
    elements=st.one_of(
        st.floats(0.0, 3.0, allow_subnormal=False),
        st.floats(0.0, 12.0, allow_subnormal=False),
        st.sampled_from([0.0, 0.5, 2.0]),
    ),
)
weights = st.one_of(st.just(0.0), log_uniform(1e-6, 1e2), log_uniform(1e-4, 1e4))  # V and Z
rates = log_uniform(1e3, 1e9)

_exit = jax.jit(marginal_exit, static_argnums=1)
_gains = jax.jit(marginal_gains, static_argnums=1)


def _run(s, payload, H, budget, V, Z, r, r_dl, after_reject=False):
    sent, passes = _exit(s, payload, jnp.asarray(H), budget, V, Z, r, r_dl, after_reject)
    return int(sent), int(passes)


# ----------------------------------------------------------------------------- (a) reference
@given(
    s=marginal_scenarios(),
    payload=st.sampled_from(PAYLOADS),
    H=entropies,
    budget=st.integers(0, GMAX),
    V=weights,
    Z=weights,
    r=rates,
    r_dl=rates,
    after_reject=st.booleans(),
)
def test_matches_literal_reference(s, payload, H, budget, V, Z, r, r_dl, after_reject):
    got = _run(s, payload, H, budget, V, Z, r, r_dl, after_reject)
    want = marginal_reference(s, payload, H, budget, V, Z, r, r_dl, after_reject)
    note(f"got {got}, reference {want}")
    assert got == want


def test_reference_exercises_every_outcome():
    """The reference comparison is not vacuous at the defaults: with a mix of easy and hard
    positions the rule exits at an interior position, and with all-easy positions it sends all."""
    s = Scenario()
    r, r_dl = 5e6, 5e6
    H_mixed = np.array([0.1, 0.5, 2.0, 3.0, 0.2, 4.0, 5.0, 0.1, 0.1, 6.0])
    got = _run(s, "topp", H_mixed, GMAX, 0.1, 1.0, r, r_dl)
    assert got == marginal_reference(s, "topp", H_mixed, GMAX, 0.1, 1.0, r, r_dl)
    assert 0 < got[0] < GMAX and got[1] == got[0] + 1
    H_easy = np.full(GMAX, 0.05)
    assert _run(s, "topp", H_easy, GMAX, 0.1, 1.0, r, r_dl) == (GMAX, GMAX)
    # the after-rejection intercept is used at position 1 only when the round follows a rejection
    s_rej = Scenario(after_reject_a0_shift=-4.0)
    H_hard1 = np.array([2.5] + [0.2] * (GMAX - 1))
    assert _run(s_rej, "topp", H_hard1, GMAX, 0.1, 1.0, r, r_dl, False) == (GMAX, GMAX)
    assert _run(s_rej, "topp", H_hard1, GMAX, 0.1, 1.0, r, r_dl, True) == (0, 1)


# ----------------------------------------------------------------------------- (b) invariants
@given(
    s=marginal_scenarios(),
    payload=st.sampled_from(PAYLOADS),
    H=entropies,
    budget=st.integers(0, GMAX),
    V=weights,
    Z=st.tuples(weights, weights).map(sorted),
    r=rates,
    r_dl=rates,
)
def test_bounds_and_monotone_in_queue(s, payload, H, budget, V, Z, r, r_dl):
    """``0 ≤ sent ≤ γ̃``, ``passes ∈ {sent, sent + 1}``, ``passes ≤ γ̃`` (``= γ̃`` without an exit),
    and a larger queue never sends more tokens on the same round.

    Proof of the monotonicity: the pass energy cancels in ``dE_i = E(i, i) − E(i−1, i) =
    P_tx (B_i − B_{i−1}) / r ≥ 0`` (also in floating point: ``E`` is a monotone function of the
    nondecreasing cumulative bits), ``V dT_i`` does not depend on ``Z`` and ``Z ↦ fl(Z dE_i)`` is
    nondecreasing, so each position's stop flag ``¬(V dT_i > Z dE_i)`` can only switch on as
    ``Z`` grows; the first stop comes no later.
    """
    z_lo, z_hi = Z
    sent_lo, passes_lo = _run(s, payload, H, budget, V, z_lo, r, r_dl)
    sent_hi, passes_hi = _run(s, payload, H, budget, V, z_hi, r, r_dl)
    for sent, passes in ((sent_lo, passes_lo), (sent_hi, passes_hi)):
        assert 0 <= sent <= budget
        assert passes in (sent, sent + 1)
        assert passes <= budget
        if passes == sent:  # no exit
            assert sent == budget
    assert sent_hi <= sent_lo


@given(s=marginal_scenarios(), payload=st.sampled_from(PAYLOADS), H=entropies, r=rates, r_dl=rates)
def test_energy_gain_nonnegative_and_pass_sunk(s, payload, H, r, r_dl):
    """``dE_i ≥ 0`` exactly, and equals the uplink energy of token ``i`` alone (the pass cancels)."""
    _, d_e = _gains(s, payload, jnp.asarray(H), r, r_dl)
    d_e = np.asarray(d_e)
    assert np.all(d_e >= 0.0)
    bits = np.array([_token_bits(s, payload, float(h)) for h in H])
    cum = np.concatenate([[0.0], np.cumsum(bits)])
    tx = float(s.P_tx) * (cum[1:] - cum[:-1]) / r
    # E(i, ·) is ~ i e_d + tx; their difference loses up to a few ulp of the larger term
    scale = np.arange(1, GMAX + 1) * float(s.e_d) + float(s.P_tx) * cum[1:] / r
    np.testing.assert_allclose(d_e, tx, rtol=0, atol=float(np.max(scale)) * 8 * np.finfo(float).eps)


@given(
    kw=scenario_kwargs(),
    payload=st.sampled_from(["topp", "full"]),
    H=entropies,
    budget=st.integers(0, GMAX),
    V=log_uniform(1e-4, 1e4),
    rate_factor=log_uniform(4.0, 1e3),
)
def test_free_energy_and_sure_acceptance_sends_everything(kw, payload, H, budget, V, rate_factor):
    """``Z = 0``, ``V > 0`` and ``α`` close to 1 at every position: the whole budget is sent.

    With ``Z = 0`` token ``i`` is sent iff ``N̂_i / D_i > N̂_{i−1} / D'_{i−1}`` where ``N̂_i = N̂_{i−1} +
    π_i`` (``π_i = Π_{l≤i} α_l``) and ``D_i = D'_{i−1} + Δ_i``, ``Δ_i = t_v1 + b(H_i)/r``; i.e. iff
    ``π_i D'_{i−1} > N̂_{i−1} Δ_i``. Since ``N̂_{i−1} ≤ γ_max`` and ``D'_{i−1} ≥ δ + t_v0``, it
    suffices that ``π_min (δ + t_v0) > γ_max Δ_max``. We force ``α ≥ σ(40 − 12) = 1 − 7e-13``
    (``a0 = 40``, ``a1 ≤ 1``, ``H ≤ 12``), ``t_v1 ≤ (δ + t_v0)/(4 γ_max)`` and
    ``r ≥ 4 γ_max b_max / (δ + t_v0)``: then ``γ_max Δ_max ≤ (δ + t_v0)/2``, a factor ~2 margin.
    """
    fixed = kw["delta"] + kw["t_v0"]
    kw = dict(kw, a0=40.0, a1=min(kw["a1"], 1.0), t_v1=min(kw["t_v1"], fixed / (4 * GMAX)))
    s = Scenario(**kw)
    b_max = max(_token_bits(s, payload, float(h)) for h in H)
    r = rate_factor * 4 * GMAX * b_max / fixed
    assert _run(s, payload, H, budget, V, 0.0, r, r) == (budget, budget)


def test_ties_stop_and_outage():
    """``V = Z = 0``: every comparison is the tie ``0 > 0``, which stops at position 1. Budget 0 (the
    rollout's outage) returns ``(0, 0)`` even at a rate so small that the utilities overflow."""
    s = Scenario()
    H = np.full(GMAX, 0.1)
    assert _run(s, "topp", H, GMAX, 0.0, 0.0, 5e6, 5e6) == (0, 1)
    for r in (1e-300, 0.0):
        assert _run(s, "topp", H, 0, 0.1, 3.0, r, r) == (0, 0)


# ----------------------------------------------------------------------------- policy wiring
@pytest.mark.parametrize("cls", [Gelato, GreedyThroughput, LyapunovOnly])
def test_exact_proxy_with_marginal_is_refused(cls):
    with pytest.raises(ValueError, match=r"exit='marginal'.*proxy='exact'.*allowed"):
        cls(proxy="exact", exit="marginal")
    with pytest.raises(ValueError, match=r"exit='marginal'.*proxy='exact'"):
        cls(proxy="exact", exit="bucket").replace(exit="marginal")
    cls(proxy="exact", exit="bucket")  # the allowed combinations still build
    cls(proxy="mean", exit="marginal")
    cls(proxy="ewma", exit="marginal")


def test_cli_refuses_exact_with_marginal(capsys):
    from gelato_jax.cli import main

    rc = main(["simulate", "--set", "proxy=exact", "--set", "exit=marginal", "--quiet", "--rounds", "1",
               "--realizations", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and "proxy='exact'" in err and "exit='marginal'" in err


def test_lm_mode_maps_every_gelato_exit():
    """LM mode runs the surrogate's own rule for each exit (tests/test_lm_inner_loops.py checks the
    rounds themselves)."""
    from gelato_jax.lm.simulate import lm_inner_loop

    for m in ("bucket", "none", "marginal"):
        assert lm_inner_loop(Gelato(exit=m)) == m


# ----------------------------------------------------------------------------- (c) rollout
def test_rollout_uses_the_round_observation_and_keeps_energy_accounting():
    """Every round of a ``Gelato(exit="marginal")`` rollout equals the literal rule evaluated at that
    round's budget, queue, rates and after-rejection flag (previous round rejected a draft or
    exited; position 1 then has the scaled entropy and shifted intercept); the queue follows
    ``Z_{t+1} = max(Z_t + E_t − a_t, 0)``, so ``Σ E_t ≤ Σ a_t + Z_T`` on every path."""
    from gelato_jax import channel

    s = Scenario(after_reject_H_scale=1.3, after_reject_a0_shift=-0.8)
    pol = Gelato(V=0.1, exit="marginal")
    exo = sample_exogenous(s, seed=3, realizations=4, rounds=150)
    tr = rollout(s, pol, exo)
    budget, sent, passes, accepted = (np.asarray(x) for x in (tr.budget, tr.sent, tr.passes, tr.accepted))
    Z, E, a, r = (np.asarray(x, np.float64) for x in (tr.queue, tr.energy, tr.arrival, tr.rate))
    r_dl = np.asarray(channel.downlink_rate(s, jnp.maximum(exo.channel_gain, s.h_min)))
    H = np.asarray(exo.entropy)
    R, T = budget.shape
    exits = after = 0
    for i in range(R):
        rejected = False
        for t in range(T):
            h = H[i, t].copy()
            if rejected:
                h[0] *= 1.3
            want = marginal_reference(s, "topp", h, int(budget[i, t]), 0.1, Z[i, t], r[i, t], r_dl[i, t], rejected)
            assert (int(sent[i, t]), int(passes[i, t])) == want, (i, t)
            exits += want[1] > want[0]
            after += rejected
            rejected = bool(accepted[i, t] < sent[i, t] or passes[i, t] > sent[i, t])
    assert exits > 0 and after > 0  # both branches of the exit and of the after-rejection law occur
    np.testing.assert_array_equal(Z[:, 1:], np.maximum(Z[:, :-1] + E[:, :-1] - a[:, :-1], 0.0))
    Z_T = np.maximum(Z[:, -1] + E[:, -1] - a[:, -1], 0.0)
    assert np.all(E.sum(1) <= a.sum(1) + Z_T + 1e-12 * (E.sum(1) + a.sum(1)))


@pytest.mark.slow
def test_compare_exits_at_defaults():
    """Report-only comparison (no winner is asserted: the marginal rule is myopic and the mean
    proxy ignores every exit, so neither ordering follows from the math). Prints throughput,
    energy and queue of the three inner loops on common random numbers."""
    s = Scenario()
    rows = {}
    for ex in ("none", "bucket", "marginal"):
        res = simulate(s, Gelato(exit=ex), seed=0, realizations=32, rounds=1000)
        rows[ex] = {k: float(np.mean(getattr(res, k))) for k in ("throughput", "energy", "queue_mean", "sent", "passes")}
        assert np.all(np.isfinite(res.throughput)) and np.all(res.energy > 0)
    for ex, row in rows.items():
        print(ex, {k: round(v, 4) for k, v in row.items()})
