r"""LM mode: a real byte-level draft/target pair for GELATO (docs/model.md §4, §6).

* :mod:`.model` — flax.nnx causal transformers (target 2×128, draft 1×32, vocabulary 256).
* :mod:`.train` — optax training on the interpreter's standard-library sources, seeded,
  resumable (``gelato train-lm``).  The committed weights in ``lm/weights/`` were produced by::

      python -m gelato_jax.lm.cli train-lm --which both --seed 0 --json

  (draft 3000 steps, target 1400 steps, batch 32, lr 3e-3; ≈ 6.5 min on 2 CPU cores; validation
  loss 1.776 / 1.391 nats per byte; CPython 3.11.7 stdlib, see the JSON sidecars).
* :mod:`.sampling` — entropy, top-p truncation, leaky bucket, lossless verification kernels.
* :mod:`.rounds` — :func:`lm_round`: one jitted, vmapped speculative-decoding round for ``R``
  sequences (draft scan with early exit → one target pass → accept/resample → new context).
* :mod:`.simulate` — :func:`simulate_lm` / :func:`rollout_lm`: the surrogate's controller, costs,
  channel and queue with tokens from the models (``gelato simulate --tokens lm``);
  :func:`calibrated_scenario` (the committed ``calibration.toml``).
* :mod:`.calibrate` — fits ``a0, a1, k_H, theta_H, c_p`` from LM mode or a CSV
  (``gelato calibrate``).
"""

from .model import DRAFT_CONFIG, TARGET_CONFIG, LMConfig, TransformerLM
from .rounds import (
    DraftOut,
    LMPair,
    LMRoundOut,
    acceptance_pairs,
    corpus_contexts,
    draft_phase,
    draft_round,
    draft_step,
    lm_round,
    verify_phase,
)
from .simulate import LM_INNER_LOOPS, calibrated_scenario, lm_inner_loop, rollout_lm, simulate_lm
from .sampling import bucket_update, entropy_nats, topp_truncate, verification_law, verify_one
from .weights_io import load_model, load_pair, save_model

__all__ = [
    "DraftOut",
    "draft_phase",
    "verify_phase",
    "LM_INNER_LOOPS",
    "LMConfig",
    "TransformerLM",
    "TARGET_CONFIG",
    "DRAFT_CONFIG",
    "LMPair",
    "LMRoundOut",
    "lm_round",
    "draft_step",
    "draft_round",
    "acceptance_pairs",
    "corpus_contexts",
    "entropy_nats",
    "topp_truncate",
    "bucket_update",
    "verify_one",
    "verification_law",
    "load_pair",
    "load_model",
    "save_model",
    "simulate_lm",
    "rollout_lm",
    "calibrated_scenario",
    "lm_inner_loop",
]
