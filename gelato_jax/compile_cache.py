r"""JAX's persistent compilation cache for gelato-jax programs.

Most of a short run is XLA compilation (a default ``simulate`` program: ≈ 2.5 s to compile, a few
ms to run 64 × 100 rounds), and every new process compiles again. With the persistent cache a
compiled program is written to disk and a later process — the next ``gelato`` command, the
second process of ``gelato launch``, the next test module — loads it instead. The simulator's
programs can be cached because they hold no host callback (``engine.entropy_table`` builds the
Gamma sampler's table on the host and passes it in; JAX refuses to cache programs with
callbacks). Results do not change: the cache key covers the program, the compile options, the
XLA flags and the JAX/jaxlib versions, and a cached executable is the compiled one.

The ``gelato`` command calls ``enable()`` first thing; a Python user calls it once, before the
first computation that should be cached::

    import gelato_jax
    gelato_jax.compile_cache.enable()     # ~/.cache/gelato-jax/xla (or $GELATO_COMPILE_CACHE)

The folder is ``$GELATO_COMPILE_CACHE`` where set, else ``$XDG_CACHE_HOME/gelato-jax/xla``, else
``~/.cache/gelato-jax/xla``. ``GELATO_COMPILE_CACHE=0`` turns it off; a cache folder the user gave
JAX already (``JAX_COMPILATION_CACHE_DIR`` / ``jax_compilation_cache_dir``) is kept. Only programs
that took at least ``min_compile_s`` to compile are written (JAX's rule; default 0.5 s).
"""

from __future__ import annotations

import os

__all__ = ["enable", "default_path", "ENV"]

#: folder of the cache, or "0" to leave it off
ENV = "GELATO_COMPILE_CACHE"


def default_path() -> str | None:
    """The folder ``enable()`` uses: ``$GELATO_COMPILE_CACHE``, else ``$XDG_CACHE_HOME/gelato-jax/xla``,
    else ``~/.cache/gelato-jax/xla``; ``None`` where ``GELATO_COMPILE_CACHE=0``."""
    env = os.environ.get(ENV, "").strip()
    if env == "0":
        return None
    if env:
        return os.path.abspath(os.path.expanduser(env))
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "gelato-jax", "xla")


def enable(path: str | None = None, *, min_compile_s: float = 0.5) -> str | None:
    """Turn on JAX's persistent compilation cache in ``path`` (default ``default_path()``); returns
    the folder in use, or ``None`` where it stays off (``GELATO_COMPILE_CACHE=0``, or a folder that
    cannot be created: the run then compiles as usual). A cache folder already given to JAX is kept
    and returned. Raises ``ValueError`` for a negative ``min_compile_s``."""
    import jax

    if not (min_compile_s >= 0):
        raise ValueError(f"min_compile_s must be >= 0, got {min_compile_s!r}")
    current = jax.config.jax_compilation_cache_dir
    if current:
        return current
    path = default_path() if path is None else os.path.abspath(os.path.expanduser(path))
    if path is None:
        return None
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_s))
    try:  # JAX decides once, at its first compilation, whether the cache is used: decide again
        from jax._src import compilation_cache

        compilation_cache.reset_cache()
    except (ImportError, AttributeError):  # pragma: no cover - JAX reorganised: effective from a fresh process
        pass
    return path
