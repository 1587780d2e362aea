"""The theory constants a configuration needs, gathered from ``gelato_jax.optimum`` and
``theory.bounds`` (written by the theory issue). Anything missing is recorded with its reason, so
the checks that need it report "not run" instead of passing.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any


@dataclasses.dataclass
class TheoryConstants:
    T_star: float | None = None  # LP optimum
    T_star_dual: float | None = None  # Lagrangian dual optimum
    lambda_star: float | None = None  # optimal energy price (tok/s per J)
    T_star_tol: float | None = None  # uncertainty of T* for the continuous law of h: numerical (exact integration, ~1e-12) + the exact-proxy table's Monte Carlo floor
    solver_tol: float | None = None  # bound on |T*_primal − T*_dual| (exact method; the LP's solver tolerances when quantised)
    T_star_method: str | None = None  # "exact" (integration between switching points) or "quantised" (LP on bins, fallback)
    lambda_star_precision: float | None = None  # bound on |λ* − λ*_true| (exact method)
    kappa: float | None = None  # −de/dλ at λ* (exact method)
    proxy_mc_error: float | None = None  # proxy="exact": Monte Carlo floor of T* from the table's sample (one-sided 1 − 1e-3 t-bound over its 16 chunk tables)
    B: float | None = None  # drift constant B = ½ sup E[(E_t − a_t)²] (theory kind="actual": sup over laws on [0, E_max])
    B_worst: float | None = None  # cruder range bound (kind="worst"), reported
    delta_T: float | None = None  # sup_{γ,h} (T̂ − T): proxy over-estimate; C(V) = V·max(0, delta_T)
    T_slater: float | None = None  # T_ε = E_h[T(0, h)], throughput of the Slater policy (queue bound)
    E_max: float | None = None
    T_max: float | None = None
    eps: float | None = None  # Slater slack
    missing: dict[str, str] = dataclasses.field(default_factory=dict)

    def need(self, *names: str) -> str | None:
        """``None`` when every named constant is available, else the reason for the first missing."""
        for n in names:
            if getattr(self, n) is None:
                return f"{n} unavailable: {self.missing.get(n, 'not computed')}"
        return None

    def C(self, V):
        """Proxy-error constant ``C = V · max(0, δ_T)`` at ``V`` (theory.bounds.proxy_error)."""
        import numpy as np

        return np.asarray(V, np.float64) * max(0.0, self.delta_T)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def _f(x) -> float:
    import numpy as np

    v = float(np.asarray(x))
    if not math.isfinite(v):
        raise ValueError(f"non-finite value {v}")
    return v


def _call(fn, *args, **kw):
    """Call a theory evaluator with ``(scenario, policy)``; fall back to ``(scenario)``."""
    try:
        return fn(*args, **kw)
    except TypeError:
        if len(args) > 1:
            return fn(args[0], **kw)
        raise


def theory_constants(scenario, policy, *, quantiles: int = 2048) -> TheoryConstants:
    th = TheoryConstants()
    try:
        from gelato_jax.optimum import optimum
    except ImportError as exc:
        for n in ("T_star", "T_star_dual", "lambda_star", "T_star_tol"):
            th.missing[n] = f"gelato_jax.optimum not importable ({exc})"
    else:
        try:
            # the exact integration (docs/model.md §8.3, docs/optimum.md); the quantised LP only if it fails
            try:
                opt = optimum(scenario, policy, method="exact")
            except Exception as exc:  # noqa: BLE001
                opt = optimum(scenario, policy, method="quantised", quantiles=quantiles)
                th.missing["T_star_method"] = f"exact method failed ({type(exc).__name__}: {exc}); quantised LP with {quantiles} bins used"
            th.T_star = _f(opt.T_star)
            th.T_star_dual = _f(getattr(opt, "T_star_dual"))
            th.lambda_star = _f(getattr(opt, "lambda_star"))
            th.T_star_method = getattr(opt, "method", "quantised")
            if getattr(opt, "lambda_star_precision", None) is not None:
                th.lambda_star_precision = _f(opt.lambda_star_precision)
            if getattr(opt, "kappa", None) is not None:
                th.kappa = _f(opt.kappa)
            mc = getattr(opt, "proxy_mc_error", None)
            th.proxy_mc_error = None if mc is None else _f(mc)
            # exact: [T_lower, T_upper] = T* ± numerical error; quantised: the bracket of the
            # continuous optimum; plus the solver tolerance and the exact-proxy table's MC floor
            lo, hi = getattr(opt, "T_lower", th.T_star), getattr(opt, "T_upper", th.T_star)
            th.solver_tol = abs(_f(getattr(opt, "tolerance", 0.0)))
            th.T_star_tol = (max(_f(hi) - th.T_star, th.T_star - _f(lo), 0.0) + th.solver_tol
                             + (th.proxy_mc_error or 0.0))
        except Exception as exc:  # noqa: BLE001 - reported as "not run", never a pass
            for n in ("T_star", "T_star_dual", "lambda_star", "T_star_tol"):
                if getattr(th, n) is None:
                    th.missing[n] = f"optimum() failed: {type(exc).__name__}: {exc}"
    try:
        from theory import bounds
    except ImportError as exc:
        for n in ("B", "B_worst", "delta_T", "E_max", "T_max", "eps", "T_slater"):
            th.missing[n] = f"theory.bounds not importable ({exc})"
        return th
    getters = {
        "B": lambda: bounds.drift_constant(scenario, policy, kind="actual"),
        "B_worst": lambda: bounds.drift_constant(scenario, policy, kind="worst"),
        "delta_T": lambda: bounds.proxy_error_details(scenario, policy)["delta_T"],
        "E_max": lambda: _call(bounds.E_max, scenario, policy),
        "T_max": lambda: _call(bounds.T_max, scenario, policy),
        "eps": lambda: _call(bounds.slater_slack, scenario, policy),
        "T_slater": lambda: bounds.slater_throughput(scenario, policy, quantiles=quantiles),
    }
    for name, get in getters.items():
        try:
            setattr(th, name, _f(get()))
        except Exception as exc:  # noqa: BLE001
            th.missing[name] = f"theory.bounds failed: {type(exc).__name__}: {exc}"
    return th
