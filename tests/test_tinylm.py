"""The tiny LM trainable: it learns, reports its size, FLOPs and cost honestly, and fails loudly."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from carbs_like.space import SearchSpace
from carbs_like.tinylm import ModelShape, TinyLM, load_corpus, model_shape, search_space, train, train_mup

REPO = Path(__file__).resolve().parent.parent
TINY = {"n_params": 1e4, "tokens": 3e4, "lr": 3e-3, "batch_size": 8, "weight_decay": 0.1}


def test_loss_decreases_with_training():
    one_step = train({**TINY, "tokens": 1}, threads=1)
    trained = train(TINY, threads=1)
    assert one_step["steps"] == 1 and trained["steps"] > 30
    assert not trained["failed"]
    # An untrained byte model is near log(256) = 5.5 nats; a few seconds of training must beat it clearly.
    assert one_step["loss"] > 5.0
    assert trained["loss"] < one_step["loss"] - 1.5


def test_reports_size_tokens_flops_and_cost():
    result = train({**TINY, "tokens": 5000}, threads=1)
    shape = model_shape(TINY["n_params"])
    model = TinyLM(shape)
    non_embedding = sum(p.numel() for p in model.parameters()) - model.embed.weight.numel() - model.pos.numel()
    assert result["n_params"] == shape.n_params == non_embedding
    assert result["tokens"] == result["steps"] * TINY["batch_size"] * shape.seq_len
    assert result["flops"] == pytest.approx(shape.flops_per_token * result["tokens"])
    assert 6 * result["n_params"] * result["tokens"] < result["flops"]  # 6ND plus attention and output layer
    assert 0 < result["cost"] <= result["seconds"] * 1.0001
    assert result["device"] == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("target", [1e4, 5e4, 3e5, 3e6])
def test_model_shape_matches_the_requested_size(target):
    shape = model_shape(target, n_layers=2)
    assert shape.d_model % 16 == 0
    assert abs(math.log(shape.n_params / target)) < math.log(1.6)
    wider = model_shape(target * 4, n_layers=2)
    assert wider.n_params > shape.n_params


def test_divergence_is_a_failure_with_its_cost():
    result = train({**TINY, "lr": 1e3}, threads=1)
    assert result["failed"]
    assert math.isnan(result["loss"])
    assert result["cost"] > 0
    assert result["steps"] < 20  # stopped as soon as the loss blew up


def test_same_seed_same_run_other_seed_other_run():
    a = train({**TINY, "tokens": 4000}, seed=3, threads=1)
    b = train({**TINY, "tokens": 4000}, seed=3, threads=1)
    c = train({**TINY, "tokens": 4000}, seed=4, threads=1)
    assert a["loss"] == b["loss"]
    assert c["loss"] != a["loss"]


def test_mup_is_sp_at_its_base_width_and_rescales_wider_models():
    base = {**TINY, "n_params": ModelShape(2, 32, 64).n_params, "tokens": 4000}
    sp, mup = train(base, threads=1), train_mup(base, threads=1)
    assert sp["d_model"] == 32 and mup["parametrization"] == "mup" and sp["parametrization"] == "sp"
    assert mup["loss"] == sp["loss"]  # width multiplier 1: the same run
    wide = {**base, "n_params": ModelShape(2, 64, 64).n_params}
    assert train_mup(wide, threads=1)["loss"] != train(wide, threads=1)["loss"]
    assert train_mup({**wide, "mup_base_width": 64}, threads=1)["loss"] == train(wide, threads=1)["loss"]
    # The logits of the tied output layer shrink with the width multiplier.
    shape = ModelShape(2, 64, 64)
    a, b = TinyLM(shape), TinyLM(shape, width_mult=2.0)
    b.load_state_dict(a.state_dict())
    idx = torch.zeros(1, 4, dtype=torch.long)
    assert torch.allclose(b(idx), a(idx) / 2)
    with pytest.raises(ValueError, match="parametrization must be one of"):
        train({**base, "parametrization": "ntk"})


def test_missing_key_names_it():
    config = dict(TINY)
    del config["lr"]
    with pytest.raises(KeyError, match="lr"):
        train(config)


def test_corpus_holds_out_whole_files(tmp_path):
    for i in range(20):
        (tmp_path / f"f{i:02d}.py").write_text(f"# file {i:02d}\n")
    corpus = load_corpus(str(tmp_path))
    val = bytes(corpus.val.tolist()).decode()
    train_text = bytes(corpus.train.tolist()).decode()
    assert "file 00" in val and "file 10" in val
    assert "file 00" not in train_text and "file 10" not in train_text
    assert all(f"file {i:02d}" in train_text for i in range(20) if i % 10)


def test_corpus_of_the_running_python_is_not_empty():
    corpus = load_corpus()
    assert len(corpus.train) > 1e6 and len(corpus.val) > 1e5


def test_built_in_space_is_the_space_file():
    assert search_space() == SearchSpace.from_file(REPO / "searchspaces" / "tiny_lm.toml")
