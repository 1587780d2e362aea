r"""A plain numpy implementation of the same model, written from docs/model.md §1–§6 only.

It is the project's independent check of the JAX core and its speed reference:

* ``rollout(scenario, policy, exogenous)`` replays the same ``Exogenous`` arrays as
  ``gelato_jax.rollout`` and returns the same per-round ``(R, T)`` fields (float64 or float32);
* ``simulate(scenario, policy, seed=..., realizations=..., rounds=...)`` draws its own
  randomness with ``numpy.random.Generator`` (PCG64: a different stream from JAX's, same laws)
  and streams the per-realization time averages, like ``gelato_jax.simulate``;
* ``python_loop_rollout`` is a pure-Python loop over realizations and rounds (``math`` only),
  the slow baseline of the benchmark and a third opinion in the tests.

The code is vectorized over realizations and loops over rounds (and over the ``γ_max``
positions inside a round). Nothing here imports the JAX core's formulas: rates, path loss,
mean proxy, ``ᾱ`` (``scipy.integrate.quad``), ``b̄`` (piecewise sum of Gamma CDF differences),
drift-plus-penalty argmax, leaky bucket, acceptance, bits, latency and energy are re-derived
from the specification. The law of the first drafted position after a rejected round
(``Scenario.after_reject_H_scale``, ``after_reject_a0_shift``; [ours]) is re-derived too: each
realization remembers whether its previous round had a rejection; then position 1's entropy is
scaled, its acceptance intercept shifted, and the mean proxy uses ``ᾱ_r``, ``b̄_r`` (quadrature at
the scaled law): ``N̂(γ) = 1 + ᾱ_r Σ_{j<γ} ᾱ^j``, uplink ``b̄_r + (γ−1) b̄``, rejection
probability ``1 − ᾱ_r ᾱ^{γ−1}``. Supported policies: ``Gelato`` with ``proxy="mean"`` (``exit`` bucket
or none, any payload) and ``StaticSD``; channel ``rayleigh`` with i.i.d. entropies in
``simulate`` (``rollout`` accepts any exogenous arrays).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .pytree import field_names

__all__ = [
    "Params",
    "params",
    "mean_acceptance",
    "mean_topp_bits",
    "rollout",
    "simulate",
    "python_loop_rollout",
    "python_loop_simulate",
]

_LOG2 = math.log(2.0)


@dataclass(frozen=True)
class Params:
    """Plain floats of one scenario + policy (docs/model.md §2–§6, §9)."""

    G: int  # gamma_max
    W: float
    W_dl: float
    P_tx: float
    P_edge: float
    g0: float  # path-loss gain 10^(-PL/10)
    N0: float  # W/Hz, noise figure included
    h_min: float
    r_min: float
    tau_d: float
    e_d: float
    t_v0: float
    t_v1: float
    delta: float
    V_vocab: float
    b_id: float
    b_prob: float
    b_dl: float
    c_p: float
    m_cap: float  # min(V_vocab, m_max)
    k_H: float
    theta_H: float
    a0: float
    a1: float
    E_bar: float
    energy_arrival: str
    # policy
    kind: str  # "gelato" | "static"
    payload: str
    exit: str
    V: float
    H_th: float
    Theta_th: float
    gamma: int
    alpha_bar: float
    b_bar: float  # mean uplink bits per sent token under the policy's payload
    after_reject_H_scale: float = 1.0
    after_reject_a0_shift: float = 0.0
    alpha_bar_rej: float | None = None  # ᾱ_r at position 1 after a rejection (None: = alpha_bar)
    b_bar_rej: float | None = None  # b̄_r at position 1 after a rejection (None: = b_bar)
    objective: str = "per_round"  # docs/model.md §11: "time_average" settles the queue against P_bar·D
    P_bar: float = 0.6  # W, average-power budget of objective="time_average"

    def _first(self, rej: bool) -> tuple[float, float]:
        a = self.alpha_bar_rej if rej and self.alpha_bar_rej is not None else self.alpha_bar
        b = self.b_bar_rej if rej and self.b_bar_rej is not None else self.b_bar
        return a, b

    def n_hat(self, g: int, rej: bool = False) -> float:
        """``N̂(γ) = 1 + ᾱ_1 Σ_{j=0}^{γ−1} ᾱ^j``, ``ᾱ_1 = ᾱ_r`` after a rejection, else ``ᾱ``."""
        return 1.0 + self._first(rej)[0] * sum(self.alpha_bar**j for j in range(g))

    def bits_hat(self, g: int, rej: bool = False) -> float:
        return self._first(rej)[1] + (g - 1) * self.b_bar if g > 0 else 0.0

    def p_reject(self, g: int, rej: bool = False) -> float:
        """``1 − ᾱ_1 ᾱ^{γ−1}`` (no rejection possible at ``γ = 0``)."""
        return 1.0 - self._first(rej)[0] * self.alpha_bar ** (g - 1) if g > 0 else 0.0

    def a0_at(self, i: int, rej: bool = False) -> float:
        """Acceptance intercept at position ``i`` (0-based)."""
        return self.a0 + self.after_reject_a0_shift if (i == 0 and rej) else self.a0

    def h_scale_at(self, i: int, rej: bool = False) -> float:
        return self.after_reject_H_scale if (i == 0 and rej) else 1.0


@functools.lru_cache(maxsize=64)
def mean_acceptance(k: float, theta: float, a0: float, a1: float) -> float:
    r"""``ᾱ = ∫ σ(a0 − a1 h) Gamma(h; k, θ) dh`` by adaptive quadrature (split at the bulk)."""
    from scipy import integrate, special, stats

    f = lambda h: special.expit(a0 - a1 * h) * stats.gamma.pdf(h, k, scale=theta)
    cuts = [0.0, 1e-10 * theta, 1e-4 * theta, theta, 10 * theta, 60 * theta + 20 * k * theta, np.inf]
    return float(sum(integrate.quad(f, lo, hi, epsabs=0, epsrel=1e-12, limit=400)[0] for lo, hi in zip(cuts, cuts[1:])))


@functools.lru_cache(maxsize=64)
def mean_topp_bits(k: float, theta: float, c_p: float, m_cap: float, b_id: float, b_prob: float) -> float:
    r"""``b̄ = b_id + E[m(H)](b_id + b_prob)`` with ``m(H) = min(M, ⌈c_p e^H⌉)``.

    ``m(H) = j`` on ``j − 1 < c_p e^H ≤ j``; summing ``j P(m = j)`` over the steps (Gamma CDF
    differences) plus ``M P(c_p e^H > M − 1)`` integrates the step function exactly.
    """
    from scipy import stats

    M = int(m_cap)
    j = np.arange(1, M, dtype=np.float64)  # m = 1..M-1
    hi = np.log(j / c_p)
    lo = np.log(np.maximum(j - 1, 1e-300) / c_p)
    lo[0] = -np.inf
    F = lambda x: stats.gamma.cdf(np.maximum(x, 0.0), k, scale=theta) * (x > 0)
    p = F(hi) - F(lo)
    tail = stats.gamma.sf(max(math.log((M - 1) / c_p), 0.0), k, scale=theta) if M > 1 else 1.0
    mean_m = float(np.sum(j * p) + M * tail)
    return b_id + mean_m * (b_id + b_prob)


def params(scenario, policy) -> Params:
    """Read the plain values of a ``Scenario`` and a ``Gelato``/``StaticSD`` policy."""
    if scenario.entropy_process != "round":
        raise ValueError(f"reference: Scenario.entropy_process must be 'round', got {scenario.entropy_process!r}")
    s = {n: getattr(scenario, n) for n in field_names(scenario)}
    kind = type(policy).__name__
    if kind == "Gelato":
        if policy.proxy != "mean":
            raise ValueError(f"reference: Gelato.proxy must be 'mean', got {policy.proxy!r}")
        if policy.exit not in ("bucket", "none"):
            raise ValueError(f"reference: Gelato.exit must be 'bucket' or 'none', got {policy.exit!r}")
        pol = dict(kind="gelato", payload=policy.payload, exit=policy.exit, V=float(policy.V),
                   H_th=float(policy.H_th), Theta_th=float(policy.Theta_th), gamma=0)
    elif kind == "StaticSD":
        pol = dict(kind="static", payload=policy.payload, exit="none", V=0.0, H_th=0.0, Theta_th=0.0,
                   gamma=int(policy.gamma))
    else:
        raise ValueError(f"reference: policy must be Gelato or StaticSD, got {kind}")
    if s["objective"] == "time_average" and kind == "Gelato":
        raise ValueError("reference: objective='time_average' is supported for StaticSD only (the ratio rule of "
                         "docs/model.md §11 is not in the reference)")
    f = lambda n: float(np.asarray(s[n]))
    pl_db = 128.1 + 37.6 * math.log10(f("d") / 1000.0)
    k, th = f("k_H"), f("theta_H")
    scale1, shift1 = f("after_reject_H_scale"), f("after_reject_a0_shift")
    m_cap = min(f("V_vocab"), float(s["m_max"]))
    b_bar_rej = None
    if pol["payload"] == "topp":
        b_bar = mean_topp_bits(k, th, f("c_p"), m_cap, f("b_id"), f("b_prob"))
        b_bar_rej = mean_topp_bits(k, th * scale1, f("c_p"), m_cap, f("b_id"), f("b_prob"))
    elif pol["payload"] == "full":
        b_bar = f("b_id") + f("V_vocab") * f("b_prob")
    else:
        b_bar = f("b_id") + f("b_prob")
    return Params(
        G=int(s["gamma_max"]), W=f("W"), W_dl=f("W_dl"), P_tx=f("P_tx"), P_edge=f("P_edge"),
        g0=10.0 ** (-pl_db / 10.0), N0=10.0 ** ((f("N0_dBm_Hz") + f("NF_dB") - 30.0) / 10.0),
        h_min=f("h_min"), r_min=f("r_min"), tau_d=f("c_d") / f("f"), e_d=f("kappa") * f("c_d") * f("f") ** 2,
        t_v0=f("t_v0"), t_v1=f("t_v1"), delta=f("delta"), V_vocab=f("V_vocab"), b_id=f("b_id"),
        b_prob=f("b_prob"), b_dl=f("b_dl"), c_p=f("c_p"), m_cap=m_cap, k_H=k, theta_H=th,
        a0=f("a0"), a1=f("a1"), E_bar=f("E_bar"), energy_arrival=s["energy_arrival"],
        alpha_bar=mean_acceptance(k, th, f("a0"), f("a1")), b_bar=b_bar, after_reject_H_scale=scale1,
        after_reject_a0_shift=shift1, alpha_bar_rej=mean_acceptance(k, th * scale1, f("a0") + shift1, f("a1")),
        b_bar_rej=b_bar_rej, objective=s["objective"], P_bar=f("P_bar"), **pol,
    )


# ----------------------------------------------------------------------------- one round, vectorized
class _Round:
    """The per-round model for a batch of realizations, with constants hoisted (dtype ``dt``)."""

    def __init__(self, p: Params, dt):
        self.p, self.dt = p, np.dtype(dt)
        c = lambda x: self.dt.type(x)
        self.c = c
        g = np.arange(p.G + 1, dtype=self.dt)
        self.g = g
        self.pos = np.arange(p.G)
        # mean proxy pieces that do not depend on the rate (docs/model.md §5)
        # row 0: after an accepted/bonus round, row 1: after a rejection
        self.n_hat = np.array([[p.n_hat(n, rej) for n in range(p.G + 1)] for rej in (False, True)], dtype=self.dt)
        self.bits_hat = np.array([[p.bits_hat(n, rej) for n in range(p.G + 1)] for rej in (False, True)], dtype=self.dt)
        dl_hat = np.full((2, p.G + 1), p.b_dl)
        if p.payload == "scalar":
            dl_hat = dl_hat + np.array([[p.p_reject(n, rej) for n in range(p.G + 1)] for rej in (False, True)]) * p.V_vocab * p.b_prob
        self.dl_hat = dl_hat.astype(self.dt)
        self.a0 = np.array([[p.a0_at(i, rej) for i in range(p.G)] for rej in (False, True)], dtype=self.dt)
        self.h_scale = np.array([[p.h_scale_at(i, rej) for i in range(p.G)] for rej in (False, True)], dtype=self.dt)
        self.fixed_hat = (g * p.tau_d + p.t_v0 + g * p.t_v1 + p.delta).astype(self.dt)
        self.e_hat_fixed = (g * p.e_d).astype(self.dt)
        self.snr_ul = c(p.P_tx * p.g0 / (p.N0 * p.W))
        self.snr_dl = c(p.P_edge * p.g0 / (p.N0 * p.W_dl))
        self.full_bits = c(p.b_id + p.V_vocab * p.b_prob)
        self.scalar_bits = c(p.b_id + p.b_prob)

    def rates(self, h):
        p, c = self.p, self.c
        r = c(p.W) * np.log1p(self.snr_ul * h) / c(_LOG2)
        rdl = c(p.W_dl) * np.log1p(self.snr_dl * h) / c(_LOG2)
        return r, rdl

    def budget(self, Z, r, rdl, outage, rej):
        p, c = self.p, self.c
        if p.kind == "static":
            b = np.full(r.shape, p.gamma, np.int64)
        else:
            # U(γ) = V N̂(γ)/D̂(γ) − Z Ê(γ), γ = 0..G; airtime only where there are bits
            k = rej.astype(np.int64)
            air = np.where(self.g > 0, self.bits_hat[k] / r[:, None], c(0))
            D = self.fixed_hat + air + self.dl_hat[k] / rdl[:, None]
            E = self.e_hat_fixed + c(p.P_tx) * air
            U = c(p.V) * self.n_hat[k] / D - Z[:, None] * E
            U[:, 1:] = np.where(outage[:, None], -np.inf, U[:, 1:])
            b = np.argmax(U, axis=1)
        return np.where(outage, 0, b)

    def draft(self, H, budget):
        """Leaky bucket (docs/model.md §6): returns ``(sent, passes)``."""
        p, c = self.p, self.c
        if p.exit == "none" or p.kind == "static":
            return budget, budget
        R = H.shape[0]
        theta = np.zeros(R, self.dt)
        sent = budget.copy()
        passes = budget.copy()
        running = np.ones(R, bool)
        for i in range(p.G):
            theta = np.maximum(c(0), theta + H[:, i] - c(p.H_th))
            stop = running & (i < budget) & (theta > c(p.Theta_th))
            sent = np.where(stop, i, sent)
            passes = np.where(stop, i + 1, passes)
            running &= ~stop
        return sent, passes

    def step(self, Z, rej, h, a, H, U):
        """One round for all realizations (``rej``: the previous round had a rejection). Returns
        the per-round fields, the next queue and the next ``rej``."""
        p, c = self.p, self.c
        k = rej.astype(np.int64)
        H = H * self.h_scale[k]
        h = np.maximum(h, c(p.h_min))
        r, rdl = self.rates(h)
        outage = r < c(p.r_min)
        budget = self.budget(Z, r, rdl, outage, rej)
        sent, passes = self.draft(H, budget)
        live = self.pos < sent[:, None]
        ok = (U < c(1) / (c(1) + np.exp(-(self.a0[k] - c(p.a1) * H)))) & live
        accepted = np.cumprod(ok, axis=1).sum(axis=1)
        if p.payload == "topp":
            m = np.minimum(c(p.m_cap), np.ceil(c(p.c_p) * np.exp(H)))
            tok_bits = c(p.b_id) + m * c(p.b_id + p.b_prob)
            bits_ul = np.where(live, tok_bits, c(0)).sum(axis=1)
        else:
            per = self.full_bits if p.payload == "full" else self.scalar_bits
            bits_ul = sent.astype(self.dt) * per
        bits_dl = np.full(h.shape, c(p.b_dl))
        if p.payload == "scalar":
            bits_dl = bits_dl + np.where(accepted < sent, c(p.V_vocab * p.b_prob), c(0))
        air = np.where(bits_ul > 0, bits_ul / r, c(0))
        P, L = passes.astype(self.dt), sent.astype(self.dt)
        lat = P * c(p.tau_d) + air + c(p.t_v0) + c(p.t_v1) * L + c(p.delta) + bits_dl / rdl
        en = P * c(p.e_d) + c(p.P_tx) * air
        # docs/model.md §1 step 6; §11: an average-power budget allows P̄·D per round
        allowance = c(p.P_bar) * lat if p.objective == "time_average" else a
        Z_next = np.maximum(Z + en - allowance, c(0))
        row = dict(budget=budget, sent=sent, passes=passes, accepted=accepted, tokens=accepted + 1,
                   latency=lat, energy=en, queue=Z, rate=r, arrival=a, uplink_bits=bits_ul,
                   downlink_bits=bits_dl, outage=outage)
        return row, Z_next, (accepted < sent) | (passes > sent)


ROLLOUT_FIELDS = ("budget", "sent", "passes", "accepted", "tokens", "latency", "energy", "queue", "rate",
                  "arrival", "uplink_bits", "downlink_bits")


def rollout(scenario, policy, exogenous, *, dtype=np.float64) -> dict[str, np.ndarray]:
    """Replay ``exogenous`` (``channel_gain``, ``energy_arrival`` ``(R,T)``; ``entropy``,
    ``uniform`` ``(R,T,γ_max)``); returns per-round ``(R, T)`` arrays keyed like
    ``gelato_jax.Trajectory``. ``queue[:, t]`` is ``Z_t`` before the update, ``Z_0 = 0``."""
    p = params(scenario, policy)
    rd = _Round(p, dtype)
    h, a, H, U = (np.asarray(x, dtype) for x in exogenous)
    R, T = h.shape
    out = {k: [] for k in ROLLOUT_FIELDS}
    Z = np.zeros(R, dtype)
    rej = np.zeros(R, bool)
    for t in range(T):
        row, Z, rej = rd.step(Z, rej, h[:, t], a[:, t], H[:, t], U[:, t])
        for k in ROLLOUT_FIELDS:
            out[k].append(row[k])
    return {k: np.stack(v, axis=1) for k, v in out.items()}


def _draws(rng: np.random.Generator, p: Params, R: int, dt):
    """One round of exogenous draws for ``R`` realizations (docs/model.md §2, §1, §4)."""
    h = rng.standard_exponential(R, dtype=dt)
    if p.energy_arrival == "constant":
        a = np.full(R, p.E_bar, dt)
    elif p.energy_arrival == "exponential":
        a = dt.type(p.E_bar) * rng.standard_exponential(R, dtype=dt)
    else:
        a = dt.type(2 * p.E_bar) * rng.random(R, dtype=dt)
    H = dt.type(p.theta_H) * rng.standard_gamma(p.k_H, (R, p.G), dtype=dt)
    U = rng.random((R, p.G), dtype=dt)
    return h, a, H, U


def simulate(scenario, policy, *, seed: int = 0, realizations: int = 1024, rounds: int = 1000,
             dtype=np.float64) -> dict[str, np.ndarray]:
    """Per-realization time averages (keys as ``SimResult``), numpy randomness (PCG64).

    Only the i.i.d. Rayleigh channel and i.i.d. entropies are drawn here."""
    if scenario.channel != "rayleigh" or float(np.asarray(scenario.rho_H)) != 0.0:
        raise ValueError("reference.simulate supports channel='rayleigh' with rho_H=0 only")
    dt = np.dtype(dtype)
    p = params(scenario, policy)
    rd = _Round(p, dt)
    rng = np.random.default_rng(seed)
    R = realizations
    keys = ("throughput", "tokens", "latency", "energy", "arrival", "queue", "budget", "sent", "passes",
            "accepted", "outage")
    sums = {k: np.zeros(R, dt) for k in keys}
    Z = np.zeros(R, dt)
    rej = np.zeros(R, bool)
    for _ in range(rounds):
        row, Z, rej = rd.step(Z, rej, *_draws(rng, p, R, dt))
        row["throughput"] = row["tokens"] / row["latency"]
        for k in keys:
            sums[k] += row[k]
    out = {k: v / dt.type(rounds) for k, v in sums.items()}
    out["goodput"] = sums["tokens"] / sums["latency"]
    out["energy_per_token"] = sums["energy"] / sums["tokens"]
    out["queue_final"] = Z
    out["queue_mean"] = out.pop("queue")
    return out


# ----------------------------------------------------------------------------- pure Python
class _PyModel:
    """The model for one realization as plain Python floats (``math`` only)."""

    def __init__(self, p: Params):
        self.p = p
        G = p.G
        self.n_hat = [[p.n_hat(g, rej) for g in range(G + 1)] for rej in (False, True)]
        self.bits_hat = [[p.bits_hat(g, rej) for g in range(G + 1)] for rej in (False, True)]
        self.dl_hat = [[
            p.b_dl + (p.p_reject(g, rej) * p.V_vocab * p.b_prob if p.payload == "scalar" else 0.0) for g in range(G + 1)
        ] for rej in (False, True)]

    def round(self, Z, rej, h, a, H, U):
        """One round (``rej``: the previous round had a rejection): returns the ``ROLLOUT_FIELDS``
        values, the next queue and the next ``rej``."""
        p = self.p
        H = [x * p.h_scale_at(i, rej) for i, x in enumerate(H)]
        h = max(h, p.h_min)
        r = p.W * math.log1p(p.P_tx * p.g0 * h / (p.N0 * p.W)) / _LOG2
        rdl = p.W_dl * math.log1p(p.P_edge * p.g0 * h / (p.N0 * p.W_dl)) / _LOG2
        if r < p.r_min:
            budget = 0
        elif p.kind == "static":
            budget = p.gamma
        else:
            best, budget = -math.inf, 0
            for g in range(p.G + 1):
                air = self.bits_hat[rej][g] / r if g > 0 else 0.0
                D = g * p.tau_d + air + p.t_v0 + p.t_v1 * g + p.delta + self.dl_hat[rej][g] / rdl
                u = p.V * self.n_hat[rej][g] / D - Z * (g * p.e_d + p.P_tx * air)
                if u > best:
                    best, budget = u, g
        sent = passes = budget
        if p.kind == "gelato" and p.exit == "bucket":
            theta = 0.0
            for i in range(budget):
                theta = max(0.0, theta + H[i] - p.H_th)
                if theta > p.Theta_th:
                    sent, passes = i, i + 1
                    break
        accepted = 0
        while accepted < sent and U[accepted] < 1.0 / (1.0 + math.exp(-(p.a0_at(accepted, rej) - p.a1 * H[accepted]))):
            accepted += 1
        if p.payload == "topp":
            bits = sum(p.b_id + min(p.m_cap, math.ceil(p.c_p * math.exp(x))) * (p.b_id + p.b_prob) for x in H[:sent])
        elif p.payload == "full":
            bits = sent * (p.b_id + p.V_vocab * p.b_prob)
        else:
            bits = sent * (p.b_id + p.b_prob)
        bits_dl = p.b_dl + (p.V_vocab * p.b_prob if p.payload == "scalar" and accepted < sent else 0.0)
        air = bits / r if bits > 0 else 0.0
        lat = passes * p.tau_d + air + p.t_v0 + p.t_v1 * sent + p.delta + bits_dl / rdl
        en = passes * p.e_d + p.P_tx * air
        row = (budget, sent, passes, accepted, accepted + 1, lat, en, Z, r, a, bits, bits_dl)
        allowance = p.P_bar * lat if p.objective == "time_average" else a  # docs/model.md §11
        return row, max(Z + en - allowance, 0.0), (accepted < sent) or (passes > sent)


def python_loop_rollout(scenario, policy, exogenous) -> dict[str, list[list[float]]]:
    """The same model as a pure-Python double loop (realizations × rounds, ``math`` only).
    Returns per-round lists keyed like ``rollout``."""
    model = _PyModel(params(scenario, policy))
    h_all, a_all, H_all, U_all = (np.asarray(x, np.float64).tolist() for x in exogenous)
    out: dict[str, list[list[float]]] = {k: [] for k in ROLLOUT_FIELDS}
    for h_r, a_r, H_r, U_r in zip(h_all, a_all, H_all, U_all):
        rows = {k: [] for k in ROLLOUT_FIELDS}
        Z, rej = 0.0, False
        for h, a, H, U in zip(h_r, a_r, H_r, U_r):
            row, Z, rej = model.round(Z, rej, h, a, H, U)
            for k, v in zip(ROLLOUT_FIELDS, row):
                rows[k].append(v)
        for k in ROLLOUT_FIELDS:
            out[k].append(rows[k])
    return out


def python_loop_simulate(scenario, policy, *, seed: int = 0, realizations: int = 4, rounds: int = 100) -> dict[str, list[float]]:
    """Pure-Python per-round loop with its own randomness (``random.Random``: Mersenne Twister,
    ``expovariate``, ``gammavariate``, ``random``): the slow baseline of the benchmark. Returns
    per-realization mean throughput, energy and final queue (constant energy arrivals only)."""
    import random

    if scenario.channel != "rayleigh" or float(np.asarray(scenario.rho_H)) != 0.0 or scenario.energy_arrival != "constant":
        raise ValueError("reference.python_loop_simulate supports rayleigh fading, rho_H=0, constant arrivals only")
    p = params(scenario, policy)
    model = _PyModel(p)
    rng = random.Random(seed)
    out = {"throughput": [], "energy": [], "queue_final": []}
    for _ in range(realizations):
        Z, thr, en, rej = 0.0, 0.0, 0.0, False
        for _ in range(rounds):
            h = rng.expovariate(1.0)
            H = [p.theta_H * rng.gammavariate(p.k_H, 1.0) for _ in range(p.G)]
            U = [rng.random() for _ in range(p.G)]
            row, Z, rej = model.round(Z, rej, h, p.E_bar, H, U)
            thr += row[4] / row[5]
            en += row[6]
        out["throughput"].append(thr / rounds)
        out["energy"].append(en / rounds)
        out["queue_final"].append(Z)
    return out
