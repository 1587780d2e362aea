"""LM mode runs every lossless inner loop with the surrogate's own rule (docs/model.md §1, §4, §6).

LM mode drafts all budgeted positions, evaluates ``policy.draft`` on the observed entropies and
verifies only the prefix it sends (``gelato_jax.lm.simulate``, step 3). Checked here:

* the rules are causal (the decision up to the stop ignores later entropies), which makes that
  the round of a device that stops drafting at the exit;
* for ``Gelato(exit="marginal")`` and ``AdaEDL``, each LM-mode round's ``(sent, passes)`` equals
  the surrogate rule (``early_exit.marginal_exit``, ``adaedl_exit``) evaluated on the LM's own
  recorded entropies, with the observation (queue, rates, after-rejection flag) and policy state
  (AdaEDL's ``λ``) rebuilt from the trajectory;
* draft-then-decide gives exactly the in-scan leaky-bucket round of ``lm_round``, and a shorter
  prefix is verified, paid and charged payload bits only for its own positions;
* invariants and the CLI.

Tiny random-initialised pair (``conftest.pair``), R = 4 realizations, so the LM kernels compile
once for the module.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gelato_jax import channel
from gelato_jax.early_exit import leaky_bucket_exit, marginal_exit
from gelato_jax.lm.rounds import draft_phase, lm_round, verify_phase
from gelato_jax.lm.simulate import LM_INNER_LOOPS, calibrated_scenario, lm_inner_loop, rollout_lm
from gelato_jax.policies import (
    AdaEDL,
    DSSD,
    ExitOnly,
    Gelato,
    GreedyThroughput,
    LyapunovOnly,
    RoundOutcome,
    StaticSD,
    UHLM,
)
from gelato_jax.policies.adaedl import adaedl_exit
from gelato_jax.scenario import Scenario
from gelato_jax.simulator import sample_exogenous

from conftest import TINY_LM_CONTEXT as C, TINY_LM_GAMMA as G

R, T = 4, 8


@pytest.fixture(scope="module")
def r_min():
    """Outage when h < 0.3 (probability ≈ 0.26 under unit-mean Rayleigh fading): both branches occur."""
    return float(channel.uplink_rate(calibrated_scenario(gamma_max=G), jnp.asarray(0.3)))


# ----------------------------------------------------------------------------- policy → inner loop
def test_lm_inner_loop_names_and_refusals():
    assert lm_inner_loop(Gelato()) == "bucket"
    assert lm_inner_loop(Gelato(exit="marginal")) == "marginal"
    assert lm_inner_loop(Gelato(exit="none")) == "none"
    assert lm_inner_loop(GreedyThroughput(exit="marginal")) == "marginal"
    assert lm_inner_loop(LyapunovOnly()) == "none"
    assert lm_inner_loop(ExitOnly()) == "bucket"
    assert lm_inner_loop(AdaEDL()) == "adaedl"
    assert lm_inner_loop(StaticSD()) == "none" and lm_inner_loop(DSSD()) == "none"
    assert set(LM_INNER_LOOPS) == {"none", "bucket", "marginal", "adaedl"}
    with pytest.raises(ValueError, match="UHLM skips verification"):
        lm_inner_loop(UHLM())

    class Peeking(StaticSD):  # an inner loop LM mode cannot know to be causal
        def draft(self, scenario, aux, state, budget, entropy, obs):
            return jnp.asarray(budget), jnp.asarray(budget)

    with pytest.raises(ValueError, match=r"Peeking\.draft\) is not one LM mode knows to be causal"):
        lm_inner_loop(Peeking())


# ----------------------------------------------------------------------------- causality
def test_rules_are_causal():
    """For each rule, replacing the entropies after the stop (positions ≥ passes) by arbitrary
    values leaves ``(sent, passes)`` unchanged: the decision up to the stop reads ``H_1..H_P``."""
    scen = Scenario(gamma_max=8)
    g = scen.gamma_max
    rng = np.random.default_rng(0)
    n = 400
    ent = jnp.asarray(rng.uniform(0.0, 4.0, (n, g)))
    junk = jnp.asarray(rng.uniform(0.0, 6.0, (n, g)))
    budget = jnp.asarray(rng.integers(0, g + 1, n))
    queue = jnp.asarray(rng.uniform(0.0, 20.0, n))
    h = jnp.asarray(rng.exponential(1.0, n))
    after = jnp.asarray(rng.random(n) < 0.5)
    lam = jnp.asarray(rng.uniform(0.2, 0.8, n))
    rules = {
        "marginal": lambda e, b, z, hh, ar, lm: marginal_exit(
            scen, "topp", e, b, 0.1, z, channel.uplink_rate(scen, hh), channel.downlink_rate(scen, hh), ar),
        "adaedl": lambda e, b, z, hh, ar, lm: adaedl_exit(e, b, 0.2, lm),
        "bucket": lambda e, b, z, hh, ar, lm: leaky_bucket_exit(e, b, 1.5, 1.0),
    }
    for name, rule in rules.items():
        f = jax.jit(jax.vmap(rule))
        sent, passes = f(ent, budget, queue, h, after, lam)
        later = jnp.arange(g)[None] >= passes[:, None]
        sent2, passes2 = f(jnp.where(later, junk, ent), budget, queue, h, after, lam)
        np.testing.assert_array_equal(sent2, sent, err_msg=name)
        np.testing.assert_array_equal(passes2, passes, err_msg=name)
        # both outcomes occur, so the check is not vacuous
        assert np.any(passes == sent + 1) and np.any((passes == budget) & (budget > 0)), name


# ----------------------------------------------------------------------------- LM rounds vs the surrogate rule
def _check_round_invariants(tr):
    budget, sent, passes, acc, n = (np.asarray(getattr(tr, f)) for f in ("budget", "sent", "passes", "accepted", "tokens"))
    assert np.all((0 <= sent) & (sent <= budget) & (budget <= G))
    assert np.all((passes == sent) | (passes == sent + 1)) and np.all(passes <= budget)
    # lossless verification of the sent prefix: A ≤ L leading accepted drafts, one corrected/bonus token
    assert np.all((0 <= acc) & (acc <= sent)) and np.all(n == acc + 1)
    assert np.all(np.asarray(tr.unverified) == 0)
    # both exit outcomes occur in the fixed-seed run: some rounds stop early, some send their budget
    assert np.any(passes == sent + 1) and np.any((sent == budget) & (budget > 0))


def _observations(scen, tr, seed, rounds):
    """Per-round ``(queue, rate, rate_dl, after_reject)`` rebuilt from the trajectory and the
    surrogate's channel draws for the same seed (LM mode uses them: common random numbers)."""
    h = np.asarray(sample_exogenous(scen, seed=seed, realizations=R, rounds=rounds).channel_gain)
    rate = np.asarray(channel.uplink_rate(scen, jnp.asarray(h)))
    np.testing.assert_allclose(tr.rate, rate, rtol=1e-12)
    rate_dl = np.asarray(channel.downlink_rate(scen, jnp.asarray(h)))
    sent, passes, acc = (np.asarray(getattr(tr, f)) for f in ("sent", "passes", "accepted"))
    ended_rejected = (acc < sent) | (passes > sent)
    after = np.concatenate([np.zeros((R, 1), bool), ended_rejected[:, :-1]], axis=1)
    return np.asarray(tr.queue), np.asarray(tr.rate), rate_dl, after


