"""Tightness atlas (`gelato tightness`, proofs_check.atlas) on a tiny grid, and the tight constants
wired into `gelato verify` (report.json carries `tightness` per C = 0 configuration)."""

import json

import pytest

from proofs_check import atlas as vatlas
from proofs_check import run as vrun
from proofs_check.verdict import Verdict

TINY_ATLAS = vatlas.AtlasSizes(realizations=4, chunk=4, n_V=2, decades=0.5, relax_times=2.0, top_decades=2.0, burn=0.1, min_rounds=200, rounds_cap=600,
                               quantiles=256, plan_quantiles=1024, tightness_quantiles=2048, sim_realizations=4, sim_rounds=200)
TINY = vrun.Sizes(
    realizations=4, chunk=2, lo=-1.0, hi=1.0, n_coarse=3, n_fine=2, settle_factor=5.0, min_rounds=200,
    rollout_realizations=2, rollout_rounds_cap=200, mc_samples=2000, lossless_samples=2000, quantiles=256,
    informative_points=2, scaling_points=3, scaling_decades=(1.0, 2.0), scaling_rounds=300, scaling_realizations=4,
    tightness_quantiles=2048, tightness_sim_realizations=4, tightness_sim_rounds=200,
)


@pytest.fixture(autouse=True)
def no_sampled_delta_t(monkeypatch):
    """Configuration (a)'s mean proxy is exact by construction: run_config and the atlas set C = 0
    whatever theory.bounds measures against its sampled exact table (≈ 8 s of CPU per call), so the
    tests skip that sampling."""
    from theory import bounds

    monkeypatch.setattr(bounds, "proxy_error_details", lambda *a, **k: {"delta_T": 0.0})


POINT_KEYS = ("point", "status", "T_star", "lambda_star", "B", "V", "rounds", "measured_constant", "measured_ci", "predicted_constant",
              "ratio_measured_to_B", "ratio_measured_to_predicted", "regime", "flattening", "config_hash", "tightness")


def test_atlas_tiny_grid_json_and_resume(tmp_path, monkeypatch, capsys):
    from gelato_jax.cli import main

    monkeypatch.setattr(vatlas, "ATLAS_QUICK", TINY_ATLAS)
    out = tmp_path / "atlas"
    argv = ["tightness", "--grid", "E_bar=0.05,0.06", "--quick", "--out", str(out), "--json", "--quiet"]
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["fields"] == ["E_bar"] and len(res["points"]) == 2
    assert [p["point"]["E_bar"] for p in res["points"]] == [0.05, 0.06]
    for p in res["points"]:
        assert p["status"] == "done", p.get("reason")
        for k in POINT_KEYS:
            assert k in p, k
        lo, hi = p["measured_ci"]
        assert lo <= p["measured_constant"] <= hi and p["predicted_constant"] > 0 and p["T_star"] > 0 and p["lambda_star"] > 0
        assert p["regime"] in ("smooth", "polyhedral", "slack")
        assert not p.get("resumed")
    files = sorted((out / "points").glob("point_*.json"))
    assert len(files) == 2 and (out / "atlas.json").exists()
    assert json.loads((out / "atlas.json").read_text())["points"][1]["config_hash"] == res["points"][1]["config_hash"]
    # a rerun skips both finished points (same config hash) and gives the same numbers
    assert main(argv) == 0
    res2 = json.loads(capsys.readouterr().out)
    assert all(p["resumed"] for p in res2["points"]) and res2["wall_s"] < 5
    assert [p["measured_constant"] for p in res2["points"]] == [p["measured_constant"] for p in res["points"]]
    # the table form
    assert main(argv[:-2] + ["--quiet"]) == 0
    text = capsys.readouterr().out
    assert "kappa_hat/B" in text and ("smooth" in text or "polyhedral" in text or "slack" in text)


