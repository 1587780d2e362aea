"""A replayed trace of unit-mean gains: ``h_t = trace[(o + t) mod len]``, the start ``o`` uniform
per realization (``Scenario.channel_trace``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .base import DiscreteLaw, Fading


class Trace(Fading):
    name = "trace"

    def init(self, key, scenario, dtype):
        return jax.random.randint(key, (), 0, len(scenario.channel_trace)).astype(jnp.int32)

    def next(self, key, scenario, state, t, dtype):
        trace = jnp.asarray(scenario.channel_trace, dtype)
        return trace[(state + t) % trace.shape[0]], state

    def law(self, scenario):
        return DiscreteLaw(scenario.channel_trace)
