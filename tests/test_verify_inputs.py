"""`gelato verify` on the user's scenario: --config FILE.toml / --set input, --only, derived
configurations ("not applicable" where one cannot apply), theorem vs rate exit codes, and the
Python API `proofs_check.verify` computing in float64 from a process without x64."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import pytest

from proofs_check import report as vreport
from proofs_check import run as vrun
from proofs_check.verdict import RATE, Verdict

HER = dict(W=5e6, E_bar=0.03, gamma_max=6, energy_arrival="exponential")
HER_TOML = '[scenario]\nW = 5e6\nE_bar = 0.03\ngamma_max = 6\nenergy_arrival = "exponential"\n[policy]\nname = "gelato"\nH_th = 1.2\n'

TINY = vrun.Sizes(
    realizations=4, chunk=2, lo=-1.0, hi=1.0, n_coarse=3, n_fine=2, settle_factor=5.0, min_rounds=200,
    rollout_realizations=2, rollout_rounds_cap=200, mc_samples=2000, lossless_samples=2000, quantiles=256,
    informative_points=2, scaling_points=3, scaling_decades=(1.0, 2.0), scaling_rounds=300, scaling_realizations=4,
)


@pytest.fixture
def fake_runs(monkeypatch):
    """run_config builds each derived configuration's scenario and policy (the real code) and
    reports their fields as constants instead of simulating; the global checks are skipped."""
    seen = []

    def fake_run_config(cfg, sizes, *, seed=0, progress=None):
        if cfg.not_applicable:
            return vrun._not_applicable_result(cfg, cfg.not_applicable)
        s, p = vrun._policy_for(cfg, [])
        seen.append((cfg.name, s, p))
        consts = {"W": s.W, "E_bar": s.E_bar, "gamma_max": s.gamma_max, "energy_arrival": s.energy_arrival, "V_vocab": s.V_vocab,
                  "channel": s.channel, "exit": p.exit, "payload": p.payload, "proxy": p.proxy, "H_th": p.H_th}
        v = Verdict("§8.2 energy on every path (fake)", 0.0, 0.0, None, True, config=cfg.name, direction="statistic ≤ bound")
        return vrun.ConfigResult(cfg.name, cfg.title, [v], consts, {}, [])

    monkeypatch.setattr(vrun, "run_config", fake_run_config)
    monkeypatch.setattr(vrun, "closed_form_checks", lambda *a, **k: [])
    monkeypatch.setattr(vrun, "lossless_checks", lambda *a, **k: [])
    monkeypatch.setattr(vrun, "proxy_vs_monte_carlo", lambda c, *a, **k: Verdict("proxy (fake)", 1.0, 1.0, None, True, config=c.name))
    return seen


def _report(out):
    return json.loads((out / "report.json").read_text())


def test_cli_set_derives_configs_from_her_scenario(tmp_path, fake_runs, capsys):
    from gelato_jax.cli import main

    out = tmp_path / "rep"
    argv = ["verify", "--quick", "--set", "W=5e6", "--set", "E_bar=0.03", "--set", "gamma_max=6", "--set", "energy_arrival=exponential",
            "--set", "H_th=1.2", "--only", "a,c", "--out", str(out), "--quiet", "--no-figures"]
    assert main(argv) == 0
    rep = _report(out)
    assert rep["command"] == "gelato " + " ".join(argv)
    assert rep["environment"]["x64"] is True and rep["environment"]["dtype"] == "float64"
    cfgs = {c["name"]: c for c in rep["configs"]}
    assert set(cfgs) == {"a-exact-dpp", "c-gelato-paper"}
    a, c = cfgs["a-exact-dpp"]["constants"], cfgs["c-gelato-paper"]["constants"]
    for k in ("W", "E_bar", "gamma_max", "energy_arrival"):
        assert a[k] == HER[k] and c[k] == HER[k], k
    # (a): exit none, full payload, V_vocab 64; (c): the paper's GELATO; the user's H_th kept by both
    assert (a["exit"], a["payload"], a["proxy"], a["V_vocab"]) == ("none", "full", "mean", 64.0)
    assert (c["exit"], c["payload"], c["proxy"]) == ("bucket", "topp", "mean") and c["H_th"] == a["H_th"] == 1.2
    text = capsys.readouterr().out
    assert "passes if" in text and "Claims of the theorem" in text
    md = (out / "report.md").read_text()
    assert "Command: `gelato verify --quick --set W=5e6" in md and "x64 True" in md


def test_cli_config_toml_and_not_applicable(tmp_path, fake_runs):
    from gelato_jax.cli import main

    toml = tmp_path / "her.toml"
    toml.write_text(HER_TOML)
    out = tmp_path / "rep"
    assert main(["verify", "--quick", "--config", str(toml), "--only", "b,d-random-arrivals,e", "--out", str(out), "--quiet", "--no-figures"]) == 0
    rep = _report(out)
    cfgs = {c["name"]: c for c in rep["configs"]}
    b, e = cfgs["b-gelato-exact"]["constants"], cfgs["e-gauss-markov"]["constants"]
    assert b["W"] == 5e6 and b["proxy"] == "exact" and b["H_th"] == 1.2 and b["energy_arrival"] == "exponential"
    assert e["channel"] == "gauss_markov" and e["E_bar"] == 0.03
    # her arrivals are already random: (d) is not applicable (and (a) runs with them), not an error
    d = cfgs["d-random-arrivals"]
    assert not d["applicable"] and "already random" in d["not_applicable"]
    st = [v for v in rep["verdicts"] if v["config"] == "d-random-arrivals"]
    assert [v["status"] for v in st] == ["not applicable"] and rep["exit_code"] == 0
    assert "Not applicable" in (out / "report.md").read_text()


def test_not_applicable_configurations_derived():
    from gelato_jax import Scenario

    # rounds that are not i.i.d. (the text entropy process): no configuration applies
    cfgs = vrun.derive_configs(Scenario(entropy_process="text"))
    assert all(c.not_applicable and "i.i.d. rounds" in c.not_applicable for c in cfgs)
    r = vrun.run_config(cfgs[1], TINY)
    assert [v.status for v in r.verdicts] == ["not applicable"] and vreport.exit_code(r.verdicts) == 0
    # defaults: all five apply; constant arrivals -> (d) switches to exponential
    cfgs = {c.name: c for c in vrun.derive_configs()}
    assert not any(c.not_applicable for c in cfgs.values())
    assert cfgs["d-random-arrivals"].scenario["energy_arrival"] == "exponential"
    # non-Rayleigh fading of the user: (a)-(d) report expectation claims as observations
    gm = {c.name: c for c in vrun.derive_configs(Scenario(channel="gauss_markov", rho=0.5))}
    assert not gm["a-exact-dpp"].theorem and gm["a-exact-dpp"].channel_marginal_iid


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--only", "z"], "--only: unknown configuration 'z'"),
        (["--only", "a,nope"], "'nope'"),
        (["--set", "W=-1"], "Scenario.W"),
        (["--set", "gamma_max=0"], "Scenario.gamma_max"),
        (["--set", "nope=1"], "unknown field"),
        (["--set", "H_th=-3"], "Gelato.H_th"),
        (["--config", "/does/not/exist.toml"], "does not exist"),
        (["--size", "realizations=1"], "--size realizations must be >= 2"),
        (["--size", "nope=3"], "--size expects FIELD=VALUE"),
        (["--size", "scaling_decades=2,1"], "LO,HI"),
        (["--size", "lo=5"], "lo < hi"),
        (["--connect-timeout", "5"], "--connect-timeout applies to several processes only"),
        (["--num-processes", "2", "--process-id", "3", "--coordinator", "127.0.0.1:1"], "--process-id must be in 0..1"),
    ],
)
def test_cli_bad_input_one_line_exit_2_nothing_written(argv, needle, tmp_path, capsys, fake_runs):
    from gelato_jax.cli import main

    out = tmp_path / "rep"
    assert main(["verify", "--quick", *argv, "--out", str(out), "--quiet"]) == 2
    cap = capsys.readouterr()
    assert cap.err.count("\n") == 1 and needle in cap.err, cap.err
    assert cap.out == "" and not out.exists() and not fake_runs


def test_resolve_only():
    assert vrun.resolve_only("a,c") == ("a-exact-dpp", "c-gelato-paper")
    assert vrun.resolve_only(["B", "e-gauss-markov", "b"]) == ("b-gelato-exact", "e-gauss-markov")
    assert vrun.resolve_only(None) is None
    with pytest.raises(ValueError, match="unknown configuration"):
        vrun.resolve_only("g")


def test_rate_claims_fail_the_run_only_with_strict():
    th_ok = Verdict("§8.3 gap bound", 0.1, 1.0, None, True, direction="statistic ≤ bound")
    rate_fail = Verdict("§8.5 slope", -0.3, -0.5, (-0.35, -0.30), False, direction="CI high < bound", category=RATE)
    th_fail = Verdict("§8.2 energy", 1.0, 0.0, None, False, direction="statistic ≤ bound")
    assert vreport.exit_code([th_ok, rate_fail]) == 0
    assert vreport.exit_code([th_ok, rate_fail], strict=True) == 1
    assert vreport.exit_code([th_ok, th_fail]) == 1
    rep = vreport.VerifyReport([th_ok, rate_fail], [], {}, True, 0, 1.0, "x", {}, strict=False)
    assert rep.exit_code == 0
    d = rep.to_dict()
    assert d["theorem_claims_hold"] and not d["rate_claims_hold"] and d["exit_code"] == 0
    assert {v["category"] for v in d["verdicts"]} == {"theorem", RATE} and all(v["direction"] for v in d["verdicts"])
    table = rep.summary_table()
    assert table.index("Claims of the theorem") < table.index("Rates beyond the theorem") and "CI high < bound" in table
    # a tightness dict travels to report.json and the summary
    c = vrun.ConfigResult("a-exact-dpp", "(a)", [], {}, {}, [], tightness={"measured_constant": 7.6e-7, "measured_ci": [7.2e-7, 8.0e-7],
                          "predicted_constant": 7.8e-7, "B": 1.2e-2, "ratio": 6.3e-5, "regime": "smooth"})
    rep2 = vreport.VerifyReport([th_ok], [c], {}, True, 0, 1.0, "x", {})
    assert rep2.to_dict()["configs"][0]["tightness"]["regime"] == "smooth"
    assert "Tightness" in rep2.summary_table() and "smooth" in rep2.summary_table()


def test_strict_flag_sets_exit_code(tmp_path, monkeypatch, fake_runs):
    from gelato_jax.cli import main

    monkeypatch.setattr(vrun, "lossless_checks", lambda *a, **k: [Verdict("§8.5 slope (fake)", -0.3, -0.5, None, False, category=RATE)])
    base = ["verify", "--quick", "--only", "a", "--quiet", "--no-figures", "--out"]
    assert main(base + [str(tmp_path / "r1")]) == 0
    assert main(base + [str(tmp_path / "r2"), "--strict"]) == 1


def test_size_overrides_reach_the_run(tmp_path, fake_runs):
    from gelato_jax.cli import main

    out = tmp_path / "rep"
    argv = ["verify", "--quick", "--only", "a", "--size", "realizations=8", "--size", "scaling_decades=1,3", "--size",
            "scaling_burn=0.5", "--quiet", "--no-figures", "--out", str(out)]
    assert main(argv) == 0
    sizes = _report(out)["sizes"]
    assert (sizes["realizations"], sizes["scaling_decades"], sizes["scaling_burn"]) == (8, [1.0, 3.0], 0.5)
    assert sizes["chunk"] == vrun.QUICK.chunk  # the other sizes are --quick's
    assert vrun.parse_sizes(vrun.FULL, ["n_fine=0"]) == dataclasses.replace(vrun.FULL, n_fine=0)


def test_a_write_cut_short_leaves_no_report_md(tmp_path, fake_runs, monkeypatch):
    """report.md and report.json of an earlier run are removed before anything is written and the
    new ones come last: a run killed while writing leaves no report.md beside other files."""
    from gelato_jax import io as gio
    from gelato_jax.cli import main

    out = tmp_path / "rep"
    argv = ["verify", "--quick", "--only", "a", "--quiet", "--no-figures", "--out", str(out)]
    assert main(argv) == 0 and (out / "report.md").exists()

    def crash(*a, **k):
        raise KeyboardInterrupt  # as a kill while report.json is written

    monkeypatch.setattr(gio, "save_json", crash)
    assert main(argv) == 130  # "gelato: interrupted"
    assert not (out / "report.md").exists() and not (out / "report.json").exists()


def _api_child(code: str, timeout: int):
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    env["JAX_PLATFORMS"] = "cpu"
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_api_from_a_process_without_x64(tmp_path):
    """A plain Python session (x64 off): verify runs in float64 all the same, the report records
    the Python call and an x64 environment, and the identity claims pass; the caller stays float32."""
    code = f"""
        import json, jax, jax.numpy as jnp, proofs_check
        from gelato_jax import Scenario
        from proofs_check.run import Sizes
        assert not jax.config.jax_enable_x64
        sizes = Sizes(**{{**{TINY.__dict__!r}}})
        rep = proofs_check.verify(Scenario(**{HER!r}), only="d", sizes=sizes, out={str(tmp_path / 'rep')!r}, progress=False, figures=False)
        print(json.dumps(dict(command=rep.command, env=rep.environment, exit=rep.exit_code,
                              st=[(v.config, v.category, v.status, v.claim) for v in rep.verdicts],
                              caller=str(jnp.zeros(()).dtype))))
    """
    proc = _api_child(code, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["caller"] == "float32"
    assert res["env"]["x64"] is True and res["env"]["dtype"] == "float64" and "child process" in res["env"]["float64_mode"]
    assert res["command"].startswith("proofs_check.verify(scenario=Scenario(")
    for part in ("W=5000000.0", "E_bar=0.03", "gamma_max=6", "energy_arrival='exponential'", "only=['d-random-arrivals']"):
        assert part in res["command"], part
    st = res["st"]
    assert ["d-random-arrivals", "theorem", "not applicable"] == st[0][:3]
    closed = [s for s in st if "§8.6" in s[3] or "§8.7" in s[3]]
    assert closed and all(s[2] == "pass" for s in closed), closed
    assert res["exit"] == 0
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["environment"]["x64"] is True and rep["command"] == res["command"]


@pytest.mark.slow
def test_api_and_cli_same_verdicts_on_her_scenario(tmp_path):
    """Configuration (a) on her scenario from a process without x64 (API) and through the CLI:
    the per-round identity claims pass (in float32 they failed falsely) and the verdicts agree."""
    code = f"""
        import json, proofs_check
        from gelato_jax import Scenario
        from proofs_check.run import Sizes
        rep = proofs_check.verify(Scenario(**{HER!r}), only="a", sizes=Sizes(**{TINY.__dict__!r}), progress=False)
        print(json.dumps([(v.config, v.claim, v.status) for v in rep.verdicts]))
    """
    proc = _api_child(code, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    api = [tuple(x) for x in json.loads(proc.stdout.strip().splitlines()[-1])]
    st = {c: s for _, c, s in api}
    for key in ("§8.1 per-slot optimality", "§8.2 energy on every path", "per-round drift-plus-penalty", "T* two ways"):
        assert [s for c, s in st.items() if key in c] and all(s == "pass" for c, s in st.items() if key in c), key
    toml = tmp_path / "her.toml"
    toml.write_text(HER_TOML.replace("H_th = 1.2\n", ""))
    code_cli = f"""
        import sys
        from proofs_check import run as vrun
        from proofs_check.run import Sizes
        vrun.QUICK = Sizes(**{TINY.__dict__!r})
        from gelato_jax.cli import main
        sys.exit(main(["verify", "--quick", "--config", {str(toml)!r}, "--only", "a", "--out", {str(tmp_path / 'cli')!r}, "--quiet", "--no-figures"]))
    """
    proc = _api_child(code_cli, timeout=600)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    cli = [(v["config"], v["claim"], v["status"]) for v in json.loads((tmp_path / "cli" / "report.json").read_text())["verdicts"]]
    assert cli == api


def test_default_configs_run_f_only_for_a_time_average_scenario():
    from gelato_jax import Scenario

    assert vrun.default_configs() == vrun.CONFIG_NAMES[:5]
    assert vrun.default_configs(Scenario()) == vrun.CONFIG_NAMES[:5]
    assert "f-time-average" not in vrun.default_configs(Scenario(objective="per_round"))
    assert vrun.default_configs(Scenario(objective="time_average", P_bar=0.5)) == vrun.CONFIG_NAMES
