r"""One check per claim of docs/model.md §8, each a small function of arrays returning a ``Verdict``.

The functions take plain arrays (trajectories, per-realization time averages, constants) so a
test can feed them a constructed counterexample and see them fail.  Producing the arrays
(rollouts, the V sweep, the theory constants) is done by ``proofs_check.run``.

Statistics (stated in every verdict's ``details``):

* Deterministic claims (per-slot optimality, energy on every path, the per-round drift
  inequality, ``E_t ≤ E_max``) are checked on every round / path with a floating-point
  tolerance of ``64 ε`` times the magnitude of the terms; no randomness, no false failures
  beyond rounding.
* Claims about expectations (throughput gap, queue bound, ``T*`` as an upper bound) use the
  ``R`` per-realization time averages, which are i.i.d. across realizations: a one-sided
  Student-t lower confidence bound at level ``1 − α/n_V`` (Bonferroni over the ``n_V`` values
  of ``V``). The check fails only when that lower bound exceeds the theorem's bound, so the
  probability of a false failure when the claim holds is at most ``α`` (default ``1e-3``).
* Slopes: ``scipy.stats.linregress`` of log-log points, percentile bootstrap over realizations
  (rows resampled jointly across ``V``: every ``V`` uses the same random numbers for a given
  realization), one-sided at level ``1 − α``.
* Closed forms vs Monte Carlo: two-sided z-tests at ``α/k`` for ``k`` compared numbers.
* Losslessness: a chi-square goodness-of-fit test at level ``α``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from .verdict import RATE, Verdict, not_run

__all__ = [
    "ALPHA",
    "brute_force_budget",
    "check_per_slot_optimality",
    "check_energy_paths",
    "check_drift_invariant",
    "check_energy_bounded",
    "check_drift_constant",
    "check_gap_bound",
    "check_queue_bound",
    "check_lagrangian_upper_bound",
    "check_lagrangian_gap_bound",
    "check_regret_consistency",
    "check_lagrangian_slope",
    "lagrangian_gap",
    "lagrangian_transient",
    "check_gap_slope",
    "check_queue_slope",
    "check_closed_form",
    "check_optimum_agreement",
    "check_lossless",
    "check_single_compile",
    "log_slope",
]

ALPHA = 1e-3  # family-wise false-failure probability of each statistical check
_EPS = float(np.finfo(np.float64).eps)
_ROUND_TOL = 64.0  # rounding tolerance, in units of eps times the magnitude of the terms


# ----------------------------------------------------------------------------- claim 1
def brute_force_budget(V, queue, throughput_hat, energy_hat, outage):
    r"""Reference maximiser of ``U(γ) = V T̂(γ) − Z Ê(γ)`` by an explicit loop over ``γ``.

    Args: ``V``, ``queue``: ``(n,)`` (or scalars); ``throughput_hat``, ``energy_hat``:
    ``(n, γ_max+1)``; ``outage``: ``(n,)`` bool (only ``γ = 0`` allowed).
    Returns ``(budget (n,), U (n, γ_max+1))`` with ties to the smallest ``γ``.
    """
    T = np.asarray(throughput_hat, np.float64)
    E = np.asarray(energy_hat, np.float64)
    n, G = T.shape
    V = np.broadcast_to(np.asarray(V, np.float64), (n,))
    Z = np.broadcast_to(np.asarray(queue, np.float64), (n,))
    out = np.broadcast_to(np.asarray(outage, bool), (n,))
    U = V[:, None] * T - Z[:, None] * E
    best = np.zeros(n, np.int64)
    best_u = U[:, 0].copy()
    for g in range(1, G):
        better = (U[:, g] > best_u) & ~out
        best = np.where(better, g, best)
        best_u = np.where(better, U[:, g], best_u)
    return best, U


def check_per_slot_optimality(V, queue, throughput_hat, energy_hat, outage, budget) -> Verdict:
    """Claim 1 (Lemma 1): the controller's budget is the exact maximiser of the per-slot
    drift-plus-penalty objective on every round (ties: smallest ``γ``)."""
    claim = "§8.1 per-slot optimality: budget = argmax_γ V·T̂(γ) − Z·Ê(γ) on every round"
    ref, U = brute_force_budget(V, queue, throughput_hat, energy_hat, outage)
    budget = np.asarray(budget).astype(np.int64).reshape(-1)
    if budget.shape != ref.shape:
        raise ValueError(f"budget must have shape {ref.shape}, got {budget.shape}")
    n = ref.size
    G = U.shape[1]
    inside = (budget >= 0) & (budget < G)
    u_ctrl = np.where(inside, U[np.arange(n), np.clip(budget, 0, G - 1)], -np.inf)
    u_ref = U[np.arange(n), ref]
    out = np.broadcast_to(np.asarray(outage, bool), (n,))
    scale = np.max(np.abs(U), axis=1)
    tol = _ROUND_TOL * _EPS * np.maximum(scale, 1e-300)
    # a budget other than the reference is accepted only for a floating-point tie (the reference
    # is computed in numpy, the controller in XLA), never in outage (only γ = 0 allowed)
    ok = (budget == ref) | ((u_ref - u_ctrl <= tol) & ~(out & (budget != 0)))
    regret = np.where(ok, 0.0, u_ref - u_ctrl)
    bad = np.flatnonzero(~ok)
    details = {
        "rounds_checked": int(n),
        "mismatches": int(bad.size),
        "exact_index_matches": int(np.sum(budget == ref)),
        "float_ties_accepted": int(np.sum(ok & (budget != ref))),
        "tolerance": f"{_ROUND_TOL:g} eps x max|U| (rounding only; deterministic check)",
    }
    if bad.size:
        i = int(bad[0])
        details["first_mismatch"] = {"round": i, "controller": int(budget[i]), "argmax": int(ref[i]), "U": U[i].tolist()}
    return Verdict(claim, float(np.max(regret)) if n else 0.0, 0.0, None, bool(bad.size == 0), details, direction="statistic ≤ bound: worst per-round regret of the chosen budget ≤ 0 (rounding tolerance)")


# ----------------------------------------------------------------------------- claim 2
def check_energy_paths(energy, arrival, queue_final, rounds: int | None = None) -> Verdict:
    r"""Claim 2: on every sample path ``(1/T) Σ E_t ≤ (1/T) Σ a_t + Z_T / T``.

    Args: ``energy``, ``arrival``: ``(R, T)`` per-round arrays, or ``(...,)`` per-path time
    averages together with ``rounds = T``; ``queue_final``: final queues ``Z_T`` (same leading
    shape).
    """
    claim = "§8.2 energy on every path: (1/T)ΣE_t ≤ (1/T)Σa_t + Z_T/T"
    E = np.asarray(energy, np.float64)
    a = np.asarray(arrival, np.float64)
    Z = np.asarray(queue_final, np.float64)
    if rounds is None:
        if E.ndim != 2:
            raise ValueError("energy must be (R, T) per-round arrays, or pass rounds= with time averages")
        T = E.shape[1]
        lhs, rhs_a = E.mean(axis=1), a.mean(axis=1)
        mag = (np.abs(E).sum(axis=1) + np.abs(a).sum(axis=1) + np.abs(Z)) / T
    else:
        T = int(rounds)
        lhs, rhs_a = E, a
        mag = np.abs(E) + np.abs(a) + np.abs(Z) / T
    excess = lhs - rhs_a - Z / T
    tol = _ROUND_TOL * _EPS * T * np.maximum(mag, 1e-300)
    bad = excess > tol
    details = {
        "paths_checked": int(excess.size),
        "violations": int(np.sum(bad)),
        "rounds": T,
        "max_excess_over_tolerance": float(np.max(excess - tol)) if excess.size else 0.0,
        "tolerance": "64 eps x T x magnitude (summation rounding; deterministic check)",
    }
    return Verdict(claim, float(np.max(excess)) if excess.size else 0.0, 0.0, None, bool(not np.any(bad)), details, direction="statistic ≤ bound: worst excess of (1/T)ΣE over (1/T)Σa + Z_T/T ≤ 0 on every path")


def check_drift_invariant(queue, energy, arrival, V=0.0, throughput_hat_chosen=0.0) -> Verdict:
    r"""Claim (issue 5, item 5): along every trajectory and round
    ``½Z_{t+1}² − ½Z_t² − V T̂_t ≤ B_t + Z_t(E_t − a_t) − V T̂_t`` with
    ``B_t = ½(E_t − a_t)²`` (the per-round term whose expectation the theorem bounds by ``B``).

    Args: ``queue``: ``(R, T+1)`` queue path ``Z_0..Z_T``; ``energy``, ``arrival``: ``(R, T)``;
    ``V`` and ``throughput_hat_chosen`` (``T̂`` of the chosen budget, ``(R, T)``) enter both sides.
    """
    claim = "per-round drift-plus-penalty: ½Z²_{t+1} − ½Z²_t − V·T̂_t ≤ B_t + Z_t(E_t − a_t) − V·T̂_t"
    Z = np.asarray(queue, np.float64)
    E = np.asarray(energy, np.float64)
    a = np.asarray(arrival, np.float64)
    if Z.shape[:-1] != E.shape[:-1] or Z.shape[-1] != E.shape[-1] + 1:
        raise ValueError(f"queue must have shape (R, T+1) for energy (R, T); got {Z.shape} and {E.shape}")
    pen = np.asarray(V, np.float64) * np.asarray(throughput_hat_chosen, np.float64)
    z0, z1 = Z[..., :-1], Z[..., 1:]
    d = E - a
    lhs = 0.5 * z1**2 - 0.5 * z0**2 - pen
    rhs = 0.5 * d**2 + z0 * d - pen
    excess = lhs - rhs
    tol = _ROUND_TOL * _EPS * (z1**2 + z0**2 + d**2 + np.abs(z0 * d) + np.abs(pen) + 1e-300)
    bad = excess > tol
    details = {
        "rounds_checked": int(excess.size),
        "violations": int(np.sum(bad)),
        "max_slack_used": float(np.max(excess / np.maximum(np.abs(rhs), 1e-300))) if excess.size else 0.0,
        "tolerance": "64 eps x magnitude of the terms (deterministic check)",
    }
    if np.any(bad):
        idx = np.unravel_index(int(np.argmax(excess - tol)), excess.shape)
        details["worst_round"] = [int(i) for i in idx]
    return Verdict(claim, float(np.max(excess)) if excess.size else 0.0, 0.0, None, bool(not np.any(bad)), details, direction="statistic ≤ bound: worst excess of the drift over its bound ≤ 0 on every round")


def check_energy_bounded(energy, E_max) -> Verdict:
    """Assumption of §8: every round's energy is at most ``E_max``."""
    claim = "§8 assumption: per-round energy E_t ≤ E_max on every round"
    E = np.asarray(energy, np.float64)
    worst = float(np.max(E)) if E.size else 0.0
    ok = worst <= float(E_max) * (1 + _ROUND_TOL * _EPS)
    return Verdict(claim, worst, float(E_max), None, bool(ok), {"rounds_checked": int(E.size), "violations": int(np.sum(E > float(E_max) * (1 + _ROUND_TOL * _EPS)))}, direction="statistic ≤ bound: largest per-round energy ≤ E_max")


