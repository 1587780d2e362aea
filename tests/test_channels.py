"""Fading models and arrival laws as strategy objects (gelato_jax.channels, gelato_jax.arrivals)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gelato_jax import Scenario, arrivals, channel, channels
from gelato_jax.optimum import _marginal, h_quantisation
from gelato_jax.renewal import fading_nodes
from gelato_jax.scenario import CHANNELS, ENERGY_ARRIVALS


def test_registries_name_the_scenario_choices():
    assert tuple(channels.FADING) == CHANNELS and tuple(arrivals.ARRIVALS) == ENERGY_ARRIVALS


def test_a_channel_without_a_known_law_is_refused_not_assumed_exp1(monkeypatch):
    class Unknown(channels.Fading):
        name = "rayleigh"  # stands in for a new model registered under a valid name

        def next(self, key, scenario, state, t, dtype):
            return jnp.full((), 1e-6, dtype), state

    monkeypatch.setitem(channels.FADING, "rayleigh", Unknown())
    with pytest.raises(ValueError, match="no known marginal law"):
        _marginal(Scenario())
    with pytest.raises(ValueError, match="no known marginal law"):
        h_quantisation(Scenario(), 8)
    h, s = channel.next_fading(None, Scenario(h_min=1e-3), (), 0, jnp.float32)
    assert float(h) == pytest.approx(1e-3)  # the clamp at h_min is the dispatcher's, for every model


def test_laws():
    e = channels.Exp1Law()
    h, w = e.nodes(4)
    np.testing.assert_allclose(h, -np.log1p(-(np.arange(4) + 0.5) / 4)) and np.testing.assert_allclose(w, 0.25)
    edges, nodes, w, lo, hi, exact = e.quantisation(4, 1e-3, split=0.1)
    assert not exact and math.isclose(w.sum(), 1.0) and np.any(np.isclose(edges, 0.1)) and len(nodes) == 5
    d = channels.DiscreteLaw([0.5, 1.0, 1.0, 2.5])
    h, w = d.nodes(8)
    assert h.tolist() == [0.5, 1.0, 2.5] and w.tolist() == [0.25, 0.5, 0.25]
    edges, nodes, w, lo, hi, exact = d.quantisation(8, 0.7)
    assert exact and nodes.tolist() == [0.7, 1.0, 2.5]  # clamped at h_min
    s = Scenario(channel="trace", channel_trace=np.array([0.5, 1.0, 1.0, 2.5]))
    assert [x.tolist() for x in fading_nodes(s, 8)] == [[0.5, 1.0, 2.5], [0.25, 0.5, 0.25]]
    assert _marginal(s) == "discrete" and _marginal(Scenario(channel="gauss_markov")) == "exp1"


@pytest.mark.parametrize("law, mean, var, top", [("constant", 0.06, 0.0, 0.06), ("exponential", 0.06, 0.0036, None),
                                                 ("uniform", 0.06, 0.0012, 0.12)])
def test_arrival_laws_by_inversion(law, mean, var, top):
    a = arrivals.ARRIVALS[law]
    u = (jnp.arange(200_000, dtype=jnp.float64) + 0.5) / 200_000  # a quadrature of U(0, 1)
    x = np.asarray(a.sample(0.06, u))
    assert x.shape == u.shape
    np.testing.assert_allclose(x.mean(), mean, rtol=1e-3)
    np.testing.assert_allclose(x.var(), var, rtol=2e-3, atol=1e-12)
    assert math.isclose(a.variance(0.06), var, rel_tol=1e-12, abs_tol=1e-15) and a.maximum(0.06) == top