def _assert_rounds_equal(tr, ent, rule_out):
    sent, passes = (np.asarray(x) for x in rule_out)
    np.testing.assert_array_equal(np.asarray(tr.sent), sent)
    np.testing.assert_array_equal(np.asarray(tr.passes), passes)
    # the recorded entropies are zero after the paid passes (nothing recorded for unpaid positions)
    assert np.all(np.where(np.arange(G) >= np.asarray(tr.passes)[..., None], ent == 0, ent > 0))


def test_marginal_lm_rounds_equal_surrogate_rule(pair, r_min):
    """``Gelato(exit="marginal")`` in LM mode: (sent, passes) of every round = ``marginal_exit`` on the
    LM's recorded entropies (zero after the stop), the round's queue, rates and after-rejection
    flag. α(H) = σ(15.27 − 3 H) puts the tiny model's entropies (4.9–5.2 nats) where α ≈ 0.4–0.6,
    a large after-rejection shift makes the flag matter, and V = 2e-3 with a binding energy budget
    makes the queue matter in some rounds (checked below, so that the equality is not vacuous)."""
    t = 16
    # the non-vacuity check below (the queue changes some decisions) is a property of the sample; the
    # test was designed on the threefry stream, and with mix32 at this seed the queue happens to
    # change none of the 16 × R decisions, so the test keeps threefry (the equality holds on both)
    # the entropy law and c_p of the calibration this test was designed on (the previous pair's), pinned:
    # the refit of the KV-cached pair (c_p 1.52, k_H 1.29, ...) leaves the queue idle in all 64 decisions
    scen = calibrated_scenario(gamma_max=G, r_min=r_min, E_bar=0.01, a0=15.27, a1=3.0, after_reject_a0_shift=-3.0,
                               rng="threefry", k_H=1.92867, theta_H=0.940961, after_reject_H_scale=1.11543,
                               rho_H=0.553167, c_p=1.62192, after_reject_latent=None)
    V = 2e-3
    tr, ent = rollout_lm(scen, Gelato(V=V, exit="marginal"), seed=3, realizations=R, rounds=t, pair=pair,
                         record_entropy=True)
    _check_round_invariants(tr)
    queue, rate, rate_dl, after = _observations(scen, tr, 3, t)
    rule = jax.jit(jax.vmap(jax.vmap(lambda e, b, z, r, rd, a: marginal_exit(scen, "topp", e, b, V, z, r, rd, a))))
    args = [jnp.asarray(x) for x in (ent.astype(np.float64), tr.budget, queue, rate, rate_dl, after)]
    sent, passes = rule(*args)
    _assert_rounds_equal(tr, ent, (sent, passes))
    # the rule's inputs matter in this run: without the queue or the flag some rounds would differ
    for i, alt in ((2, np.zeros_like(queue)), (5, np.zeros_like(after))):
        changed = rule(*args[:i], jnp.asarray(alt), *args[i + 1:])[1]
        assert np.any(np.asarray(changed) != np.asarray(passes)), i


