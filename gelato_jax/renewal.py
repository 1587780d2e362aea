r"""Tokens per second under an average-power budget: the time-average (renewal) problem, docs/model.md §11.

The paper's controller (§5) maximises the mean of per-round ratios ``E[N_t/D_t]`` under an energy
budget per round. What a user experiences is tokens per second ``ΣN/ΣD``, and a battery budget is
a power ``ΣE/ΣD``. With i.i.d. rounds of variable length ``D_t ≥ D_min > 0`` the problem

.. math::  T^* = \max \frac{E[N]}{E[D]} \ \text{s.t.}\ \frac{E[E]}{E[D]} \le \bar P

over stationary randomised policies ``h ↦ p(γ | h)`` is a linear-fractional program (Neely,
"Dynamic optimization and learning for renewal systems", IEEE TAC 2013). This module has

* the per-budget conditional means ``(N̂, D̂, Ê)`` the problem needs (``renewal_costs``): the
  mean proxy of §5 (exact for ``exit="none"``: with i.i.d. entropies ``E[N | γ] = Σ_{j≤γ} ᾱ^j``
  and ``D``, ``E`` are linear in ``P``, ``L`` and the bits), or the exact means under the inner
  loop itself (``proxy="exact"``: ``build_table``, a fixed-seed sample of entropy vectors with
  the acceptance law in closed form given them, as ``gelato_jax.exact_proxy``). Unlike ``E[N/D]``,
  ``E[D | γ, h]`` is linear in the means, so no interpolation in the rate is needed;
* the optimum two independent ways on one quantisation of the fading law
  (``time_average_optimum``): the Charnes–Cooper LP (scipy ``linprog``, HiGHS) and Dinkelbach's
  iteration on ``F(θ) = min_{λ≥0} E_h max_γ [N − θD − λ(E − P̄D)]`` (root ``F(T*) = 0``);
* the per-round ratio rule of the controller (``ratio_theta``, ``ratio_budget``, used by
  ``Gelato`` when ``Scenario.objective == "time_average"``): ``θ(Z)`` is the root of
  ``Φ(θ) = E_h max_γ [V N̂ − Z(Ê − P̄D̂) − θ D̂]`` (decreasing in ``θ``), found by Dinkelbach's
  iteration on the fading nodes ``fading_nodes`` (finite and exact for a discrete law), and the
  round plays ``argmax_γ [V N̂ − Z(Ê − P̄D̂) − θ(Z) D̂]`` at its observed ``h``.

Units: ``N`` tokens, ``D`` s, ``E`` J, ``P̄`` W; ``T*`` tok/s; ``λ*`` tokens per J (the price of
energy in the Lagrangian), ``θ* = T*``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import channel, costs
from .policies.base import Policy, RoundObs
from .scenario import Scenario

__all__ = [
    "RenewalTable", "RenewalAux", "RenewalTables", "RenewalOptimum", "build_table", "renewal_costs", "table_costs",
    "fading_nodes", "node_costs", "ratio_theta", "ratio_objective", "ratio_budget", "renewal_tables",
    "time_average_optimum", "charnes_cooper_lp", "dinkelbach",
]


# ----------------------------------------------------------------------------- exact means
class RenewalTable(NamedTuple):
    """Exact per-budget means under the inner loop (arrays ``(γ_max+1,)``, index = budget ``γ̃``)."""

    mean_tokens: Any  # E[N | γ̃]
    mean_passes: Any  # E[P | γ̃]
    mean_sent: Any  # E[L | γ̃]
    mean_bits: Any  # E[B | γ̃] uplink bits
    p_reject: Any  # P(A < L | γ̃) (the scalar payload's downlink distribution is sent then)


class RenewalAux(NamedTuple):
    """``Gelato.precompute`` output under ``objective="time_average"`` (first two fields as
    ``ScenarioStats``): the exact table (``None`` for the mean proxy), the fading nodes and
    weights of the known-law ratio rule (``(K,)``) and, for a proxy that does not change over rounds,
    its tables at the nodes (``node_costs``)."""

    alpha_bar: Any
    topp_bits: Any
    table: Any
    h_nodes: Any
    h_weights: Any
    # (N̂, D̂, Ê, outage) at the nodes, when the proxy does not change over rounds (not ewma)
    node_tables: Any = None


def build_table(scenario: Scenario, *, payload: str, exit: str, H_th, Theta_th, samples: int | None = None,
                chunk: int | None = None) -> RenewalTable:
    """The exact means ``E[N]``, ``E[P]``, ``E[L]``, ``E[B]``, ``P(A < L)`` given the budget (JAX;
    call inside ``jit``), from the same fixed-seed entropy sample as ``gelato_jax.exact_proxy`` (the
    acceptance law given the entropies is closed-form, ``round_laws``). I.i.d. rounds only."""
    from . import exact_proxy

    samples = exact_proxy.EXACT_SAMPLES if samples is None else samples
    chunk = min(exact_proxy.EXACT_CHUNK if chunk is None else chunk, samples)
    if samples % chunk:
        raise ValueError(f"samples ({samples}) must be a multiple of chunk ({chunk})")
    costs.check_payload(payload)
    if exit not in ("bucket", "none"):
        raise ValueError(f"exit must be 'bucket' or 'none', got {exit!r}")
    dtype = jnp.result_type(float)
    G = scenario.gamma_max
    a = jnp.arange(G + 1, dtype=dtype)

    def body(acc, i):
        H = exact_proxy.table_entropies(scenario, chunk, dtype, i)
        L, P, B, pi = jax.vmap(
            lambda e: exact_proxy.round_laws(scenario, e, payload=payload, exit=exit, H_th=H_th, Theta_th=Theta_th))(H)
        n = jnp.sum(pi * (a + 1.0), axis=-1)  # (c, G+1) E[N | H, γ̃]
        rej = jnp.sum(jnp.where(a < L[..., None], pi, 0.0), axis=-1)  # P(A < L | H, γ̃)
        parts = (n, P.astype(dtype), L.astype(dtype), B, rej)
        return tuple(s + jnp.sum(x, axis=0) for s, x in zip(acc, parts)), None

    init = tuple(jnp.zeros((G + 1,), dtype) for _ in range(5))
    sums, _ = jax.lax.scan(body, init, jnp.arange(samples // chunk))
    return RenewalTable(*(s / samples for s in sums))


def table_costs(scenario: Scenario, payload: str, table: RenewalTable, rate, rate_dl) -> costs.ProxyCosts:
    """``(E[N], E[D], E[E])`` per budget at one round's rates: ``D`` and ``E`` are linear in
    ``P``, ``L``, ``B`` and the downlink bits (docs/model.md §3), so their means are exact."""
    bits_dl = scenario.b_dl + jnp.zeros_like(table.p_reject)
    if payload == "scalar":
        bits_dl = bits_dl + table.p_reject * scenario.V_vocab * scenario.b_prob
    d = costs.latency(scenario, table.mean_passes, table.mean_sent, table.mean_bits, bits_dl, rate, rate_dl)
    e = costs.energy(scenario, table.mean_passes, table.mean_bits, rate)
    return costs.ProxyCosts(table.mean_tokens, d, e)


def renewal_costs(scenario: Scenario, policy: Policy, aux, state, obs: RoundObs) -> costs.ProxyCosts:
    """``(N̂, D̂, Ê)`` of every budget at this round's rates for ``policy``'s proxy.

    ``proxy="exact"`` (``aux.table`` a ``RenewalTable``): exact means under the inner loop.
    Otherwise the mean proxy of §5 with the policy's acceptance estimate (``ewma``: its state;
    other policies: the scenario's ``ᾱ``)."""
    table = getattr(aux, "table", None)
    if isinstance(table, RenewalTable):
        return table_costs(scenario, policy.payload, table, obs.rate, obs.rate_dl)
    est = policy.acceptance_estimate(aux, state)
    return policy.mean_proxy(scenario, aux, est, obs)


