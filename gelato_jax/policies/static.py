r"""Static speculative decoding (Leviathan et al. 2023) as a distributed baseline (docs/model.md §7).

Always drafts a fixed ``gamma`` tokens (``0`` in outage, like every policy), sends them with the
``full`` payload (every token carries the whole draft distribution), no exit, no energy control.
"""

from __future__ import annotations

import jax.numpy as jnp

from ..pytree import check_choice, check_int, leaf_field, pytree_dataclass, static_field
from ..costs import PAYLOADS
from .base import Policy

__all__ = ["StaticSD"]

_N = "StaticSD"


@pytree_dataclass(checks={"gamma": check_int(_N, 0, 256), "payload": check_choice(_N, PAYLOADS)})
class StaticSD(Policy):
    gamma: int = leaf_field(4)
    payload: str = static_field("full")

    def validate(self, scenario):
        if not isinstance(self.gamma, int):
            return
        if self.gamma > scenario.gamma_max:
            raise ValueError(
                f"StaticSD.gamma must be an integer in [0, {scenario.gamma_max}] (Scenario.gamma_max), got {self.gamma}"
            )

    def choose_budget(self, scenario, aux, state, obs):
        return jnp.asarray(self.gamma, jnp.int32)
