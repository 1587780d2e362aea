"""Sweeps, the tightness atlas and verify as several processes on ``jax.distributed``
(gelato_jax.distributed, gelato launch, proofs_check.atlas, proofs_check.run.run_verify).

Real multi-process runs on this machine: ``gelato launch --processes 2 -- sweep ...`` gives the same
``load_sweep`` arrays as one process (the issue's "done when" command); a process killed mid-run
leaves only whole chunks and one process resumes to bit-identical results; a process that cannot
reach the coordinator, or a coordinator whose peers never come, fails within the connect
timeout with one line and exit status 2; two processes of ``gelato verify`` write the one-process
report (but for its durations and Environment line), and a killed one leaves no report.

Cost: every child process imports JAX and compiles the sweep program (about 8 s of CPU each here):
the persistent XLA compilation cache does not hold it, since the program calls back to the host
(``jax.pure_callback`` builds the Gamma sampler's tables), so every process, process 1 of a
launch as well, runs independently compiled code. The one-process references are computed in
one child (one import for both), the tightness and verify references in this process, the
killed-sweep test runs a smaller program than the default one (its claim does not need it), the
verify test runs only the global checks for real (every configuration not applicable; the real
configuration (a) is under ``-m slow``), and ``gelato launch`` stops the survivors of a killed
process within 1 s. On CPU a process other than 0 could not use the persistent cache even
without the callback: JAX writes it from process 0 only, and the key holds the device id.
"""

import importlib
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from gelato_jax import distributed
from gelato_jax.cli import main
from gelato_jax.launch import free_port

sw = importlib.import_module("gelato_jax.sweep")  # the package exports a function of the same name

