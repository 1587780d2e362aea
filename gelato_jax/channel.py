r"""Fading uplink/downlink (docs/model.md §2).

``g = g0 h``; uplink rate ``r = W log2(1 + P_tx g0 h / (N0 W))``, downlink
``r_dl = W_dl log2(1 + P_edge g0 h / (N0 W_dl))`` (reciprocal channel, same ``h``).
Rates use ``log1p`` so that tiny SNRs (``h`` at its clamp ``h_min``) give a tiny positive rate
in float32 instead of exactly 0; the SNR is computed as ``(P g0 / (N0 W)) · h`` so that the
intermediate ``P g0 h`` (≈ 1e-12 h) cannot become subnormal and be flushed to 0 by XLA (a deep
fade ``h = 1e-300`` in float64 gave rate 0 and an infinite round latency).

Small-scale fading ``h`` (unit mean) comes from the model ``scenario.channel`` names
(``gelato_jax.channels``: ``rayleigh``, ``gauss_markov``, ``trace``, one strategy object each).

Draws are clamped to ``h ≥ h_min`` (float32 exponentials can be exactly 0).
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from .channels import fading_of
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


def init_fading(key, scenario: Scenario, dtype):
    """Per-realization fading state of ``scenario.channel`` (``channels.Fading.init``)."""
    return fading_of(scenario).init(key, scenario, dtype)


def next_fading(key, scenario: Scenario, state, t, dtype):
    """Small-scale gain of round ``t``, clamped at ``h_min``, and the next fading state.

    ``key`` is the round's channel key; ``state`` comes from ``init_fading`` or the previous
    round (``channels.Fading.next``).
    """
    h, state = fading_of(scenario).next(key, scenario, state, t, dtype)
    return jnp.maximum(h, jnp.asarray(scenario.h_min, dtype)), state
