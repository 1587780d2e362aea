r"""Several processes on ``jax.distributed``: initialisation, agreement, barrier, all-gather.

Used by ``gelato sweep``, ``gelato tightness`` (``proofs_check.atlas``: each process runs the
grid points it owns, process 0 merges the point files) and ``gelato verify``
(``proofs_check.run.run_verify``: each process runs the configurations and global checks it
owns, the results go to every process through the coordinator, process 0 writes the report). A sweep runs as ``N`` processes (one per host, or several on one machine) that share one results
folder. Each process computes only the chunks it owns on its own devices and writes them with
the usual atomic chunk files and sidecars; process 0 writes the manifest and, after a barrier,
the summary (``gelato_jax.sweep``). Realization ``r`` draws from its own key
(``fold_in(key(seed), r)``), so the arrays are bit-identical for any process count.

Where the process layout comes from, first match wins:

1. ``--coordinator HOST:PORT --num-processes N --process-id I`` on the command line;
2. the environment: ``JAX_COORDINATOR_ADDRESS`` (read by ``jax.distributed.initialize`` itself),
   ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` (read here: JAX does not read them);
   ``gelato launch`` sets these three;
3. ``--distributed`` with none of the above: ``jax.distributed.initialize()`` detects the cluster
   (SLURM: ``SLURM_JOB_ID``/``SLURM_NTASKS``/``SLURM_PROCID``...; Cloud TPU pods: the TPU
   metadata; Open MPI: ``OMPI_*``); see :func:`detect_cluster`.

Connect timeout: ``jax.distributed.initialize`` aborts the whole interpreter (a C++ ``LOG(FATAL)``
with a long gRPC trace) when the coordinator cannot be reached, and with the default 300 s
timeout. Here a process other than 0 first probes ``HOST:PORT`` over TCP until
``connect_timeout`` expires and raises ``ValueError`` with one line naming the address; the
registration that follows runs under a watchdog that prints one line and exits with status 2
if not all ``N`` processes have joined by the deadline (measured: both cases end within the
timeout plus the interpreter start, no hang).

CPU collectives go over gloo (``jax_cpu_collectives_implementation = "gloo"``), so code that
does use cross-process collectives on CPU (``multihost_utils``) works; the sweep itself needs
none (each process owns whole chunks).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import sys
import threading
import time
from typing import Any

__all__ = [
    "Layout",
    "add_args",
    "layout_from_args",
    "detect_cluster",
    "initialize",
    "initialize_from_args",
    "is_initialized",
    "process_index",
    "process_count",
    "share",
    "barrier",
    "gather",
    "owned",
    "chunk_written",
    "ENV_ADDRESS",
    "ENV_COUNT",
    "ENV_ID",
]

ENV_ADDRESS = "JAX_COORDINATOR_ADDRESS"
ENV_COUNT = "JAX_NUM_PROCESSES"
ENV_ID = "JAX_PROCESS_ID"
#: test hook: ``"I:K"`` makes process ``I`` SIGKILL itself right after writing its ``K``-th chunk
#: (a sweep's chunk file, a tightness atlas's point file, or one of verify's units computed)
ENV_FAULT = "GELATO_FAULT_KILL_AFTER_CHUNKS"

DEFAULT_CONNECT_TIMEOUT_S = 120
#: how long a barrier or an agreement waits for the other processes (they may still be computing
#: their chunks); a process that died is noticed by JAX's heartbeat (100 s) or by the launcher
WAIT_TIMEOUT_S = 7 * 24 * 3600


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where this process sits: ``coordinator`` (``HOST:PORT``, ``None`` = auto-detect),
    ``num_processes`` and ``process_id`` (``None`` = auto-detect), the connect timeout in
    seconds, and where the layout came from (``source``: command line, environment, auto-detect)."""

    coordinator: str | None
    num_processes: int | None
    process_id: int | None
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT_S
    source: str = ""


# ----------------------------------------------------------------------------- command line
def add_args(p: argparse.ArgumentParser) -> None:
    """``--coordinator HOST:PORT``, ``--num-processes N``, ``--process-id I``, ``--connect-timeout S``
    (a command that also wants auto-detection adds its own ``--distributed`` flag)."""
    from .cli_inputs import nonneg_int, positive_int

    g = p.add_argument_group("several processes (jax.distributed)")
    g.add_argument("--coordinator", metavar="HOST:PORT", default=None,
                   help=f"address of process 0's coordinator (default: ${ENV_ADDRESS})")
    g.add_argument("--num-processes", type=positive_int, default=None, metavar="N",
                   help=f"number of processes (default: ${ENV_COUNT})")
    g.add_argument("--process-id", type=nonneg_int, default=None, metavar="I",
                   help=f"this process, 0..N-1 (default: ${ENV_ID})")
    g.add_argument("--connect-timeout", type=positive_int, default=None, metavar="S",
                   help=f"seconds to reach the coordinator and for all processes to join (default {DEFAULT_CONNECT_TIMEOUT_S})")


