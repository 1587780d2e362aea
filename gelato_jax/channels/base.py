"""The fading-model interface and the two marginal laws the solvers know (continuous Exp(1), and
a discrete law given by its values)."""

from __future__ import annotations

import numpy as np

__all__ = ["Fading", "FadingLaw", "Exp1Law", "DiscreteLaw"]


class FadingLaw:
    """The marginal law of the small-scale gain ``h`` (before the ``h_min`` clamp).

    ``kind`` is ``"exp1"`` (continuous, ``optimum(method="exact")`` integrates it exactly) or
    ``"discrete"`` (the LP on its values is exact)."""

    kind: str = ""

    def nodes(self, n: int):
        """``(h (K,), w (K,))``: ``n`` equal-probability representatives and their weights."""
        raise NotImplementedError

    def quantisation(self, n: int, h_min: float, split: float | None = None):
        """Bins of the law: ``(edges (K+1,), nodes (K,), weights (K,), lo (K,), hi (K,), exact)``.

        ``lo``/``hi`` are the values of ``h`` (clamped at ``h_min``) at which a non-decreasing
        function is smallest/largest on each bin (for a rigorous bracket); ``nodes`` are the bins'
        probability midpoints; ``split`` (e.g. the outage threshold) becomes a bin edge where the
        law is continuous; ``exact``: the bins represent the law without error."""
        raise NotImplementedError


class Exp1Law(FadingLaw):
    """``h ~ Exp(1)``: Rayleigh fading, and the stationary marginal ``|CN(0, 1)|²`` of Gauss–Markov."""

    kind = "exp1"

    def nodes(self, n: int):
        u = (np.arange(n) + 0.5) / n
        return -np.log1p(-u), np.full(n, 1.0 / n)

    def quantisation(self, n: int, h_min: float, split: float | None = None):
        u = np.linspace(0.0, 1.0, n + 1)
        if split is not None:
            u_split = -np.expm1(-split)
            if 0.0 < u_split < 1.0:
                u = np.unique(np.concatenate([u, [u_split]]))
        with np.errstate(divide="ignore"):
            edges = -np.log1p(-u)  # F^{-1}(u); the last is inf
        w = np.diff(u)
        mid = 0.5 * (u[:-1] + u[1:])
        nodes = np.maximum(-np.log1p(-mid), h_min)
        lo = np.maximum(edges[:-1], h_min)
        hi = np.where(np.isinf(edges[1:]), 1e200, edges[1:])
        return edges, nodes, w, lo, hi, False


class DiscreteLaw(FadingLaw):
    """The empirical law of ``values`` (each value equally likely)."""

    kind = "discrete"

    def __init__(self, values):
        self.values = np.asarray(values, dtype=np.float64).reshape(-1)

    def nodes(self, n: int):
        _, nodes, w, _, _, _ = self.quantisation(n, -np.inf)  # the bins' representatives, unclamped
        return nodes, w

    def quantisation(self, n: int, h_min: float, split: float | None = None):
        vals = np.maximum(self.values, h_min)
        uniq, counts = np.unique(vals, return_counts=True)
        if len(uniq) <= n:
            edges = np.concatenate([uniq, [np.inf]])
            return edges, uniq, counts / counts.sum(), uniq, uniq, True
        groups = np.array_split(np.sort(vals), n)
        nodes = np.array([g[len(g) // 2] for g in groups])
        lo = np.array([g[0] for g in groups])
        hi = np.array([g[-1] for g in groups])
        w = np.array([len(g) for g in groups], dtype=np.float64) / len(vals)
        return np.concatenate([lo, [np.inf]]), nodes, w, lo, hi, False


class Fading:
    """A small-scale fading model (strategy object; stateless, the state is a pytree it returns).

    * ``init(key, scenario, dtype) -> state``: per-realization state;
    * ``next(key, scenario, state, t, dtype) -> (h, state)``: the gain of round ``t`` (before the
      ``h_min`` clamp) from the round's channel key, and the next state;
    * ``law(scenario) -> FadingLaw``: the marginal law of ``h`` (raise ``ValueError`` if unknown);
    * ``iid``: rounds' gains are i.i.d. (Rayleigh), so the simulator may draw ``h`` by inversion
      of its own uniform (``from_uniform``) instead of a key.
    """

    name: str = ""
    iid: bool = False

    def init(self, key, scenario, dtype):
        import jax.numpy as jnp

        return jnp.zeros((), jnp.int32)

    def next(self, key, scenario, state, t, dtype):
        raise NotImplementedError

    def law(self, scenario) -> FadingLaw:
        raise ValueError(f"channel {self.name!r}: no known marginal law of the fading gain")
