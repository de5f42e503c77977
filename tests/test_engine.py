"""The engine and its registries: every generator and captioner built and run on real photos."""

import numpy as np
import pytest
from engine_fixtures import photo, save_tiny_blip, save_tiny_clip, save_tiny_git, save_tiny_unilseg

from annotation_engine.engine import Engine
from annotation_engine.engine_config import EngineConfig
from annotation_engine.mask_generators.sam import load_sam
from annotation_engine.registry import CAPTIONERS, MASK_GENERATORS
from common.errors import UniLSegError
from shards.format import validate_target
from shards.rle import rle_to_mask


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    return {
        "blip": str(save_tiny_blip(d / "blip")),
        "clip": str(save_tiny_clip(d / "clip")),
        "unilseg": str(save_tiny_unilseg(d / "unilseg.pt")),
    }


def test_engine_registries():
    assert set(MASK_GENERATORS.names()) == {"superpixel", "sam", "sam-tiny", "sam2", "sam2-tiny", "unilseg"}
    assert set(CAPTIONERS.names()) == {"attributes", "hf"}
    with pytest.raises(UniLSegError, match="superpixel.*n_segmentz"):
        MASK_GENERATORS.build("superpixel", n_segmentz=3)


def test_sam_needs_a_checkpoint():
    with pytest.raises(ValueError, match="checkpoint"):
        load_sam("vit_h", None)
    with pytest.raises(KeyError, match="vit_x"):
        load_sam("vit_x", None)


