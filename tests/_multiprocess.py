"""Shared pieces of the several-process tests (tests/test_distributed.py,
tests/test_distributed_reports.py): the child processes' environment and the ``gelato`` runner."""

import os
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """float64 children sharing one persistent compilation cache per test module (every program
    written, however fast it compiled)."""
    cache = tmp_path_factory.mktemp("xla-cache")
    return dict(os.environ, JAX_ENABLE_X64="1", JAX_COMPILATION_CACHE_DIR=str(cache),
                JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")


def gelato(*args, env, timeout=400):
    return subprocess.run([sys.executable, "-m", "gelato_jax", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout)


def gelato_start(*args, env):
    """``gelato *args`` started, not waited for (``subprocess.Popen``, text pipes)."""
    return subprocess.Popen([sys.executable, "-m", "gelato_jax", *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
