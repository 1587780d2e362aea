r"""Hypothesis strategies for GELATO's inputs: scenarios, exogenous draws, queues, observations.

Every strategy draws *values* inside the validated range of each field (``Scenario`` raises
``ValueError`` outside it) and keeps *shapes* on a small set: static fields (``gamma_max``, the
channel model, the arrival law, ...) are drawn from the tuples given in ``statics`` (default: the
scenario's own value only), so a jitted function compiles once per static combination and not
once per example.

* ``log_uniform(lo, hi)`` — floats spread over the decades of ``[lo, hi]``.
* ``scenarios(vary=..., statics=..., **fixed)`` — valid ``Scenario`` objects; ``extreme=True``
  widens every range towards the limits of float64 (numerical hardening).
* ``extreme_scenarios(float32=...)`` — scenarios over many decades whose rates stay representable.
* ``exogenous(R, T, gamma_max)`` / ``extreme_exogenous`` — ``Exogenous`` arrays from a drawn
  numpy seed and drawn laws (deep fades, zero arrivals, entropies exactly at a bucket threshold).
* ``queues()``, ``fading``, ``observations(scenario)`` — one round's view (``RoundObs``).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Mapping, Sequence

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from ..scenario import Scenario
from ..simulator import Exogenous

__all__ = [
    "log_uniform",
    "SCENARIO_LEAVES",
    "CORE_LEAVES",
    "scenario_kwargs",
    "scenarios",
    "extreme_scenarios",
    "snr_at_clamp",
    "fading",
    "queues",
    "exogenous",
    "extreme_exogenous",
    "observations",
]


@functools.lru_cache(maxsize=None)
def log_uniform(lo: float, hi: float) -> st.SearchStrategy[float]:
    """Floats in ``[lo, hi]`` (``0 < lo < hi``), uniform in ``log10``: every decade is drawn as
    often, and hypothesis shrinks towards ``lo``."""
    return st.floats(math.log10(lo), math.log10(hi)).map(lambda x: float(min(max(10.0**x, lo), hi)))


def _zero_or(strategy: st.SearchStrategy[float]) -> st.SearchStrategy[float]:
    return st.one_of(st.just(0.0), strategy)


# Drawing ranges of the numeric leaves: ``(typical, extreme)``, each a function returning a
# strategy; both lie inside the validated range of the field (``gelato_jax.scenario._CHECKS``).
SCENARIO_LEAVES: dict[str, tuple[Any, Any]] = {
    "W": (lambda: log_uniform(1e4, 1e8), lambda: log_uniform(1e3, 1e8)),
    "W_dl": (lambda: log_uniform(1e4, 1e8), lambda: log_uniform(1e3, 1e8)),
    "P_tx": (lambda: log_uniform(1e-3, 2.0), lambda: log_uniform(1e-3, 2.0)),
    "P_edge": (lambda: log_uniform(1e-2, 10.0), lambda: log_uniform(1e-2, 10.0)),
    "N0_dBm_Hz": (lambda: st.floats(-200.0, -150.0), lambda: st.floats(-200.0, -150.0)),
    "NF_dB": (lambda: st.floats(0.0, 15.0), lambda: st.floats(0.0, 15.0)),
    "d": (lambda: log_uniform(10.0, 3000.0), lambda: log_uniform(10.0, 1e6)),
    "r_min": (lambda: _zero_or(log_uniform(1.0, 1e6)), lambda: _zero_or(log_uniform(1.0, 1e6))),
    "c_d": (lambda: log_uniform(1e6, 1e9), lambda: log_uniform(1e6, 1e9)),
    "f": (lambda: log_uniform(1e8, 4e9), lambda: log_uniform(1e8, 4e9)),
    "kappa": (lambda: log_uniform(1e-29, 1e-26), lambda: log_uniform(1e-29, 1e-26)),
    "t_v0": (lambda: st.floats(0.0, 0.1), lambda: st.floats(0.0, 0.1)),
    "t_v1": (lambda: st.floats(0.0, 0.01), lambda: st.floats(0.0, 0.01)),
    "delta": (lambda: log_uniform(1e-3, 0.3), lambda: log_uniform(1e-3, 0.3)),
    "V_vocab": (lambda: log_uniform(2.0, 2e5), lambda: log_uniform(2.0, 2e5)),
    "b_id": (lambda: st.floats(1.0, 32.0), lambda: st.floats(1.0, 32.0)),
    "b_prob": (lambda: st.floats(1.0, 32.0), lambda: st.floats(1.0, 32.0)),
    "b_dl": (lambda: _zero_or(st.floats(1.0, 1e4)), lambda: _zero_or(st.floats(1.0, 1e4))),
    "c_p": (lambda: log_uniform(0.1, 10.0), lambda: log_uniform(0.1, 10.0)),
    "k_H": (lambda: log_uniform(0.1, 5.0), lambda: log_uniform(0.1, 5.0)),
    "theta_H": (lambda: log_uniform(0.05, 5.0), lambda: log_uniform(0.05, 5.0)),
    "a0": (lambda: st.floats(-5.0, 10.0), lambda: st.floats(-5.0, 10.0)),
    "a1": (lambda: st.floats(0.0, 5.0), lambda: st.floats(0.0, 5.0)),
    "E_bar": (lambda: log_uniform(1e-4, 1.0), lambda: log_uniform(1e-4, 1.0)),
    # fields that change the law of the draws or of a round after a rejection (docs/model.md §2, §4):
    # not in CORE_LEAVES, because the project's numpy references assume their defaults
    "rho": (lambda: st.floats(0.0, 0.99), lambda: st.floats(0.0, 0.999)),
    "h_min": (lambda: log_uniform(1e-12, 1e-3), lambda: log_uniform(1e-200, 1e-3)),
    "rho_H": (lambda: st.floats(0.0, 0.9), lambda: st.floats(0.0, 0.99)),
    "after_reject_H_scale": (lambda: log_uniform(0.5, 2.0), lambda: log_uniform(0.05, 20.0)),
    "after_reject_a0_shift": (lambda: st.floats(-2.0, 2.0), lambda: st.floats(-20.0, 20.0)),
}
# the leaves a round's deterministic formulas (docs/model.md §2, §3, §5) depend on, with the laws of the
# draws at their defaults
CORE_LEAVES: tuple[str, ...] = tuple(list(SCENARIO_LEAVES)[:24])


@st.composite
def scenario_kwargs(draw, *, extreme: bool = False, vary: Sequence[str] = CORE_LEAVES,
                    toward_defaults: bool = False) -> dict:
    """Values (Python floats) for the numeric leaves named in ``vary``.

    ``toward_defaults``: each leaf keeps its default with probability ≈ 1/8 and hypothesis shrinks
    it *to the default* (not to the low end of its range), so a shrunk counterexample differs from
    docs/model.md §9's defaults only in the fields that matter."""
    unknown = sorted(set(vary) - set(SCENARIO_LEAVES))
    if unknown:
        raise ValueError(f"scenario_kwargs: no drawing range for {unknown}; known: {sorted(SCENARIO_LEAVES)}")
    out = {}
    defaults = Scenario.__dataclass_fields__
    for k in vary:
        if toward_defaults and draw(_ONE_IN_8) == 0:
            out[k] = float(defaults[k].default)
        else:
            out[k] = float(draw(_leaf_strategy(k, extreme)))
    return out


