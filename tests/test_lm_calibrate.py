"""Calibration fits recover known parameters from synthetic pairs (docs/model.md §4)."""

import numpy as np
import pytest

from gelato_jax.lm.calibrate import (
    binned_acceptance,
    calibration_toml,
    fit_acceptance,
    fit_entropy_correlation,
    fit_entropy_law,
    fit_payload_constant,
    read_pairs_csv,
    run_calibration,
    write_pairs_csv,
)


def _synthetic(n=20000, a0=4.8, a1=1.8, k=0.8, theta=1.5, seed=0):
    rng = np.random.default_rng(seed)
    h = rng.gamma(k, theta, n)
    y = rng.uniform(size=n) < 1 / (1 + np.exp(-(a0 - a1 * h)))
    return h, y


def test_fit_acceptance_recovers_parameters():
    h, y = _synthetic()
    fit = fit_acceptance(h, y)
    # 4 standard errors: false-failure rate ≈ 6e-5 per parameter under the asymptotic normal law
    assert abs(fit["a0"] - 4.8) < 4 * fit["a0_se"]
    assert abs(fit["a1"] - 1.8) < 4 * fit["a1_se"]
    assert fit["a1_se"] < 0.2 and fit["converged"]


def test_binned_acceptance_intervals_cover_truth():
    h, y = _synthetic(seed=1)
    bins = binned_acceptance(h, y, 10)
    assert sum(b["n"] for b in bins) == len(h)
    alpha = 1 / (1 + np.exp(-(4.8 - 1.8 * np.sort(h, kind="stable"))))
    truth = [a.mean() for a in np.array_split(alpha, 10)]  # exact bin-average acceptance
    covered = sum(b["ci_low"] <= t <= b["ci_high"] for b, t in zip(bins, truth))
    # 95 % Wilson intervals over 10 independent bins: P(≥ 4 misses) ≈ 1e-3
    assert covered >= 7
    assert all(b["ci_low"] <= b["rate"] <= b["ci_high"] for b in bins)


def test_fit_entropy_law_and_payload_constant():
    h, _ = _synthetic(n=20000, seed=2)
    law = fit_entropy_law(h)
    # ML standard error of k for Gamma(0.8) at n = 2e4 is ≈ 0.007; θ's ≈ 0.017
    assert abs(law["k_H"] - 0.8) < 0.04 and abs(law["theta_H"] - 1.5) < 0.09
    m = np.ceil(2.0 * np.exp(h))
    cp = fit_payload_constant(h, m)["c_p"]
    assert 2.0 <= cp < 2.0 * np.exp(np.mean(np.log1p(1 / (2 * np.exp(h)))) + 1e-9)


def test_fit_entropy_correlation_recovers_surrogate_rho():
    """The estimator applied to the surrogate's own AR(1) beta–gamma entropies recovers ``rho_H``."""
    import jax

    from gelato_jax.scenario import Scenario
    from gelato_jax.tokens import sample_entropies

    scen = Scenario.from_dict({"k_H": 2.0, "theta_H": 0.9, "rho_H": 0.4})
    n_rows, g = 4000, 10
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(5), i))(np.arange(n_rows))
    e = np.asarray(jax.vmap(lambda k: sample_entropies(k, scen, g, ar=True))(keys))
    fit = fit_entropy_correlation(e)
    # Bartlett: sd(r1) ≈ √((1 − ρ²)/n) ≈ 0.005 at n = 36 000 lag pairs (Gamma tails at most double
    # the variance): the 0.03 tolerance is ≥ 4 sd, false-failure rate < 1e-4 (normal approx.).
    assert abs(fit["rho_H"] - 0.4) < 0.03
    assert abs(fit["rho2_H"] - 0.16) < 0.03  # AR(1): lag-two correlation ρ², same sizing
    assert fit["n_lag_pairs"] == n_rows * (g - 1)
    iid = fit_entropy_correlation(np.random.default_rng(0).gamma(2.0, 0.9, (4000, 10)))
    assert 0.0 <= iid["rho_H"] < 0.03 and abs(iid["rho_H_raw"]) < 0.03  # clipped to [0, 1)
    with pytest.raises(ValueError, match="entropy_rounds"):
        fit_entropy_correlation(np.ones((5, 1)))


def test_csv_roundtrip_and_errors(tmp_path):
    h, y = _synthetic(n=500, seed=3)
    p = tmp_path / "pairs.csv"
    write_pairs_csv(p, h, y)
    d = read_pairs_csv(p)
    np.testing.assert_allclose(d["entropy"], h, rtol=1e-5)
    np.testing.assert_array_equal(d["accepted"], y)
    bad = tmp_path / "bad.csv"
    bad.write_text("entropy,acc\n1.0,1\n")
    with pytest.raises(ValueError, match="accepted"):
        read_pairs_csv(bad)
    bad.write_text("entropy,accepted\n-1.0,1\n")
    with pytest.raises(ValueError, match="entropy"):
        read_pairs_csv(bad)
    bad.write_text("entropy,accepted\n1.0,2\n")
    with pytest.raises(ValueError, match="accepted"):
        read_pairs_csv(bad)


