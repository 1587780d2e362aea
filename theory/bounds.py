r"""Constants and the drift-plus-penalty theorem of GELATO (docs/model.md §8), as sympy expressions with
numeric evaluators.

Setting: queue ``Z_{t+1} = max(Z_t + E_t − a_t, 0)``, ``Z_0 = 0``, Lyapunov function ``½Z²``. The
controller picks ``γ_t = argmax_γ V T̂(γ, h_t) − Z_t Ê(γ, h_t)`` (proxies ``T̂``, ``Ê``); the true
conditional means are ``T(γ, h) = E[N/D | γ, h]`` and ``E(γ, h) = E[E | γ, h]`` (from
``gelato_jax.exact_proxy``).

Assumptions (A1–A5):

* A1: ``h_t`` i.i.d. over rounds (Rayleigh; a trace or Gauss–Markov fading is outside the proof),
  independent of the past; arrivals ``a_t`` i.i.d. with mean ``Ē``, independent of everything else;
* A2: outage: a round with ``r < r_min`` drafts nothing, so ``0 ≤ E_t ≤ E_max`` (``E_max`` below);
* A3: ``0 ≤ N_t/D_t ≤ T_max`` on every round;
* A4: the energy proxy does not under-estimate: ``E(γ, h) ≤ Ê(γ, h)`` (pathwise true for the
  mean proxy: the inner loop only removes passes and bits; equality for the exact proxy);
* A5: Slater: ``γ = 0`` costs no energy, so the always-``0`` policy has slack ``ε = Ē``.

Results, for every horizon ``T ≥ 1``:

* energy (every path): ``(1/T) Σ E_t ≤ (1/T) Σ a_t + Z_T / T``;
* throughput: ``(1/T) Σ E[N_t/D_t] ≥ T̂* − (B + C)/V`` with ``T̂*`` the optimum of the proxy
  problem (``gelato_jax.optimum``), ``B = ½ sup E[(E_t − a_t)²]`` and
  ``C = V · max(0, sup_{γ,h} (T̂ − T))`` (``C = 0`` for ``proxy="exact"``; for the mean proxy ``C``
  grows with ``V``, so only the exact proxy can show a ``1/V`` law);
* queue: ``(1/T) Σ E[Z_t] ≤ (B + C + V (T_max − T_ε)) / ε`` with ``T_ε = E_h[T(0, h)]`` the
  throughput of the Slater policy. **Note.** docs/model.md §8.4 writes ``T*`` in place of ``T_ε``; that
  form is not valid in general: with two actions (``T = 20, E = 0``) and (``T = 40, E = 1.25Ē``),
  ``T* = 36`` and the queue settles near ``Vλ* = 16V/Ē`` while ``(B + V(40 − 36))/Ē ≈ 4V/Ē``
  (``counterexample_queue_bound`` evaluates it). ``queue_bound`` therefore needs ``T_slater``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import sympy as sp

from . import closed_forms as cf

__all__ = [
    # symbols and expressions
    "Z", "Zn", "E_t", "a_t", "V", "Bs", "Cs", "Ebar", "Emax", "Tmax", "Tstar", "Tslater", "eps", "Tn",
    "one_step", "drift_bound", "drift_identity", "E_max_expr", "T_max_expr", "arrival_second_moment",
    "B_actual_expr", "B_worst_expr", "throughput_bound_expr", "throughput_gap_expr", "queue_bound_expr",
    "energy_path_expr", "slater_expr",
    # evaluators
    "E_max", "T_max", "slater_slack", "slater_throughput", "drift_constant", "proxy_error",
    "proxy_error_details", "throughput_gap_bound", "throughput_bound", "queue_bound", "energy_path_bound",
    "constants", "counterexample_queue_bound",
]

# ----------------------------------------------------------------------------- symbols
Z = sp.Symbol("Z_t", nonnegative=True)
Zn = sp.Symbol("Z_{t+1}", nonnegative=True)
E_t = sp.Symbol("E_t", nonnegative=True)
a_t = sp.Symbol("a_t", nonnegative=True)
V = sp.Symbol("V", positive=True)
Bs = sp.Symbol("B", nonnegative=True)
Cs = sp.Symbol("C", nonnegative=True)
Ebar = sp.Symbol("Ebar", positive=True)
Emax = sp.Symbol("E_max", positive=True)
Tmax = sp.Symbol("T_max", positive=True)
Tstar = sp.Symbol("T^*", positive=True)
Tslater = sp.Symbol("T_epsilon", positive=True)
eps = sp.Symbol("epsilon", positive=True)
Tn = sp.Symbol("T", positive=True, integer=True)
gmax = sp.Symbol("gamma_max", positive=True, integer=True)
bmax = sp.Symbol("b_max", positive=True)
r_floor = sp.Symbol("r_floor", positive=True)
s = cf.SYM

# ----------------------------------------------------------------------------- drift of ½Z²
#: Queue update and the one-step drift. max(x, 0)² ≤ x² gives ½Z_{t+1}² − ½Z_t² ≤ ½(E − a)² + Z(E − a).
one_step = sp.Max(Z + E_t - a_t, 0)
_x = sp.Symbol("x", real=True)
max_square_step = (sp.Max(_x, 0) ** 2, _x**2)  # (lhs, rhs) of max(x,0)² ≤ x²
drift_identity = sp.expand(((Z + E_t - a_t) ** 2 - Z**2) / 2)  # = ½(E − a)² + Z(E − a)
drift_bound = (E_t - a_t) ** 2 / 2 + Z * (E_t - a_t)
assert sp.simplify(drift_identity - drift_bound) == 0

# ----------------------------------------------------------------------------- constants
#: Worst-case round energy given r ≥ r_floor = max(r_min, r(h_min)): γ_max passes, γ_max tokens of
#: b_max bits each (A2).
E_max_expr = gmax * s["e_d"] + s["P_tx"] * gmax * bmax / r_floor
_Lsym = sp.Symbol("L", nonnegative=True, integer=True)
#: N ≤ L + 1 and D ≥ L(τ_d + t_v1) + t_v0 + δ; the ratio is monotone in L, so its max over
#: L ∈ [0, γ_max] is at an end point (A3).
T_per_L = (_Lsym + 1) / (_Lsym * (s["tau_d"] + s["t_v1"]) + s["t_v0"] + s["delta"])
T_max_expr = sp.Max(T_per_L.subs(_Lsym, 0), T_per_L.subs(_Lsym, gmax))
#: Slater slack of the always-γ=0 policy: Ē − E(P=0, B=0) (A5).
slater_expr = Ebar - cf.round_energy.subs({s["P"]: 0, s["B"]: 0})

_a = sp.Symbol("a", nonnegative=True)
#: E[a²] of the arrival laws (sympy integrals).
arrival_second_moment = {
    "constant": Ebar**2,
    "exponential": sp.simplify(sp.integrate(_a**2 * sp.exp(-_a / Ebar) / Ebar, (_a, 0, sp.oo))),
    "uniform": sp.simplify(sp.integrate(_a**2 / (2 * Ebar), (_a, 0, 2 * Ebar))),
}
#: Largest arrival (None: unbounded).
arrival_max = {"constant": Ebar, "exponential": None, "uniform": 2 * Ebar}
_m2 = sp.Symbol("m_2", positive=True)  # E[a²]
_e = sp.Symbol("e", nonnegative=True)
#: B for the actual arrival law: E_a[(e − a)²] = e² − 2eĒ + E[a²] is convex in e ∈ [0, E_max], so
#: its sup over any law of E_t on [0, E_max] independent of a_t is at e = 0 or e = E_max.
_quad = sp.expand(_e**2 - 2 * _e * Ebar + _m2)
B_actual_expr = sp.Rational(1, 2) * sp.Max(_quad.subs(_e, 0), _quad.subs(_e, Emax))
#: Worst case using only the ranges: (E − a)² ≤ max(E_max, a_max)² for bounded arrivals, and
#: (E − a)² ≤ E² + a² for unbounded ones.
B_worst_bounded = sp.Rational(1, 2) * sp.Max(Emax, sp.Symbol("a_max", positive=True)) ** 2
B_worst_unbounded = sp.Rational(1, 2) * (Emax**2 + _m2)
B_worst_expr = {"bounded": B_worst_bounded, "unbounded": B_worst_unbounded}

# ----------------------------------------------------------------------------- the theorem
throughput_gap_expr = (Bs + Cs) / V
throughput_bound_expr = Tstar - throughput_gap_expr
queue_bound_expr = (Bs + Cs + V * (Tmax - Tslater)) / eps
_k = sp.Symbol("t", integer=True, nonnegative=True)
_E = sp.IndexedBase("E")
_A = sp.IndexedBase("a")
_Zi = sp.IndexedBase("Z")
#: Every path: Z_{t+1} ≥ Z_t + E_t − a_t, summed over t < T (telescoping, Z_0 = 0).
energy_path_expr = (
    sp.Sum(_E[_k], (_k, 0, Tn - 1)) / Tn,
    sp.Sum(_A[_k], (_k, 0, Tn - 1)) / Tn + _Zi[Tn] / Tn,
)

_f_gap = sp.lambdify((Bs, Cs, V), throughput_gap_expr, "numpy")
_f_tb = sp.lambdify((Tstar, Bs, Cs, V), throughput_bound_expr, "numpy")
_f_queue = sp.lambdify((Bs, Cs, V, Tmax, Tslater, eps), queue_bound_expr, "numpy")


# ----------------------------------------------------------------------------- evaluators
def _check_nonneg(name, value, positive=False):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        raise ValueError(f"{name} must be a finite number in {'(0' if positive else '[0'}, inf), got {value!r}")
    return v


def _payload(policy) -> str:
    return "topp" if policy is None else getattr(policy, "payload", "topp")


def _scenario(scenario):
    from gelato_jax import Scenario

    if not isinstance(scenario, Scenario):
        raise ValueError(f"scenario must be a gelato_jax.Scenario, got {type(scenario).__name__}")
    return scenario


def _rate_floor(scenario) -> float:
    from gelato_jax import channel

    return max(float(scenario.r_min), float(channel.uplink_rate(scenario, scenario.h_min)))


def _max_bits(scenario, payload: str) -> float:
    if payload == "topp":
        return float(scenario.b_id + min(scenario.V_vocab, scenario.m_max) * (scenario.b_id + scenario.b_prob))
    if payload == "full":
        return float(scenario.b_id + scenario.V_vocab * scenario.b_prob)
    if payload == "scalar":
        return float(scenario.b_id + scenario.b_prob)
    raise ValueError(f"payload must be one of ['topp', 'full', 'scalar'], got {payload!r}")


def E_max(scenario, policy=None) -> float:
    """Worst-case energy (J) of one round given the outage rule (``r ≥ r_min`` when drafting)."""
    scenario = _scenario(scenario)
    vals = {gmax: scenario.gamma_max, s["e_d"]: float(scenario.e_d), s["P_tx"]: float(scenario.P_tx),
            bmax: _max_bits(scenario, _payload(policy)), r_floor: _rate_floor(scenario)}
    return float(E_max_expr.subs(vals))


def T_max(scenario) -> float:
    """Largest per-round throughput ``N/D`` (tok/s) of any round (and of any proxy)."""
    scenario = _scenario(scenario)
    vals = {gmax: scenario.gamma_max, s["tau_d"]: float(scenario.tau_d), s["t_v1"]: float(scenario.t_v1),
            s["t_v0"]: float(scenario.t_v0), s["delta"]: float(scenario.delta)}
    return float(T_max_expr.subs(vals))


def slater_slack(scenario, policy=None) -> float:
    """``ε = Ē − E[E | γ = 0] = Ē`` (a round without drafting costs no device energy)."""
    scenario = _scenario(scenario)
    return float(slater_expr.subs({Ebar: float(scenario.E_bar), s["e_d"]: float(scenario.e_d),
                                   s["P_tx"]: float(scenario.P_tx), s["r"]: 1.0}))


def slater_throughput(scenario, policy=None, *, quantiles: int = 1024) -> float:
    """A lower bound on ``T_ε = E_h[T(0, h)]``, the throughput of the always-``γ = 0`` policy
    (``T(0, h)`` is non-decreasing in ``h``; evaluated at the left edges of quantile bins)."""
    from gelato_jax.optimum import h_quantisation, proxy_tables
    from gelato_jax.policies import StaticSD

    scenario = _scenario(scenario)
    _, _, w, lo, _, _ = h_quantisation(scenario, quantiles)
    T, _, _ = proxy_tables(scenario, StaticSD(gamma=0, payload=_payload(policy)), lo)
    return float(w @ T[:, 0])


def drift_constant(scenario, policy=None, kind: str = "actual") -> float:
    """``B = ½ sup E[(E_t − a_t)²]`` (J²).

    ``kind="actual"``: sup over any law of ``E_t`` on ``[0, E_max]`` for the scenario's arrival law
    (exact: ``½ max(E[a²], E_max² − 2E_max Ē + E[a²])``); ``kind="worst"``: from the ranges only,
    ``½ max(E_max, a_max)²`` (bounded arrivals) or ``½ (E_max² + E[a²])`` (exponential).
    """
    scenario = _scenario(scenario)
    if kind not in ("actual", "worst"):
        raise ValueError(f"kind must be 'actual' or 'worst', got {kind!r}")
    em = E_max(scenario, policy)
    eb = float(scenario.E_bar)
    law = scenario.energy_arrival
    m2 = float(arrival_second_moment[law].subs(Ebar, eb))
    if kind == "actual":
        return float(B_actual_expr.subs({_m2: m2, Emax: em, Ebar: eb}))
    amax = arrival_max[law]
    if amax is None:
        return float(B_worst_unbounded.subs({_m2: m2, Emax: em}))
    return float(B_worst_bounded.subs({Emax: em, sp.Symbol("a_max", positive=True): float(amax.subs(Ebar, eb))}))


def proxy_error_details(scenario, policy, *, quantiles: int = 256, with_table_error: bool = False) -> dict[str, Any]:
    """Measured proxy errors of ``policy`` against the exact conditional means.

    Returns ``delta_T = sup_{γ,h} (T̂ − T)`` (tok/s; may be negative: the proxy under-estimates),
    ``delta_E = sup_{γ,h} (E − Ê)`` (J; A4 requires ≤ 0 up to the table's Monte Carlo error),
    ``table_error`` (largest relative Monte Carlo standard error of the exact table, computed only
    with ``with_table_error=True``: one more compile) and ``C = V max(0, delta_T)``. The sup is
    over the non-outage quantile nodes of ``h`` and all budgets. ``proxy="exact"``: ``C = 0`` by
    construction (its residual error against the true law is ``table_error``).
    """
    from gelato_jax.optimum import h_quantisation, proxy_tables
    from gelato_jax.policies import Gelato

    scenario = _scenario(scenario)
    if not isinstance(policy, Gelato):
        raise ValueError(f"policy must be a gelato_jax.policies.Gelato, got {type(policy).__name__}")
    if policy.proxy == "ewma":
        raise ValueError("policy.proxy='ewma' has a state-dependent proxy: C is defined for 'mean' and 'exact' only")
    v = float(policy.V)
    table_err = None
    if with_table_error:
        from gelato_jax import exact_proxy

        table_err = exact_proxy.policy_table_error(scenario, policy)
    if policy.proxy == "exact":
        return {"delta_T": 0.0, "delta_E": 0.0, "C": 0.0, "table_error": table_err}
    _, nodes, _, _, _, _ = h_quantisation(scenario, quantiles)
    That, Ehat, out = proxy_tables(scenario, policy, nodes)
    T, E, _ = proxy_tables(scenario, policy.replace(proxy="exact"), nodes)
    ok = ~out
    dT = float(np.max((That - T)[ok])) if ok.any() else 0.0
    dE = float(np.max((E - Ehat)[ok])) if ok.any() else 0.0
    return {"delta_T": dT, "delta_E": dE, "C": v * max(0.0, dT), "table_error": table_err}


def proxy_error(scenario, policy, *, quantiles: int = 256) -> float:
    """The proxy-error constant ``C = V · max(0, sup_{γ,h} (T̂ − T))`` of ``policy`` at its own ``V``
    (J²·… in the units of ``B``): the controller is a ``C``-additive approximation of the exact
    drift-plus-penalty rule (given A4). ``0`` for ``proxy="exact"``."""
    return float(proxy_error_details(scenario, policy, quantiles=quantiles)["C"])


def throughput_gap_bound(B, C, V) -> float:
    """``(B + C)/V``: the largest gap ``T* − (1/T) Σ E[T_t]`` the theorem allows."""
    return float(_f_gap(_check_nonneg("B", B), _check_nonneg("C", C), _check_nonneg("V", V, positive=True)))


def throughput_bound(T_star, B, C, V) -> float:
    """``T* − (B + C)/V``."""
    return float(_f_tb(float(T_star), _check_nonneg("B", B), _check_nonneg("C", C), _check_nonneg("V", V, positive=True)))


def queue_bound(B, C, V, T_max, T_star=None, eps=None, *, T_slater=None) -> float:
    """``(B + C + V (T_max − T_ε))/ε``: bound on ``(1/T) Σ E[Z_t]`` for every ``T``.

    ``T_slater`` (``T_ε``, from ``slater_throughput``) is required: the MODEL.md form with ``T*``
    in its place is not a valid bound (see the module docstring); ``T_star`` is accepted for
    signature compatibility and only checked (``T_ε ≤ T*``).
    """
    if eps is None:
        raise ValueError("eps (the Slater slack, slater_slack(scenario)) is required")
    if T_slater is None:
        raise ValueError(
            "queue_bound needs T_slater = theory.bounds.slater_throughput(scenario, policy): "
            "(B + C + V(T_max − T*))/eps is not a valid bound (see theory.bounds docstring)"
        )
    if T_star is not None and float(T_slater) > float(T_star) * (1 + 1e-9):
        raise ValueError(f"T_slater ({T_slater}) cannot exceed T_star ({T_star})")
    if float(T_slater) > float(T_max):
        raise ValueError(f"T_slater ({T_slater}) cannot exceed T_max ({T_max})")
    return float(_f_queue(_check_nonneg("B", B), _check_nonneg("C", C), _check_nonneg("V", V, positive=True),
                          _check_nonneg("T_max", T_max), _check_nonneg("T_slater", T_slater),
                          _check_nonneg("eps", eps, positive=True)))


def energy_path_bound(arrivals, Z_T) -> float:
    """``(1/T) Σ a_t + Z_T / T`` for one path's arrivals ``(T,)`` and final queue ``Z_T``."""
    a = np.asarray(arrivals, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"arrivals must be a non-empty 1-D array, got shape {a.shape}")
    return float(a.mean() + float(Z_T) / a.size)


def counterexample_queue_bound(V: float = 100.0, E_bar: float = 1.0, rounds: int = 200_000) -> dict[str, float]:
    """Simulate the two-action example of the module docstring: returns the mean queue, the
    invalid ``T*`` form and the valid ``T_ε`` form of the bound."""
    T0, T1, E1 = 20.0, 40.0, 1.25 * E_bar
    z, tot = 0.0, 0.0
    for _ in range(rounds):
        tot += z
        g1 = V * T1 - z * E1 > V * T0
        z = max(z + (E1 if g1 else 0.0) - E_bar, 0.0)
    B = 0.5 * max(E_bar**2, (E1 - E_bar) ** 2)
    t_star = T0 + (T1 - T0) * E_bar / E1
    return {"queue_mean": tot / rounds, "bound_with_T_star": (B + V * (T1 - t_star)) / E_bar,
            "bound_with_T_slater": (B + V * (T1 - T0)) / E_bar, "T_star": t_star}


def constants(scenario, policy, *, quantiles: int = 1024) -> dict[str, Any]:
    """All constants and bounds for ``scenario`` and ``policy`` (at ``policy.V``)."""
    from gelato_jax.optimum import optimum

    scenario = _scenario(scenario)
    opt = optimum(scenario, policy, quantiles=quantiles)
    em, tm, ep = E_max(scenario, policy), T_max(scenario), slater_slack(scenario, policy)
    bw, ba = drift_constant(scenario, policy, "worst"), drift_constant(scenario, policy, "actual")
    ts = slater_throughput(scenario, policy, quantiles=quantiles)
    det = proxy_error_details(scenario, policy, with_table_error=True)
    v = float(policy.V)
    return {
        "E_max": em, "T_max": tm, "eps": ep, "B_worst": bw, "B_actual": ba, "T_slater": ts,
        "T_star": opt.T_star, "T_star_dual": opt.T_star_dual, "lambda_star": opt.lambda_star,
        "T_star_bracket": [opt.T_lower, opt.T_upper], "proxy": opt.proxy, "V": v,
        "delta_T": det["delta_T"], "delta_E": det["delta_E"], "C": det["C"], "exact_table_rel_se": det["table_error"],
        "throughput_bound": throughput_bound(opt.T_star, ba, det["C"], v),
        "queue_bound": queue_bound(ba, det["C"], v, tm, opt.T_star, ep, T_slater=ts),
    }
