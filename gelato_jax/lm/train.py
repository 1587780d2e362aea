"""Training of the LM-mode byte models with optax (docs/model.md §4).

Corpus: the top-level ``*.py`` files of the running interpreter's standard library
(``sysconfig.get_paths()["stdlib"]``), sorted by name; file ``i`` goes to validation when
``i % 10 == 9``, to training otherwise.  Batches are windows of ``seq_len + 1`` bytes at offsets
drawn from ``numpy.random.default_rng([seed, step])``, so a resumed run sees exactly the batches
an uninterrupted one would.  Checkpoints (parameters + optimizer state + step) are written
atomically every ``ckpt_every`` steps; ``train`` resumes from the latest one.
"""

from __future__ import annotations

import glob
import hashlib
import os
import platform
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from .model import DRAFT_CONFIG, TARGET_CONFIG, LMConfig, TransformerLM, count_params
from .weights_io import (
    WEIGHTS_DIR,
    arrays_into_state,
    atomic_savez,
    save_model,
    state_to_arrays,
)

__all__ = ["load_corpus", "train", "CONFIGS", "eval_loss"]

CONFIGS = {"target": TARGET_CONFIG, "draft": DRAFT_CONFIG}


def load_corpus(stdlib_dir: str | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """``(train bytes, validation bytes, info)`` from the standard-library sources.

    Files are joined with a ``\\n`` separator; ``info`` records the directory, file count and
    SHA-256 of both splits (the corpus depends on the Python version).
    """
    d = stdlib_dir or sysconfig.get_paths()["stdlib"]
    files = sorted(glob.glob(os.path.join(d, "*.py")))
    if not files:
        raise FileNotFoundError(f"no *.py files in {d}")
    tr, va = [], []
    for i, f in enumerate(files):
        (va if i % 10 == 9 else tr).append(Path(f).read_bytes() + b"\n")
    tr_b, va_b = b"".join(tr), b"".join(va)
    info = {
        "stdlib_dir": d,
        "python": platform.python_version(),
        "n_files": len(files),
        "train_bytes": len(tr_b),
        "val_bytes": len(va_b),
        "train_sha256": hashlib.sha256(tr_b).hexdigest(),
        "val_sha256": hashlib.sha256(va_b).hexdigest(),
    }
    return np.frombuffer(tr_b, np.uint8), np.frombuffer(va_b, np.uint8), info


def _batch(data: np.ndarray, rng: np.random.Generator, batch: int, seq_len: int) -> np.ndarray:
    starts = rng.integers(0, len(data) - seq_len - 1, size=batch)
    idx = starts[:, None] + np.arange(seq_len + 1)[None]
    return data[idx].astype(np.int32)


def _loss(model, tokens):
    logits = model(tokens[:, :-1])
    return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()


@nnx.jit
def _train_step(model, optimizer, tokens):
    loss, grads = nnx.value_and_grad(_loss)(model, tokens)
    optimizer.update(model, grads)
    return loss


@nnx.jit
def _eval_step(model, tokens):
    return _loss(model, tokens)


def eval_loss(model, data: np.ndarray, *, seed: int = 1234, batches: int = 16, batch: int = 32,
              seq_len: int | None = None) -> float:
    """Mean next-byte cross-entropy (nats/byte) over ``batches`` fixed random windows."""
    seq_len = seq_len or model.cfg.max_len
    rng = np.random.default_rng([seed, 7])
    return float(np.mean([_eval_step(model, jnp.asarray(_batch(data, rng, batch, seq_len)))
                          for _ in range(batches)]))


def train(
    which: str = "target",
    *,
    steps: int = 1500,
    batch: int = 32,
    lr: float = 3e-3,
    seed: int = 0,
    out_dir: str | os.PathLike | None = None,
    ckpt_dir: str | os.PathLike = "runs/lm_ckpt",
    ckpt_every: int = 100,
    eval_every: int = 250,
    quiet: bool = False,
    cfg: LMConfig | None = None,
) -> dict[str, Any]:
    """Train the ``which`` ∈ {"target", "draft"} model; write ``<out_dir>/<which>.{npz,json}``.

    AdamW (weight decay 0.01), linear warm-up over 5 % of the steps then cosine decay to 10 % of
    ``lr``, global-norm clipping at 1.  Resumes from ``<ckpt_dir>/<which>_ckpt.npz`` when present.

    Returns:
      The training record (also stored in the JSON sidecar): losses, timing, corpus hashes.
    """
    from tqdm.auto import tqdm

    if which not in CONFIGS and cfg is None:
        raise ValueError(f"which must be one of {sorted(CONFIGS)}, got {which!r}")
    for name, v in (("steps", steps), ("batch", batch), ("ckpt_every", ckpt_every), ("eval_every", eval_every)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    cfg = cfg or CONFIGS[which]
    out_dir = Path(out_dir) if out_dir is not None else WEIGHTS_DIR
    ckpt = Path(ckpt_dir) / f"{which}_ckpt.npz"
    tr, va, info = load_corpus()

    model = TransformerLM(cfg, rngs=nnx.Rngs(seed))
    warm = max(1, steps // 20)
    sched = optax.warmup_cosine_decay_schedule(0.0, lr, warm, steps, end_value=0.1 * lr)
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(sched, weight_decay=0.01))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

    start, history, elapsed0 = 0, [], 0.0
    if ckpt.exists():
        with np.load(ckpt) as z:
            arrays = {k: z[k] for k in z.files}
        nnx.update(model, arrays_into_state(nnx.state(model, nnx.Param),
                                            {k[6:]: v for k, v in arrays.items() if k.startswith("model:")}))
        nnx.update(optimizer, arrays_into_state(nnx.state(optimizer),
                                                {k[4:]: v for k, v in arrays.items() if k.startswith("opt:")}))
        start = int(arrays["step"])
        history = [tuple(r) for r in arrays["history"].tolist()]
        elapsed0 = float(arrays["elapsed"])
        if not quiet:
            print(f"[{which}] resumed from {ckpt} at step {start}", file=sys.stderr)

    def save_ckpt(step, elapsed):
        arrays = {"model:" + k: v for k, v in state_to_arrays(nnx.state(model, nnx.Param)).items()}
        arrays.update({"opt:" + k: v for k, v in state_to_arrays(nnx.state(optimizer)).items()})
        arrays["step"] = np.asarray(step)
        arrays["history"] = np.asarray(history, dtype=np.float64).reshape(-1, 3)
        arrays["elapsed"] = np.asarray(elapsed)
        atomic_savez(ckpt, arrays)

    t0 = time.time()
    run_loss = None
    bar = tqdm(range(start, steps), initial=start, total=steps, desc=f"train {which}",
               disable=True if quiet else None)
    for step in bar:
        tokens = jnp.asarray(_batch(tr, np.random.default_rng([seed, step]), batch, cfg.max_len))
        loss = float(_train_step(model, optimizer, tokens))
        run_loss = loss if run_loss is None else 0.95 * run_loss + 0.05 * loss
        done = step + 1
        if done % eval_every == 0 or done == steps:
            vl = eval_loss(model, va)
            history.append((done, run_loss, vl))
            bar.set_postfix(train=f"{run_loss:.3f}", val=f"{vl:.3f}")
        if done % ckpt_every == 0 or done == steps:
            save_ckpt(done, elapsed0 + time.time() - t0)
    bar.close()
    elapsed = elapsed0 + time.time() - t0
    val = eval_loss(model, va, batches=64)
    record = {
        "which": which,
        "steps": steps,
        "batch": batch,
        "lr": lr,
        "seed": seed,
        "n_params": count_params(model),
        "val_loss_nats_per_byte": val,
        "history_step_trainloss_valloss": [list(h) for h in history],
        "train_seconds": elapsed,
        "corpus": info,
        "versions": {"jax": jax.__version__, "flax": __import__("flax").__version__,
                     "optax": optax.__version__, "numpy": np.__version__},
    }
    save_model(model, out_dir / which, {"training": record})
    return record
