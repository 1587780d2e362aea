"""Sweeps as several processes on ``jax.distributed`` (gelato_jax.distributed, gelato launch);
the tightness atlas and verify: tests/test_distributed_reports.py.

Real multi-process runs on this machine: ``gelato launch --processes 2 -- sweep ...`` gives the same
``load_sweep`` arrays as one process (the issue's "done when" command); a process killed mid-run
leaves only whole chunks and one process resumes to bit-identical results; a process that cannot
reach the coordinator, or a coordinator whose peers never come, fails within the connect
timeout with one line and exit status 2.

Cost (this file and tests/test_distributed_reports.py, which pytest-xdist runs side by side):
every child process imports JAX and compiles its programs (about 8 s of CPU for the sweep). The
programs hold no host callback (the Gamma sampler's table is an input), so the persistent
compilation cache of the ``env`` fixture holds them and process 0 of a launch loads what an
earlier process compiled; a process other than 0 compiles its own (JAX writes the cache from
process 0 only, and on CPU the key holds the device id). The one-process references are computed
in one child (one import for both) on as many CPU devices as each process of a two-process
launch has, so that process 0 of the launches loads their program; the tightness and verify
references in the test process, the killed-sweep test runs a smaller program than the default
one (its claim does not need it), the verify test runs only the global checks for real (every configuration not applicable; the real
configuration (a) is under ``-m slow``), the two coordinator-timeout children run at the same
time, and ``gelato launch`` stops the survivors of a killed process within 1 s.
"""

import importlib
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from gelato_jax import distributed, xla_cpu
from gelato_jax.cli import main
from gelato_jax.launch import devices_per_process, free_port

from _multiprocess import env, gelato, gelato_start  # noqa: F401 - env is a fixture

sw = importlib.import_module("gelato_jax.sweep")  # the package exports a function of the same name

SWEEP = ["sweep", "--grid", "V=0.05,0.5", "--rounds", "500", "--quiet"]
# a smaller program for the killed-process test, whose claim does not need the default one (one
# budget, no early exit, full payload; measured: half the CPU of a process running the default
# program, which is compile time)
SMALL = ["--set", "gamma_max=1", "--set", "exit=none", "--set", "payload=full"]
# the CPU devices of each process of `gelato launch --processes 2` on this machine
LAUNCH_DEVICES = {xla_cpu.ENV_DEVICES: str(devices_per_process(2))}




@pytest.fixture(scope="module")
def reference(env, tmp_path_factory):
    """Single-process runs: 64 realizations in chunks of 32 (what two processes choose by default
    for 64: ceil(64 / 2)), and 128 in chunks of 32 of the SMALL program."""
    root = tmp_path_factory.mktemp("one-process")
    argvs = [[*SWEEP, "--realizations", "64", "--chunk", "32", "--out", str(root / "R64")],
             [*SWEEP, *SMALL, "--realizations", "128", "--chunk", "32", "--out", str(root / "R128")]]
    # both runs in one child process: one import; the devices of one process of a two-process
    # launch, so that process 0 of the launches below loads these programs from the cache
    code = f"import sys; from gelato_jax.cli import main; sys.exit(max(main(a) for a in {argvs!r}))"
    r = subprocess.run([sys.executable, "-c", code], env=dict(env, **LAUNCH_DEVICES), capture_output=True, text=True,
                       timeout=400)
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


def test_unreachable_coordinator_fails_within_the_timeout(tmp_path):
    env = dict(os.environ, JAX_ENABLE_X64="1")
    nobody = free_port()  # nothing listens there
    lonely = free_port()  # process 0 listens there; its peer never comes
    while lonely == nobody:
        lonely = free_port()
    cases = ((1, nobody, f"cannot reach the coordinator at 127.0.0.1:{nobody} within 2 s"),
             (0, lonely, "not all 2 processes joined the coordinator"))
    # both started together: the two waits overlap
    t0 = time.monotonic()
    procs = [gelato_start(*SWEEP, "--realizations", 8, "--out", tmp_path / "x", "--coordinator", f"127.0.0.1:{port}",
                          "--num-processes", 2, "--connect-timeout", 2, "--process-id", pid, env=env)
             for pid, port, _ in cases]
    for proc, (pid, _, message) in zip(procs, cases):
        _, err = proc.communicate(timeout=120)
        wall = time.monotonic() - t0
        lines = err.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], (pid, proc.returncode, err[-2000:])
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
        task = dict(env, **LAUNCH_DEVICES, SLURM_JOB_ID="4242", SLURM_STEP_NODELIST="localhost",
                    SLURM_NTASKS="2", SLURM_PROCID=str(i), SLURM_LOCALID=str(i), SLURM_STEP_NUM_NODES="1",
                    JAX_COORDINATOR_PORT=str(port))
        for var in (distributed.ENV_ADDRESS, distributed.ENV_COUNT, distributed.ENV_ID):
            task.pop(var, None)
        # the SMALL program (the claim is the detection, not the program; process 0 loads it from the cache)
        procs.append(subprocess.Popen([sys.executable, "-m", "gelato_jax", *SWEEP, *SMALL, "--realizations", "128",
                                       "--chunk", "32", "--distributed", "--out", str(out)], env=task,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    assert "gelato sweep:" in outs[0][0] and "gelato sweep:" not in outs[1][0]
    _assert_same(sw.load_sweep(str(out)), reference[128])
    assert [json.loads((out / f"chunk-0000{c}.json").read_text())["process"] for c in (0, 1)] == [0, 1]
