r"""GELATO (docs/model.md §5, §6): drift-plus-penalty budget + entropy early exit.

Outer loop: ``γ̃_t = argmax_γ V T̂(γ, r_t) − Z_t Ê(γ, r_t)`` over ``{0..γ_max}`` (``{0}`` in
outage, smallest γ on ties). Proxies:

* ``proxy="mean"`` (the paper's): ``N̂ = (1 − ᾱ^{γ+1})/(1 − ᾱ)``, ``D̂``, ``Ê`` with
  ``P = L = γ`` and the mean payload ``b̄``; ``ᾱ``, ``b̄`` by exact quadrature.
* ``proxy="exact"`` [ours]: ``E[N/D | γ̃, h]`` and ``E[E | γ̃, h]`` under the inner loop itself,
  from the joint law of (passes, sent, accepted) given the budget (``gelato_jax.exact_proxy``: exact
  acceptance law given the entropies, sample average over a fixed-seed entropy sample; cubic
  interpolation in the rate for the entropy-dependent ``topp`` payload), precomputed once per
  compiled call in ``precompute``.
* ``proxy="ewma"``: ``ᾱ`` replaced by an online estimate from observed acceptances. Each round
  reveals ``A`` successes and, if ``A < L``, one failure of a geometric trial; the estimate is the
  ratio of exponentially weighted sums ``ᾱ̂ = S_A / (S_A + S_F)`` with weight ``ewma_beta``,
  started at the scenario's ``ᾱ`` with unit prior weight [ours: the paper gives no details].

Inner loop (``early_exit``): ``exit="bucket"`` (leaky bucket, §6, ``H_th``/``Theta_th``),
``exit="marginal"`` [ours] or ``exit="none"``. ``marginal`` sends drafted token ``i`` and goes on
iff that raises the round's predicted ``V T̂ − Z_t Ê`` (the outer loop's objective, with the
observed ``α_l(H_l)``, ``l ≤ i``, and the round's rates; pass ``i`` sunk on both sides; ties
stop): ``early_exit.marginal_exit``. It depends on ``(Z_t, V)``, so the exact proxy (a table of
the inner loop's law given the budget, built before the rollout) cannot be tabulated for it:
``proxy="exact"`` with ``exit="marginal"`` is refused (``ValueError``); ``mean``/``ewma`` ignore
the inner loop, as they do for the bucket.
The queue update ``Z_{t+1} = max(Z_t + E_t − a_t, 0)`` with the actual energy is done by the
rollout for every policy.

Time-average objective [ours, docs/model.md §11] (``Scenario.objective == "time_average"``): the queue is
settled against the power budget, ``Z_{t+1} = max(Z_t + E_t − P̄D_t, 0)``, and the outer loop is
the renewal drift-plus-penalty *ratio rule* ``argmax_γ [V N̂ − Z(Ê − P̄D̂) − θ D̂]`` with the
per-budget means ``(N̂, D̂, Ê)`` of ``gelato_jax.renewal.renewal_costs`` (mean proxy: §5's ``N̂``,
``D̂``, ``Ê``; ``proxy="exact"``: exact means under the inner loop). ``ratio="known"``: ``θ = θ(Z)``,
the root of ``Φ(θ) = E_h max_γ [V N̂ − Z(Ê − P̄D̂) − θD̂]`` over ``ratio_nodes`` nodes of the fading
law (``renewal.ratio_theta``); ``ratio="learn"``: ``θ = V·ΣN/ΣD`` of the rounds so far (no
knowledge of the fading law; ``θ = 0`` before the first round). ``exit="marginal"`` weighs the
per-round objective and is refused there. Nothing changes under ``objective="per_round"``.
"""

from __future__ import annotations

import jax.numpy as jnp

from ..pytree import check_choice, check_int, check_real, leaf_field, pytree_dataclass, static_field
from ..controller import dpp_budget
from ..costs import PAYLOADS
from ..early_exit import leaky_bucket_exit, marginal_exit, no_exit
from .base import Policy

__all__ = ["Gelato", "PROXIES", "EXITS", "RATIOS"]

