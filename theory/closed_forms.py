r"""Closed forms of one speculative-decoding round, derived with sympy (docs/model.md §3–§5, §8.6).

Every formula the simulator and the checks evaluate is defined here once, as a sympy object:

* ``N_iid``: expected tokens of a round with ``γ`` drafts and i.i.d. acceptance ``α``,
  ``Σ_{j=0}^{γ} α^j`` — ``summation`` gives ``(1 − α^{γ+1})/(1 − α)`` with the ``α = 1`` branch
  ``γ + 1``; ``N_iid_series`` is its Taylor polynomial in ``x = α − 1`` (``series``), used near
  ``α = 1`` so that neither the value nor the gradient is ``0/0``;
* ``N_pos``: position-dependent acceptance ``1 + Σ_{j=1}^{γ} Π_{i≤j} α_i``;
* ``alpha_bar_integral``: ``ᾱ = E[σ(a0 − a1 H)]`` for ``H ~ Gamma(k, θ)`` (an unevaluated
  ``Integral``; evaluated numerically by ``gelato_jax.tokens.mean_acceptance``);
* the round latency ``D``, device energy ``E`` and the mean proxy ``T̂ = N̂/D̂`` (§3, §5).

``theory.codegen`` prints the JAX forms of these expressions with sympy's ``JaxPrinter`` into
``theory/_generated.py``; ``gelato_jax.costs`` imports that file (no sympy at run time) and a test
checks that the file is what the sympy objects print today.
"""

from __future__ import annotations

import sympy as sp

__all__ = [
    "alpha", "gamma", "x", "j", "i",
    "N_iid_sum", "N_iid", "N_iid_closed", "N_iid_at_one", "N_iid_series", "SERIES_ORDER",
    "N_pos", "A_iid",
    "alpha_map", "gamma_pdf", "alpha_bar_integral",
    "round_latency", "round_energy", "mean_proxy_throughput",
    "SYM",
]

alpha = sp.Symbol("alpha", positive=True)
gamma = sp.Symbol("gamma", integer=True, nonnegative=True)
x = sp.Symbol("x", real=True)  # x = alpha - 1
j = sp.Symbol("j", integer=True, nonnegative=True)
i = sp.Symbol("i", integer=True, positive=True)

# ---------------------------------------------------------------- expected tokens, i.i.d. acceptance
#: Draft j (1-based) is the j-th of a leading run of accepted drafts with probability α^j; the
#: round produces A + 1 tokens, so E[N] = Σ_{j=0}^{γ} P(A ≥ j) = Σ_{j=0}^{γ} α^j.
N_iid_sum = sp.Sum(alpha**j, (j, 0, gamma))
N_iid = sp.summation(alpha**j, (j, 0, gamma))  # Piecewise((γ+1, α=1), ((1-α^{γ+1})/(1-α), True))
N_iid_closed = next(e for e, c in N_iid.args if c == sp.true)
N_iid_at_one = sp.limit(N_iid_closed, alpha, 1)
#: Number of Taylor terms used within |α − 1| < threshold (theory.codegen picks the threshold).
SERIES_ORDER = 8
N_iid_series = sp.series(N_iid_closed.subs(alpha, 1 + x), x, 0, SERIES_ORDER).removeO()
#: Expected accepted drafts E[A] = N − 1.
A_iid = sp.simplify(N_iid_closed - 1)

# ---------------------------------------------------------------- position-dependent acceptance
_a = sp.IndexedBase("alpha")


def N_pos(g: int) -> sp.Expr:
    r"""``1 + Σ_{j=1}^{g} Π_{i=1}^{j} α_i`` for a concrete budget ``g`` (sympy, indexed ``α_i``)."""
    if int(g) != g or g < 0:
        raise ValueError(f"g must be a non-negative integer, got {g!r}")
    return 1 + sum((sp.Mul(*[_a[k] for k in range(1, jj + 1)]) for jj in range(1, int(g) + 1)), sp.Integer(0))


# ---------------------------------------------------------------- entropy law and acceptance map
H = sp.Symbol("H", nonnegative=True)
a0, a1 = sp.symbols("a_0 a_1", real=True)
k_H, theta_H = sp.symbols("k_H theta_H", positive=True)
alpha_map = 1 / (1 + sp.exp(-(a0 - a1 * H)))
gamma_pdf = H ** (k_H - 1) * sp.exp(-H / theta_H) / (sp.gamma(k_H) * theta_H**k_H)
alpha_bar_integral = sp.Integral(alpha_map * gamma_pdf, (H, 0, sp.oo))

# ---------------------------------------------------------------- latency, energy, mean proxy (§3, §5)
P, L, Bul, Bdl = sp.symbols("P L B B_dl", nonnegative=True)
r, r_dl = sp.symbols("r r_dl", positive=True)
tau_d, e_d, t_v0, t_v1, delta, P_tx = sp.symbols("tau_d e_d t_v0 t_v1 delta P_tx", nonnegative=True)
b_bar = sp.Symbol("bbar", positive=True)
round_latency = P * tau_d + Bul / r + t_v0 + t_v1 * L + delta + Bdl / r_dl
round_energy = P * e_d + P_tx * Bul / r
#: Mean proxy (§5): P = L = γ, B = γ b̄, N̂ = N_iid(ᾱ).
mean_proxy_throughput = N_iid_closed / round_latency.subs({P: gamma, L: gamma, Bul: gamma * b_bar})

#: Symbols by name, for other theory modules.
SYM = dict(
    alpha=alpha, gamma=gamma, x=x, H=H, a0=a0, a1=a1, k_H=k_H, theta_H=theta_H, P=P, L=L, B=Bul,
    B_dl=Bdl, r=r, r_dl=r_dl, tau_d=tau_d, e_d=e_d, t_v0=t_v0, t_v1=t_v1, delta=delta, P_tx=P_tx,
    b_bar=b_bar,
)
