"""LM-mode rollout (gelato_jax.lm.simulate): invariants, cost arithmetic, determinism (docs/model.md §1, §3, §4).

Most tests use a tiny random-initialised model pair (fast to compile); one runs the committed
weights. Every test uses R = 4 realizations so the LM kernel compiles once per pair.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gelato_jax import channel, costs
from gelato_jax.lm.cli import simulate_lm_from_args
from gelato_jax.lm.simulate import CALIBRATION_PATH, calibrated_scenario, rollout_lm, simulate_lm, summarize
from gelato_jax.policies import AdaEDL, ExitOnly, Gelato, LyapunovOnly, StaticSD, UHLM
from gelato_jax.scenario import Scenario, read_toml
from gelato_jax.simulator import rollout, sample_exogenous, simulate

C, G, R, T = 16, 4, 4, 8


@pytest.fixture(scope="module")
def scenario():
    """Calibrated scenario, γ_max = G, outage when h < 0.3 (P ≈ 0.26), a binding energy budget."""
    base = calibrated_scenario(gamma_max=G)
    r_min = float(channel.uplink_rate(base, jnp.asarray(0.3)))
    return calibrated_scenario(gamma_max=G, r_min=r_min, E_bar=0.03)


def _h(scen, seed, realizations, rounds):
    """The fading LM mode uses: the surrogate's draws for the same seed (common random numbers)."""
    return np.asarray(sample_exogenous(scen, seed=seed, realizations=realizations, rounds=rounds).channel_gain)


def _check_invariants(scen, tr, h, exit_possible):
    budget, sent, passes, acc, n = (np.asarray(getattr(tr, f)) for f in ("budget", "sent", "passes", "accepted", "tokens"))
    outage = np.asarray(channel.in_outage(scen, jnp.asarray(tr.rate)))
    assert outage.any() and not outage.all()  # both branches exercised (fixed seed)
    assert np.all((0 <= sent) & (sent <= budget) & (budget <= scen.gamma_max))
    assert np.all(budget[outage] == 0)
    assert np.all((passes == sent) | (passes == sent + 1))
    if not exit_possible:
        assert np.all(passes == sent) and np.all(sent == budget)
    assert np.all((0 <= acc) & (acc <= sent)) and np.all(n == acc + 1) and np.all(n <= sent + 1)
    # queue: Z ≥ 0, Z_0 = 0, exact update, and the path inequality Z_t ≥ Σ_{s<t} (E_s − a_s)
    Z, E, a = np.asarray(tr.queue), np.asarray(tr.energy), np.asarray(tr.arrival)
    assert np.all(Z >= 0) and np.all(Z[:, 0] == 0)
    np.testing.assert_array_equal(Z[:, 1:], np.maximum(Z[:, :-1] + E[:, :-1] - a[:, :-1], 0.0))
    drift = np.cumsum(E - a, axis=1)[:, :-1]
    assert np.all(Z[:, 1:] >= drift - 1e-12)
    # costs: the same rates/channel as the surrogate, and gelato_jax.costs' arithmetic
    rate = np.asarray(channel.uplink_rate(scen, jnp.asarray(h)))
    rate_dl = np.asarray(channel.downlink_rate(scen, jnp.asarray(h)))
    np.testing.assert_allclose(tr.rate, rate, rtol=1e-12)
    bul, bdl = np.asarray(tr.uplink_bits), np.asarray(tr.downlink_bits)
    np.testing.assert_allclose(tr.latency, costs.latency(scen, passes, sent, bul, bdl, rate, rate_dl), rtol=1e-12)
    np.testing.assert_allclose(tr.energy, costs.energy(scen, passes, bul, rate), rtol=1e-12)
    return outage


# the tiny random draft model has entropies of 4.9–5.2 nats (median ≈ 5.09): a bucket leaking at
# the median with a small capacity sometimes exits and sometimes lets drafts through
BUCKET = dict(H_th=5.09, Theta_th=0.02)


def test_gelato_bucket_invariants_and_topp_bits(pair, scenario):
    pol = Gelato(V=0.05, **BUCKET)
    tr = rollout_lm(scenario, pol, seed=3, realizations=R, rounds=T, pair=pair)
    h = _h(scenario, 3, R, T)
    _check_invariants(scenario, tr, h, exit_possible=True)
    sent = np.asarray(tr.sent)
    np.testing.assert_array_equal(tr.downlink_bits, costs.downlink_bits(scenario, "topp", tr.accepted < sent))
    # topp payload: Σ_{i<L} b_id + m_i (b_id + b_prob) with measured supports 1 ≤ m_i ≤ 256
    b_id, b_prob = float(scenario.b_id), float(scenario.b_prob)
    m_sum = (np.asarray(tr.uplink_bits) - sent * b_id) / (b_id + b_prob)
    np.testing.assert_allclose(m_sum, np.round(m_sum), atol=1e-6)
    assert np.all((sent <= m_sum) & (m_sum <= 256 * sent))
    passes = np.asarray(tr.passes)
    assert np.any(passes == sent + 1) and np.any(sent > 0)  # exits and sent drafts both occur (fixed seed)


