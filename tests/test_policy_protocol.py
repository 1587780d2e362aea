"""The declarations on ``Policy`` that the fast paths read (``inner_loop``, ``budget_rule``) and the
optional hooks with defaults: an overriding subclass never inherits a claim about a method it replaced."""

import jax.numpy as jnp
import pytest

from gelato_jax import Scenario
from gelato_jax.kernel import _flat_draft, _is_dpp
from gelato_jax.lm.simulate import lm_inner_loop
from gelato_jax.policies import (AdaEDL, DSSD, ExitOnly, Gelato, GreedyThroughput, LyapunovOnly, Policy, StaticSD,
                                 UHLM, pytree_dataclass)


@pytree_dataclass
class CustomDraft(Gelato):
    def draft(self, scenario, aux, state, budget, entropy, obs):
        return budget, budget


@pytree_dataclass
class CustomBudget(Gelato):
    def choose_budget(self, scenario, aux, state, obs):
        return jnp.asarray(1, jnp.int32)


@pytree_dataclass
class CustomProxy(Gelato):
    def proxy_costs(self, scenario, aux, state, obs):
        return super().proxy_costs(scenario, aux, state, obs)


@pytest.mark.parametrize("policy, kind", [
    (Gelato(), "bucket"), (Gelato(exit="marginal"), "marginal"), (Gelato(exit="none"), "none"),
    (LyapunovOnly(), "none"), (GreedyThroughput(), "bucket"), (ExitOnly(), "bucket"), (AdaEDL(), "adaedl"),
    (StaticSD(gamma=3), "none"), (DSSD(), "none"), (CustomDraft(), None),
])
def test_inner_loop_declaration(policy, kind):
    assert policy.inner_loop() == kind


def test_budget_rule_declaration():
    s = Scenario()
    assert Gelato().budget_rule(s) == "dpp" and LyapunovOnly().budget_rule(s) == "dpp"
    assert Gelato().budget_rule(Scenario(objective="time_average")) is None  # the ratio rule
    for p in (GreedyThroughput(), CustomBudget(), CustomProxy(), StaticSD(), AdaEDL(), ExitOnly()):
        assert p.budget_rule(s) is None, type(p).__name__
    assert _is_dpp(Gelato(), s) and not _is_dpp(Gelato(proxy="ewma"), s) and not _is_dpp(CustomProxy(), s)


def test_fast_paths_follow_the_declarations():
    assert _flat_draft(CustomDraft()) is None and _flat_draft(AdaEDL()) is None
    assert _flat_draft(Gelato(exit="marginal")) is None
    assert _flat_draft(ExitOnly()) is not None and _flat_draft(StaticSD()) is not None
    with pytest.raises(ValueError, match="CustomDraft: its inner loop"):
        lm_inner_loop(CustomDraft())
    with pytest.raises(ValueError, match="skips verification"):
        lm_inner_loop(UHLM())
    assert lm_inner_loop(ExitOnly()) == "bucket" and lm_inner_loop(AdaEDL()) == "adaedl"


def test_optional_hooks_and_defaults():
    assert StaticSD().proxy_costs is None and Gelato().proxy_costs is not None
    assert StaticSD().proxy == "mean" and Gelato(proxy="exact").proxy == "exact"
    aux = Policy().precompute(Scenario())
    assert StaticSD().acceptance_estimate(aux, ()) is aux.alpha_bar
    assert StaticSD().per_round_state(Scenario(), ("x",)) == ("x",)
