"""Benchmark of the simulator: JAX ``simulate`` vs the numpy reference vs a pure-Python loop.

All three run the same model (docs/model.md §1–§6, GELATO with mean proxy and leaky bucket on the
default scenario) with their own random number generation included:

* ``jax``: the compiled chunk of ``gelato_jax.simulate`` (``mix32`` generator, gather-free Gamma sampler,
  the round with realizations on the minor axis, ``lax.scan`` over rounds, streaming sums), optionally
  split over several (CPU) devices as ``simulate`` does (``engine.over_devices``), with the XLA:CPU
  flags of the ``gelato`` command (``gelato_jax.xla_cpu``; a flag set in ``XLA_FLAGS`` is kept);
* ``numpy``: ``gelato_jax.reference.simulate`` (PCG64, ``standard_gamma``; vectorized over
  realizations, Python loop over rounds);
* ``python``: ``gelato_jax.reference.python_loop_simulate`` (``random`` module, scalar loops).

Every measurement runs in a fresh subprocess, so its peak resident memory (``ru_maxrss``) is
its own; the increment over the process's memory before the run is reported too (the JAX one
includes XLA's buffers; numpy's ``tracemalloc`` peak is reported as well). The numpy and Python
baselines may run fewer rounds/realizations than requested: their cost is linear in rounds, so
rates are extrapolated per realization-round (the report says which sizes actually ran).

Command: ``gelato bench`` (``--json``, ``--out DIR``); ``bench/bench_core.py`` is the same.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

__all__ = ["measure", "run_benchmark", "format_report", "add_parsers"]


def _rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024.0 if sys.platform != "darwin" else r / 2**20


def _proc_status(key: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (Linux ``clear_refs`` 5), so that the peak of the run
    alone can be read from ``VmHWM`` afterwards."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _run_peak(fn):
    """Run ``fn()``; return (result, seconds, current RSS before MB, peak RSS during MB or None)."""
    global _LAST_CPU
    before = _proc_status("VmRSS")
    ok = _reset_peak()
    c0 = time.process_time()
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    _LAST_CPU = time.process_time() - c0
    peak = _proc_status("VmHWM") if ok else None
    return out, dt, before, peak


_LAST_CPU = float("nan")


def _timed(fn, repeats: int):
    """``fn()`` once for its memory (``_run_peak``: the first execution, which also pays one-time
    costs), then ``repeats`` timed runs: ``(result, median seconds, median CPU seconds, extra)``
    with every run's times in ``extra``. The machines here are shared and noisy: the median of
    several runs, not one run, is the figure."""
    import statistics

    out, first, rss_before, peak = _run_peak(fn)
    first_cpu = _LAST_CPU
    walls, cpus = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    extra = {"first_run_s": first, "first_run_cpu_s": first_cpu, "run_s_all": walls, "cpu_s_all": cpus,
             "rss_before": rss_before, "run_peak": peak}
    return out, statistics.median(walls), statistics.median(cpus), extra


def _model(V: float = 1.0):
    from .policies import Gelato
    from .scenario import Scenario

    return Scenario(), Gelato(V=V)


def _measure_jax(R: int, T: int, dtype: str, devices: int, seed: int, repeats: int = 3) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from . import engine
    from . import simulator as sim

    scen, pol = _model()
    dt = jnp.dtype(dtype)
    s, p, dt = engine.prepare(scen, pol, dt)
    root = jax.random.key(seed)
    n_dev = len(jax.devices())
    if devices > n_dev:
        raise ValueError(f"devices must be <= {n_dev} visible devices, got {devices}")
    pad = -(-R // devices) * devices
    idx = jnp.arange(pad, dtype=jnp.uint32)
    mesh = engine.device_mesh(devices)  # as simulate: each device runs its share of the realizations
    if mesh is not None:
        idx = jax.device_put(idx, engine.realization_sharding(mesh))
    t0 = time.perf_counter()
    aux = engine.precompute(s, p)
    table = engine.entropy_table(s, dt)
    compiled = sim._simulate_chunk.lower(s, p, root, idx, aux, table, rounds=T, ar=False, dtype=dt, mesh=mesh).compile()
    t_compile = time.perf_counter() - t0
    out, t_run, cpu, extra = _timed(lambda: jax.block_until_ready(compiled(s, p, root, idx, aux, table)), repeats)
    thr = np.asarray(out["throughput"])[:R]
    return _record("jax", str(dt), devices, R, T, compile_s=t_compile, run_s=t_run, cpu_s=cpu, throughput=thr, **extra)


def _record(impl, dtype, devices, R, T, *, compile_s, run_s, cpu_s, rss_before, run_peak, throughput, **extra):
    """One benchmark record (rates per realization-round, wall and per CPU-second)."""
    import numpy as np

    return {
        "impl": impl,
        "dtype": dtype,
        "devices": devices,
        "realizations": R,
        "rounds": T,
        "compile_s": compile_s,
        "run_s": run_s,
        "rate": R * T / run_s,
        "cpu_s": cpu_s,
        "rate_per_cpu_s": R * T / cpu_s,
        "peak_rss_mb": _rss_mb(),
        "run_rss_before_mb": rss_before,
        "run_peak_rss_mb": run_peak,
        "xla_flags": os.environ.get("XLA_FLAGS", "") if impl == "jax" else None,
        **extra,
        "mean_throughput": float(np.mean(throughput)),
    }


def _measure_numpy(R: int, T: int, dtype: str, seed: int, repeats: int = 3) -> dict[str, Any]:
    import tracemalloc

    import numpy as np

    from . import reference

    scen, pol = _model()
    reference.params(scen, pol)  # scenario constants (quadrature) outside the timing
    out, t_run, cpu, extra = _timed(
        lambda: reference.simulate(scen, pol, seed=seed, realizations=R, rounds=T, dtype=np.dtype(dtype)), repeats)
    # a second, shorter run under tracemalloc for the peak of numpy allocations (it slows numpy)
    tracemalloc.start()
    reference.simulate(scen, pol, seed=seed, realizations=R, rounds=min(T, 20), dtype=np.dtype(dtype))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return _record("numpy", dtype, 1, R, T, compile_s=0.0, run_s=t_run, cpu_s=cpu, throughput=out["throughput"],
                   tracemalloc_peak_mb=peak / 2**20, **extra)


def _measure_python(R: int, T: int, seed: int) -> dict[str, Any]:
    from . import reference

    scen, pol = _model()
    reference.params(scen, pol)
    c0 = time.process_time()
    t0 = time.perf_counter()
    out = reference.python_loop_simulate(scen, pol, seed=seed, realizations=R, rounds=T)
    t_run = time.perf_counter() - t0
    cpu = time.process_time() - c0
    return _record(
        "python", "float64", 1, R, T, compile_s=0.0, run_s=t_run, cpu_s=cpu, rss_before=None,
        run_peak=None, throughput=out["throughput"],
    )


def measure(impl: str, R: int, T: int, dtype: str = "float32", devices: int = 1, seed: int = 0,
            repeats: int = 3) -> dict[str, Any]:
    """One measurement in this process (``impl``: jax, numpy or python; jax and numpy: the median
    of ``repeats`` timed runs after a first one)."""
    if impl == "jax":
        return _measure_jax(R, T, dtype, devices, seed, repeats)
    if impl == "numpy":
        return _measure_numpy(R, T, dtype, seed, repeats)
    if impl == "python":
        return _measure_python(R, T, seed)
    raise ValueError(f"impl must be one of ['jax', 'numpy', 'python'], got {impl!r}")


def _subprocess(impl: str, R: int, T: int, dtype: str, devices: int, seed: int, timeout: float | None,
                repeats: int = 3) -> dict[str, Any]:
    env = dict(os.environ)
    # float64 needs x64; a float32 JAX run goes without it, or JAX's default float (float64 under
    # x64) would put the policy's precomputed constants and the proxy's budget grid in float64
    env["JAX_ENABLE_X64"] = "0" if (impl == "jax" and dtype == "float32") else "1"
    if impl == "jax":  # the flags of `gelato` (xla_cpu.configure) with `devices` CPU devices; the user's others kept
        from . import xla_cpu

        user = " ".join(f for f in env.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f)
        env["XLA_FLAGS"] = xla_cpu.merge_flags(user, xla_cpu.recommended_flags(max(devices, 1)))[0]
    code = (
        "import json,sys; from gelato_jax.bench import measure; "
        f"print('BENCH' + json.dumps(measure({impl!r}, {R}, {T}, {dtype!r}, {devices}, {seed}, {repeats})))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH"):
            return json.loads(line[5:])
    raise RuntimeError(f"benchmark worker {impl} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")


def run_benchmark(
    *,
    realizations: int = 4096,
    rounds: int = 10_000,
    numpy_rounds: int = 200,
    python_realizations: int = 4,
    python_rounds: int = 2000,
    dtypes=("float32", "float64"),
    devices=(1, 2),
    seed: int = 0,
    repeats: int = 3,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Run every measurement (each in a subprocess; JAX and numpy: the median of ``repeats``
    timed runs after a first, untimed-for-speed one) and return the results and the ratios."""
    from tqdm.auto import tqdm

    from .io import environment_info

    jobs = []
    for dt in dtypes:
        for d in devices:
            jobs.append(("jax", realizations, rounds, dt, d))
        jobs.append(("numpy", realizations, numpy_rounds, dt, 1))
    jobs.append(("python", python_realizations, python_rounds, "float64", 1))
    results = []
    with tqdm(jobs, desc="bench", unit="run", disable=(not progress) if progress is not None else None) as bar:
        for impl, R, T, dt, d in bar:
            bar.set_postfix_str(f"{impl} {dt} x{d}")
            results.append(_subprocess(impl, R, T, dt, d, seed, None, repeats))
    by = {(r["impl"], r["dtype"], r["devices"]): r for r in results}
    ratios = {}
    for key, label in (("rate", "wall"), ("rate_per_cpu_s", "cpu")):
        py = by[("python", "float64", 1)][key]
        for dt in dtypes:
            npr = by[("numpy", dt, 1)][key]
            for d in devices:
                j = by[("jax", dt, d)][key]
                ratios[f"{label}: jax_{dt}_{d}dev/numpy_{dt}"] = j / npr
                ratios[f"{label}: jax_{dt}_{d}dev/python"] = j / py
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "results": results,
        "ratios": ratios,
        "cpu_count": os.cpu_count(),
        "load_average": load,
        "environment": environment_info(),
    }