PROXIES = ("mean", "ewma", "exact")
EXITS = ("bucket", "marginal", "none")
# θ of the time-average ratio rule (docs/model.md §11): root of Φ under the known fading law, or learned
RATIOS = ("known", "learn")
# (proxy, exit) pairs that cannot be combined, with the reason shown in the error.
_EXACT_EXITS = ("bucket", "none")

_G = "Gelato"


@pytree_dataclass(
    checks={
        "V": check_real(_G, 0, None),
        "H_th": check_real(_G, 0, None),
        "Theta_th": check_real(_G, 0, None),
        "ewma_beta": check_real(_G, 0, 1, lo_open=True),
        "proxy": check_choice(_G, PROXIES),
        "exit": check_choice(_G, EXITS),
        "payload": check_choice(_G, PAYLOADS),
        "ratio": check_choice(_G, RATIOS),
        "ratio_nodes": check_int(_G, 2, 65536),
    }
)
class Gelato(Policy):
    """GELATO controller. ``V`` trades throughput (large ``V``) for queue/energy (small ``V``)."""

    V: float = leaf_field(0.1)
    H_th: float = leaf_field(1.5, unit="nats")
    Theta_th: float = leaf_field(1.0, unit="nats")
    ewma_beta: float = leaf_field(0.05)
    proxy: str = static_field("mean")
    exit: str = static_field("bucket")
    payload: str = static_field("topp")
    ratio: str = static_field("known")
    ratio_nodes: int = static_field(128)

    def _uses_ratio(self, scenario) -> bool:
        """The time-average ratio rule is this policy's outer loop (``objective="time_average"``
        and ``choose_budget`` not overridden by a subclass such as ``GreedyThroughput``)."""
        return scenario.objective == "time_average" and type(self).choose_budget is Gelato.choose_budget

    def _validate_cross(self):
        if self.proxy == "exact" and self.exit not in _EXACT_EXITS:
            raise ValueError(
                f"{type(self).__name__}.exit={self.exit!r} cannot be combined with proxy='exact' (its law depends "
                f"on the queue and V, so it cannot be tabulated per budget); allowed: proxy='exact' with exit in "
                f"{list(_EXACT_EXITS)}, or proxy in ['mean', 'ewma'] with exit in {list(EXITS)}"
            )

    def validate(self, scenario):
        super().validate(scenario)
        self._validate_cross()
        if scenario.objective == "time_average" and self.exit == "marginal":
            raise ValueError(f"{type(self).__name__}.exit='marginal' weighs the per-round objective and cannot be combined "
                             "with Scenario.objective='time_average'; allowed there: exit in ['bucket', 'none']")

    def precompute(self, scenario):
        if scenario.objective == "time_average":
            return self._renewal_precompute(scenario)
        stats = super().precompute(scenario)
        if self.proxy != "exact":
            return stats
        self._validate_cross()  # never hand the exact-proxy table builder an exit it cannot tabulate
        from .. import exact_proxy

        table = exact_proxy.build_table(
            scenario, payload=self.payload, exit=self.exit, H_th=self.H_th, Theta_th=self.Theta_th
        )
        return exact_proxy.ExactAux(stats.alpha_bar, stats.topp_bits, table)

    def _renewal_precompute(self, scenario):
        """``RenewalAux``: the scenario means, the exact renewal table (``proxy="exact"``) and the
        fading nodes of the known-law ratio rule."""
        from .. import renewal
        from .base import scenario_stats

        stats = scenario_stats(scenario)
        table = None
        if self.proxy == "exact":
            self._validate_cross()
            table = renewal.build_table(scenario, payload=self.payload, exit=self.exit, H_th=self.H_th,
                                        Theta_th=self.Theta_th)
        h, w = renewal.fading_nodes(scenario, self.ratio_nodes)
        dt = jnp.result_type(float)
        aux = renewal.RenewalAux(stats.alpha_bar, stats.topp_bits, table, jnp.asarray(h, dt), jnp.asarray(w, dt))
        if self.proxy != "ewma":  # the node tables do not change over rounds: compute them once
            aux = aux._replace(node_tables=renewal.node_costs(scenario, self, aux, (), aux.h_nodes))
        return aux

    def per_round_state(self, scenario, state):
        """The part of ``state`` the proxies read (the EWMA, or ``()``): under the learning ratio rule
        the state is ``(that, (ΣN, ΣD))``."""
        if self._uses_ratio(scenario) and self.ratio == "learn":
            return state[0]
        return state

    def init_state(self, scenario, aux):
        one = jnp.ones((), jnp.result_type(float))
        if self.proxy == "ewma":
            inner = (aux.alpha_bar * one, (1.0 - aux.alpha_bar) * one)
        else:
            inner = ()
        if self._uses_ratio(scenario) and self.ratio == "learn":
            return (inner, (0.0 * one, 0.0 * one))
        return inner

    def acceptance_estimate(self, aux, state):
        if self.proxy == "ewma":
            s_acc, s_rej = state
            return s_acc / (s_acc + s_rej)
        return aux.alpha_bar

    def proxy_costs(self, scenario, aux, state, obs):
        """The expectation proxy ``(N̂, D̂, Ê)`` of every budget at this round's rates (§5).

        ``gelato_jax.optimum`` evaluates this same method, so ``T*`` is the optimum of exactly the
        per-round problem the controller solves.
        """
        if self.proxy == "exact":
            from .. import exact_proxy

            return exact_proxy.exact_costs(scenario, self.payload, aux.table, obs.rate, obs.rate_dl)
        return self.mean_proxy(scenario, aux, self.acceptance_estimate(aux, state), obs)

    def choose_budget(self, scenario, aux, state, obs):
        if self._uses_ratio(scenario):
            return self._ratio_budget(scenario, aux, state, obs)
        proxy = self.proxy_costs(scenario, aux, state, obs)
        return dpp_budget(self.V, obs.queue, proxy.throughput, proxy.energy, obs.outage)

    def _ratio_budget(self, scenario, aux, state, obs):
        """The renewal ratio rule (docs/model.md §11) at this round's ``Z`` and rates."""
        from .. import renewal

        inner = self.per_round_state(scenario, state)
        pc = renewal.renewal_costs(scenario, self, aux, inner, obs)
        V = jnp.asarray(self.V, pc.tokens.dtype)
        if self.ratio == "learn":
            s_n, s_d = state[1]
            theta = V * jnp.where(s_d > 0, s_n / jnp.where(s_d > 0, s_d, 1.0), 0.0)
        else:
            tabs = aux.node_tables
            N, D, E, out = tabs if tabs is not None else renewal.node_costs(scenario, self, aux, inner, aux.h_nodes)
            theta = renewal.ratio_theta(V, obs.queue, scenario.P_bar, N, D, E, out, aux.h_weights)
        return renewal.ratio_budget(V, obs.queue, scenario.P_bar, theta, pc, obs.outage)

    def inner_loop(self):
        return self.exit

    def budget_rule(self, scenario):
        return None if self._uses_ratio(scenario) else "dpp"

    def draft(self, scenario, aux, state, budget, entropy, obs):
        if self.exit == "bucket":
            return leaky_bucket_exit(entropy, budget, self.H_th, self.Theta_th)
        if self.exit == "marginal":
            return marginal_exit(scenario, self.payload, entropy, budget, self.V, obs.queue, obs.rate, obs.rate_dl,
                                 obs.after_reject)
        return no_exit(entropy, budget)

    def update_state(self, scenario, aux, state, outcome):
        if self._uses_ratio(scenario) and self.ratio == "learn":
            s_n, s_d = state[1]
            sums = ((s_n + outcome.tokens).astype(s_n.dtype), (s_d + outcome.latency).astype(s_d.dtype))
            return (self._update_inner(state[0], outcome), sums)
        return self._update_inner(state, outcome)

    def _update_inner(self, state, outcome):
        if self.proxy != "ewma":
            return state
        s_acc, s_rej = state
        rejected = (outcome.accepted < outcome.sent).astype(s_acc.dtype)
        observed = outcome.sent > 0
        b = jnp.where(observed, self.ewma_beta, 0.0)
        s_acc = (1 - b) * s_acc + b * outcome.accepted
        s_rej = (1 - b) * s_rej + b * rejected
        return (s_acc, s_rej)
