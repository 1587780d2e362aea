r"""The policy interface shared by GELATO and the baselines.

A policy is a frozen pytree (numeric knobs are leaves, so a sweep over ``V`` does not recompile)
with four pure hooks the rollout calls every round (docs/model.md §1, steps 2–6):

* ``precompute(scenario) -> aux`` — once per compiled call: scenario-level constants such as
  ``ᾱ`` and ``b̄`` (§5) or an exact-proxy table;
* ``init_state(scenario, aux) -> state`` — per-realization policy state (e.g. an EWMA);
* ``choose_budget(scenario, aux, state, obs) -> γ̃`` — outer loop (the rollout forces ``γ̃ = 0``
  in outage for every policy);
* ``draft(scenario, aux, state, budget, entropy, obs) -> (sent, passes)`` — inner loop, given the
  entropies of the positions the device would draft and the round's observation ``obs``;
* ``update_state(scenario, aux, state, outcome) -> state`` — after the round.

Optional hooks (declared on ``Policy`` as ``None``): ``skip_verification``, ``downlink_bits`` and
``proxy_costs``. Hooks with a default: ``acceptance_estimate`` and ``per_round_state`` (what a
proxy reads), and two declarations the fast paths read instead of probing for overridden methods:
``inner_loop()`` (which causal rule of ``early_exit`` ``draft`` is) and ``budget_rule(scenario)``
(whether ``choose_budget`` is the drift-plus-penalty search on ``proxy_costs``). A subclass that
overrides ``draft`` without declaring ``inner_loop``, or ``choose_budget``/``proxy_costs`` without
declaring ``budget_rule``, gets ``None`` for that declaration ("unknown"), so an inherited claim is
never wrong. ``payload`` (static) selects the uplink scheme of §3. ``validate(scenario)`` runs in
Python before compilation and raises ``ValueError`` for incompatible settings.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp

from .. import costs, tokens
from ..pytree import Validated
from ..early_exit import no_exit
from ..scenario import Scenario

__all__ = ["Policy", "RoundObs", "RoundOutcome", "ScenarioStats", "scenario_stats"]


class ScenarioStats(NamedTuple):
    """Exact scenario-level means used by the mean proxy (§5)."""

    alpha_bar: Any  # ᾱ = E[α(H)]
    topp_bits: Any  # b̄ = E[b(H)] under the topp scheme
    alpha_bar_rej: Any  # ᾱ_r: acceptance at position 1 after a rejection (= ᾱ at the defaults)
    topp_bits_rej: Any  # b̄_r: topp bits at position 1 after a rejection (= b̄ at the defaults)


def scenario_stats(scenario: Scenario) -> ScenarioStats:
    return ScenarioStats(tokens.mean_acceptance(scenario), tokens.mean_topp_bits(scenario),
                         tokens.mean_acceptance_after_reject(scenario), tokens.mean_topp_bits_after_reject(scenario))


class RoundObs(NamedTuple):
    """What the device knows when it picks the budget of round ``t``."""

    t: Any  # round index (int32)
    queue: Any  # Z_t
    h: Any  # small-scale fading gain
    rate: Any  # uplink rate r_t (bit/s)
    rate_dl: Any  # downlink rate (bit/s)
    outage: Any  # r_t < r_min
    after_reject: Any = False  # the previous round ended with a rejection or an entropy exit (Scenario.after_reject_*)


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


class Policy(Validated):
    """Base class (an ``equinox.Module``): subclasses declare their knobs as ``leaf_field``s and
    modes as ``static_field``s (``payload`` among them) and attach validators with
    ``pytree_dataclass``."""

    payload = "topp"  # a class default; subclasses declare it as a static field

    # Optional hooks, declared here (``None``: not provided) and called by the round when a
    # subclass defines them as methods:
    #: ``skip_verification(scenario, aux, state, entropy, sent) -> bool``: keep this round's sent
    #: drafts on the device without upload or verification (lossy policies, e.g. ``UHLM``).
    skip_verification = None
    #: ``downlink_bits(scenario, rejected) -> bits``: the policy's own downlink payload (e.g.
    #: ``DSSD`` with a top-k target distribution) instead of the payload scheme's.
    downlink_bits = None
    #: ``proxy_costs(scenario, aux, state, obs) -> costs.ProxyCosts``: the policy's own expectation
    #: proxy ``(N̂, D̂, Ê)`` of every budget at this round's rates. ``optimum()`` solves the per-round
    #: problem on it (``None``: on the mean proxy at the scenario's ``ᾱ``), and the property tests
    #: check ``choose_budget`` against it.
    proxy_costs = None
    #: Which proxy ``proxy_costs`` is: ``"mean"`` (§5's closed form at ``acceptance_estimate``),
    #: ``"ewma"`` (the same with a learned ``ᾱ``) or ``"exact"`` (a table in ``aux`` that assumes
    #: i.i.d. rounds, so ``simulate`` and ``optimum()`` refuse dependent rounds).
    proxy = "mean"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own = cls.__dict__
        if "draft" in own and "inner_loop" not in own:
            cls.inner_loop = Policy._undeclared_inner_loop
        if ("choose_budget" in own or "proxy_costs" in own) and "budget_rule" not in own:
            cls.budget_rule = Policy._undeclared_budget_rule

    def inner_loop(self) -> str | None:
        """Which causal rule of ``gelato_jax.early_exit`` ``draft`` is: ``"none"`` (send the whole
        budget, this class's ``draft``), ``"bucket"`` (``leaky_bucket_exit(entropy, budget, self.H_th,
        self.Theta_th)``), ``"marginal"`` (``Gelato``'s marginal exit) or ``"adaedl"``
        (``adaedl_exit(entropy, budget, self.c, state)``); ``None``: not declared (a custom
        ``draft``). LM mode runs only declared rules (it must know the rule is causal) and the
        chunk kernel runs ``"none"``/``"bucket"`` on the whole chunk at once."""
        return "none"

    def budget_rule(self, scenario: Scenario) -> str | None:
        """``"dpp"`` when ``choose_budget`` is ``controller.dpp_budget(self.V, obs.queue, T̂, Ê,
        obs.outage)`` on ``self.proxy_costs(...)`` for this scenario, else ``None``. The chunk kernel
        then searches the budgets of the whole chunk at once."""
        return None

    def _undeclared_inner_loop(self) -> str | None:
        return None

    def _undeclared_budget_rule(self, scenario: Scenario) -> str | None:
        return None

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

    def acceptance_estimate(self, aux, state):
        """The acceptance ``ᾱ̂`` a mean proxy uses this round (default: the scenario's ``ᾱ``)."""
        return aux.alpha_bar

    def per_round_state(self, scenario: Scenario, state):
        """The part of ``state`` the proxies read (default: all of it)."""
        return state

    # helpers for subclasses
    def mean_bits(self, scenario: Scenario, aux, *, after_reject: bool = False):
        """``b̄`` of this policy's payload scheme (``after_reject=True``: ``b̄_r`` of position 1
        after a rejection)."""
        if self.payload == "topp":
            if after_reject:
                return _after_reject_stats(scenario, aux)[1]
            return aux.topp_bits
        return costs.mean_token_bits(scenario, self.payload, after_reject=after_reject)

    def mean_proxy(self, scenario: Scenario, aux, alpha_bar, obs: RoundObs) -> costs.ProxyCosts:
        """The paper's mean proxy at this round's rates, for acceptance ``alpha_bar``.

        After a rejection (``obs.after_reject``) the first drafted position has the scenario's
        ``ᾱ_r``, ``b̄_r`` (equal to ``ᾱ``, ``b̄`` at the defaults): ``ᾱ_1 = clip(alpha_bar + ᾱ_r − ᾱ,
        0, 1)``, so an estimate of the pooled acceptance (EWMA) moves both together.
        """
        a_rej = _after_reject_stats(scenario, aux)[0]
        b_bar = self.mean_bits(scenario, aux)
        alpha_bar_1 = jnp.where(obs.after_reject, jnp.clip(alpha_bar + (a_rej - aux.alpha_bar), 0.0, 1.0), alpha_bar)
        b_bar_1 = jnp.where(obs.after_reject, self.mean_bits(scenario, aux, after_reject=True), b_bar)
        return costs.proxy_costs(
            scenario, self.payload, alpha_bar, b_bar, obs.rate, obs.rate_dl, alpha_bar_1=alpha_bar_1, b_bar_1=b_bar_1,
        )


def _after_reject_stats(scenario: Scenario, aux):
    """``(ᾱ_r, b̄_r)`` from ``aux`` (a ``ScenarioStats``), or by quadrature when ``aux`` does not carry
    them (e.g. the exact proxy's ``ExactAux``)."""
    a = getattr(aux, "alpha_bar_rej", None)
    b = getattr(aux, "topp_bits_rej", None)
    if a is None:
        a = tokens.mean_acceptance_after_reject(scenario)
    if b is None:
        b = tokens.mean_topp_bits_after_reject(scenario)
    return a, b