def check_drift_constant(energy, arrival, B, alpha: float = ALPHA) -> Verdict:
    r"""``B = ½ sup E[(E_t − a_t)²]`` bounds the realized second moment: the mean of
    ``½(E_t − a_t)²`` along the trajectories must not exceed ``B``. ``energy``, ``arrival``:
    ``(R, T)``; the per-trajectory time averages are i.i.d. over ``R``; fails when their one-sided
    Student-t lower bound (level ``1 − α``) exceeds ``B``."""
    claim = "§8.3 drift constant: mean of ½(E_t − a_t)² ≤ B along the trajectories"
    d = 0.5 * (np.asarray(energy, np.float64) - np.asarray(arrival, np.float64)) ** 2
    x = d.mean(axis=1)
    m, lo, hi = _mean_lower(x[None, :], 1 - alpha)
    details = {
        "trajectories": int(d.shape[0]),
        "rounds": int(d.shape[1]),
        "max_round_value": float(d.max()),
        "test": f"fail iff one-sided Student-t lower bound (level 1 - {alpha:g}) of the mean > B; false-failure probability <= {alpha:g}",
    }
    return Verdict(claim, float(m[0]), float(B), (float(lo[0]), float(hi[0])), bool(lo[0] <= B), details, direction="CI low ≤ bound: mean ½(E − a)² not significantly above B")


# ----------------------------------------------------------------------------- helpers
def _mean_lower(x, level):
    """Mean over the last axis and its one-sided Student-t lower bound at ``level``."""
    x = np.asarray(x, np.float64)
    n = x.shape[-1]
    m = x.mean(axis=-1)
    if n < 2:
        return m, np.full_like(m, -np.inf), np.full_like(m, np.inf)
    se = x.std(axis=-1, ddof=1) / math.sqrt(n)
    q = stats.t.ppf(level, n - 1)
    return m, m - q * se, m + q * se


