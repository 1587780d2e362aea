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

Three tables: ``gamma_table`` (indexed by ``logit(u)``, described above; it also serves the
Gaussian-copula text process through ``gamma_quantile_of_normal``), ``gamma_table_poly`` (the
simulator's: a few polynomials in ``log min(u, 1 − u)`` chosen by comparisons, no gather; see its
section below) and ``gamma_table_bits`` (indexed by the float bits of ``min(u, 1 − u)``; the
simulator's until the gather it needs was found to cost two thirds of a round on CPU, kept as the
gather-based reference of ``bench/gather_cost.py``). ``gamma_quantile`` dispatches on the table type.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import gammainc, gammaincc, gammaln

__all__ = ["TABLE_SIZE", "GammaTable", "gamma_table", "BitsGammaTable", "gamma_table_bits", "PolyGammaTable",
           "gamma_table_poly", "poly_pieces", "gamma_quantile", "gamma_quantile_of_normal", "open_unit"]

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


def _solve(k, lgk, p, cdf, sign, y_lo, y_hi, dtype):
    """``y = log x`` with ``cdf(k, e^y) = p`` (``sign`` +1: increasing cdf, −1: survival), by
    bisection on ``[y_lo, y_hi]`` and Newton polish (``dF/dy = f_Y(y) = exp(k y − e^y − lgk)``)."""
    tiny = jnp.finfo(dtype).tiny
    lo = jnp.full(p.shape, y_lo, dtype)
    hi = jnp.full(p.shape, y_hi, dtype)

    def body(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        below = sign * (cdf(k, jnp.exp(mid)) - p) < 0
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo, hi = jax.lax.fori_loop(0, _BISECT, body, (lo, hi))
    y = 0.5 * (lo + hi)
    for _ in range(_NEWTON):
        fy = jnp.exp(k * y - jnp.exp(y) - lgk)
        step = sign * (cdf(k, jnp.exp(y)) - p) / jnp.maximum(fy, tiny)
        y = jnp.clip(y - step, lo, hi)
    return y


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
    y_min = jnp.log(jnp.finfo(dtype).tiny) + 1.0
    y_lo = jnp.maximum((jax.nn.log_sigmoid(w[0]) + gammaln(k + 1.0)) / k - 2.0, y_min)
    y_hi = jnp.log(k + 20.0 * jnp.sqrt(k) + 2.0 * wmax + 10.0)

    y = jnp.concatenate([_solve(k, lgk, p_lo, gammainc, 1.0, y_lo, y_hi, dtype),
                         _solve(k, lgk, p_hi, gammaincc, -1.0, y_lo, y_hi, dtype)])
    # dy/dw = u (1 - u) / f_Y(y), in logs
    log_dudw = jax.nn.log_sigmoid(w) + jax.nn.log_sigmoid(-w)
    log_fy = k * y - jnp.exp(y) - lgk
    m = h * jnp.exp(log_dudw - log_fy)
    y0, y1, m0, m1 = y[:-1], y[1:], m[:-1], m[1:]
    coef = jnp.stack([y0, m0, 3 * (y1 - y0) - 2 * m0 - m1, 2 * (y0 - y1) + m0 + m1], axis=-1)
    cast = lambda x: jnp.asarray(x, out_dtype)
    return GammaTable(cast(-wmax), cast(1.0 / h), cast(coef))


def gamma_quantile(table, u):
    """``Q̂_k(u)`` for ``u ∈ (0, 1)`` (any shape): cubic Hermite interpolation of ``table``
    (a ``GammaTable``, indexed by ``logit(u)``, or a ``BitsGammaTable``, indexed by the bits of
    ``min(u, 1 − u)``)."""
    if isinstance(table, PolyGammaTable):
        return _quantile_poly(table, u)
    if isinstance(table, BitsGammaTable):
        return _quantile_from_bits(table, u)
    return _quantile_at_logit(table, jnp.log(u) - jnp.log1p(-u))


# ----------------------------------------------------------------------------- bits-indexed table
# The simulator's table. ``v = min(u, 1 − u)`` (exact in floating point) is split into its binary
# exponent ``e`` and mantissa: ``v ∈ [2^e, 2^{e+1})`` is cut into ``2^BITS_SUB`` equal cells, and
# on each cell ``y = log Q_k(u)`` is the Hermite cubic in the cell coordinate with exact end
# slopes ``dy/dv = ±1/f_Y(y)``. The row index and the cell coordinate are integer operations on
# the float's bits: no ``log`` and no logit per draw, and XLA evaluates the index chain cheaply
# when it re-evaluates it per coefficient read inside a fusion (the logit table's ``log``/``log1p``
# chain was re-evaluated that way: profiled at 57 % of a GELATO round on CPU).
# In log v, ``y`` is smooth on both tails (``y ≈ (log v + log Γ(k+1))/k`` below,
# ``y ≈ log(−log v)`` above), so a cell of relative width 2^-BITS_SUB keeps the cubic's error far
# below the float's resolution (``tests/test_reference_sampling.py``).
BITS_SUB = {jnp.dtype("float32"): 6, jnp.dtype("float64"): 8}


class BitsGammaTable(NamedTuple):
    """``coef`` ``(2·n_oct·2^b, 4)``: rows ``[side, octave, cell]`` of the Hermite cubics
    ``y = c0 + c1 t + c2 t² + c3 t³``, side 0: ``u = v < ½``, side 1: ``u = 1 − v``."""

    coef: Any


def _octaves(dtype) -> tuple[int, int, int]:
    """``(e_min, n_oct, mantissa bits)``: ``v`` of the grid uniforms lies in
    ``[2^e_min, 2^-1)``, i.e. octaves ``e_min .. −2``."""
    if jnp.dtype(dtype) == jnp.float32:
        return -24, 23, 23
    return -53, 52, 52


def gamma_table_bits(k, dtype) -> BitsGammaTable:
    """Build the bits-indexed log-quantile table of ``Gamma(k, 1)`` (``k`` may be traced).

    The nodes are computed on the host in float64 (``scipy.special.gammaincinv`` /
    ``gammainccinv``, then cast to ``dtype``) through ``jax.pure_callback``: the table is built
    once per compiled call, outside the round loop, and an in-graph solver (bisection on
    ``gammainc``) roughly doubled the compile time of every simulator program (measured on the
    default GELATO program). Under ``vmap`` over ``k`` (a sweep over ``k_H``) the callback runs
    once per value."""
    out_dtype = jnp.dtype(dtype)
    e_min, n_oct, _ = _octaves(out_dtype)
    rows = 2 * n_oct * 2 ** BITS_SUB[out_dtype]
    kdt = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    shape = jax.ShapeDtypeStruct((rows, 4), out_dtype)
    coef = jax.pure_callback(lambda kk: _bits_table_host(kk, out_dtype.name), shape, jnp.asarray(k, kdt),
                             vmap_method="sequential")
    return BitsGammaTable(coef)


def _bits_table_host(k, dtype_name: str):
    import numpy as np

    k = np.asarray(k, np.float64)
    if k.ndim:  # sequential vmap hands one value at a time; stay general
        return np.stack([_bits_table_host(x, dtype_name) for x in k.reshape(-1)]).reshape(*k.shape, -1, 4)
    return _bits_table_cached(float(k), dtype_name)


@functools.lru_cache(maxsize=64)
def _bits_table_cached(k: float, dtype_name: str):
    import numpy as np
    from scipy.special import gammainccinv, gammaincinv
    from scipy.special import gammaln as np_gammaln

    out_dtype = jnp.dtype(dtype_name)
    e_min, n_oct, _ = _octaves(out_dtype)
    b = BITS_SUB[out_dtype]
    e = np.arange(e_min, e_min + n_oct, dtype=np.float64)[:, None]
    j = np.arange(2**b + 1, dtype=np.float64)[None, :]
    v = np.exp2(e) * (1.0 + j * 2.0**-b)  # (n_oct, 2^b + 1) node positions
    width = np.exp2(e) * 2.0**-b  # cell width in v
    lgk = float(np_gammaln(k))
    y_min = math.log(np.finfo(np.float64).tiny) + 1.0
    y_lo = max((math.log(2.0**e_min) + float(np_gammaln(k + 1.0))) / k - 2.0, y_min)
    rows = []
    with np.errstate(divide="ignore", over="ignore"):
        for inv, sign in ((gammaincinv, 1.0), (gammainccinv, -1.0)):
            x = inv(k, v)
            y = np.maximum(np.where(x > 0, np.log(np.where(x > 0, x, 1.0)), y_lo), y_lo)  # Q below the float range
            log_fy = k * y - np.exp(y) - lgk
            m = sign * width * np.exp(-log_fy)  # dy/dt = width · dy/dv
            y0, y1, m0, m1 = y[:, :-1], y[:, 1:], m[:, :-1], m[:, 1:]
            c = np.stack([y0, m0, 3 * (y1 - y0) - 2 * m0 - m1, 2 * (y0 - y1) + m0 + m1], axis=-1)
            rows.append(c.reshape(-1, 4))
    out = np.concatenate(rows).astype(out_dtype)
    out.setflags(write=False)
    return out


def _quantile_from_bits(table: BitsGammaTable, u):
    row, t = bits_row(u)
    c = table.coef.at[row].get(mode="promise_in_bounds")  # row is in range by construction
    return jnp.exp(((c[..., 3] * t + c[..., 2]) * t + c[..., 1]) * t + c[..., 0])


def bits_row(u):
    """``(row, t)``: the ``BitsGammaTable`` row of each uniform ``u`` and its cell coordinate
    ``t ∈ [0, 1)``, from the float bits of ``min(u, 1 − u)`` (integer operations only)."""
    u = jnp.asarray(u)
    dtype = u.dtype
    e_min, n_oct, mbits = _octaves(dtype)
    b = BITS_SUB[jnp.dtype(dtype)]
    itype = jnp.uint32 if dtype == jnp.float32 else jnp.uint64
    upper = u >= 0.5
    v = jnp.maximum(jnp.where(upper, 1.0 - u, u), jnp.asarray(2.0**e_min, dtype))
    bits = jax.lax.bitcast_convert_type(v, itype)
    bias = 127 if dtype == jnp.float32 else 1023
    octave = jnp.clip((bits >> itype(mbits)).astype(jnp.int32) - (bias + e_min), 0, n_oct - 1)
    low = mbits - b
    cell = ((bits >> itype(low)) & itype(2**b - 1)).astype(jnp.int32)
    t = (bits & itype(2**low - 1)).astype(dtype) * jnp.asarray(2.0**-low, dtype)
    row = (upper.astype(jnp.int32) * n_oct + octave) * (2**b) + cell
    return row, t


# ----------------------------------------------------------------------------- polynomial table
# The simulator's sampler: no gather. XLA's CPU gather costs ≈ 40 ns per element inside the round
# loop (profiled: two thirds of a GELATO round with the bits-indexed table, BENCHMARKS.md), while a
# select or a multiply-add on a vector of realizations costs a fraction of a nanosecond. So the
# quantile is a handful of polynomials chosen by comparisons: with ``v = min(u, 1 − u)`` and
# ``s = log v ∈ [log 2^-b, log ½]`` (``b`` = 24 in float32, 53 in float64: the generator's
# smallest uniform), each side (``u < ½``: ``Q_k(v)``; ``u ≥ ½``: ``Q_k(1 − v)``) is cut into
# ``P`` pieces of ``s`` (finer towards the median, where ``y`` bends most; the pieces are
# ``s_hi − (s_hi − s_lo)·(i/P)²``) and on each ``y = log Q_k`` is the Chebyshev–Lobatto
# interpolant of degree ``d`` (exact at both ends of every piece, so the sampler is continuous),
# stored as monomial coefficients in the piece coordinate ``x ∈ [−1, 1]``. In ``s`` both tails are
# smooth (``y ≈ (s + log Γ(k+1))/k`` below, ``y ≈ log(−s)`` above, singular only at ``s = 0``),
# so a few pieces reach the float's resolution: float32 ``P = 3, d = 12`` (interpolation error of
# the law < 3e-8 in Kolmogorov distance for k ∈ [0.05, 1000]), float64 ``P = 5, d = 20``
# (< 2e-13). Cost per draw: one ``log``, ``(2P − 1)(d + 1)`` selects, ``d`` multiply-adds, one
# ``exp`` (the caller's).
POLY_PIECES = {jnp.dtype("float32"): (3, 12), jnp.dtype("float64"): (5, 20)}


class PolyGammaTable(NamedTuple):
    """``coef`` ``(2, P, d + 1)``: side (0: ``u < ½``), piece, monomial coefficients of ``y = log Q_k``
    in the piece coordinate ``x = (s − mid_p)/half_p`` (the pieces: ``poly_pieces(dtype)``)."""

    coef: Any


@functools.lru_cache(maxsize=4)
def poly_pieces(dtype) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """``(bounds, mids, halves)`` of the ``P`` pieces of ``s = log min(u, 1 − u)`` in ``dtype``."""
    dtype = jnp.dtype(dtype)
    n, _ = POLY_PIECES[dtype]
    s_lo = math.log(2.0 ** -(24 if dtype == jnp.float32 else 53))
    s_hi = math.log(0.5)
    bounds = tuple(s_hi - (s_hi - s_lo) * (i / n) ** 2 for i in range(n, -1, -1))
    mids = tuple(0.5 * (a + b) for a, b in zip(bounds[:-1], bounds[1:]))
    halves = tuple(0.5 * (b - a) for a, b in zip(bounds[:-1], bounds[1:]))
    return bounds, mids, halves


def gamma_table_poly(k, dtype) -> PolyGammaTable:
    """Build the polynomial log-quantile table of ``Gamma(k, 1)``; the coefficients are fitted on
    the host in float64 and cached.

    A concrete ``k`` (a number or array outside ``jit``) gives the table as an array: the drivers
    build it so (``engine.entropy_table``) and hand it to their compiled programs as an argument,
    which keeps host callbacks out of those programs (JAX's persistent compilation cache refuses
    programs with callbacks; ``gelato sweep`` builds one table per grid point where ``k_H``
    varies). A traced ``k`` (a caller's own ``jit`` or ``vmap`` over ``k_H``) is served by
    ``jax.pure_callback``, once per compiled call (under ``vmap`` over ``k`` once per value); both
    give the same values."""
    out_dtype = jnp.dtype(dtype)
    if not isinstance(k, jax.core.Tracer):
        return PolyGammaTable(jnp.asarray(_poly_table_host(k, out_dtype.name)))
    n, d = POLY_PIECES[out_dtype]
    kdt = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    shape = jax.ShapeDtypeStruct((2, n, d + 1), out_dtype)
    coef = jax.pure_callback(lambda kk: _poly_table_host(kk, out_dtype.name), shape, jnp.asarray(k, kdt),
                             vmap_method="sequential")
    return PolyGammaTable(coef)


def _poly_table_host(k, dtype_name: str):
    import numpy as np

    k = np.asarray(k, np.float64)
    if k.ndim:
        return np.stack([_poly_table_host(x, dtype_name) for x in k.reshape(-1)]).reshape(*k.shape, *_poly_shape(dtype_name))
    return _poly_table_cached(float(k), dtype_name)


def _poly_shape(dtype_name: str):
    n, d = POLY_PIECES[jnp.dtype(dtype_name)]
    return (2, n, d + 1)


@functools.lru_cache(maxsize=64)
def _poly_table_cached(k: float, dtype_name: str):
    import numpy as np
    from numpy.polynomial import chebyshev
    from scipy.special import gammainccinv, gammaincinv
    from scipy.special import gammaln as np_gammaln

    out_dtype = jnp.dtype(dtype_name)
    n, d = POLY_PIECES[out_dtype]
    bounds, mids, halves = poly_pieces(out_dtype)
    x = np.cos(np.pi * np.arange(d + 1) / d)  # Chebyshev–Lobatto nodes: both ends of the piece
    out = np.zeros((2, n, d + 1))
    with np.errstate(divide="ignore"):
        for side, inv in enumerate((gammaincinv, gammainccinv)):
            for p in range(n):
                s = mids[p] + halves[p] * x
                q = inv(k, np.exp(s))
                # Q below the float64 range (k ≪ 1, far lower tail): there Q^k/Γ(k+1) = v to double
                # precision, so y = (s + log Γ(k+1))/k continues the smooth function (the
                # evaluation clamps it to the float's range)
                y = np.where(q > 0, np.log(np.where(q > 0, q, 1.0)), (s + np_gammaln(k + 1.0)) / k)
                c = chebyshev.cheb2poly(chebyshev.chebfit(x, y, d))  # trailing zeros trimmed
                out[side, p, : c.size] = c
    out = out.astype(out_dtype)
    out.setflags(write=False)
    return out


def _quantile_poly(table: PolyGammaTable, u):
    u = jnp.asarray(u)
    dtype = u.dtype
    bounds, mids, halves = poly_pieces(dtype)
    n = len(mids)
    upper = u >= 0.5
    v = jnp.maximum(jnp.where(upper, 1.0 - u, u), jnp.asarray(math.exp(bounds[0]), dtype))
    s = jnp.log(v)
    inner = [s > jnp.asarray(b, dtype) for b in bounds[1:-1]]  # piece p: s above p inner bounds

    def pick(vals):
        """``vals[p]`` of each element's piece (selects only: no gather)."""
        out = vals[n - 1]
        for p in range(n - 2, -1, -1):
            out = jnp.where(inner[p], out, vals[p])
        return out

    x = (s - pick([jnp.asarray(m, dtype) for m in mids])) * pick([jnp.asarray(1.0 / h, dtype) for h in halves])
    coef = table.coef
    d = coef.shape[-1] - 1

    def c(j):
        return jnp.where(upper, pick([coef[1, p, j] for p in range(n)]), pick([coef[0, p, j] for p in range(n)]))

    y = c(d)
    for j in range(d - 1, -1, -1):
        y = y * x + c(j)
    # Q at least e·(smallest normal number): never flushed to 0, monotone where the law falls below
    return jnp.exp(jnp.maximum(y, jnp.asarray(math.log(float(jnp.finfo(dtype).tiny)) + 1.0, dtype)))


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
