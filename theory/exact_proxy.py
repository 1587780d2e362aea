"""Moved: the exact proxy is runtime JAX code and lives in ``gelato_jax.exact_proxy``.

This alias keeps ``from theory import exact_proxy`` working for existing scripts; new code imports
``gelato_jax.exact_proxy``.
"""

from gelato_jax.exact_proxy import *  # noqa: F401,F403
from gelato_jax.exact_proxy import __all__  # noqa: F401