def test_adaedl_lm_rounds_equal_surrogate_rule(pair, r_min):
    """``AdaEDL`` in LM mode: (sent, passes) of every round = ``adaedl_exit`` on the recorded
    entropies with the λ obtained by replaying ``AdaEDL.update_state`` on the trajectory's rounds
    (λ₀ = 0.49, c = 0.05 put 1 − √(cH) around λ for the tiny model's entropies; λ moves)."""
    scen = calibrated_scenario(gamma_max=G, r_min=r_min, E_bar=0.03)
    pol = AdaEDL(gamma_cap=G, c=0.05, lambda0=0.49, eta=0.005)
    tr, ent = rollout_lm(scen, pol, seed=3, realizations=R, rounds=T, pair=pair, record_entropy=True)
    _check_round_invariants(tr)
    lam = np.zeros((R, T))
    for r in range(R):
        state = pol.init_state(scen, None)
        for t in range(T):
            lam[r, t] = float(state)
            out = RoundOutcome(*(jnp.asarray(np.asarray(getattr(tr, f))[r, t]) for f in
                                 ("budget", "sent", "passes", "accepted", "tokens", "latency", "energy", "arrival")))
            state = pol.update_state(scen, None, state, out)
    assert len(np.unique(lam)) > R  # λ adapts (not a constant threshold)
    rule = jax.vmap(jax.vmap(lambda e, b, lm: adaedl_exit(e, b, 0.05, lm)))
    e, b = jnp.asarray(ent.astype(np.float64)), jnp.asarray(tr.budget)
    sent, passes = rule(e, b, jnp.asarray(lam))
    _assert_rounds_equal(tr, ent, (sent, passes))
    # with λ frozen at λ₀ some rounds would differ: the state flow is what the equality checks
    assert np.any(np.asarray(rule(e, b, jnp.full((R, T), 0.49))[1]) != np.asarray(passes))


