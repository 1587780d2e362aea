"""``gelato tightness`` and ``gelato verify`` as several processes on ``jax.distributed``
(proofs_check.atlas, proofs_check.run.run_verify): a killed process leaves only whole point files
or no report, and two processes give the one-process atlas and report (but for durations, the
Environment line and the process count). In a file of their own so that pytest-xdist's
``--dist loadfile`` runs them beside tests/test_distributed.py's sweep tests (the costs: that
file's docstring).
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from gelato_jax import distributed
from gelato_jax.cli import main

from _multiprocess import env, gelato  # noqa: F401 - env is a fixture


# ----------------------------------------------------------------------------- gelato tightness
# three points whose configuration does not apply (entropy_process=text: the rounds are not
# i.i.d.): the whole several-process path (process 0's to-do list, the points each process owns,
# per-process point files, barrier, merge) at the cost of the interpreter starts; the real numbers:
# test_tightness_two_processes_same_numbers_as_one_process (slow)
TIGHT_NA = ["tightness", "--grid", "E_bar=0.05,0.06,0.07", "--set", "entropy_process=text", "--no-figures", "--quiet"]
# AtlasSizes small enough for a test (the sizes of tests/test_atlas.py's TINY_ATLAS)
TINY_SIZES = ["realizations=4", "chunk=4", "n_V=2", "relax_times=2", "top_decades=2", "min_rounds=200", "rounds_cap=600",
              "quantiles=256", "plan_quantiles=1024", "tightness_quantiles=2048", "sim_realizations=4", "sim_rounds=200"]
_PROVENANCE = ("wall_s", "process", "resumed")


def _atlas_numbers(d):
    """atlas.json without what records how it was run (wall times, processes, environment)."""
    a = json.loads((d / "atlas.json").read_text())
    a.pop("wall_s"), a.pop("environment")
    a["points"] = [{k: v for k, v in p.items() if k not in _PROVENANCE} for p in a["points"]]
    return a


def test_tightness_killed_process_and_two_process_resume_match_one_process(env, tmp_path, capsys):
    one, two = tmp_path / "one", tmp_path / "two"
    assert main([*TIGHT_NA, "--out", str(one)]) == 0  # one process: this one
    capsys.readouterr()
    # process 0 owns points 0 and 2, process 1 point 1; process 1 is SIGKILLed right after writing
    # it, so process 0 never passes the barrier: no atlas.json, only whole point files
    fault = dict(env, **{distributed.ENV_FAULT: "1:1"})
    r = gelato("launch", "--processes", 2, "--", *TIGHT_NA, "--out", two, env=fault)
    assert r.returncode == 128 + 9, (r.returncode, r.stderr[-3000:])
    assert not (two / "atlas.json").exists()
    written = {p.name: json.loads(p.read_text()) for p in (two / "points").glob("point_*.json")}
    assert written["point_0001.json"]["process"] == 1 and all(w["process"] == 0 for n, w in written.items() if n != "point_0001.json")
    # the same command again: the finished points are read back, the others computed; process 0 merges
    # and prints the table once
    r = gelato("launch", "--processes", 2, "--", *TIGHT_NA, "--out", two, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("gelato tightness: 3 points") == 1
    res = json.loads((two / "atlas.json").read_text())
    assert [p.get("resumed", False) for p in res["points"]] == [f"point_000{i}.json" in written for i in range(3)]
    assert res["environment"]["processes"] == 2 and json.loads((one / "atlas.json").read_text())["environment"]["processes"] == 1
    assert [p["status"] for p in res["points"]] == ["not applicable"] * 3
    assert _atlas_numbers(two) == _atlas_numbers(one)


@pytest.mark.slow
def test_tightness_two_processes_same_numbers_as_one_process(env, tmp_path):
    # ≈ 70 CPU-s: each process compiles the point's programs (process 1 cannot reuse process 0's cache)
    # and samples theory.bounds' exact-proxy table; two real points, one per process
    sizes = [a for s in TINY_SIZES for a in ("--size", s)]
    cmd = ["tightness", "--grid", "E_bar=0.05,0.06", "--quick", *sizes, "--no-figures", "--quiet"]
    one, two = tmp_path / "one", tmp_path / "two"
    r = gelato(*cmd, "--out", one, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    r = gelato("launch", "--processes", 2, "--", *cmd, "--out", two, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((two / "atlas.json").read_text())
    assert [p["process"] for p in res["points"]] == [0, 1] and [p["status"] for p in res["points"]] == ["done", "done"]
    assert res["points"][0]["measured_constant"] > 0
    assert _atlas_numbers(two) == _atlas_numbers(one)


# ----------------------------------------------------------------------------- gelato verify
# the sizes of tests/test_verify.py's TINY
VERIFY_TINY = ["realizations=4", "chunk=2", "lo=-1", "hi=1", "n_coarse=3", "n_fine=2", "settle_factor=5", "min_rounds=200",
               "rollout_realizations=2", "rollout_rounds_cap=200", "mc_samples=2000", "lossless_samples=2000", "quantiles=256",
               "informative_points=2", "scaling_points=3", "scaling_decades=1,2", "scaling_rounds=300", "scaling_realizations=4"]
VERIFY = ["verify", "--quick", *[a for s in VERIFY_TINY for a in ("--size", s)], "--quiet"]
# every configuration "not applicable" (the text entropy process: rounds not i.i.d.), so the real
# work is the global checks (closed forms vs Monte Carlo, losslessness), which process 1 owns: the
# whole several-process path of verify at the cost of those two checks
VERIFY_NA = [*VERIFY, "--set", "entropy_process=text", "--no-figures"]
_TIMING_KEYS = ("wall_s", "cpu_s", "LP_seconds", "sweep_wall_s")


def _no_timings(x):
    """report.json without what records how long it took or where it ran (timings, environment)."""
    import re

    if isinstance(x, dict):
        return {k: _no_timings(v) for k, v in x.items() if k not in (*_TIMING_KEYS, "timings", "environment")}
    if isinstance(x, list):
        return [_no_timings(v) for v in x]
    if isinstance(x, str):  # notes such as "... 29.8 s wall, 11.2 s CPU", "(1.7 s)"
        return re.sub(r"\d+(\.\d+)? s\b", "# s", x)
    return x


def _report_lines(path):
    """report.md with the durations blanked and the Environment line dropped: the lines that may
    differ between a one-process and a several-process run."""
    import re

    text = re.sub(r"'(%s)': [-+.\deE]+" % "|".join(_TIMING_KEYS), r"'\1': #", path.read_text())
    return [re.sub(r"\d+(\.\d+)? s\b", "# s", line) for line in text.splitlines() if not line.startswith("Environment:")]


def _assert_same_report(one, two):
    a, b = (json.loads((d / "report.json").read_text()) for d in (one, two))
    assert (a["environment"]["processes"], b["environment"]["processes"]) == (1, 2)
    assert _no_timings(a) == _no_timings(b)
    assert _report_lines(one / "report.md") == _report_lines(two / "report.md")
    for f in sorted(p.name for p in one.glob("sweep_*.npz")):
        x, y = np.load(one / f, allow_pickle=True), np.load(two / f, allow_pickle=True)
        assert x.files == y.files
        for k in x.files:
            if k != "timings" and not k.endswith(("wall_s", "cpu_s")):  # sweep_wall_s, stationary_wall_s
                np.testing.assert_array_equal(x[k], y[k], err_msg=f"{f}: {k}")
    assert sorted(p.name for p in one.iterdir()) == sorted(p.name for p in two.iterdir())


def _in(cwd, *args, env, timeout=600):
    return subprocess.run([sys.executable, "-m", "gelato_jax", *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def test_verify_killed_process_leaves_no_report_and_two_processes_give_the_one_process_report(env, tmp_path, monkeypatch, capsys):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    monkeypatch.chdir(one)  # the same --out text everywhere: the report records the command line
    assert main([*VERIFY_NA, "--out", "rep"]) == 0  # one process: this one
    capsys.readouterr()
    # units: configurations a-e, then closed forms, proxy vs Monte Carlo, losslessness; process 1
    # owns b, d, the closed forms and losslessness, and is SIGKILLed after its first unit: process 0
    # never receives its results, writes nothing and is stopped by launch
    fault = dict(env, **{distributed.ENV_FAULT: "1:1"})
    r = _in(two, "launch", "--processes", 2, "--", *VERIFY_NA, "--out", "rep", env=fault)
    assert r.returncode == 128 + 9, (r.returncode, r.stderr[-3000:])
    assert "process 1 exited with status 137" in r.stderr and "verify has no resume" in r.stderr
    assert not (two / "rep").exists()
    r = _in(two, "launch", "--processes", 2, "--", *VERIFY_NA, "--out", "rep", env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("ALL CLAIMS OF THE THEOREM HOLD") == 1  # process 0 alone prints the summary
    rep = json.loads((two / "rep" / "report.json").read_text())
    assert [v["status"] for v in rep["verdicts"]].count("pass") >= 4  # the global checks ran for real
    _assert_same_report(one / "rep", two / "rep")


@pytest.mark.slow
def test_verify_two_processes_same_report_as_one_process_on_a_real_configuration(env, tmp_path):
    # ≈ 150 CPU-s: configuration (a) at tiny sizes (theory constants, rollouts, the V and stationary
    # sweeps, the tight constants) and the global checks, once in one process and once split
    # over two (process 0: (a) and the proxy check; process 1: the closed forms and losslessness),
    # each process compiling its own programs
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    cmd = [*VERIFY, "--only", "a", "--out", "rep"]
    r = _in(one, *cmd, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    r = _in(two, "launch", "--processes", 2, "--", *cmd, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads((two / "rep" / "report.json").read_text())
    assert any(v["config"] == "a-exact-dpp" and v["status"] == "pass" for v in rep["verdicts"])
    _assert_same_report(one / "rep", two / "rep")
