"""gelato sweep: grid parsing, one compiled program for all grid points, agreement with simulate,
chunk/device invariance, atomic chunks, resume, corrupt-chunk recovery, refusal to mix configs."""

import importlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from gelato_jax import Scenario, simulate
from gelato_jax.cli import main
from gelato_jax.policies import Gelato

sw = importlib.import_module("gelato_jax.sweep")  # the package exports a function of the same name

R, T = 5, 60
GRID = {"V": [0.1, 3.0], "E_bar": [0.03, 0.09]}
POL = Gelato()


def test_parse_grid_spec_forms():
    name, v = sw.parse_grid_spec("V=logspace:-4:1:13")
    assert name == "V" and len(v) == 13 and v[0] == pytest.approx(1e-4) and v[-1] == pytest.approx(10.0)
    assert sw.parse_grid_spec("E_bar=0.03,0.06,0.09") == ("E_bar", [0.03, 0.06, 0.09])
    assert sw.parse_grid_spec("d=linspace:100:300:3")[1] == [100.0, 200.0, 300.0]
    assert sw.parse_grid_spec("gamma=1,2")[1] == [1, 2]
    for bad in ("V", "V=", "V=logspace:1:2", "V=a,b", "V=linspace:0:1:0", "V=1,nan"):
        with pytest.raises(ValueError, match="grid|--grid"):
            sw.parse_grid_spec(bad)


def test_grid_file(tmp_path):
    p = tmp_path / "g.toml"
    p.write_text('[grid]\nV = "logspace:-1:1:3"\nE_bar = [0.03, 0.06]\n')
    g = sw.read_grid_file(str(p))
    assert list(g) == ["V", "E_bar"] and len(g["V"]) == 3 and g["E_bar"] == [0.03, 0.06]


@pytest.mark.parametrize(
    "grid,match",
    [
        ({"gamma_max": [4, 8]}, "static"),
        ({"proxy": [1, 2]}, "static"),
        ({"nope": [1.0]}, "neither"),
        ({"E_bar": [0.03, -1.0]}, "E_bar"),
        ({}, "empty"),
    ],
)
def test_sweep_rejects_bad_grids(grid, match):
    with pytest.raises(ValueError, match=match):
        sw.sweep(Scenario(), POL, grid, realizations=2, rounds=5)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "run"
    res = sw.sweep(Scenario(), POL, GRID, seed=3, realizations=R, rounds=T, chunk=2, out=str(out), progress=False)
    return out, res


def test_sweep_labels_and_matches_simulate(swept):
    out, res = swept
    assert res.fields == ("V", "E_bar") and res.shape == (2, 2)
    np.testing.assert_array_equal(res.coords["V"], GRID["V"])
    assert res.metrics["throughput"].shape == (2, 2, R)
    # grid point (V=3, E_bar=0.09) is simulate() on that scenario/policy: same draws, same
    # decisions; floats may differ in the last bits (XLA fuses the grid-batched program
    # differently, e.g. FMA contraction), so a few ulps of tolerance
    ref = simulate(Scenario(E_bar=0.09), Gelato(V=3.0), seed=3, realizations=R, rounds=T)
    for k in ("budget", "sent", "passes", "accepted", "tokens", "outage"):
        np.testing.assert_array_equal(res.metrics[k][1, 1], getattr(ref, k), err_msg=k)
    for k in ("throughput", "energy", "goodput", "queue_final"):
        np.testing.assert_allclose(res.metrics[k][1, 1], getattr(ref, k), rtol=1e-13, atol=1e-15, err_msg=k)
    np.testing.assert_allclose(res.metrics["queue"][1, 1], ref.queue_mean, rtol=1e-13, atol=1e-15)
    # the grid matters: a larger energy budget never lowers mean throughput here, V does change it
    assert not np.array_equal(res.metrics["throughput"][0, 0], res.metrics["throughput"][1, 0])
    # load_sweep returns the same arrays
    again = sw.load_sweep(str(out))
    for k in sw.METRICS:
        np.testing.assert_array_equal(again.metrics[k], res.metrics[k])
    side = json.loads((out / "chunk-00000.json").read_text())
    for key in ("config_hash", "npz_sha256", "seed", "wall_time_s", "environment", "start", "stop"):
        assert key in side
    assert "git_commit" in side["environment"] and "jax" in side["environment"]