def test_bucket_exit_fires_and_no_exit_never(pair, scenario):
    """ExitOnly with H_th = 0, Θ_th = 0 exits at the first pass with H > 0 (every pass here);
    LyapunovOnly (exit='none') never pays an extra pass."""
    tr = rollout_lm(scenario, ExitOnly(gamma=G, H_th=0.0, Theta_th=0.0), seed=1, realizations=R, rounds=T, pair=pair)
    outage = _check_invariants(scenario, tr, _h(scenario, 1, R, T), exit_possible=True)
    np.testing.assert_array_equal(np.asarray(tr.passes)[~outage], 1)
    np.testing.assert_array_equal(np.asarray(tr.sent), 0)
    tr = rollout_lm(scenario, LyapunovOnly(V=0.05), seed=1, realizations=R, rounds=T, pair=pair)
    _check_invariants(scenario, tr, _h(scenario, 1, R, T), exit_possible=False)


def test_static_sd_always_drafts_gamma(pair, scenario):
    tr = rollout_lm(scenario, StaticSD(gamma=3), seed=2, realizations=R, rounds=T, pair=pair)
    outage = _check_invariants(scenario, tr, _h(scenario, 2, R, T), exit_possible=False)
    np.testing.assert_array_equal(tr.budget, np.where(outage, 0, 3))
    # full payload: the costs module's per-token constant (V_vocab = 256, the LM's vocabulary)
    assert float(scenario.V_vocab) == 256.0
    per = float(costs.token_bits(scenario, "full", jnp.zeros(())))
    np.testing.assert_allclose(tr.uplink_bits, np.asarray(tr.sent) * per, rtol=1e-12)


def test_realization_independent_of_companions(pair, scenario):
    """Realization r's rows do not depend on which or how many realizations run with it."""
    a = rollout_lm(scenario, Gelato(V=0.05, **BUCKET), seed=5, realizations=R, rounds=T, pair=pair)  # indices 0..3
    b = rollout_lm(scenario, Gelato(V=0.05, **BUCKET), seed=5, rounds=T, pair=pair, indices=[3, 9, 0, 1])
    c = rollout_lm(scenario, Gelato(V=0.05, **BUCKET), seed=5, rounds=T, pair=pair, indices=[1, 0, 3, 7, 2], chunk=R)
    for f in a._fields:
        x, y, z = np.asarray(getattr(a, f)), np.asarray(getattr(b, f)), np.asarray(getattr(c, f))
        np.testing.assert_allclose(y[[2, 3, 0]], x[[0, 1, 3]], rtol=1e-12, err_msg=f)
        np.testing.assert_allclose(z[[1, 0, 4, 2]], x, rtol=1e-12, err_msg=f)
    s1 = simulate_lm(scenario, Gelato(V=0.05, **BUCKET), seed=5, realizations=R, rounds=T, pair=pair)
    s2 = simulate_lm(scenario, Gelato(V=0.05), seed=6, realizations=R, rounds=T, pair=pair)
    assert not np.array_equal(s1.throughput, s2.throughput)  # the seed matters


def test_summarize_matches_surrogate_simulate():
    """``summarize`` reduces a trajectory with the meaning of ``simulate``'s SimResult."""
    scen = Scenario(gamma_max=4, E_bar=0.03)
    pol = Gelato(V=0.05)
    exo = sample_exogenous(scen, seed=0, realizations=3, rounds=20)
    tr = rollout(scen, pol, exo)
    Z, E, a = (np.asarray(x) for x in (tr.queue, tr.energy, tr.arrival))
    q_final = np.maximum(Z[:, -1] + E[:, -1] - a[:, -1], 0.0)
    got = summarize(scen, tr, q_final).as_dict()
    ref = simulate(scen, pol, seed=0, realizations=3, rounds=20).as_dict()
    assert got.keys() == ref.keys()
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-10, err_msg=k)


def test_simresult_from_committed_weights():
    """Default pair (committed weights) and calibrated scenario: a SimResult with sane values."""
    scen = calibrated_scenario()
    res = simulate_lm(scen, Gelato(), seed=0, realizations=R, rounds=3)
    assert res.rounds == 3 and res.throughput.shape == (R,)
    # per round 1 <= N <= L + 1; these are time averages, so allow their rounding (7/3 vs 4/3 + 1)
    assert np.all(res.tokens >= 1) and np.all(res.tokens <= res.sent + 1 + 1e-12)
    assert np.all(res.goodput > 0) and np.all(res.queue_final >= 0)


@pytest.mark.parametrize(
    "policy, match",
    [(UHLM(), "UHLM")],
)
def test_unsupported_policies_rejected(pair, scenario, policy, match):
    with pytest.raises(ValueError, match=match):
        simulate_lm(scenario, policy, realizations=1, rounds=1, pair=pair)