# ----------------------------------------------------------------------------- the ratio rule
def fading_nodes(scenario: Scenario, n: int):
    """``(h (K,), w (K,))``: nodes and weights of the fading law for the known-law ratio rule.

    Exp(1) (Rayleigh; the stationary marginal of Gauss–Markov): the ``n`` equal-probability bins'
    probability midpoints ``−log(1 − (k + ½)/n)`` clamped at ``h_min``. A trace: its distinct values
    with their frequencies when there are at most ``n``, else ``n`` equal-count groups' medians.
    Numpy (the law does not depend on traced leaves except ``h_min``, applied by the caller)."""
    from .channels import fading_of

    return fading_of(scenario).law(scenario).nodes(n)


def node_costs(scenario: Scenario, policy: Policy, aux, state, h):
    """``(N̂, D̂, Ê, outage)`` at fading gains ``h (K,)``: ``(K, γ_max+1)`` arrays (JAX)."""

    def one(hk):
        hk = jnp.maximum(hk, scenario.h_min)
        rate = channel.uplink_rate(scenario, hk)
        rate_dl = channel.downlink_rate(scenario, hk)
        out = channel.in_outage(scenario, rate)
        obs = RoundObs(jnp.zeros((), jnp.int32), jnp.zeros_like(hk), hk, rate, rate_dl, out)
        pc = renewal_costs(scenario, policy, aux, state, obs)
        return pc.tokens, pc.latency, pc.energy, out

    return jax.vmap(one)(h)


