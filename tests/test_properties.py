"""Property-based tests of the per-round building blocks (issue 9, invariants 1, 2, 4, 6, 7).

Every test draws *values* (scenario leaves, queues, channels, entropies) with hypothesis and keeps
*shapes* and static fields fixed, so each jitted function compiles once per test. The reference
values are computed in numpy directly from docs/model.md §2, §3, §5, §6, not from the library's
helpers. Profiles: ``ci`` (default, derandomized) and ``dev`` (``HYPOTHESIS_PROFILE=dev``).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gelato_jax import Scenario, channel, costs
from gelato_jax.controller import dpp_budget
from gelato_jax.early_exit import leaky_bucket_exit, no_exit
from gelato_jax.policies import Gelato, RoundObs
from gelato_jax.testing import strategies as gst
from gelato_jax.testing.strategies import fading, log_uniform, scenario_kwargs  # noqa: F401 (re-exported)

GMAX = 10  # Scenario().gamma_max: every test keeps the default shape
REL = 1e-9  # relative tolerance separating "numerically tied" budgets in the float64 references


# ----------------------------------------------------------------------------- strategies
# one home: gelato_jax.testing.strategies (the public strategies users test their policies with);
# log_uniform and scenario_kwargs are re-exported here for test_marginal_exit
scenarios = gst.scenarios()  # the 24 leaves of the round's formulas, static fields at their defaults


# ----------------------------------------------------------------------------- numpy references
def np_rates(s: Scenario, h):
    """docs/model.md §2: uplink/downlink Shannon rates in numpy (float64)."""
    g0 = 10.0 ** (-(128.1 + 37.6 * np.log10(s.d / 1000.0)) / 10.0)
    n0 = 10.0 ** ((s.N0_dBm_Hz + s.NF_dB - 30.0) / 10.0)
    h = np.asarray(h, np.float64)
    r = s.W * np.log1p(s.P_tx * g0 * h / (n0 * s.W)) / np.log(2.0)
    r_dl = s.W_dl * np.log1p(s.P_edge * g0 * h / (n0 * s.W_dl)) / np.log(2.0)
    return r, r_dl


def np_bits_per_token(s: Scenario, payload: str, b_bar_topp: float) -> float:
    if payload == "topp":
        return b_bar_topp
    if payload == "full":
        return s.b_id + s.V_vocab * s.b_prob
    return s.b_id + s.b_prob


def np_proxy(s: Scenario, payload: str, alpha_bar, b_bar_topp, rate, rate_dl):
    """docs/model.md §5 mean proxy for γ = 0..γ_max: (N̂, D̂, Ê), broadcast over leading rate axes."""
    g = np.arange(s.gamma_max + 1, dtype=np.float64)
    rate = np.asarray(rate, np.float64)[..., None]
    rate_dl = np.asarray(rate_dl, np.float64)[..., None]
    n_hat = np.cumsum(float(alpha_bar) ** g)
    bits = g * np_bits_per_token(s, payload, float(b_bar_topp))
    bits_dl = s.b_dl + 0.0 * g
    if payload == "scalar":
        bits_dl = bits_dl + (1.0 - float(alpha_bar) ** g) * s.V_vocab * s.b_prob
    with np.errstate(divide="ignore", invalid="ignore"):
        air = np.where(bits > 0, bits / rate, 0.0)
        air_dl = np.where(bits_dl > 0, bits_dl / rate_dl, 0.0)
    tau_d, e_d = s.c_d / s.f, s.kappa * s.c_d * s.f**2
    d_hat = g * tau_d + air + s.t_v0 + s.t_v1 * g + s.delta + air_dl
    e_hat = g * e_d + s.P_tx * air
    return n_hat, d_hat, e_hat


def assert_is_argmax(chosen, utility, allowed, label=""):
    """``chosen`` maximises ``utility`` over ``allowed`` (float64 reference, relative tolerance
    ``REL`` for numerical ties); when the maximiser is unique beyond that tolerance it must be
    exactly it, and no smaller allowed γ may be strictly better."""
    u = np.where(allowed, utility, -np.inf)
    best = np.max(u)
    scale = np.max(np.abs(np.where(allowed, utility, 0.0))) + 1e-300
    near = u >= best - REL * scale
    note(f"{label} chosen={chosen} U={u} near={np.flatnonzero(near)}")
    assert allowed[chosen], f"{label}: chose a disallowed budget {chosen}"
    assert near[chosen], f"{label}: budget {chosen} is not a maximiser: U={u}"
    if near.sum() == 1:
        assert chosen == int(np.argmax(near)), label
    # smallest γ on ties: nothing below the choice is better by more than rounding
    assert np.all(u[:chosen] <= u[chosen] + REL * scale), label


# ----------------------------------------------------------------------------- jitted units
@jax.jit
def _gelato_decision(scenario, policy, queue, h):
    """One outer-loop decision of ``policy`` at queue ``queue`` and fading ``h``."""
    aux = policy.precompute(scenario)
    rate = channel.uplink_rate(scenario, h)
    rate_dl = channel.downlink_rate(scenario, h)
    outage = channel.in_outage(scenario, rate)
    obs = RoundObs(jnp.zeros((), jnp.int32), queue, h, rate, rate_dl, outage)
    budget = policy.choose_budget(scenario, aux, policy.init_state(scenario, aux), obs)
    return budget, aux.alpha_bar, aux.topp_bits, rate, rate_dl, outage


@jax.jit
def _budget_grid(scenario, policy, V, queue, h):
    """Budgets over a grid of ``(V, queue)`` pairs (vmapped), same channel ``h``."""
    aux = policy.precompute(scenario)
    rate = channel.uplink_rate(scenario, h)
    rate_dl = channel.downlink_rate(scenario, h)
    outage = channel.in_outage(scenario, rate)

    def one(v, z):
        pol = policy.replace(V=v)  # tracer leaves are not re-validated
        obs = RoundObs(jnp.zeros((), jnp.int32), z, h, rate, rate_dl, outage)
        return pol.choose_budget(scenario, aux, pol.init_state(scenario, aux), obs)

    return jax.vmap(one)(V, queue)


# ----------------------------------------------------------------------------- invariant 1
PAYLOADS = ["topp", "full", "scalar"]


def _check_bruteforce(payload, scen, V, Z, h):
    pol = Gelato(V=V, payload=payload, exit="none")
    budget, ab, bb, rate, rate_dl, outage = _gelato_decision(scen, pol, Z, h)
    budget = int(budget)
    r_np, rdl_np = np_rates(scen, h)
    np.testing.assert_allclose([float(rate), float(rate_dl)], [r_np, rdl_np], rtol=1e-9)
    n_hat, d_hat, e_hat = np_proxy(scen, payload, ab, bb, rate, rate_dl)
    if abs(r_np - scen.r_min) > 1e-9 * max(r_np, scen.r_min):  # the outage flag away from its boundary
        assert bool(outage) == (r_np < scen.r_min)
    allowed = (np.arange(GMAX + 1) == 0) | (not bool(outage))
    if bool(outage):
        assert budget == 0
    u = V * n_hat / d_hat - Z * e_hat
    assert_is_argmax(budget, u, allowed, f"payload={payload}")


@pytest.mark.parametrize("payload", PAYLOADS)
@given(
    scen=scenarios,
    V=st.one_of(log_uniform(1e-4, 1e4), st.just(0.0)),
    Z=st.one_of(log_uniform(1e-6, 1e6), st.just(0.0)),
    h=fading,
)
def test_gelato_budget_is_bruteforce_argmax(payload, scen, V, Z, h):
    """Invariant 1: the chosen budget maximises ``V T̂ − Z Ê`` over ``Γ_t`` (numpy brute force);
    smallest γ on ties; only γ = 0 in outage."""
    _check_bruteforce(payload, scen, V, Z, h)


@pytest.mark.parametrize("payload", PAYLOADS)
@given(
    scen=scenarios,
    V=log_uniform(1e-4, 1e4),
    gam=st.integers(1, GMAX),
    eps=st.floats(-0.02, 0.02),
    h=log_uniform(1e-2, 20.0),
)
def test_gelato_budget_bruteforce_near_switching_queue(payload, scen, V, gam, eps, h):
    """Invariant 1 where it is delicate: ``Z`` within 2 % of the queue
    ``V (T̂(γ) − T̂(γ−1)) / (Ê(γ) − Ê(γ−1))`` at which budgets γ−1 and γ tie, i.e. where the
    choice flips."""
    _, ab, bb, rate, rate_dl, _ = _gelato_decision(scen, Gelato(V=V, payload=payload), 0.0, h)
    n_hat, d_hat, e_hat = np_proxy(scen, payload, ab, bb, rate, rate_dl)
    t_hat = n_hat / d_hat
    gam = 1 + (gam - 1) % max(int(np.argmax(t_hat)), 1)  # a pair below the greedy budget
    crit = V * abs(t_hat[gam] - t_hat[gam - 1]) / (e_hat[gam] - e_hat[gam - 1])
    _check_bruteforce(payload, scen, V, float(crit * (1.0 + eps)), h)


@pytest.mark.parametrize("payload", ["topp", "scalar"])
@given(
    scen=scenarios,
    V=st.one_of(log_uniform(1e-300, 1e300), st.sampled_from([1e308, 1.7e308, 2.3e-308])),
    Z=st.one_of(log_uniform(1e-300, 1e300), st.sampled_from([0.0, 1e308, 2.3e-308])),
    h=fading,
)
def test_gelato_budget_exact_for_extreme_V_and_Z(payload, scen, V, Z, h):
    """Invariant 1 (and numerical hardening) for ``V``, ``Z`` anywhere in the float64 range: the
    reference objective is scaled by ``max(V, Z)`` in numpy (the argmax does not change), the
    library must not overflow ``V T̂`` (``V = 1e308`` is the greedy limit, not γ = 0).
    Subnormal ``V`` or ``Z`` (< 2.2e-308) are excluded: XLA on CPU flushes subnormal inputs to
    zero, so ``V = 5e-324`` acts as ``V = 0``."""
    pol = Gelato(V=V, payload=payload, exit="none")
    budget, ab, bb, rate, rate_dl, outage = _gelato_decision(scen, pol, Z, h)
    n_hat, d_hat, e_hat = np_proxy(scen, payload, ab, bb, rate, rate_dl)
    m = max(V, Z)
    u = (V / m) * n_hat / d_hat - (Z / m) * e_hat
    allowed = (np.arange(GMAX + 1) == 0) | (not bool(outage))
    assert_is_argmax(int(budget), u, allowed, f"V={V:g} Z={Z:g}")


@given(
    tp=hnp.arrays(np.float64, GMAX + 1, elements=st.sampled_from([0.0, 1.0, 2.0, 3.0])),
    en=hnp.arrays(np.float64, GMAX + 1, elements=st.sampled_from([0.0, 0.5, 1.0, 2.0])),
    V=st.sampled_from([0.0, 1.0, 2.0]),
    Z=st.sampled_from([0.0, 1.0, 4.0]),
    outage=st.booleans(),
)
def test_dpp_budget_exact_ties_pick_smallest(tp, en, V, Z, outage):
    """Invariant 1 with exact ties: small dyadic values make ``V T − Z E`` exact in floating
    point, so the smallest maximiser is well defined and must be returned; outage gives 0."""
    got = int(jax.jit(dpp_budget)(V, Z, tp, en, outage))
    u = V * tp - Z * en
    want = 0 if outage else int(np.flatnonzero(u == u.max())[0])
    assert got == want


@given(
    tp=hnp.arrays(np.float64, GMAX + 1, elements=st.floats(0.0, 1e3, allow_subnormal=False)),
    en=hnp.arrays(np.float64, GMAX + 1, elements=st.floats(0.0, 1e2, allow_subnormal=False)),
    V=log_uniform(1e-3, 1e3),
    Z=log_uniform(1e-3, 1e3),
)
def test_dpp_budget_argmax_on_arbitrary_objectives(tp, en, V, Z):
    """Invariant 1 for arbitrary (not proxy-shaped) objective vectors."""
    got = int(jax.jit(dpp_budget)(V, Z, tp, en, False))
    assert_is_argmax(got, V * tp - Z * en, np.ones(GMAX + 1, bool))


# ----------------------------------------------------------------------------- invariant 2
NGRID = 16


@pytest.mark.parametrize("payload", ["topp", "scalar"])
@given(
    scen=scenarios,
    h=log_uniform(1e-3, 50.0),
    V=log_uniform(1e-3, 1e3),
    Z=log_uniform(1e-4, 1e4),
    zs=st.lists(log_uniform(1e-6, 1e6), min_size=NGRID - 1, max_size=NGRID - 1),
    vs=st.lists(log_uniform(1e-5, 1e5), min_size=NGRID - 2, max_size=NGRID - 2),
)
def test_budget_monotone_in_queue_and_V(payload, scen, h, V, Z, zs, vs):
    """Invariant 2: for a fixed channel the budget is non-increasing in ``Z`` and non-decreasing
    in ``V`` (``Ê`` strictly increases with γ, so the objective has increasing differences)."""
    pol = Gelato(V=1.0, payload=payload, exit="none")
    z_grid = np.sort(np.array([0.0, *zs]))
    b_z = np.asarray(_budget_grid(scen, pol, np.full(NGRID, V), z_grid, h))
    note(f"Z grid {z_grid} -> {b_z}")
    assert np.all(np.diff(b_z) <= 0), (z_grid, b_z)
    v_grid = np.sort(np.array([0.0, *vs, 1e308]))  # up to the overflow-prone greedy limit
    b_v = np.asarray(_budget_grid(scen, pol, v_grid, np.full(NGRID, Z), h))
    note(f"V grid {v_grid} -> {b_v}")
    assert np.all(np.diff(b_v) >= 0), (v_grid, b_v)


# ----------------------------------------------------------------------------- invariant 7
@given(scen=scenarios, V=log_uniform(1e-4, 1e4), h=fading)
def test_zero_queue_is_greedy_proxy_throughput(scen, V, h):
    """Invariant 7: with ``Z = 0`` and ``V > 0`` GELATO picks the maximiser of the proxy
    throughput ``T̂ = N̂/D̂`` (greedy throughput)."""
    budget, ab, bb, rate, rate_dl, outage = _gelato_decision(scen, Gelato(V=V, exit="none"), 0.0, h)
    n_hat, d_hat, _ = np_proxy(scen, "topp", ab, bb, rate, rate_dl)
    allowed = (np.arange(GMAX + 1) == 0) | (not bool(outage))
    assert_is_argmax(int(budget), n_hat / d_hat, allowed, "greedy")


@given(scen=scenarios, Z=log_uniform(1e-300, 1e300), h=fading)
def test_v_zero_spends_nothing_once_queue_positive(scen, Z, h):
    """Invariant 7: with ``V = 0`` and ``Z > 0`` the budget is 0 (the only zero-energy action)."""
    budget = _gelato_decision(scen, Gelato(V=0.0), Z, h)[0]
    assert int(budget) == 0


@given(
    scen=scenarios,
    V=log_uniform(1e-6, 1e3),
    h=log_uniform(1e-3, 50.0),
    factor=st.floats(1.0, 1e6),
)
def test_queue_above_threshold_stops_drafting(scen, V, h, factor):
    """Invariant 7, quantitative: drafting (γ ≥ 1) needs ``Z ≤ V max_γ (T̂(γ) − T̂(0)) / Ê(γ)``,
    a threshold proportional to V; above it GELATO drafts nothing, so as V → 0 any positive queue
    stops energy spending."""
    pol = Gelato(V=V, exit="none")
    _, ab, bb, rate, rate_dl, _ = _gelato_decision(scen, pol, 0.0, h)
    n_hat, d_hat, e_hat = np_proxy(scen, "topp", ab, bb, rate, rate_dl)
    t_hat = n_hat / d_hat
    thresh = V * np.max((t_hat[1:] - t_hat[0]) / e_hat[1:])
    Z = max(thresh, 0.0) * factor * (1 + 1e-6) + 1e-300
    assert int(_gelato_decision(scen, pol, Z, h)[0]) == 0


# ----------------------------------------------------------------------------- invariant 4
def bucket_reference(H, budget, H_th, Theta_th):
    """docs/model.md §6 leaky bucket, literally: returns (sent, passes)."""
    theta = 0.0
    for i in range(budget):
        theta = max(0.0, theta + float(H[i]) - H_th)
        if theta > Theta_th:
            return i, i + 1
    return budget, budget


_exit = jax.jit(leaky_bucket_exit)
# no subnormal floats: XLA on CPU flushes them to zero (a 5e-324 entropy is 0 there), while the
# Python reference keeps them
entropy_values = st.one_of(st.floats(0.0, 12.0, allow_subnormal=False), st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.5]))
thresholds = st.one_of(st.floats(0.0, 6.0, allow_subnormal=False), st.sampled_from([0.0, 0.5, 1.0, 1.5]))


@given(
    H=hnp.arrays(np.float64, GMAX, elements=entropy_values),
    budget=st.integers(0, GMAX),
    H_th=st.tuples(thresholds, thresholds).map(sorted),
    Theta_th=st.tuples(thresholds, thresholds).map(sorted),
)
def test_leaky_bucket_bounds_reference_and_monotone(H, budget, H_th, Theta_th):
    """Invariant 4: ``0 ≤ sent ≤ budget``, ``passes ∈ {sent, sent + 1}``, ``passes ≤ budget``,
    equal to the literal recursion; raising ``H_th`` or ``Theta_th`` never reduces ``sent`` on the
    same entropies; ``exit="none"`` sends the whole budget."""
    lo_h, hi_h = H_th
    lo_t, hi_t = Theta_th
    out = {}
    for key, (ht, tt) in {"base": (lo_h, lo_t), "H_up": (hi_h, lo_t), "T_up": (lo_h, hi_t)}.items():
        sent, passes = (int(x) for x in _exit(H, budget, ht, tt))
        assert 0 <= sent <= budget and passes in (sent, sent + 1) and passes <= budget
        assert (sent, passes) == bucket_reference(H, budget, ht, tt), key
        out[key] = sent
    assert out["H_up"] >= out["base"] and out["T_up"] >= out["base"]
    assert tuple(int(x) for x in no_exit(H, budget)) == (budget, budget)


# ----------------------------------------------------------------------------- invariant 6
@jax.jit
def _round_costs(scenario, entropy, sent, passes, rate, rate_dl, rejected):
    out = {}
    for payload in costs.PAYLOADS:
        bits = costs.uplink_bits(scenario, payload, entropy, sent)
        bits_dl = costs.downlink_bits(scenario, payload, rejected)
        out[payload] = (
            costs.latency(scenario, passes, sent, bits, bits_dl, rate, rate_dl),
            costs.energy(scenario, passes, bits, rate),
        )
    return out


@st.composite
def sent_passes_pairs(draw):
    """Two (sent, passes) pairs, coordinatewise ordered, passes ∈ {sent, sent + 1} ≤ γ_max."""
    l1 = draw(st.integers(0, GMAX))
    l2 = draw(st.integers(l1, GMAX))
    p1 = l1 + (draw(st.booleans()) if l1 < GMAX else 0)
    p2 = l2 + (draw(st.booleans()) if l2 < GMAX else 0)
    assume(p1 <= p2)
    return (l1, p1), (l2, p2)


@given(
    scen=scenarios,
    H=hnp.arrays(np.float64, GMAX, elements=st.floats(0.0, 15.0)),
    pairs=sent_passes_pairs(),
    r=st.tuples(log_uniform(1e-6, 1e9), log_uniform(1e-6, 1e9)).map(sorted),
    r_dl=st.tuples(log_uniform(1e-6, 1e9), log_uniform(1e-6, 1e9)).map(sorted),
    rejected=st.booleans(),
)
def test_costs_monotone_and_zero_energy_at_zero_budget(scen, H, pairs, r, r_dl, rejected):
    """Invariant 6: latency and energy are non-decreasing in passes and sent tokens and
    non-increasing in the rates (exactly, in floating point); energy is 0 when nothing is
    drafted."""
    (l1, p1), (l2, p2) = pairs
    r_lo, r_hi = r
    rdl_lo, rdl_hi = r_dl
    small = _round_costs(scen, H, l1, p1, r_hi, rdl_hi, rejected)
    more_work = _round_costs(scen, H, l2, p2, r_hi, rdl_hi, rejected)
    slower = _round_costs(scen, H, l1, p1, r_lo, rdl_lo, rejected)
    for payload in costs.PAYLOADS:
        (d0, e0), (d1, e1), (d2, e2) = (float(x) for x in small[payload]), *(
            tuple(float(x) for x in c[payload]) for c in (more_work, slower)
        )
        assert d0 <= d1 and e0 <= e1, (payload, "more passes/tokens")
        assert d0 <= d2 and e0 <= e2, (payload, "lower rate")
        assert all(math.isfinite(x) and x >= 0 for x in (d0, e0, d1, e1, d2, e2))
    zero = _round_costs(scen, H, 0, 0, r_lo, rdl_lo, rejected)
    for payload in costs.PAYLOADS:
        assert float(zero[payload][1]) == 0.0


@pytest.mark.parametrize("payload", PAYLOADS)
@given(
    scen=scenarios,
    r=st.tuples(log_uniform(1e-3, 1e9), log_uniform(1e-3, 1e9)).map(sorted),
    ab=st.floats(0.0, 1.0),
    bb=st.floats(1.0, 1e5),
)
def test_proxy_costs_monotone_in_budget_and_rate(payload, scen, r, ab, bb):
    """Invariant 6 for the mean proxy: ``D̂``, ``Ê`` non-decreasing in γ and non-increasing in
    the rate; ``Ê(0) = 0``; ``N̂`` non-decreasing in γ."""
    fn = jax.jit(costs.proxy_costs, static_argnums=1)
    lo, hi = (fn(scen, payload, ab, bb, x, x) for x in r)
    for pc in (lo, hi):
        n, d, e = (np.asarray(x) for x in pc)
        assert np.all(np.diff(n) >= 0) and np.all(np.diff(d) >= 0) and np.all(np.diff(e) >= 0)
        assert e[0] == 0.0 and np.all(np.isfinite(d)) and np.all(np.isfinite(e))
    assert np.all(np.asarray(lo.latency) >= np.asarray(hi.latency))
    assert np.all(np.asarray(lo.energy) >= np.asarray(hi.energy))
