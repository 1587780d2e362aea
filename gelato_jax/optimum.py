r"""``T*``: the best long-term throughput of any stationary randomized policy (docs/model.md §8.3).

A stationary randomized policy picks the budget ``γ`` with probability ``p(γ | h)`` from the
current fading state only. For a policy whose proxy gives per-round expected throughput
``T(γ, h)`` and energy ``E(γ, h)`` (the controller's own ``proxy_costs`` at rates ``r(h)``,
``r_dl(h)``), the optimum is

.. math::  T^* = \max_p E_h[\textstyle\sum_γ p(γ|h) T(γ,h)] \ \text{s.t.}\
           E_h[\textstyle\sum_γ p(γ|h) E(γ,h)] \le \bar E,\ p(0|h) = 1 \text{ in outage}.

**Exact method** (``method="exact"``, the default unless ``quantiles`` is given; docs/optimum.md):
for a fixed price ``λ`` the maximiser ``γ_λ(h) = argmax_γ T − λE`` is piecewise constant in ``h``;
``G(λ) = E_h max_γ [T − λE]`` is integrated exactly against the continuous law of ``h``
(``Exp(1)`` clamped at ``h_min``) between its switching points (roots of ``g_A − g_B``, found to
~1 ulp) by composite Gauss–Legendre on cells at most 3 % of their distance to the nearest
singularity of the rates, and ``λ*`` solves ``e(λ*) = Ē`` (``e`` the mean energy of the λ-policy,
``Ē − e(λ) = D'(λ)``) by ``brentq`` — or ``λ* = 0`` when ``e(0) ≤ Ē``. Measured precision: ``T*``
to ~1e-13 relative, ``λ*`` to ~1e-10 relative (``tolerance``, ``lambda_star_precision``).

**Quantised method** (``method="quantised"``): two independent ways on the same quantisation of
the law of ``h``:

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
from .channels import fading_of
from .policies.base import Policy, RoundObs
from .scenario import Scenario

__all__ = ["Optimum", "optimum", "optimum_convergence", "proxy_tables", "h_quantisation", "outage_threshold"]


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
      method: ``"exact"`` (integration between switching points, continuous law) or
        ``"quantised"`` (LP + dual on ``quantiles`` bins; the trace law is always solved this way,
        exactly when it has at most ``quantiles`` distinct values).
      lambda_star_precision: bound on ``|λ* − λ*_true|`` from the root finder and the integration
        error (``method="exact"``; ``None`` for the quantised method, whose λ* is that of the
        quantised problem).
      switching_points: ``h`` where the λ*-policy changes budget (``method="exact"``).
      kappa: ``−de/dλ`` at ``λ*`` (central difference; ``method="exact"``), the dual's curvature.
      slack: the budget does not bind (``λ* = 0``; ``method="exact"``).
      proxy_mc_error: for ``proxy="exact"`` and ``method="exact"``: estimated Monte Carlo floor
        (tok/s; a one-sided 1 − 1e-3 bound, ``t_{15}`` over the table's 16 chunks, ≈ 3.7 standard
        errors: 0.066 for GELATO at the defaults) that the exact-proxy table's sample puts under ``T*`` — not
        included in ``tolerance``, which is the numerical error for the given table.

    For ``method="exact"`` the bins are the pieces of constant budget of the optimal (deterministic)
    λ*-policy: ``probs`` rows are one-hot, ``h_nodes`` are the pieces' probability midpoints,
    ``lambda_star_lp = lambda_star``, ``T_star`` is the primal value ``E_h T(γ*(h), h)`` (the
    λ*-policy, randomised at λ* only if ``e(λ)`` jumps there), ``T_star_dual = λ*Ē + G(λ*)``, and
    ``[T_lower, T_upper] = T_star_dual ± tolerance``.
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
    method: str = "quantised"
    lambda_star_precision: float | None = None
    switching_points: np.ndarray | None = None
    kappa: float | None = None
    slack: bool | None = None
    proxy_mc_error: float | None = None

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
                "T_upper", "tolerance", "proxy", "method", "lambda_star_precision", "kappa", "slack", "proxy_mc_error")
        out = {k: getattr(self, k) for k in keys}
        if self.switching_points is not None:
            out["switching_points"] = [float(x) for x in self.switching_points]
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
    law = fading_of(scenario).law(scenario)
    return law.quantisation(quantiles, float(scenario.h_min), split=outage_threshold(scenario))


# ----------------------------------------------------------------------------- proxy tables
def _proxy_fn(policy: Policy):
    if policy.proxy_costs is not None:
        return policy.proxy_costs
    return lambda scenario, aux, state, obs: policy.mean_proxy(scenario, aux, aux.alpha_bar, obs)


def proxy_tables(scenario: Scenario, policy: Policy, h):
    """``(T, E, outage)``: the policy's proxy throughput/energy ``(n, γ_max+1)`` at gains ``h (n,)``.

    Uses the policy's own ``proxy_costs`` (Gelato) or the mean proxy with the scenario's ``ᾱ``;
    for ``proxy="ewma"`` the estimate is taken at its initial value ``ᾱ``. Evaluated in float64
    (``jax.enable_x64``) whatever the caller's JAX configuration.
    """
    h = np.asarray(h, dtype=np.float64)
    if h.ndim != 1 or h.size == 0:
        raise ValueError(f"h must be a non-empty 1-D array of gains, got shape {h.shape}")
    n = h.size
    # pad to a multiple of _PAD so that different bin counts reuse one compiled program
    padded = np.concatenate([h, np.ones(-n % _PAD)])
    with jax.enable_x64(True):  # float64 whatever the caller's JAX setting (float32 tables err by ~1e-6 relative)
        from .engine import precompute

        T, E, out = _tables(scenario, policy, jnp.asarray(padded, jnp.float64), precompute(scenario, policy))
        return np.asarray(T, np.float64)[:n], np.asarray(E, np.float64)[:n], np.asarray(out, bool)[:n]


_PAD = 512


@jax.jit
def _tables(scenario, policy, h, aux):
    fn = _proxy_fn(policy)
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


def optimum(scenario: Scenario, policy: Policy, *, method: str | None = None, quantiles: int | None = None,
            E_bar: float | None = None) -> Optimum:
    """``T*`` over stationary randomized policies for ``policy``'s proxy.

    Args:
      scenario: the scenario (its ``E_bar`` unless ``E_bar`` is given).
      policy: a policy with a ``payload`` (Gelato: its ``proxy``; others: the mean proxy).
      method: ``"exact"`` — the continuous Exp(1) law (Rayleigh, Gauss–Markov marginal), integrated
        between the switching points of the λ-policy, ``λ*`` by root finding on ``e(λ) = Ē``
        (see ``docs/optimum.md``); ``"quantised"`` — LP (HiGHS) + dual on ``quantiles``
        equal-probability bins. Default (``None``): ``"quantised"`` when ``quantiles`` is given
        (the behaviour of every caller written before the exact method), else ``"exact"``. A
        ``trace`` channel (a discrete law) is always solved by the LP on its distinct values,
        which is exact (``method="exact"`` uses up to 200,000 of them).
      quantiles: number of equal-probability bins of ``h`` (integer in [8, 200000]; quantised
        method only; default 2048).
      E_bar: optional energy budget override (J/round, > 0).
    Returns:
      ``Optimum`` (see its attributes).
    """
    if method is None:
        method = "quantised" if quantiles is not None else "exact"
    if method not in ("exact", "quantised"):
        raise ValueError(f"method must be 'exact' or 'quantised', got {method!r}")
    if method == "exact" and quantiles is not None:
        raise ValueError("quantiles is only used by method='quantised'")
    if quantiles is None:
        quantiles = 2048
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
    scenario.check_iid_rounds("optimum() (T* over stationary randomized policies of i.i.d. rounds, docs/model.md §8)")
    policy.validate(scenario)
    proxy = "mean" if policy.proxy == "ewma" else policy.proxy
    marginal = _marginal(scenario)
    if method == "exact" and marginal == "exp1":
        return _exact_optimum(scenario, policy, E_bar, proxy)
    if method == "exact":  # a discrete law: the LP on all its distinct values is exact
        quantiles = 200_000

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
        weights=w, outage=out, probs=p, throughput=T, energy_table=E, proxy=proxy, method=method,
    )


# ----------------------------------------------------------------------------- exact integration
# The continuous-fading problem without quantisation (method="exact"). Float64 throughout: the
# proxy tables are evaluated by JAX under ``jax.enable_x64(True)`` whatever the caller's setting.
_H_MAX = 50.0  # upper end of the integration range; the tail mass e^{-50} ≈ 2e-22 is put at h = 50
_CELLS = 256  # at least this many cells on [h_min, _H_MAX], uniform in log(h + c) with step ≤ _DX
_DX = 0.03  # (c = min(h_min, 1e-4/SNR of the nearer rate pole): every cell is ≤ 3 % of its distance to a pole)
_GL_N = 20  # Gauss–Legendre nodes per cell / sub-piece (error estimate: against 10 nodes)


@jax.jit
def _tables_aux(scenario, policy, aux, h):
    fn = _proxy_fn(policy)
    state = policy.init_state(scenario, aux)

    def one(hk):
        rate = channel.uplink_rate(scenario, hk)
        rate_dl = channel.downlink_rate(scenario, hk)
        out = channel.in_outage(scenario, rate)
        obs = RoundObs(jnp.zeros((), jnp.int32), jnp.zeros_like(hk), hk, rate, rate_dl, out)
        pc = fn(scenario, aux, state, obs)
        return pc.throughput, pc.energy

    return jax.vmap(one)(h)


class _ProxyEval:
    """``h ↦ (T (…, γ_max+1), E (…, γ_max+1))`` in float64 numpy, the policy's own ``proxy_costs``
    with its ``precompute`` done once (``aux`` may be given, e.g. an exact-proxy table of another
    sample size)."""

    def __init__(self, scenario: Scenario, policy: Policy, aux=None):
        self.scenario, self.policy = scenario, policy
        with jax.enable_x64(True):
            from .engine import precompute

            self.aux = precompute(scenario, policy) if aux is None else aux
        self.calls = 0

    def __call__(self, h):
        h = np.asarray(h, dtype=np.float64)
        shape, flat = h.shape, h.reshape(-1)
        n = flat.size
        size = max(64, 1 << max(n - 1, 1).bit_length())  # a few padded sizes: a few compiled programs
        padded = np.concatenate([flat, np.ones(size - n)])
        with jax.enable_x64(True):
            T, E = _tables_aux(self.scenario, self.policy, self.aux, jnp.asarray(padded, jnp.float64))
            T, E = np.asarray(T, np.float64)[:n], np.asarray(E, np.float64)[:n]
        self.calls += 1
        return T.reshape(shape + (-1,)), E.reshape(shape + (-1,))


def _marginal(scenario: Scenario) -> str:
    """The kind of the fading marginal a stationary randomized policy sees (``channels.FadingLaw``):
    ``"exp1"`` (Rayleigh; the stationary marginal of Gauss–Markov, which round 0 also draws) or
    ``"discrete"`` (a trace). A channel without a known marginal raises ``ValueError``."""
    return fading_of(scenario).law(scenario).kind


def _snr_poles(scenario: Scenario) -> float:
    """``c = min(1/snr_ul, 1/snr_dl)``: the rates ``W log2(1 + snr h)`` are analytic for ``h > −c``."""
    snr_ul = float(np.asarray(scenario.mean_snr))
    snr_dl = float(np.asarray(scenario.P_edge * scenario.g0 / (scenario.N0 * scenario.W_dl)))
    return 1e-4 * min(1.0 / snr_ul, 1.0 / snr_dl)


def _extra_breakpoints(scenario: Scenario, policy: Policy, aux) -> np.ndarray:
    """Points in ``h`` where the proxy is not analytic: the exact proxy's ``topp`` table is a cubic
    spline in ``v = r_ref/(r + r_ref)`` (C¹ at its grid nodes)."""
    if policy.proxy != "exact" or policy.payload != "topp":
        return np.zeros(0)
    tab = aux.table
    v = np.asarray(tab.v_grid, np.float64)
    r_ref = float(np.asarray(tab.r_ref))
    v = v[v > 0]
    r = r_ref * (1.0 - v) / v
    with np.errstate(over="ignore"):
        h = np.expm1(np.minimum(r / float(scenario.W), 1e4) * math.log(2.0)) / float(np.asarray(scenario.mean_snr))
    return h[np.isfinite(h)]


@dataclasses.dataclass
class _LamPolicy:
    """The deterministic λ-policy ``γ_λ(h) = argmax_γ T − λE`` (ties: smallest γ) and its means."""

    lam: float
    t: float  # E_h T(γ_λ(h), h)
    e: float  # E_h E(γ_λ(h), h) = e(λ)
    lo: np.ndarray  # pieces [lo, hi) of constant maximiser (over [h_min, _H_MAX])
    hi: np.ndarray
    gamma: np.ndarray
    switches: np.ndarray  # switching points found by root finding (inside grid cells)


class _ExactProblem:
    """``G(λ) = E_h max_γ [T(γ,h) − λE(γ,h)]`` for ``h ~ max(Exp(1), h_min)`` by exact integration.

    Fixed grid: ``_CELLS`` cells on ``[h_min, _H_MAX]`` uniform in ``log(h + c)`` (``c`` from the
    nearest complex singularity of the rates), with edges at ``h_out`` and at the proxy's
    non-analytic points. On each cell ``∫ T_γ e^{−h} dh`` and ``∫ E_γ e^{−h} dh`` are precomputed for
    every ``γ`` by ``_GL_N``-point Gauss–Legendre. For a price ``λ`` the maximiser is found at the
    cells' edges and nodes; where it changes inside a cell the switching point is the root of
    ``g_A − g_B`` (Chandrupatla, ``scipy.optimize.elementwise.find_root``, to ~1 ulp), checked to be
    on the upper envelope (otherwise the interval is resampled finer), and the sub-pieces are
    integrated again by Gauss–Legendre. The atom ``P(h = h_min) = 1 − e^{−h_min}`` (the clamp) and
    the tail mass ``e^{−_H_MAX}`` (put at ``_H_MAX``) are added exactly.
    """

    def __init__(self, scenario: Scenario, policy: Policy, ev: _ProxyEval):
        self.ev = ev
        self.h_min = h_min = float(scenario.h_min)
        self.h_out = h_out = outage_threshold(scenario)
        c = _snr_poles(scenario)
        c = min(c, h_min) if h_min > 0 else c
        top = max(_H_MAX, h_min + _H_MAX)
        n_cells = max(_CELLS, int(math.ceil((math.log(top + c) - math.log(h_min + c)) / _DX)))
        x = np.linspace(math.log(h_min + c), math.log(top + c), n_cells + 1)
        edges = np.exp(x) - c
        extra = [e for e in np.concatenate([[h_out], _extra_breakpoints(scenario, policy, ev.aux)]) if h_min < e < top]
        edges = np.unique(np.concatenate([edges[1:-1], extra, [h_min, top]]))
        edges = edges[np.concatenate([[True], np.diff(edges) > 1e-13 * edges[1:]])]
        edges[-1] = top
        self.edges = edges
        self.top = top
        self.out_cell = edges[1:] <= h_out  # cells inside the outage region (only γ = 0)
        C = len(edges) - 1
        self.xg, self.wg = np.polynomial.legendre.leggauss(_GL_N)
        xg2, wg2 = np.polynomial.legendre.leggauss(_GL_N // 2)
        l, r = edges[:-1, None], edges[1:, None]
        Hn = 0.5 * (l + r) + 0.5 * (r - l) * self.xg
        Wn = 0.5 * (r - l) * self.wg * np.exp(-Hn)
        Hn2 = 0.5 * (l + r) + 0.5 * (r - l) * xg2
        Wn2 = 0.5 * (r - l) * wg2 * np.exp(-Hn2)
        pts = np.concatenate([edges, Hn.ravel(), Hn2.ravel()])
        Tp, Ep = ev(pts)
        if not (np.all(np.isfinite(Tp)) and np.all(np.isfinite(Ep))):
            raise ValueError("the proxy tables are not finite for this scenario (check its parameters)")
        ne = len(edges)
        Te, Ee = Tp[:ne], Ep[:ne]
        Tn, En = Tp[ne:ne + Hn.size].reshape(C, _GL_N, -1), Ep[ne:ne + Hn.size].reshape(C, _GL_N, -1)
        Tn2, En2 = Tp[ne + Hn.size:].reshape(C, _GL_N // 2, -1), Ep[ne + Hn.size:].reshape(C, _GL_N // 2, -1)
        self.G1 = Tp.shape[1]
        self.IT = np.einsum("cj,cjg->cg", Wn, Tn)
        self.IE = np.einsum("cj,cjg->cg", Wn, En)
        # error estimate of the 20-point rule: the 10-point rule's error (a large over-estimate)
        al = np.ones((C, self.G1), bool)
        al[self.out_cell, 1:] = False
        self.err_T_cell = np.where(al, np.abs(self.IT - np.einsum("cj,cjg->cg", Wn2, Tn2)), 0.0).max(axis=1)
        self.err_E_cell = np.where(al, np.abs(self.IE - np.einsum("cj,cjg->cg", Wn2, En2)), 0.0).max(axis=1)
        # sample points of each cell for the maximiser: left edge, nodes, right edge
        self.SH = np.concatenate([l, Hn, r], axis=1)
        self.ST = np.concatenate([Te[:-1, None], Tn, Te[1:, None]], axis=1)
        self.SE = np.concatenate([Ee[:-1, None], En, Ee[1:, None]], axis=1)
        self.allowed = np.ones((C, self.G1), bool)
        self.allowed[self.out_cell, 1:] = False
        # atom at h_min (clamp) and tail mass at top
        self.m_atom = float(-np.expm1(-h_min))
        self.m_tail = float(np.exp(-top))
        self.atom_out = h_min < h_out
        self.T_atom, self.E_atom, self.T_tail, self.E_tail = Te[0], Ee[0], Te[-1], Ee[-1]
        self._cache: dict[float, _LamPolicy] = {}

    # --------------------------------------------------------------- one price
    def _g(self, T, E, lam, allowed):
        return np.where(allowed, T - lam * E, -np.inf)

    def _roots(self, lam, a, b, A, B):
        """Roots of ``g_A − g_B`` in ``[a, b]`` (arrays), ``g_A ≥ g_B`` at ``a``, ``≤`` at ``b``."""
        from scipy.optimize.elementwise import find_root

        A, B = np.asarray(A), np.asarray(B)

        def f(x, A, B):
            T, E = self.ev(x)
            A = np.broadcast_to(A, x.shape).astype(int)
            B = np.broadcast_to(B, x.shape).astype(int)
            gA = np.take_along_axis(T - lam * E, A[..., None], -1)[..., 0]
            gB = np.take_along_axis(T - lam * E, B[..., None], -1)[..., 0]
            return gA - gB

        res = find_root(f, (np.asarray(a, float), np.asarray(b, float)), args=(A, B),
                        tolerances=dict(xatol=0.0, xrtol=4 * np.finfo(float).eps, fatol=0.0, frtol=0.0))
        return np.asarray(res.x, float)

    def _split(self, lam, pts, am, allowed_row, depth=0):
        """Switching points and maximisers on sample points ``pts`` (sorted) with argmax ``am``."""
        idx = np.nonzero(am[:-1] != am[1:])[0]
        if idx.size == 0:
            return [], [int(am[0])]
        s = self._roots(lam, pts[idx], pts[idx + 1], am[idx], am[idx + 1])
        T, E = self.ev(s)
        g = self._g(T, E, lam, allowed_row[None, :])
        gA = g[np.arange(len(s)), am[idx]]
        scale = np.abs(T).max(axis=1) + abs(lam) * np.abs(E).max(axis=1)
        bad = g.max(axis=1) > gA + 1e-12 * scale
        sw, gam = [], [int(am[0])]
        for k, i in enumerate(idx):
            if bad[k]:  # a third budget is on top inside [pts[i], pts[i+1]]: resample it finer
                if depth > 6:
                    raise RuntimeError(f"optimum(method='exact'): could not resolve the maximiser near h = {s[k]:.6g}")
                sub = np.linspace(pts[i], pts[i + 1], 33)
                Ts, Es = self.ev(sub)
                ams = np.argmax(self._g(Ts, Es, lam, allowed_row[None, :]), axis=1)
                ams[0], ams[-1] = am[i], am[i + 1]
                sw2, gam2 = self._split(lam, sub, ams, allowed_row, depth + 1)
                sw += sw2
                gam += gam2[1:]
            else:
                sw.append(float(s[k]))
                gam.append(int(am[i + 1]))
        return sw, gam

    def policy(self, lam: float) -> _LamPolicy:
        lam = float(lam)
        hit = self._cache.get(lam)
        if hit is not None:
            return hit
        g = self._g(self.ST, self.SE, lam, self.allowed[:, None, :])
        am = np.argmax(g, axis=-1)  # (C, n+2)
        const = np.all(am == am[:, :1], axis=1)
        gc = am[:, 0]
        C = len(const)
        ci = np.arange(C)
        t = float(np.sum(self.IT[ci, gc] * const))
        e = float(np.sum(self.IE[ci, gc] * const))
        lo, hi, gam, switches = [], [], [], []
        piece_l, piece_r, piece_g = [], [], []
        for c in range(C):
            if const[c]:
                lo.append(self.edges[c]); hi.append(self.edges[c + 1]); gam.append(int(gc[c]))
                continue
            sw, gg = self._split(lam, self.SH[c], am[c], self.allowed[c])
            b = [self.edges[c]] + sw + [self.edges[c + 1]]
            switches += sw
            for k, gk in enumerate(gg):
                lo.append(b[k]); hi.append(b[k + 1]); gam.append(gk)
                piece_l.append(b[k]); piece_r.append(b[k + 1]); piece_g.append(gk)
        if piece_l:
            pl, pr, pg = np.array(piece_l), np.array(piece_r), np.array(piece_g)
            H = 0.5 * (pl + pr)[:, None] + 0.5 * (pr - pl)[:, None] * self.xg
            Wt = 0.5 * (pr - pl)[:, None] * self.wg * np.exp(-H)
            T, E = self.ev(H)
            t += float(np.sum(Wt * np.take_along_axis(T, pg[:, None, None], -1)[..., 0]))
            e += float(np.sum(Wt * np.take_along_axis(E, pg[:, None, None], -1)[..., 0]))
        # atom at h_min and tail at top
        g_atom = self.T_atom - lam * self.E_atom
        ga = 0 if self.atom_out else int(np.argmax(g_atom))
        gt = int(np.argmax(self.T_tail - lam * self.E_tail))
        t += self.m_atom * self.T_atom[ga] + self.m_tail * self.T_tail[gt]
        e += self.m_atom * self.E_atom[ga] + self.m_tail * self.E_tail[gt]
        lo, hi, gam = np.array(lo), np.array(hi), np.array(gam, int)
        # merge consecutive pieces with the same maximiser
        keep = np.concatenate([[True], gam[1:] != gam[:-1]])
        starts = np.nonzero(keep)[0]
        ends = np.concatenate([starts[1:], [len(gam)]]) - 1
        out = _LamPolicy(lam, t, e, lo[starts], hi[ends], gam[starts], np.array(switches))
        self._cache[lam] = out
        return out

    def G(self, lam):
        p = self.policy(lam)
        return p.t - lam * p.e

    def error(self):
        """Integration error estimates ``(err_T, err_E)`` of the means (sum over cells)."""
        return float(self.err_T_cell.sum()), float(self.err_E_cell.sum())


def _solve_exact(scenario: Scenario, policy: Policy, E_bar: float, ev: _ProxyEval | None = None):
    """λ*, T* of the continuous problem: root of ``e(λ) = Ē`` (brentq) or ``λ* = 0``."""
    from scipy.optimize import brentq

    ev = ev if ev is not None else _ProxyEval(scenario, policy)
    prob = _ExactProblem(scenario, policy, ev)
    err_T, err_E = prob.error()
    p0 = prob.policy(0.0)
    info: dict[str, Any] = {"err_T": err_T, "err_E": err_E}
    # cheapest stationary energy (γ with least energy everywhere): λ → ∞
    e_min = float(np.sum(np.where(prob.allowed, prob.IE, np.inf).min(axis=1))) + prob.m_atom * (
        prob.E_atom[0] if prob.atom_out else prob.E_atom.min()) + prob.m_tail * prob.E_tail.min()
    t_min = float(np.sum(np.where(prob.allowed, prob.IT, np.inf).min(axis=1)))
    if E_bar <= e_min * (1 + 1e-12):
        raise ValueError(f"Scenario.E_bar = {E_bar:g} J is not above the cheapest stationary energy {e_min:g} J: no feasible policy")
    etol = 1e-13 * E_bar + err_E
    if p0.e <= E_bar:
        info.update(slack=True, kappa=0.0, lam_err=0.0, xtol=0.0)
        return prob, p0, 0.0, p0.t, p0.t + 0.0, p0.e, info
    lam_hi = max((p0.t - t_min) / (E_bar - e_min), 1e-12) * 1.001
    for _ in range(200):
        if prob.policy(lam_hi).e < E_bar:
            break
        lam_hi *= 2.0
    else:
        raise RuntimeError("optimum(method='exact'): no price with e(λ) < Ē found")
    xtol = 1e-13 * lam_hi
    lam = float(brentq(lambda x: prob.policy(x).e - E_bar, 0.0, lam_hi, xtol=xtol, rtol=1e-15, maxiter=300))
    pl = prob.policy(lam)
    T_dual = lam * E_bar + (pl.t - lam * pl.e)
    if abs(pl.e - E_bar) <= etol:
        T_primal, energy = pl.t, pl.e
    else:  # e(λ) jumps at λ* (an atom, or a tie of positive mass): randomise between the two sides
        a, b = prob.policy(max(lam - 2 * xtol, 0.0)), prob.policy(lam + 2 * xtol)
        th = (E_bar - b.e) / (a.e - b.e) if a.e != b.e else 1.0
        th = min(max(th, 0.0), 1.0)
        T_primal, energy = th * a.t + (1 - th) * b.t, th * a.e + (1 - th) * b.e
        info["mixed"] = th
    # κ = −de/dλ at λ* (central difference) and the precision of λ*
    d = 1e-4 * lam
    kappa = (prob.policy(lam - d).e - prob.policy(lam + d).e) / (2 * d)
    lam_err = 2 * xtol + 1e-15 * lam + (etol / kappa if kappa > 0 else float("inf"))
    info.update(slack=False, kappa=float(kappa), lam_err=float(lam_err), xtol=xtol)
    return prob, pl, lam, T_primal, T_dual, energy, info


def _exact_optimum(scenario: Scenario, policy: Policy, E_bar: float, proxy: str) -> Optimum:
    ev = _ProxyEval(scenario, policy)
    prob, pl, lam, T_primal, T_dual, energy, info = _solve_exact(scenario, policy, E_bar, ev)
    # bins: the pieces of constant maximiser of the λ*-policy (one-hot rows), plus the outage edge
    inner = np.concatenate([pl.lo[1:], [prob.h_out] if prob.h_min < prob.h_out < prob.top else []])
    edges = np.unique(np.concatenate([[0.0], inner, [np.inf]]))
    F = -np.expm1(-edges)  # Exp(1) CDF; the clamp puts P(h < h_min) on the first bin
    w = np.diff(F)
    mid = np.where(np.isinf(edges[1:]), edges[:-1] + math.log(2.0), -np.log1p(-0.5 * (F[:-1] + F[1:])))
    nodes = np.maximum(mid, prob.h_min)
    k = np.clip(np.searchsorted(pl.lo, nodes, side="right") - 1, 0, len(pl.gamma) - 1)
    gam = np.where(nodes < prob.h_out, 0, pl.gamma[k])
    G1 = prob.G1
    probs = np.zeros((len(nodes), G1))
    probs[np.arange(len(nodes)), gam] = 1.0
    T, E = ev(nodes)
    out = nodes < prob.h_out
    tol_T = 10.0 * (info["err_T"] + lam * info["err_E"]) + abs(T_primal - T_dual) + 1e-13 * abs(T_dual)
    mc = None
    if proxy == "exact":
        mc = _proxy_mc_error(scenario, policy, ev, prob, pl, lam, E_bar)
    return Optimum(
        T_star=float(T_primal), T_star_dual=float(T_dual), lambda_star=float(lam), lambda_star_lp=float(lam),
        energy=float(energy), E_bar=E_bar, T_lower=float(T_dual - tol_T), T_upper=float(T_dual + tol_T),
        tolerance=float(tol_T), h_edges=edges, h_nodes=nodes, weights=w, outage=out, probs=probs, throughput=T,
        energy_table=E, proxy=proxy, method="exact", lambda_star_precision=float(info["lam_err"]),
        switching_points=np.asarray(pl.lo[1:]), kappa=float(info["kappa"]), slack=bool(info["slack"]),
        proxy_mc_error=mc,
    )


MC_ERROR_ALPHA = 1e-3  # one-sided level of the exact-proxy table's Monte Carlo floor of T*


def _proxy_mc_error(scenario, policy, ev, prob, pl, lam, E_bar) -> float:
    r"""Monte Carlo floor of ``T*`` from the exact-proxy table (a sample average over
    ``EXACT_SAMPLES`` entropy vectors). To first order (envelope theorem) a perturbation of the
    table moves ``T*`` by the change of the Lagrangian ``E_h[T − λ*E]`` of the fixed λ*-policy.
    The table is the mean of the tables of its ``m = EXACT_SAMPLES / EXACT_CHUNK`` chunks (16
    independent samples of 8,192 entropy vectors), so the standard error of that Lagrangian is
    ``s/√m``, ``s`` the standard deviation of the chunk tables' Lagrangians; the floor returned is
    ``t_{m−1, 1−α}·s/√m`` with ``α = MC_ERROR_ALPHA``: the table's ``T*`` lies below the true one
    by more than the floor with probability ≤ α (one-sided, to first order). The previous estimate
    (twice the distance between the full and the half-sample table, one draw) gave 0.0042 tok/s for
    GELATO's (b) at the defaults, and a full verify with 4,096 realizations measured G_L ≈ −0.010
    tok/s (7 standard errors of the simulation) there: the table's error, under-estimated."""
    from scipy import stats

    from . import exact_proxy

    m = exact_proxy.EXACT_SAMPLES // exact_proxy.EXACT_CHUNK
    with jax.enable_x64(True):
        part = jax.jit(lambda s, p, j: exact_proxy.build_table(
            s, payload=p.payload, exit=p.exit, H_th=p.H_th, Theta_th=p.Theta_th,
            samples=exact_proxy.EXACT_CHUNK, chunk_offset=j))
        parts = [part(scenario, policy, jnp.asarray(j, jnp.int32)) for j in range(m)]

    b = np.unique(np.concatenate([prob.edges, pl.lo, pl.hi]))
    lo, hi = b[:-1], b[1:]
    g = pl.gamma[np.clip(np.searchsorted(pl.lo, 0.5 * (lo + hi), side="right") - 1, 0, len(pl.gamma) - 1)]

    def lagr(e):
        H = 0.5 * (lo + hi)[:, None] + 0.5 * (hi - lo)[:, None] * prob.xg
        Wt = 0.5 * (hi - lo)[:, None] * prob.wg * np.exp(-H)
        T, E = e(H)
        sel = lambda X: np.take_along_axis(X, g[:, None, None], -1)[..., 0]  # noqa: E731
        return float(np.sum(Wt * (sel(T) - lam * sel(E))))

    Ls = np.array([lagr(_ProxyEval(scenario, policy, ev.aux._replace(table=t))) for t in parts])
    return float(stats.t.ppf(1.0 - MC_ERROR_ALPHA, m - 1) * Ls.std(ddof=1) / math.sqrt(m))


