r"""Fast Gamma sampling by a tabulated inverse CDF (used for the surrogate entropies, MODEL §4).

``jax.random.gamma`` runs a rejection loop per element; vectorized over realizations inside a
``lax.scan`` it was ≈94 % of the simulator's time on CPU (bench/, BENCHMARKS.md). Here a Gamma
draw costs one uniform, one logit, one gather and a cubic:

``X = Q_k(u)`` with ``u`` uniform, evaluated as ``exp(y(w))``, ``w = logit(u)``, where
``y(w) = log Q_k(σ(w))`` is tabulated on a uniform ``w`` grid (``TABLE_SIZE`` nodes) with its
exact derivative ``dy/dw = u(1−u) / f_Y(y)`` (``f_Y`` = density of ``log X``,
``f_Y(y) = exp(k y − e^y)/Γ(k)``) and interpolated by cubic Hermite splines. In the logit
variable both tails are smooth (``y ≈ (w + log Γ(k+1))/k`` on the left, ``y ≈ log w`` on the
right), so the spline is accurate everywhere.

Nodes are found by bisection on ``y`` against ``gammainc``/``gammaincc`` (``jax.scipy``), inside
JAX, so ``k`` may be a traced pytree leaf (a sweep over ``k_H`` builds one table per grid point,
once per compiled call, outside the round loop).

Accuracy: the Kolmogorov distance between the sampled law and ``Gamma(k)`` is the sup over
``u`` of ``|F_k(Q̂_k(u)) − u|``; ``tests/test_bench_sampling.py`` bounds it by 1e-8 in float64 for
``k ∈ [0.05, 1000]`` (float32 tables are limited by float32 rounding, ≈1e-7). The uniforms
themselves are discrete (``2^-23`` or ``2^-52`` grids, midpoints used so that ``u ∈ (0, 1)``).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import gammainc, gammaincc, gammaln

__all__ = ["TABLE_SIZE", "GammaTable", "gamma_table", "gamma_quantile", "gamma_quantile_of_normal", "open_unit"]

TABLE_SIZE = 2048  # even: the grid is split in two symmetric halves
_BISECT = 44  # from a bracket of width < 2^10 to < 2^-34, then Newton
_NEWTON = 2


def _w_range(dtype) -> float:
    """Largest |logit(u)| of the midpoint uniforms of ``open_unit`` in ``dtype``."""
    bits = 23 if jnp.dtype(dtype) == jnp.float32 else 52
    u = 2.0 ** -(bits + 1)
    return math.log((1 - u) / u) + 1e-3


class GammaTable(NamedTuple):
    """Nodes ``w_i = w0 + i/inv_h``; on cell ``i`` (``t ∈ [0, 1]``) the Hermite cubic
    ``y = c0 + c1 t + c2 t² + c3 t³`` through ``y_i = log Q_k(σ(w_i))`` with slopes
    ``m_i = h y'(w_i)`` (one gather of a row per draw)."""

    w0: Any
    inv_h: Any
    coef: Any  # (N - 1, 4)


