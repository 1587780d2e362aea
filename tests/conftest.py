"""Test configuration: float64 JAX (theory checks need it), hypothesis profiles.

``JAX_ENABLE_X64`` must be set before JAX is imported anywhere, so it is set here at import time.
Profiles: ``ci`` (default, derandomized, few examples) and ``dev`` (more examples): select with
``HYPOTHESIS_PROFILE=dev``.
"""

import os

os.environ.setdefault("JAX_ENABLE_X64", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

# JAX's persistent compilation cache (gelato_jax.compile_cache), in a folder of this checkout: the
# suite compiles many identical programs — in both xdist workers, and again after each module's
# ``jax.clear_caches()`` below — and a cached one is loaded instead of compiled. GELATO_COMPILE_CACHE=0
# turns it off; the CLI's subprocesses inherit the folder (never the user's ~/.cache).
os.environ.setdefault("GELATO_COMPILE_CACHE", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                           ".pytest_cache", "gelato-xla"))

import gelato_jax  # noqa: E402

gelato_jax.compile_cache.enable()

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "ci", max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


import pytest  # noqa: E402

TINY_LM_CONTEXT, TINY_LM_GAMMA = 16, 4


@pytest.fixture(scope="module")
def pair():
    """A tiny untrained draft/target pair (context 16, up to 4 drafts) for fast LM-mode tests."""
    from flax import nnx

    from gelato_jax.lm.model import LMConfig, TransformerLM
    from gelato_jax.lm.rounds import LMPair

    C, G = TINY_LM_CONTEXT, TINY_LM_GAMMA
    cfg_d = LMConfig(n_layers=1, d_model=16, n_heads=2, max_len=C + G)
    cfg_t = LMConfig(n_layers=1, d_model=32, n_heads=2, max_len=C + G)
    return LMPair.from_models(TransformerLM(cfg_d, rngs=nnx.Rngs(0)), TransformerLM(cfg_t, rngs=nnx.Rngs(1)), C)


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    """Drop JAX's compiled programs after every test module. Each XLA:CPU executable holds its own
    memory mappings; a whole-suite run compiles thousands of programs in one process (measured:
    4,000 mappings after 25 tests, 18,000 after 225) and, near the end of the suite, LLVM crashed
    inside a compile (test_verify; reproduced twice on a clean clone, RSS 5.9 GB, far from the
    memory limit) — consistent with the kernel's ``vm.max_map_count`` (65,530 here). With this
    fixture the whole suite passes."""
    yield
    import gc

    import jax

    jax.clear_caches()
    gc.collect()