def run_scaling(
    *, sizes=(100, 1000, 10_000, 100_000), rounds: int = 200, dtype: str = "float32", seed: int = 0,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Rate and run memory of the JAX simulator vs the number of realizations (one chunk each)."""
    from tqdm.auto import tqdm

    results = []
    for R in tqdm(sizes, desc="scaling", unit="run", disable=(not progress) if progress is not None else None):
        results.append(_subprocess("jax", R, rounds, dtype, 1, seed, None))
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {"results": results, "ratios": {}, "cpu_count": os.cpu_count(), "load_average": load}


def format_report(rep: dict[str, Any]) -> str:
    lines = [
        f"{'impl':<7}{'dtype':<9}{'dev':>4}{'R':>8}{'T':>7}{'rate (r·rounds/s)':>19}{'per CPU-s':>11}{'compile s':>11}{'run s':>9}"
        f"{'peak RSS MB':>13}{'run: RSS before → peak MB':>28}",
    ]
    for r in rep["results"]:
        b, pk = r.get("run_rss_before_mb"), r.get("run_peak_rss_mb")
        run_mem = f"{b:.0f} → {pk:.0f}" if b is not None and pk is not None else "n/a"
        lines.append(
            f"{r['impl']:<7}{r['dtype']:<9}{r['devices']:>4}{r['realizations']:>8}{r['rounds']:>7}{r['rate']:>19.3e}"
            f"{r.get('rate_per_cpu_s', float('nan')):>11.3e}"
            f"{r['compile_s']:>11.2f}{r['run_s']:>9.2f}{r['peak_rss_mb']:>13.0f}{run_mem:>28}"
        )
    if rep["ratios"]:
        lines.append("ratios (wall = per second of elapsed time; cpu = per CPU-second of the process):")
        lines += [f"  {k} = {v:.3g}" for k, v in rep["ratios"].items()]
    lines.append(f"cpus {rep['cpu_count']}, load average {rep['load_average']}")
    return "\n".join(lines)


def cmd_bench(args: argparse.Namespace) -> int:
    from . import io as gio

    if args.scaling:  # the scaling run reads --rounds, one --dtype, --seed: refuse the rest (not ignore them)
        given = [flag for attr, flag in _NOT_SCALING if getattr(args, attr) is not None]
        if given:
            raise ValueError(f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to bench --scaling "
                             "(it reads --rounds, --dtype, --seed, --out, --json, --quiet)")
        if args.dtype is not None and "," in str(args.dtype):
            raise ValueError(f"bench --scaling runs one dtype, got --dtype {args.dtype}")
    devices = tuple(int(x) for x in str(args.devices or _DEFAULT_DEVICES).split(","))
    dtypes = tuple(str(args.dtype or (_DEFAULT_DTYPES if not args.scaling else "float32")).split(","))
    for d in dtypes:
        if d not in ("float32", "float64"):
            raise ValueError(f"--dtype must be float32, float64 or both (comma-separated), got {d!r}")
    if any(d < 1 for d in devices):
        raise ValueError(f"--devices must be positive integers, got {args.devices!r}")
    if args.scaling:
        sizes = tuple(int(x) for x in str(args.scaling).split(","))
        rep = run_scaling(sizes=sizes, rounds=args.rounds, dtype=dtypes[0], seed=args.seed,
                          progress=False if args.quiet else None)
        rep["command"] = " ".join(sys.argv)
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            gio.save_json(os.path.join(args.out, "scaling.json"), rep)
        print(json.dumps(gio.jsonable(rep), indent=2) if args.json else format_report(rep))
        return 0
    rep = run_benchmark(
        realizations=args.realizations or 4096,
        rounds=args.rounds,
        numpy_rounds=args.numpy_rounds or 200,
        python_realizations=args.python_realizations or 4,
        python_rounds=args.python_rounds or 2000,
        dtypes=dtypes,
        devices=devices,
        seed=args.seed,
        repeats=args.repeats or 3,
        progress=False if args.quiet else None,
    )
    rep["command"] = " ".join(sys.argv)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        gio.save_json(os.path.join(args.out, "bench.json"), rep)
    print(json.dumps(gio.jsonable(rep), indent=2) if args.json else format_report(rep))
    return 0


_DEFAULT_DTYPES, _DEFAULT_DEVICES = "float32,float64", "1,2"
# options of the benchmark that bench --scaling does not read (their defaults: None = not given)
_NOT_SCALING = (("realizations", "--realizations"), ("numpy_rounds", "--numpy-rounds"),
                ("python_realizations", "--python-realizations"), ("python_rounds", "--python-rounds"),
                ("devices", "--devices"), ("repeats", "--repeats"))


def add_parsers(subparsers) -> None:
    from .cli_inputs import positive_int

    p = subparsers.add_parser("bench", help="benchmark the JAX simulator against the numpy reference and a Python loop")
    p.add_argument("--realizations", type=positive_int, default=None, help="default 4096")
    p.add_argument("--rounds", type=positive_int, default=10_000, help="rounds of the JAX runs")
    p.add_argument("--numpy-rounds", type=positive_int, default=None, help="rounds of the numpy runs (rate per round; default 200)")
    p.add_argument("--python-realizations", type=positive_int, default=None, help="default 4")
    p.add_argument("--python-rounds", type=positive_int, default=None, help="default 2000")
    p.add_argument("--dtype", default=None, help="float32, float64 or both, comma-separated (default both; --scaling: one, default float32)")
    p.add_argument("--devices", default=None, help="CPU device counts for the JAX runs, comma-separated (default 1,2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=positive_int, default=None,
                   help="timed runs of each JAX and numpy measurement after a first one; the median is reported (default 3)")
    p.add_argument("--scaling", metavar="R1,R2,...", help="instead: JAX rate and memory vs realizations (--rounds each; "
                   "refuses the other benchmark's options)")
    p.add_argument("--out", metavar="DIR", help="save bench.json here")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_bench)
