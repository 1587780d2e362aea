r"""LM mode: a real byte-level draft/target pair for GELATO (MODEL.md §4, §6).

* :mod:`.model` — flax.nnx causal transformers (target 2×128, draft 1×32, vocabulary 256) with
  rotary positions and sliding-window attention (window 64), and KV-cached incremental decoding
  (:meth:`~.model.TransformerLM.decode`, a fixed-size ring buffer).
* :mod:`.train` — optax training on the interpreter's standard-library sources, seeded,
  resumable (``gelato train-lm``).  The committed weights in ``lm/weights/`` were produced by::

      python -m gelato_jax.lm.cli train-lm --which draft --seed 0 --json
      python -m gelato_jax.lm.cli train-lm --which target --target-steps 800 --seed 0 --json

  (draft 3000 steps, target 800 steps, batch 32, lr 3e-3; see the JSON sidecars for the losses,
  times and the corpus hashes).
* :mod:`.sampling` — entropy, top-p truncation, leaky bucket, lossless verification kernels.
* :mod:`.cached` — KV-cached rounds of one sequence: draft passes and one target pass read
  the caches, so a round costs the same whatever the length of the text.
* :mod:`.packed` — the same rounds for a batch, computing only the draft passes and target
  tokens a round uses (the rollout's path; tested equal to ``vmap`` of :mod:`.cached`).
* :mod:`.rounds` — :func:`lm_round`: the windowed round (re-reads a fixed context window; the
  path for learned-position models and the reference the cached round is tested against).
* :mod:`.simulate` — :func:`simulate_lm` / :func:`rollout_lm`: the surrogate's controller, costs,
  channel and queue with tokens from the models (``gelato simulate --tokens lm``);
  :func:`calibrated_scenario` (the committed ``calibration.toml``).
* :mod:`.calibrate` — fits ``a0, a1, k_H, theta_H, c_p``, the text process and the
  after-rejection law from LM mode or a CSV of logs (``gelato calibrate``; docs/lm_logs.md).
"""

from .cached import SeqState, lm_round_cached, prefill
from .model import DRAFT_CONFIG, TARGET_CONFIG, KVCache, LMConfig, TransformerLM
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
    "KVCache",
    "SeqState",
    "prefill",
    "lm_round_cached",
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
