"""Committed LM weights, I/O, resumable training and the LM-mode output law (docs/model.md §4)."""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gelato_jax.lm import train as train_mod
from gelato_jax.lm.model import DRAFT_CONFIG, TARGET_CONFIG, LMConfig, TransformerLM, count_params
from gelato_jax.lm.weights_io import load_model, load_pair, save_model


@pytest.fixture(scope="module")
def models():
    return load_pair()


def test_committed_weights_load_and_predict(models):
    draft, target = models
    assert draft.cfg == DRAFT_CONFIG and target.cfg == TARGET_CONFIG
    assert 400_000 < count_params(target) < 600_000 and count_params(draft) < 50_000
    _, va, _ = train_mod.load_corpus()
    lt = train_mod.eval_loss(target, va, batches=4)
    ld = train_mod.eval_loss(draft, va, batches=4)
    # uniform over bytes would be log 256 = 5.55 nats; recorded 1.39 / 1.78 on 64 batches
    assert lt < 1.55 and ld < 1.95 and lt < ld - 0.2


def test_save_load_roundtrip_and_shape_mismatch(tmp_path):
    cfg = LMConfig(n_layers=1, d_model=8, n_heads=2, max_len=16)
    m = TransformerLM(cfg, rngs=nnx.Rngs(3))
    save_model(m, tmp_path / "m", {"note": "x"})
    m2, meta = load_model(tmp_path / "m")
    x = jnp.arange(16)[None]
    np.testing.assert_array_equal(np.asarray(m(x)), np.asarray(m2(x)))
    assert meta["note"] == "x"
    big = TransformerLM(LMConfig(n_layers=1, d_model=16, n_heads=2, max_len=16), rngs=nnx.Rngs(0))
    save_model(big, tmp_path / "big")
    (tmp_path / "m.npz").write_bytes((tmp_path / "big.npz").read_bytes())
    with pytest.raises(ValueError, match="shape"):
        load_model(tmp_path / "m")


def test_train_resume_matches_uninterrupted(tmp_path, monkeypatch):
    cfg = LMConfig(n_layers=1, d_model=8, n_heads=2, max_len=16)
    kw = dict(steps=6, batch=4, seed=1, ckpt_every=3, eval_every=3, quiet=True, cfg=cfg)
    train_mod.train("tiny", out_dir=tmp_path / "a", ckpt_dir=tmp_path / "ca", **kw)
    real_step, calls = train_mod._train_step, []

    def failing(*a):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_step(*a)

    monkeypatch.setattr(train_mod, "_train_step", failing)
    with pytest.raises(KeyboardInterrupt):
        train_mod.train("tiny", out_dir=tmp_path / "b", ckpt_dir=tmp_path / "cb", **kw)
    monkeypatch.setattr(train_mod, "_train_step", real_step)
    rec = train_mod.train("tiny", out_dir=tmp_path / "b", ckpt_dir=tmp_path / "cb", **kw)
    a, _ = load_model(tmp_path / "a" / "tiny")
    b, _ = load_model(tmp_path / "b" / "tiny")
    for x, y in zip(jax.tree.leaves(nnx.state(a)), jax.tree.leaves(nnx.state(b))):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
    assert len(rec["history_step_trainloss_valloss"]) == 2
    with pytest.raises(ValueError, match="steps"):
        train_mod.train("tiny", steps=0, cfg=cfg, out_dir=tmp_path, ckpt_dir=tmp_path)


def test_add_parsers_registers_commands():
    from gelato_jax.lm.cli import add_parsers

    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="command"))
    a = parser.parse_args(["train-lm", "--which", "draft", "--steps", "5"])
    assert callable(a.func) and a.which == "draft" and a.steps == 5
    c = parser.parse_args(["calibrate", "--csv", "x.csv", "--top-p", "0.9"])
    assert callable(c.func) and c.csv == "x.csv" and c.top_p == 0.9
