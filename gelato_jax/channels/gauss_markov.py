"""Gauss–Markov fading: ``x_{t+1} = ρ x_t + sqrt(1 − ρ²) w_t``, ``w ~ CN(0, 1)``, ``h = |x|²``;
marginally ``Exp(1)`` with ``corr(h_t, h_{t+1}) = ρ²`` (``Scenario.rho``). Round 0 uses the
stationary initial draw itself."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .base import Exp1Law, Fading


def _cn01(key, dtype):
    """One ``CN(0, 1)`` sample as a (2,) real vector (each part variance 1/2)."""
    return jax.random.normal(key, (2,), dtype=dtype) * jnp.sqrt(jnp.asarray(0.5, dtype))


class GaussMarkov(Fading):
    name = "gauss_markov"

    def init(self, key, scenario, dtype):
        return _cn01(key, dtype)

    def next(self, key, scenario, state, t, dtype):
        rho = jnp.asarray(scenario.rho, dtype)
        x = jnp.where(t == 0, state, rho * state + jnp.sqrt(1.0 - rho**2) * _cn01(key, dtype))
        return jnp.sum(x**2), x

    def law(self, scenario):
        return Exp1Law()