def _parse_address(text: str) -> tuple[str, int]:
    host, sep, port = str(text).strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host:
        raise ValueError(f"--coordinator expects HOST:PORT, got {text!r}")
    try:
        p = int(port)
    except ValueError:
        raise ValueError(f"--coordinator expects HOST:PORT with a numeric port, got {text!r}") from None
    if not 1 <= p <= 65535:
        raise ValueError(f"--coordinator port must be in 1..65535, got {p}")
    return host, p


def _env_int(name: str, lo: int):
    text = os.environ.get(name)
    if text is None or text.strip() == "":
        return None
    try:
        v = int(text)
    except ValueError:
        raise ValueError(f"${name} must be an integer >= {lo}, got {text!r}") from None
    if v < lo:
        raise ValueError(f"${name} must be an integer >= {lo}, got {v}")
    return v


def layout_from_args(args: argparse.Namespace) -> Layout | None:
    """The process layout asked for by ``args`` and the environment, or ``None`` for a plain
    single-process run. Raises ``ValueError`` (one line) for an incomplete or inconsistent layout."""
    timeout = getattr(args, "connect_timeout", None) or DEFAULT_CONNECT_TIMEOUT_S
    flags = {k: getattr(args, k, None) for k in ("coordinator", "num_processes", "process_id")}
    if any(v is not None for v in flags.values()):
        lay = Layout(flags["coordinator"] or os.environ.get(ENV_ADDRESS) or None,
                     flags["num_processes"] if flags["num_processes"] is not None else _env_int(ENV_COUNT, 1),
                     flags["process_id"] if flags["process_id"] is not None else _env_int(ENV_ID, 0),
                     timeout, "command line")
    elif os.environ.get(ENV_COUNT) or os.environ.get(ENV_ID):
        lay = Layout(os.environ.get(ENV_ADDRESS) or None, _env_int(ENV_COUNT, 1), _env_int(ENV_ID, 0), timeout,
                     "environment")
    elif getattr(args, "distributed", False):
        lay = Layout(os.environ.get(ENV_ADDRESS) or None, None, None, timeout, "auto-detect")
    else:
        if getattr(args, "connect_timeout", None) is not None:  # nothing to connect to: not silently ignored
            raise ValueError("--connect-timeout applies to several processes only (--coordinator/--num-processes/"
                             f"--process-id, ${ENV_COUNT}/${ENV_ID}, --distributed or gelato launch)")
        return None
    if lay.source == "auto-detect" and lay.coordinator is None and detect_cluster() is None:
        raise ValueError("--distributed: no cluster detected (SLURM, Cloud TPU, Open MPI); give --coordinator, "
                         "--num-processes and --process-id, or use gelato launch on one machine")
    if lay.source != "auto-detect":
        missing = [flag for flag, v in (("--coordinator", lay.coordinator), ("--num-processes", lay.num_processes),
                                        ("--process-id", lay.process_id)) if v is None]
        if missing and detect_cluster() is None:
            raise ValueError(f"several processes need --coordinator, --num-processes and --process-id (or ${ENV_ADDRESS}, "
                             f"${ENV_COUNT}, ${ENV_ID}); missing: {', '.join(missing)}")
    if lay.coordinator is not None:
        _parse_address(lay.coordinator)
    if lay.num_processes is not None and lay.process_id is not None and lay.process_id >= lay.num_processes:
        raise ValueError(f"--process-id must be in 0..{lay.num_processes - 1} (--num-processes {lay.num_processes}), "
                         f"got {lay.process_id}")
    return lay


def detect_cluster() -> str | None:
    """The cluster environment ``jax.distributed.initialize()`` would detect here (``"slurm"``,
    ``"tpu"``/``"gce_tpu"``/``"gke_tpu"``, ``"ompi"``, ...) or ``None``. Uses JAX's own detectors."""
    try:
        from jax._src import clusters
    except ImportError:  # pragma: no cover - private module moved
        return None
    for env in getattr(clusters.ClusterEnv, "_cluster_types", ()):
        try:
            if not getattr(env, "opt_in_only_method", False) and env.is_env_present():
                return getattr(env, "name", env.__name__)
        except Exception:  # a detector that probes a metadata server may fail off-cluster
            continue
    return None


# ----------------------------------------------------------------------------- initialisation
def _probe(host: str, port: int, deadline: float) -> str | None:
    """Retry a TCP connection to ``host:port`` until ``deadline``; ``None`` on success, else the
    last error (process 0 may start after the others)."""
    err = "timed out"
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return err
        try:
            with socket.create_connection((host, port), timeout=max(0.1, min(2.0, left))):
                return None
        except OSError as exc:
            err = exc.strerror or type(exc).__name__
        time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", port))
        except OSError:
            return False
    return True


def is_initialized() -> bool:
    from jax._src import distributed as _d

    return _d.global_state.client is not None


