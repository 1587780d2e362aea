r"""Tight constants of the stationary Lagrangian gap (docs/model.md §8.8, issue 13 item 4).

The theorem bounds the Lagrangian gap ``G_L = T* − T̄ + λ*(Ē − ā)`` by ``B/V``. This module
measures the actual constant ``κ̂ = lim V·G_L(V)`` and predicts it from measured quantities by the
second-order (linearised-queue) analysis of ``theory/second_order.py`` (``theory/SECOND_ORDER.md``):

* **smooth regime** (continuous fading, finite action set, ``λ* > 0``): the queue linearises to an
  AR(1) around ``Vλ*``, ``Z_{t+1} − Vλ* ≈ (1 − κ/V)(Z_t − Vλ*) + ξ_t``, ``Var ξ = σ²``, so
  ``Var Z ≈ σ²V/(2κ)``, the relaxation time is ``V/κ`` rounds, ``G_L ≈ (κ/2)·Var Z/V²`` and
  ``V·G_L → σ²/4`` — the curvature ``κ`` cancels. Here ``σ² = Var(E_t − a_t)`` under the policy that
  plays ``argmax_γ T(γ,h) − λ*E(γ,h)`` (the arrival variance enters for random arrivals) and
  ``κ = −de/dλ`` at ``λ*`` (``e(λ)`` the mean energy of that policy at price ``λ``). An asymptotic
  approximation, **not a theorem**.
* **polyhedral** (finitely many fading values: a trace law): the dual is piecewise linear, the
  Bregman divergence is 0 next to ``λ*``, ``Var Z`` plateaus (``O(1)``, not ``O(V)``) and ``G_L``
  falls faster than ``1/V`` (exponentially in ``V``, asymptotically).
* **slack** (``λ* = 0``): ``Z = O(1)``, price ``Z/V = O(1/V)``, ``G_L = O(1/V²)``: slope −2.

How each quantity is obtained (stated in every result):

* ``price_quadrature``: ``e(λ)``, ``E_h[E²]``, the dual and ``λ*`` by **quadrature over the fading
  law** on the policy's own proxy tables (``gelato_jax.optimum.proxy_tables`` at the nodes of
  ``gelato_jax.optimum.h_quantisation``), with the argmax's switching points located by linear
  interpolation between adjacent nodes and the midpoint rule corrected on the two half-bins around
  each switch (error ``O(n⁻²)`` instead of ``O(n⁻¹)``; ``e(λ)`` is then smooth enough for central
  differences). ``κ`` by central finite differences of that quadrature (the same nodes at both
  prices: the quadrature analogue of common random numbers). Valid when the tables are the
  conditional means (``C = 0``). ``σ²`` by quadrature is ``Var_h E(γ*(h), h) + Var a``: exact when
  the energy of a round is a deterministic function of ``(γ, h)`` (``exit="none"`` with payload
  ``full``/``scalar``); otherwise it misses ``E_h Var(E | γ, h)`` and ``fixed_price_simulation``
  is used.
* ``fixed_price_simulation``: the simulator's own rounds (``round_step``) with the queue reset to
  ``λ`` and ``V = 1`` before every round, so the controller plays the fixed-price policy; prices
  ``λ(1 ± s)`` on common random numbers (same realization keys). Gives ``σ²`` (pooled per-round
  variance of ``E_t − a_t``), the long-run variance ``T·Var(mean over T rounds)`` (equal to ``σ²``
  for i.i.d. rounds; the relevant one when rounds are correlated, e.g. Gauss–Markov fading or the
  after-rejection entropy) and ``κ`` with a CI across realizations.

Floors (``lambda_floor``, ``table_floors``, ``classify_flattening``): a regret scored at a price
``λ_used = λ* + Δλ`` has mean ``≈ ½κ(Δλ² + Var(Z/V))``, so a floor ``½κΔλ²`` lies under the
measured ``G_L`` whatever ``V``; the exact-proxy table's Monte Carlo error ``δ`` puts no floor
under the Rao–Blackwellised ``G_L`` (the controller and the regret use the same table), a bias of
at most ``δ_L = sup|δ_T − λ*δ_E|`` (first order) under the raw ``G_L``, and a second-order decision
loss ``Σ_s f(h_s)(2δ_L)²/(2|∂_h ΔL(h_s)|)`` against the true problem (derivation in
``table_floors``).

The entry point for ``proofs_check.run`` is ``tightness_summary``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

__all__ = [
    "arrival_variance",
    "PriceQuadrature",
    "price_quadrature",
    "fixed_price_simulation",
    "predicted_constant",
    "renewal_predicted_constant",
    "window_fraction",
    "measured_constant",
    "diagnose_regime",
    "lambda_floor",
    "table_floors",
    "classify_flattening",
    "linearity",
    "exact_table_delta",
    "tightness_summary",
]


# ----------------------------------------------------------------------------- arrivals
def arrival_variance(scenario) -> float:
    r"""``Var a_t`` of the scenario's energy arrivals: 0 (constant), ``Ē²`` (exponential with mean
    ``Ē``), ``Ē²/3`` (uniform on ``[0, 2Ē]``)."""
    from gelato_jax.arrivals import arrival_law

    return arrival_law(scenario).variance(float(np.asarray(scenario.E_bar).reshape(-1)[0]))


def _energy_deterministic(policy) -> bool:
    """The energy of a round is a deterministic function of ``(γ, h)``: no exit, entropy-free payload."""
    return getattr(policy, "exit", "none") == "none" and getattr(policy, "payload", "full") in ("full", "scalar")


# ----------------------------------------------------------------------------- quadrature
@dataclasses.dataclass
class PriceQuadrature:
    r"""The policy's proxy tables on a fine quantisation of the fading law, and quadrature of
    functionals of the fixed-price policy ``γ_λ(h) = argmax_γ T(γ,h) − λE(γ,h)`` (ties → smallest
    ``γ``; only ``γ = 0`` in outage).

    Attributes: ``nodes``/``weights``/``u_edges`` (cumulative probability at the bin edges), the
    tables ``T``, ``E`` ``(n, γ_max + 1)``, ``allowed``, ``E_bar``, ``exact_law`` (a discrete law
    represented without error: no switch correction), ``continuous`` (Exp(1) marginal: the switch
    correction is applied).
    """

    nodes: np.ndarray
    weights: np.ndarray
    u_edges: np.ndarray
    T: np.ndarray
    E: np.ndarray
    allowed: np.ndarray
    E_bar: float
    exact_law: bool
    continuous: bool

    # ------------------------------------------------------------------ the fixed-price policy
    def _L(self, lam):
        return np.where(self.allowed, self.T - lam * self.E, -np.inf)

    def decisions(self, lam: float) -> np.ndarray:
        """``γ_λ`` at every node (int array)."""
        return np.argmax(self._L(lam), axis=1)

    def _switches(self, lam, g):
        """Switching points between adjacent nodes: ``(k, θ, g_lo, g_hi, u_s)`` with the switch at
        ``h_k + θ(h_{k+1} − h_k)`` (linear interpolation of ``ΔL``), ``u_s`` its cumulative probability."""
        k = np.flatnonzero((g[:-1] != g[1:]) & (self.allowed[:-1, 1:].any(1) == self.allowed[1:, 1:].any(1)))
        if k.size == 0 or not self.continuous:
            return k[:0], np.zeros(0), k[:0], k[:0], np.zeros(0)
        g1, g2 = g[k], g[k + 1]
        L = self.T - lam * self.E
        d0 = L[k, g2] - L[k, g1]  # ≤ 0 (g1 optimal at node k)
        d1 = L[k + 1, g2] - L[k + 1, g1]  # ≥ 0
        den = d1 - d0
        theta = np.where(den > 0, -d0 / np.where(den > 0, den, 1.0), 0.5)
        theta = np.clip(theta, 0.0, 1.0)
        h_s = self.nodes[k] + theta * (self.nodes[k + 1] - self.nodes[k])
        u_s = -np.expm1(-h_s)
        return k, theta, g1, g2, u_s

    def moments(self, lam: float) -> dict[str, float]:
        r"""Quadrature at price ``lam``: ``energy`` ``e(λ) = E_h E(γ_λ)``, ``energy_sq`` ``E_h E(γ_λ)²``,
        ``throughput`` ``E_h T(γ_λ)``, ``dual`` ``λĒ + E_h max_γ(T − λE)``, ``switches`` (count)."""
        g = self.decisions(lam)
        rows = np.arange(len(g))
        Eg, Tg = self.E[rows, g], self.T[rows, g]
        w = self.weights
        out = {"energy": float(w @ Eg), "energy_sq": float(w @ Eg**2), "throughput": float(w @ Tg)}
        k, theta, g1, g2, u_s = self._switches(lam, g)
        if k.size:
            u_edge = self.u_edges[k + 1]

            def interp(tab, gg):
                return tab[k, gg] + theta * (tab[k + 1, gg] - tab[k, gg])

            e1, e2, t1, t2 = interp(self.E, g1), interp(self.E, g2), interp(self.T, g1), interp(self.T, g2)
            du = u_s - u_edge  # > 0: g1 extends into bin k+1; < 0: g2 extends into bin k
            out["energy"] += float(du @ (e1 - e2))
            out["energy_sq"] += float(du @ (e1**2 - e2**2))
            out["throughput"] += float(du @ (t1 - t2))
        out["dual"] = lam * self.E_bar + out["throughput"] - lam * out["energy"]
        out["switches"] = int(k.size)
        return out

    def energy(self, lam: float) -> float:
        return self.moments(lam)["energy"]

    def kappa(self, lam: float, rel_step: float = 0.01) -> float:
        r"""``κ = −de/dλ`` at ``lam`` by central differences ``[e(λ(1−s)) − e(λ(1+s))]/(2λs)`` of the
        corrected quadrature (same nodes at both prices)."""
        d = rel_step * lam if lam > 0 else rel_step
        lo = max(lam - d, 0.0)
        return (self.energy(lo) - self.energy(lam + d)) / (lam + d - lo)

    def kappa_switch(self, lam: float) -> float:
        r"""``κ`` in closed form from the switching points (cross-check of ``kappa``): at a switch
        ``h_s`` from ``γ₁`` (below) to ``γ₂`` (above), ``ΔL(h_s) = ΔT − λΔE = 0`` moves by
        ``dh_s/dλ = ΔE/∂_hΔL`` and ``e`` changes by ``f(h_s)(E_{γ₁} − E_{γ₂})dh_s``, so
        ``κ = Σ_s f(h_s)·ΔE(h_s)²/∂_hΔL(h_s)`` (``f`` the Exp(1) density; outage edges do not move
        with ``λ`` and are excluded). ``ΔE``, ``∂_hΔL`` by linear interpolation between the nodes."""
        g = self.decisions(lam)
        k, theta, g1, g2, u_s = self._switches(lam, g)
        if k.size == 0:
            return 0.0
        L = self.T - lam * self.E
        dh = self.nodes[k + 1] - self.nodes[k]
        dLdh = ((L[k + 1, g2] - L[k + 1, g1]) - (L[k, g2] - L[k, g1])) / dh
        dE = (self.E[k, g2] - self.E[k, g1]) + theta * ((self.E[k + 1, g2] - self.E[k + 1, g1]) - (self.E[k, g2] - self.E[k, g1]))
        h_s = self.nodes[k] + theta * dh
        return float(np.sum(np.exp(-h_s) * dE**2 / np.maximum(dLdh, 1e-300)))

    def lambda_star(self, *, hint: float | None = None, rtol: float = 1e-10) -> float:
        r"""Root of ``e(λ) = Ē`` (``e`` non-increasing), 0 when ``e(0) ≤ Ē`` (slack budget)."""
        from scipy.optimize import brentq

        f = lambda lam: self.energy(lam) - self.E_bar
        if f(0.0) <= 0:
            return 0.0
        hi = max(float(hint or 1.0), 1e-9)
        while f(hi) > 0:
            hi *= 2.0
            if hi > 1e15:
                raise ValueError("no price brings the mean energy down to E_bar")
        lo = hi / 2.0 if f(hi / 2.0) > 0 else 0.0
        return float(brentq(f, lo, hi, xtol=1e-14, rtol=rtol, maxiter=200))


def price_quadrature(scenario, policy, *, quantiles: int = 65536) -> PriceQuadrature:
    r"""Tabulate ``policy``'s proxy ``T(γ,h)``, ``E(γ,h)`` on ``quantiles`` equal-probability bins of
    the fading law (the marginal law: Exp(1) for ``rayleigh`` and ``gauss_markov``; a trace's
    empirical law). One call of ``gelato_jax.optimum.proxy_tables``."""
    from gelato_jax.optimum import h_quantisation, proxy_tables

    if isinstance(quantiles, bool) or not isinstance(quantiles, (int, np.integer)) or not 8 <= quantiles <= 2_000_000:
        raise ValueError(f"quantiles must be an integer in [8, 2000000], got {quantiles!r}")
    policy.validate(scenario)
    edges, nodes, w, lo, hi, exact = h_quantisation(scenario, int(quantiles))
    T, E, out = proxy_tables(scenario, policy, nodes)
    allowed = np.ones_like(T, dtype=bool)
    allowed[out, 1:] = False
    u_edges = np.concatenate([[0.0], np.cumsum(w)])
    E_bar = float(np.asarray(scenario.E_bar).reshape(-1)[0])
    continuous = scenario.channel in ("rayleigh", "gauss_markov")
    return PriceQuadrature(nodes, w, u_edges, T, E, allowed, E_bar, bool(exact), continuous)


# ----------------------------------------------------------------------------- simulation
@functools.partial(jax.jit, static_argnames=("rounds", "ar", "dtype"))
def _fixed_price_chunk(scenario, policy, lams, root, indices, aux, table, *, rounds, ar, dtype):
    from gelato_jax.model import draw_round, init_realization, initial_carry, round_step

    def per_lam(lam):
        lam = jnp.asarray(lam, dtype)

        def one(index):
            key_r, fading = init_realization(scenario, root, index, dtype, table)
            zero = jnp.zeros((), dtype)
            carry0 = (initial_carry(scenario, policy, aux, dtype), fading, zero, zero, zero)

            def body(c, t):
                step, fading, s1, s2, se = c
                draws, fading = draw_round(scenario, key_r, fading, t, ar=ar, dtype=dtype)
                step, row = round_step(scenario, policy, aux, step._replace(queue=lam), draws)
                x = (row.energy - row.arrival).astype(dtype)
                return (step, fading, s1 + x, s2 + x * x, se + row.energy.astype(dtype)), None

            (_, _, s1, s2, se), _ = jax.lax.scan(body, carry0, jnp.arange(rounds, dtype=jnp.int32))
            n = jnp.asarray(rounds, dtype)
            return {"mean": s1 / n, "mean_sq": s2 / n, "energy": se / n}

        return jax.vmap(one)(indices)

    return jax.vmap(per_lam)(lams)


def fixed_price_simulation(scenario, policy, lam: float, *, rel_step: float = 0.05, seed: int = 0, realizations: int = 64,
                           rounds: int = 4000, chunk: int | None = None, dtype=None, alpha: float = 0.05) -> dict[str, Any]:
    r"""Simulate the fixed-price policy at ``λ(1 − s)``, ``λ``, ``λ(1 + s)`` on common random numbers.

    The controller's own rounds (``gelato_jax.simulator.round_step``) with ``V = 1`` and the queue set
    to the price before every round, so ``argmax_γ V·T̂ − Z·Ê`` is the policy at that price (exit,
    payload and arrivals as simulated). Realization ``r`` draws from ``fold_in(key(seed), r)`` at every
    price. Returns plain floats: ``sigma2`` (pooled per-round variance of ``E_t − a_t`` at ``λ``) with
    its ``sigma2_se`` (from the spread across realizations), ``sigma2_long_run``
    (``T·Var_r(mean of E − a)``: the variance that drives the queue when rounds are correlated),
    ``energy`` ``e(λ)``, ``kappa`` ``[e(λ−) − e(λ+)]/(2λs)`` with a two-sided Student-t CI at level
    ``1 − alpha`` across realizations (paired differences), ``method``.
    """
    from gelato_jax.engine import entropy_table, precompute, prepare
    from gelato_jax.model import entropy_ar

    if not (math.isfinite(float(lam)) and float(lam) >= 0):
        raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
    for name, v in (("realizations", realizations), ("rounds", rounds)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 2:
            raise ValueError(f"{name} must be an integer >= 2, got {v!r}")
    pol = policy.replace(V=1.0)
    scenario, pol, dtype = prepare(scenario, pol, dtype)
    ar = entropy_ar(scenario)
    lam = float(lam)
    d = rel_step * lam if lam > 0 else rel_step
    lams = jnp.asarray([max(lam - d, 0.0), lam, lam + d], dtype)
    root = jax.random.key(seed)
    aux, table = precompute(scenario, pol), entropy_table(scenario, dtype)
    chunk = min(int(chunk or realizations), realizations)
    parts = []
    for start in range(0, realizations, chunk):
        idx = jnp.asarray(np.arange(start, start + chunk, dtype=np.uint32))
        out = _fixed_price_chunk(scenario, pol, lams, root, idx, aux, table, rounds=int(rounds), ar=ar, dtype=dtype)
        n_valid = min(chunk, realizations - start)
        parts.append({k: np.asarray(v, np.float64)[:, :n_valid] for k, v in out.items()})
    res = {k: np.concatenate([p[k] for p in parts], axis=1) for k in parts[0]}
    m, m2 = res["mean"][1], res["mean_sq"][1]
    R = m.size
    mu = m.mean()
    per_r = m2 - mu**2  # per-realization second moment about the pooled mean
    sigma2 = float(per_r.mean())
    sigma2_se = float(per_r.std(ddof=1) / math.sqrt(R))
    lr = float(rounds * m.var(ddof=1))
    lr_ci = (lr * (R - 1) / stats.chi2.ppf(1 - alpha / 2, R - 1), lr * (R - 1) / stats.chi2.ppf(alpha / 2, R - 1))
    diff = (res["energy"][0] - res["energy"][2]) / float(lams[2] - lams[0])
    kap = float(diff.mean())
    kse = float(diff.std(ddof=1) / math.sqrt(R))
    tq = float(stats.t.ppf(1 - alpha / 2, R - 1))
    return {
        "sigma2": sigma2,
        "sigma2_se": sigma2_se,
        "sigma2_long_run": lr,
        "sigma2_long_run_ci": [float(lr_ci[0]), float(lr_ci[1])],
        "energy": float(res["energy"][1].mean()),
        "kappa": kap,
        "kappa_se": kse,
        "kappa_ci": [kap - tq * kse, kap + tq * kse],
        "lambda": lam,
        "rel_step": float(rel_step),
        "realizations": int(R),
        "rounds": int(rounds),
        "method": (f"simulation: {R} realizations x {rounds} rounds at fixed prices lambda(1 -/+ {rel_step:g}) on common random "
                   "numbers (queue reset to the price, V = 1, before every round)"),
    }


# ----------------------------------------------------------------------------- predictions
def predicted_constant(sigma2: float, kappa: float | None = None) -> dict[str, float | None]:
    r"""Second-order predictions (smooth regime): ``V·G_L → σ²/4``; with ``κ``: ``Var Z/V → σ²/(2κ)``
    and the relaxation time ``V/κ`` rounds (``relaxation_rounds_per_V = 1/κ``)."""
    s = float(sigma2)
    out = {"predicted_constant": s / 4.0, "sigma2": s, "kappa": None, "var_Z_over_V": None, "relaxation_rounds_per_V": None}
    if kappa is not None and kappa > 0:
        out.update(kappa=float(kappa), var_Z_over_V=s / (2.0 * kappa), relaxation_rounds_per_V=1.0 / kappa)
    return out


def renewal_predicted_constant(var_E_minus_PD: float, mean_D: float) -> float:
    r"""Renewal form (docs/model.md §11): ``V·G_L → Var(E − P̄D)/(4·E[D])``, with ``Var(E − P̄D)`` and ``E[D]``
    per round under the optimal ratio-rule policy at its price (the same linearisation with the queue
    ``Z_{t+1} = Z_t + E_t − P̄D_t`` and the gap per unit time: one more factor ``1/E[D]``)."""
    if not mean_D > 0:
        raise ValueError(f"mean_D must be > 0, got {mean_D!r}")
    return float(var_E_minus_PD) / (4.0 * float(mean_D))


def window_fraction(V, kappa: float, rounds: int, burn: int):
    r"""Expected fraction of the stationary ``Var Z`` seen in the window ``[burn, rounds)`` after a warm
    start at ``Z_0 = Vλ*`` (zero spread): the AR(1) spread grows as ``1 − e^{−2t/τ}``, ``τ = V/κ``, so
    its window mean is ``1 − (τ/2W)·e^{−2b/τ}(1 − e^{−2W/τ})``, ``W = rounds − burn``, ``b = burn``.
    ``V·G_L`` measured in that window is expected at this fraction of ``σ²/4``."""
    V = np.asarray(V, np.float64)
    tau = V / float(kappa)
    W = float(rounds - burn)
    return 1.0 - tau / (2.0 * W) * np.exp(-2.0 * burn / tau) * (-np.expm1(-2.0 * W / tau))


def linearity(quad: PriceQuadrature, lam: float, sigma2: float, kappa: float, Vs, *, width: float = 2.0, tol: float = 0.5) -> dict[str, Any]:
    r"""Is the queue in the range where the linearisation holds? At ``V`` the predicted price spread is
    ``sd(Z/V) = sqrt(σ²/(2κV))``; the AR(1) needs ``e(λ)`` linear over ``λ* ± width·sd``. Returns per
    ``V`` the spread and the chord-to-tangent ratio ``[e(λ*−d) − e(λ*+d)]/(2dκ)`` (``d = width·sd``,
    ``λ* − d`` clipped at 0; 1 when linear) and ``V_linear``: the smallest ``V`` on a log grid
    (``10^-6 … 10^6``) from which on the ratio stays within ``tol`` of 1 (``None`` if never).
    Heuristic, calibrated on configuration (a) at the defaults: ratios 1.51 (V = 0.01) and 1.13
    (V = 0.03) there, and the measured V·G_L matched σ²/4 within 2 % at both; in the W = 5 MHz,
    Ē = 0.03 J, exponential-arrival scenario the ratio is 170–290 at V = 0.001–0.003 and V·G_L was
    1.9× σ²/4 (``V_linear`` ≈ 180 there)."""
    def ratio(V):
        d = width * math.sqrt(sigma2 / (2.0 * kappa * V))
        lo = max(lam - d, 0.0)
        return (quad.energy(lo) - quad.energy(lam + d)) / ((lam + d - lo) * kappa), d / width
    Vs = np.atleast_1d(np.asarray(Vs, np.float64))
    r = [ratio(V) for V in Vs]
    grid = np.logspace(-6, 6, 49)
    ok = np.array([abs(ratio(V)[0] - 1.0) <= tol for V in grid])
    V_lin = None
    for i in range(len(grid)):
        if ok[i:].all():
            V_lin = float(grid[i])
            break
    return {"V": Vs.tolist(), "price_sd": [x[1] for x in r], "chord_over_tangent": [x[0] for x in r],
            "linear": [bool(abs(x[0] - 1.0) <= tol) for x in r], "V_linear": V_lin, "width_sd": float(width)}


def dual_kink(quad: PriceQuadrature, lam: float, *, rel: float = 0.05, share: float = 0.8, narrow: float = 0.1) -> dict[str, Any]:
    r"""How concentrated the fall of the mean energy ``e(λ)`` is around ``λ*``: the smallest half-width
    ``d`` with ``e(λ* − d) − e(λ* + d) ≥ share·[e(λ*(1 − rel)) − e(λ*(1 + rel))]`` (bisection on
    ``d``). ``near_kink`` when ``d < narrow·rel·λ*``: most of the energy response over ``±rel`` happens
    within a window much narrower than ``rel`` — nearly every fading state switches action at almost
    the same price, so the dual ``G(λ)`` is nearly polyhedral at ``λ*`` (a kink smoothed over ``±d``).
    Then the smooth second-order law (``V·G_L → σ²/4``, slope −1) holds only once the queue's price
    spread ``sqrt(σ²/(2κV))`` is well inside ``±d``; for larger spreads the regret beyond the window is
    that of a kinked dual, far below ``σ²/(4V)``, and ``G_L`` falls slower than ``1/V`` in the
    transition. Measured example: the W = 5 MHz, Ē = 0.03 J, exponential-arrival scenario,
    configuration (b): ``e`` falls from 0.0556 J (γ = 2 for all h) to 0.0300 J (γ = 1) within
    ``±0.1 %`` of ``λ* = 98.17``."""
    lam = float(lam)
    if not lam > 0:
        return {"near_kink": False, "half_width": None, "relative_half_width": None, "energy_drop": None, "rel": rel, "share": share}
    total = quad.energy(lam * (1 - rel)) - quad.energy(lam * (1 + rel))
    if not total > 0:
        return {"near_kink": False, "half_width": None, "relative_half_width": None, "energy_drop": float(total), "rel": rel, "share": share}
    lo, hi = 0.0, rel * lam
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if quad.energy(lam - mid) - quad.energy(lam + mid) >= share * total:
            hi = mid
        else:
            lo = mid
    d = hi
    inside = quad.energy(lam - d) - quad.energy(lam + d)
    return {"near_kink": bool(d < narrow * rel * lam), "half_width": float(d), "relative_half_width": float(d / lam),
            "energy_drop": float(total), "energy_drop_in_window": float(inside),
            "local_kappa": float(inside / (2 * d)) if d > 0 else None, "rel": rel, "share": share}


# ----------------------------------------------------------------------------- measurement
def measured_constant(Vs, regret, *, rounds: int | None = None, burn: int | None = None, kappa: float | None = None,
                      min_fraction: float = 0.95, alpha: float = 0.05, exclude=None, last: int = 2) -> dict[str, Any]:
    r"""``κ̂ = lim V·G_L`` from a stationary sweep.

    ``regret``: ``(n_V, R)`` per-realization window means of the Lagrangian regret (the
    ``"regret_w"`` of ``proofs_check.sweep.lagrangian_sweep``; common random numbers across ``V``).
    Per ``V``: ``V·mean`` with a two-sided Student-t CI at ``1 − alpha`` across realizations. With
    ``kappa``, ``rounds``, ``burn``: the expected window fraction (``window_fraction``) per ``V``;
    the asymptotic set is the ``V`` whose fraction is ``≥ min_fraction`` (≈ 10 relaxation times for
    a 10 % burn-in at 0.95), minus ``exclude`` (bool mask, e.g. ``V`` where a floor is not
    negligible); without them every ``V``. Estimate: a limit, so it is read at the ``last``
    largest ``V`` of the set (inverse-variance weighted mean of their ``V·G_L``; CI from the
    per-realization weighted combination, a t-interval across realizations, so the correlation
    between ``V`` values from common random numbers is accounted for). A weighted mean over the
    whole set would be pulled to the smallest ``V``, whose ``V·G_L`` has the smallest standard error
    but has not converged where ``V·G_L`` still rises (measured: (b) at the defaults, ``V·G_L`` from
    4.9e-6 to 6.1e-5 = σ²/4 over the sweep). ``converged``: the two largest ``V`` of the set agree
    within ``z = t_{1−α/2}`` standard errors of their difference (``None`` with one point).
    ``estimate_window_corrected``: the same with each ``V·G_L`` divided by its fraction.
    """
    V = np.asarray(Vs, np.float64)
    x = np.asarray(regret, np.float64)
    if x.ndim != 2 or x.shape[0] != V.size or x.shape[1] < 2:
        raise ValueError(f"regret must be (n_V, R>=2) matching Vs {V.shape}, got {x.shape}")
    nV, R = x.shape
    c_r = V[:, None] * x
    c = c_r.mean(axis=1)
    se = c_r.std(axis=1, ddof=1) / math.sqrt(R)
    tq = float(stats.t.ppf(1 - alpha / 2, R - 1))
    frac = np.ones(nV) if (kappa is None or rounds is None or burn is None or not kappa > 0) else window_fraction(V, kappa, rounds, burn)
    use = frac >= min_fraction
    if exclude is not None:
        use &= ~np.asarray(exclude, bool)
    note = None
    if not use.any():
        use = np.zeros(nV, bool)
        use[int(np.argmax(frac))] = True
        note = f"no V has window fraction >= {min_fraction:g}: the V with the largest fraction ({frac.max():.3f}) is used"
    idx = np.flatnonzero(use)
    idx = idx[np.argsort(V[idx])][-max(int(last), 1):]
    converged = None
    if idx.size >= 2:
        i, j = idx[-2], idx[-1]
        d = c_r[j] - c_r[i]
        converged = bool(abs(d.mean()) <= tq * d.std(ddof=1) / math.sqrt(R))
    use = np.zeros(nV, bool)
    use[idx] = True

    def combine(cr):
        wts = 1.0 / np.maximum(cr[use].var(axis=1, ddof=1), 1e-300)
        wts = wts / wts.sum()
        comb = wts @ cr[use]
        m = float(comb.mean())
        s = float(comb.std(ddof=1) / math.sqrt(R))
        return m, s

    m, s = combine(c_r)
    mc, sc = combine(c_r / frac[:, None])
    return {
        "V": V.tolist(),
        "V_times_G_L": c.tolist(),
        "V_times_G_L_ci": [(c - tq * se).tolist(), (c + tq * se).tolist()],
        "window_fraction": frac.tolist(),
        "asymptotic_points": np.flatnonzero(use).tolist(),
        "converged": converged,
        "estimate": m,
        "estimate_se": s,
        "estimate_ci": [m - tq * s, m + tq * s],
        "estimate_window_corrected": mc,
        "estimate_window_corrected_ci": [mc - tq * sc, mc + tq * sc],
        "realizations": int(R),
        "confidence": 1 - alpha,
        "note": note,
    }


# ----------------------------------------------------------------------------- regimes
_PREDICTIONS = {
    "smooth": "slope -1: V*G_L -> sigma^2/4, Var Z ~ sigma^2 V/(2 kappa) (grows like V)",
    "polyhedral": "steeper than -1 (exponential decay at large V): the Bregman divergence is 0 next to lambda*, Var Z plateaus (O(1))",
    "slack": "slope -2: lambda* = 0, Z = O(1), the price Z/V = O(1/V), G_L = O(1/V^2)",
}


def diagnose_regime(scenario, policy, lambda_star: float, *, slope: float | None = None, slope_ci=None, lambda_scale: float | None = None,
                    finite_table_over_h: bool | None = None, window_ok: bool | None = None) -> dict[str, Any]:
    r"""The regime of the second-order analysis and what it predicts, from the scenario and policy,
    then compared with a measured slope.

    * ``slack`` if ``λ* ≤ 1e-9·lambda_scale`` (default scale 1: the budget does not bind);
    * ``polyhedral`` if the fading law has finite support (``channel="trace"``) or the controller's
      proxy reads a finite table over ``h`` (``finite_table_over_h``; an ``Oracle``-style binned
      table; none of the DPP proxies here does: the exact proxy's table is over ``γ`` — and, for
      ``topp``, a cubic interpolant in the rate — so it is continuous in ``h``);
    * ``smooth`` otherwise (continuous fading, the finite action set ``{0..γ_max}``, ``λ* > 0``).

    ``slope``/``slope_ci`` (log-log slope of ``G_L`` over the asymptotic range): ``consistent`` says
    whether the CI contains the predicted slope (smooth: −1, slack: −2) or lies below −1
    (polyhedral); ``window_ok=False`` (the window is short of many relaxation times) explains a
    smooth-regime slope steeper than −1.
    """
    lam = float(lambda_star)
    scale = float(lambda_scale) if lambda_scale else 1.0
    reasons = []
    if finite_table_over_h is None:
        finite_table_over_h = type(policy).__name__ == "Oracle"
    if lam <= 1e-9 * scale:
        regime, pred = "slack", -2.0
        reasons.append(f"lambda* = {lam:g} <= 1e-9 x {scale:g}: the energy budget does not bind")
    elif scenario.channel == "trace" or finite_table_over_h:
        regime, pred = "polyhedral", None
        reasons.append("finitely many fading values (channel='trace')" if scenario.channel == "trace" else "the controller reads a finite table over h")
    else:
        regime, pred = "smooth", -1.0
        reasons.append(f"continuous fading ({scenario.channel}), finite action set {{0..{scenario.gamma_max}}}, lambda* = {lam:.6g} > 0")
    out = {"regime": regime, "predicted_slope": pred, "prediction": _PREDICTIONS[regime], "reasons": reasons,
           "measured_slope": None if slope is None else float(slope), "measured_slope_ci": None, "consistent": None}
    if slope_ci is not None:
        lo, hi = float(slope_ci[0]), float(slope_ci[1])
        out["measured_slope_ci"] = [lo, hi]
        if regime == "polyhedral":
            out["consistent"] = bool(hi < -1.0)
        else:
            out["consistent"] = bool(lo <= pred <= hi)
        if regime == "smooth" and hi < -1.0:
            out["interpretation"] = ("steeper than -1: " + ("the window is short of many relaxation times V/kappa (Var Z under-sampled)"
                                     if window_ok is False else "not explained by the window; check for a finite law or a tied lambda*"))
        elif regime == "smooth" and lo > -1.0:
            out["interpretation"] = "flatter than -1: compare with the predicted floors (classify_flattening)"
    return out


# ----------------------------------------------------------------------------- floors
def lambda_floor(kappa: float, delta_lambda: float) -> float:
    r"""Floor ``½κΔλ²`` that a price error ``Δλ = λ_used − λ*`` puts under the measured ``G_L``.

    The regret scored at ``λ_used`` of the controller's decision at price ``μ = Z/V`` is the Bregman
    divergence ``D(λ_used, μ) = G(λ_used) − G(μ) − G'(μ)(λ_used − μ) ≈ ½κ(λ_used − μ)²``; with
    ``E μ ≈ λ*``, ``E D ≈ ½κ(Δλ² + Var μ)``: the second term is ``σ²/(4V)``, the first a floor."""
    return 0.5 * float(kappa) * float(delta_lambda) ** 2


def table_floors(quad: PriceQuadrature, lam: float, delta_T: float, delta_E: float) -> dict[str, float]:
    r"""What a table error ``|T̂ − T| ≤ δ_T``, ``|Ê − E| ≤ δ_E`` (e.g. the exact-proxy table's Monte
    Carlo error, ``z``·SE) does to ``G_L``. ``quad`` holds the controller's (erroneous) tables.

    Derivation. Write ``L̂ = T̂ − λÊ = L + δ_L`` at price ``λ``, ``|δ_L(γ,h)| ≤ δ = δ_T + λδ_E``.
    (i) The Rao–Blackwellised ``G_L`` (regret of the controller's decision scored on the same table
    ``L̂``, with ``T*``, ``λ*`` of the table problem) is the second-order quantity of the table
    problem itself: **no floor** from ``δ`` (``rb_floor = 0``). (ii) The raw ``G_L`` (realized
    throughput and energy, ``T*``/``λ*`` of the table problem) differs from (i) by the per-round
    ``E[L̂(γ_t,h_t) − L(γ_t,h_t)] = E[δ_L(γ_t,h_t)]``: a bias of at most ``δ`` in absolute value,
    first order (``raw_bias_bound``). (iii) Against the true problem the controller loses
    ``L(γ*) − L(γ̂) ≤ |δ_L(γ*) − δ_L(γ̂)| ≤ 2δ`` per round, but only where the two actions' ``L̂``
    and ``L`` order differently: within ``|ΔL(h)| ≤ 2δ`` of a switching point ``h_s`` of the
    argmax, ``ΔL`` the difference of the two actions' ``L``. Linearising ``ΔL(h) ≈ ∂_hΔL·(h − h_s)``
    the band has width ``2δ/|∂_hΔL|`` and the loss grows linearly across it, so the expected loss per
    round is at most ``Σ_s f(h_s)(2δ)²/(2|∂_hΔL(h_s)|)`` (``true_regret_floor``: second order; the
    worst case per round ``2δ`` is ``per_round_worst``). ``T*`` itself moves by at most ``δ``
    (envelope: ``|T*_table − T*_true| ≤ sup|δ_L| = δ``, ``t_star_shift_bound``).
    """
    lam = float(lam)
    delta = float(delta_T) + lam * float(delta_E)
    g = quad.decisions(lam)
    k, theta, g1, g2, u_s = quad._switches(lam, g)
    loss = 0.0
    if k.size:
        L = quad.T - lam * quad.E
        dL0 = L[k, g2] - L[k, g1]
        dL1 = L[k + 1, g2] - L[k + 1, g1]
        slope = np.abs(dL1 - dL0) / np.maximum(quad.nodes[k + 1] - quad.nodes[k], 1e-300)
        h_s = quad.nodes[k] + theta * (quad.nodes[k + 1] - quad.nodes[k])
        dens = np.exp(-h_s)  # Exp(1) density of the marginal law
        band = 2 * delta / np.maximum(slope, 1e-300)  # half-width in h of the mis-ordered band
        lin = dens * (2 * delta) ** 2 / (2 * np.maximum(slope, 1e-300))
        # the linearisation only holds for a narrow band; never more than 2δ times its probability
        cap = 2 * delta * np.minimum(dens * 2 * band, 1.0)
        loss = float(np.sum(np.minimum(lin, cap)))
    return {"delta_L": delta, "rb_floor": 0.0, "raw_bias_bound": delta, "true_regret_floor": loss, "per_round_worst": 2 * delta,
            "t_star_shift_bound": delta}


def exact_table_delta(scenario, policy, quad: PriceQuadrature, *, z: float = 3.0) -> tuple[float, float]:
    r"""``(δ_T, δ_E)`` for ``proxy="exact"``: ``z`` times a bound on the Monte Carlo standard error of
    the table (``gelato_jax.exact_proxy``): for ``topp`` the table's largest relative SE times the largest
    ``T``/``E``; otherwise the table is a sample average over ``M = EXACT_SAMPLES`` entropy vectors of
    quantities in ``[0, max]``, whose SE is at most ``max/(2√M)``. A crude upper bound (the table is
    Rao–Blackwellised, its actual error is smaller): use it to rule a table floor *out*, not in."""
    from gelato_jax import exact_proxy

    Tm = float(np.max(np.where(quad.allowed, quad.T, 0.0)))
    Em = float(np.max(np.where(quad.allowed, quad.E, 0.0)))
    if getattr(policy, "payload", "full") == "topp":
        rel = exact_proxy.policy_table_error(scenario, policy)
        return z * rel * Tm, z * rel * Em
    half = 0.5 / math.sqrt(exact_proxy.EXACT_SAMPLES)
    return z * half * Tm, z * half * Em


def classify_flattening(Vs, G, G_se, *, predicted_constant: float, floor: float, z: float = 2.0, band: float = 2.0,
                        large_V_points: int = 3) -> dict[str, Any]:
    r"""Is a flattening of ``G_L`` at large ``V`` at a predicted resolution floor?

    Per ``V``: the excess ``G − c/V`` over the second-order prediction (``c`` = ``predicted_constant``).
    ``above`` if the excess exceeds ``z·se``; ``at_floor`` if moreover it lies within a factor
    ``band`` of ``floor`` (``[floor/band − z·se, band·floor + z·se]``: ``floor`` is a leading-order
    estimate); ``unexplained`` if above and not at the floor. Verdict over the ``large_V_points``
    largest ``V``: ``"no flattening"`` (none above), ``"resolution floor"`` (every point above is at
    the floor), ``"not explained"`` (some are not)."""
    V = np.asarray(Vs, np.float64)
    G = np.asarray(G, np.float64)
    se = np.asarray(G_se, np.float64)
    excess = G - predicted_constant / V
    above = excess > z * se
    at_floor = above & (excess >= floor / band - z * se) & (excess <= band * floor + z * se) & (floor > 0)
    sel = np.argsort(V)[-large_V_points:]
    if not above[sel].any():
        verdict = "no flattening"
    elif np.all(at_floor[sel] | ~above[sel]):
        verdict = "resolution floor"
    else:
        verdict = "not explained"
    return {"verdict": verdict, "excess": excess.tolist(), "above": above.tolist(), "at_floor": at_floor.tolist(),
            "floor": float(floor), "predicted_over_V": (predicted_constant / V).tolist(), "points": sel.tolist()}


# ----------------------------------------------------------------------------- summary
def _get(th, name, default=None):
    if th is None:
        return default
    if isinstance(th, dict):
        return th.get(name, default)
    return getattr(th, name, default)


def tightness_summary(scenario, policy, th, sweep, *, Vs, rounds: int, burn, lambda_used: float | None = None, quantiles: int = 65536,
                      sigma2_method: str = "auto", sim_realizations: int = 64, sim_rounds: int = 4000, seed: int = 0,
                      min_fraction: float = 0.95, slope=None, slope_ci=None, table_delta=None, alpha: float = 0.05) -> dict[str, Any]:
    r"""Tight constants of one ``C = 0`` configuration after its stationary sweep (plain floats/lists).

    Args:
      scenario, policy: as passed to ``lagrangian_sweep`` (``policy`` with its proxy; ``V`` ignored).
      th: ``proofs_check.theory_adapter.TheoryConstants`` or a dict with ``lambda_star`` (and ``B``).
      sweep: the dict returned by ``proofs_check.sweep.lagrangian_sweep`` (uses ``"regret_w"``
        ``(n_V, R)``; ``"queue_w"``/``"queue_sq_w"`` for ``Var Z`` when present), or aggregates
        ``{"G_L": (n_V,), "G_L_sem": (n_V,)}`` (``data["stationary"]`` of ``run.py``; the CI then
        treats the ``V`` values as independent).
      Vs, rounds, burn: the sweep's ``V`` grid, horizon and window start (scalar or per ``V``).
      lambda_used: the price the regret was scored at (default ``th.lambda_star``).
      quantiles: nodes of the quadrature (``price_quadrature``).
      sigma2_method: ``"quadrature"``, ``"simulation"`` (``fixed_price_simulation`` with
        ``sim_realizations`` × ``sim_rounds``) or ``"auto"`` (quadrature when the energy of a round
        is a deterministic function of ``(γ, h)`` and rounds are i.i.d., else simulation).
      slope, slope_ci: the measured log-log slope of ``G_L`` (e.g. ``check_lagrangian_slope``'s).
      table_delta: ``(δ_T, δ_E)`` table error; default: ``exact_table_delta`` for ``proxy="exact"``,
        none otherwise.
    Returns:
      ``measured_constant``, ``measured_ci``, ``predicted_constant`` (σ²/4), ``sigma2``, ``kappa``,
      ``regime``, ``predicted_slope`` (``None`` for polyhedral: steeper than −1), ``floors``
      (``lambda``: ½κΔλ², ``table_raw_bias``, ``table_true_regret``, ``delta_lambda``, the
      quadrature ``lambda_star_quadrature``), ``B``, ``ratio_B_to_measured``,
      ``ratio_measured_to_predicted``, ``flattening`` (``classify_flattening``), ``linearisation``
      (``linearity``: whether ``e(λ)`` is linear over the predicted price spread at each swept ``V``;
      ``prediction_applies`` False means the second-order constant is not expected at these ``V``),
      ``methods``,
      and the per-``V`` table ``per_V``.
    """
    lam_th = _get(th, "lambda_star")
    if lam_th is None:
        raise ValueError("th must carry lambda_star")
    lam_th = float(lam_th)
    lam_used = lam_th if lambda_used is None else float(lambda_used)
    Vs = np.asarray(Vs, np.float64)
    burn_v = np.broadcast_to(np.asarray(burn, np.float64), Vs.shape)
    quad = price_quadrature(scenario, policy, quantiles=quantiles)
    lam_q = quad.lambda_star(hint=max(lam_th, 1e-6))
    lam_c = lam_q if lam_q > 0 else lam_th
    kappa = quad.kappa(lam_c) if lam_c > 0 else quad.kappa(0.0)
    mom = quad.moments(lam_c)
    var_a = arrival_variance(scenario)
    sigma2_quad = mom["energy_sq"] - mom["energy"] ** 2 + var_a
    iid = scenario.channel != "gauss_markov" and getattr(scenario, "rho_H", 0.0) in (0, 0.0) and scenario.entropy_process != "text"
    method = sigma2_method
    if method == "auto":
        method = "quadrature" if (_energy_deterministic(policy) and iid) else "simulation"
    methods = {"kappa": f"central differences (step 1%) of the switch-corrected quadrature over the fading law, {quantiles} nodes, policy's proxy tables",
               "lambda_star": "root of e(lambda) = E_bar on the same quadrature"}
    sim = None
    if method == "quadrature":
        sigma2 = sigma2_quad
        methods["sigma2"] = f"quadrature: Var_h E(gamma*(h), h) + Var a (Var a = {var_a:g})"
    elif method == "simulation":
        sim = fixed_price_simulation(scenario, policy, lam_c, seed=seed, realizations=sim_realizations, rounds=sim_rounds)
        sigma2 = sim["sigma2_long_run"] if not iid else sim["sigma2"]
        methods["sigma2"] = sim["method"] + ("; long-run variance (correlated rounds)" if not iid else "; per-round variance")
    else:
        raise ValueError(f"sigma2_method must be 'auto', 'quadrature' or 'simulation', got {sigma2_method!r}")
    pred = predicted_constant(sigma2, kappa)
    # ---------------------------------------------------------------- floors
    dlam = lam_used - lam_c
    floors = {"lambda": lambda_floor(kappa, dlam), "delta_lambda": dlam, "lambda_used": lam_used, "lambda_star_quadrature": lam_q,
              "table_raw_bias": 0.0, "table_true_regret": 0.0, "table_rb": 0.0}
    if table_delta is None and getattr(policy, "proxy", None) == "exact":
        table_delta = exact_table_delta(scenario, policy, quad)
    if table_delta is not None:
        tf = table_floors(quad, lam_c, *table_delta)
        floors.update(table_raw_bias=tf["raw_bias_bound"], table_true_regret=tf["true_regret_floor"], table_delta_L=tf["delta_L"])
    # ---------------------------------------------------------------- measurement
    if "regret_w" in sweep:
        x = np.asarray(sweep["regret_w"], np.float64)
        R = x.shape[1]
        mc = measured_constant(Vs, x, rounds=rounds, burn=int(burn_v.min()), kappa=kappa, min_fraction=min_fraction, alpha=alpha,
                               exclude=Vs * floors["lambda"] > 0.1 * pred["predicted_constant"])
        if not np.allclose(burn_v, burn_v[0]):
            mc["window_fraction"] = window_fraction(Vs, kappa, rounds, burn_v).tolist()
        G = x.mean(axis=1)
        G_se = x.std(axis=1, ddof=1) / math.sqrt(R)
    else:
        G = np.asarray(sweep["G_L"], np.float64)
        G_se = np.asarray(sweep["G_L_sem"], np.float64)
        frac = window_fraction(Vs, kappa, rounds, burn_v)
        use = (frac >= min_fraction) & ~(Vs * floors["lambda"] > 0.1 * pred["predicted_constant"])
        if not use.any():
            use = np.arange(Vs.size) == int(np.argmax(frac))
        c, cs = Vs * G, Vs * G_se
        w = 1 / np.maximum(cs[use] ** 2, 1e-300)
        est = float(np.sum(w * c[use]) / w.sum())
        es = float(1 / math.sqrt(w.sum()))
        zq = float(stats.norm.ppf(1 - alpha / 2))
        mc = {"V": Vs.tolist(), "V_times_G_L": c.tolist(), "window_fraction": frac.tolist(), "asymptotic_points": np.flatnonzero(use).tolist(),
              "estimate": est, "estimate_ci": [est - zq * es, est + zq * es], "note": "aggregates only: V values treated as independent"}
    per_V = {"V": Vs.tolist(), "G_L": G.tolist(), "G_L_se": G_se.tolist(), "V_times_G_L": (Vs * G).tolist(),
             "window_fraction": mc["window_fraction"], "relaxation_times_in_window": ((rounds - burn_v) * kappa / Vs).tolist(),
             "predicted_G_L": (pred["predicted_constant"] / Vs + floors["lambda"]).tolist()}
    if "queue_sq_w" in sweep and "queue_w" in sweep:
        vz = np.maximum(np.asarray(sweep["queue_sq_w"]) - np.asarray(sweep["queue_w"]) ** 2, 0.0).mean(axis=1)
        per_V["var_Z_time"] = vz.tolist()
        per_V["var_Z_over_predicted"] = (vz / (pred["var_Z_over_V"] * Vs)).tolist() if pred["var_Z_over_V"] else None
    lin = linearity(quad, lam_c, sigma2, kappa, Vs) if (lam_c > 0 and kappa > 0) else None
    kink = dual_kink(quad, lam_c) if lam_c > 0 else None
    regime = diagnose_regime(scenario, policy, lam_c if lam_q > 0 else 0.0, slope=slope, slope_ci=slope_ci, lambda_scale=max(lam_th, 1.0),
                             window_ok=bool(np.min(mc["window_fraction"]) >= min_fraction))
    flat = classify_flattening(Vs, G, G_se, predicted_constant=pred["predicted_constant"], floor=floors["lambda"])  # the RB regret carries no table floor (table_floors (i))
    B = _get(th, "B")
    meas = float(mc["estimate"])
    out = {
        "measured_constant": meas,
        "measured_ci": [float(mc["estimate_ci"][0]), float(mc["estimate_ci"][1])],
        "measured_constant_window_corrected": mc.get("estimate_window_corrected"),
        "predicted_constant": float(pred["predicted_constant"]),
        "sigma2": float(sigma2),
        "sigma2_quadrature": float(sigma2_quad),
        "kappa": float(kappa),
        "var_Z_over_V_predicted": pred["var_Z_over_V"],
        "relaxation_rounds_per_V": pred["relaxation_rounds_per_V"],
        "lambda_star": float(lam_c),
        "regime": regime["regime"],
        "predicted_slope": regime["predicted_slope"],
        "regime_details": regime,
        "floors": {k: (float(v) if v is not None else None) for k, v in floors.items()},
        "flattening": flat,
        "B": None if B is None else float(B),
        "ratio_B_to_measured": None if (B is None or not meas > 0) else float(B) / meas,
        "ratio_B_to_predicted": None if B is None else float(B) / float(pred["predicted_constant"]),
        "ratio_measured_to_predicted": meas / float(pred["predicted_constant"]) if pred["predicted_constant"] > 0 else None,
        "linearisation": lin,
        "dual_kink": kink,
        "prediction_applies": None if lin is None else bool(all(lin["linear"])),
        "measurement": mc,
        "per_V": per_V,
        "methods": methods,
        "simulation": sim,
    }
    return out