def gamma_table(k, dtype, size: int = TABLE_SIZE) -> GammaTable:
    """Build the log-quantile table of ``Gamma(k, 1)`` (``k`` may be traced).

    The nodes are computed in float64 when x64 is enabled (then cast to ``dtype``): float32
    ``gammainc`` loses accuracy for large ``k``."""
    out_dtype = jnp.dtype(dtype)
    dtype = jnp.dtype(jnp.float64) if jax.config.jax_enable_x64 else out_dtype
    wmax = _w_range(out_dtype)
    k = jnp.asarray(k, dtype)
    w = jnp.linspace(-wmax, wmax, size, dtype=dtype)
    h = jnp.asarray(2 * wmax / (size - 1), dtype)
    lgk = gammaln(k)
    # each node is solved on the side where it is accurate: F(x) = u for w <= 0 (first half of
    # the symmetric grid), Q(x) = 1 - u for w > 0 (second half)
    half = size // 2
    w_lo, w_hi = w[:half], w[half:]
    p_lo = jax.nn.sigmoid(w_lo)  # u
    p_hi = jax.nn.sigmoid(-w_hi)  # 1 - u
    tiny = jnp.finfo(dtype).tiny
    y_min = jnp.log(tiny) + 1.0
    y_lo = jnp.maximum((jax.nn.log_sigmoid(w[0]) + gammaln(k + 1.0)) / k - 2.0, y_min)
    y_hi = jnp.log(k + 20.0 * jnp.sqrt(k) + 2.0 * wmax + 10.0)

    def solve(p, cdf, sign):
        # bisection on y = log x for cdf(e^y) = p (sign +1: increasing cdf, -1: survival)
        lo = jnp.full(p.shape, y_lo, dtype)
        hi = jnp.full(p.shape, y_hi, dtype)

        def body(_, bounds):
            lo, hi = bounds
            mid = 0.5 * (lo + hi)
            below = sign * (cdf(k, jnp.exp(mid)) - p) < 0
            return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

        lo, hi = jax.lax.fori_loop(0, _BISECT, body, (lo, hi))
        y = 0.5 * (lo + hi)
        for _ in range(_NEWTON):  # polish: dF/dy = f_Y(y) = exp(k y - e^y - lgamma(k))
            fy = jnp.exp(k * y - jnp.exp(y) - lgk)
            step = sign * (cdf(k, jnp.exp(y)) - p) / jnp.maximum(fy, tiny)
            y = jnp.clip(y - step, lo, hi)
        return y

    y = jnp.concatenate([solve(p_lo, gammainc, 1.0), solve(p_hi, gammaincc, -1.0)])
    # dy/dw = u (1 - u) / f_Y(y), in logs
    log_dudw = jax.nn.log_sigmoid(w) + jax.nn.log_sigmoid(-w)
    log_fy = k * y - jnp.exp(y) - lgk
    m = h * jnp.exp(log_dudw - log_fy)
    y0, y1, m0, m1 = y[:-1], y[1:], m[:-1], m[1:]
    coef = jnp.stack([y0, m0, 3 * (y1 - y0) - 2 * m0 - m1, 2 * (y0 - y1) + m0 + m1], axis=-1)
    cast = lambda x: jnp.asarray(x, out_dtype)
    return GammaTable(cast(-wmax), cast(1.0 / h), cast(coef))


def gamma_quantile(table: GammaTable, u):
    """``Q̂_k(u)`` for ``u ∈ (0, 1)`` (any shape): cubic Hermite interpolation of the table."""
    return _quantile_at_logit(table, jnp.log(u) - jnp.log1p(-u))


def gamma_quantile_of_normal(table: GammaTable, x):
    """``Q̂_k(Φ(x))`` for standard-normal scores ``x`` (Gaussian copula), with the logit
    ``log Φ(x) − log Φ(−x)`` computed from ``log_ndtr`` so that neither tail saturates."""
    from jax.scipy.special import log_ndtr

    return _quantile_at_logit(table, log_ndtr(x) - log_ndtr(-x))


def _quantile_at_logit(table: GammaTable, w):
    w0, inv_h, coef = table
    n = coef.shape[-2]
    s = jnp.clip((w - w0) * inv_h, 0.0, float(n))
    i = jnp.minimum(s.astype(jnp.int32), n - 1)
    t = s - i
    c = coef[i]
    yy = ((c[..., 3] * t + c[..., 2]) * t + c[..., 1]) * t + c[..., 0]
    return jnp.exp(yy)


def open_unit(key, shape, dtype):
    """Uniforms on the open interval: the midpoints ``(j + 1/2) 2^{-b}`` of JAX's ``b``-bit grid
    (``b`` = 23 in float32, 52 in float64), so they are never 0 or 1; same law as
    ``jax.random.uniform`` shifted by half a grid step."""
    bits = 23 if jnp.dtype(dtype) == jnp.float32 else 52
    return jax.random.uniform(key, shape, dtype=dtype) + jnp.asarray(2.0 ** -(bits + 1), dtype)