# ----------------------------------------------------------------------------- claim 3
def check_gap_bound(V, throughput, T_star, B, C, alpha: float = ALPHA, *, t_star_tol: float = 0.0) -> Verdict:
    r"""Claim 3: ``gap(V) = T* − (1/T)Σ E[T_t] ≤ (B + C)/V`` for every ``V``.

    Args: ``V`` ``(n_V,)``; ``throughput`` ``(n_V, R)`` per-realization time averages of
    ``N_t/D_t``; ``T_star``, ``B``, ``C`` scalars. Fails when the one-sided lower confidence bound
    of the gap (level ``1 − α/n_V``) exceeds the bound at some ``V``.
    """
    claim = "§8.3 throughput gap: T* − T̄(V) ≤ (B + C)/V for every V"
    V = np.asarray(V, np.float64)
    x = np.asarray(throughput, np.float64)
    nV, R = x.shape
    level = 1 - alpha / nV
    m, lo_thr, hi_thr = _mean_lower(x, level)
    gap = T_star - m
    gap_lo = T_star - hi_thr  # lower confidence bound of the gap
    gap_hi = T_star - lo_thr
    BC = B + np.broadcast_to(np.asarray(C, np.float64), V.shape)  # C may depend on V (C = V·δ_T)
    bound = BC / V
    viol = gap_lo - t_star_tol > bound  # t_star_tol: known numerical uncertainty of T* (quantisation)
    with np.errstate(divide="ignore", invalid="ignore"):
        tight = np.where(BC > 0, V * gap / BC, np.inf)
    k = int(np.argmax(gap_lo - bound))
    details = {
        "V": V,
        "gap": gap,
        "gap_ci_one_sided": [gap_lo, gap_hi],
        "bound": bound,
        "tightness_ratio_V_gap_over_B_plus_C": tight,
        "max_tightness_ratio": float(np.max(tight)),
        "T_star": float(T_star),
        "t_star_tolerance": float(t_star_tol),
        "B": float(B),
        "C": np.broadcast_to(np.asarray(C, np.float64), V.shape),
        "realizations": int(R),
        "violations": int(np.sum(viol)),
        "test": f"fail iff one-sided Student-t lower bound of gap (minus the T* tolerance) (level 1 - {alpha:g}/{nV}) > (B+C)/V; "
        f"false-failure probability <= {alpha:g}",
    }
    return Verdict(claim, float(gap[k]), float(bound[k]), (float(gap_lo[k]), float(gap_hi[k])), bool(not np.any(viol)), details, direction="statistic ≤ bound at every V: fails iff the one-sided lower confidence bound of the gap exceeds (B + C)/V")


def lagrangian_gap(throughput, energy, arrival, T_star, lambda_star):
    r"""Per-realization Lagrangian-corrected gap ``G_L = T* − T̄ + λ*·(Ē − ā)`` (time averages of one
    path: throughput ``N_t/D_t``, energy ``E_t``, arrival ``a_t``; any matching shapes)."""
    return T_star - np.asarray(throughput, np.float64) + lambda_star * (np.asarray(energy, np.float64) - np.asarray(arrival, np.float64))


def lagrangian_transient(V, queue_final, rounds, lambda_star, queue_initial=0.0):
    r"""The horizon term of the upper bound on ``G_L``, per realization:
    ``[λ*(Z_T − Z_0) + (Z_0² − Z_T²)/(2V)] / T`` (``V`` broadcast against ``queue_final``, e.g.
    ``(n_V, 1)`` against ``(n_V, R)``).

    Derivation (``check_lagrangian_gap_bound``): summing the drift-plus-penalty inequality over
    ``T`` rounds gives ``T* − T̄ ≤ (B + C)/V + E[Z_0² − Z_T²]/(2VT)``; on every path
    ``(1/T)Σ(E_t − a_t) ≤ (Z_T − Z_0)/T`` (claim 2). With ``Z_0 = 0`` the term is at most
    ``λ*·Z_T/T`` and never exceeds ``V λ*²/(2T)`` (the maximum of ``λ*z − z²/(2V)`` over ``z``)."""
    V = np.asarray(V, np.float64)
    ZT = np.asarray(queue_final, np.float64)
    Z0 = np.asarray(queue_initial, np.float64)
    return (lambda_star * (ZT - Z0) + (Z0**2 - ZT**2) / (2.0 * V)) / float(rounds)


def check_lagrangian_upper_bound(V, throughput, energy, arrival, T_star, lambda_star, *, t_star_tol: float = 0.0, alpha: float = ALPHA, claim_suffix: str = "") -> Verdict:
    r"""Lower bound ``G_L ≥ 0`` (``T*`` is an upper bound): for any causal policy, when the fading of
    every round has the i.i.d. law as its marginal (i.i.d., or a stationary Gauss–Markov chain) and
    the token draws of a round are fresh, ``E[T_t − λ*(E_t − a_t)] ≤ T*`` round by round (weak
    duality: ``T(γ_t, h_t) − λ*E(γ_t, h_t) ≤ max_γ(T(γ, h_t) − λ*E(γ, h_t))`` pointwise, whose mean
    over the marginal of ``h_t`` is ``T* − λ*Ē``), so ``E[G_L] ≥ 0`` at every horizon. ``T`` and
    ``E`` must be the true conditional means (``C = 0``) — or ``T*``, ``λ*`` of the exact problem.
    Checks ``T*`` from below: a ``T*`` that is too small, or a simulator that produces more throughput
    than the model allows, fails. ``throughput``, ``energy``, ``arrival``: ``(n_V, R)``; fails when
    the one-sided upper confidence bound of ``G_L`` (level ``1 − α/n_V``) is below ``−t_star_tol``.
    """
    claim = "§8.3 Lagrangian gap G_L = T* − T̄ + λ*·(Ē − ā) ≥ 0 for every V (weak duality: T* is an upper bound)" + claim_suffix
    g = lagrangian_gap(throughput, energy, arrival, T_star, lambda_star)
    nV, R = g.shape
    m, lo, hi = _mean_lower(g, 1 - alpha / nV)
    viol = hi < -t_star_tol
    k = int(np.argmin(hi))
    details = {
        "V": np.asarray(V, np.float64),
        "G_L": m,
        "ci_one_sided": [lo, hi],
        "T_star": float(T_star),
        "lambda_star": float(lambda_star),
        "t_star_tolerance": float(t_star_tol),
        "realizations": int(R),
        "violations": int(np.sum(viol)),
        "test": f"fail iff the one-sided upper bound (level 1 - {alpha:g}/{nV}) of G_L is below -tol (tol: numerical uncertainty of T*); "
        f"false-failure probability <= {alpha:g}",
    }
    return Verdict(claim, float(m[k]), float(-t_star_tol), (float(lo[k]), float(hi[k])), bool(not np.any(viol)), details, direction="statistic ≥ bound at every V: fails iff the one-sided upper confidence bound of G_L is below −tol")


