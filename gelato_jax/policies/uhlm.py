r"""U-HLM — uncertainty-aware hybrid language model inference (Oh et al., arXiv 2412.12687).

Mechanism: token by token (``γ = 1``). The device drafts one token and measures its uncertainty;
below a threshold ``u_th`` it keeps the token **without** uploading it or having it verified
(lossy: the output law is no longer the target's), otherwise it uploads the token and the edge
verifies it by speculative sampling as usual (``N = A + 1``).

Our surrogate [ours]: the uncertainty is the draft entropy ``H`` (nats); a skipped round costs one
draft pass only (``τ_d`` seconds, ``e_d`` joules; no uplink, no verification, no ``δ``, no
downlink) and yields one unverified token. The quality metric is the **mismatch rate**: the
fraction of kept-unverified tokens that verification would have rejected (``U ≥ α(H)`` on the same
common random numbers), reported by the rollout as ``Trajectory.mismatch / unverified``. U-HLM
derives ``u_th`` from a linear uncertainty→rejection fit; here ``α(H)`` is known, so the default
``u_th = 1.0`` nats is where ``α(H) ≈ 0.95`` at the default map (rejection risk ≈ 5 %).
``u_th = 0`` never skips (entropies are ≥ 0), i.e. lossless token-by-token distributed SD.
Payload: ``topp`` by default (CU-HLM's vocabulary truncation); ``full`` is allowed.
In outage the rollout forces ``γ = 0`` for every policy, so the edge decodes one token.
"""

from __future__ import annotations

import jax.numpy as jnp

from ..pytree import check_choice, check_real, leaf_field, pytree_dataclass, static_field
from ..costs import PAYLOADS
from .base import Policy

__all__ = ["UHLM"]

_N = "UHLM"


@pytree_dataclass(checks={"u_th": check_real(_N, 0, None), "payload": check_choice(_N, PAYLOADS)})
class UHLM(Policy):
    """``γ = 1``; skip upload and verification when the draft entropy is below ``u_th``."""

    u_th: float = leaf_field(1.0, unit="nats")
    payload: str = static_field("topp")

    def choose_budget(self, scenario, aux, state, obs):
        return jnp.asarray(1, jnp.int32)

    def skip_verification(self, scenario, aux, state, entropy, sent):
        """Round hook used by ``simulator.round_step``: keep the draft unverified?"""
        return entropy[0] < self.u_th
