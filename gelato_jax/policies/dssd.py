r"""DSSD — distributed split speculative decoding (Ning, Zheng & Yang 2025, arXiv 2507.12000).

Mechanism (docs/model.md §3, §7): the device drafts a fixed ``gamma`` tokens and uploads only each
token's id and its own draft probability ``q(x)`` (the ``scalar`` payload, ``b_id + b_prob`` bits
per token). The edge tests acceptance with ``min(1, p(x)/q(x))`` and returns the rejection index
and, at a rejection, the target distribution ``p_j`` of that position on the downlink, from which
the device resamples ``norm(max(0, p_j − q_j))`` locally. No early exit, no energy control.

Downlink per round: ``b_dl`` bits always, plus at a rejection either the full distribution
(``V_vocab · b_prob`` bits, ``topk = 0``, the paper's scheme) or — optional, ours — a top-k
compressed distribution of ``k`` (id, probability) pairs, ``min(k, V_vocab)(b_id + b_prob)``
bits. Top-k is lossy in a real system (the residual is renormalised on the kept support); this
surrogate only accounts its bits.
"""

from __future__ import annotations

import jax.numpy as jnp

from ..pytree import check_int, leaf_field, pytree_dataclass, static_field
from .base import Policy

__all__ = ["DSSD"]

_N = "DSSD"


def _check_payload(name, value):
    if value != "scalar":
        raise ValueError(f"{_N}.{name} must be 'scalar' (DSSD's uplink scheme), got {value!r}")
    return value


@pytree_dataclass(
    checks={
        "gamma": check_int(_N, 0, 256),
        "topk": check_int(_N, 0, 10_000_000),
        "payload": _check_payload,
    }
)
class DSSD(Policy):
    """Fixed ``gamma`` drafts, scalar uplink, target distribution on the downlink at a rejection.

    ``topk = 0`` sends the full vocabulary distribution; ``topk = k > 0`` sends ``k`` pairs.
    """

    gamma: int = leaf_field(4)
    topk: int = leaf_field(0)
    payload: str = static_field("scalar")

    def validate(self, scenario):
        if isinstance(self.gamma, int) and self.gamma > scenario.gamma_max:
            raise ValueError(
                f"DSSD.gamma must be an integer in [0, {scenario.gamma_max}] (Scenario.gamma_max), got {self.gamma}"
            )

    def choose_budget(self, scenario, aux, state, obs):
        return jnp.asarray(self.gamma, jnp.int32)

    def distribution_bits(self, scenario):
        """Downlink bits of one target distribution (full, or top-k compressed)."""
        full = scenario.V_vocab * scenario.b_prob
        k = jnp.minimum(jnp.asarray(self.topk), scenario.V_vocab)
        return jnp.where(jnp.asarray(self.topk) > 0, k * (scenario.b_id + scenario.b_prob), full)

    def downlink_bits(self, scenario, rejected):
        """Round hook used by ``simulator.round_step``: ``b_dl`` + a distribution at a rejection."""
        dist = self.distribution_bits(scenario)
        return scenario.b_dl + jnp.where(rejected, dist, 0.0)