def test_atlas_bad_grid_field_exits_2(tmp_path, capsys):
    from gelato_jax.cli import main

    out = tmp_path / "atlas"
    assert main(["tightness", "--grid", "not_a_field=1,2", "--quick", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not_a_field" in err and "scenario field" in err
    assert not out.exists()
    assert main(["tightness", "--grid", "E_bar", "--out", str(out)]) == 2
    assert main(["tightness", "--grid", "E_bar=0.05,x", "--out", str(out)]) == 2
    assert not out.exists()
    with pytest.raises(ValueError, match="configuration"):
        vatlas.tightness_atlas(grid={"E_bar": [0.05]}, configuration="c")


def test_plan_stationary_window_holds_relaxation_times():
    from proofs_check.tightness import window_fraction

    q = vatlas.ATLAS_QUICK
    Vs, rounds, note = vatlas.plan_stationary(1e-3, 1e-2, q)  # the cap decides V_max (V0·10^top_decades is larger)
    assert len(Vs) == q.n_V and not note and rounds == q.rounds_cap
    assert abs(Vs[-1] - 1e-3 * (1 - q.burn) * q.rounds_cap / q.relax_times) < 1e-9 and Vs[0] >= 0.1
    assert rounds * (1 - vatlas.ATLAS_QUICK.burn) >= vatlas.ATLAS_QUICK.relax_times * Vs[-1] / 1e-3 - 100
    assert window_fraction(Vs, 1e-3, rounds, int(0.1 * rounds)).min() >= 0.95
    Vs, rounds, note = vatlas.plan_stationary(1e-6, 1e-2, q)  # would need 10^8 rounds: capped, V lowered
    assert rounds == q.rounds_cap and "lowered" in note and Vs[-1] < 0.1
    Vs, rounds, note = vatlas.plan_stationary(10.0, 1e-2, q)  # fast relaxation: V up to V0·10^top_decades
    assert abs(Vs[-1] - 1e-2 * 10**q.top_decades) < 1e-9 and rounds < q.rounds_cap and not note


def test_flattening_at_the_predicted_floor_is_not_a_failed_law():
    from proofs_check.verdict import RATE

    v = Verdict("§8.5 scaling: stationary Lagrangian gap G_L(V) falls like 1/V", -0.32, -0.5, (-0.35, -0.30), False,
                {"slope": -0.32}, direction="CI high < bound", category=RATE)
    floor = {"flattening": {"verdict": "resolution floor"}, "floors": {"lambda": 2e-6, "delta_lambda": 0.01}, "kappa": 0.04}
    w = vrun._explain_flattening(v, floor)
    assert w.status == "inconclusive" and w.passed is None and w.category == RATE
    assert "flattening at the predicted floor of 2e-06" in w.details["reason"]
    unexplained = dict(floor, flattening={"verdict": "not explained"})
    w = vrun._explain_flattening(v, unexplained)
    assert w.status == "FAIL" and "no predicted resolution floor" in w.details["explanation"]
    ok = Verdict(v.claim, -1.0, -0.5, (-1.1, -0.9), True, {}, category=RATE)
    assert vrun._explain_flattening(ok, dict(floor, flattening={"verdict": "no flattening"})).status == "pass"


def test_near_kink_transition_is_not_a_failed_law():
    from proofs_check.verdict import RATE

    v = Verdict("§8.5 scaling: stationary Lagrangian gap G_L(V) falls like 1/V", -0.32, -0.5, (-0.33, -0.31), False,
                {"slope": -0.32}, direction="CI high < bound", category=RATE)
    kink = {"near_kink": True, "relative_half_width": 1e-3, "rel": 0.05, "share": 0.8}
    tight = {"flattening": {"verdict": "no flattening"}, "floors": {"lambda": 5e-19}, "lambda_star": 98.17, "dual_kink": kink,
             "linearisation": {"V": [0.1, 1.0, 9.7], "V_linear": 5.6e3}}
    w = vrun._explain_flattening(v, tight)
    assert w.status == "inconclusive" and w.passed is None and w.category == RATE
    assert "near-polyhedral dual" in w.details["reason"] and "5.6e+03" in w.details["reason"]
    # the linearisation reached inside the swept range: the slope is a test of the law, the failure stays
    reached = dict(tight, linearisation={"V": [0.1, 1.0, 9.7], "V_linear": 1.0})
    assert vrun._explain_flattening(v, reached).status == "FAIL"
    # a smooth dual: unchanged
    assert vrun._explain_flattening(v, dict(tight, dual_kink={"near_kink": False})).status == "FAIL"


def test_size_overrides_and_several_process_refusals(monkeypatch, tmp_path, capsys):
    from gelato_jax.cli import main

    s = vatlas.parse_sizes(vatlas.ATLAS_QUICK, ["realizations=8", "burn=0.2", "rounds_cap=1000"])
    assert (s.realizations, s.burn, s.rounds_cap, s.n_V) == (8, 0.2, 1000, vatlas.ATLAS_QUICK.n_V)
    for bad, match in ((["nope=1"], "FIELD one of"), (["realizations=1.5"], "an integer"), (["n_V=1"], "n_V must be >= 2"),
                       (["burn=1"], r"burn must be in \[0, 1\)"), (["decades=-1"], "decades must be a finite number > 0"),
                       (["chunk=2", "chunk=3"], "given twice"), (["chunk"], "FIELD=VALUE")):
        with pytest.raises(ValueError, match=match):
            vatlas.parse_sizes(vatlas.ATLAS_QUICK, bad)
    out = tmp_path / "atlas"
    assert main(["tightness", "--grid", "E_bar=0.05", "--size", "sim_rounds=0", "--out", str(out)]) == 2
    assert "sim_rounds must be >= 1" in capsys.readouterr().err and not out.exists()
    # in a jax.distributed job (faked here: the real runs are in tests/test_distributed.py) the atlas
    # needs a shared folder, and float64 in this process (the float64 child cannot join the job)
    monkeypatch.setattr(vatlas, "_processes", lambda: 2)
    with pytest.raises(ValueError, match="needs out"):
        vatlas.tightness_atlas(grid={"E_bar": [0.05]})
    monkeypatch.setattr(vrun, "_x64_enabled", lambda: False)
    with pytest.raises(ValueError, match="float64 child process cannot join"):
        vatlas.tightness_atlas(grid={"E_bar": [0.05]}, out=str(out))