def test_every_generator_runs_on_a_photo(models):
    rgb = photo("coffee", 128)
    params = {
        "superpixel": {},
        "sam": {"model_type": "tiny", "points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0},
        "sam-tiny": {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0},
        "sam2-tiny": {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0},
        "unilseg": {"checkpoint": models["unilseg"], "expressions": ["the cup", "the table"], "threshold": 0.0},
    }
    # sam2 needs a full-size checkpoint; its class runs here as sam2-tiny (test_sam2_generator.py)
    assert set(params) | {"sam2"} == set(MASK_GENERATORS.names())
    for name, kw in params.items():
        gen = MASK_GENERATORS.build(name, **kw)
        props = gen.generate(rgb)
        assert props, name
        assert all(p.mask.shape == rgb.shape[:2] and p.mask.dtype == bool for p in props), name
        assert gen.identity()["generator"] in {"superpixel", "sam", "sam2", "unilseg"}
    assert [p.texts for p in props] == [["the cup"], ["the table"]]


def test_every_captioner_runs_on_a_photo(models):
    rgb = photo("astronaut", 96)
    masks = [np.zeros(rgb.shape[:2], bool) for _ in range(3)]
    masks[0][:40, :40] = masks[1][50:, 50:] = masks[2][10:30, 60:90] = True
    params = {"attributes": {}, "hf": {"model": models["blip"], "batch_size": 2, "max_new_tokens": 5}}
    assert set(params) == set(CAPTIONERS.names())
    for name, kw in params.items():
        cap = CAPTIONERS.build(name, **kw)
        names = cap.describe(rgb, masks)
        assert len(names) == 3 and all(n is None or isinstance(n, str) for n in names), name
        assert cap.identity()["captioner"] == name
    assert CAPTIONERS.build("attributes").describe(rgb, masks)[0].endswith(" region")


def test_hf_captioner_loads_git_too(tmp_path):
    cap = CAPTIONERS.build("hf", model=str(save_tiny_git(tmp_path / "git")), max_new_tokens=4)
    assert type(cap.model).__name__ == "GitForCausalLM"
    rgb = photo("rocket", 64)
    mask = np.zeros(rgb.shape[:2], bool)
    mask[5:30, 5:30] = True
    names = cap.describe(rgb, [mask, ~mask])
    assert len(names) == 2 and all(n is None or isinstance(n, str) for n in names)


def _check_targets(targets, rgb, engine):
    h, w = rgb.shape[:2]
    for t in targets:
        validate_target(t, h, w)
        assert t.task == "auto" and t.source == engine.source
        assert t.provenance["engine_version"] == engine.version
        assert {"generator", "generator_version", "captioner", "captioner_version"} <= set(t.provenance)
        assert "area_fraction" in t.scores
        if t.granularity == "part":
            whole = targets[t.provenance["parent"]]
            inside = (rle_to_mask(t.mask) & rle_to_mask(whole.mask)).sum() / rle_to_mask(t.mask).sum()
            assert inside >= 0.9 and " of the " in t.texts[0]


def test_weightfree_engine_on_photos():
    engine = Engine("weightfree")
    for name in ("astronaut", "coffee"):
        rgb = photo(name)
        targets = engine.annotate(rgb)
        assert 4 <= len(targets) <= engine.config.filters.max_targets
        _check_targets(targets, rgb, engine)
        firsts = [t.texts[0] for t in targets]
        assert len(set(firsts)) == len(firsts), firsts  # every first expression singles one target out
        assert any(t.granularity == "part" for t in targets)
        assert all(t.scores["area_fraction"] >= engine.config.filters.min_area * 0.9 for t in targets)
    with pytest.raises(ValueError, match="uint8"):
        engine.annotate(np.zeros((10, 10), np.uint8))


def test_sam_tiny_hf_engine_with_clip(models, monkeypatch):
    monkeypatch.setenv("HF_CAPTIONER", models["blip"])
    cfg = EngineConfig.from_dict({"base": "sam-tiny-hf", "filters": {"clip_model": models["clip"]}})
    engine = Engine(cfg)
    rgb = photo("chelsea", 200)
    targets = engine.annotate(rgb)
    assert targets
    _check_targets(targets, rgb, engine)
    assert all({"predicted_iou", "stability_score", "clip"} <= set(t.scores) for t in targets)
    assert engine.provenance["captioner_model"].endswith("blip") and engine.provenance["clip_model"] == models["clip"]
    # a CLIP threshold above every score leaves nothing
    strict = Engine(
        EngineConfig.from_dict({**cfg.to_dict(), "filters": {**cfg.to_dict()["filters"], "clip_min_score": 1.01}})
    )
    assert strict.annotate(rgb) == []


def test_annotate_batch_equals_annotate_per_image():
    """sam-tiny: the batch entry point (generate_batch) gives each image's own targets."""
    engine = Engine(
        {
            "name": "sam-batch",
            "generator": {
                "name": "sam-tiny",
                "params": {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0},
            },
            "filters": {"min_area": 0.0, "max_area": 1.0},
            "max_side": 96,
        }
    )
    images = [photo("coffee", 96), photo("rocket", 80), photo("camera", 64)]
    batch = engine.annotate_batch(images)
    assert len(batch) == 3 and any(batch)
    for rgb, targets in zip(images, batch):
        assert targets == engine.annotate(rgb)
    with pytest.raises(ValueError, match="uint8"):
        engine.annotate_batch([images[0], np.zeros((10, 10), np.uint8)])


def test_sam_identity_is_the_stock_one_unless_mixed_precision():
    exact = MASK_GENERATORS.build("sam-tiny", points_per_side=2)
    assert exact.identity() == {
        "generator": "sam",
        "generator_model": "sam-tiny:random-seed0",
        "generator_version": "segment-anything-1.0",
    }
    mixed = MASK_GENERATORS.build("sam-tiny", points_per_side=2, precision="bf16")
    assert mixed.identity()["generator_version"] == "segment-anything-1.0+autocast-bf16"


def test_unilseg_source_keeps_its_expressions(models):
    engine = Engine(
        {
            "name": "unilseg-src",
            "generator": {
                "name": "unilseg",
                "params": {"checkpoint": models["unilseg"], "expressions": ["the cat", "the sofa"], "threshold": 0.0},
            },
            "filters": {"min_area": 0.0, "max_area": 1.0},
            "max_side": 128,
        }
    )
    rgb = photo("chelsea", 160)
    targets = engine.annotate(rgb)
    assert targets and {t.texts[0] for t in targets} <= {"the cat", "the sofa"}
    assert all(t.texts == [t.texts[0]] for t in targets)  # the captioner left them alone
    _check_targets([t for t in targets if t.granularity != "part"], rgb, engine)
    assert engine.provenance["generator"] == "unilseg"
