r"""Fading uplink/downlink (docs/model.md §2).

``g = g0 h``; uplink rate ``r = W log2(1 + P_tx g0 h / (N0 W))``, downlink
``r_dl = W_dl log2(1 + P_edge g0 h / (N0 W_dl))`` (reciprocal channel, same ``h``).
Rates use ``log1p`` so that tiny SNRs (``h`` at its clamp ``h_min``) give a tiny positive rate
in float32 instead of exactly 0; the SNR is computed as ``(P g0 / (N0 W)) · h`` so that the
intermediate ``P g0 h`` (≈ 1e-12 h) cannot become subnormal and be flushed to 0 by XLA (a deep
fade ``h = 1e-300`` in float64 gave rate 0 and an infinite round latency).

Small-scale fading ``h`` (unit mean):

* ``rayleigh``: ``h ~ Exp(1)`` i.i.d. over rounds;
* ``gauss_markov``: ``x_{t+1} = ρ x_t + sqrt(1 − ρ²) w_t``, ``w ~ CN(0, 1)``, ``h = |x|²`` —
  marginally ``Exp(1)`` with ``corr(h_t, h_{t+1}) = ρ²``;
* ``trace``: ``h_t = trace[(o + t) mod len]``, start ``o`` uniform per realization.

Draws are clamped to ``h ≥ h_min`` (float32 exponentials can be exactly 0).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from .scenario import Scenario

__all__ = ["uplink_rate", "downlink_rate", "in_outage", "init_fading", "next_fading"]

_LN2 = math.log(2.0)


def uplink_rate(scenario: Scenario, h):
    """Uplink rate (bit/s) at small-scale gain ``h``."""
    snr = scenario.P_tx * scenario.g0 / (scenario.N0 * scenario.W) * h  # h last: no subnormal P·g0·h
    return scenario.W * jnp.log1p(snr) / _LN2


def downlink_rate(scenario: Scenario, h):
    """Downlink rate (bit/s) at small-scale gain ``h`` (edge transmits with ``P_edge``)."""
    snr = scenario.P_edge * scenario.g0 / (scenario.N0 * scenario.W_dl) * h
    return scenario.W_dl * jnp.log1p(snr) / _LN2


def in_outage(scenario: Scenario, rate):
    """A round is in outage when its uplink rate is below ``r_min``: only ``γ = 0`` is allowed."""
    return rate < scenario.r_min


def _cn01(key, dtype):
    """One ``CN(0, 1)`` sample as a (2,) real vector (each part variance 1/2)."""
    return jax.random.normal(key, (2,), dtype=dtype) * jnp.sqrt(jnp.asarray(0.5, dtype))


def init_fading(key, scenario: Scenario, dtype):
    """Per-realization fading state: ``x`` (2,) for Gauss–Markov, the trace offset otherwise."""
    if scenario.channel == "gauss_markov":
        return _cn01(key, dtype)
    if scenario.channel == "trace":
        n = len(scenario.channel_trace)
        return jax.random.randint(key, (), 0, n).astype(jnp.int32)
    return jnp.zeros((), jnp.int32)


def next_fading(key, scenario: Scenario, state, t, dtype):
    """Small-scale gain of round ``t`` and the next fading state.

    ``key`` is the round's channel key; ``state`` comes from ``init_fading`` or the previous
    round. For Gauss–Markov, round 0 uses the stationary initial draw itself.
    """
    h_min = jnp.asarray(scenario.h_min, dtype)
    if scenario.channel == "rayleigh":
        h = jax.random.exponential(key, (), dtype=dtype)
        return jnp.maximum(h, h_min), state
    if scenario.channel == "gauss_markov":
        rho = jnp.asarray(scenario.rho, dtype)
        x = jnp.where(t == 0, state, rho * state + jnp.sqrt(1.0 - rho**2) * _cn01(key, dtype))
        return jnp.maximum(jnp.sum(x**2), h_min), x
    trace = jnp.asarray(scenario.channel_trace, dtype)
    idx = (state + t) % trace.shape[0]
    return jnp.maximum(trace[idx], h_min), state