_ONE_IN_8 = st.integers(0, 7)


@functools.lru_cache(maxsize=None)
def _leaf_strategy(name: str, extreme: bool) -> st.SearchStrategy[float]:
    """The drawing strategy of a leaf, built once (hypothesis validates a strategy on first use:
    building them per draw cost more than the examples themselves)."""
    return SCENARIO_LEAVES[name][1 if extreme else 0]()


@st.composite
def scenarios(
    draw,
    *,
    vary: Sequence[str] | str = CORE_LEAVES,
    statics: Mapping[str, Sequence[Any]] | None = None,
    extreme: bool = False,
    toward_defaults: bool = False,
    **fixed: Any,
) -> Scenario:
    """Valid ``Scenario`` objects.

    Args:
      vary: the numeric leaves to draw (``"all"``: every leaf of ``SCENARIO_LEAVES``); the others
        keep their defaults.
      statics: static field → the few values to draw it from, e.g. ``{"gamma_max": (4, 10)}``
        (shapes repeat, so compilations stay few).
      extreme: the wide ranges of ``SCENARIO_LEAVES``.
      toward_defaults: leaves shrink to their defaults (readable counterexamples), see
        ``scenario_kwargs``; static fields shrink to the first value of their tuple.
      fixed: field values that are not drawn (they win over ``vary`` and ``statics``).
    """
    names = tuple(SCENARIO_LEAVES) if vary == "all" else tuple(vary)
    kw = draw(scenario_kwargs(extreme=extreme, vary=[n for n in names if n not in fixed], toward_defaults=toward_defaults))
    for name, choices in (statics or {}).items():
        if name not in fixed:
            kw[name] = draw(st.sampled_from(tuple(choices)))
    kw.update(fixed)
    if kw.get("channel") == "trace" and kw.get("channel_trace") is None:
        kw["channel_trace"] = (0.05, 0.3, 1.0, 2.5, 1e-9, 0.8, 4.0)
    if "t_v0" in kw and "delta" in kw and kw["t_v0"] + kw["delta"] <= 0:
        kw["delta"] = 1e-3
    return Scenario(**kw)