def ratio_objective(V, Z, P_bar, theta, n_hat, d_hat, e_hat, outage):
    """``V N̂ − Z(Ê − P̄D̂) − θ D̂`` over the budgets (last axis), ``-inf`` where not allowed
    (``γ > 0`` in outage, or a NaN objective); ``γ = 0`` is always allowed."""
    u = V * n_hat - Z * (e_hat - P_bar * d_hat) - theta * d_hat
    g = jnp.arange(u.shape[-1])
    allowed = (g == 0) | (jnp.logical_not(jnp.asarray(outage)[..., None]) & jnp.logical_not(jnp.isnan(u)))
    return jnp.where(allowed, u, -jnp.inf)


def ratio_budget(V, Z, P_bar, theta, pc: costs.ProxyCosts, outage):
    """The ratio rule's budget (int32): ``argmax_γ [V N̂ − Z(Ê − P̄D̂) − θ D̂]``, smallest γ on
    ties, 0 in outage."""
    u = ratio_objective(V, Z, P_bar, theta, pc.tokens, pc.latency, pc.energy, outage)
    return jnp.argmax(u).astype(jnp.int32)


_RATIO_ITERS = 64


def ratio_theta(V, Z, P_bar, n_hat, d_hat, e_hat, outage, w):
    r"""``θ(Z)``: the root of ``Φ(θ) = Σ_k w_k max_γ [V N̂ − Z(Ê − P̄D̂) − θ D̂]`` on the fading
    nodes (``(K, γ_max+1)`` tables, weights ``w (K,)``).

    Dinkelbach's iteration: from ``θ_0 = ratio of the always-γ=0 policy``, ``π_j = argmax(num −
    θ_j D̂)`` per node and ``θ_{j+1} = Σ w num_{π_j} / Σ w D̂_{π_j}`` (``num = V N̂ − Z(Ê − P̄D̂)``).
    Each ``θ_j`` is the ratio of a policy, so ``θ_j ≤ θ(Z)``, the sequence increases, and it stops
    at the root after finitely many steps (finitely many deterministic node policies; at most
    ``_RATIO_ITERS``, in practice 2–5). JAX, traceable; ``Z`` a scalar."""
    num = V * n_hat - Z * (e_hat - P_bar * d_hat)
    dt = num.dtype

    def ratio(pol):
        sel = jnp.take_along_axis(num, pol[:, None], 1)[:, 0]
        den = jnp.take_along_axis(d_hat, pol[:, None], 1)[:, 0]
        return jnp.sum(w * sel) / jnp.sum(w * den)

    theta0 = ratio(jnp.zeros(num.shape[0], jnp.int32))

    def cond(c):
        i, th, prev = c
        return (i < _RATIO_ITERS) & (th > prev)

    def body(c):
        i, th, _ = c
        pol = jnp.argmax(ratio_objective(V, Z, P_bar, th, n_hat, d_hat, e_hat, outage), axis=1).astype(jnp.int32)
        return i + 1, jnp.maximum(ratio(pol), th), th

    _, th, _ = jax.lax.while_loop(cond, body, (jnp.zeros((), jnp.int32), theta0, jnp.asarray(-jnp.inf, dt)))
    return th


