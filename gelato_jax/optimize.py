r"""Best exit thresholds ``(H_th, Θ_th)`` and ``V`` for a scenario (``gelato optimize``).

The inner loop's leaky bucket has two thresholds that docs/model.md §6 sets by hand (1.5, 1.0 nats);
the outer loop's ``V`` trades throughput for queue. This module answers: which thresholds
maximise ``T*``, the best long-term throughput within the energy budget of the exit-aware
per-round problem (docs/model.md §8.3 with ``proxy="exact"``, the problem ``Gelato(proxy="exact")``
solves), and which ``V`` meets a queue or settling-time limit.

Method.

1. ``T*(H_th, Θ_th)`` is a smooth JAX function (``gelato_jax.exit_law``: the exact-proxy table
   by a continuous local change of variables of the table's own entropy sample; ``T*`` on an
   equal-probability quantisation of the fading law, gradients by the envelope theorem).
   The optimiser works on one fixed sample (``samples`` entropy vectors, common to every
   threshold: the surface is then smooth and differences between thresholds are precise).
2. A grid over the box (``grid × grid`` points, one compiled program: ``lax.map`` over batches
   of vmapped points) and projected Adam (``optax``) from several starts (the best grid point,
   the defaults, and quasi-random points; one compiled program vmapped over starts, forward-mode
   gradients). The answer is the best point seen, so its ``T*`` is at least the best grid value
   of the same function.
3. Report: ``T_star`` and ``T_star_default`` by ``optimum(method="exact")`` on the controller's
   own table (``Gelato(proxy="exact", H_th, Θ_th)``: what a user deploying the answer gets), and
   the gain with a 95 % interval from ``replicates`` independent entropy samples (the spread of
   the paired gain across replicates, scaled to the table's ``EXACT_SAMPLES``).
4. ``V``: the queue settles near ``Vλ*`` (docs/model.md §8.8) within about ``Vλ*/ε`` rounds (it grows by
   at most ``ε = Ē − E[E | γ = 0]`` per round below its level); ``--queue-limit Z`` gives the
   largest ``V`` with ``Vλ* ≤ Z``, ``--settle-rounds N`` the largest with ``Vλ*/ε ≤ N``.

``objective="time_average"`` (docs/model.md §11) maximises ``ΣN/ΣD`` under the power budget ``P_bar``
instead: the same estimator gives the renewal means (``exit_law.means``), ``T*`` is the
linear-fractional optimum (Dinkelbach, ``exit_law.t_star_time_average``; reported by
``renewal.time_average_optimum``), the queue ``Z_{t+1} = max(Z_t + E_t − P̄D_t, 0)`` settles near
``Vλ*`` and ``ε = P̄·D_min``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Any

import numpy as np

__all__ = ["OptimizeResult", "optimize", "choose_V", "threshold_objective", "grid_values", "ascend", "atlas", "atlas_figure",
           "contour_figure", "add_parsers", "DEFAULT_BOX"]

#: default search box: ``H_th ∈ [0.25, 4]``, ``Θ_th ∈ [0, 4]`` nats
DEFAULT_BOX = ((0.25, 4.0), (0.0, 4.0))
OBJECTIVES = ("per_round", "time_average")


# ----------------------------------------------------------------------------- the objective
def threshold_objective(scenario, *, payload: str, edges, quant, samples: int, chunk: int = 2048, seed=None,
                        objective: str = "per_round", with_price: bool = False):
    """``f(x) = T*(H_th = x[0], Θ_th = x[1])`` (tok/s), a pure JAX function of ``x (2,)``.

    ``objective="per_round"``: ``max E[N/D]`` s.t. ``E[E] ≤ Ē`` (``exit_law.table``, ``t_star``);
    ``"time_average"``: ``max E[N]/E[D]`` s.t. ``E[E]/E[D] ≤ P̄`` (docs/model.md §11; ``exit_law.means``,
    ``t_star_time_average``). ``edges``: ``exit_law.level_edges``; ``quant``:
    ``exit_law.quantisation``; ``samples``/``seed``: the entropy sample (``seed=None``: the
    exact-proxy table's own sample, its first ``samples``). ``with_price``: return ``(T*, λ*)``.
    Call under ``jax.enable_x64(True)``."""
    from . import exit_law

    def f(x):
        kw = dict(payload=payload, H_th=x[0], Theta_th=x[1], edges=edges, samples=samples, chunk=min(chunk, samples),
                  seed=seed)
        if objective == "time_average":
            tab = exit_law.means(scenario, **kw)
            N, D, E = exit_law.renewal_on_nodes(scenario, payload, tab, quant.nodes)
            out = exit_law.t_star_time_average(N, D, E, quant, scenario.P_bar)
        else:
            tab = exit_law.table(scenario, **kw)
            T, E = exit_law.proxy_on_nodes(scenario, payload, tab, quant.nodes)
            out = exit_law.t_star(T, E, quant, scenario.E_bar)
        return (out[0], out[1]) if with_price else out[0]

    return f


def _value_and_grad(f):
    """``x ↦ (f(x), ∇f(x))`` by forward mode (two tangents in one vmapped pass)."""
    import jax
    import jax.numpy as jnp

    def vg(x):
        prim, tan = jax.vmap(lambda v: jax.jvp(f, (x,), (v,)))(jnp.eye(x.shape[0], dtype=x.dtype))
        return prim[0], tan

    return vg


def grid_values(f, H, Theta, batch: int = 4):
    """``f`` on the grid ``H × Theta`` (arrays ``(n_H,)``, ``(n_Θ,)``) → ``(n_H, n_Θ)``: one
    compiled program, ``lax.map`` over batches of ``batch`` vmapped points."""
    import jax
    import jax.numpy as jnp

    HH, TT = jnp.meshgrid(jnp.asarray(H), jnp.asarray(Theta), indexing="ij")
    pts = jnp.stack([HH.ravel(), TT.ravel()], axis=1)
    vals = jax.lax.map(f, pts, batch_size=batch)
    return vals.reshape(HH.shape)


def ascend(f, starts, box, *, steps: int = 20, lr: float = 0.2):
    """Projected Adam ascent of ``f`` from each row of ``starts (S, 2)`` inside ``box``.

    Returns ``(x_best (S, 2), f_best (S,), path (S, steps+1, 2), values (S, steps+1))``: the best
    point seen on each trajectory (so ``f_best ≥ f(start)``) and the trajectories. One compiled
    program: ``lax.scan`` over steps, ``vmap`` over starts. The learning rate decays by a cosine
    schedule from ``lr`` to ``lr/20`` (nats per step; Adam normalises the gradient)."""
    import jax
    import jax.numpy as jnp
    import optax

    lo = jnp.asarray([box[0][0], box[1][0]])
    hi = jnp.asarray([box[0][1], box[1][1]])
    opt = optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=0.05))
    vg = _value_and_grad(f)

    def run(x0):
        def step(carry, _):
            x, state, xb, fb = carry
            v, g = vg(x)
            better = v > fb
            xb, fb = jnp.where(better, x, xb), jnp.where(better, v, fb)
            upd, state = opt.update(-g, state, x)  # ascent: minimise −f
            x_new = jnp.clip(optax.apply_updates(x, upd), lo, hi)
            return (x_new, state, xb, fb), (x, v)

        init = (x0, opt.init(x0), x0, -jnp.inf)
        (x, _, xb, fb), (path, vals) = jax.lax.scan(step, init, None, length=steps)
        v_last = f(x)
        better = v_last > fb
        xb, fb = jnp.where(better, x, xb), jnp.where(better, v_last, fb)
        return xb, fb, jnp.concatenate([path, x[None]]), jnp.concatenate([vals, v_last[None]])

    return jax.vmap(run)(jnp.asarray(starts))


# ----------------------------------------------------------------------------- V
def choose_V(lambda_star: float, eps: float, *, queue_limit: float | None = None,
             settle_rounds: float | None = None, V_default: float = 0.1) -> dict[str, Any]:
    """The largest ``V`` meeting the limit: ``Vλ* ≤ queue_limit`` or ``Vλ*/ε ≤ settle_rounds``.

    With neither limit, ``V_default`` is kept. Returns ``{"V", "rule", "predicted_queue",
    "settle_rounds"}`` (predicted queue ``Vλ*`` in J, settling time ``Vλ*/ε`` in rounds). When the
    budget does not bind (``λ* = 0``) the queue stays near 0 for any ``V``: ``V_default`` is kept and
    the rule says so."""
    if queue_limit is not None and settle_rounds is not None:
        raise ValueError("give at most one of queue_limit and settle_rounds")
    for name, v in (("queue_limit", queue_limit), ("settle_rounds", settle_rounds)):
        if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a finite number in (0, inf), got {v!r}")
    lam = float(lambda_star)
    if lam <= 0:
        V, rule = float(V_default), "budget does not bind (λ* = 0): any V keeps the queue near 0; V kept"
    elif queue_limit is not None:
        V, rule = float(queue_limit) / lam, f"largest V with V·λ* ≤ queue limit {queue_limit:g} J"
    elif settle_rounds is not None:
        V, rule = float(settle_rounds) * eps / lam, f"largest V with V·λ*/ε ≤ {settle_rounds:g} rounds"
    else:
        V, rule = float(V_default), "no limit given: the policy's V"
    return {"V": V, "rule": rule, "predicted_queue": V * lam, "settle_rounds": V * lam / eps if eps > 0 else float("inf")}


# ----------------------------------------------------------------------------- result
@dataclasses.dataclass
class OptimizeResult:
    """Outcome of ``optimize`` (``summary()`` is the JSON record; keys ``H_th``, ``Theta_th``, ``V``,
    ``T_star``, ``T_star_default``, ``gain`` as the CLI prints them)."""

    H_th: float
    Theta_th: float
    V: float
    T_star: float
    T_star_default: float
    gain: float
    gain_ci: tuple
    gain_replicates: list
    lambda_star: float
    lambda_star_default: float
    eps: float
    v_choice: dict
    defaults: tuple
    box: tuple
    grid_H: np.ndarray
    grid_Theta: np.ndarray
    grid_T: np.ndarray
    grid_best: tuple
    surface_opt: float
    surface_default: float
    starts: np.ndarray
    paths: np.ndarray
    path_values: np.ndarray
    objective: str
    payload: str
    samples: int
    quantiles: int
    seconds: float
    T_star_mc_error: float | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "H_th": self.H_th, "Theta_th": self.Theta_th, "V": self.V, "T_star": self.T_star,
            "T_star_default": self.T_star_default, "gain": self.gain,
            "gain_ci": list(self.gain_ci), "gain_pct": 100 * self.gain / self.T_star_default,
            "gain_replicates": self.gain_replicates,
            "lambda_star": self.lambda_star, "lambda_star_default": self.lambda_star_default, "epsilon": self.eps,
            "V_choice": self.v_choice, "defaults": {"H_th": self.defaults[0], "Theta_th": self.defaults[1]},
            "box": {"H_th": list(self.box[0]), "Theta_th": list(self.box[1])},
            "grid": {"H_th": [float(x) for x in self.grid_H], "Theta_th": [float(x) for x in self.grid_Theta],
                     "T_star": np.asarray(self.grid_T).tolist(), "best": list(self.grid_best)},
            "surface": {"optimum": self.surface_opt, "default": self.surface_default,
                        "grid_max": float(np.max(self.grid_T)), "samples": self.samples, "quantiles": self.quantiles},
            "starts": np.asarray(self.starts).tolist(), "objective": self.objective, "payload": self.payload,
            "proxy": "exact", "T_star_mc_error": self.T_star_mc_error, "seconds": self.seconds,
        }


def _check_box(box):
    try:
        (h0, h1), (t0, t1) = box
        h0, h1, t0, t1 = (float(v) for v in (h0, h1, t0, t1))
    except (TypeError, ValueError):
        raise ValueError(f"box must be ((H_lo, H_hi), (Theta_lo, Theta_hi)), got {box!r}") from None
    if not (all(math.isfinite(v) for v in (h0, h1, t0, t1)) and 0 < h0 < h1 and 0 <= t0 < t1):
        raise ValueError(f"box must have 0 < H_lo < H_hi and 0 ≤ Theta_lo < Theta_hi (finite), got {box!r}")
    return (h0, h1), (t0, t1)


def _starts(box, defaults, grid_best, n: int):
    """``n`` starts: the best grid point, the defaults (clipped into the box), then a Halton
    sequence (bases 2, 3) over the box."""
    (h0, h1), (t0, t1) = box
    pts = [grid_best, (min(max(defaults[0], h0), h1), min(max(defaults[1], t0), t1))]

    def halton(i, b):
        f, r = 1.0, 0.0
        while i > 0:
            f /= b
            r += f * (i % b)
            i //= b
        return r

    i = 1
    while len(pts) < n:
        pts.append((h0 + (h1 - h0) * halton(i, 2), t0 + (t1 - t0) * halton(i, 3)))
        i += 1
    return np.asarray(pts[:n], np.float64)


def optimize(scenario, policy=None, *, objective: str | None = None, box=DEFAULT_BOX, grid: int = 9,
             starts: int = 4, steps: int = 20, samples: int = 16384, quantiles: int = 2048, replicates: int = 4,
             replicate_samples: int = 16384, queue_limit: float | None = None, settle_rounds: float | None = None,
             exact: bool = True, progress=None) -> OptimizeResult:
    """Best ``(H_th, Θ_th)`` for ``scenario`` and the ``V`` that meets the limit (see the module
    docstring).

    Args:
      scenario: the ``Scenario`` (i.i.d. rounds; Rayleigh, Gauss–Markov or trace fading).
      policy: a ``Gelato`` with ``exit="bucket"`` (default ``Gelato()``); its ``payload`` and ``V``
        (kept when no limit is given) are used, and its thresholds are the defaults compared with.
        The optimised problem is the exact-proxy one (``proxy="exact"``), whatever its ``proxy``.
      objective: ``"per_round"`` (docs/model.md §8.3: ``E[N/D]`` under ``E_bar`` J/round) or
        ``"time_average"`` (§11: ``ΣN/ΣD`` under ``P_bar`` W); default: ``scenario.objective``.
      box: ``((H_lo, H_hi), (Θ_lo, Θ_hi))`` nats.
      grid: points per axis of the confirming grid (≥ 2).
      starts, steps: gradient starts (≥ 1) and Adam steps per start (≥ 1).
      samples: entropy vectors of the optimiser's fixed sample (a multiple of 2048).
      quantiles: equal-probability bins of the fading law for the optimiser's ``T*``.
      replicates, replicate_samples: independent samples for the gain's interval (≥ 2).
      queue_limit (J) / settle_rounds: the limit ``V`` must meet (at most one).
      exact: compute ``T_star``/``T_star_default`` by ``optimum(method="exact")`` on the controller's
        table (slow: ~30 s each on 2 CPU cores); ``False`` reports the optimiser's surface values.
      progress: callable ``msg -> None`` for progress lines (``None``: silent).
    """
    import jax
    import jax.numpy as jnp

    from . import exit_law
    from .policies import Gelato
    from .scenario import Scenario

    t_start = time.perf_counter()
    say = progress or (lambda msg: None)
    if not isinstance(scenario, Scenario):
        raise ValueError(f"scenario must be a gelato_jax.Scenario, got {type(scenario).__name__}")
    objective = scenario.objective if objective is None else objective
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {list(OBJECTIVES)}, got {objective!r}")
    if objective != scenario.objective:
        scenario = scenario.replace(objective=objective)
    policy = Gelato() if policy is None else policy
    if not isinstance(policy, Gelato):
        raise ValueError(f"policy must be a Gelato (the thresholds are its leaky bucket's), got {type(policy).__name__}")
    if policy.exit != "bucket":
        raise ValueError(f"Gelato.exit must be 'bucket' for threshold optimisation (no thresholds with exit={policy.exit!r})")
    for name, v, lo in (("grid", grid, 2), ("starts", starts, 1), ("steps", steps, 1), ("replicates", replicates, 2),
                        ("quantiles", quantiles, 8)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be an integer ≥ {lo}, got {v!r}")
    for name, v in (("samples", samples), ("replicate_samples", replicate_samples)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 2048 or v % 2048:
            raise ValueError(f"{name} must be a positive multiple of 2048, got {v!r}")
    box = _check_box(box)
    if np.ndim(scenario.E_bar) != 0:
        raise ValueError("optimize needs a single scenario (scalar leaves), not a stacked batch")
    scenario.check_iid_rounds("gelato optimize (T* of the exit-aware problem, docs/model.md §8.3)")
    if float(scenario.rho_H) != 0.0:
        raise ValueError("Scenario.rho_H must be 0 for gelato optimize (the exact-proxy table assumes i.i.d. entropies)")
    choose_V(1.0, 1.0, queue_limit=queue_limit, settle_rounds=settle_rounds)  # validate the limits early
    base = policy.replace(proxy="exact")
    base.validate(scenario)
    payload = base.payload
    defaults = (float(base.H_th), float(base.Theta_th))
    reach = max(box[0][1] + box[1][1], defaults[0] + defaults[1])
    edges = exit_law.level_edges(scenario, payload, reach)
    quant = exit_law.quantisation(scenario, quantiles)

    with jax.enable_x64(True):
        f = threshold_objective(scenario, payload=payload, edges=edges, quant=quant, samples=samples, objective=objective)
        H = np.linspace(box[0][0], box[0][1], grid)
        Th = np.linspace(box[1][0], box[1][1], grid)
        say(f"grid {grid}×{grid} over H_th ∈ {box[0]}, Θ_th ∈ {box[1]} ({samples} entropy vectors)")
        vals = np.asarray(jax.jit(lambda: grid_values(f, H, Th))(), np.float64)
        i, j = np.unravel_index(int(np.nanargmax(vals)), vals.shape)
        g_best = (float(H[i]), float(Th[j]))
        x0 = _starts(box, defaults, g_best, starts)
        say(f"projected Adam from {starts} starts, {steps} steps")
        xb, fb, paths, pvals = jax.jit(lambda s: ascend(f, s, box, steps=steps))(jnp.asarray(x0))
        xb, fb = np.asarray(xb), np.asarray(fb)
        k = int(np.nanargmax(fb))
        x_opt, f_opt = xb[k], float(fb[k])
        if f_opt < vals[i, j]:  # cannot happen (start 0 is the grid best), kept as a guard
            x_opt, f_opt = np.asarray(g_best), float(vals[i, j])
        f_def = float(jax.jit(f)(jnp.asarray(defaults)))

        say(f"gain interval: {replicates} independent samples of {replicate_samples}")
        reps = []
        for r in range(replicates):
            fr = threshold_objective(scenario, payload=payload, edges=edges, quant=quant, samples=replicate_samples,
                                     seed=1_000_003 + r, objective=objective)
            both = jax.jit(lambda xs: jax.lax.map(fr, xs))(jnp.asarray([x_opt, defaults]))
            reps.append(float(both[0] - both[1]))

    from scipy import stats
    from theory import bounds
    from . import exact_proxy

    from .optimum import optimum

    if objective == "time_average":  # Slater slack per round: a γ = 0 round costs no energy and lasts ≥ D_min
        from theory import renewal as th_renewal

        eps = float(scenario.P_bar) * th_renewal.D_min(scenario)
    else:
        eps = bounds.slater_slack(scenario)
    opt_policy = base.replace(H_th=float(x_opt[0]), Theta_th=float(x_opt[1]))
    mc = None
    if exact and objective == "time_average":
        from .renewal import time_average_optimum

        say("T* at the optimum and the defaults: renewal.time_average_optimum on the controller's own tables")
        o_opt, o_def = time_average_optimum(scenario, opt_policy), time_average_optimum(scenario, base)
        T_opt, T_def, lam_opt, lam_def = o_opt.T_star, o_def.T_star, o_opt.lambda_star, o_def.lambda_star
    elif exact:
        say("T* at the optimum and the defaults: optimum(method='exact') on the controller's own tables")
        o_opt = optimum(scenario, opt_policy, method="exact")
        o_def = optimum(scenario, base, method="exact")
        T_opt, T_def = o_opt.T_star, o_def.T_star
        lam_opt, lam_def = o_opt.lambda_star, o_def.lambda_star
        mc = o_opt.proxy_mc_error
    else:
        T_opt, T_def = f_opt, f_def
        with jax.enable_x64(True):
            fp = threshold_objective(scenario, payload=payload, edges=edges, quant=quant, samples=samples,
                                     objective=objective, with_price=True)
            lam_opt = float(jax.jit(fp)(jnp.asarray(x_opt))[1])
            lam_def = float(jax.jit(fp)(jnp.asarray(defaults))[1])
    gain = T_opt - T_def
    sd = float(np.std(reps, ddof=1))
    # the paired gain's spread at replicate_samples, scaled to the table actually reported
    n_tab = exact_proxy.EXACT_SAMPLES if exact else samples
    half = float(stats.t.ppf(0.975, replicates - 1)) * sd * math.sqrt(replicate_samples / n_tab)
    vch = choose_V(lam_opt, eps, queue_limit=queue_limit, settle_rounds=settle_rounds, V_default=float(policy.V))
    return OptimizeResult(
        H_th=float(x_opt[0]), Theta_th=float(x_opt[1]), V=vch["V"], T_star=float(T_opt), T_star_default=float(T_def),
        gain=float(gain), gain_ci=(gain - half, gain + half), gain_replicates=reps, lambda_star=float(lam_opt),
        lambda_star_default=float(lam_def), eps=float(eps), v_choice=vch, defaults=defaults, box=box, grid_H=H,
        grid_Theta=Th, grid_T=vals, grid_best=g_best, surface_opt=f_opt, surface_default=f_def, starts=x0,
        paths=np.asarray(paths), path_values=np.asarray(pvals), objective=objective, payload=payload, samples=samples,
        quantiles=quantiles, seconds=time.perf_counter() - t_start, T_star_mc_error=mc,
    )


# ----------------------------------------------------------------------------- figure
def contour_figure(res: OptimizeResult, path: str) -> str:
    """Contour plot of the optimiser's ``T*`` surface over the box with the defaults, the grid best
    and the optimum marked (and the gradient paths); writes ``path`` (PNG) and returns it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.2, 4.8))
    HH, TT = np.meshgrid(res.grid_H, res.grid_Theta, indexing="ij")
    top = float(np.nanmax(res.grid_T))
    floor = max(float(np.nanmin(res.grid_T)), min(res.surface_default, top) - 0.5 * max(top - res.surface_default, 0.2))
    levels = np.linspace(floor, top, 21)  # the region around the defaults and the optimum; lower values in one colour
    cs = ax.contourf(HH, TT, np.maximum(res.grid_T, floor), levels=levels, cmap="viridis")
    fig.colorbar(cs, ax=ax, label="T* (tok/s), exit-aware per-round problem")
    for p in res.paths:
        ax.plot(p[:, 0], p[:, 1], "-", color="w", lw=0.8, alpha=0.7)
    ax.plot(*res.defaults, "o", ms=9, mfc="none", mec="r", mew=2, label=f"default T* = {res.T_star_default:.3f}")
    ax.plot(res.H_th, res.Theta_th, "*", ms=14, color="r",
            label=f"optimum T* = {res.T_star:.3f} (+{100 * res.gain / res.T_star_default:.2f} %)")
    ax.set_xlabel("H_th (nats)")
    ax.set_ylabel("Θ_th (nats)")
    ax.set_title("gelato optimize: T*(H_th, Θ_th)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- CLI
def _range(text: str):
    try:
        lo, hi = (float(t) for t in text.split(","))
    except ValueError:
        import argparse

        raise argparse.ArgumentTypeError(f"expected LO,HI (two numbers), got {text!r}") from None
    return lo, hi


def _positive_float(text: str) -> float:
    import argparse

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def cmd_optimize(args) -> int:
    import sys

    from .cli_inputs import explicit_policy_fields, scenario_and_policy_from_args

    scenario, policy, _ = scenario_and_policy_from_args(args, allowed_policies=("gelato",))
    # the optimised problem is the exact-proxy one: these policy fields would be ignored, so refuse them
    unused = sorted(explicit_policy_fields(args, ("proxy", "ewma_beta", "ratio", "ratio_nodes")) - (
        {"proxy"} if policy.proxy == "exact" else set()))
    if unused:
        raise ValueError(f"{', '.join(unused)}: gelato optimize would ignore the given value (it optimises the "
                         "exact-proxy problem, proxy='exact', whatever the policy's proxy)")
    box = _check_box((args.h_range, args.theta_range))
    say = None if (args.json or args.quiet) else (lambda m: print(f"[optimize] {m}", file=sys.stderr))
    res = optimize(scenario, policy, objective=args.objective, box=box, grid=args.grid, starts=args.starts,
                   steps=args.steps, samples=args.samples, replicates=args.replicates,
                   replicate_samples=args.samples, queue_limit=args.queue_limit, settle_rounds=args.settle_rounds,
                   exact=not args.fast, progress=say)
    rec = res.summary()
    rec["command"] = "optimize"
    rec["argv"] = getattr(args, "_argv", None)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        fig = contour_figure(res, os.path.join(args.out, "optimize_contour.png"))
        rec["figure"] = fig
        with open(os.path.join(args.out, "optimize.json"), "w") as fh:
            json.dump(rec, fh, indent=2, default=float)
    if args.json:
        print(json.dumps(rec, indent=2, default=float))
        return 0
    lo, hi = res.gain_ci
    what = "E[N/D] s.t. E[E] ≤ E_bar" if res.objective == "per_round" else "ΣN/ΣD s.t. ΣE/ΣD ≤ P_bar"
    print(f"objective      {res.objective}: {what} (exact means under the bucket, payload {res.payload})")
    print(f"optimum        H_th = {res.H_th:.3f}, Θ_th = {res.Theta_th:.3f} nats")
    print(f"T*             {res.T_star:.4f} tok/s   (defaults H_th = {res.defaults[0]:g}, Θ_th = {res.defaults[1]:g}: "
          f"{res.T_star_default:.4f})")
    print(f"gain           {res.gain:+.4f} tok/s ({100 * res.gain / res.T_star_default:+.2f} %), 95 % CI "
          f"[{lo:+.4f}, {hi:+.4f}]")
    print(f"grid max       {float(np.max(res.grid_T)):.4f} at H_th = {res.grid_best[0]:.3f}, Θ_th = {res.grid_best[1]:.3f} "
          f"(optimiser surface at the optimum: {res.surface_opt:.4f})")
    v = res.v_choice
    print(f"V              {res.V:.4g} ({v['rule']}); λ* = {res.lambda_star:.4g} tok/s/J, predicted queue "
          f"{v['predicted_queue']:.3g} J, settling ≈ {v['settle_rounds']:.3g} rounds")
    obj = " --set objective=time_average" if res.objective == "time_average" else ""
    print(f"use            --set proxy=exact --set H_th={res.H_th:.3f} --set Theta_th={res.Theta_th:.3f} --set V={res.V:.4g}{obj}")
    if args.out:
        print(f"wrote          {os.path.join(args.out, 'optimize.json')}, {rec['figure']}")
    return 0


def add_parsers(subparsers) -> None:
    """Register ``gelato optimize``."""
    from .cli_inputs import add_model_args, positive_int

    p = subparsers.add_parser(
        "optimize", help="best exit thresholds (H_th, Θ_th) and V for a scenario",
        description="Maximise T* of the exit-aware per-round problem over the leaky bucket's (H_th, Θ_th) by gradient "
                    "(optax, several starts) confirmed by a grid; choose the largest V meeting a queue or settling limit.")
    add_model_args(p, policy=False)
    p.add_argument("--objective", choices=OBJECTIVES, default=None,
                   help="per_round: E[N/D] under E_bar J/round (docs/model.md §8.3); time_average: ΣN/ΣD under P_bar W (§11); "
                        "default: the scenario's objective")
    lim = p.add_mutually_exclusive_group()
    lim.add_argument("--queue-limit", type=_positive_float, metavar="Z", help="largest V with predicted queue V·λ* ≤ Z (J)")
    lim.add_argument("--settle-rounds", type=_positive_float, metavar="N", help="largest V with settling time V·λ*/ε ≤ N rounds")
    p.add_argument("--h-range", type=_range, default=DEFAULT_BOX[0], metavar="LO,HI", help="H_th box (default 0.25,4)")
    p.add_argument("--theta-range", type=_range, default=DEFAULT_BOX[1], metavar="LO,HI", help="Θ_th box (default 0,4)")
    p.add_argument("--grid", type=positive_int, default=9, help="grid points per axis (default 9)")
    p.add_argument("--starts", type=positive_int, default=4, help="gradient starts (default 4)")
    p.add_argument("--steps", type=positive_int, default=20, help="Adam steps per start (default 20)")
    p.add_argument("--samples", type=positive_int, default=16384, help="entropy vectors of the optimiser's sample (multiple of 2048)")
    p.add_argument("--replicates", type=positive_int, default=4, help="independent samples for the gain's CI (default 4)")
    p.add_argument("--fast", action="store_true", help="report the optimiser's surface values instead of optimum(method='exact')")
    p.add_argument("--out", metavar="DIR", help="write optimize.json and optimize_contour.png here")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_optimize)


