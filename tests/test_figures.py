"""Figures are drawn from saved results only: a tiny synthetic result in the saved format
(written by the runner's own save functions, no simulation) must produce every PNG and PDF."""

import json

import numpy as np
import pytest

from gelato_jax import Scenario
from gelato_jax.compare import METRICS, Comparison


def _fake(names, rng, R=3):
    metrics = {n: {k: rng.uniform(0.5, 2.0, R) for k, _, _ in METRICS} for n in names}
    return Comparison(tuple(names), names[0], metrics, seed=0, realizations=R, rounds=10)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from figures import runner

    rng = np.random.default_rng(0)
    d = tmp_path_factory.mktemp("results")
    scen = Scenario().to_dict()
    for name, spec in runner.SWEEPS.items():
        vals = spec["quick"]
        runner.save_sweep(str(d), name, vals, [_fake(list(spec["policies"]), rng) for _ in vals], scen)
    Vs = [0.1, 1.0]
    names = ["oracle"] + [f"{p} V={V:g}" for V in Vs for p in ("gelato", "lyapunov-only")]
    opt = {"T_star": 1.2, "T_lower": 1.1, "T_upper": 1.3}
    runner.save_v_tradeoff(str(d), Vs, _fake(names, rng), opt, scen)
    return d


def test_every_figure_is_written_as_png_and_pdf(saved, tmp_path):
    from figures import FIGURES
    from figures.cli import draw_all

    paths = draw_all(str(saved), str(tmp_path))
    assert len(paths) == 2 * len(FIGURES)
    for p in paths:
        data = open(p, "rb").read()
        assert data.startswith(b"\x89PNG" if p.endswith(".png") else b"%PDF") and len(data) > 1000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_saved_sidecar_holds_means_and_paired_changes(saved):
    rec = json.loads((saved / "bandwidth.json").read_text())
    assert rec["names"][0] == "gelato" and len(rec["summary"]) == len(rec["values"])
    assert "change_pct" in rec["versus"][0]["dssd"]["throughput"]
    with np.load(saved / "bandwidth.npz") as z:
        assert z["gelato__throughput"].shape == (len(rec["values"]), 3)


