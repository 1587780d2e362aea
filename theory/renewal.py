r"""The renewal (time-average) drift-plus-penalty theorem, docs/model.md §11, as sympy expressions with
numeric evaluators.

Setting: rounds are renewal frames of length ``D_t ≥ D_min > 0``; the goal is tokens per second
``ΣN/ΣD`` under the average-power budget ``ΣE/ΣD ≤ P̄``. With ``y_t = E_t − P̄ D_t`` the queue is
``Z_{t+1} = max(Z_t + y_t, 0)``, ``Z_0 ≥ 0``, Lyapunov function ``½Z²``.

Assumptions (R1–R4):

* R1: ``h_t`` i.i.d. over rounds, independent of the past; within-round randomness (entropies,
  acceptances) i.i.d. over rounds (``Scenario.check_iid_rounds``);
* R2: ``D_t ≥ D_min = t_v0 + δ`` (every round has the verification base time and the fixed
  latency; airtimes and passes only add);
* R3: ``N_t ≤ N_max = γ_max + 1``;
* R4: the controller uses the exact conditional means ``(N, D, E)(γ, h)`` (the renewal exact
  proxy, or the mean proxy with ``exit="none"``, which is exact in the renewal form), and plays the
  ratio rule ``argmax_γ [V N − Z(E − P̄D) − θ(Z) D]`` with ``θ(Z)`` the root of ``Φ``; the ratio rule
  then minimises ``E[Z y − V N | Z] / E[D | Z]`` over every rule that uses only ``h_t``.
  A rule that attains that minimum only within ``C/V`` per second adds ``C/V`` to the gap.

Results:

* drift: ``½Z_{t+1}² − ½Z_t² ≤ ½y_t² + Z_t y_t`` (``max(x, 0)² ≤ x²``);
* ratio step: for every stationary rule ``ω`` (and ``p*``, the optimum, with ``E[y*] ≤ 0`` and
  ``E[N*]/E[D*] = T*``): ``E[Z y − V N | Z] ≤ E[D | Z]·(Z E[y_ω] − V E[N_ω])/E[D_ω] ≤ −V T* E[D | Z]``;
* tokens per second: ``T* − E ΣN / E ΣD ≤ B/(V·D_min) + C/V + L(Z_0)/(V·E ΣD)`` with
  ``B = ½ sup E[(E − P̄D)²]`` (sup over rules, expectation over the round);
* power on every path: ``ΣE/ΣD ≤ P̄ + (Z_T − Z_0)/ΣD``;
* queue (Slater: ``γ = 0`` costs no energy, ``E[y_0] = −P̄ E[D_0]``):
  ``(1/T) Σ E[Z_t] ≤ (B + V (N_max − D_min/E[D_0]))/(P̄·D_min) + L(Z_0)/(T P̄ D_min)``;
* second order (as §8.8): the queue linearises to an AR(1) around ``Vλ*`` with per-round
  variance ``σ² = Var(E − P̄D)`` under the optimal policy and drift ``−κ(Z/V − λ*)``, so
  ``Var Z ≈ σ²V/(2κ)``; the Lagrangian gap per round is ``(κ/2)·Var(Z/V)``, per second
  ``G_L = T* − ΣN/ΣD + λ*(ΣE/ΣD − P̄) ≈ (κ/2)Var(Z)/(V² E[D])``, hence ``V·G_L → σ²/(4 E[D])``
  (an asymptotic approximation to check against measurement, not a theorem).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import sympy as sp

from . import bounds as tb
from . import closed_forms as cf

__all__ = [
    "Y", "Pbar", "D_t", "Dmin", "Nmax", "ED0", "L0", "SumD", "sigma2", "kappa_s",
    "y_expr", "one_step", "drift_identity", "drift_bound", "ratio_step", "gap_expr", "queue_expr",
    "overdraft_expr", "var_Z_expr", "GL_expr", "V_GL_expr",
    "D_min", "drift_constant", "mean_latency_idle", "gap_bound", "queue_bound", "overdraft_bound",
    "constants", "derivation_lines",
]

s = cf.SYM
Z, V, Bs, Cs, Tstar = tb.Z, tb.V, tb.Bs, tb.Cs, tb.Tstar
E_t = tb.E_t
Pbar = sp.Symbol("Pbar", positive=True)
D_t = sp.Symbol("D_t", positive=True)
Dmin = sp.Symbol("D_min", positive=True)
Nmax = sp.Symbol("N_max", positive=True)
ED0 = sp.Symbol("Dbar_0", positive=True)  # E[D_0], the mean round of the always-γ=0 rule
L0 = sp.Symbol("L_0", nonnegative=True)  # L(Z_0) = ½Z_0²
SumD = sp.Symbol("S_D", positive=True)  # E ΣD over the horizon
Tn = tb.Tn
sigma2 = sp.Symbol("sigma^2", positive=True)
kappa_s = sp.Symbol("kappa", positive=True)
ED = sp.Symbol("Dbar", positive=True)  # E[D] under the optimal policy

# ----------------------------------------------------------------------------- drift
#: y = E − P̄D: the round's energy minus what the power budget allows over its duration.
y_expr = E_t - Pbar * D_t
one_step = sp.Max(Z + y_expr, 0)
drift_identity = sp.expand(((Z + y_expr) ** 2 - Z**2) / 2)
drift_bound = y_expr**2 / 2 + Z * y_expr
assert sp.simplify(drift_identity - drift_bound) == 0

# ratio step: with num_ω = Z E[y_ω] − V E[N_ω] and E[y*] ≤ 0, E[N*] = T* E[D*]:
_Ey, _EDs = sp.Symbol("ybar^*", real=True), sp.Symbol("Dbar^*", positive=True)  # E[y*], E[D*]
#: (Z·E[y*] − V·E[N*]) / E[D*] with E[N*] = T*·E[D*]; ≤ −V T* because Z ≥ 0 and E[y*] ≤ 0.
ratio_step = sp.simplify((Z * _Ey - V * Tstar * _EDs) / _EDs)
assert sp.simplify(ratio_step - (Z * _Ey / _EDs - V * Tstar)) == 0

# ----------------------------------------------------------------------------- the theorem
#: Summing E[Δ − V N | Z] ≤ B − V T* E[D | Z] (+ C E[D|Z]) over T rounds and dividing by V·EΣD,
#: with EΣD ≥ T·D_min:
gap_expr = Bs / (V * Dmin) + Cs / V + L0 / (V * SumD)
#: E[Δ | Z] ≤ B + V(N_max − D_min/E[D_0]) − P̄ D_min Z, summed over T rounds:
queue_expr = (Bs + V * (Nmax - Dmin / ED0)) / (Pbar * Dmin) + L0 / (Tn * Pbar * Dmin)
_k = sp.Symbol("t", integer=True, nonnegative=True)
_E, _D, _Zi = sp.IndexedBase("E"), sp.IndexedBase("D"), sp.IndexedBase("Z")
#: Every path: Z_{t+1} ≥ Z_t + E_t − P̄D_t, summed over t < T, divided by ΣD.
overdraft_expr = (
    sp.Sum(_E[_k], (_k, 0, Tn - 1)) / sp.Sum(_D[_k], (_k, 0, Tn - 1)),
    Pbar + (_Zi[Tn] - _Zi[0]) / sp.Sum(_D[_k], (_k, 0, Tn - 1)),
)

# ----------------------------------------------------------------------------- second order
#: AR(1) around Vλ*: Z' − Vλ* ≈ (1 − κ/V)(Z − Vλ*) + ξ, Var ξ = σ²: Var Z = σ²/(1 − (1 − κ/V)²) ≈ σ²V/(2κ).
_rho = 1 - kappa_s / V
var_Z_exact = sigma2 / (1 - _rho**2)
var_Z_expr = sp.limit(var_Z_exact / V, V, sp.oo) * V  # leading order in V
#: Lagrangian gap per second: (κ/2)·Var(Z/V) per round, over E[D] seconds per round.
GL_expr = kappa_s / 2 * var_Z_expr / V**2 / ED
V_GL_expr = sp.simplify(V * GL_expr)
assert sp.simplify(V_GL_expr - sigma2 / (4 * ED)) == 0

_f_gap = sp.lambdify((Bs, Cs, V, Dmin, L0, SumD), gap_expr, "numpy")
_f_queue = sp.lambdify((Bs, V, Nmax, Dmin, ED0, Pbar, L0, Tn), queue_expr, "numpy")


# ----------------------------------------------------------------------------- evaluators
def D_min(scenario) -> float:
    """``D_min = t_v0 + δ`` (s): no round is shorter (R2)."""
    return float(scenario.t_v0 + scenario.delta)


_GRID = 8192


def _h_grid(scenario):
    """Log-spaced nodes on ``[h_min, 60]`` with trapezoid weights of ``e^{-h} dh`` (Exp(1)), plus the
    clamp atom ``P(h < h_min)`` at ``h_min``; the tail beyond 60 (mass e^{-60}) is put at 60."""
    h_min = float(scenario.h_min)
    x = np.linspace(math.log(h_min), math.log(60.0), _GRID)
    h = np.exp(x)
    dens = h * np.exp(-h)  # e^{-h} dh = h e^{-h} dx
    w = np.zeros_like(h)
    dx = np.diff(x)
    w[:-1] += 0.5 * dx * dens[:-1]
    w[1:] += 0.5 * dx * dens[1:]
    w[0] += -math.expm1(-h_min)
    w[-1] += math.exp(-60.0)
    return h, w


def _vertex_y2(scenario, policy, h):
    """``sup`` over the round's outcomes of ``(E − P̄D)²`` for every budget at gains ``h``:
    ``y`` is affine in ``(P, L, B, B_dl)``, so the sup of ``y²`` over the box ``P, L ∈ [0, γ]``
    (``P ≤ γ``), ``B ∈ [0, γ b_max]``, ``B_dl ∈ [b_dl, b_dl + V b_prob (scalar)]`` is at a vertex.
    For ``exit="none"`` and an entropy-independent payload the round is deterministic given
    ``(γ, h)`` (``P = L = γ``, ``B = γ b``) and the value is exact."""
    from gelato_jax import channel

    pb = float(scenario.P_bar)
    G = scenario.gamma_max
    g = np.arange(G + 1, dtype=float)[None, :]
    r = np.asarray(channel.uplink_rate(scenario, np.maximum(h, float(scenario.h_min))), float)[:, None]
    rdl = np.asarray(channel.downlink_rate(scenario, np.maximum(h, float(scenario.h_min))), float)[:, None]
    payload = tb._payload(policy)
    exit_ = getattr(policy, "exit", "none")
    tau, ed, tv0, tv1, dl = (float(x) for x in (scenario.tau_d, scenario.e_d, scenario.t_v0, scenario.t_v1, scenario.delta))
    ptx = float(scenario.P_tx)
    bdl = float(scenario.b_dl)
    dl_hi = bdl + (float(scenario.V_vocab * scenario.b_prob) if payload == "scalar" else 0.0)

    def y(P, L, B, Bdl):
        air = np.where(B > 0, B / r, 0.0)
        D = P * tau + air + tv0 + tv1 * L + dl + Bdl / rdl
        E = P * ed + ptx * air
        return E - pb * D

    outage = r < float(scenario.r_min)  # only γ = 0 there (docs/model.md §2)
    if payload != "topp" and exit_ == "none" and payload != "scalar":
        best = y(g, g, g * tb._max_bits(scenario, payload), bdl) ** 2
    else:
        bmax = tb._max_bits(scenario, payload)
        best = np.zeros((len(h), G + 1))
        for P in (0.0, 1.0):
            for L in (0.0, 1.0):
                for B in (0.0, 1.0):
                    for Bdl in (bdl, dl_hi):
                        best = np.maximum(best, y(P * g, L * g, B * g * bmax, Bdl) ** 2)
    return np.where(outage & (g > 0), 0.0, best)


def drift_constant(scenario, policy=None) -> float:
    """``B = ½ sup E[(E − P̄D)²]`` (J²): ``½ E_h[max_γ sup_outcomes y²]`` (a rule may pick any
    budget at every ``h``; the sup over outcomes is ``_vertex_y2``), integrated against the
    Exp(1) law clamped at ``h_min`` (trace: its empirical law) on a log grid of ``h``. The low-``h``
    rounds matter: the downlink airtime ``b_dl/r_dl(h)`` of a round in outage grows like ``1/h``."""
    if scenario.channel == "trace":
        from gelato_jax.renewal import fading_nodes

        h, w = fading_nodes(scenario, 200_000)
    else:
        h, w = _h_grid(scenario)
    return 0.5 * float(w @ _vertex_y2(scenario, policy, h).max(axis=1))


def mean_latency_idle(scenario) -> float:
    """``E[D_0] = E_h[D(γ = 0, h)] = t_v0 + δ + b_dl E_h[1/r_dl(h)]`` (s), on the same log grid."""
    from gelato_jax import channel

    if scenario.channel == "trace":
        from gelato_jax.renewal import fading_nodes

        h, w = fading_nodes(scenario, 200_000)
    else:
        h, w = _h_grid(scenario)
    rdl = np.asarray(channel.downlink_rate(scenario, np.maximum(h, float(scenario.h_min))), float)
    return D_min(scenario) + float(scenario.b_dl) * float(w @ (1.0 / rdl))


def gap_bound(B, C, V, D_min, L0=0.0, sum_D=None) -> float:
    """``B/(V D_min) + C/V + L(Z_0)/(V E ΣD)`` (tok/s); ``sum_D`` only needed when ``L0 > 0``."""
    B, C, V, D_min, L0 = (tb._check_nonneg(n, x, positive=(n in ("V", "D_min")))
                          for n, x in (("B", B), ("C", C), ("V", V), ("D_min", D_min), ("L0", L0)))
    if L0 > 0 and sum_D is None:
        raise ValueError("sum_D (E ΣD) is needed when L0 > 0")
    return float(_f_gap(B, C, V, D_min, L0, 1.0 if sum_D is None else float(sum_D)))


def queue_bound(B, V, N_max, D_min, ED0, P_bar, L0=0.0, T=None) -> float:
    """``(B + V(N_max − D_min/E[D_0]))/(P̄ D_min) + L(Z_0)/(T P̄ D_min)``: bound on
    ``(1/T) Σ E[Z_t]``."""
    if L0 > 0 and T is None:
        raise ValueError("T (the horizon) is needed when L0 > 0")
    return float(_f_queue(float(B), float(V), float(N_max), float(D_min), float(ED0), float(P_bar), float(L0),
                          1.0 if T is None else float(T)))


def overdraft_bound(latencies, P_bar, Z_T, Z_0=0.0) -> float:
    """``P̄ + (Z_T − Z_0)/ΣD`` for one path's latencies ``(T,)``: no path's power ``ΣE/ΣD`` exceeds it."""
    d = np.asarray(latencies, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"latencies must be a non-empty 1-D array, got shape {d.shape}")
    return float(P_bar) + (float(Z_T) - float(Z_0)) / float(d.sum())


def _proxy_C(policy) -> float | None:
    """``C`` of R4: 0 when the controller uses exact conditional means (``proxy="exact"``, or the
    mean proxy with ``exit="none"``), ``None`` otherwise (the mean proxy with an exit mis-states
    ``D`` and ``E``; its error is multiplied by ``Z``, so no ``V``-free constant bounds it)."""
    proxy = getattr(policy, "proxy", "mean")
    if proxy == "exact" or (proxy == "mean" and getattr(policy, "exit", "none") == "none"):
        return 0.0
    return None


def constants(scenario, policy, *, quantiles: int = 4096) -> dict[str, Any]:
    """``T*`` two ways, ``λ*``, ``θ*`` and the constants and bounds of the renewal theorem at
    ``policy.V`` (``gelato theory --set objective=time_average``)."""
    from gelato_jax.renewal import time_average_optimum

    opt = time_average_optimum(scenario, policy, quantiles=quantiles)
    v = float(getattr(policy, "V", 1.0))
    C = _proxy_C(policy)
    ed0 = mean_latency_idle(scenario)
    nmax = scenario.gamma_max + 1
    out = opt.summary()
    out.update({
        "objective": "time_average", "V": v, "C": C, "N_max": nmax, "E_D0": ed0,
        "gap_bound": None if C is None else gap_bound(opt.B, C, v, opt.D_min),
        "tokens_per_s_bound": None if C is None else opt.T_star - gap_bound(opt.B, C, v, opt.D_min),
        "queue_bound": queue_bound(opt.B, v, nmax, opt.D_min, ed0, opt.P_bar),
    })
    return out


def derivation_lines() -> list[str]:
    """The renewal section of ``DERIVATION.md`` (``theory.derivation`` appends it)."""
    L = sp.latex

    def d(x):
        return "$$" + (x if isinstance(x, str) else L(x)) + "$$"

    return [
        "## 8. Tokens per second under a power budget (renewal form, docs/model.md §11)",
        "",
        "Rounds are renewal frames of length $D_t \\ge D_{\\min} = t_{v0} + \\delta$. The goal is $\\max \\Sigma N/\\Sigma D$ "
        "subject to $\\Sigma E/\\Sigma D \\le \\bar P$. With $y_t = E_t - \\bar P D_t$ the queue is "
        f"$Z_{{t+1}} = {L(one_step)}$ and, as in §4,",
        "",
        d(f"\\tfrac12 Z_{{t+1}}^2 - \\tfrac12 Z_t^2 \\le {L(drift_bound)}"),
        "",
        "**Ratio step.** The ratio rule plays $\\arg\\max_\\gamma [V N - Z(E - \\bar P D) - \\theta(Z) D]$ with $\\theta(Z)$ the "
        "root of $\\Phi(\\theta) = E_h\\max_\\gamma[V N - Z(E - \\bar P D) - \\theta D]$; by Dinkelbach's lemma it minimises "
        "$E[Z y - V N \\mid Z]/E[D \\mid Z]$ over all rules that use only $h_t$. Comparing with the optimum $p^*$ "
        "($E[y^*] \\le 0$, $E[N^*] = T^* E[D^*]$):",
        "",
        d(f"\\frac{{E[Z y - V N \\mid Z]}}{{E[D \\mid Z]}} \\le {L(ratio_step)} \\le -V T^*"),
        "",
        "($\\bar y^* = E[y^*]$, $\\bar D^* = E[D^*]$), so $E[\\Delta - V N \\mid Z] \\le B - V T^* E[D \\mid Z]$ with $B = \\tfrac12 \\sup E[(E - \\bar P D)^2]$. Summing over "
        "$T$ rounds and dividing by $V\\,E\\Sigma D \\ge V T D_{\\min}$ (plus $C/V$ for a rule within $C/V$ of the "
        "ratio minimum; $L_0 = \\tfrac12 Z_0^2$, $S_D = E\\Sigma D$):",
        "",
        d(f"T^* - \\frac{{E\\Sigma N}}{{E\\Sigma D}} \\le {L(gap_expr)}"),
        "",
        "**Power on every path** (telescoping $Z_{t+1} \\ge Z_t + y_t$):",
        "",
        d(f"{L(overdraft_expr[0])} \\le {L(overdraft_expr[1])}"),
        "",
        "**Queue.** Comparing instead with the always-$\\gamma=0$ rule ($E[y_0] = -\\bar P E[D_0]$, $N_0 = 1$) and "
        "bounding $E[N \\mid Z] \\le N_{\\max} = \\gamma_{\\max} + 1$, $E[D \\mid Z] \\ge D_{\\min}$: "
        "$E[\\Delta \\mid Z] \\le B + V(N_{\\max} - D_{\\min}/\\bar D_0) - \\bar P D_{\\min} Z$ ($\\bar D_0 = E[D_0]$), hence",
        "",
        d(f"\\frac1T\\sum_{{t<T}} E[Z_t] \\le {L(queue_expr)}"),
        "",
        "**Second order** (as §8.8 of docs/model.md, an asymptotic approximation): the queue is an AR(1) around "
        "$V\\lambda^*$ with coefficient $1 - \\kappa/V$ and innovation variance $\\sigma^2 = \\mathrm{Var}(E - \\bar P D)$, so "
        f"$\\mathrm{{Var}}\\,Z \\approx {L(var_Z_expr)}$; the Lagrangian gap per second "
        "$G_L = T^* - \\Sigma N/\\Sigma D + \\lambda^*(\\Sigma E/\\Sigma D - \\bar P)$ is $(\\kappa/2)\\mathrm{Var}(Z/V)$ per round over "
        "$\\bar D = E[D]$ seconds, "
        f"$G_L \\approx {L(GL_expr)}$, and the curvature cancels:",
        "",
        d(f"V G_L \\to {L(V_GL_expr)}"),
        "",
    ]