def check_lagrangian_gap_bound(V, throughput, energy, arrival, queue_final, rounds, T_star, lambda_star, B, C, *, queue_initial=0.0, t_star_tol: float = 0.0, alpha: float = ALPHA) -> Verdict:
    r"""Upper bound ``E[G_L] ≤ (B + C)/V + E[λ*(Z_T − Z_0) + (Z_0² − Z_T²)/(2V)]/T`` for every ``V``.

    Derivation (i.i.d. states; ``C`` as in ``theory.bounds``: ``C = V·max(0, sup(T̂ − T))`` and
    ``E ≤ Ê``). Per round ``½Z²_{t+1} − ½Z²_t ≤ ½(E_t − a_t)² + Z_t(E_t − a_t)``; the controller
    minimises ``Z Ê − V T̂`` per state, so ``E[Δ_t − V T_t | Z_t] ≤ B + C − V T*`` (compare with the
    optimal stationary policy of the problem, ``E_h Ê ≤ Ē``, ``E_h T̂ = T*``). Summing over
    ``t < T``: ``T* − T̄ ≤ (B + C)/V + E[Z_0² − Z_T²]/(2VT)``. On every path
    ``(1/T)Σ(E_t − a_t) ≤ (Z_T − Z_0)/T`` (claim 2), so ``λ*(Ē − ā) ≤ λ*(Z_T − Z_0)/T``; adding:
    ``G_L ≤ (B + C)/V + [λ*(Z_T − Z_0) + (Z_0² − Z_T²)/(2V)]/T`` in expectation. With ``Z_0 = 0``
    this is at most ``(B + C)/V + λ*E[Z_T]/T``.

    The per-realization statistic ``X = G_L − [λ*(Z_T − Z_0) + (Z_0² − Z_T²)/(2V)]/T`` has mean at
    most ``(B + C)/V``; fails when its one-sided lower confidence bound (level ``1 − α/n_V``) minus
    the ``T*`` tolerance exceeds ``(B + C)/V`` at some ``V``. Arrays ``(n_V, R)``; ``queue_initial``
    a scalar or ``(n_V,)``.
    """
    claim = "§8.3 G_L ≤ (B + C)/V + [λ*·E(Z_T − Z_0) − E(Z_T² − Z_0²)/(2V)]/T for every V (drift-plus-penalty + energy on every path)"
    V = np.asarray(V, np.float64)
    g = lagrangian_gap(throughput, energy, arrival, T_star, lambda_star)
    nV, R = g.shape
    Z0 = np.broadcast_to(np.asarray(queue_initial, np.float64), V.shape)[:, None]
    tr = lagrangian_transient(V[:, None], queue_final, rounds, lambda_star, Z0)
    x = g - tr
    m, lo, hi = _mean_lower(x, 1 - alpha / nV)
    BC = float(B) + np.broadcast_to(np.asarray(C, np.float64), V.shape)
    bound = BC / V
    viol = lo - t_star_tol > bound
    k = int(np.argmax(lo - bound))
    mg, glo, ghi = _mean_lower(g, 1 - alpha / nV)
    details = {
        "V": V,
        "G_L": mg,
        "G_L_ci_one_sided": [glo, ghi],
        "transient_term_mean": tr.mean(axis=1),
        "bound_B_plus_C_over_V": bound,
        "bound_with_transient": bound + tr.mean(axis=1),
        "bound_simple_B_plus_C_over_V_plus_lambda_ZT_over_T": bound + lambda_star * (np.asarray(queue_final, np.float64) - Z0).mean(axis=1) / float(rounds),
        "statistic_meaning": "mean over realizations of G_L minus its horizon term; must be <= (B+C)/V",
        "rounds": int(rounds),
        "realizations": int(R),
        "violations": int(np.sum(viol)),
        "test": f"fail iff the one-sided lower bound (level 1 - {alpha:g}/{nV}) of G_L - horizon term, minus the T* tolerance, exceeds (B+C)/V; "
        f"false-failure probability <= {alpha:g}",
    }
    return Verdict(claim, float(m[k]), float(bound[k]), (float(lo[k]), float(hi[k])), bool(not np.any(viol)), details, direction="statistic ≤ bound at every V: fails iff the one-sided lower confidence bound exceeds the bound")


def check_regret_consistency(V, lagrangian_gap_raw, regret, *, t_star_tol: float = 0.0, alpha: float = ALPHA) -> Verdict:
    r"""The Rao–Blackwellised estimator of ``G_L`` measures the same quantity as the raw one.

    ``regret``: per-realization time averages of ``ℓ_t = max_γ L(γ, h_t) − L(γ_t, h_t)``,
    ``L = T − λ*E`` at the round's fading; ``lagrangian_gap_raw``: ``G_L`` from the realized
    throughput, energy and arrivals over the same rounds. Per round,
    ``G_L,t − ℓ_t = [T* − λ*Ē − max_γ L(γ, h_t)] + [T(γ_t,h_t) − N_t/D_t] − λ*[E(γ_t,h_t) − E_t] − λ*(a_t − Ē)``:
    the last three terms have mean 0 when the tables are the conditional means (``C = 0``) and the
    first has mean ``T* − D(λ*)``, ``D`` the dual function, which is 0 up to the ``T*`` tolerance. So
    the difference must have mean in ``[−tol, tol]``: fails when its two-sided Student-t interval
    (level ``1 − α/n_V``) lies outside. A wrong ``T*`` or ``λ*``, tables that are not the simulated
    conditional means, or a regret computed at the wrong budget fail. Arrays ``(n_V, R)``.
    """
    claim = "§8.5 E[G_L] = E[Lagrangian regret ℓ_t]: the low-variance estimator of G_L agrees with the raw one"
    d = np.asarray(lagrangian_gap_raw, np.float64) - np.asarray(regret, np.float64)
    nV, R = d.shape
    m, lo, hi = _mean_lower(d, 1 - alpha / (2 * nV))
    viol = (lo > t_star_tol) | (hi < -t_star_tol)
    k = int(np.argmax(np.maximum(lo - t_star_tol, -t_star_tol - hi)))
    details = {
        "V": np.asarray(V, np.float64),
        "difference_mean": m,
        "difference_ci": [lo, hi],
        "t_star_tolerance": float(t_star_tol),
        "realizations": int(R),
        "violations": int(np.sum(viol)),
        "test": f"fail iff the two-sided Student-t interval (level 1 - {alpha:g}/{nV}) of mean(G_L raw - regret) lies outside [-tol, tol]; "
        f"false-failure probability <= {alpha:g}",
    }
    return Verdict(claim, float(m[k]), float(t_star_tol), (float(lo[k]), float(hi[k])), bool(not np.any(viol)), details, direction="|statistic| ≤ bound: CI of mean(G_L raw − regret) meets [−tol, tol] at every V")


