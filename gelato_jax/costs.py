r"""Payload, latency and energy of one round (docs/model.md §3) and their mean-proxy forms (§5).

Round latency ``D = P τ_d + B/r + (t_v0 + t_v1 L) + δ + B_dl/r_dl`` and device energy
``E = P e_d + P_tx B/r`` for ``P`` draft passes, ``L`` sent tokens, ``B`` uplink bits and
``B_dl`` downlink bits. Payload schemes:

* ``topp`` (GELATO): ``b(H) = b_id + m(H)(b_id + b_prob)`` per sent token;
* ``full`` (static distributed SD): ``b_id + V_vocab b_prob`` per sent token;
* ``scalar`` (DSSD): ``b_id + b_prob`` per sent token on the uplink, and one full target
  distribution (``V_vocab b_prob`` bits) added to the ``b_dl`` downlink bits when a draft is
  rejected.

``B/r`` is written ``where(B > 0, B/r, 0)`` so that an outage round (``r`` tiny) with nothing to
send costs no time and no energy, without ``0·inf`` NaNs.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from theory import _generated

from . import tokens
from .scenario import Scenario

__all__ = [
    "PAYLOADS",
    "check_payload",
    "token_bits",
    "uplink_bits",
    "downlink_bits",
    "latency",
    "energy",
    "ProxyCosts",
    "expected_tokens_iid",
    "mean_token_bits",
    "proxy_costs",
]

PAYLOADS = ("topp", "full", "scalar")


def check_payload(payload: str) -> None:
    if payload not in PAYLOADS:
        raise ValueError(f"payload must be one of {list(PAYLOADS)}, got {payload!r}")


def token_bits(scenario: Scenario, payload: str, entropy):
    """Uplink bits of each drafted token (same shape as ``entropy``)."""
    check_payload(payload)
    if payload == "topp":
        return tokens.topp_bits(scenario, entropy)
    if payload == "full":
        per = scenario.b_id + scenario.V_vocab * scenario.b_prob
    else:
        per = scenario.b_id + scenario.b_prob
    return jnp.broadcast_to(jnp.asarray(per, jnp.result_type(entropy)), jnp.shape(entropy))


def uplink_bits(scenario: Scenario, payload: str, entropy, sent):
    """Total uplink bits of a round that sends the first ``sent`` of the drafted tokens."""
    pos = jnp.arange(entropy.shape[-1])
    bits = token_bits(scenario, payload, entropy)
    return jnp.sum(jnp.where(pos < sent, bits, 0.0), axis=-1)


def downlink_bits(scenario: Scenario, payload: str, rejected):
    """Downlink bits: ``b_dl``, plus a full target distribution on a rejection under ``scalar``."""
    check_payload(payload)
    base = jnp.asarray(scenario.b_dl) + jnp.zeros_like(rejected, dtype=jnp.result_type(float))
    if payload == "scalar":
        return base + jnp.where(rejected, scenario.V_vocab * scenario.b_prob, 0.0)
    return base


def _airtime(bits, rate):
    return jnp.where(bits > 0, bits / rate, 0.0)


def latency(scenario: Scenario, passes, sent, bits_ul, bits_dl, rate, rate_dl):
    """Round latency ``D`` (s), docs/model.md §3."""
    return (
        passes * scenario.tau_d
        + _airtime(bits_ul, rate)
        + scenario.t_v0
        + scenario.t_v1 * sent
        + scenario.delta
        + _airtime(bits_dl, rate_dl)
    )


def energy(scenario: Scenario, passes, bits_ul, rate):
    """Device energy ``E`` (J) of a round, docs/model.md §3 (the edge is grid-powered)."""
    return passes * scenario.e_d + scenario.P_tx * _airtime(bits_ul, rate)


def expected_tokens_iid(alpha, gamma_max: int):
    r"""``N̂(γ) = Σ_{j=0}^{γ} α^j = (1 − α^{γ+1})/(1 − α)`` for ``γ = 0..gamma_max``.

    The formula is sympy's (``theory.closed_forms.N_iid``), printed to JAX in
    ``theory/_generated.py``: the closed form away from ``α = 1`` and its Taylor polynomial near
    it, so the value (``γ + 1``) and gradient at ``α = 1`` are finite.
    """
    return _generated.expected_tokens_iid(alpha, gamma_max)


def mean_token_bits(scenario: Scenario, payload: str, *, after_reject: bool = False):
    """``b̄``: mean uplink bits per sent token under ``payload`` (exact, §5); ``after_reject=True``:
    at the first drafted position after a rejection (``b̄_r``; differs only for ``topp`` with
    ``after_reject_H_scale ≠ 1``)."""
    check_payload(payload)
    if payload == "topp":
        return tokens.mean_topp_bits_after_reject(scenario) if after_reject else tokens.mean_topp_bits(scenario)
    return token_bits(scenario, payload, jnp.zeros(()))


class ProxyCosts(NamedTuple):
    """Mean-proxy quantities for every budget ``γ = 0..γ_max`` (arrays of shape ``(γ_max+1,)``)."""

    tokens: object  # N̂(γ)
    latency: object  # D̂(γ, r)
    energy: object  # Ê(γ, r)

    @property
    def throughput(self):
        return self.tokens / self.latency


def proxy_costs(scenario: Scenario, payload: str, alpha_bar, b_bar, rate, rate_dl, *, alpha_bar_1=None,
                b_bar_1=None) -> ProxyCosts:
    r"""The paper's expectation proxy (§5, ``proxy="mean"``) at uplink rate ``rate``.

    ``N̂(γ) = (1 − ᾱ^{γ+1})/(1 − ᾱ)``; ``D̂`` and ``Ê`` use ``P = L = γ`` and ``γ b̄`` uplink bits.
    Under ``scalar`` the expected downlink adds ``(1 − ᾱ^γ) V_vocab b_prob`` (a rejection occurs
    unless all ``γ`` drafts are accepted).

    First drafted position [ours]: with ``alpha_bar_1`` (``ᾱ_1``) and ``b_bar_1`` (``b̄_1``) the
    first position has its own means (after a rejection: ``Scenario.after_reject_H_scale``,
    ``after_reject_a0_shift``). Then, for
    ``γ ≥ 1``, ``N̂(γ) = 1 + ᾱ_1 Σ_{j=0}^{γ−1} ᾱ^j = N_iid(ᾱ, γ) + (ᾱ_1 − ᾱ) N_iid(ᾱ, γ − 1)``
    (``theory.closed_forms.N_pos`` with ``α_2 = … = α_γ``; the identity is tested), the uplink
    carries ``b̄_1 + (γ − 1) b̄`` bits and a rejection has probability ``1 − ᾱ_1 ᾱ^{γ−1}``. The
    additive form keeps the i.i.d. values bit for bit when ``ᾱ_1 = ᾱ`` and ``b̄_1 = b̄``.
    """
    # rates with batch dimensions (gelato_jax.kernel: (R,) rates of a chunk): the budgets go on the
    # leading axis, the outputs are (γ_max + 1, *batch); ``alpha_bar`` must then be one scalar
    batch = jnp.ndim(rate)
    g = jnp.arange(scenario.gamma_max + 1).astype(jnp.result_type(float)).reshape((-1,) + (1,) * batch)
    n_hat = expected_tokens_iid(alpha_bar, scenario.gamma_max)
    if batch:
        if jnp.ndim(alpha_bar):
            raise ValueError("proxy_costs: with batched rates alpha_bar must be a scalar")
        n_hat = n_hat.reshape(g.shape)
    bits_ul = g * b_bar
    p_reject = 1.0 - jnp.asarray(alpha_bar) ** g
    if alpha_bar_1 is not None:
        d_alpha = jnp.asarray(alpha_bar_1) - alpha_bar
        n_prev = jnp.concatenate([jnp.zeros((1,) + n_hat.shape[1:], n_hat.dtype), n_hat[:-1]])  # N_iid(ᾱ, γ−1), 0 at γ=0
        n_hat = n_hat + d_alpha * n_prev
        p_reject = p_reject - jnp.where(g >= 1, d_alpha * jnp.asarray(alpha_bar) ** jnp.maximum(g - 1, 0), 0.0)
    if b_bar_1 is not None:
        bits_ul = bits_ul + jnp.where(g >= 1, jnp.asarray(b_bar_1) - b_bar, 0.0)
    bits_dl = scenario.b_dl + jnp.zeros_like(g)
    if payload == "scalar":
        bits_dl = bits_dl + p_reject * scenario.V_vocab * scenario.b_prob
    d_hat = latency(scenario, g, g, bits_ul, bits_dl, rate, rate_dl)
    e_hat = energy(scenario, g, bits_ul, rate)
    return ProxyCosts(n_hat, d_hat, e_hat)
