r"""``T*``: the best long-term throughput of any stationary randomized policy (MODEL.md §8.3).

A stationary randomized policy picks the budget ``γ`` with probability ``p(γ | h)`` from the
current fading state only. For a policy whose proxy gives per-round expected throughput
``T(γ, h)`` and energy ``E(γ, h)`` (the controller's own ``proxy_costs`` at rates ``r(h)``,
``r_dl(h)``), the optimum is

.. math::  T^* = \max_p E_h[\textstyle\sum_γ p(γ|h) T(γ,h)] \ \text{s.t.}\
           E_h[\textstyle\sum_γ p(γ|h) E(γ,h)] \le \bar E,\ p(0|h) = 1 \text{ in outage}.

It is computed two independent ways on the same quantisation of the law of ``h``:

1. **LP** (``scipy.optimize.linprog``, HiGHS) in the mixing probabilities ``p[k, γ]`` of the
   bins ``k`` — gives ``T_star``, the oracle table ``probs`` and ``lambda_star_lp`` (the
   marginal of the energy row);
2. **dual**: ``T* = min_{λ≥0} λĒ + E_h[max_γ (T(γ,h) − λE(γ,h))]``, a convex piecewise-linear
   function of one variable, minimised by ``scipy.optimize.minimize_scalar`` (bounded) — gives
   ``T_star_dual`` and ``lambda_star``.

By LP duality both are equal; ``tolerance`` bounds their numerical difference (solver
feasibility tolerances times the size of the terms they multiply, plus the dual's slope times its
``xatol``).

**Quantisation.** Laws: ``Exp(1)`` for ``rayleigh`` and ``gauss_markov`` (its stationary
marginal; a stationary randomized policy only sees the marginal), the empirical law of the trace
for ``trace``; ``h`` is clamped at ``h_min`` as in the simulator. The continuous law is cut into
``quantiles`` equal-probability bins, plus one edge at the outage threshold ``h_out``
(``r(h_out) = r_min``) so that no bin straddles it; each bin is represented by its probability-
midpoint ``h``. For every ``λ ≥ 0``, ``g_λ(h) = max_γ (T − λE)`` is non-decreasing in ``h``
(higher rate: shorter rounds, cheaper uploads, and outage only removes options at low ``h``), so
evaluating the dual at the bins' left and right edges gives a rigorous bracket
``T_lower ≤ T*_continuous ≤ T_upper`` of the optimum for the un-quantised law.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import channel
from .policies.base import Policy, RoundObs
from .scenario import Scenario

__all__ = ["Optimum", "optimum", "proxy_tables", "h_quantisation", "outage_threshold"]


@dataclasses.dataclass(frozen=True)
class Optimum:
    r"""The optimum over stationary randomized policies, and the policy that attains it.

    Attributes:
      T_star: LP optimum (tok/s) on the quantised law of ``h``.
      T_star_dual: ``min_λ λĒ + E_h[max_γ (T − λE)]`` on the same quantisation (tok/s).
      lambda_star: the dual minimiser ``λ*`` (tok/s per J).
      lambda_star_lp: the LP's marginal value of energy (HiGHS dual of the energy row).
      energy: ``E[E]`` (J/round) of the LP's optimal randomized policy (``≤ E_bar``).
      E_bar: the energy budget used.
      T_lower, T_upper: bracket of ``T*`` for the continuous law of ``h`` (dual at bin edges);
        equal to ``T_star_dual`` for a trace law (which is discrete and exactly represented).
      tolerance: bound on ``|T_star − T_star_dual|`` from the solvers' tolerances.
      h_edges: ``(n + 1,)`` bin edges in ``h`` (first ``0``, last ``inf`` for Exp(1)); bin ``k``
        is ``h_edges[k] ≤ h < h_edges[k+1]``.
      h_nodes: ``(n,)`` representative ``h`` of each bin (where ``T``, ``E`` are evaluated).
      weights: ``(n,)`` probability of each bin (sums to 1).
      outage: ``(n,)`` bool, the bin is in outage (only ``γ = 0``).
      probs: ``(n, γ_max + 1)`` optimal mixing probabilities ``p(γ | bin)`` (rows sum to 1).
      throughput: ``(n, γ_max + 1)`` ``T(γ, h_k)`` (tok/s).
      energy_table: ``(n, γ_max + 1)`` ``E(γ, h_k)`` (J).
      proxy: the proxy the tables come from (``"mean"``, ``"exact"``).
    """

    T_star: float
    T_star_dual: float
    lambda_star: float
    lambda_star_lp: float
    energy: float
    E_bar: float
    T_lower: float
    T_upper: float
    tolerance: float
    h_edges: np.ndarray
    h_nodes: np.ndarray
    weights: np.ndarray
    outage: np.ndarray
    probs: np.ndarray
    throughput: np.ndarray
    energy_table: np.ndarray
    proxy: str

    def bin_index(self, h):
        """Bin of fading gain ``h`` (JAX, any shape): ``h_edges[k] ≤ h < h_edges[k+1]``."""
        edges = jnp.asarray(self.h_edges)
        k = jnp.searchsorted(edges, jnp.asarray(h), side="right") - 1
        return jnp.clip(k, 0, len(self.weights) - 1).astype(jnp.int32)

    def budget(self, h, u):
        """The oracle's budget at gain ``h`` for a uniform ``u ∈ [0, 1)`` (inverse CDF of
        ``probs[bin(h)]``); JAX-traceable, int32."""
        cdf = jnp.cumsum(jnp.asarray(self.probs), axis=-1)[self.bin_index(h)]
        g = jnp.sum(jnp.asarray(u)[..., None] >= cdf[..., :-1], axis=-1)
        return g.astype(jnp.int32)

    def summary(self) -> dict[str, Any]:
        """Scalar fields as a JSON-ready dict."""
        keys = ("T_star", "T_star_dual", "lambda_star", "lambda_star_lp", "energy", "E_bar", "T_lower",
                "T_upper", "tolerance", "proxy")
        out = {k: getattr(self, k) for k in keys}
        out["bins"] = int(len(self.weights))
        return out


# ----------------------------------------------------------------------------- the law of h
def outage_threshold(scenario: Scenario) -> float:
    """``h_out`` with ``r(h_out) = r_min``: ``(2^{r_min/W} − 1) / snr0`` (0 when ``r_min = 0``)."""
    snr0 = float(scenario.mean_snr)
    return float(np.expm1(float(scenario.r_min) / float(scenario.W) * math.log(2.0)) / snr0)


def h_quantisation(scenario: Scenario, quantiles: int):
    """Bins of the law of ``h``: ``(edges (n+1,), nodes (n,), weights (n,), lo (n,), hi (n,), exact)``.

    ``lo``/``hi`` are the values of ``h`` at which a non-decreasing function is smallest/largest
    on each bin (for the bracket); ``exact`` is True when the law is discrete and represented
    without error (a trace with at most ``quantiles`` distinct values).
    """
    h_min = float(scenario.h_min)
    if scenario.channel == "trace":
        vals = np.maximum(np.asarray(scenario.channel_trace, dtype=np.float64), h_min)
        uniq, counts = np.unique(vals, return_counts=True)
        if len(uniq) <= quantiles:
            w = counts / counts.sum()
            edges = np.concatenate([uniq, [np.inf]])
            return edges, uniq, w, uniq, uniq, True
        srt = np.sort(vals)
        groups = np.array_split(srt, quantiles)
        nodes = np.array([g[len(g) // 2] for g in groups])
        lo = np.array([g[0] for g in groups])
        hi = np.array([g[-1] for g in groups])
        w = np.array([len(g) for g in groups], dtype=np.float64) / len(srt)
        edges = np.concatenate([lo, [np.inf]])
        return edges, nodes, w, lo, hi, False
    # Exp(1) (rayleigh; stationary marginal of gauss_markov), clamped at h_min
    u = np.linspace(0.0, 1.0, quantiles + 1)
    h_out = outage_threshold(scenario)
    u_out = -np.expm1(-h_out)
    if 0.0 < u_out < 1.0:
        u = np.unique(np.concatenate([u, [u_out]]))
    with np.errstate(divide="ignore"):
        edges = -np.log1p(-u)  # F^{-1}(u); last = inf
    w = np.diff(u)
    mid = 0.5 * (u[:-1] + u[1:])
    nodes = np.maximum(-np.log1p(-mid), h_min)
    lo = np.maximum(edges[:-1], h_min)
    hi = np.where(np.isinf(edges[1:]), 1e200, edges[1:])
    return edges, nodes, w, lo, hi, False


# ----------------------------------------------------------------------------- proxy tables
def _proxy_fn(policy: Policy):
    if hasattr(policy, "proxy_costs"):
        return policy.proxy_costs
    return lambda scenario, aux, state, obs: policy.mean_proxy(scenario, aux, aux.alpha_bar, obs)


def proxy_tables(scenario: Scenario, policy: Policy, h):
    """``(T, E, outage)``: the policy's proxy throughput/energy ``(n, γ_max+1)`` at gains ``h (n,)``.

    Uses the policy's own ``proxy_costs`` (Gelato) or the mean proxy with the scenario's ``ᾱ``;
    for ``proxy="ewma"`` the estimate is taken at its initial value ``ᾱ``.
    """
    h = np.asarray(h, dtype=np.float64)
    if h.ndim != 1 or h.size == 0:
        raise ValueError(f"h must be a non-empty 1-D array of gains, got shape {h.shape}")
    n = h.size
    # pad to a multiple of _PAD so that different bin counts reuse one compiled program
    padded = np.concatenate([h, np.ones(-n % _PAD)])
    T, E, out = _tables(scenario, policy, jnp.asarray(padded))
    return np.asarray(T, np.float64)[:n], np.asarray(E, np.float64)[:n], np.asarray(out, bool)[:n]


_PAD = 512


@jax.jit
def _tables(scenario, policy, h):
    fn = _proxy_fn(policy)
    aux = policy.precompute(scenario)
    state = policy.init_state(scenario, aux)

    def one(hk):
        rate = channel.uplink_rate(scenario, hk)
        rate_dl = channel.downlink_rate(scenario, hk)
        out = channel.in_outage(scenario, rate)
        obs = RoundObs(jnp.zeros((), jnp.int32), jnp.zeros_like(hk), hk, rate, rate_dl, out)
        pc = fn(scenario, aux, state, obs)
        return pc.throughput, pc.energy, out

    return jax.vmap(one)(h)


# ----------------------------------------------------------------------------- solvers
def _dual_value(lam, w, T, E, allowed, E_bar):
    val = np.where(allowed, T - lam * E, -np.inf).max(axis=1)
    return lam * E_bar + float(w @ val)


_LP_TOL = 1e-9


def _solve_lp(w, T, E, allowed, E_bar):
    from scipy import sparse
    from scipy.optimize import linprog

    n, G1 = T.shape
    c = -(w[:, None] * T).ravel()
    A_ub = (w[:, None] * E).ravel()[None, :]
    A_eq = sparse.kron(sparse.eye(n, format="csr"), np.ones((1, G1)), format="csr")
    ub = np.where(allowed, 1.0, 0.0).ravel()
    res = linprog(
        c, A_ub=A_ub, b_ub=[E_bar], A_eq=A_eq, b_eq=np.ones(n), bounds=np.stack([np.zeros_like(ub), ub], 1),
        method="highs",
        options={"primal_feasibility_tolerance": _LP_TOL, "dual_feasibility_tolerance": _LP_TOL},
    )
    if res.status != 0:
        raise RuntimeError(f"linprog failed: {res.message}")
    p = np.clip(res.x.reshape(n, G1), 0.0, 1.0) + 0.0
    p = p / p.sum(axis=1, keepdims=True)
    lam_lp = float(-res.ineqlin.marginals[0])
    return float(-res.fun), p, lam_lp


def _solve_dual(w, T, E, allowed, E_bar, xatol_rel=1e-12):
    from scipy.optimize import minimize_scalar

    d0 = _dual_value(0.0, w, T, E, allowed, E_bar)
    e_min = float(w @ np.where(allowed, E, np.inf).min(axis=1))
    t_min = float(w @ np.where(allowed, T, np.inf).min(axis=1))
    slack = E_bar - e_min
    if slack <= 0:
        raise ValueError(f"Scenario.E_bar = {E_bar:g} J is not above the cheapest stationary energy {e_min:g} J: no feasible policy")
    # D(λ) ≥ λ(Ē − e_min) + t_min, and D(0) is an upper bound on min D: λ* ≤ (D(0) − t_min)/slack
    lam_hi = max((d0 - t_min) / slack, 0.0) * 1.001 + 1e-12
    xatol = xatol_rel * lam_hi
    res = minimize_scalar(
        lambda lam: _dual_value(lam, w, T, E, allowed, E_bar), bounds=(0.0, lam_hi), method="bounded",
        options={"xatol": xatol, "maxiter": 2000},
    )
    lam = float(res.x)
    val = float(res.fun)
    # the minimum may be at λ = 0 (budget not binding): bounded Brent never evaluates the endpoint
    if d0 <= val:
        lam, val = 0.0, d0
    return val, lam, xatol, lam_hi


def optimum(scenario: Scenario, policy: Policy, *, quantiles: int = 2048, E_bar: float | None = None) -> Optimum:
    """``T*`` over stationary randomized policies for ``policy``'s proxy (LP and dual).

    Args:
      scenario: the scenario (its ``E_bar`` unless ``E_bar`` is given).
      policy: a policy with a ``payload`` (Gelato: its ``proxy``; others: the mean proxy).
      quantiles: number of equal-probability bins of ``h`` (integer in [8, 200000]).
      E_bar: optional energy budget override (J/round, > 0).
    Returns:
      ``Optimum`` (see its attributes).
    """
    if not isinstance(scenario, Scenario):
        raise ValueError(f"scenario must be a gelato_jax.Scenario, got {type(scenario).__name__}")
    if not isinstance(policy, Policy):
        raise ValueError(f"policy must be a gelato_jax.policies.Policy, got {type(policy).__name__}")
    if isinstance(quantiles, bool) or not isinstance(quantiles, (int, np.integer)) or not 8 <= quantiles <= 200_000:
        raise ValueError(f"quantiles must be an integer in [8, 200000], got {quantiles!r}")
    if E_bar is None:
        E_bar = float(np.asarray(scenario.E_bar).reshape(-1)[0])
    try:
        E_bar_f = float(E_bar)
    except (TypeError, ValueError):
        raise ValueError(f"E_bar must be a finite number in (0, inf), got {E_bar!r}") from None
    if isinstance(E_bar, bool) or not math.isfinite(E_bar_f) or E_bar_f <= 0:
        raise ValueError(f"E_bar must be a finite number in (0, inf), got {E_bar!r}")
    E_bar = E_bar_f
    if np.ndim(scenario.E_bar) != 0:
        raise ValueError("optimum needs a single scenario (scalar leaves), not a stacked batch")
    scenario.check_iid_rounds("optimum() (T* over stationary randomized policies of i.i.d. rounds, MODEL §8)")
    policy.validate(scenario)
    proxy = getattr(policy, "proxy", "mean")
    proxy = "mean" if proxy == "ewma" else proxy

    edges, nodes, w, lo, hi, exact = h_quantisation(scenario, int(quantiles))
    n = len(nodes)
    T_all, E_all, out_all = proxy_tables(scenario, policy, np.concatenate([nodes, lo, hi]))
    T, E, out = T_all[:n], E_all[:n], out_all[:n]
    if not (np.all(np.isfinite(T)) and np.all(np.isfinite(E))):
        raise ValueError("the proxy tables are not finite for this scenario (check its parameters)")
    G1 = T.shape[1]
    allowed = np.ones_like(T, dtype=bool)
    allowed[out, 1:] = False

    t_lp, p, lam_lp = _solve_lp(w, T, E, allowed, E_bar)
    t_dual, lam, xatol, lam_hi = _solve_dual(w, T, E, allowed, E_bar)
    energy = float(w @ (p * E).sum(axis=1))
    # |T_lp − T_dual|: HiGHS feasibility errors (energy row: ≤ λ_hi·tol; each of the n equality
    # rows and bounds: ≤ tol·max|T| weighted by w) + the dual's slope (≤ max E) times xatol.
    tol = 10.0 * (_LP_TOL * (lam_hi + np.abs(T).max() * (1 + G1)) + np.abs(E).max() * xatol) + 1e-12 * abs(t_lp)

    if exact:
        t_lower = t_upper = t_dual
    else:
        T_lo, E_lo, out_lo = T_all[n:2 * n], E_all[n:2 * n], out_all[n:2 * n]
        T_hi, E_hi, out_hi = T_all[2 * n:], E_all[2 * n:], out_all[2 * n:]
        al_lo = np.ones_like(T, dtype=bool)
        al_lo[out_lo, 1:] = False
        al_hi = np.ones_like(T, dtype=bool)
        al_hi[out_hi, 1:] = False
        t_lower = _solve_dual(w, T_lo, E_lo, al_lo, E_bar)[0]
        t_upper = _solve_dual(w, T_hi, E_hi, al_hi, E_bar)[0]

    return Optimum(
        T_star=t_lp, T_star_dual=t_dual, lambda_star=lam, lambda_star_lp=lam_lp, energy=energy, E_bar=E_bar,
        T_lower=float(t_lower), T_upper=float(t_upper), tolerance=float(tol), h_edges=edges, h_nodes=nodes,
        weights=w, outage=out, probs=p, throughput=T, energy_table=E, proxy=proxy,
    )
