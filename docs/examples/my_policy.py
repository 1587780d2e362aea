"""MyPolicy: a user's own drift-plus-penalty controller, checked by `gelato check my_policy.py:MyPolicy`.

Budget: maximise T̂(γ) − (Z/V)·Ê(γ) (the §5 objective divided by V, so a huge V cannot overflow)
with the paper's mean proxy at acceptance guess `alpha`; inner loop: stop at the first draft
whose entropy exceeds `H_max` (that pass is paid, its token is not sent).
"""

import jax.numpy as jnp

from gelato_jax import costs
from gelato_jax.policies import Policy, leaf_field, pytree_dataclass


@pytree_dataclass
class MyPolicy(Policy):
    V: float = leaf_field(0.1)  # throughput weight (> 0)
    alpha: float = leaf_field(0.8)  # acceptance guess of the proxy
    H_max: float = leaf_field(3.0)  # nats: stop drafting above this entropy
    declared_properties = ("monotone_in_queue", "per_slot_optimal", "greedy_limit")

    def proxy_costs(self, scenario, aux, state, obs):
        return costs.proxy_costs(scenario, self.payload, self.alpha, aux.topp_bits, obs.rate, obs.rate_dl)

    def choose_budget(self, scenario, aux, state, obs):
        pc = self.proxy_costs(scenario, aux, state, obs)
        u = pc.throughput - (obs.queue / self.V) * pc.energy
        return jnp.where(obs.outage, 0, jnp.argmax(u))  # argmax: the smallest γ on ties

    def draft(self, scenario, aux, state, budget, entropy, obs):
        pos = jnp.arange(entropy.shape[0])
        first = jnp.min(jnp.where((entropy > self.H_max) & (pos < budget), pos, budget))
        return first, jnp.minimum(first + 1, budget)  # (sent, passes)
