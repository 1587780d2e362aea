"""Structured real logs for `gelato calibrate --csv` (docs/lm_logs.md), fits that say what they cannot
estimate, small-sample warnings, CSV self-validation, and no silently ignored simulate flags.

Statistical checks use fixed seeds; each states its false-failure rate under fresh seeds.
"""

import math

import numpy as np
import pytest
from scipy import special, stats

from gelato_jax.lm.calibrate import (
    SMALL_SAMPLE,
    read_pairs_csv,
    run_calibration,
    validate_csv_calibration,
    write_pairs_csv,
)

A0, A1, K, THETA, RHO = 4.8, 1.8, 0.8, 1.5, 0.55


def _structured_log(path, n_seq=150, n_rounds=30, gamma=6, seed=0, alpha=None):
    """Synthetic log in the structured schema: Gaussian-copula AR(1) entropies along the text
    (latent ``z_{j+1} = ρ z_j + √(1−ρ²) ε``, ``H = F_Gamma^{-1}(Φ(z))``, the scenario's text
    process), every drafted position logged, acceptance ``σ(a0 − a1 H)`` verified up to the first
    rejection (later cells empty)."""
    rng = np.random.default_rng(seed)
    alpha = alpha or (lambda h: special.expit(A0 - A1 * h))
    n = n_rounds * gamma
    z = np.empty((n_seq, n))
    z[:, 0] = rng.standard_normal(n_seq)
    eps = rng.standard_normal((n_seq, n))
    for j in range(1, n):
        z[:, j] = RHO * z[:, j - 1] + math.sqrt(1 - RHO ** 2) * eps[:, j]
    h = stats.gamma.ppf(stats.norm.cdf(z), K, scale=THETA).reshape(n_seq, n_rounds, gamma)
    u = rng.uniform(size=h.shape)
    lines = ["sequence,round,position,entropy,accepted,support"]
    for s in range(n_seq):
        for t in range(n_rounds):
            acc = u[s, t] < alpha(h[s, t])
            a = int(np.cumprod(acc).sum())
            for i in range(gamma):
                cell = "1" if i < a else ("0" if i == a else "")
                lines.append(f"{s},{t},{i + 1},{h[s, t, i]:.9g},{cell},{max(1, int(np.ceil(2 * np.exp(h[s, t, i]))))}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    return _structured_log(tmp_path_factory.mktemp("log") / "log.csv")


def test_structured_csv_recovers_known_rho_H_and_maps(log, tmp_path):
    res = run_calibration(csv=str(log), out_dir=tmp_path / "cal", quiet=True)
    f = res["fit"]
    # rho_H within 3.29 jackknife standard errors (two-sided false-failure rate 1e-3 if the s.e. is right)
    assert f["rho_text_se"] > 0 and abs(f["rho_text"] - RHO) <= 3.29 * f["rho_text_se"]
    assert f["rho_text_se"] < 0.02  # 150 sequences × 30 rounds × 5 lag pairs: the check has resolution
    # acceptance map and entropy law within 4 s.e. (≈ 6e-5 each)
    assert abs(f["a0"] - A0) < 4 * f["a0_se"] and abs(f["a1"] - A1) < 4 * f["a1_se"]
    assert abs(f["k_H"] - K) < 4 * f["k_H_se"] and abs(f["theta_H"] - THETA) < 4 * f["theta_H_se"]
    # acceptance given H does not depend on the position here: the fitted after-rejection shift is null
    assert abs(f["after_reject_a0_shift"]) < 4 * f["after_reject_a0_shift_se"]
    # while the entropy after a rejection is higher (the persistent text process: a rejection
    # follows a high entropy), which the first-position scale picks up
    assert f["after_reject_H_scale"] - 1 > 4 * f["after_reject_H_scale_se"]
    assert "c_p" in f and res["not_estimated"] == {} and res["warnings"] == []
    toml = (tmp_path / "cal" / "calibration.toml").read_text()
    assert 'entropy_process = "text"' in toml and "rho_H = " in toml and "after_reject_H_scale" in toml


def test_structured_csv_rejects_impossible_logs(tmp_path):
    bad = tmp_path / "b.csv"
    bad.write_text("sequence,round,position,entropy,accepted\n0,0,1,1.0,0\n0,0,2,1.0,1\n")
    with pytest.raises(ValueError, match="first rejection"):
        read_pairs_csv(bad)
    bad.write_text("sequence,round,position,entropy,accepted\n0,0,1,1.0,1\n0,0,3,1.0,1\n")
    with pytest.raises(ValueError, match="without gaps"):
        read_pairs_csv(bad)
    bad.write_text("sequence,position,entropy,accepted\n0,1,1.0,1\n")
    with pytest.raises(ValueError, match="sequence, round, position"):
        read_pairs_csv(bad)


def test_after_reject_derived_from_structure(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("sequence,round,position,entropy,accepted\n"
                 "0,0,1,1.0,1\n0,0,2,1.2,0\n0,0,3,0.5,\n"  # round 0 had a rejection
                 "0,1,1,2.0,1\n0,1,2,0.3,1\n"  # all accepted
                 "0,2,1,0.7,0\n0,2,2,0.1,\n"
                 "1,2,1,0.9,1\n")  # sequence 1's first logged round: not after a rejection
    d = read_pairs_csv(p)
    np.testing.assert_array_equal(d["rounds_after_reject"], [False, True, False, False])
    np.testing.assert_array_equal(d["accepted_count"], [1, 2, 0, 1])
    assert d["entropy"].size == 2 + 2 + 1 + 1 and d["all_entropy"].size == 8
    assert np.isnan(d["entropy_rounds"][3, 1])  # shorter rounds are padded


def test_flat_csv_says_what_it_cannot_estimate_and_warns(tmp_path, capsys):
    from gelato_jax.cli import main
    from gelato_jax.scenario import Scenario

    rng = np.random.default_rng(3)
    h = rng.gamma(K, THETA, 29)
    y = rng.uniform(size=29) < special.expit(A0 - A1 * h)
    p = tmp_path / "small.csv"
    write_pairs_csv(p, h, y)
    res = run_calibration(csv=str(p), out_dir=tmp_path / "cal", quiet=True)
    d = Scenario()
    ne = res["not_estimated"]
    assert ne["c_p"]["kept"] == d.c_p and "support" in ne["c_p"]["reason"]
    assert ne["rho_H"]["kept"] == d.rho_H and "after_reject_H_scale" in ne and "after_reject_a0_shift" in ne
    assert 29 < SMALL_SAMPLE and len(res["warnings"]) == 1 and "a1 = " in res["warnings"][0]
    assert f"{res['fit']['a1_se']:.2g}" in res["warnings"][0]
    import tomllib

    toml = (tmp_path / "cal" / "calibration.toml").read_text()
    assert "c_p not estimated" in toml and "c_p" not in tomllib.loads(toml)["scenario"]
    assert main(["calibrate", "--csv", str(p), "--out", str(tmp_path / "cli")]) == 0
    out = capsys.readouterr()
    assert "nan" not in out.out and f"c_p: not estimated" in out.out and f"keeps c_p = {d.c_p!r}" in out.out
    assert "small sample" in out.err and "±" in out.err


def test_csv_validate_checks_the_csvs_own_pairs(log, tmp_path, capsys):
    """Held-out checks agree on a log drawn from the fitted model family (each row's false-failure
    rate 1e-3; 13 rows, ≈ 1.3 % for the whole table), and disagree on one whose acceptance is not
    logistic in H (power)."""
    from gelato_jax.cli import main

    rows = validate_csv_calibration(log, out_dir=tmp_path / "v")
    assert len(rows) == 13 and all(r["within"] for r in rows), [r for r in rows if not r["within"]]
    assert any(r["check"].startswith("accepted drafts per round") for r in rows)
    step = _structured_log(tmp_path / "step.csv", n_seq=100, seed=1, alpha=lambda h: np.where(h < 1.0, 0.95, 0.2))
    bad = validate_csv_calibration(step)
    assert not all(r["within"] for r in bad)
    assert main(["calibrate", "--csv", str(log), "--validate", "--out", str(tmp_path / "cli")]) == 0
    out = capsys.readouterr().out
    assert "held-out" in out and "DISAGREES" not in out
    assert "| check |" in (tmp_path / "cli" / "validation.md").read_text()


@pytest.mark.parametrize("flag", [["--calibration", "x.toml"], ["--top-p", "0.9"], ["--weights", "w"]])
def test_simulate_refuses_lm_only_flags_on_the_surrogate(flag, capsys):
    from gelato_jax.cli import main

    assert main(["simulate", *flag, "--realizations", "2", "--rounds", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert flag[0] in err and "--tokens lm" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow  # compiles LM mode's cached collection (162 s under load ≈ 10 on the shared machine)
def test_export_csv_round_trip_reproduces_lm_fit(tmp_path):
    """`--export-csv` writes LM mode's own rounds (KV-cached, tiny untrained rotary pair) in the
    structured schema; fitting that file gives LM mode's fit.  Entropies are written with 9
    significant digits: the float32 value is recovered, but parsed as float64 the decimal differs
    from float64(float32) by up to ~1e-9 relative, so the fits agree to ~1e-7 (measured 3e-8 on
    a0), not bit for bit; a flipped pair or a lost row would move them by ~1e-2."""
    from flax import nnx

    from gelato_jax.lm.model import LMConfig, TransformerLM
    from gelato_jax.lm.weights_io import save_model

    w = tmp_path / "w"
    save_model(TransformerLM(LMConfig(n_layers=1, d_model=16, n_heads=2, max_len=32, pos="rope", window=16),
                             rngs=nnx.Rngs(0)), w / "draft")
    save_model(TransformerLM(LMConfig(n_layers=1, d_model=32, n_heads=2, max_len=32, pos="rope", window=16),
                             rngs=nnx.Rngs(1)), w / "target")
    lm = run_calibration(out_dir=tmp_path / "lm", weights_dir=str(w), rounds=6, sequences=8, gamma_max=4,
                         top_p=0.9, quiet=True, export_csv=tmp_path / "log.csv")
    assert lm["export_csv"]["rows"] == 6 * 8 * 4  # every drafted position
    csv = run_calibration(csv=str(tmp_path / "log.csv"), out_dir=tmp_path / "csv", quiet=True)
    for k in ("a0", "a1", "k_H", "theta_H", "c_p", "after_reject_a0_shift", "after_reject_H_scale", "rho_text"):
        assert k in lm["fit"], k
        np.testing.assert_allclose(csv["fit"][k], lm["fit"][k], rtol=1e-6, err_msg=k)
    assert csv["n_pairs"] == lm["n_pairs"] and csv["not_estimated"] == lm["not_estimated"] == {}
