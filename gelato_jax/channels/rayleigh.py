"""Rayleigh fading: ``h ~ Exp(1)`` i.i.d. over rounds."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .base import Exp1Law, Fading


class Rayleigh(Fading):
    name = "rayleigh"
    iid = True

    def from_uniform(self, u):
        """``h = −log u`` for a uniform ``u`` in ``(0, 1]`` (the simulator's own word)."""
        return -jnp.log(u)

    def next(self, key, scenario, state, t, dtype):
        return jax.random.exponential(key, (), dtype=dtype), state

    def law(self, scenario):
        return Exp1Law()