# ----------------------------------------------------------------------------- the optimum
@dataclasses.dataclass(frozen=True)
class RenewalTables:
    """``(N̂, D̂, Ê)`` of a policy's proxy on a quantisation of the fading law (numpy float64)."""

    h_nodes: np.ndarray  # (n,)
    weights: np.ndarray  # (n,) probabilities, sum 1
    outage: np.ndarray  # (n,) bool
    tokens: np.ndarray  # (n, γ_max+1) N̂
    latency: np.ndarray  # (n, γ_max+1) D̂ (s)
    energy: np.ndarray  # (n, γ_max+1) Ê (J)

    @property
    def allowed(self) -> np.ndarray:
        a = np.ones_like(self.tokens, dtype=bool)
        a[self.outage, 1:] = False
        return a


@jax.jit
def _tables(scenario, policy, h):
    aux = policy.precompute(scenario)
    state = policy.init_state(scenario, aux)
    state = policy.per_round_state(scenario, state)
    return node_costs(scenario, policy, aux, state, h)


def _as_time_average(scenario: Scenario, P_bar) -> Scenario:
    kw = {"objective": "time_average"}
    if P_bar is not None:
        kw["P_bar"] = P_bar
    return scenario.replace(**kw)


def renewal_tables(scenario: Scenario, policy: Policy | None = None, *, quantiles: int = 4096) -> RenewalTables:
    """The proxy tables on ``quantiles`` equal-probability bins of ``h`` (``gelato_jax.optimum``'s
    ``h_quantisation``: bins split at the outage threshold, probability midpoints), evaluated by the
    policy's own ``precompute`` under ``objective="time_average"`` in float64."""
    from .optimum import h_quantisation

    policy = _default_policy(policy)
    _, nodes, w, _, _, _ = h_quantisation(scenario, int(quantiles))
    n = len(nodes)
    pad = np.concatenate([nodes, np.ones(-n % 512)])
    with jax.enable_x64(True):
        N, D, E, out = _tables(scenario, policy, jnp.asarray(pad, jnp.float64))
        N, D, E = (np.asarray(x, np.float64)[:n] for x in (N, D, E))
        out = np.asarray(out, bool)[:n]
    if not all(np.all(np.isfinite(x)) for x in (N, D, E)):
        raise ValueError("the renewal proxy tables are not finite for this scenario (check its parameters)")
    return RenewalTables(nodes, w, out, N, D, E)


_LP_TOL = 1e-10


