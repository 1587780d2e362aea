"""`gelato compare`: common random numbers, paired statistics, CLI and saved results."""

import json

import numpy as np
import pytest

from gelato_jax import Scenario, simulate
from gelato_jax.cli import main
from gelato_jax.compare import compare, load_comparison, paired_difference, ratio_change
from gelato_jax.policies import UHLM, Gelato, StaticSD

SCEN = Scenario()
R, T = 4, 200


POLS = {
    "gelato": Gelato(V=0.1),
    "gelato-copy": Gelato(V=0.1),
    "static": StaticSD(gamma=2, payload="topp"),
    "uhlm": UHLM(u_th=2.0),
    "uhlm0": UHLM(u_th=0.0),
}


@pytest.fixture(scope="module")
def cmp():
    # one compile per policy class (leaf values such as V do not recompile)
    return compare(SCEN, POLS, seed=7, realizations=R, rounds=T)


def test_same_policy_twice_gives_exactly_zero_paired_difference(cmp):
    d = cmp.versus()["gelato-copy"]
    for key in ("throughput", "energy", "goodput", "queue_mean"):
        assert d[key]["diff"] == {"mean": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    # ... while the realizations themselves differ (the draws are random, not constant)
    assert np.ptp(cmp.metrics["gelato"]["throughput"]) > 0


def test_compare_uses_simulates_draws(cmp):
    sim = simulate(SCEN, POLS["gelato"], seed=7, realizations=R, rounds=T)
    m = cmp.metrics["gelato"]
    for key, ref in [("throughput", sim.throughput), ("goodput", sim.goodput), ("energy", sim.energy), ("queue_final", sim.queue_final), ("energy_per_token", sim.energy_per_token)]:
        np.testing.assert_allclose(m[key], ref, rtol=1e-12)
    other = compare(SCEN, {"gelato": POLS["gelato"]}, seed=8, realizations=R, rounds=T)
    assert not np.allclose(other.metrics["gelato"]["throughput"], m["throughput"])


def test_common_draws_make_policies_positively_correlated(cmp):
    # Different policies on the same channel: per-realization throughputs move together, so the
    # paired CI is narrower than the unpaired one (the reason for common random numbers).
    x, y = cmp.metrics["gelato"]["throughput"], cmp.metrics["static"]["throughput"]
    paired = np.std(x - y, ddof=1)
    unpaired = np.sqrt(np.var(x, ddof=1) + np.var(y, ddof=1))
    assert paired < unpaired


def test_uhlm_quality_metric_only_for_the_lossy_policy(cmp):
    assert np.all(cmp.metrics["gelato"]["mismatch_rate"] == 0)
    assert np.all(cmp.metrics["uhlm0"]["mismatch_rate"] == 0)
    m = cmp.metrics["uhlm"]["mismatch_rate"]
    # ≈ 4 % of ≈ 650 pooled unverified tokens: P(no mismatch at all) < 1e-9
    assert np.all((m >= 0) & (m < 1)) and m.sum() > 0
    assert np.all(cmp.metrics["uhlm"]["mismatch_per_token"] <= m)


def test_paired_statistics_exact_cases():
    y = np.array([1.0, 2.0, 3.0, 5.0])
    r = ratio_change(2 * y, y)
    assert r["mean"] == pytest.approx(100.0) and r["ci_low"] == pytest.approx(100.0) and r["ci_high"] == pytest.approx(100.0)
    d = paired_difference(y + 1.0, y)
    assert d == {"mean": 1.0, "ci_low": 1.0, "ci_high": 1.0}
    # Student-t interval of the mean difference, n = 4: half-width t_{0.975,3} sd / 2
    from scipy import stats

    x = y + np.array([0.1, -0.2, 0.3, 0.0])
    d = paired_difference(x, y)
    half = stats.t.ppf(0.975, 3) * np.std(x - y, ddof=1) / 2
    assert d["ci_high"] - d["mean"] == pytest.approx(half)


def test_cli_compare_json_and_atomic_output(tmp_path, capsys, cmp):
    out = tmp_path / "res"
    rc = main(["compare", "--policies", "gelato,static", "--pset", "gelato.V=0.1", "--pset", "static.payload=topp",
               "--pset", "static.gamma=2", "--realizations", str(R), "--rounds", str(T), "--seed", "4", "--json", "--quiet", "--out", str(out)])
    assert rc == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["policies"]["static"]["fields"]["payload"] == "topp" and rec["policies"]["gelato"]["fields"]["V"] == 0.1
    assert set(rec["versus"]) == {"static"}
    loaded, saved = load_comparison(str(out))
    assert loaded.names == ("gelato", "static") and saved["seed"] == 4
    np.testing.assert_allclose(np.mean(loaded.metrics["gelato"]["throughput"]), rec["summary"]["gelato"]["throughput"]["mean"])
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp")]


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--policies", "gelato,nope"], "nope"),
        (["--pset", "gelato.bogus=1"], "bogus"),
        (["--set", "W=-1"], "Scenario.W"),
        (["--policies", "gelato", "--reference", "static"], "reference"),
    ],
)
def test_cli_compare_bad_input_exits_2_with_one_line(argv, needle, capsys, tmp_path):
    rc = main(["compare", "--realizations", "2", "--rounds", "10", "--quiet", "--out", str(tmp_path / "x"), *argv])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