# ----------------------------------------------------------------------------- claim 4
def check_queue_bound(V, queue_mean, B, C, T_max, T_ref, eps, alpha: float = ALPHA) -> Verdict:
    r"""Claim 4: ``(1/T) Σ E[Z_t] ≤ (B + C + V (T_max − T_ref)) / ε`` for every ``V``.

    ``T_ref``: docs/model.md §8.4 writes ``T*``; ``theory.bounds`` shows that form is not a valid bound
    in general and proves it with ``T_ε = E_h[T(0, h)]`` (the Slater policy's throughput), which
    ``gelato verify`` passes. ``queue_mean``: ``(n_V, R)`` per-realization time averages of ``Z_t``;
    ``C`` a scalar or one value per ``V``.
    """
    claim = "§8.4 queue: (1/T)ΣE[Z_t] ≤ (B + C + V(T_max − T_ε))/ε for every V"
    V = np.asarray(V, np.float64)
    q = np.asarray(queue_mean, np.float64)
    nV, R = q.shape
    m, lo, hi = _mean_lower(q, 1 - alpha / nV)
    Cv = np.broadcast_to(np.asarray(C, np.float64), V.shape)
    bound = (B + Cv + V * (T_max - T_ref)) / eps
    viol = lo > bound
    k = int(np.argmax(lo / bound))
    details = {
        "V": V,
        "queue_mean": m,
        "ci_one_sided": [lo, hi],
        "bound": bound,
        "ratio_queue_over_bound": m / bound,
        "B": float(B),
        "C": Cv,
        "T_max": float(T_max),
        "T_ref": float(T_ref),
        "eps": float(eps),
        "realizations": int(R),
        "violations": int(np.sum(viol)),
        "test": f"fail iff one-sided lower bound of mean queue (level 1 - {alpha:g}/{nV}) > bound; "
        f"false-failure probability <= {alpha:g}",
    }
    return Verdict(claim, float(m[k]), float(bound[k]), (float(lo[k]), float(hi[k])), bool(not np.any(viol)), details, direction="statistic ≤ bound at every V: fails iff the one-sided lower confidence bound of the mean queue exceeds the bound")


# ----------------------------------------------------------------------------- claim 5
def log_slope(V, y):
    """Least-squares slope of ``log y`` against ``log V`` (``scipy.stats.linregress``)."""
    return stats.linregress(np.log(V), np.log(y)).slope


