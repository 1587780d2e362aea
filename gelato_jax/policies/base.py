r"""The policy interface shared by GELATO and the baselines.

A policy is a frozen pytree (numeric knobs are leaves, so a sweep over ``V`` does not recompile)
with four pure hooks the rollout calls every round (MODEL.md §1, steps 2–6):

* ``precompute(scenario) -> aux`` — once per compiled call: scenario-level constants such as
  ``ᾱ`` and ``b̄`` (§5) or an exact-proxy table;
* ``init_state(scenario, aux) -> state`` — per-realization policy state (e.g. an EWMA);
* ``choose_budget(scenario, aux, state, obs) -> γ̃`` — outer loop (the rollout forces ``γ̃ = 0``
  in outage for every policy);
* ``draft(scenario, aux, state, budget, entropy, obs) -> (sent, passes)`` — inner loop, given the
  entropies of the positions the device would draft and the round's observation ``obs``;
* ``update_state(scenario, aux, state, outcome) -> state`` — after the round.

``payload`` (static) selects the uplink scheme of §3. ``validate(scenario)`` runs in Python
before compilation and raises ``ValueError`` for incompatible settings.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp

from .. import costs, tokens
from ..early_exit import no_exit
from ..scenario import Scenario

__all__ = ["Policy", "RoundObs", "RoundOutcome", "ScenarioStats", "scenario_stats"]


class ScenarioStats(NamedTuple):
    """Exact scenario-level means used by the mean proxy (§5)."""

    alpha_bar: Any  # ᾱ = E[α(H)]
    topp_bits: Any  # b̄ = E[b(H)] under the topp scheme
    alpha_bar_1: Any  # ᾱ_1 at the first drafted position (= ᾱ at the defaults)
    topp_bits_1: Any  # b̄_1 at the first drafted position (= b̄ at the defaults)


def scenario_stats(scenario: Scenario) -> ScenarioStats:
    return ScenarioStats(tokens.mean_acceptance(scenario), tokens.mean_topp_bits(scenario),
                         tokens.mean_acceptance_first(scenario), tokens.mean_topp_bits_first(scenario))


class RoundObs(NamedTuple):
    """What the device knows when it picks the budget of round ``t``."""

    t: Any  # round index (int32)
    queue: Any  # Z_t
    h: Any  # small-scale fading gain
    rate: Any  # uplink rate r_t (bit/s)
    rate_dl: Any  # downlink rate (bit/s)
    outage: Any  # r_t < r_min


class RoundOutcome(NamedTuple):
    """What happened in round ``t`` (all scalars)."""

    budget: Any
    sent: Any
    passes: Any
    accepted: Any
    tokens: Any
    latency: Any
    energy: Any
    arrival: Any


class Policy:
    """Base class: subclasses are ``pytree_dataclass``es with a static ``payload`` field."""

    payload: str = "topp"

    def validate(self, scenario: Scenario) -> None:
        """Check compatibility with ``scenario`` (Python level, before compilation)."""

    def precompute(self, scenario: Scenario):
        return scenario_stats(scenario)

    def init_state(self, scenario: Scenario, aux) -> Any:
        return ()

    def choose_budget(self, scenario: Scenario, aux, state, obs: RoundObs):
        raise NotImplementedError

    def draft(self, scenario: Scenario, aux, state, budget, entropy, obs: RoundObs):
        return no_exit(entropy, budget)

    def update_state(self, scenario: Scenario, aux, state, outcome: RoundOutcome):
        return state

    # helpers for subclasses
    def mean_bits(self, scenario: Scenario, aux, *, first: bool = False):
        """``b̄`` of this policy's payload scheme (``first=True``: ``b̄_1`` of the first position)."""
        if self.payload == "topp":
            if first:
                return _first_stats(scenario, aux)[1]
            return aux.topp_bits
        return costs.mean_token_bits(scenario, self.payload)

    def mean_proxy(self, scenario: Scenario, aux, alpha_bar, obs: RoundObs) -> costs.ProxyCosts:
        """The paper's mean proxy at this round's rates, for acceptance ``alpha_bar``.

        The first drafted position keeps the scenario's offset ``ᾱ_1 − ᾱ`` (0 at the defaults):
        ``ᾱ_1 = clip(alpha_bar + ᾱ_1 − ᾱ, 0, 1)``, so an estimate of the pooled acceptance (EWMA)
        moves both together.
        """
        a1_scen, _ = _first_stats(scenario, aux)
        alpha_bar_1 = jnp.clip(alpha_bar + (a1_scen - aux.alpha_bar), 0.0, 1.0)
        return costs.proxy_costs(
            scenario, self.payload, alpha_bar, self.mean_bits(scenario, aux), obs.rate, obs.rate_dl,
            alpha_bar_1=alpha_bar_1, b_bar_1=self.mean_bits(scenario, aux, first=True),
        )


def _first_stats(scenario: Scenario, aux):
    """``(ᾱ_1, b̄_1)`` from ``aux`` (a ``ScenarioStats``), or by quadrature when ``aux`` does not carry
    them (e.g. the exact proxy's ``ExactAux``)."""
    a1 = getattr(aux, "alpha_bar_1", None)
    b1 = getattr(aux, "topp_bits_1", None)
    if a1 is None:
        a1 = tokens.mean_acceptance_first(scenario)
    if b1 is None:
        b1 = tokens.mean_topp_bits_first(scenario)
    return a1, b1
