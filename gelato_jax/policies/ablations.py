r"""Ablations of GELATO (docs/model.md §7): each removes one mechanism.

* ``GreedyThroughput`` — GELATO with ``Z ≡ 0``: every round picks ``argmax_γ T̂(γ, r_t)`` of the
  mean proxy (ties → smallest γ), keeps the leaky-bucket exit, ignores the energy budget (the
  rollout still tracks the queue it would have, so its energy overdraft is visible).
* ``LyapunovOnly`` — GELATO without the inner loop (``exit="none"``): drift-plus-penalty budget,
  every budgeted token is drafted and sent.
* ``ExitOnly`` — no outer loop: a fixed reference budget ``gamma`` with the leaky-bucket exit and
  GELATO's ``topp`` payload; no energy control.
"""

from __future__ import annotations

import jax.numpy as jnp

from ..pytree import check_choice, check_int, check_real, leaf_field, pytree_dataclass, static_field
from ..controller import dpp_budget
from ..costs import PAYLOADS
from ..early_exit import leaky_bucket_exit
from .base import Policy
from .gelato import EXITS, PROXIES, Gelato

__all__ = ["GreedyThroughput", "LyapunovOnly", "ExitOnly"]


def _gelato_checks(owner):
    return {
        "V": check_real(owner, 0, None),
        "H_th": check_real(owner, 0, None),
        "Theta_th": check_real(owner, 0, None),
        "ewma_beta": check_real(owner, 0, 1, lo_open=True),
        "proxy": check_choice(owner, PROXIES),
        "exit": check_choice(owner, EXITS),
        "payload": check_choice(owner, PAYLOADS),
    }


@pytree_dataclass(checks=_gelato_checks("GreedyThroughput"))
class GreedyThroughput(Gelato):
    """GELATO with the queue forced to zero: maximise the throughput proxy every round."""

    def choose_budget(self, scenario, aux, state, obs):
        proxy = self.mean_proxy(scenario, aux, self.acceptance_estimate(aux, state), obs)
        zero = jnp.zeros_like(obs.queue)
        # V > 0 scales the objective only; with V = 0 every γ ties and γ = 0 would be chosen.
        return dpp_budget(1.0, zero, proxy.throughput, proxy.energy, obs.outage)

    inner_loop = Gelato.inner_loop  # the same rules; Z ≡ 0 changes only the marginal exit's weights

    def draft(self, scenario, aux, state, budget, entropy, obs):
        # Z ≡ 0 for the inner loop too (matters for exit="marginal", which weighs Z·ΔÊ)
        return super().draft(scenario, aux, state, budget, entropy, obs._replace(queue=jnp.zeros_like(obs.queue)))


@pytree_dataclass(checks=_gelato_checks("LyapunovOnly"))
class LyapunovOnly(Gelato):
    """GELATO's drift-plus-penalty budget without the entropy exit (``exit="none"``)."""

    exit: str = static_field("none")


_E = "ExitOnly"


@pytree_dataclass(
    checks={
        "gamma": check_int(_E, 0, 256),
        "H_th": check_real(_E, 0, None),
        "Theta_th": check_real(_E, 0, None),
        "payload": check_choice(_E, PAYLOADS),
    }
)
class ExitOnly(Policy):
    """Fixed reference budget ``gamma`` + GELATO's leaky-bucket exit, ``topp`` payload."""

    gamma: int = leaf_field(4)
    H_th: float = leaf_field(1.5, unit="nats")
    Theta_th: float = leaf_field(1.0, unit="nats")
    payload: str = static_field("topp")

    def validate(self, scenario):
        if isinstance(self.gamma, int) and self.gamma > scenario.gamma_max:
            raise ValueError(
                f"ExitOnly.gamma must be an integer in [0, {scenario.gamma_max}] (Scenario.gamma_max), got {self.gamma}"
            )

    def choose_budget(self, scenario, aux, state, obs):
        return jnp.asarray(self.gamma, jnp.int32)

    def inner_loop(self):
        return "bucket"

    def draft(self, scenario, aux, state, budget, entropy, obs):
        return leaky_bucket_exit(entropy, budget, self.H_th, self.Theta_th)