def initialize(layout: Layout) -> None:
    """Join the ``jax.distributed`` job described by ``layout`` (idempotent).

    Raises ``ValueError`` (one line) if the coordinator cannot be reached within
    ``layout.connect_timeout`` seconds (processes other than 0) or process 0's port is taken;
    if the coordinator is reachable but not every process joins in time, prints one line on
    stderr and exits with status 2 (JAX would otherwise abort the interpreter with a gRPC trace)."""
    import jax

    if is_initialized():
        return
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    timeout = int(layout.connect_timeout)
    addr, n, pid = layout.coordinator, layout.num_processes, layout.process_id
    where = f"process {pid if pid is not None else '?'} of {n if n is not None else '?'}"
    deadline = time.monotonic() + timeout
    if addr is not None and pid is not None:
        host, port = _parse_address(addr)
        if pid == 0:
            if not _port_free(port):
                raise ValueError(f"coordinator port {port} is in use on this host ({where}); choose another --coordinator port")
        else:
            err = _probe(host, port, deadline)
            if err is not None:
                raise ValueError(f"cannot reach the coordinator at {addr} within {timeout} s ({where}: {err}); "
                                 "is process 0 running, and are the address and port right?")

    def give_up():
        print(f"gelato: error: not all {n if n is not None else 'the'} processes joined the coordinator at "
              f"{addr or '(auto-detected)'} within {timeout} s ({where}); start every process with the same "
              "--coordinator and --num-processes, each with its own --process-id", file=sys.stderr, flush=True)
        os._exit(2)

    left = max(1.0, deadline - time.monotonic())
    watchdog = threading.Timer(left, give_up)
    watchdog.daemon = True
    watchdog.start()
    try:
        # JAX's own deadline is later than the watchdog's, so the one-line message wins
        jax.distributed.initialize(coordinator_address=addr, num_processes=n, process_id=pid,
                                   initialization_timeout=int(left) + 30)
    finally:
        watchdog.cancel()


def initialize_from_args(args: argparse.Namespace) -> Layout | None:
    """``initialize(layout_from_args(args))`` when a layout is asked for; returns the layout."""
    lay = layout_from_args(args)
    if lay is not None and lay.num_processes != 1:
        initialize(lay)
    return lay


def process_index() -> int:
    import jax

    return jax.process_index()


def process_count() -> int:
    import jax

    return jax.process_count()


# ----------------------------------------------------------------------------- coordination
_counter = {"share": 0, "barrier": 0, "gather": 0}


def _client():
    from jax._src import distributed as _d

    return _d.global_state.client


def share(value: Any, name: str = "value") -> Any:
    """Process 0's ``value`` on every process (JSON through the coordinator's key-value store).

    Every process must call it in the same order (keys are numbered per call). With one process
    it returns ``value`` unchanged."""
    if process_count() == 1:
        return value
    _counter["share"] += 1
    key = f"gelato/share/{_counter['share']}/{name}"
    client = _client()
    if process_index() == 0:
        client.key_value_set(key, json.dumps(value))
        return value
    return json.loads(client.blocking_key_value_get(key, WAIT_TIMEOUT_S * 1000))


def barrier(name: str = "barrier", timeout_s: float = WAIT_TIMEOUT_S) -> None:
    """Wait until every process reaches the same barrier (no-op with one process)."""
    if process_count() == 1:
        return
    _counter["barrier"] += 1
    _client().wait_at_barrier(f"gelato/{name}/{_counter['barrier']}", int(timeout_s * 1000))


def gather(mine: dict[int, Any], name: str = "gather") -> dict[int, Any]:
    """Every process's ``mine`` (``{index: picklable value}``, disjoint indices) merged, on every
    process (an all-gather of pickles through the coordinator's key-value store; no shared file
    system). Blocks until every process has called it; every process must call it in the same
    order. With one process it returns a copy of ``mine``."""
    import pickle

    if process_count() == 1:
        return dict(mine)
    _counter["gather"] += 1
    base = f"gelato/gather/{_counter['gather']}/{name}"
    client = _client()
    me = process_index()
    client.key_value_set_bytes(f"{base}/{me}", pickle.dumps(dict(mine), protocol=pickle.HIGHEST_PROTOCOL))
    out: dict[int, Any] = {}
    for p in range(process_count()):
        part = dict(mine) if p == me else pickle.loads(client.blocking_key_value_get_bytes(f"{base}/{p}", WAIT_TIMEOUT_S * 1000))
        clash = set(out) & set(part)
        if clash:
            raise RuntimeError(f"distributed.gather({name!r}): index {min(clash)} came from two processes")
        out.update(part)
    return out


def owned(todo: list[int]) -> list[int]:
    """The items of ``todo`` (process 0's list, see :func:`share`) this process computes:
    every ``N``-th, starting at its index (round-robin, so a resumed run is balanced too)."""
    n, i = process_count(), process_index()
    return list(todo)[i::n]


_written = [0]


def chunk_written() -> None:
    """Called after a process writes a chunk (or an atlas point file, or finishes one of verify's
    units). Fault injection for the tests: with
    ``GELATO_FAULT_KILL_AFTER_CHUNKS=I:K`` process ``I`` kills itself (SIGKILL, no cleanup) right
    after its ``K``-th chunk, as a crash or a preempted host would."""
    _written[0] += 1
    spec = os.environ.get(ENV_FAULT)
    if not spec:
        return
    who, _, k = spec.partition(":")
    if int(who) == process_index() and _written[0] >= int(k or 1):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