def snr_at_clamp(s: Scenario) -> float:
    """The smaller of the uplink and downlink SNR at the fading clamp ``h_min`` (float64)."""
    g0 = 10.0 ** (-(128.1 + 37.6 * math.log10(s.d / 1000.0)) / 10.0)
    n0 = 10.0 ** ((s.N0_dBm_Hz + s.NF_dB - 30.0) / 10.0)
    return min(s.P_tx / (n0 * s.W), s.P_edge / (n0 * s.W_dl)) * g0 * s.h_min


@st.composite
def extreme_scenarios(draw, *, float32: bool) -> Scenario:
    """Scenarios over many decades (tiny and huge rates, bandwidths, powers, distances, draft
    costs, vocabularies, entropies; energy budgets down to 1e-30 J so the queue grows large),
    restricted to those whose SNR at the fading clamp stays above 1e-280 (float64) or 1e-30
    (float32): below that a rate underflows to 0 and a round that sends bits takes forever."""
    big = 1e12 if float32 else 1e30
    s = Scenario(
        W=draw(log_uniform(1e2, 1e10)),
        W_dl=draw(log_uniform(1e2, 1e10)),
        P_tx=draw(log_uniform(1e-6, 1e2)),
        P_edge=draw(log_uniform(1e-6, 1e2)),
        d=draw(log_uniform(1.0, 1e6)),
        h_min=draw(log_uniform(1e-30 if float32 else 1e-200, 1.0)),
        r_min=draw(_zero_or(log_uniform(1e-3, 1e9))),
        c_d=draw(log_uniform(1.0, 1e12)),
        f=draw(log_uniform(1e3, 1e11)),
        kappa=draw(log_uniform(1e-35, 1e-20)),
        t_v0=draw(_zero_or(log_uniform(1e-9, 10.0))),
        t_v1=draw(_zero_or(log_uniform(1e-9, 10.0))),
        delta=draw(log_uniform(1e-6, 10.0)),
        V_vocab=draw(log_uniform(1.0, big)),
        b_id=draw(log_uniform(1e-3, 1e3)),
        b_prob=draw(log_uniform(1e-3, 1e3)),
        b_dl=draw(_zero_or(log_uniform(1e-3, 1e9))),
        c_p=draw(log_uniform(1e-6, 1e6)),
        k_H=draw(log_uniform(0.05, 1e3)),
        theta_H=draw(log_uniform(1e-4, 1e4)),
        a0=draw(st.floats(-1e3, 1e3)),
        a1=draw(st.floats(0.0, 1e3)),
        E_bar=draw(log_uniform(1e-30, 1e6)),
    )
    assume(snr_at_clamp(s) > (1e-30 if float32 else 1e-280))
    return s


#: small-scale fading ``h``: mostly the bulk of Exp(1), sometimes deep fades down to the clamp
fading = st.one_of(log_uniform(1e-2, 20.0), log_uniform(1e-12, 1e-2))