def test_run_calibration_from_csv_writes_toml_and_plot(tmp_path):
    import tomllib

    h, y = _synthetic(n=5000, seed=4)
    p = tmp_path / "pairs.csv"
    write_pairs_csv(p, h, y, np.ceil(2.0 * np.exp(h)))
    res = run_calibration(csv=str(p), out_dir=tmp_path / "cal", quiet=True)
    toml = tomllib.loads((tmp_path / "cal" / "calibration.toml").read_text())["scenario"]
    assert set(toml) == {"a0", "a1", "k_H", "theta_H", "c_p"}
    assert abs(toml["a1"] - 1.8) < 4 * res["fit"]["a1_se"]
    assert (tmp_path / "cal" / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert res["corr_entropy_accepted"] < -0.2
    # ᾱ of the calibrated surrogate vs the data's acceptance (binomial s.e. ≈ 0.006 at n = 5000)
    assert abs(res["fit"]["surrogate_mean_acceptance"] - res["mean_acceptance"]) < 0.03
    assert "c_p" in calibration_toml(res["fit"]) and "[scenario]" in calibration_toml(res["fit"])
    assert "rho_H" not in res["fit"]  # a CSV has no round structure: rho_H is not fitted
    assert "rho_H = 0.25" in calibration_toml(dict(res["fit"], rho_H=0.25))


def test_collect_pairs_from_lm_mode(tmp_path):
    """LM-mode collection with the committed weights: pairs consistent with the rounds."""
    from gelato_jax.lm.calibrate import collect_pairs
    from gelato_jax.lm.rounds import LMPair

    pair = LMPair.load(context_len=32)
    d = collect_pairs(pair, rounds=3, sequences=16, gamma_max=4, top_p=0.9, seed=1, quiet=True)
    A = d["accepted_count"]
    assert A.shape == (3, 16)
    assert d["accepted"].sum() == A.sum()  # every accepted draft is one accepted pair
    assert len(d["entropy"]) == np.minimum(A + 1, 4).sum()  # verified positions: i <= A, i < L = 4
    assert d["all_entropy"].shape == (3 * 16 * 4,) and np.all(d["all_support"] >= 1)
    np.testing.assert_array_equal(d["entropy_rounds"].ravel(), d["all_entropy"])
    assert d["entropy_rounds"].shape == (3 * 16, 4) and np.all(d["entropy_rounds"] > 0)  # no exit: all drafted
    assert np.all(d["entropy"] >= 0) and np.all(d["entropy"] <= np.log(256) + 1e-4)
    with pytest.raises(ValueError, match="rounds"):
        collect_pairs(pair, rounds=0)
    with pytest.raises(ValueError, match="top_p"):
        run_calibration(csv=None, top_p=1.5, out_dir=tmp_path)


def test_after_reject_fits_recover_known_shift_and_scale(tmp_path):
    """Synthetic pairs with a known after-rejection shift s = −0.5 and scale 1.3: the joint
    logistic fit and the fixed-shape scale fit recover them within 4 standard errors
    (false-failure rate ≈ 6e-5 each, asymptotic normal law); the CSV path reads ``after_reject``."""
    from gelato_jax.lm.calibrate import fit_first_position_scale

    rng = np.random.default_rng(7)
    n = 40000
    flag = rng.uniform(size=n) < 0.3
    h = rng.gamma(0.8, 1.5, n) * np.where(flag, 1.3, 1.0)
    y = rng.uniform(size=n) < 1 / (1 + np.exp(-(4.8 - 0.5 * flag - 1.8 * h)))
    fit = fit_acceptance(h, y, flag)
    assert abs(fit["after_reject_a0_shift"] + 0.5) < 4 * fit["after_reject_a0_shift_se"]
    assert abs(fit["a1"] - 1.8) < 4 * fit["a1_se"]
    rounds = rng.gamma(0.8, 1.5, (20000, 4))
    rej = rng.uniform(size=20000) < 0.5
    rounds[rej, 0] *= 1.3
    sc = fit_first_position_scale(rounds, 0.8, 1.5, rej)
    assert abs(sc["after_reject_H_scale"] - 1.3) < 4 * sc["after_reject_H_scale_se"]
    # the flag column survives a CSV round trip and drives the shift fit
    p = tmp_path / "pairs.csv"
    write_pairs_csv(p, h[:5000], y[:5000], None, flag[:5000])
    d = read_pairs_csv(p)
    np.testing.assert_array_equal(d["after_reject"], flag[:5000])
    res = run_calibration(csv=str(p), out_dir=tmp_path / "cal", quiet=True)
    assert "after_reject_a0_shift" in res["fit"] and "after_reject" in res
    assert "after_reject_H_scale" not in res["fit"]  # not fitted from a CSV (module docstring)
    pooled = run_calibration(csv=str(p), out_dir=tmp_path / "cal2", quiet=True, positional=False)
    assert "after_reject_a0_shift" not in pooled["fit"]
    bad = tmp_path / "bad.csv"
    bad.write_text("entropy,accepted,after_reject\n1.0,1,2\n")
    with pytest.raises(ValueError, match="after_reject must be 0 or 1"):
        read_pairs_csv(bad)


@pytest.mark.slow
def test_validate_calibration_table(tmp_path, pair):
    """The side-by-side validation runs both modes and reports a z statistic per metric; tiny
    sizes here (the numbers are meaningless at 2 × 3 rounds, the plumbing is what is tested)."""
    from gelato_jax.lm.calibrate import validate_calibration
    from gelato_jax.lm.simulate import CALIBRATION_PATH, calibrated_scenario
    from gelato_jax.policies import Gelato, StaticSD

    toml = tmp_path / "cal.toml"
    toml.write_text(CALIBRATION_PATH.read_text().replace("[scenario]", "[scenario]\ngamma_max = 4"))
    rows = validate_calibration(toml, lm_realizations=3, lm_rounds=3, surrogate_realizations=4, surrogate_rounds=5,
                                out_dir=tmp_path / "v", policies=[Gelato(exit="bucket"), StaticSD(gamma=2)],
                                quiet=True, pair=pair)
    assert len(rows) == 8 and {r["metric"] for r in rows} == {"accepted", "sent", "throughput", "energy"}
    assert all(np.isfinite(r["lm"]) and np.isfinite(r["surrogate"]) for r in rows)
    # StaticSD(2) sends exactly 2 drafts in both modes (no outage at the calibrated distance)
    sent = [r for r in rows if r["policy"].startswith("StaticSD") and r["metric"] == "sent"][0]
    assert sent["lm"] <= 2 and sent["surrogate"] <= 2
    assert "| metric |" in (tmp_path / "v" / "validation.md").read_text()
    assert calibrated_scenario(toml).gamma_max == 4


def test_fit_after_reject_latent_recovers_a_known_law():
    """Synthetic rounds whose first draft after a rejection follows ``z_1 = mu + c·z_a + sigma·ε``
    on the rejected draft's normal score: the fit recovers ``(mu, c, sigma)`` within 4.5 jackknife
    standard errors each (false-failure rate ≈ 2e-5 per parameter if the s.e. is right)."""
    from scipy import stats as st

    from gelato_jax.lm.calibrate import fit_after_reject_latent

    rng = np.random.default_rng(0)
    k, th, mu, c, sd = 1.3, 1.3, 0.2, 0.25, 0.65
    seqs, rounds, g = 200, 30, 6
    z = rng.standard_normal((rounds, seqs, g))
    A = rng.integers(0, g + 1, (rounds, seqs))  # accepted drafts (g = all accepted)
    for t in range(1, rounds):
        rej = A[t - 1] < g
        za = z[t - 1, np.arange(seqs), np.minimum(A[t - 1], g - 1)]
        z[t, rej, 0] = mu + c * za[rej] + sd * rng.standard_normal(int(rej.sum()))
    e = th * st.gamma.ppf(st.norm.cdf(z), k)
    after = np.zeros((rounds, seqs), bool)
    after[1:] = A[:-1] < g
    f = fit_after_reject_latent(e.reshape(-1, g), A, after.ravel(), np.tile(np.arange(seqs), rounds),
                                np.repeat(np.arange(rounds), seqs), k, th)
    for got, want, se in zip(f["after_reject_latent"], (mu, c, sd), f["after_reject_latent_se"]):
        assert abs(got - want) <= 4.5 * se, (f["after_reject_latent"], f["after_reject_latent_se"])
    assert f["n_boundary"] == int(after.sum())


def test_committed_calibration_has_the_after_rejection_latent_law():
    """The committed calibration uses the text process with the fitted after-rejection latent law
    and no raw first-position scale on top of it (docs/lm_validation_kv.md)."""
    from gelato_jax.lm.simulate import calibrated_scenario

    scen = calibrated_scenario()
    assert scen.entropy_process == "text" and scen.after_reject_latent is not None
    assert float(scen.after_reject_H_scale) == 1.0
