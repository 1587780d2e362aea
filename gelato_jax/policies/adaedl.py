r"""AdaEDL — entropy-based early draft stopping (Agrawal et al. 2024, arXiv 2410.18351).

Mechanism: the acceptance probability of a draft with entropy ``H`` (nats) is lower-bounded by
``1 − sqrt(c·H)``; drafting stops at the first position ``i ≤ γ_cap`` where that bound falls below
a threshold ``λ`` (the pass of position ``i`` is paid, its token is not sent — the same accounting
as GELATO's exit, docs/model.md §6). ``λ`` is adapted online toward a target acceptance rate; there is
no energy control and no channel awareness (the budget is always ``gamma_cap``).

Adaptation rule [ours: the published rule's exact form is not available to us]: after a round
that sent ``L > 0`` drafts with ``A`` accepted, the observed per-draft acceptance is
``ρ = A / (A + 1[A < L])`` (``A`` successes and, at a rejection, one failure of a geometric trial),
and ``λ ← clip(λ + η (α_target − ρ), 0, 1)``: low acceptance raises ``λ`` (stop earlier), high
acceptance lowers it. Payload: ``topp`` by default, like GELATO, so that the comparison isolates
the control (AdaEDL itself is a single-device method).
"""

from __future__ import annotations

import jax.numpy as jnp

from ..pytree import check_choice, check_int, check_real, leaf_field, pytree_dataclass, static_field
from ..costs import PAYLOADS
from .base import Policy

__all__ = ["AdaEDL", "adaedl_exit"]

_N = "AdaEDL"


def adaedl_exit(entropy, budget, c, lam):
    """``(sent, passes)`` of one round: stop at the first ``i < budget`` with ``1 − sqrt(c H_i) < λ``."""
    pos = jnp.arange(entropy.shape[-1])
    bound = 1.0 - jnp.sqrt(c * jnp.maximum(entropy, 0.0))
    stop = (bound < lam) & (pos < budget)
    any_stop = jnp.any(stop)
    first = jnp.argmax(stop).astype(jnp.int32)
    budget = jnp.asarray(budget, jnp.int32)
    return jnp.where(any_stop, first, budget), jnp.where(any_stop, first + 1, budget)


@pytree_dataclass(
    checks={
        "gamma_cap": check_int(_N, 0, 256),
        "c": check_real(_N, 0, None, lo_open=True),
        "lambda0": check_real(_N, 0, 1),
        "target": check_real(_N, 0, 1),
        "eta": check_real(_N, 0, 1),
        "payload": check_choice(_N, PAYLOADS),
    }
)
class AdaEDL(Policy):
    """Entropy lower-bound early stopping with ``λ`` adapted toward ``target`` acceptance."""

    gamma_cap: int = leaf_field(10)
    c: float = leaf_field(0.2)
    lambda0: float = leaf_field(0.5)
    target: float = leaf_field(0.8)
    eta: float = leaf_field(0.02)
    payload: str = static_field("topp")

    def validate(self, scenario):
        if isinstance(self.gamma_cap, int) and self.gamma_cap > scenario.gamma_max:
            raise ValueError(
                f"AdaEDL.gamma_cap must be an integer in [0, {scenario.gamma_max}] (Scenario.gamma_max), got {self.gamma_cap}"
            )

    def init_state(self, scenario, aux):
        return jnp.asarray(self.lambda0, jnp.result_type(float))

    def choose_budget(self, scenario, aux, state, obs):
        return jnp.asarray(self.gamma_cap, jnp.int32)

    def inner_loop(self):
        return "adaedl"

    def draft(self, scenario, aux, state, budget, entropy, obs):
        return adaedl_exit(entropy, budget, self.c, state)

    def update_state(self, scenario, aux, state, outcome):
        acc = outcome.accepted.astype(state.dtype)
        rej = (outcome.accepted < outcome.sent).astype(state.dtype)
        rho = acc / jnp.maximum(acc + rej, 1.0)
        new = jnp.clip(state + self.eta * (self.target - rho), 0.0, 1.0)
        return jnp.where(outcome.sent > 0, new, state)
