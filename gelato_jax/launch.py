r"""``gelato launch --processes N -- <gelato command>``: N local processes on one ``jax.distributed`` job.

For tests and a workstation: picks a free local port, starts ``N`` copies of
``python -m gelato_jax <command>`` with ``JAX_COORDINATOR_ADDRESS=127.0.0.1:PORT``,
``JAX_NUM_PROCESSES=N`` and ``JAX_PROCESS_ID=i`` in their environment (the layout
``gelato_jax.distributed`` reads), and waits. Standard output and error are the children's (only
process 0 prints a summary). If a process fails, the others are stopped (``SIGTERM``, then
``SIGKILL`` after a 1 s grace: a process in a ``jax.distributed`` job does not stop on
``SIGTERM``, which JAX's preemption notifier catches and only records; killing it is safe, as
every result file is written whole and renamed into place) and ``launch`` exits with the failed
process's status — a
killed ``sweep`` (``tightness``) leaves only whole chunk (point) files, and rerunning the command (with any ``N``)
resumes it; a killed ``verify`` leaves no report (process 0 writes it only once every process's
results have reached it), and a rerun starts over. On a cluster use the scheduler instead (SLURM ``srun``, the TPU-pod ``--worker=all``
ssh): see docs/distributed.md.

Only commands that split their work over processes can be launched (``LAUNCHABLE``); any other
command would run ``N`` identical copies, so it is refused (exit status 2).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Sequence

from . import xla_cpu
from .cli_inputs import CLIError, positive_int
from .distributed import ENV_ADDRESS, ENV_COUNT, ENV_ID

__all__ = ["LAUNCHABLE", "devices_per_process", "free_port", "launch", "add_parsers"]

#: commands that split their work over the processes of a ``jax.distributed`` job
LAUNCHABLE = ("sweep", "tightness", "verify")
#: SIGTERM to SIGKILL: JAX's preemption notifier catches SIGTERM in a jax.distributed process (measured:
#: a process waiting at a barrier keeps waiting), so a longer grace only lets the survivors compute on
_GRACE_S = 1.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def devices_per_process(processes: int) -> int:
    """The CPU devices each of ``processes`` local processes makes: the machine's cores shared out
    (``xla_cpu.configure`` would otherwise make one per core in every process)."""
    return max(1, xla_cpu.cpu_count() // processes)


def launch(command: Sequence[str], processes: int, *, port: int | None = None, env: dict | None = None,
           python: str | None = None) -> int:
    """Run ``gelato <command>`` as ``processes`` local processes of one ``jax.distributed`` job.

    Returns 0 when every process exits with 0, else the status of the first process that failed
    (the others are stopped). ``port``: the coordinator's port (default: a free one)."""
    return _launch(command, processes, port=port, env=env, python=python)[0]


def _launch(command, processes, *, port=None, env=None, python=None) -> tuple[int, int | None]:
    """``launch``'s work; returns ``(status, index of the process that failed or None)``."""
    command = list(command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise CLIError("gelato launch: give the command to run after --, e.g. gelato launch --processes 2 -- sweep ...")
    if command[0] not in LAUNCHABLE:
        raise CLIError(f"gelato launch: {command[0]!r} does not split its work over processes "
                       f"(launchable: {', '.join(LAUNCHABLE)})")
    for flag in ("--coordinator", "--num-processes", "--process-id", "--distributed"):
        if any(a == flag or a.startswith(flag + "=") for a in command):
            raise CLIError(f"gelato launch: {flag} is set by launch; remove it from the command")
    addr = f"127.0.0.1:{port if port is not None else free_port()}"
    base = dict(os.environ if env is None else env)
    base.setdefault(xla_cpu.ENV_DEVICES, str(devices_per_process(processes)))
    procs: list[subprocess.Popen] = []
    try:
        for i in range(processes):
            child_env = dict(base, **{ENV_ADDRESS: addr, ENV_COUNT: str(processes), ENV_ID: str(i)})
            procs.append(subprocess.Popen([python or sys.executable, "-m", "gelato_jax", *command], env=child_env))
        failed, who = None, None
        while failed is None and any(p.poll() is None for p in procs):
            for i, p in enumerate(procs):
                rc = p.poll()
                if rc is not None and rc != 0:
                    failed, who = rc, i
                    break
            else:
                time.sleep(0.1)
        if failed is None:
            bad = [(p.returncode, i) for i, p in enumerate(procs) if p.returncode != 0]
            failed, who = bad[0] if bad else (0, None)
        if failed != 0:
            _stop(procs)
            # a signal (negative status) is reported the way a shell would (128 + signal)
            return (128 - failed if failed < 0 else failed), who
        return 0, None
    except BaseException:
        _stop(procs)
        raise


def _stop(procs: Sequence[subprocess.Popen]) -> None:
    alive = [p for p in procs if p.poll() is None]
    for p in alive:
        p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + _GRACE_S
    for p in alive:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def cmd_launch(args: argparse.Namespace) -> int:
    rc, who = _launch(args.command, args.processes, port=args.port)
    if rc != 0:
        name = next((a for a in args.command if a != "--"), "")
        if name == "verify":  # process 0 exits with 1 after its report when a claim fails
            why = ("; with 1 from process 0, a claim failed (see its summary) or an error above" if rc == 1 and who == 0 else "")
            print(f"gelato launch: process {who} exited with status {rc}{why}; the others were stopped "
                  "(verify has no resume: a rerun starts over)", file=sys.stderr)
        else:
            print(f"gelato launch: process {who} exited with status {rc}; the others were stopped "
                  "(rerun the same command to resume)", file=sys.stderr)
    return rc


def add_parsers(subparsers) -> None:
    p = subparsers.add_parser(
        "launch", help="run a gelato command as N local processes of one jax.distributed job",
        description="gelato launch --processes N -- sweep --grid V=0.05,0.5 --out DIR: starts N processes with "
                    "a free coordinator port on this machine (see docs/distributed.md for SLURM and TPU pods)")
    p.add_argument("--processes", type=positive_int, required=True, metavar="N", help="number of processes")
    p.add_argument("--port", type=positive_int, default=None, help="coordinator port (default: a free one)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- then the gelato command and its arguments")
    p.set_defaults(func=cmd_launch)
