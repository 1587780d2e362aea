"""Test configuration: float64 JAX (theory checks need it), hypothesis profiles.

``JAX_ENABLE_X64`` must be set before JAX is imported anywhere, so it is set here at import time.
Profiles: ``ci`` (default, derandomized, few examples) and ``dev`` (more examples): select with
``HYPOTHESIS_PROFILE=dev``.
"""

import os

os.environ.setdefault("JAX_ENABLE_X64", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "ci", max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