def charnes_cooper_lp(tab: RenewalTables, P_bar: float) -> dict[str, Any]:
    r"""The linear-fractional program by the Charnes–Cooper transform (HiGHS).

    Variables ``y_{kγ} = t·p(γ|k)`` and ``t = 1/Σ_k w_k Σ_γ p D``: maximise ``Σ w y N`` s.t.
    ``Σ w y D = 1``, ``Σ_γ y_{kγ} = t`` for every bin ``k``, ``Σ w y (E − P̄D) ≤ 0``, ``y, t ≥ 0``
    (``y = 0`` for ``γ > 0`` in outage). The optimum is ``T*``; the dual of the normalisation row is
    ``T*`` again and the dual of the power row is ``λ*`` (the Lagrangian price of energy).
    Returns ``T_star``, ``lambda_star``, ``probs (n, γ_max+1)``, ``power``, ``mean_latency``."""
    from scipy import sparse
    from scipy.optimize import linprog

    w, N, D, E = tab.weights, tab.tokens, tab.latency, tab.energy
    n, G1 = N.shape
    nv = n * G1 + 1
    c = np.concatenate([-(w[:, None] * N).ravel(), [0.0]])
    a_norm = np.concatenate([(w[:, None] * D).ravel(), [0.0]])[None, :]
    blocks = sparse.kron(sparse.eye(n, format="csr"), np.ones((1, G1)), format="csr")
    a_rows = sparse.hstack([blocks, -np.ones((n, 1))], format="csr")
    A_eq = sparse.vstack([sparse.csr_matrix(a_norm), a_rows], format="csr")
    b_eq = np.concatenate([[1.0], np.zeros(n)])
    A_ub = np.concatenate([(w[:, None] * (E - P_bar * D)).ravel(), [0.0]])[None, :]
    ub = np.concatenate([np.where(tab.allowed, np.inf, 0.0).ravel(), [np.inf]])
    res = linprog(c, A_ub=A_ub, b_ub=[0.0], A_eq=A_eq, b_eq=b_eq, bounds=np.stack([np.zeros(nv), ub], 1),
                  method="highs", options={"primal_feasibility_tolerance": _LP_TOL, "dual_feasibility_tolerance": _LP_TOL})
    if res.status != 0:
        raise RuntimeError(f"linprog (Charnes–Cooper) failed: {res.message}")
    y, t = res.x[:-1].reshape(n, G1), res.x[-1]
    p = np.clip(y / t, 0.0, None)
    p = p / p.sum(axis=1, keepdims=True)
    mN, mD, mE = (float(w @ (p * X).sum(axis=1)) for X in (N, D, E))
    return {"T_star": float(-res.fun), "lambda_star": float(-res.ineqlin.marginals[0]),
            "theta_dual": float(res.eqlin.marginals[0]), "probs": p, "power": mE / mD, "mean_latency": mD,
            "mean_tokens": mN, "mean_energy": mE}


def _price_policy(a, b, w, allowed, lam):
    """Per-bin argmax of ``a − λb`` (ties: smallest γ) and the mean of ``b`` under it."""
    g = np.where(allowed, a - lam * b, -np.inf)
    pol = np.argmax(g, axis=1)
    return pol, float(w @ np.take_along_axis(b, pol[:, None], 1)[:, 0])


def _inner(tab: RenewalTables, P_bar: float, theta: float):
    """``F(θ) = min_{λ≥0} Σ w max_γ [N − θD − λ(E − P̄D)]`` exactly: ``λ(θ)`` is where the mean
    ``e(λ) = E[E − P̄D]`` of the λ-policy (non-increasing) crosses 0, by bisection to ~1 ulp; the
    maximiser of ``E[N − θD]`` over power-feasible policies mixes the policies on the two sides.
    Returns ``(F, λ, mixed policy probs (n, γ_max+1))``."""
    w, allowed = tab.weights, tab.allowed
    a = tab.tokens - theta * tab.latency
    b = tab.energy - P_bar * tab.latency
    n, G1 = a.shape
    rows = np.arange(n)

    def onehot(pol):
        p = np.zeros((n, G1))
        p[rows, pol] = 1.0
        return p

    pol0, e0 = _price_policy(a, b, w, allowed, 0.0)
    if e0 <= 0.0:
        return float(w @ a[rows, pol0]), 0.0, onehot(pol0)
    lo, hi = 0.0, 1.0
    while _price_policy(a, b, w, allowed, hi)[1] > 0.0:
        lo, hi = hi, 2.0 * hi
        if hi > 1e300:
            raise RuntimeError("renewal: no price makes the power constraint hold")
    for _ in range(2000):
        mid = 0.5 * (lo + hi)
        if not lo < mid < hi:
            break
        if _price_policy(a, b, w, allowed, mid)[1] > 0.0:
            lo = mid
        else:
            hi = mid
    pa, ea = _price_policy(a, b, w, allowed, lo)  # e > 0
    pb, eb = _price_policy(a, b, w, allowed, hi)  # e ≤ 0
    q = ea / (ea - eb) if ea != eb else 0.0  # weight of the feasible side: (1−q)ea + q eb = 0
    probs = (1.0 - q) * onehot(pa) + q * onehot(pb)
    lam = hi
    F = float(w @ (probs * a).sum(axis=1))
    return F, lam, probs