SWEEP = ["sweep", "--grid", "V=0.05,0.5", "--rounds", "500", "--quiet"]
# a smaller program for the killed-process test, whose claim does not need the default one (one
# budget, no early exit, full payload; measured: half the CPU of a process running the default
# program, which is compile time)
SMALL = ["--set", "gamma_max=1", "--set", "exit=none", "--set", "payload=full"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("xla-cache")
    return dict(os.environ, JAX_ENABLE_X64="1", JAX_COMPILATION_CACHE_DIR=str(cache),
                JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")


def gelato(*args, env, timeout=400):
    return subprocess.run([sys.executable, "-m", "gelato_jax", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def reference(env, tmp_path_factory):
    """Single-process runs: 64 realizations in chunks of 32 (what two processes choose by default
    for 64: ceil(64 / 2)), and 128 in chunks of 32 of the SMALL program."""
    root = tmp_path_factory.mktemp("one-process")
    argvs = [[*SWEEP, "--realizations", "64", "--chunk", "32", "--out", str(root / "R64")],
             [*SWEEP, *SMALL, "--realizations", "128", "--chunk", "32", "--out", str(root / "R128")]]
    # both runs in one child process: one import
    code = f"import sys; from gelato_jax.cli import main; sys.exit(max(main(a) for a in {argvs!r}))"
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    return {R: sw.load_sweep(str(root / f"R{R}")) for R in (64, 128)}


def _assert_same(a, b):
    assert a.fields == b.fields and a.realizations == b.realizations
    for k in sw.METRICS:
        np.testing.assert_array_equal(a.metrics[k], b.metrics[k], err_msg=k)


def test_two_processes_bit_identical_to_one_process(env, reference, tmp_path):
    out = tmp_path / "two"
    # the command: gelato launch --processes 2 -- sweep --grid V=0.05,0.5 --realizations 64 --rounds 500 --out D
    r = gelato("launch", "--processes", 2, "--", *SWEEP, "--realizations", 64, "--out", out, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("gelato sweep:") == 1  # process 0 alone prints the summary
    _assert_same(sw.load_sweep(str(out)), reference[64])
    # each process wrote the chunk it owns; one manifest, same configuration as one process's
    side = [json.loads((out / f"chunk-0000{c}.json").read_text()) for c in (0, 1)]
    assert [s["process"] for s in side] == [0, 1] and sorted(p.name for p in out.glob("chunk-*.npz")) == [
        "chunk-00000.npz", "chunk-00001.npz"]
    man = json.loads((out / "sweep.json").read_text())
    assert man["chunk"] == 32 and man["config"] == reference[64].config


def test_killed_process_leaves_whole_chunks_and_any_process_count_resumes(env, reference, tmp_path):
    out = tmp_path / "killed"
    # 4 chunks of 32: process 0 owns chunks 0 and 2, process 1 owns 1 and 3. Process 0 (which also
    # runs the coordinator) is SIGKILLed right after writing chunk 0; launch then stops process 1
    # (usually still compiling: it cannot reuse process 0's cached program)
    fault = dict(env, **{distributed.ENV_FAULT: "0:1"})
    r = gelato("launch", "--processes", 2, "--", *SWEEP, *SMALL, "--realizations", 128, "--chunk", 32, "--out", out, env=fault)
    assert r.returncode == 128 + 9, (r.returncode, r.stderr[-3000:])
    assert "exited with status 137" in r.stderr
    done = sorted(int(p.name[6:11]) for p in out.glob("chunk-*.json"))
    assert 0 in done and 2 not in done, done
    man = json.loads((out / "sweep.json").read_text())
    for c in done:  # every chunk that has a sidecar is whole: checksum and shapes check out
        assert sw._chunk_ok(str(out), c, man["config_hash"], 32 * c, 32 * (c + 1), 2), c
    with pytest.raises(ValueError, match="missing or damaged"):
        sw.load_sweep(str(out))
    # resume with another process count (one process, no launch) and without --chunk: the folder's
    # chunk size is kept; only the missing chunks are computed
    stamp = os.stat(out / "chunk-00000.npz").st_mtime_ns
    r = gelato(*SWEEP, *SMALL, "--realizations", 128, "--out", out, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert os.stat(out / "chunk-00000.npz").st_mtime_ns == stamp
    _assert_same(sw.load_sweep(str(out)), reference[128])


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


def test_unreachable_coordinator_fails_within_the_timeout(tmp_path):
    env = dict(os.environ, JAX_ENABLE_X64="1")
    port = free_port()  # nothing listens there
    common = [*SWEEP, "--realizations", 8, "--out", tmp_path / "x", "--coordinator", f"127.0.0.1:{port}",
              "--num-processes", 2, "--connect-timeout", 2]
    for pid, message in ((1, f"cannot reach the coordinator at 127.0.0.1:{port} within 2 s"),
                         (0, "not all 2 processes joined the coordinator")):
        t0 = time.monotonic()
        r = gelato(*common, "--process-id", pid, env=env, timeout=120)
        wall = time.monotonic() - t0
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and message in lines[0], (r.returncode, r.stderr[-2000:])
        # the 2 s timeout plus the interpreter start (a few s; generous under load), far below
        # JAX's own 300 s default and its abort with a gRPC trace
        assert wall < 90, wall
    assert not (tmp_path / "x").exists()


def test_layout_from_flags_and_environment(monkeypatch):
    import argparse

    def ns(**kw):
        base = dict(coordinator=None, num_processes=None, process_id=None, connect_timeout=None, distributed=False)
        return argparse.Namespace(**{**base, **kw})

    for var in (distributed.ENV_ADDRESS, distributed.ENV_COUNT, distributed.ENV_ID):
        monkeypatch.delenv(var, raising=False)
    for var in ("SLURM_JOB_ID", "OMPI_MCA_orte_hnp_uri", "TPU_WORKER_ID"):
        monkeypatch.delenv(var, raising=False)
    assert distributed.layout_from_args(ns()) is None  # a plain single-process run
    lay = distributed.layout_from_args(ns(coordinator="h:1234", num_processes=4, process_id=3, connect_timeout=7))
    assert (lay.coordinator, lay.num_processes, lay.process_id, lay.connect_timeout) == ("h:1234", 4, 3, 7)
    monkeypatch.setenv(distributed.ENV_ADDRESS, "10.0.0.1:99")
    monkeypatch.setenv(distributed.ENV_COUNT, "2")
    monkeypatch.setenv(distributed.ENV_ID, "1")
    lay = distributed.layout_from_args(ns())
    assert (lay.coordinator, lay.num_processes, lay.process_id, lay.source) == ("10.0.0.1:99", 2, 1, "environment")
    assert distributed.layout_from_args(ns(process_id=0)).process_id == 0  # a flag beats the environment
    for kw, match in ((dict(process_id=2), "process-id must be in 0..1"),
                      (dict(coordinator="nohost"), "HOST:PORT"),
                      (dict(coordinator="h:0"), "port")):
        with pytest.raises(ValueError, match=match):
            distributed.layout_from_args(ns(**kw))
    with pytest.raises(ValueError, match="--connect-timeout applies to several processes only"):
        for var in (distributed.ENV_COUNT, distributed.ENV_ID):
            monkeypatch.delenv(var)
        distributed.layout_from_args(ns(connect_timeout=5))  # nothing to connect to: refused, not ignored
    monkeypatch.setenv(distributed.ENV_COUNT, "2")
    monkeypatch.setenv(distributed.ENV_ID, "1")
    monkeypatch.delenv(distributed.ENV_ADDRESS)
    with pytest.raises(ValueError, match="missing: --coordinator"):
        distributed.layout_from_args(ns())
    monkeypatch.setenv(distributed.ENV_COUNT, "two")
    with pytest.raises(ValueError, match="JAX_NUM_PROCESSES"):
        distributed.layout_from_args(ns())
    monkeypatch.delenv(distributed.ENV_COUNT)
    monkeypatch.delenv(distributed.ENV_ID)
    with pytest.raises(ValueError, match="no cluster detected"):
        distributed.layout_from_args(ns(distributed=True))
    # SLURM's variables: --distributed leaves the layout to JAX's SLURM detection
    for k, v in dict(SLURM_JOB_ID="4242", SLURM_STEP_NODELIST="node[01-02]", SLURM_NTASKS="8", SLURM_PROCID="3",
                     SLURM_LOCALID="1").items():
        monkeypatch.setenv(k, v)
    assert distributed.detect_cluster() == "slurm"
    lay = distributed.layout_from_args(ns(distributed=True))
    assert (lay.coordinator, lay.num_processes, lay.process_id, lay.source) == (None, None, None, "auto-detect")


def test_launch_refuses_commands_that_do_not_split_their_work(capsys):
    for argv, match in ((["launch", "--processes", "2", "--", "simulate"], "does not split its work"),
                        (["launch", "--processes", "2"], "give the command"),
                        (["launch", "--processes", "2", "--", "sweep", "--process-id", "1"], "set by launch")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and match in err, err


@pytest.mark.slow
def test_slurm_variables_with_distributed_flag_match_one_process(env, reference, tmp_path):
    # what srun gives each task, set by hand on one machine: JAX's SLURM detection picks the
    # coordinator (first node of the step, JAX_COORDINATOR_PORT), process count and index
    out = tmp_path / "slurm"
    port = free_port()
    procs = []
    for i in range(2):
        task = dict(env, SLURM_JOB_ID="4242", SLURM_STEP_NODELIST="localhost", SLURM_NTASKS="2", SLURM_PROCID=str(i),
                    SLURM_LOCALID=str(i), SLURM_STEP_NUM_NODES="1", JAX_COORDINATOR_PORT=str(port))
        for var in (distributed.ENV_ADDRESS, distributed.ENV_COUNT, distributed.ENV_ID):
            task.pop(var, None)
        procs.append(subprocess.Popen([sys.executable, "-m", "gelato_jax", *SWEEP, "--realizations", "64", "--distributed",
                                       "--out", str(out)], env=task, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    assert "gelato sweep:" in outs[0][0] and "gelato sweep:" not in outs[1][0]
    _assert_same(sw.load_sweep(str(out)), reference[64])
    assert [json.loads((out / f"chunk-0000{c}.json").read_text())["process"] for c in (0, 1)] == [0, 1]


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