# ----------------------------------------------------------------------------- draft-then-decide = in-scan exit
@jax.jit
def _two_phase(pair, ctx, budget, key, H_th, Theta_th, cut):
    """draft without exit → leaky bucket on the observed entropies → verify; and the same draft
    verified with an arbitrary shorter prefix ``cut`` (sent = passes = min(cut, budget))."""
    d = draft_phase(pair, ctx, budget, key, 0.0, 0.0, jnp.asarray(False), 0.9, G)
    sent, passes = jax.vmap(lambda e, b: leaky_bucket_exit(e, b, H_th, Theta_th))(d.entropy, budget)
    out = verify_phase(pair, ctx, d, sent, passes, 18.0, 16.0, G)
    k = jnp.minimum(cut, budget)
    return d, out, verify_phase(pair, ctx, d, k, k, 18.0, 16.0, G)


def test_draft_then_decide_is_the_in_scan_round(pair):
    """``lm_round``'s in-scan bucket exit and draft-all-then-``leaky_bucket_exit`` give the same
    round, field for field (same keys, same tokens, same verification: the exit is causal and the
    later drafts do not change the earlier ones). A shorter prefix of the same draft is verified,
    paid and charged payload bits only for its own positions."""
    n = 16
    ctx = jax.random.randint(jax.random.key(5), (n, C), 0, 256)
    budget = jnp.asarray(np.arange(n) % (G + 1), jnp.int32)
    key = jax.random.key(7)
    H_th, Theta_th = jnp.float32(5.09), jnp.float32(0.02)  # the tiny draft's median entropy: some exit
    ref = lm_round(pair, ctx, budget, key, H_th=H_th, Theta_th=Theta_th, top_p=0.9, gamma_max=G)
    cut = jnp.asarray(np.arange(n) % 3, jnp.int32)
    d, out, short = _two_phase(pair, ctx, budget, key, H_th, Theta_th, cut)
    for f in ref._fields:
        np.testing.assert_array_equal(np.asarray(getattr(out, f)), np.asarray(getattr(ref, f)), err_msg=f)
    L = np.asarray(ref.sent)
    assert np.any(np.asarray(ref.passes) == L + 1) and np.any((L == np.asarray(budget)) & (L > 0))
    # the shorter prefix
    k = np.minimum(np.asarray(cut), np.asarray(budget))
    i = np.arange(G)[None]
    sup = np.asarray(d.support)
    np.testing.assert_array_equal(short.sent, k)
    np.testing.assert_array_equal(short.passes, k)
    np.testing.assert_allclose(short.bits, np.where(i < k[:, None], 18.0 + sup * 34.0, 0).sum(1), rtol=1e-6)
    np.testing.assert_array_equal(short.drafts, np.where(i < k[:, None], np.asarray(d.drafts), 0))
    np.testing.assert_array_equal(short.support, np.where(i < k[:, None], sup, 0))
    A = np.asarray(short.accepted)
    assert np.all((0 <= A) & (A <= k)) and np.all(np.asarray(short.tokens) == A + 1)
    em = np.asarray(short.emitted)
    assert np.all(np.where(i < A[:, None], em[:, :G] == np.asarray(d.drafts), True))
    assert np.all((em >= 0) == (np.arange(G + 1)[None] <= A[:, None]))


# ----------------------------------------------------------------------------- CLI
def test_cli_simulate_lm_adaedl(capsys):
    """``gelato simulate --tokens lm --policy adaedl`` runs on the committed weights and calibration."""
    from gelato_jax.cli import main

    rc = main(["simulate", "--tokens", "lm", "--policy", "adaedl", "--realizations", "2", "--rounds", "3", "--quiet"])
    assert rc == 0, capsys.readouterr().err


@pytest.mark.slow
def test_cli_simulate_lm_marginal(capsys):
    from gelato_jax.cli import main

    rc = main(["simulate", "--tokens", "lm", "--set", "exit=marginal", "--realizations", "2", "--rounds", "3",
               "--quiet"])
    assert rc == 0, capsys.readouterr().err