def test_sweep_over_k_H_uses_each_points_entropy_table():
    """A grid over ``k_H``: one Gamma table per point, built on the host and batched with the
    points (engine.entropy_table); each point is simulate() at that ``k_H``."""
    ks = [0.5, 2.5, 0.8]
    res = sw.sweep(Scenario(), POL, {"k_H": ks}, seed=2, realizations=R, rounds=40)
    for i, k in enumerate(ks):
        ref = simulate(Scenario(k_H=k), POL, seed=2, realizations=R, rounds=40)
        for name in ("sent", "passes", "accepted", "tokens"):
            np.testing.assert_array_equal(res.metrics[name][i], getattr(ref, name), err_msg=(k, name))
        np.testing.assert_allclose(res.metrics["throughput"][i], ref.throughput, rtol=1e-13, err_msg=k)
    assert not np.array_equal(res.metrics["sent"][0], res.metrics["sent"][1])  # the law does change


def test_sweep_one_compile_for_all_grid_points_and_chunks(swept):
    n0 = sw._get_kernel()._cache_size()
    sw.sweep(Scenario(), POL, {"V": [0.5, 7.0], "E_bar": [0.05, 0.07]}, seed=3, realizations=R, rounds=T, chunk=2,
             progress=False)
    assert sw._get_kernel()._cache_size() == n0  # new values of the same leaves: no recompilation


