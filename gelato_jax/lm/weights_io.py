"""Weights and checkpoint I/O for the LM-mode models (docs/model.md §4).

Parameters are stored as ``np.savez`` archives keyed by the pytree path of each ``nnx.Param``,
with a JSON sidecar holding the architecture (:class:`LMConfig`) and the training record.
Every write is atomic: a temporary file in the same directory, then ``os.replace``.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from .model import LMConfig, TransformerLM

__all__ = [
    "WEIGHTS_DIR",
    "state_to_arrays",
    "arrays_into_state",
    "save_model",
    "load_model",
    "load_pair",
    "atomic_write_bytes",
]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace`` (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_savez(path, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def atomic_write_json(path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def state_to_arrays(state) -> dict[str, np.ndarray]:
    """Flatten an nnx state (or any pytree) into ``{path string: numpy array}``."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(state)
    return {jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves}


def arrays_into_state(state, arrays: dict[str, np.ndarray]):
    """Inverse of :func:`state_to_arrays`: same tree structure, leaves taken from ``arrays``.

    Raises:
      ValueError: a key is missing or a shape differs (the file belongs to another architecture).
    """
    leaves, treedef = jax.tree_util.tree_flatten_with_path(state)
    new = []
    for p, v in leaves:
        k = jax.tree_util.keystr(p)
        if k not in arrays:
            raise ValueError(f"weights file lacks parameter {k}")
        a = np.asarray(arrays[k])
        if a.shape != tuple(np.shape(v)):
            raise ValueError(f"parameter {k}: shape {a.shape} in file, model expects {np.shape(v)}")
        new.append(jnp.asarray(a, dtype=v.dtype))
    return jax.tree_util.tree_unflatten(treedef, new)


def save_model(model: TransformerLM, path_stem: str | os.PathLike, meta: dict[str, Any] | None = None):
    """Write ``<stem>.npz`` (float32 parameters) and ``<stem>.json`` (config + ``meta``)."""
    stem = Path(path_stem)
    atomic_savez(stem.with_suffix(".npz"), state_to_arrays(nnx.state(model, nnx.Param)))
    atomic_write_json(stem.with_suffix(".json"), {"config": model.cfg.to_json(), **(meta or {})})


def load_model(path_stem: str | os.PathLike) -> tuple[TransformerLM, dict[str, Any]]:
    """Load a model written by :func:`save_model`; returns ``(model, sidecar dict)``."""
    stem = Path(path_stem)
    meta = json.loads(stem.with_suffix(".json").read_text())
    cfg = LMConfig.from_json(meta["config"])
    model = nnx.eval_shape(lambda: TransformerLM(cfg, rngs=nnx.Rngs(0)))
    with np.load(stem.with_suffix(".npz")) as z:
        arrays = {k: z[k] for k in z.files}
    nnx.update(model, arrays_into_state(nnx.state(model, nnx.Param), arrays))
    return model, meta


def load_pair(weights_dir: str | os.PathLike | None = None) -> tuple[TransformerLM, TransformerLM]:
    """The committed ``(draft, target)`` pair from ``gelato_jax/lm/weights/`` (no download).

    Raises:
      FileNotFoundError: the weights are missing (run ``gelato train-lm``).
    """
    d = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    for name in ("draft", "target"):
        if not (d / f"{name}.npz").exists():
            raise FileNotFoundError(f"{d / (name + '.npz')} not found; run `gelato train-lm --out {d}`")
    draft, _ = load_model(d / "draft")
    target, _ = load_model(d / "target")
    return draft, target
