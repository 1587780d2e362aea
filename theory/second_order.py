r"""Second-order (linearised-queue) analysis of the stationary Lagrangian gap (docs/model.md §8.8).

**An asymptotic approximation, not a theorem.** Near ``Vλ*`` the drift of the queue is
``E[Z_{t+1} − Z_t | Z_t] = e(Z_t/V) − Ē ≈ −(κ/V)(Z_t − Vλ*)`` with ``κ = −e'(λ*) = G''(λ*)``
(smooth dual ``G(λ) = E_h max_γ (T − λE)``), so ``X_t = Z_t − Vλ*`` is approximately the AR(1)

    X_{t+1} = (1 − κ/V)·X_t + ξ_t,   Var ξ_t = σ² = Var(E_t − a_t) at price λ*,

whose stationary variance is derived below; with the Bregman divergence
``D(μ) = G(λ*) − G(μ) − G'(μ)(λ* − μ) ≈ ½κ(μ − λ*)²`` at the controller's price ``μ = Z/V``,
``G_L = E D(Z/V) ≈ (κ/2)·Var Z/V²`` and ``V·G_L → σ²/4``.

The sympy objects here are rendered into ``theory/SECOND_ORDER.md`` (``python -m
theory.second_order``; ``--check`` for staleness). The toy problems (numpy, vectorized over
realizations) are where the approximation can be checked against a closed form:

* ``toy_smooth``: ``h ~ U(0, 1)``, actions ``γ = 0`` (``T = 0``, ``E = 0``) and ``γ = 1``
  (``T = h``, ``E = 1``), budget ``Ē = p``. ``G(λ) = (1 − λ)²/2`` on ``[0, 1]`` (quadratic:
  ``D(μ) = ½(μ − λ*)²`` exactly), ``e(λ) = 1 − λ`` (``κ = 1``, the drift is exactly linear),
  ``λ* = 1 − p``. With ``p = ½`` the noise variance is ``μ(1 − μ) + Var a = ¼ − (μ − ½)² + Var a``
  and the stationary variance is **exactly** ``Var Z = V(¼ + Var a)/2`` away from the boundaries, so
  ``V·G_L = (¼ + Var a)/4 = σ²/4`` exactly (``toy_smooth_exact``).
* ``toy_polyhedral``: ``h ∈ {¼, ¾}`` with probability ½ each, ``Ē = ¼``: ``λ* = ¾`` is a kink of the
  piecewise-linear ``G``; ``D = 0`` for ``μ ∈ [¼, ∞)``; ``Var Z`` is ``O(1)`` and ``G_L`` decays
  exponentially in ``V``.
* ``toy_slack``: the smooth toy with ``Ē = 1.25 > e(0) = 1`` and uniform arrivals on ``[0, 2Ē]``:
  ``λ* = 0``, ``Z = O(1)``, ``G_L = E[(Z/V)²]/2 = O(1/V²)``.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import sympy as sp

__all__ = [
    "V", "kappa", "sigma2", "rho", "stationary_variance", "stationary_variance_leading", "stationary_variance_series",
    "gap_times_V", "gap_times_V_limit", "window_fraction_expr", "floor_expr", "renewal_constant",
    "toy_G", "toy_kappa", "toy_smooth_exact",
    "toy_smooth", "toy_polyhedral", "toy_slack", "render", "SECOND_ORDER_PATH", "main",
]

SECOND_ORDER_PATH = os.path.join(os.path.dirname(__file__), "SECOND_ORDER.md")

# ----------------------------------------------------------------------------- the AR(1) queue
V, kappa, sigma2 = sp.symbols("V kappa sigma^2", positive=True)
s = sp.Symbol("s", positive=True)
rho = 1 - kappa / V
#: stationary variance of X_{t+1} = ρX_t + ξ_t: the fixed point s = ρ²s + σ²
stationary_variance = sp.simplify(sp.solve(sp.Eq(s, rho**2 * s + sigma2), s)[0])
stationary_variance_leading = sigma2 * V / (2 * kappa)
#: the expansion in 1/V: σ²V/(2κ) + σ²/4 + κσ²/(8V) + O(1/V²)
stationary_variance_series = sp.series(stationary_variance, V, sp.oo, 2).removeO()
#: V·G_L with G_L ≈ (κ/2)·Var Z/V² (exact AR(1) variance)
gap_times_V = sp.simplify(V * kappa / 2 * stationary_variance / V**2)
gap_times_V_limit = sp.limit(gap_times_V, V, sp.oo)

# ----------------------------------------------------------------------------- window, floor, renewal
t, b, W, tau = sp.symbols("t b W tau", positive=True)
#: mean over the window [b, b + W) of Var Z_t / Var Z after a warm start with zero spread:
#: Var Z_t = Var Z·(1 − e^{−2t/τ}), τ = V/κ
window_fraction_expr = sp.simplify(sp.integrate(1 - sp.exp(-2 * t / tau), (t, b, b + W)) / W)
dlam, var_mu = sp.symbols("Delta_lambda Var_mu", positive=True)
#: mean regret scored at λ* + Δλ of a price μ with mean λ* and variance Var μ: ½κ E[(λ* + Δλ − μ)²]
floor_expr = sp.expand(kappa / 2 * (dlam**2 + var_mu))
var_ED, mean_D = sp.symbols("Var_{E-\\bar{P}D} E_D", positive=True)
renewal_constant = var_ED / (4 * mean_D)

# ----------------------------------------------------------------------------- the smooth toy in closed form
lam, mu, h, p, var_a = sp.symbols("lambda mu h p Var_a", nonnegative=True)
toy_G = sp.integrate(h - lam, (h, lam, 1))  # E_h max(h − λ, 0), h ~ U(0, 1), λ ∈ [0, 1]
toy_e = sp.simplify(-sp.diff(toy_G, lam))  # 1 − λ
toy_kappa = sp.simplify(sp.diff(toy_G, lam, 2))  # 1
toy_bregman = sp.simplify(toy_G.subs(lam, 1 - p) - toy_G.subs(lam, mu) + toy_e.subs(lam, mu) * ((1 - p) - mu))
#: p = ½: noise variance ¼ − X²/V² + Var a; fixed point of s = (1 − 1/V)²s + ¼ − s/V² + Var a
_s_exact = sp.solve(sp.Eq(s, (1 - 1 / V) ** 2 * s + sp.Rational(1, 4) - s / V**2 + var_a), s)[0]
toy_smooth_exact = {
    "var_Z": sp.simplify(_s_exact),
    "V_times_G_L": sp.simplify(V * _s_exact / (2 * V**2)),
    "bregman": sp.factor(toy_bregman),
}


# ----------------------------------------------------------------------------- toy simulators
def _run(V, draw_energy, regret_of_mu, *, E_bar, arrival, z0, realizations, rounds, burn, seed):
    """Queue ``Z' = max(Z + E − a, 0)``; per-realization window means of the expected regret
    ``regret_of_mu(Z/V)`` (Rao–Blackwellised over ``h``), of ``Z`` and of ``Z²``."""
    rng = np.random.default_rng(seed)
    R = int(realizations)
    Z = np.full(R, float(z0))
    sr = np.zeros(R)
    sz = np.zeros(R)
    sz2 = np.zeros(R)
    for k in range(int(rounds)):
        mu = Z / V
        if k >= burn:
            sr += regret_of_mu(mu)
            sz += Z
            sz2 += Z * Z
        E = draw_energy(mu, rng)
        if arrival == "constant":
            a = E_bar
        elif arrival == "uniform":
            a = rng.uniform(0.0, 2.0 * E_bar, R)
        else:
            raise ValueError(f"arrival must be 'constant' or 'uniform', got {arrival!r}")
        Z = np.maximum(Z + E - a, 0.0)
    n = rounds - burn
    return {"regret": sr / n, "queue": sz / n, "queue_sq": sz2 / n}


def _smooth_G(x):
    x = np.clip(x, 0.0, 1.0)
    return 0.5 * (1.0 - x) ** 2


def toy_smooth(V: float, *, p: float = 0.5, lam_score: float | None = None, arrival: str = "constant", realizations: int = 200,
               rounds: int = 4000, burn: int = 400, seed: int = 0):
    r"""The smooth toy at ``V``; warm start ``Z_0 = Vλ*``. ``lam_score``: the price the regret is scored
    at (default ``λ* = 1 − p``; another value shows the floor ``½κΔλ²``). Per-realization window means
    ``{"regret", "queue", "queue_sq"}``; the regret is ``D(λ_score, μ)`` in closed form."""
    ls = 1.0 - p if lam_score is None else float(lam_score)
    e = lambda m: np.clip(1.0 - m, 0.0, 1.0)
    draw = lambda m, rng: (rng.random(m.shape) > m).astype(np.float64)
    reg = lambda m: _smooth_G(ls) - _smooth_G(m) + e(m) * (ls - m)
    return _run(V, draw, reg, E_bar=p, arrival=arrival, z0=V * (1.0 - p), realizations=realizations, rounds=rounds, burn=burn, seed=seed)


def toy_polyhedral(V: float, *, realizations: int = 200, rounds: int = 4000, burn: int = 400, seed: int = 0):
    r"""The polyhedral toy (``h ∈ {¼, ¾}``, ``Ē = ¼``, ``λ* = ¾``) at ``V``, warm start ``Z_0 = ¾V``;
    the controller plays ``γ = 1`` iff ``h > Z/V`` (ties → ``γ = 0``)."""
    vals = np.array([0.25, 0.75])
    G = lambda x: 0.5 * np.maximum(0.25 - x, 0) + 0.5 * np.maximum(0.75 - x, 0)
    e = lambda m: 0.5 * (m < 0.25) + 0.5 * (m < 0.75)
    draw = lambda m, rng: (vals[rng.integers(0, 2, m.shape)] > m).astype(np.float64)
    reg = lambda m: G(0.75) - G(m) + e(m) * (0.75 - m)
    return _run(V, draw, reg, E_bar=0.25, arrival="constant", z0=0.75 * V, realizations=realizations, rounds=rounds, burn=burn, seed=seed)


def toy_slack(V: float, *, E_bar: float = 1.25, realizations: int = 200, rounds: int = 4000, burn: int = 400, seed: int = 0):
    r"""The slack toy: the smooth toy with ``Ē = 1.25 > e(0) = 1`` and uniform arrivals on ``[0, 2Ē]``
    (``λ* = 0``), ``Z_0 = 0``; regret ``D(0, μ) = G(0) − G(μ) − μ e(μ)`` (``= μ²/2`` on ``[0, 1]``)."""
    e = lambda m: np.clip(1.0 - m, 0.0, 1.0)
    draw = lambda m, rng: (rng.random(m.shape) > m).astype(np.float64)
    reg = lambda m: _smooth_G(0.0) - _smooth_G(m) - e(m) * m
    return _run(V, draw, reg, E_bar=E_bar, arrival="uniform", z0=0.0, realizations=realizations, rounds=rounds, burn=burn, seed=seed)


# ----------------------------------------------------------------------------- the document
def render() -> str:
    """The text of ``SECOND_ORDER.md``."""
    L = sp.latex
    d = lambda e: "$$" + (e if isinstance(e, str) else L(e)) + "$$"
    ex = toy_smooth_exact
    lines = [
        "# Second-order analysis of the stationary Lagrangian gap (an asymptotic approximation)",
        "",
        "_Generated by `python -m theory.second_order` from the sympy objects in `theory/second_order.py`; do not edit by "
        "hand. Used by `proofs_check/tightness.py` (docs/model.md §8.8). **Not a theorem**: a leading-order approximation "
        "to check against measurement; the theorem is the bound $B/V$ of `DERIVATION.md`._",
        "",
        "## 1. The linearised queue",
        "",
        "Let $G(\\lambda) = E_h\\max_\\gamma(T(\\gamma,h) - \\lambda E(\\gamma,h))$ (smooth regime: continuous fading, finite "
        "action set, $\\lambda^* > 0$), $e(\\lambda) = -G'(\\lambda)$ the mean energy of the policy at price $\\lambda$ and "
        "$\\kappa = G''(\\lambda^*) = -e'(\\lambda^*)$. The controller plays the price $\\mu_t = Z_t/V$, so "
        "$E[Z_{t+1} - Z_t \\mid Z_t] = e(Z_t/V) - \\bar E \\approx -(\\kappa/V)(Z_t - V\\lambda^*)$ and "
        "$X_t = Z_t - V\\lambda^*$ is approximately the AR(1) $X_{t+1} = \\rho X_t + \\xi_t$ with",
        "",
        d(f"\\rho = {L(rho)}, \\qquad \\operatorname{{Var}}\\xi_t = \\sigma^2 = \\operatorname{{Var}}(E_t - a_t)\\ \\text{{at price}}\\ \\lambda^*"),
        "",
        "(the arrival variance enters $\\sigma^2$ for random arrivals; for correlated rounds the long-run variance replaces "
        "it). The stationary variance solves $s = \\rho^2 s + \\sigma^2$:",
        "",
        d(f"\\operatorname{{Var}} Z = {L(stationary_variance)} = {L(stationary_variance_series)} + O(V^{{-2}})"),
        "",
        f"so to leading order $\\operatorname{{Var}} Z \\approx {L(stationary_variance_leading)}$, and the spread relaxes "
        "in $\\tau = V/\\kappa$ rounds ($\\rho^t = e^{-t/\\tau}$ to leading order).",
        "",
        "## 2. The gap",
        "",
        "$G_L$ is the mean Bregman divergence of $G$ at the controller's price, "
        "$D(\\mu) = G(\\lambda^*) - G(\\mu) - G'(\\mu)(\\lambda^* - \\mu) \\approx \\tfrac{\\kappa}{2}(\\mu - \\lambda^*)^2$, so "
        "$G_L \\approx \\tfrac{\\kappa}{2}\\operatorname{Var}Z/V^2$ and",
        "",
        d(f"V\\,G_L \\approx {L(gap_times_V)} \\;\\longrightarrow\\; {L(gap_times_V_limit)} \\quad (V \\to \\infty)"),
        "",
        "The curvature cancels: the limit depends on $\\sigma^2$ only. The theorem's constant is "
        "$B \\ge \\tfrac12\\sup E[(E - a)^2] \\ge \\sigma^2/2$, so $B/V$ is loose by at least a factor 2.",
        "",
        "## 3. Window after a warm start, and floors",
        "",
        "After a warm start $Z_0 = V\\lambda^*$ (zero spread) $\\operatorname{Var}Z_t = \\operatorname{Var}Z\\,(1 - e^{-2t/\\tau})$; "
        "the mean over a window $[b, b + W)$ sees the fraction",
        "",
        d(f"{L(window_fraction_expr)}"),
        "",
        "of the stationary spread (`proofs_check.tightness.window_fraction`). A regret scored at $\\lambda^* + \\Delta\\lambda$ "
        "while the price $\\mu$ has mean $\\lambda^*$ and variance $\\operatorname{Var}\\mu$ has mean",
        "",
        d(f"{L(floor_expr)}"),
        "",
        "so $\\tfrac12\\kappa\\Delta\\lambda^2$ is a floor under the measured $G_L$ whatever $V$.",
        "",
        "## 4. Other regimes",
        "",
        "* **Polyhedral** (finitely many fading values): $G$ is piecewise linear, $D(\\mu) = 0$ on the linear pieces next to "
        "$\\lambda^*$, the drift is $\\pm$ a constant around $V\\lambda^*$, $\\operatorname{Var}Z = O(1)$ (a plateau) and $G_L$ needs "
        "an excursion of $Z/V$ to the next kink: it falls faster than $1/V$ (exponentially, asymptotically).",
        "* **Slack** ($\\lambda^* = 0$): $Z = O(1)$, $\\mu = O(1/V)$, $G_L \\approx \\tfrac{\\kappa}{2}E[Z^2]/V^2$: slope $-2$.",
        "* **Renewal form** (docs/model.md §11, gap per unit time): the same linearisation with increments $E_t - \\bar P D_t$ gives "
        f"$V\\,G_L \\to {L(renewal_constant)}$.",
        "",
        "## 5. A toy with a closed form",
        "",
        "$h \\sim U(0,1)$, actions $(T, E) = (0, 0)$ and $(h, 1)$, budget $\\bar E = p$: "
        f"$G(\\lambda) = {L(toy_G)}$ on $[0, 1]$, $\\kappa = {L(toy_kappa)}$, $\\lambda^* = 1 - p$, and the Bregman divergence is "
        f"exactly quadratic, $D(\\mu) = {L(ex['bregman'])}$; the drift $e(\\mu) - p = -(\\mu - \\lambda^*)$ is exactly linear. "
        "With $p = \\tfrac12$ the noise variance is $\\mu(1 - \\mu) + \\operatorname{Var}a = \\tfrac14 - X^2/V^2 + \\operatorname{Var}a$, "
        "and (away from the boundaries $Z = 0$, $Z = V$) the stationary variance and gap are exactly",
        "",
        d(f"\\operatorname{{Var}}Z = {L(ex['var_Z'])}, \\qquad V\\,G_L = {L(ex['V_times_G_L'])} = \\sigma^2/4"),
        "",
        "`tests/test_tightness.py` simulates this toy (`theory.second_order.toy_smooth`) and checks $V\\,G_L$ against "
        "$\\sigma^2/4$ within a confidence interval, and the polyhedral (`toy_polyhedral`: slope steeper than $-1$, "
        "$\\operatorname{Var}Z$ flat in $V$) and slack (`toy_slack`: slope $-2$) toys.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from ._emit import write_or_check

    argv = sys.argv[1:] if argv is None else argv
    return write_or_check(SECOND_ORDER_PATH, render(), argv, "python -m theory.second_order")


if __name__ == "__main__":
    raise SystemExit(main())