def test_cli_figures_draw_only_and_missing_results(saved, tmp_path, capsys):
    from gelato_jax.cli import main

    assert main(["figures", "--draw-only", "--results", str(saved), "--out", str(tmp_path), "--only", "ablation", "--quiet"]) == 0
    assert (tmp_path / "fig_ablation.pdf").exists()
    rc = main(["figures", "--draw-only", "--results", str(tmp_path / "none"), "--out", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "no saved result" in err and len(err.strip().splitlines()) == 1
    assert main(["figures", "--only", "nope"]) == 2


def test_headline_markdown_from_saved_comparisons(tmp_path):
    from figures import headline
    from gelato_jax.cli import main
    from gelato_jax.compare import save_comparison

    rng = np.random.default_rng(1)
    res = tmp_path / "head"
    for key in headline.SCENARIOS:
        cmp = _fake(list(headline.POLICIES), rng)
        rec = {"names": list(cmp.names), "reference": "gelato", "seed": 0, "realizations": cmp.realizations,
               "rounds": cmp.rounds, "policies": {n: {} for n in cmp.names}}
        save_comparison(str(res), cmp, rec, stem=f"headline_{key}")
    out = tmp_path / "headline.md"
    assert main(["headline", "--draw-only", "--results", str(res), "--out", str(out), "--quiet"]) == 0
    text = out.read_text()
    for needle in ("+64.98 %", "−47.47 %", "−23.39 %", "DSSD", "U-HLM", "oracle", "Where and why"):
        assert needle in text
    # one row per baseline in each "GELATO vs" table, with a paired CI
    assert text.count("| DSSD (γ=4, scalar uplink) | ") == 4 and "[" in text


# ----------------------------------------------------------------------------- gelato figures --from
def _fake_policies_sweep(rng, **scen_kw):
    """A synthetic policies x W x delta result in ``SweepResult`` form (no simulation)."""
    from gelato_jax.sweep import METRICS as SWEEP_METRICS, SweepResult

    coords = {"policy": np.array(["gelato", "static"]), "W": np.array([0.5e6, 1e6, 5e6, 10e6]),
              "delta": np.array([0.02, 0.14])}
    metrics = {k: rng.uniform(0.5, 2.0, (2, 4, 2, 3)) for k in SWEEP_METRICS}
    config = {"kind": "policies", "reference": "gelato", "scenario": Scenario(**scen_kw).to_dict(), "seed": 0,
              "policies": {"gelato": {"policy": "gelato", "policy_fields": {"V": 0.1}},
                           "static": {"policy": "static", "policy_fields": {"gamma": 4, "payload": "topp"}}},
              "grid": {"W": coords["W"].tolist(), "delta": coords["delta"].tolist()}, "grid_order": ["W", "delta"]}
    return SweepResult(("policy", "W", "delta"), coords, metrics, 3, 10, config)


def test_figure_from_a_policies_sweep_draws_the_means_and_names_what_is_fixed():
    from figures.from_dir import figure_from

    res = _fake_policies_sweep(np.random.default_rng(2), E_bar=0.03, W_dl="W")
    fig = figure_from(res, x="W", y=["goodput", "energy"], by="policy")
    axes = fig.axes
    assert len(axes) == 4  # rows: delta = 20, 140 ms; columns: goodput, energy
    assert [a.get_title() for a in axes] == ["δ = 20 ms", "δ = 20 ms", "δ = 140 ms", "δ = 140 ms"]
    title = fig._suptitle.get_text()
    assert "Ē = 0.03 J/round" in title and "W_dl = W (tied)" in title
    assert axes[0].get_xlabel() == "bandwidth W = W_dl (MHz; both links)"
    # the plotted points are the realization means (static SD, δ = 140 ms, goodput panel)
    line = axes[2].containers[1].lines[0]
    np.testing.assert_allclose(line.get_xdata(), res.coords["W"] * 1e-6)
    np.testing.assert_allclose(line.get_ydata(), res.metrics["goodput"][1, :, 1, :].mean(axis=-1))
    labels = axes[0].get_legend_handles_labels()[1]
    assert "Static SD (payload=topp)" in labels and "GELATO" in labels  # V = 0.1 is GELATO's default
    # the energy panel shows the budget at the fixed Ē
    assert any(np.allclose(l.get_ydata(), 0.03) for l in axes[1].lines if len(l.get_ydata()) == 2)

    untied = figure_from(_fake_policies_sweep(np.random.default_rng(2)), x="W", y=["goodput"], by="policy")
    assert untied.axes[0].get_xlabel() == "uplink bandwidth W (MHz; downlink fixed at 1 MHz)"
    # delta as the x axis, W as the facet: a single-value axis would be named in the title instead
    flipped = figure_from(res, x="delta", y=["throughput"], by="policy")
    assert flipped.axes[0].get_xlabel() == "fixed latency δ (ms)" and len(flipped.axes) == 4
    with pytest.raises(ValueError, match="--x 'V'"):
        figure_from(res, x="V")
    with pytest.raises(ValueError, match="unknown metric"):
        figure_from(res, x="W", y=["nope"])


def test_built_in_figure_words_name_the_operating_point():
    from figures import _labels

    assert _labels.operating_point(Scenario(delta=0.14).to_dict(), exclude=["W"]) == "δ = 140 ms, Ē = 0.06 J/round"
    assert _labels.operating_point(Scenario(W_dl="W", d=500.0).to_dict()) == \
        "W = 1 MHz, δ = 20 ms, Ē = 0.06 J/round, W_dl = W (tied), d = 500 m"


def test_cli_figures_from_a_compare_folder_and_refused_flags(tmp_path, capsys, saved):
    from figures import cli as fcli
    from gelato_jax import Scenario as S
    from gelato_jax.cli import main
    from gelato_jax.compare import save_comparison

    cmp = _fake(["gelato", "static", "dssd"], np.random.default_rng(3))
    rec = {"names": list(cmp.names), "reference": "gelato", "seed": 0, "realizations": cmp.realizations,
           "rounds": cmp.rounds, "scenario": S(delta=0.14).to_dict(),
           "policies": {n: {"class": n, "fields": {}} for n in cmp.names}}
    save_comparison(str(tmp_path / "cmp"), cmp, rec)
    assert main(["figures", "--from", str(tmp_path / "cmp"), "--y", "throughput,energy", "--out", str(tmp_path / "f")]) == 0
    assert (tmp_path / "f" / "fig_cmp.pdf").read_bytes().startswith(b"%PDF")
    from figures import from_dir

    seen = []
    real = from_dir.figure_from
    monkey = pytest.MonkeyPatch()
    monkey.setattr(from_dir, "figure_from", lambda *a, **k: seen.append(k) or real(*a, **k))
    try:
        assert main(["figures", "--from", str(tmp_path / "cmp"), "--name", "mine", "--title", "My title",
                     "--out", str(tmp_path / "f")]) == 0
    finally:
        monkey.undo()
    assert (tmp_path / "f" / "mine.png").exists() and seen[0]["title"] == "My title"
    capsys.readouterr()
    for argv, needle in [
        (["--x", "W"], "give --from DIR"),
        (["--from", str(tmp_path / "cmp"), "--only", "bandwidth"], "--only"),
        (["--from", str(tmp_path / "cmp"), "--seed", "3"], "--seed"),
        (["--from", str(tmp_path / "cmp"), "--set", "delta=0.14"], "--set"),
        (["--from", str(tmp_path / "nothing")], "no sweep.json or compare.json"),
        (["--from", str(tmp_path / "cmp"), "--x", "W"], "not an axis"),
        (["--from", str(tmp_path / "cmp"), "--y", "nope"], "unknown metric"),
        (["--grid", "V=1,2"], "built-in sweeps vary"),
        (["--only", "delta", "--grid", "W=1e6,2e6"], "none of the selected figures"),
        (["--draw-only", "--set", "delta=0.14", "--results", str(saved)], "--draw-only never computes"),
        (["--draw-only", "--quick", "--results", str(saved)], "--quick"),
        (["--set", "nope=1", "--draw-only"], "nope"),
        (["--from", str(tmp_path / "cmp"), "--run"], "--run"),
        (["--from", str(tmp_path / "cmp"), "--docs", str(tmp_path / "d")], "--docs"),
        (["--run", "--draw-only"], "exclude each other"),
        (["--name", "x"], "give --from DIR"),
        (["--from", str(tmp_path / "cmp"), "--name", "a/b"], "--name"),
    ]:
        rc = main(["figures", "--out", str(tmp_path / "g"), *argv])
        err = capsys.readouterr().err
        assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1, (argv, err)
    # --config/--set give the built-in runs' base scenario, --grid a built-in sweep's values
    from gelato_jax.cli import build_parser

    (tmp_path / "c.toml").write_text("[scenario]\ndelta = 0.05\n")
    ns = build_parser().parse_args(["figures", "--config", str(tmp_path / "c.toml"), "--set", "E_bar=0.05",
                                    "--grid", "W=1e6,2e6"])
    base, grid = fcli._requested(ns)
    assert (base.delta, base.E_bar) == (0.05, 0.05) and grid == {"W": [1e6, 2e6]}
    rc = main(["figures", "--config", str(tmp_path / "c.toml"), "--draw-only", "--results", str(saved)])
    assert rc == 2 and "--draw-only never computes" in capsys.readouterr().err
    # --set/--grid never draw results saved for another scenario or other values: they are recomputed
    assert not fcli._stale(str(saved), "delta", None, {})
    assert fcli._stale(str(saved), "delta", S(delta=0.14), {})
    assert fcli._stale(str(saved), "bandwidth", None, {"W": [1e6, 2e6]})
    assert not fcli._stale(str(saved), "bandwidth", None, {"delta": [0.1]})


def test_equal_energy_headline_picks_the_budget_gamma_and_renders_both_framings(tmp_path):
    import json as _json

    from figures import fair
    from gelato_jax.cli import main

    assert fair.pick_gamma({1: 0.03, 2: 0.06, 3: 0.09}, {1: 5.0, 2: 7.0, 3: 9.0}, 0.06) == 2  # 0.06 meets 0.06
    assert fair.pick_gamma({1: 0.03, 2: 0.05}, {1: 8.0, 2: 7.0}, 0.06) == 1  # best throughput, not largest γ
    assert fair.pick_gamma({1: 0.12, 2: 0.2}, {1: 5.0, 2: 6.0}, 0.06) is None
    ci = {"mean": 7.9, "ci_low": 7.6, "ci_high": 8.3}
    row = {"baseline": "dssd", "words": "DSSD, scalar uplink", "energy_by_gamma": {"1": 0.03, "2": 0.06},
           "at_budget": {"gamma": 2, "baseline_energy": 0.06, "gelato_energy": 0.0616, "baseline_throughput": 28.09,
                         "gelato_throughput": 32.04, "throughput": ci, "goodput": ci},
           "at_baseline_energy": {"gamma": 4, "baseline_energy": 0.1199, "gelato_energy": 0.0782,
                                  "baseline_throughput": 25.02, "gelato_throughput": 32.69, "throughput": ci, "goodput": ci}}
    none_row = dict(row, words="Static SD, full payload", at_budget=None, energy_by_gamma={"1": 0.1205})
    rec = {"scenario": {}, "E_bar": 0.06, "V": 0.1, "seed": 0, "realizations": 16, "rounds": 1000, "rows": [row, none_row]}
    res = tmp_path / "res"
    res.mkdir()
    for key in ("1mhz", "140ms"):
        (res / f"fair_{key}.json").write_text(_json.dumps(rec))
    out = tmp_path / "fair.md"
    assert main(["headline", "--fair", "--draw-only", "--results", str(res), "--out", str(out), "--quiet"]) == 0
    text = out.read_text()
    assert "`gelato headline --fair --quick`" in text and text.count("| DSSD, scalar uplink | at Ē | 2 | 0.0600 | 0.0616 |") == 2
    assert "| DSSD, scalar uplink | at the baseline's energy | 4 | 0.1199 | 0.0782 | 25.02 / 32.69 | +7.9 % [+7.6, +8.3]" in text
    assert "none meets Ē (γ = 1 spends 0.1205 J)" in text