def optimum_convergence(scenario: Scenario, policy: Policy, quantiles=(256, 1024, 4096, 16384, 65536), *,
                        E_bar: float | None = None) -> dict[str, Any]:
    """The quantised LP against the exact integration, per bin count.

    Returns ``{"exact": Optimum, "rows": [...], "slope_T": s, "slope_lambda": s}`` with one row per
    bin count ``{"quantiles", "T_star", "T_star_dual", "lambda_star", "lambda_star_lp", "T_lower",
    "T_upper", "dT", "dlambda", "seconds"}`` (``dT = T_star − T*_exact``, ``dlambda = λ*_q − λ*_exact``)
    and the least-squares log-log slopes of ``|dT|`` and ``|dlambda|`` against the bin count
    (``nan`` with fewer than two non-zero differences).
    """
    import time

    ex = optimum(scenario, policy, method="exact", E_bar=E_bar)
    rows = []
    for q in quantiles:
        t0 = time.perf_counter()
        o = optimum(scenario, policy, method="quantised", quantiles=int(q), E_bar=E_bar)
        rows.append({
            "quantiles": int(q), "T_star": o.T_star, "T_star_dual": o.T_star_dual, "lambda_star": o.lambda_star,
            "lambda_star_lp": o.lambda_star_lp, "T_lower": o.T_lower, "T_upper": o.T_upper,
            "dT": o.T_star - ex.T_star, "dlambda": o.lambda_star - ex.lambda_star,
            "seconds": time.perf_counter() - t0,
        })

    def slope(key):
        q = np.array([r["quantiles"] for r in rows], float)
        d = np.abs(np.array([r[key] for r in rows], float))
        m = d > 0
        if m.sum() < 2:
            return float("nan")
        return float(np.polyfit(np.log(q[m]), np.log(d[m]), 1)[0])

    return {"exact": ex, "rows": rows, "slope_T": slope("dT"), "slope_lambda": slope("dlambda")}