@functools.lru_cache(maxsize=None)
def queues(hi: float = 1e12) -> st.SearchStrategy[float]:
    """Virtual energy queues ``Z ≥ 0``: exactly 0 (the greedy regime), the working range and
    large queues up to ``hi`` (a controller must stay finite there)."""
    return st.one_of(st.just(0.0), log_uniform(1e-6, 1e2), log_uniform(1e2, hi))


_SEEDS = st.integers(0, 2**32 - 1)
_EXO = {
    "fade_scale": st.floats(-3.0, 1.0),
    "fraction": st.floats(0.0, 0.3),
    "a_scale": log_uniform(1e-4, 1.0),
    "arrivals": st.sampled_from(["const", "exp", "sparse"]),
    "k": log_uniform(0.1, 5.0),
    "theta": log_uniform(0.05, 5.0),
}


@st.composite
def exogenous(draw, R: int = 3, T: int = 40, gamma_max: int = 10, H_th: float = 1.5) -> Exogenous:
    """``Exogenous`` arrays of shape ``(R, T[, gamma_max])`` from a drawn numpy seed and drawn
    laws: Exp fading with a drawn mean and a drawn fraction of deep fades (``h = 1e-12``);
    constant, exponential or sparse (half zero) energy arrivals of a drawn scale; Gamma entropies
    of drawn shape and scale with a drawn fraction set exactly to ``H_th`` (bucket ties);
    acceptance uniforms."""
    rng = np.random.default_rng(draw(_SEEDS))
    h = rng.exponential(10.0 ** draw(_EXO["fade_scale"]), (R, T))
    h = np.where(rng.uniform(size=(R, T)) < draw(_EXO["fraction"]), 1e-12, h)
    a_scale = draw(_EXO["a_scale"])
    a = {
        "const": np.full((R, T), a_scale),
        "exp": rng.exponential(a_scale, (R, T)),
        "sparse": np.where(rng.uniform(size=(R, T)) < 0.5, 0.0, 2 * a_scale),
    }[draw(_EXO["arrivals"])]
    H = rng.gamma(draw(_EXO["k"]), draw(_EXO["theta"]), (R, T, gamma_max))
    H = np.where(rng.uniform(size=H.shape) < draw(_EXO["fraction"]), H_th, H)
    U = rng.uniform(size=(R, T, gamma_max))
    return Exogenous(h, a, H, U)


@st.composite
def extreme_exogenous(draw, R: int = 2, T: int = 40, gamma_max: int = 10) -> Exogenous:
    """``Exogenous`` arrays over many decades: fading scaled by 1e-300..1e3 (clamped to
    ``h_min`` by ``rollout``), arrivals by 1e-30..1e6, entropy scale 1e-4..1e4."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    h = rng.exponential(1.0, (R, T)) * 10.0 ** draw(st.floats(-300.0, 3.0))
    a = rng.exponential(1.0, (R, T)) * 10.0 ** draw(st.floats(-30.0, 6.0))
    H = rng.gamma(0.8, 10.0 ** draw(st.floats(-4.0, 4.0)), (R, T, gamma_max))
    return Exogenous(h, a, H, rng.uniform(size=(R, T, gamma_max)))


@st.composite
def observations(draw, scenario: Scenario, *, queue: st.SearchStrategy[float] | None = None,
                 h: st.SearchStrategy[float] | None = None, t: int | None = None):
    """A ``RoundObs`` of ``scenario``: drawn queue and fading, the rates and outage flag that
    the round computes from them (``gelato_jax.channel``), a drawn round index and
    after-rejection flag."""
    import jax.numpy as jnp

    from .. import channel
    from ..policies.base import RoundObs

    z = draw(queues() if queue is None else queue)
    g = max(float(draw(fading if h is None else h)), float(scenario.h_min))
    rate = channel.uplink_rate(scenario, jnp.asarray(g))
    rate_dl = channel.downlink_rate(scenario, jnp.asarray(g))
    outage = channel.in_outage(scenario, rate)
    t_val = draw(st.integers(0, 10_000)) if t is None else t
    return RoundObs(jnp.asarray(t_val, jnp.int32), jnp.asarray(z), jnp.asarray(g), rate, rate_dl, outage,
                    jnp.asarray(draw(st.booleans())))
