"""Saving results: ``.npz`` arrays plus a JSON sidecar, both written atomically.

A result is written to a temporary file in the destination folder and moved into place with
``os.replace``, so an interrupted run leaves either the previous file or the new one, never a
truncated one.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from typing import Any, Mapping

import numpy as np

__all__ = ["atomic_write_bytes", "save_npz", "save_json", "jsonable", "check_output_dir", "environment_info", "git_commit"]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_npz(path: str | os.PathLike, arrays: Mapping[str, Any]) -> None:
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic_write_bytes(path, buf.getvalue())


def jsonable(x: Any) -> Any:
    """``x`` as JSON-ready Python values: numpy/JAX scalars and arrays as numbers and lists, dict keys
    as strings, NaN and infinities as ``None`` (JSON has neither)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, float) and not np.isfinite(x):
        return None  # JSON has no NaN/inf
    if isinstance(x, (np.generic,)):
        return jsonable(x.item())
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if hasattr(x, "__array__") and not isinstance(x, (str, bytes)):
        return jsonable(np.asarray(x).tolist())
    return x


def save_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as JSON atomically (NaN/inf become ``null``)."""
    atomic_write_bytes(path, (json.dumps(jsonable(obj), indent=2, sort_keys=True, allow_nan=False) + "\n").encode())


def check_output_dir(path: str | os.PathLike, flag: str = "--out") -> None:
    """Fail early (before any computation) when ``path`` cannot be used as an output folder."""
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{flag} {path!r} exists and is not a directory")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent if not os.path.isdir(path) else path, os.W_OK):
        raise ValueError(f"{flag} {path!r} is not writable")


def git_commit() -> str | None:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(
            ["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment_info() -> dict[str, Any]:
    import jax

    from . import __version__

    return {
        "gelato_jax": __version__,
        "jax": jax.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "backend": jax.default_backend(),
        "devices": len(jax.devices()),
        "x64": bool(jax.config.jax_enable_x64),
        "git_commit": git_commit(),
    }