def dinkelbach(tab: RenewalTables, P_bar: float, *, rtol: float = 1e-13, max_iter: int = 100) -> dict[str, Any]:
    r"""Dinkelbach's iteration ``θ_{j+1} = E_{π_j}[N]/E_{π_j}[D]`` with ``π_j`` the maximiser of
    ``F(θ_j) = min_{λ≥0} E_h max_γ [N − θ_j D − λ(E − P̄D)]`` over power-feasible randomised
    policies (``_inner``). ``F`` is convex and decreasing with ``F(T*) = 0``; from the always-γ=0
    policy's ratio the iterates increase to ``T*`` superlinearly. Returns ``T_star``,
    ``lambda_star``, ``F`` (at the last θ), ``iterations``, ``history`` (the θ_j) and ``probs``."""
    w = tab.weights
    theta = float(w @ tab.tokens[:, 0]) / float(w @ tab.latency[:, 0])
    hist = [theta]
    for it in range(1, max_iter + 1):
        F, lam, probs = _inner(tab, P_bar, theta)
        mN = float(w @ (probs * tab.tokens).sum(axis=1))
        mD = float(w @ (probs * tab.latency).sum(axis=1))
        new = mN / mD
        hist.append(new)
        if F <= rtol * abs(theta) * mD or new <= theta:
            theta = max(new, theta)
            break
        theta = new
    else:
        raise RuntimeError(f"Dinkelbach did not converge in {max_iter} iterations")
    F, lam, probs = _inner(tab, P_bar, theta)
    return {"T_star": theta, "lambda_star": lam, "F": F, "iterations": it, "history": hist, "probs": probs}


@dataclasses.dataclass(frozen=True)
class RenewalOptimum:
    r"""The time-average optimum (docs/model.md §11) and the constants of its bound.

    Attributes:
      T_star: Charnes–Cooper LP optimum ``max E[N]/E[D]`` s.t. ``E[E]/E[D] ≤ P̄`` (tok/s).
      T_star_dinkelbach: the same by Dinkelbach's iteration (tok/s).
      lambda_star: the price of energy ``λ*`` (tokens/J) from Dinkelbach's inner problem;
        ``lambda_star_lp``: the LP's dual of the power row.
      theta_star: ``θ* = T*`` (the root of ``F``), as Dinkelbach returns it.
      rel_diff: ``|T_star − T_star_dinkelbach| / T_star``.
      power: ``E[E]/E[D]`` of the LP policy (W, ``≤ P_bar``); mean_latency ``E[D]`` (s),
        mean_tokens ``E[N]``, mean_energy ``E[E]`` (J) per round under it.
      P_bar: the power budget (W). D_min: the shortest round (s, ``t_v0 + δ`` plus the γ=0 downlink
        at the best rate: the γ=0 airtime is positive, so ``t_v0 + δ`` is a valid lower bound).
      B: ``½ sup_{γ,h} E[(E − P̄D)²]`` over budgets and fading (J², from the worst-case round:
        ``max(E_max, P̄ D_max)²/2`` — see ``theory.renewal``). sigma2: ``Var(E − P̄D)`` under the
        optimal policy (J²), V_GL_prediction: ``σ²/(4 E[D])`` (second order, §8.8 in renewal form).
      iterations: Dinkelbach iterations. probs: ``(n, γ_max+1)`` LP policy. tables: the proxy tables.
    """

    T_star: float
    T_star_dinkelbach: float
    lambda_star: float
    lambda_star_lp: float
    theta_star: float
    rel_diff: float
    power: float
    mean_latency: float
    mean_tokens: float
    mean_energy: float
    P_bar: float
    D_min: float
    B: float
    sigma2: float
    V_GL_prediction: float
    iterations: int
    proxy: str
    quantiles: int
    probs: np.ndarray
    tables: RenewalTables

    def summary(self) -> dict[str, Any]:
        """Scalar fields as a JSON-ready dict."""
        keys = ("T_star", "T_star_dinkelbach", "lambda_star", "lambda_star_lp", "theta_star", "rel_diff", "power",
                "mean_latency", "mean_tokens", "mean_energy", "P_bar", "D_min", "B", "sigma2", "V_GL_prediction",
                "iterations", "proxy", "quantiles")
        return {k: getattr(self, k) for k in keys}