def test_bad_arguments_rejected(pair, scenario):
    with pytest.raises(ValueError, match="gamma_max"):
        simulate_lm(calibrated_scenario(gamma_max=G + 1), StaticSD(gamma=1), realizations=1, rounds=1, pair=pair)
    with pytest.raises(ValueError, match="top_p"):
        simulate_lm(scenario, Gelato(), realizations=1, rounds=1, pair=pair, top_p=1.5)
    with pytest.raises(ValueError, match="rounds"):
        simulate_lm(scenario, Gelato(), realizations=1, rounds=0, pair=pair)
    with pytest.raises(ValueError, match="indices"):
        rollout_lm(scenario, Gelato(), rounds=1, pair=pair, indices=[-1])


def test_calibrated_scenario_reads_committed_file(tmp_path):
    table = read_toml(CALIBRATION_PATH)["scenario"]
    scen = calibrated_scenario(d=500.0)
    for k, v in table.items():
        if isinstance(v, str):
            assert getattr(scen, k) == v
        elif isinstance(v, list):  # after_reject_latent = [mu, c, sigma]
            assert getattr(scen, k) == pytest.approx(tuple(v))
        else:
            assert float(getattr(scen, k)) == pytest.approx(v)
    assert float(scen.d) == 500.0 and float(scen.V_vocab) == 256.0
    with pytest.raises(ValueError, match="gelato calibrate"):
        calibrated_scenario(tmp_path / "missing.toml")


def test_cli_glue_uses_calibration_and_explicit_overrides(pair, monkeypatch):
    import argparse

    from gelato_jax.lm import cli as lmcli

    args = argparse.Namespace(config=None, set=["a0=3.0", "gamma_max=4", "V=0.05"], policy="gelato", seed=0,
                              realizations=None, rounds=None, chunk=None, quiet=True, top_p=None, weights=None,
                              calibration=None)
    scen, pol, name = lmcli.lm_scenario_and_policy_from_args(args)
    table = read_toml(CALIBRATION_PATH)["scenario"]
    assert float(scen.a0) == 3.0 and float(scen.a1) == pytest.approx(table["a1"]) and scen.gamma_max == 4
    assert float(pol.V) == 0.05 and name == "gelato"
    # default sizes and the pair: intercept the call instead of running the committed weights here
    seen = {}
    monkeypatch.setattr("gelato_jax.lm.simulate.simulate_lm", lambda s, p, **kw: seen.update(kw) or "ok")
    assert simulate_lm_from_args(args, scen, pol) == "ok"
    assert (seen["realizations"], seen["rounds"]) == (lmcli.LM_DEFAULT_REALIZATIONS, lmcli.LM_DEFAULT_ROUNDS)


# surrogate − LM mode measured at LM 1024 × 200 vs surrogate 8192 × 200, seed 0, on the committed
# calibration (docs/lm_validation_kv.md, bench/results/lm_validation_kv_1024x200_latent.json):
# (difference, its standard error)
_DOCUMENTED_GAP = {
    ("none", "accepted"): (-0.0087, 0.0027), ("none", "throughput"): (-0.1395, 0.0345),
    ("bucket", "accepted"): (0.0508, 0.0036), ("bucket", "throughput"): (0.7276, 0.0395),
    ("static4", "accepted"): (-0.0215, 0.0052), ("static4", "throughput"): (-0.2307, 0.0460),
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,policy", [("none", Gelato(exit="none")), ("bucket", Gelato(exit="bucket")),
                    ("static4", StaticSD(gamma=4, payload="topp"))],
    ids=["gelato-no-exit", "gelato-bucket", "static-4"])
def test_calibrated_surrogate_vs_lm_mode_matches_the_documented_gap(name, policy):
    """Calibrated surrogate (committed calibration.toml: text process, after-rejection latent law)
    vs LM mode at LM 128 × 100, surrogate 1024 × 100 (the same horizon): the difference of the
    means of accepted drafts and throughput equals the gap documented at 1024 × 200
    (``_DOCUMENTED_GAP``; small but resolved for no exit and StaticSD(4), +3 % throughput for the
    bucket exit) within ``3.29·s.e.`` (s.e. of both runs and of the documented gap, treated as
    independent, which overstates it: both LM runs share realizations 0..127 and their channel
    draws) — a false-failure rate ≤ 1e-3 per assertion if the model has not changed (none of
    these three policies has a transient between 100 and 2000 rounds at the measured precision).
    Not a pass by small sample: the throughput s.e. here is ≈ 0.5 % of the mean, so a change of the
    gap by ≥ 2.5 % (the previous law's gaps were −3.2 %, +2.2 % and −5.2 %) fails with
    probability ≥ 0.95; the size is asserted."""
    scen = calibrated_scenario()
    lm = simulate_lm(scen, policy, seed=0, realizations=128, rounds=100)
    su = simulate(scen, policy, seed=0, realizations=1024, rounds=100)
    for k in ("accepted", "throughput"):
        x, y = np.asarray(getattr(lm, k), np.float64), np.asarray(getattr(su, k), np.float64)
        d, se_d = _DOCUMENTED_GAP[(name, k)]
        se = np.sqrt(x.var(ddof=1) / x.size + y.var(ddof=1) / y.size + se_d**2)
        if k == "throughput":
            assert se <= 0.0075 * x.mean(), (se, x.mean())  # the power stated above
        assert abs(y.mean() - x.mean() - d) <= 3.29 * se, (k, x.mean(), y.mean(), d, se)