# ----------------------------------------------------------------------------- atlas (README figure)
def atlas(scenario=None, policy=None, *, W=(0.5e6, 1e6, 2e6, 5e6), delta=(0.02, 0.14), box=DEFAULT_BOX, grid: int = 6,
          steps: int = 10, samples: int = 4096, quantiles: int = 1024, replicates: int = 2) -> dict[str, Any]:
    """Optimal thresholds and the gain over the defaults across bandwidth ``W`` and latency ``δ``.

    One compiled program over the ``len(W) × len(δ)`` scenarios (``vmap`` over stacked scenarios):
    per scenario a ``grid × grid`` search, projected Adam from the grid best (``steps``), the
    defaults' value, and the paired gain on ``replicates`` independent samples (its spread is the
    gain's Monte Carlo error at ``samples`` vectors). Values are the optimiser's surface (``samples``
    common entropy vectors, ``quantiles`` fading bins), per-round objective. Returns a JSON-ready
    dict with ``(len(W), len(δ))`` arrays."""
    import jax
    import jax.numpy as jnp

    from . import exit_law
    from .policies import Gelato
    from .scenario import Scenario

    base = scenario if scenario is not None else Scenario()
    pol = (policy if policy is not None else Gelato()).replace(proxy="exact")
    box = _check_box(box)
    defaults = (float(pol.H_th), float(pol.Theta_th))
    scens = [base.replace(W=float(w), delta=float(d)) for w in W for d in delta]
    for s in scens:
        pol.validate(s)
        s.check_iid_rounds("optimize.atlas")
    quants = [exit_law.quantisation(s, quantiles) for s in scens]
    n = max(len(q.nodes) for q in quants)
    pad = lambda x, v: np.concatenate([x, np.full(n - len(x), v)])  # noqa: E731 (zero-weight padding bins)
    qn = np.stack([pad(q.nodes, 1.0) for q in quants])
    qw = np.stack([pad(q.weights, 0.0) for q in quants])
    qo = np.stack([pad(q.outage.astype(float), 0.0) for q in quants]).astype(bool)
    edges = exit_law.level_edges(base, pol.payload, max(box[0][1] + box[1][1], sum(defaults)))
    H = np.linspace(box[0][0], box[0][1], grid)
    Th = np.linspace(box[1][0], box[1][1], grid)
    t0 = time.perf_counter()
    with jax.enable_x64(True):
        stacked = jax.tree.map(lambda *x: jnp.stack([jnp.asarray(v) for v in x]), *scens)

        def one(s, nodes, w, out):
            quant = exit_law.Quantisation(nodes, w, out)
            f = threshold_objective(s, payload=pol.payload, edges=edges, quant=quant, samples=samples)
            vals = grid_values(f, H, Th)
            k = jnp.argmax(vals)
            x0 = jnp.stack([jnp.asarray(H)[k // grid], jnp.asarray(Th)[k % grid]])
            xb, fb, _, _ = ascend(f, x0[None], box, steps=steps)
            x, fx = xb[0], fb[0]
            better = jnp.max(vals) > fx
            x = jnp.where(better, x0, x)
            fx = jnp.maximum(fx, jnp.max(vals))
            fd = f(jnp.asarray(defaults))
            reps = []
            for r in range(replicates):
                fr = threshold_objective(s, payload=pol.payload, edges=edges, quant=quant, samples=samples,
                                         seed=2_000_003 + r)
                reps.append(fr(x) - fr(jnp.asarray(defaults)))
            return x, fx, fd, jnp.stack(reps)

        x, fx, fd, reps = jax.jit(jax.vmap(one))(stacked, jnp.asarray(qn), jnp.asarray(qw), jnp.asarray(qo))
    shape = (len(W), len(delta))
    x, fx, fd, reps = (np.asarray(a, np.float64) for a in (x, fx, fd, reps))
    gain = fx - fd
    return {
        "W": [float(w) for w in W], "delta": [float(d) for d in delta], "defaults": list(defaults),
        "H_th": x[:, 0].reshape(shape).tolist(), "Theta_th": x[:, 1].reshape(shape).tolist(),
        "T_star": fx.reshape(shape).tolist(), "T_star_default": fd.reshape(shape).tolist(),
        "gain": gain.reshape(shape).tolist(), "gain_pct": (100 * gain / fd).reshape(shape).tolist(),
        "gain_replicates": reps.reshape(shape + (replicates,)).tolist(),
        "grid": grid, "steps": steps, "samples": samples, "quantiles": quantiles, "box": [list(b) for b in box],
        "objective": "per_round", "seconds": time.perf_counter() - t0,
    }


def atlas_figure(rec: dict[str, Any], path: str) -> str:
    """Three panels against bandwidth (one line per δ): the optimal ``H_th + Θ_th`` (the entropy at
    which a round's first draft exits; well determined), the optimal ``Θ_th`` (poorly determined:
    ``T*`` is flat along the ridge of constant sum), and the gain over the defaults (%, error bars:
    the replicates' spread)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator

    W = np.asarray(rec["W"]) / 1e6
    fig, axs = plt.subplots(1, 3, figsize=(11, 3.4))
    reps = np.asarray(rec["gain_replicates"])
    fd = np.asarray(rec["T_star_default"])
    H, Th = np.asarray(rec["H_th"]), np.asarray(rec["Theta_th"])
    for j, d in enumerate(rec["delta"]):
        lab = f"δ = {1e3 * d:g} ms"
        axs[0].plot(W, H[:, j] + Th[:, j], "o-", label=lab)
        axs[1].plot(W, Th[:, j], "o-", label=lab)
        err = 100 * reps[:, j].std(axis=-1, ddof=1) / fd[:, j] if reps.shape[-1] > 1 else None
        axs[2].errorbar(W, np.asarray(rec["gain_pct"])[:, j], yerr=err, fmt="o-", capsize=3, label=lab)
    axs[0].axhline(sum(rec["defaults"]), color="k", ls=":", lw=1, label="default")
    axs[1].axhline(rec["defaults"][1], color="k", ls=":", lw=1, label="default")
    titles = ("optimal H_th + Θ_th (nats)", "optimal Θ_th (nats; T* flat along the ridge)", "T* gain over the defaults (%)")
    for ax, t in zip(axs, titles):
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(W))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([f"{w:g}" for w in W])
        ax.set_xlabel("bandwidth W (MHz)")
        ax.set_title(t, fontsize=10)
        ax.grid(alpha=0.3)
    axs[0].legend(fontsize=8)
    fig.suptitle("gelato optimize across bandwidth and δ (exit-aware per-round T*, exact proxy)", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
