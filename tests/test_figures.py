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
