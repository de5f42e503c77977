"""SAM 2.1 generator: the tiny random model through the registry, checkpoints, the engine and Ray."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from engine_fixtures import photo

from annotation_engine.engine_config import engine_version, load_engine_config
from annotation_engine.registry import MASK_GENERATORS

PARAMS = {"points_per_side": 3, "points_per_batch": 16, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    """Tiny models: see conftest.one_torch_thread."""


@pytest.fixture(scope="module")
def tiny():
    return MASK_GENERATORS.build("sam2-tiny", **PARAMS)


def test_tiny_generates_scored_masks(tiny):
    rgb = photo("coffee", 96)
    props = tiny.generate(rgb)
    assert props, "thresholds 0 keep at least one mask"
    for p in props:
        assert p.mask.shape == rgb.shape[:2] and p.mask.dtype == bool
        assert set(p.scores) == {"predicted_iou", "stability_score"}
    assert tiny.identity() == {
        "generator": "sam2",
        "generator_model": "sam2.1_hiera_t-tiny:random-seed0",
        "generator_version": "sam2-1.1.0",
    }
    assert tiny.model.image_size == 256


def test_checkpoint_loads_weights_only_and_strict(tiny, tmp_path):
    path = tmp_path / "tiny.pt"
    torch.save({"model": tiny.model.state_dict()}, path)
    loaded = MASK_GENERATORS.build("sam2-tiny", checkpoint=str(path), **PARAMS)
    rgb = photo("rocket", 80)
    a, b = tiny.generate(rgb), loaded.generate(rgb)
    assert len(a) == len(b) and all(np.array_equal(x.mask, y.mask) for x, y in zip(a, b))
    assert loaded.identity()["generator_model"].startswith("sam2.1_hiera_t-tiny:")

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"model": object()}))  # not tensors: refused by weights_only
    with pytest.raises(pickle.UnpicklingError):
        MASK_GENERATORS.build("sam2-tiny", checkpoint=str(evil), **PARAMS)
    wrong = tmp_path / "wrong.pt"
    torch.save({"model": {"not.a.key": torch.zeros(1)}}, wrong)
    with pytest.raises(RuntimeError, match="Missing key"):
        MASK_GENERATORS.build("sam2-tiny", checkpoint=str(wrong), **PARAMS)


def test_sam2_needs_a_known_config_and_a_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="checkpoint"):
        MASK_GENERATORS.build("sam2", config="sam2.1_hiera_t")
    with pytest.raises(FileNotFoundError):
        MASK_GENERATORS.build("sam2", config="sam2.1_hiera_t", checkpoint=str(tmp_path / "missing.pt"))
    with pytest.raises(KeyError, match="sam2.1_hiera_x"):
        MASK_GENERATORS.build("sam2", config="sam2.1_hiera_x", checkpoint=str(tmp_path))


SAM2_ENGINE = {
    "name": "sam2-tiny",
    "generator": {"name": "sam2-tiny", "params": PARAMS},
    "max_side": 96,
    "filters": {"min_area": 0.0, "max_area": 1.0, "max_targets": 4},
    "resources": {"num_cpus": 1, "batch_size": 2, "inflight": 1},
}


def test_sam2_engine_version_differs_from_sam():
    sam = {**SAM2_ENGINE, "generator": {"name": "sam-tiny", "params": PARAMS}}
    assert engine_version(load_engine_config(SAM2_ENGINE)) != engine_version(load_engine_config(sam))


@pytest.mark.slow  # a Ray actor that imports torch, Hydra and sam2 and builds the model: ~30 s here
def test_sam2_end_to_end_through_ray_actors(tmp_path):
    """The annotate driver, one Ray actor, two small photos, engine = sam2-tiny."""
    import ray
    from PIL import Image

    from annotation_engine.driver import annotate_images
    from common.ray_runtime import ensure_ray
    from shards.reader import ShardReader

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("coffee", "rocket"):
        Image.fromarray(photo(name, 96)).save(folder / f"{name}.png")
    ensure_ray(num_cpus=2)
    try:
        result = annotate_images(str(folder), str(tmp_path / "auto"), engine=SAM2_ENGINE, actors=1, progress=False)
    finally:
        ray.shutdown()
    assert result["written"] == 2 and result["quarantined"] == 0
    samples = list(ShardReader(tmp_path / "auto" / "train").samples(decode_images=False))
    targets = [t for s in samples for t in s.targets]
    assert len(samples) == 2 and targets
    assert {t.provenance["generator"] for t in targets} == {"sam2"}
    assert all(t.provenance["engine_version"] == result["engine_version"] for t in targets)
    assert all("predicted_iou" in t.scores and "stability_score" in t.scores for t in targets)