def test_sweep_resume_skips_done_and_recomputes_corrupt_chunks(swept):
    out, res = swept
    stamp = {p: os.stat(out / p).st_mtime_ns for p in ("chunk-00000.npz", "chunk-00001.npz", "chunk-00002.npz")}
    # truncate one chunk and delete another's sidecar
    data = (out / "chunk-00001.npz").read_bytes()
    (out / "chunk-00001.npz").write_bytes(data[: len(data) // 2])
    (out / "chunk-00002.json").unlink()
    with pytest.raises(ValueError, match="missing or damaged"):
        sw.load_sweep(str(out))
    again = sw.sweep(Scenario(), POL, GRID, seed=3, realizations=R, rounds=T, chunk=2, out=str(out), progress=False)
    assert os.stat(out / "chunk-00000.npz").st_mtime_ns == stamp["chunk-00000.npz"]  # skipped
    assert os.stat(out / "chunk-00001.npz").st_mtime_ns != stamp["chunk-00001.npz"]  # recomputed
    for k in sw.METRICS:
        np.testing.assert_array_equal(again.metrics[k], res.metrics[k], err_msg=k)


def test_sweep_refuses_to_mix_configurations(swept):
    out, _ = swept
    with pytest.raises(ValueError, match="different configuration.*seed"):
        sw.sweep(Scenario(), POL, GRID, seed=4, realizations=R, rounds=T, chunk=2, out=str(out), progress=False)
    with pytest.raises(ValueError, match="different configuration.*delta"):
        sw.sweep(Scenario(delta=0.14), POL, GRID, seed=3, realizations=R, rounds=T, chunk=2, out=str(out), progress=False)
    with pytest.raises(ValueError, match="chunk"):
        sw.sweep(Scenario(), POL, GRID, seed=3, realizations=R, rounds=T, chunk=3, out=str(out), progress=False)


def test_cli_sweep_equals_api_and_bad_input(swept, tmp_path, capsys):
    _, res = swept
    out = tmp_path / "cli"
    rc = main(["sweep", "--grid", "V=0.1,3.0", "--grid", "E_bar=0.03,0.09", "--seed", "3", "--realizations", str(R),
               "--rounds", str(T), "--chunk", "2", "--out", str(out), "--quiet", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["shape"] == [2, 2] and summary["fields"] == ["V", "E_bar"]
    cli = sw.load_sweep(str(out))
    for k in sw.METRICS:
        np.testing.assert_array_equal(cli.metrics[k], res.metrics[k], err_msg=k)
    # a TOML grid file gives the same configuration (resume: nothing left to do)
    g = tmp_path / "grid.toml"
    g.write_text("[grid]\nV = [0.1, 3.0]\nE_bar = [0.03, 0.09]\n")
    rc = main(["sweep", "--grid-file", str(g), "--seed", "3", "--realizations", str(R), "--rounds", str(T),
               "--chunk", "2", "--out", str(out), "--quiet"])
    assert rc == 0 and "V=3, E_bar=0.09" in capsys.readouterr().out
    rc = main(["sweep", "--grid", "V=logspace:1:2", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "grid V" in err
    assert not (tmp_path / "x").exists()
    rc = main(["sweep", "--grid", "gamma_max=4,8", "--out", str(tmp_path / "y")])
    err = capsys.readouterr().err
    assert rc == 2 and "static" in err and not (tmp_path / "y").exists()


_MULTI = textwrap.dedent(
    """
    import jax
    jax.config.update("jax_num_cpu_devices", 8)
    jax.config.update("jax_enable_x64", True)
    import numpy as np
    from gelato_jax import Scenario
    from gelato_jax.policies import Gelato
    from gelato_jax.sweep import sweep, METRICS
    assert len(jax.devices()) == 8
    grid = {"V": [0.2, 5.0], "delta": [0.02, 0.14]}
    configs = CONFIGS
    runs = [sweep(Scenario(), Gelato(), grid, seed=1, realizations=11, rounds=40, chunk=c, devices=d, progress=False)
            for c, d in configs]
    for r in runs[1:]:
        for k in METRICS:
            assert np.array_equal(r.metrics[k], runs[0].metrics[k]), k
    print("OK", runs[0].metrics["throughput"].shape)
    """
)


def _run_multi(configs):
    env = dict(os.environ, XLA_FLAGS="")
    code = f"CONFIGS = {configs!r}\n" + _MULTI
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)


def test_sweep_bit_identical_across_device_counts_and_chunks_8_fake_devices():
    # (chunk, devices): 11 realizations in one chunk on 1 device vs chunks of 3 on 8 devices
    # (padded to 8 per call: 5 of 8 slots are padding)
    proc = _run_multi([(11, 1), (3, 8)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OK (2, 2, 11)" in proc.stdout


@pytest.mark.slow
def test_sweep_bit_identical_more_chunk_and_device_combinations():
    proc = _run_multi([(11, 1), (5, 8), (4, 3), (2, 2), (11, 8)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OK (2, 2, 11)" in proc.stdout


@pytest.mark.slow
def test_sweep_killed_with_sigkill_then_resumed_is_identical(tmp_path):
    args = ["-m", "gelato_jax", "sweep", "--grid", "V=0.3,3", "--grid", "E_bar=0.03,0.09", "--realizations", "12",
            "--rounds", "20000", "--chunk", "2", "--seed", "5", "--quiet"]
    env = dict(os.environ, JAX_ENABLE_X64="1")
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, *args, "--out", str(killed)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (killed / "chunk-00001.json").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted(p.name for p in killed.glob("chunk-*.json"))
    assert 0 < len(done) < 6, done  # killed mid-sweep
    subprocess.run([sys.executable, *args, "--out", str(killed)], env=env, check=True, capture_output=True)
    clean = tmp_path / "clean"
    subprocess.run([sys.executable, *args, "--out", str(clean)], env=env, check=True, capture_output=True)
    a, b = sw.load_sweep(str(killed)), sw.load_sweep(str(clean))
    for k in sw.METRICS:
        np.testing.assert_array_equal(a.metrics[k], b.metrics[k], err_msg=k)
    assert not list(killed.glob(".tmp-*"))  # no temporary leftovers after the resumed run


# ----------------------------------------------------------------------------- policies x grid
# Two policies of one class with different (non-grid) leaves: the kernel compiled for ``swept``
# is reused (same grid fields, rounds and chunk shape), so these tests add no compilation; RP = 4
# realizations are the first 4 of ``swept``'s 5 (realization r's draws depend on r only).
POLS = {"gelato": POL, "h25": Gelato(H_th=2.5)}
RP = 4


@pytest.fixture(scope="module")
def pswept(swept, tmp_path_factory):
    out = tmp_path_factory.mktemp("policies") / "run"
    res = sw.sweep_policies(Scenario(), POLS, GRID, seed=3, realizations=RP, rounds=T, chunk=2, out=str(out), progress=False)
    return out, res


def test_policies_sweep_common_random_numbers_and_paired_summary(swept, pswept):
    from gelato_jax.compare import paired_difference, ratio_change

    _, single = swept
    out, res = pswept
    assert res.fields == ("policy", "V", "E_bar") and list(res.coords["policy"]) == ["gelato", "h25"]
    assert res.metrics["throughput"].shape == (2, 2, 2, RP)
    # policy "gelato" is exactly the single-policy sweep with the same seed: same draws at every point
    for k in sw.METRICS:
        np.testing.assert_array_equal(res.metrics[k][0], single.metrics[k][..., :RP], err_msg=k)
    assert not np.array_equal(res.metrics["throughput"][0], res.metrics["throughput"][1])  # H_th matters
    summ = json.loads((out / "summary.json").read_text())
    assert [p["grid"] for p in summ["points"]] == [{"V": v, "E_bar": e} for v in GRID["V"] for e in GRID["E_bar"]]
    p = summ["points"][3]  # V = 3, E_bar = 0.09
    x, y = res.metrics["goodput"][0, 1, 1], res.metrics["goodput"][1, 1, 1]
    assert p["summary"]["gelato"]["goodput"]["mean"] == pytest.approx(float(np.mean(x)), rel=1e-12)
    assert p["versus"]["h25"]["goodput"]["diff"] == pytest.approx(paired_difference(x, y), rel=1e-12)
    assert p["versus"]["h25"]["goodput"]["change_pct"] == pytest.approx(ratio_change(x, y), rel=1e-12)
    assert "gelato" not in p["versus"]  # the reference is not compared with itself
    again = sw.load_sweep(str(out))
    assert again.fields == res.fields
    for k in sw.METRICS:
        np.testing.assert_array_equal(again.metrics[k], res.metrics[k], err_msg=k)


def test_policies_sweep_resumes_and_refuses_another_configuration(pswept):
    out, res = pswept
    npz = out / "policy-h25" / "chunk-00001.npz"
    stamp = os.stat(npz).st_mtime_ns
    again = sw.sweep_policies(Scenario(), POLS, GRID, seed=3, realizations=RP, rounds=T, chunk=2, out=str(out), progress=False)
    assert os.stat(npz).st_mtime_ns == stamp  # every chunk was reused
    np.testing.assert_array_equal(again.metrics["energy"], res.metrics["energy"])
    with pytest.raises(ValueError, match="different configuration.*policies"):
        sw.sweep_policies(Scenario(), {"gelato": POL}, GRID, seed=3, realizations=RP, rounds=T, chunk=2, out=str(out))
    with pytest.raises(ValueError, match="different configuration.*seed"):
        sw.sweep_policies(Scenario(), POLS, GRID, seed=4, realizations=RP, rounds=T, chunk=2, out=str(out))


@pytest.mark.parametrize("pols,grid,match", [
    ({"gelato": Gelato(), "static": None}, {"V": [0.1]}, "no such field"),
    ({"gelato": Gelato()}, {"policy": [1.0]}, "--policies"),
    ({"a b": Gelato()}, {"V": [0.1]}, "label"),
])
def test_policies_sweep_refusals(pols, grid, match):
    from gelato_jax.policies import StaticSD

    pols = {k: (StaticSD() if v is None else v) for k, v in pols.items()}
    with pytest.raises(ValueError, match=match):
        sw.sweep_policies(Scenario(), pols, grid, realizations=2, rounds=2)


def test_to_xarray_to_dataframe_and_short_repr(pswept):
    out, res = pswept
    ds = sw.open_dataset(str(out))
    assert dict(ds.sizes) == {"policy": 2, "V": 2, "E_bar": 2, "realization": RP}
    np.testing.assert_array_equal(ds["goodput"].sel(policy="h25", V=3.0, E_bar=0.03).values, res.metrics["goodput"][1, 1, 0])
    assert json.loads(ds.attrs["config"])["reference"] == "gelato" and ds.attrs["rounds"] == T
    df = res.to_dataframe()
    assert list(df.index.names) == ["policy", "V", "E_bar", "realization"] and len(df) == 2 * 2 * 2 * RP
    assert df.loc[("gelato", 0.1, 0.09, 3), "energy"] == res.metrics["energy"][0, 0, 1, 3]
    text = repr(res)
    assert text.startswith("SweepResult(policy[2], V[2], E_bar[2] x realization[4]") and len(text) < 400
    assert "[" + str(float(res.metrics["throughput"].ravel()[0]))[:6] not in text  # no array values printed


def test_cli_sweep_and_compare_over_policies_and_grid(pswept, tmp_path, capsys):
    """The CLI builds the API's configuration: run into the API's folder, every chunk is reused
    (a different configuration would be refused) and the summary is the API's."""
    out, res = pswept
    want = json.loads((out / "summary.json").read_text())
    stamp = os.stat(out / "policy-h25" / "chunk-00000.npz").st_mtime_ns
    common = ["--grid", "V=0.1,3.0", "--grid", "E_bar=0.03,0.09", "--seed", "3", "--realizations", str(RP),
              "--rounds", str(T), "--chunk", "2", "--quiet", "--json", "--out", str(out)]
    rc = main(["sweep", "--policies", "gelato,h25=gelato", "--pset", "h25.H_th=2.5", *common])
    assert rc == 0
    js = json.loads(capsys.readouterr().out)
    assert js["points"] == want["points"] and js["policies"] == ["gelato", "h25"]
    # compare --grid is the same computation; --grid policy=... is an alias of --policies
    rc = main(["compare", "--grid", "policy=gelato,h25=gelato", "--pset", "h25.H_th=2.5", *common])
    assert rc == 0 and json.loads(capsys.readouterr().out)["points"] == want["points"]
    assert os.stat(out / "policy-h25" / "chunk-00000.npz").st_mtime_ns == stamp
    # the saved folder draws with one command
    rc = main(["figures", "--from", str(out), "--x", "V", "--y", "goodput,energy", "--by", "policy",
               "--out", str(tmp_path / "fig")])
    assert rc == 0 and (tmp_path / "fig" / "fig_run.png").read_bytes().startswith(b"\x89PNG")
    capsys.readouterr()


@pytest.mark.parametrize("argv,needle", [
    (["sweep", "--policies", "gelato", "--policy", "gelato"], "exclude"),
    (["sweep", "--pset", "gelato.V=1"], "--pset needs --policies"),
    (["sweep", "--reference", "gelato"], "--reference needs --policies"),
    (["sweep", "--policies", "gelato,static"], "static"),  # V is no StaticSD field
    (["sweep", "--policies", "gelato", "--set", "H_th=2"], "use --pset"),
    (["compare", "--grid", "policy=gelato", "--policies", "gelato"], "give one"),
    (["compare", "--policies", "gelato,oracle"], "oracle"),
])
def test_cli_policies_grid_refusals_one_line(argv, needle, tmp_path, capsys):
    rc = main([*argv, "--grid", "V=0.1,3.0", "--realizations", "2", "--rounds", "5", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x").exists()


def test_tied_downlink_moves_with_the_swept_bandwidth():
    """``W_dl = "W"``: every grid point's scenario has ``W_dl == W`` and the stacked kernel input
    carries the per-point ``W_dl`` (a leaf that is not a grid field but varies with one)."""
    base = Scenario(W_dl="W")
    assert base.W_dl == base.W == 1e6 and base.W_dl_tied and base.to_dict()["W_dl"] == "W"
    assert Scenario.from_dict(base.to_dict()) == base
    assert base.replace(W=5e6).W_dl == 5e6 and base.replace(W_dl=2e6).W_dl_tied is False
    assert Scenario().replace(W=5e6).W_dl == 1e6  # untied by default: only the uplink moves
    fields, coords, scens, pols = sw._build_points(base, POL, {"W": [0.5e6, 5e6]})
    stacked, axes = sw._stack(scens, fields, np.float64)
    np.testing.assert_array_equal(np.asarray(stacked.W_dl), [0.5e6, 5e6])
    assert axes.W_dl == 0 and axes.W == 0
    untied, _ = sw._stack(sw._build_points(Scenario(), POL, {"W": [0.5e6, 5e6]})[2], fields, np.float64)
    assert np.ndim(untied.W_dl) == 0 and float(untied.W_dl) == 1e6
    with pytest.raises(ValueError, match="W_dl"):
        Scenario(W_dl="w")


# ----------------------------------------------------------------------------- every option acts
# Each option either changes the configuration a run is made of or is refused. Running into a
# finished folder with one option changed shows it without computing anything: the folder
# refuses the new configuration and names the difference (before any simulation starts).
_SWEEP_ARGS = ["sweep", "--grid", "V=0.1,3.0", "--grid", "E_bar=0.03,0.09", "--seed", "3", "--realizations", str(R),
               "--rounds", str(T), "--chunk", "2", "--quiet"]
_CMP_ARGS = ["compare", "--policies", "gelato,h25=gelato", "--pset", "h25.H_th=2.5", "--grid", "V=0.1,3.0",
             "--grid", "E_bar=0.03,0.09", "--seed", "3", "--realizations", str(RP), "--rounds", str(T), "--chunk", "2",
             "--quiet"]


def _with(args, flag, value):
    """``args`` with ``flag``'s value replaced (or the flag added)."""
    args = list(args)
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]
    return args


@pytest.mark.parametrize("change,needle", [
    (("--set", "delta=0.14"), "scenario.delta: 0.02 -> 0.14"),
    (("--config", "CFG"), "scenario.delta: 0.02 -> 0.05"),
    (("--policy", "lyapunov-only"), "policy: 'gelato' -> 'lyapunov-only'"),
    (("--set", "H_th=2.5"), "policy_fields.H_th: 1.5 -> 2.5"),
    (("--dtype", "float32"), "dtype: 'float64' -> 'float32'"),
    (("--seed", "4"), "seed: 3 -> 4"),
    (("--realizations", "6"), "realizations: 5 -> 6"),
    (("--rounds", "61"), "rounds: 60 -> 61"),
    (("--chunk", "3"), "--chunk 2"),
    (("--grid-file", "GRID"), "grid.V"),
    (("--devices", "64"), "devices must be <="),
    (("--dtype", "float16"), "--dtype must be float32 or float64"),
])
def test_cli_sweep_every_option_reaches_the_configuration(swept, change, needle, tmp_path, capsys):
    out, _ = swept
    (tmp_path / "c.toml").write_text("[scenario]\ndelta = 0.05\n")
    (tmp_path / "g.toml").write_text('[grid]\nV = [0.2, 3.0]\nE_bar = [0.03, 0.09]\n')
    flag, value = change[0], {"CFG": str(tmp_path / "c.toml"), "GRID": str(tmp_path / "g.toml")}.get(change[1], change[1])
    args = _with(_SWEEP_ARGS, flag, value) + ["--out", str(out)]
    if flag == "--grid-file":
        args = [a for i, a in enumerate(args) if a != "--grid" and (i == 0 or args[i - 1] != "--grid")]
    rc = main(args)
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("change,needle", [
    (("--set", "delta=0.14"), "scenario.delta: 0.02 -> 0.14"),
    (("--config", "CFG"), "scenario.delta: 0.02 -> 0.05"),
    (("--pset", "h25.H_th=3"), "policy_fields.H_th: 2.5 -> 3"),
    (("--policies", "gelato,h25=gelato,h3=gelato"), "policies: ["),
    (("--reference", "h25"), "reference: 'gelato' -> 'h25'"),
    (("--seed", "4"), "seed: 3 -> 4"),
    (("--realizations", "6"), "realizations: 4 -> 6"),
    (("--rounds", "61"), "rounds: 60 -> 61"),
    (("--chunk", "3"), "--chunk 2"),
    (("--grid", "V=0.2,3.0"), "grid.V"),
    (("--grid-file", "GRID"), "grid.V"),
])
def test_cli_compare_every_option_reaches_the_configuration(pswept, change, needle, tmp_path, capsys):
    out, _ = pswept
    (tmp_path / "c.toml").write_text("[scenario]\ndelta = 0.05\n")
    (tmp_path / "g.toml").write_text('[grid]\nV = [0.2, 3.0]\nE_bar = [0.03, 0.09]\n')
    flag, value = change[0], {"CFG": str(tmp_path / "c.toml"), "GRID": str(tmp_path / "g.toml")}.get(change[1], change[1])
    args = _with(_CMP_ARGS, flag, value) if flag not in ("--pset", "--grid") else _CMP_ARGS + [flag, value]
    if flag == "--grid-file":  # the file alone gives the grid (a --grid would override its fields)
        args = [a for i, a in enumerate(args) if a != "--grid" and (i == 0 or args[i - 1] != "--grid")]
    rc = main(args + ["--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1, err


def test_quiet_turns_the_progress_bar_off(pswept, monkeypatch, capsys):
    """``--quiet`` passes ``progress=False``; without it the bar is on where stderr is a terminal
    (``progress=None``: tqdm's own terminal test)."""
    out, _ = pswept
    seen = []
    real = sw.sweep_policies
    monkeypatch.setattr(sw, "sweep_policies", lambda *a, **k: seen.append(k["progress"]) or real(*a, **k))
    for quiet in (True, False):
        args = [a for a in _CMP_ARGS if quiet or a != "--quiet"]
        assert main([*args, "--out", str(out), "--json"]) == 0
    assert seen == [False, None]
    capsys.readouterr()


# option -> where its effect (or refusal) is tested; a new option must be added here with a test
COVERAGE = {
    "compare": {
        "--policies": "test_sweep.py::test_cli_compare_every_option_reaches_the_configuration",
        "--pset": "test_sweep.py::test_cli_compare_every_option_reaches_the_configuration",
        "--reference": "test_sweep.py::test_cli_compare_every_option_reaches_the_configuration",
        "--config": "test_sweep.py::test_cli_compare_every_option_reaches_the_configuration",
        "--set": "test_sweep.py::test_cli_compare_every_option_reaches_the_configuration",
        "--grid": "test_sweep.py::test_cli_compare_every_option_reaches_the_configuration",
        "--grid-file": "test_sweep.py::test_cli_compare_every_option_reaches_the_configuration",
        "--seed": "test_sweep.py::test_cli_compare_every_option_reaches_the_configuration",
        "--realizations": "test_sweep.py::test_cli_compare_every_option_reaches_the_configuration",
        "--rounds": "test_sweep.py::test_cli_compare_every_option_reaches_the_configuration",
        "--chunk": "test_sweep.py::test_cli_compare_every_option_reaches_the_configuration",
        "--out": "test_compare.py::test_cli_compare_json_and_atomic_output",
        "--json": "test_compare.py::test_cli_compare_json_and_atomic_output",
        "--quiet": "test_sweep.py::test_quiet_turns_the_progress_bar_off",
    },
    "sweep": {
        "--config": "test_sweep.py::test_cli_sweep_every_option_reaches_the_configuration",
        "--set": "test_sweep.py::test_cli_sweep_every_option_reaches_the_configuration",
        "--policy": "test_sweep.py::test_cli_sweep_every_option_reaches_the_configuration",
        "--policies": "test_sweep.py::test_cli_sweep_and_compare_over_policies_and_grid",
        "--pset": "test_sweep.py::test_cli_sweep_and_compare_over_policies_and_grid",
        "--reference": "test_sweep.py::test_cli_policies_grid_refusals_one_line",
        "--grid": "test_sweep.py::test_cli_sweep_equals_api_and_bad_input",
        "--grid-file": "test_sweep.py::test_cli_sweep_every_option_reaches_the_configuration",
        "--seed": "test_sweep.py::test_cli_sweep_every_option_reaches_the_configuration",
        "--realizations": "test_sweep.py::test_cli_sweep_every_option_reaches_the_configuration",
        "--rounds": "test_sweep.py::test_cli_sweep_every_option_reaches_the_configuration",
        "--chunk": "test_sweep.py::test_cli_sweep_every_option_reaches_the_configuration",
        "--out": "test_sweep.py::test_cli_sweep_equals_api_and_bad_input",
        "--dtype": "test_sweep.py::test_cli_sweep_every_option_reaches_the_configuration",
        "--devices": "test_sweep.py::test_cli_sweep_every_option_reaches_the_configuration",
        "--json": "test_sweep.py::test_cli_sweep_equals_api_and_bad_input",
        "--quiet": "test_sweep.py::test_quiet_turns_the_progress_bar_off",
        "--distributed": "test_distributed.py::test_layout_from_flags_and_environment",
        "--coordinator": "test_distributed.py::test_layout_from_flags_and_environment",
        "--num-processes": "test_distributed.py::test_layout_from_flags_and_environment",
        "--process-id": "test_distributed.py::test_layout_from_flags_and_environment",
        "--connect-timeout": "test_distributed.py::test_layout_from_flags_and_environment",
    },
    "figures": {
        "--from": "test_figures.py::test_cli_figures_from_a_compare_folder_and_refused_flags",
        "--x": "test_sweep.py::test_cli_sweep_and_compare_over_policies_and_grid",
        "--y": "test_figures.py::test_cli_figures_from_a_compare_folder_and_refused_flags",
        "--by": "test_sweep.py::test_cli_sweep_and_compare_over_policies_and_grid",
        "--name": "test_figures.py::test_cli_figures_from_a_compare_folder_and_refused_flags",
        "--title": "test_figures.py::test_cli_figures_from_a_compare_folder_and_refused_flags",
        "--results": "test_figures.py::test_cli_figures_draw_only_and_missing_results",
        "--out": "test_figures.py::test_cli_figures_draw_only_and_missing_results",
        "--only": "test_figures.py::test_cli_figures_draw_only_and_missing_results",
        "--run": "test_figures.py::test_cli_figures_from_a_compare_folder_and_refused_flags",
        "--draw-only": "test_figures.py::test_cli_figures_from_a_compare_folder_and_refused_flags",
        "--quick": "test_figures.py::test_cli_figures_from_a_compare_folder_and_refused_flags",
        "--seed": "test_figures.py::test_cli_figures_from_a_compare_folder_and_refused_flags",
        "--docs": "test_figures.py::test_cli_figures_from_a_compare_folder_and_refused_flags",
        "--config": "test_figures.py::test_cli_figures_from_a_compare_folder_and_refused_flags",
        "--set": "test_figures.py::test_cli_figures_from_a_compare_folder_and_refused_flags",
        "--grid": "test_figures.py::test_cli_figures_from_a_compare_folder_and_refused_flags",
        "--quiet": "test_figures.py::test_cli_figures_draw_only_and_missing_results",
    },
}


def test_every_option_of_compare_sweep_figures_has_a_test():
    import pathlib
    import re

    from gelato_jax.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    here = pathlib.Path(__file__).parent
    for command, table in COVERAGE.items():
        options = {o for a in sub.choices[command]._actions for o in a.option_strings if o.startswith("--") and o != "--help"}
        assert options == set(table), (command, sorted(options ^ set(table)))
        for opt, where in table.items():
            path, _, name = where.partition("::")
            text = (here / path).read_text()
            if name:  # the option is used inside the named test function or its parametrize table
                m = re.search(rf"^def {name}\(", text, re.M)
                assert m, (command, opt, where)
                start, end = text.rfind("\n\n\n", 0, m.start()), text.find("\n\n\n", m.start())
                text = text[start:end if end > 0 else None]
            # the option itself, or its argparse name as a keyword (``connect_timeout=7``)
            dest = opt.lstrip("-").replace("-", "_")
            assert f'"{opt}"' in text or f"{opt} " in text or f"{dest}=" in text, (command, opt, where)