def _bootstrap_slope(V, rows_to_y, R, *, alpha, seed, n_resamples):
    """Percentile bootstrap over realizations of the log-log slope; ``rows_to_y(idx) -> y``."""

    def stat(idx):
        y = rows_to_y(np.asarray(idx, dtype=np.int64))
        return log_slope(V, np.maximum(y, 1e-300))

    res = stats.bootstrap(
        (np.arange(R),),
        stat,
        vectorized=False,
        n_resamples=n_resamples,
        confidence_level=1 - 2 * alpha,  # two one-sided bounds at level 1 − α each
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


GAP_SLOPE_CLAIM = "§8.5 scaling: gap(V) falls at least like 1/V (log-log slope ≤ −1, bootstrap CI)"
GAP_SLOPE_CLAIM_NONPARAMETRIC = "§8.5 scaling: V·gap(V) non-increasing past the knee (no slope fitted: the gap is below the resolution of a regression)"
GAP_SLOPE_CLAIM_DECAY = "§8.5 scaling: gap(V) falls below half its smallest-V value somewhere on the V grid (no slope fitted)"


def check_gap_slope(V, throughput, T_star, *, fit_mask=None, B_plus_C=None, t_star_tol: float = 0.0, alpha: float = ALPHA, seed: int = 0, n_resamples: int = 999) -> Verdict:
    r"""Claim 5 (gap): ``gap(V)`` falls at least like ``1/V`` (log-log slope ``≤ −1``; a gap falling
    faster passes).

    Range (``gelato verify`` passes ``fit_mask = V ≥ V₀``, the regime where the queue is above its
    one-round floor; below it the gap collapses as a staircase, one step per energy level the
    queue floor allows, which is reported but not fitted): past the saturation knee — the ``V`` after the first one where the gap is at most half
    its value at the smallest ``V`` (for ``V → 0`` the gap saturates at ``T*`` minus the throughput
    of the most frugal behaviour, a plateau the ``1/V`` law does not describe) — and inside
    ``fit_mask`` (``V`` whose horizon is long enough).

    * If at least 3 points in that range have a gap significantly above the uncertainty of ``T*``
      (one-sided lower bound at ``1 − α/n_V`` above ``t_star_tol``), fit the log-log slope
      (``linregress``) with a percentile bootstrap over realizations; fail when the lower bound of
      the slope (level ``1 − α``) is above ``−1``.
    * Otherwise (the gap drops below the resolution of ``T*`` and Monte Carlo), test the
      equivalent non-parametric statement ``V·gap(V)`` non-increasing: fail when for some
      ``V_i < V_j`` in the range the lower confidence bound of ``V_j gap_j`` exceeds the upper bound
      of ``V_i gap_i`` (bounds at ``1 − α/(2 n_V)``, ``T*`` uncertainty added to both sides).
    * Fail outright when the gap never falls below half its small-``V`` value although it is
      significantly positive there (no decay over the whole range).
    """
    claim = GAP_SLOPE_CLAIM
    V = np.asarray(V, np.float64)
    x = np.asarray(throughput, np.float64)
    nV, R = x.shape
    m, lo_thr, hi_thr = _mean_lower(x, 1 - alpha / (2 * nV))
    gap = T_star - m
    gap_lo = T_star - hi_thr
    gap_hi = T_star - lo_thr
    rng_mask = np.ones(nV, bool) if fit_mask is None else np.asarray(fit_mask, bool).copy()
    below = np.flatnonzero(gap <= 0.5 * gap[0])
    details = {
        "V": V,
        "gap": gap,
        "gap_ci_one_sided": [gap_lo, gap_hi],
        "t_star_tolerance": float(t_star_tol),
        "realizations": int(R),
    }
    if B_plus_C is not None:
        details["tightness_ratio_V_gap_over_B_plus_C"] = V * gap / B_plus_C
    if not gap_lo[0] > t_star_tol:
        details["reason"] = "no measurable gap even at the smallest V"
        return Verdict(claim, None, -1.0, None, None, details, status="inconclusive", direction="slope ≤ bound (not tested: no measurable gap)", category=RATE)
    if below.size == 0:
        details["reason"] = "the gap never falls below half its value at the smallest V"
        details["method"] = "no decay over the V range"
        return Verdict(GAP_SLOPE_CLAIM_DECAY, float(gap[-1] / gap[0]), 0.5, None, False, details, direction="statistic ≤ bound: gap(V_max)/gap(V_min) ≤ 0.5", category=RATE)
    knee = int(below[0])
    in_range = rng_mask & (np.arange(nV) >= knee)
    fit = in_range & (gap_lo > t_star_tol)
    decay = (np.arange(nV) >= knee) & (gap_lo > t_star_tol)
    if decay.sum() >= 2:  # reported, not tested: local slope wherever the gap is resolvable
        details["slope_all_resolvable_points_past_knee"] = float(log_slope(V[decay], gap[decay]))
        details["V_resolvable_past_knee"] = V[decay]
    details["knee_index"] = knee
    details["fit_points"] = np.flatnonzero(fit)
    if fit.sum() >= 3:
        Vf = V[fit]
        slope = log_slope(Vf, gap[fit])
        lo, hi = _bootstrap_slope(Vf, lambda idx: T_star - x[fit][:, idx].mean(axis=1), R, alpha=alpha, seed=seed, n_resamples=n_resamples)
        details["method"] = "log-log regression"
        details["test"] = (
            f"fail iff the percentile-bootstrap lower bound (level 1 - {alpha:g}, {n_resamples} resamples of realizations) "
            f"of the slope > -1; false-failure probability <= {alpha:g} (asymptotically)"
        )
        return Verdict(claim, float(slope), -1.0, (lo, hi), bool(lo <= -1.0), details, direction="slope ≤ bound: fails iff the CI lower bound of the log-log slope exceeds −1", category=RATE)
    idx = np.flatnonzero(in_range)
    if idx.size < 2:
        details["reason"] = f"only {idx.size} V values past the knee"
        return Verdict(GAP_SLOPE_CLAIM_NONPARAMETRIC, None, 0.0, None, None, details, status="inconclusive", direction="statistic ≤ bound (not tested: fewer than 2 V past the knee)", category=RATE)
    y_lo = V * (gap_lo - t_star_tol)
    y_hi = V * (gap_hi + t_star_tol)
    worst, pair = -np.inf, None
    for a_ in range(idx.size):
        for b_ in range(a_ + 1, idx.size):
            i, j = idx[a_], idx[b_]
            d = y_lo[j] - y_hi[i]
            if d > worst:
                worst, pair = d, (int(i), int(j))
    details["method"] = "V·gap(V) non-increasing past the knee (gap below resolution for a regression)"
    details["worst_pair"] = pair
    details["test"] = (
        f"fail iff for some V_i < V_j past the knee the lower bound of V_j·gap_j exceeds the upper bound of V_i·gap_i "
        f"(one-sided Student-t bounds at 1 - {alpha:g}/(2 n_V), T* tolerance on both sides); false-failure probability <= {alpha:g}"
    )
    if fit.sum() >= 2:
        details["slope_two_significant_points"] = float(log_slope(V[fit], gap[fit]))
    return Verdict(GAP_SLOPE_CLAIM_NONPARAMETRIC, float(worst), 0.0, None, bool(worst <= 0.0), details, direction="statistic ≤ bound: max over V_i < V_j of [lower bound of V_j·gap_j − upper bound of V_i·gap_i] ≤ 0", category=RATE)


def check_queue_slope(V, queue_mean, *, fit_mask=None, alpha: float = ALPHA, seed: int = 0, n_resamples: int = 999) -> Verdict:
    r"""Claim 5 (queue): the log-log slope of the mean queue against ``V`` is at most ``+1``
    (``E[Z] = O(V)``). Fitted on ``fit_mask`` (``V`` above the queue floor with a long enough
    horizon). Fails when the bootstrap lower bound of the slope (level ``1 − α``) exceeds ``1``;
    inconclusive with < 3 points."""
    claim = "§8.5 scaling: mean queue grows at most like V (log-log slope ≤ +1)"
    V = np.asarray(V, np.float64)
    q = np.asarray(queue_mean, np.float64)
    nV, R = q.shape
    mask = np.ones(nV, bool) if fit_mask is None else np.asarray(fit_mask, bool).copy()
    m = q.mean(axis=1)
    mask &= m > 0
    details = {"V": V, "queue_mean": m, "fit_points": np.flatnonzero(mask), "realizations": int(R)}
    if mask.sum() < 3:
        details["reason"] = f"only {int(mask.sum())} V values in the fit range (need 3)"
        return Verdict(claim, None, 1.0, None, None, details, status="inconclusive", direction="slope ≤ bound: fails iff the CI lower bound of the log-log slope exceeds +1", category=RATE)
    Vf = V[mask]
    slope = log_slope(Vf, m[mask])
    lo, hi = _bootstrap_slope(Vf, lambda idx: q[mask][:, idx].mean(axis=1), R, alpha=alpha, seed=seed, n_resamples=n_resamples)
    details["ci_contains_1"] = bool(lo <= 1.0 <= hi)
    details["test"] = (
        f"fail iff the percentile-bootstrap lower bound (level 1 - {alpha:g}) of the slope > 1; "
        f"false-failure probability <= {alpha:g} (asymptotically)"
    )
    return Verdict(claim, float(slope), 1.0, (lo, hi), bool(lo <= 1.0), details, direction="slope ≤ bound: fails iff the CI lower bound of the log-log slope exceeds +1", category=RATE)


SLOPE_MARGIN = 0.5  # §8.5 G_L test: the slope must be below −1 + 0.5 = −0.5 (1/V, not 1/√V or slower)


def _bootstrap_slope_rows(V, x, *, alpha, seed, n_resamples):
    r"""Log-log OLS slope of the row means of ``x`` ``(n, R)`` against ``V`` ``(n,)``, with a
    percentile bootstrap over realizations (columns resampled jointly across rows: common random
    numbers), ``scipy.stats.bootstrap`` vectorized. Returns ``(slope, low, high, standard_error)``,
    ``low``/``high`` one-sided bounds at level ``1 − α`` each."""
    x = np.asarray(x, np.float64)
    lv = np.log(np.asarray(V, np.float64))
    lvc = lv - lv.mean()
    den = float(np.sum(lvc**2))

    def stat(idx, axis=-1):
        means = x[:, np.asarray(idx, np.int64)].mean(axis=-1)  # (n, ...)
        ly = np.log(np.maximum(means, 1e-300))
        return np.tensordot(lvc, ly - ly.mean(axis=0), axes=(0, 0)) / den

    slope = float(stat(np.arange(x.shape[1])))
    res = stats.bootstrap(
        (np.arange(x.shape[1]),), stat, vectorized=True, n_resamples=n_resamples, batch=1000,
        confidence_level=1 - 2 * alpha, method="percentile", random_state=np.random.default_rng(seed),
    )
    return slope, float(res.confidence_interval.low), float(res.confidence_interval.high), float(res.standard_error)


def check_lagrangian_slope(V, regret, *, queue_mean=None, alpha: float = ALPHA, seed: int = 0, n_resamples: int = 9999, margin: float = SLOPE_MARGIN, fit_top: int = 3, min_decades: float = 1.0) -> Verdict:
    r"""Claim 5 with power: the stationary Lagrangian gap ``G_L(V)`` falls like ``1/V``.

    ``regret``: ``(n_V, R)`` per-realization time averages of the Lagrangian regret ``ℓ_t``
    (``check_regret_consistency``: its mean is ``E[G_L]``), measured in the stationary regime;
    ``queue_mean`` (optional, same shape): time-average queues, whose slope (expected ``+1``:
    ``Z̄ ≈ Vλ*``) is reported. Heuristic behind the law: the queue settles near ``Vλ*`` and the
    controller's price ``Z/V`` deviates from ``λ*`` by ``O(1/√V)`` (diffusive fluctuation ``√V`` of
    ``Z``), the loss being quadratic in the deviation; where the per-round problem is degenerate at
    ``λ*`` (polyhedral, ties) the deviation is ``O(1/V)`` and ``G_L`` falls faster — the theorem's
    ``O(1/V)`` is an upper bound.

    Fit set: the law is asymptotic (large ``V``), so the slope is fitted on the ``fit_top`` largest
    ``V`` where ``G_L`` is resolvable (one-sided lower confidence bound at ``1 − α/n_V`` above 0);
    they must span ``min_decades`` decades, else inconclusive (never a pass). The slope over every
    resolvable ``V`` (pre-asymptotic points included) is reported.
    ``linregress``-equivalent OLS slope of ``log G_L`` on ``log V``;
    percentile bootstrap over realizations (``n_resamples``). **Pass iff the upper confidence bound
    (level ``1 − α``) of the slope is below ``−1 + margin = −0.5``**: the data reject every law
    ``V^{-s}`` with ``s ≤ 0.5`` (``1/√V``, no decay, transient growth) with probability ``≥ 1 − α``,
    and a decay faster than ``1/V`` passes (the theorem is an upper bound). If the true slope is
    ``−1`` or steeper the test fails with probability about ``Φ(z_{1−α} − margin/se)`` (``se``: the
    bootstrap standard error; reported as ``false_failure_probability``); the two-sided interval
    and whether it contains ``−1`` are reported, not tested.
    """
    claim = "§8.5 scaling: stationary Lagrangian gap G_L(V) falls like 1/V (log-log slope < −0.5: rejects 1/√V and slower)"
    V = np.asarray(V, np.float64)
    x = np.asarray(regret, np.float64)
    nV, R = x.shape
    m, lo, hi = _mean_lower(x, 1 - alpha / nV)
    resolvable = lo > 0
    fit = np.zeros(nV, bool)
    fit[np.flatnonzero(resolvable)[-fit_top:]] = True
    details = {
        "V": V,
        "G_L": m,
        "G_L_ci_one_sided": [lo, hi],
        "V_times_G_L": V * m,
        "realizations": int(R),
        "resolvable_points": np.flatnonzero(resolvable),
        "fit_points": np.flatnonzero(fit),
        "margin": float(margin),
    }
    if nV >= 2:
        details["local_slopes"] = np.diff(np.log(np.maximum(m, 1e-300))) / np.diff(np.log(V))
    span = float(np.log10(V[fit].max() / V[fit].min())) if fit.sum() >= 2 else 0.0
    details["fit_decades"] = span
    if queue_mean is not None:  # over the fitted V (all V when fewer than two are fitted)
        q = np.asarray(queue_mean, np.float64)
        qm = fit if fit.sum() >= 2 else np.ones(nV, bool)
        qs, qlo, qhi, qse = _bootstrap_slope_rows(V[qm], q[qm], alpha=alpha, seed=seed + 1, n_resamples=n_resamples)
        details.update({"queue_slope": qs, "queue_slope_ci": [qlo, qhi], "queue_slope_ci_contains_1": bool(qlo <= 1.0 <= qhi), "queue_mean": q.mean(axis=1)})
    if fit.sum() < fit_top or span < min_decades - 1e-9:
        details["reason"] = (
            f"G_L resolvable (CI above 0) at {int(resolvable.sum())} V values; the {int(fit.sum())} largest span {span:.2f} decades; "
            f"need {fit_top} over {min_decades:g}"
        )
        return Verdict(claim, None, -1.0 + margin, None, None, details, status="inconclusive", direction="CI high < bound: the upper confidence bound of the log-log slope is below −0.5", category=RATE)
    if resolvable.sum() > fit.sum():
        a_s, a_lo, a_hi, _ = _bootstrap_slope_rows(V[resolvable], x[resolvable], alpha=alpha, seed=seed + 2, n_resamples=n_resamples)
        details.update({"slope_all_resolvable": a_s, "slope_all_resolvable_ci": [a_lo, a_hi]})
    slope, s_lo, s_hi, se = _bootstrap_slope_rows(V[fit], x[fit], alpha=alpha, seed=seed, n_resamples=n_resamples)
    z = float(stats.norm.ppf(1 - alpha))
    p_ff = float(stats.norm.cdf(z - margin / se)) if se > 0 else 0.0
    details.update(
        {
            "slope": slope,
            "slope_ci": [s_lo, s_hi],
            "slope_standard_error": se,
            "slope_ci_contains_minus_1": bool(s_lo <= -1.0 <= s_hi),
            "false_failure_probability": p_ff,
            "test": (
                f"fail iff the percentile-bootstrap upper bound (level 1 - {alpha:g}, {n_resamples} resamples of realizations) of the "
                f"log-log slope of G_L over the {fit_top} largest resolvable V is >= {-1 + margin:g}; false pass if G_L decays like V^-0.5 or slower: <= {alpha:g}; "
                f"false failure if the true slope is <= -1: Phi(z_(1-{alpha:g}) - {margin:g}/se) = {p_ff:.2g} (se = {se:.3g})"
            ),
        }
    )
    return Verdict(claim, slope, -1.0 + margin, (s_lo, s_hi), bool(s_hi < -1.0 + margin), details, direction="CI high < bound: the upper confidence bound of the log-log slope is below −0.5", category=RATE)


# ----------------------------------------------------------------------------- claim 6
def check_closed_form(name: str, value, samples, *, alpha: float = ALPHA, abs_tol=0.0) -> Verdict:
    r"""Claim 6: a closed form equals the Monte Carlo mean of ``samples``, element-wise.

    ``value``: ``(k,)`` closed-form numbers; ``samples``: ``(k, n)`` i.i.d. draws. Two-sided
    z-test per element at level ``α/k`` (Bonferroni): fails when
    ``|mean − value| > z_{1−α/(2k)} · SE + abs_tol``; false-failure probability ``≤ α``
    (CLT; ``n`` is in the thousands). ``abs_tol`` covers a known deterministic error of the
    closed form (quantisation), stated in the verdict.
    """
    claim = f"§8.6 closed form vs Monte Carlo: {name}"
    v = np.atleast_1d(np.asarray(value, np.float64))
    s = np.asarray(samples, np.float64)
    if s.ndim == 1:
        s = s[None, :]
    k, n = s.shape
    if v.shape != (k,):
        raise ValueError(f"value must have shape ({k},) to match samples {s.shape}, got {v.shape}")
    m = s.mean(axis=1)
    se = s.std(axis=1, ddof=1) / math.sqrt(n)
    z = stats.norm.ppf(1 - alpha / (2 * k))
    # deterministic samples (SE = 0, e.g. N = 1 at γ = 0) are compared up to summation rounding
    rounding = _ROUND_TOL * _EPS * np.maximum(np.abs(v), np.abs(s).max(axis=1)) * math.sqrt(n)
    abs_tol = np.broadcast_to(np.asarray(abs_tol, np.float64), v.shape)
    half = z * se + abs_tol + rounding
    err = np.abs(m - v)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(half > 0, err / np.where(half > 0, half, 1.0), np.where(err > 0, np.inf, 0.0))
    bad = ratio > 1
    j = int(np.argmax(ratio))
    details = {
        "closed_form": v,
        "monte_carlo": m,
        "standard_error": se,
        "samples_per_value": int(n),
        "values_compared": int(k),
        "violations": int(np.sum(bad)),
        "worst_index": j,
        "statistic_meaning": "max over values of |MC mean − closed form| / allowed deviation (z·SE + tolerances)",
        "abs_tol_max": float(np.max(abs_tol)) if k else 0.0,
        "test": f"two-sided z-test per value at level {alpha:g}/{k} plus abs_tol; false-failure probability <= {alpha:g}",
    }
    return Verdict(claim, float(ratio[j]), 1.0, (float(m[j] - z * se[j]), float(m[j] + z * se[j])), bool(not np.any(bad)), details, direction="statistic = bound (ratio closed form / Monte Carlo mean): every compared value within its two-sided z interval")


def check_optimum_agreement(T_lp, T_dual, *, rel_tol: float = 1e-6) -> Verdict:
    """Claim 3's ``T*`` computed two independent ways (LP and 1-D Lagrangian dual) agree."""
    claim = "§8.3 T* two ways: LP (HiGHS) = Lagrangian dual"
    diff = abs(float(T_lp) - float(T_dual))
    tol = rel_tol * max(abs(float(T_lp)), 1.0)
    return Verdict(claim, diff, tol, None, bool(diff <= tol), {"T_star_LP": float(T_lp), "T_star_dual": float(T_dual), "rel_tol": rel_tol}, direction="statistic ≤ bound: |T*_LP − T*_dual| within the solver tolerance")


# ----------------------------------------------------------------------------- claim 7
def check_lossless(counts, target, *, alpha: float = ALPHA, what: str = "first emitted token") -> Verdict:
    r"""Claim 7: tokens emitted by speculative sampling follow the target law.

    ``counts``: ``(V,)`` observed token counts; ``target``: ``(V,)`` target probabilities.
    Cells with expected count < 5 are pooled. Chi-square goodness of fit; fails when the p-value
    is below ``α`` (false-failure probability ``α``).
    """
    claim = f"§8.7 losslessness: {what} follows the target distribution"
    c = np.asarray(counts, np.float64)
    p = np.asarray(target, np.float64)
    p = p / p.sum()
    n = c.sum()
    if np.any(c[p == 0] > 0):
        return Verdict(claim, float("inf"), alpha, None, False, {"reason": "a token with target probability 0 was emitted", "samples": int(n)}, direction="statistic ≥ bound: chi-square p-value ≥ α")
    exp = n * p
    big = exp >= 5
    f_obs = np.append(c[big], c[~big].sum())
    f_exp = np.append(exp[big], exp[~big].sum())
    keep = f_exp > 0
    res = stats.chisquare(f_obs[keep], f_exp[keep])
    details = {
        "samples": int(n),
        "cells": int(keep.sum()),
        "chi2": float(res.statistic),
        "total_variation": float(0.5 * np.abs(c / n - p).sum()),
        "test": f"chi-square goodness of fit, fail iff p < {alpha:g} (false-failure probability {alpha:g})",
    }
    return Verdict(claim, float(res.pvalue), alpha, None, bool(res.pvalue >= alpha), details, direction="statistic ≥ bound: chi-square p-value ≥ α")


# ----------------------------------------------------------------------------- sweep mechanics
def check_single_compile(cache_size: int, calls: int, n_V: int) -> Verdict:
    """The V sweep is one compiled program: ``n_V`` values of ``V`` × all chunks, one trace.
    ``cache_size`` is the growth of the jitted sweep's cache during the sweep (0 when an identical
    program was compiled earlier in the process)."""
    claim = "V sweep runs as one compiled program (vmap over V and realizations, no recompilation)"
    return Verdict(claim, float(cache_size), 1.0, None, bool(0 <= cache_size <= 1), {"jit_cache_size": int(cache_size), "compiled_calls": int(calls), "n_V": int(n_V)}, direction="statistic ≤ bound: at most one new compiled program for the whole V sweep")


def missing(claim: str, reason: str) -> Verdict:
    return not_run(claim, reason)