def _default_policy(policy):
    from .policies import Gelato

    policy = Gelato() if policy is None else policy
    if not isinstance(policy, Policy):
        raise ValueError(f"policy must be a gelato_jax.policies.Policy, got {type(policy).__name__}")
    return policy


def time_average_optimum(scenario: Scenario, policy: Policy | None = None, *, quantiles: int = 4096,
                         P_bar: float | None = None) -> RenewalOptimum:
    r"""``T*`` of the time-average problem (docs/model.md §11), two independent ways on one quantisation.

    Args:
      scenario: the scenario (its ``P_bar`` unless ``P_bar`` is given; ``objective`` is treated as
        ``"time_average"`` whatever it says). I.i.d. rounds only (``check_iid_rounds``).
      policy: whose proxy defines ``(N̂, D̂, Ê)``: a ``Gelato`` (``proxy="exact"``: exact means
        under its inner loop; ``"mean"``/``"ewma"``: the mean proxy at ``ᾱ``, exact when
        ``exit="none"``); default ``Gelato()``; other policies: the mean proxy of their payload.
      quantiles: equal-probability bins of ``h`` (integer in [8, 200000]).
      P_bar: optional power budget override (W, > 0).
    Returns:
      ``RenewalOptimum`` (``T_star``, ``lambda_star``, ``theta_star``, ``B``, …; ``summary()``).
    """
    if not isinstance(scenario, Scenario):
        raise ValueError(f"scenario must be a gelato_jax.Scenario, got {type(scenario).__name__}")
    if isinstance(quantiles, bool) or not isinstance(quantiles, (int, np.integer)) or not 8 <= quantiles <= 200_000:
        raise ValueError(f"quantiles must be an integer in [8, 200000], got {quantiles!r}")
    if np.ndim(scenario.P_bar) != 0:
        raise ValueError("time_average_optimum needs a single scenario (scalar leaves), not a stacked batch")
    scenario.check_iid_rounds("time_average_optimum() (T* over stationary randomised policies of i.i.d. rounds, docs/model.md §11)")
    scenario = _as_time_average(scenario, P_bar)
    policy = _default_policy(policy)
    policy.validate(scenario)
    pb = float(scenario.P_bar)
    tab = renewal_tables(scenario, policy, quantiles=quantiles)
    lp = charnes_cooper_lp(tab, pb)
    dk = dinkelbach(tab, pb)
    t_lp, t_dk = lp["T_star"], dk["T_star"]
    # second-order constant: Var(E − P̄D) under the optimal (LP) policy, from the per-bin means
    # (the within-(γ, h) variance of E − P̄D is added by theory.renewal when the law is needed)
    y = tab.energy - pb * tab.latency
    p, w = lp["probs"], tab.weights
    my = float(w @ (p * y).sum(axis=1))
    sigma2 = float(w @ (p * (y - my) ** 2).sum(axis=1))
    from theory import renewal as th

    B = th.drift_constant(scenario, policy)
    d_min = th.D_min(scenario)
    proxy = policy.proxy
    return RenewalOptimum(
        T_star=t_lp, T_star_dinkelbach=t_dk, lambda_star=dk["lambda_star"], lambda_star_lp=lp["lambda_star"],
        theta_star=t_dk, rel_diff=abs(t_lp - t_dk) / abs(t_lp), power=lp["power"], mean_latency=lp["mean_latency"],
        mean_tokens=lp["mean_tokens"], mean_energy=lp["mean_energy"], P_bar=pb, D_min=d_min, B=B, sigma2=sigma2,
        V_GL_prediction=sigma2 / (4.0 * lp["mean_latency"]), iterations=dk["iterations"], proxy=proxy,
        quantiles=int(quantiles), probs=p, tables=tab,
    )
