"""Engine config: presets, unknown keys, base + overrides, engine version."""

import pytest

from annotation_engine.engine_config import (
    EngineConfig,
    engine_version,
    list_presets,
    load_engine_config,
    path_identity,
    unset_variables,
)
from common.settings import SettingsError


def test_presets_load():
    assert {"weightfree", "sam-tiny-hf", "sam-blip"} <= set(list_presets())
    cfg = load_engine_config("weightfree")
    assert (cfg.generator.name, cfg.captioner.name) == ("superpixel", "attributes")
    blip = load_engine_config("sam-blip")
    assert blip.generator.params["model_type"] == "vit_h" and blip.captioner.name == "hf"


def test_unknown_keys_fail(tmp_path):
    with pytest.raises(SettingsError, match="nms_iouu"):
        EngineConfig.from_dict({"filters": {"nms_iouu": 0.5}})
    with pytest.raises(SettingsError, match="typo"):
        EngineConfig.from_dict({"base": "weightfree", "typo": 1})
    p = tmp_path / "e.yaml"
    p.write_text("name: x\ngenerator: {name: superpixel, paramz: {}}\n")
    with pytest.raises(SettingsError, match="paramz"):
        load_engine_config(p)
    with pytest.raises(KeyError, match="weightfree"):
        load_engine_config("no-such-engine")


def test_base_and_overrides_merge():
    cfg = EngineConfig.from_dict({"base": "weightfree", "filters": {"max_targets": 3}})
    base = load_engine_config("weightfree")
    assert cfg.filters.max_targets == 3 and cfg.filters.nms_iou == base.filters.nms_iou
    assert cfg.generator == base.generator
    # a different generator replaces the params instead of merging them
    other = EngineConfig.from_dict({"base": "weightfree", "generator": {"name": "sam-tiny", "params": {}}})
    assert other.generator.params == {}


def test_engine_version_tracks_output_not_speed(tmp_path):
    base = load_engine_config("weightfree")
    v = engine_version(base)
    assert len(v) == 16 and v == engine_version(load_engine_config("weightfree"))
    assert engine_version(EngineConfig.from_dict({"base": "weightfree", "resources": {"num_cpus": 2}})) == v
    assert engine_version(EngineConfig.from_dict({"base": "weightfree", "device": "cuda"})) == v
    assert engine_version(EngineConfig.from_dict({"base": "weightfree", "filters": {"min_area": 0.01}})) != v
    # a model file named in the config: replacing its content changes the version
    ckpt = tmp_path / "m.pth"
    ckpt.write_bytes(b"a" * 100)
    cfg = EngineConfig.from_dict({"generator": {"name": "sam-tiny", "params": {"checkpoint": str(ckpt)}}})
    v1 = engine_version(cfg)
    ident = path_identity(ckpt)
    ckpt.write_bytes(b"b" * 100)
    assert path_identity(ckpt) != ident and engine_version(cfg) != v1


# Regression pin: computed with the code on main at 3bf0ae4 (before the fast SAM loop),
# `engine_version(load_engine_config(cfg))` for each config below. The exact fast path keeps
# these, so datasets annotated with `sam` are not re-annotated for nothing.
SAM_PINS = [
    (
        {
            "name": "t",
            "generator": {"name": "sam-tiny", "params": {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}},
        },
        "73b719986218050e",
    ),
    (
        {
            "name": "t",
            "generator": {"name": "sam", "params": {"model_type": "vit_b", "checkpoint": "/nonexistent/sam_vit_b.pth"}},
        },
        "0c75dae65aac3e9a",
    ),
]


@pytest.mark.parametrize("cfg,pinned", SAM_PINS)
def test_sam_engine_version_unchanged_by_the_fast_path(cfg, pinned):
    assert engine_version(load_engine_config(cfg)) == pinned
    # naming the default precision or an encoder batch size changes nothing either
    params = {**cfg["generator"]["params"], "precision": "fp32", "encoder_batch": 4}
    same = {**cfg, "generator": {**cfg["generator"], "params": params}}
    assert engine_version(load_engine_config(same)) == pinned
    mixed = {**cfg, "generator": {**cfg["generator"], "params": {**params, "precision": "bf16"}}}
    assert engine_version(load_engine_config(mixed)) != pinned


def test_environment_variables_in_presets(monkeypatch, tmp_path):
    monkeypatch.delenv("SAM_CHECKPOINT", raising=False)
    assert unset_variables(load_engine_config("sam-blip")) == ["SAM_CHECKPOINT"]
    monkeypatch.setenv("SAM_CHECKPOINT", str(tmp_path / "sam_vit_h.pth"))
    cfg = load_engine_config("sam-blip")
    assert cfg.generator.params["checkpoint"] == str(tmp_path / "sam_vit_h.pth") and not unset_variables(cfg)
