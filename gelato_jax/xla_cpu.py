r"""XLA:CPU settings for the simulator: one CPU device per core, and 512-bit vectors on AVX-512.

Both are ``XLA_FLAGS`` read once, when JAX starts its CPU backend, so ``configure`` must run before
JAX's first computation; the ``gelato`` command calls it first thing. A Python user calls it after
``import gelato_jax`` and before any computation (as ``numpyro.set_host_device_count``)::

    import gelato_jax
    gelato_jax.xla_cpu.configure()        # before the first jax computation
    gelato_jax.simulate(...)              # shards each chunk's realizations over the devices

What they buy (BENCHMARKS.md, issue 14, session 7): XLA splits each fusion of a round over the
cores of one CPU device, and for the round's ≈ 50 small fusions the split and the join cost as
much as they save (GELATO, float32, 2 cores: one device 6.2·10⁶ realization-rounds/s wall, the
same program on one core 5.0·10⁶). With one device per core each device runs its share of the
realizations on its own core (``engine.over_devices``: ``shard_map``, no communication), and
LLVM's 512-bit vectors (``--xla_cpu_prefer_vector_width=512``; XLA prefers 256) halve the
instructions of the round's elementwise loops. Results do not change: every realization draws from
its own stream, and the vector width changes no value (tested: hashes of ``simulate`` in float32
and float64 equal with and without it).

Nothing is changed where the user has set the flag in ``XLA_FLAGS`` already (their value is
kept), where ``GELATO_XLA_CPU=0``, or on a CPU without AVX-512 (the vector width). The device count
is the number of cores this process may run on, or ``GELATO_CPU_DEVICES`` (``gelato launch``
sets it to the cores per process). The flags touch only JAX's CPU client: on a GPU or TPU machine
the accelerator stays the default device.
"""

from __future__ import annotations

import os

__all__ = ["configure", "cpu_count", "has_avx512", "merge_flags", "recommended_flags", "ENV_DEVICES", "ENV_SWITCH"]

#: the number of CPU devices to create (default: the cores this process may run on)
ENV_DEVICES = "GELATO_CPU_DEVICES"
#: "0" leaves ``XLA_FLAGS`` alone
ENV_SWITCH = "GELATO_XLA_CPU"

_DEVICES_FLAG = "--xla_force_host_platform_device_count"
_WIDTH_FLAG = "--xla_cpu_prefer_vector_width"


def cpu_count() -> int:
    """The cores this process may run on (its CPU affinity where the OS reports one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def has_avx512() -> bool:
    """Whether the CPU reports AVX-512F (Linux ``/proc/cpuinfo``; ``False`` where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return "avx512f" in line.split()
    except OSError:
        pass
    return False


def _backend_started() -> bool:
    try:
        from jax._src import xla_bridge
    except ImportError:  # pragma: no cover - jax not installed or reorganised
        return False
    return bool(xla_bridge.backends_are_initialized())


def recommended_flags(devices: int | None = None) -> list[str]:
    """The flags ``configure`` would add (before looking at ``XLA_FLAGS``): ``devices`` CPU devices
    (default: ``GELATO_CPU_DEVICES``, else ``cpu_count()``) and, on AVX-512, 512-bit vectors."""
    if devices is None:
        env = os.environ.get(ENV_DEVICES, "").strip()
        if env:
            try:
                devices = int(env)
            except ValueError:
                raise ValueError(f"{ENV_DEVICES} must be a positive integer, got {env!r}") from None
        else:
            devices = cpu_count()
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise ValueError(f"devices must be a positive integer, got {devices!r}")
    flags = [f"{_DEVICES_FLAG}={devices}"]
    if has_avx512():
        flags.append(f"{_WIDTH_FLAG}=512")
    return flags


def configure(devices: int | None = None, *, strict: bool = True) -> list[str]:
    """Add the recommended XLA:CPU flags to ``XLA_FLAGS``; returns the flags added.

    A flag already present in ``XLA_FLAGS`` is left as the user set it. Must run before JAX's
    first computation: afterwards the flags would have no effect, so ``strict`` raises
    ``RuntimeError`` (``strict=False``: warns and returns ``[]``). ``GELATO_XLA_CPU=0`` disables
    it (returns ``[]``)."""
    if os.environ.get(ENV_SWITCH, "1").strip() == "0":
        return []
    if _backend_started():
        msg = ("gelato_jax.xla_cpu.configure() must run before JAX's first computation "
               "(its XLA_FLAGS are read when the CPU backend starts)")
        if strict:
            raise RuntimeError(msg)
        return []
    current = os.environ.get("XLA_FLAGS", "")
    merged, added = merge_flags(current, recommended_flags(devices))
    if added:
        os.environ["XLA_FLAGS"] = merged
    return added


def merge_flags(current: str, flags: list[str]) -> tuple[str, list[str]]:
    """``current`` (an ``XLA_FLAGS`` string) with those of ``flags`` whose name it does not set
    already (a flag the user set keeps their value): ``(merged string, flags added)``."""
    present = {tok.split("=", 1)[0] for tok in current.split()}
    added = [f for f in flags if f.split("=", 1)[0] not in present]
    return " ".join([current.strip(), *added]).strip(), added

