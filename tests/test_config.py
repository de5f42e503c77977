"""flows/config.py: typed pipeline parameters, YAML loading, loud failures."""

from __future__ import annotations

import pydantic
import pytest

from flows.config import ROOT, LabeledSet, PipelineConfig


def test_demo_yaml_matches_the_embedded_defaults():
    # The demo deployment embeds PipelineConfig(); the YAML documents it: they must agree.
    assert PipelineConfig.from_yaml(ROOT / "flows/configs/demo.yaml") == PipelineConfig()


def test_default_yaml_is_valid():
    cfg = PipelineConfig.from_yaml(ROOT / "flows/configs/default.yaml")
    assert cfg.run_name == "default" and cfg.annotate is not None


def test_unknown_key_fails(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("run_name: x\ntrain:\n  stepz: 3\n")
    with pytest.raises(pydantic.ValidationError, match="stepz"):
        PipelineConfig.from_yaml(p)


def test_unknown_format_fails_up_front():
    with pytest.raises(pydantic.ValidationError, match="unknown format 'refcocoo'"):
        LabeledSet(name="x", format="refcocoo", src="/x")


def test_bad_values_fail():
    with pytest.raises(pydantic.ValidationError):
        PipelineConfig(run_name="has space")
    with pytest.raises(pydantic.ValidationError):
        PipelineConfig.model_validate({"train": {"batch_size": 1}})


def test_not_a_mapping(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        PipelineConfig.from_yaml(p)


def test_paths_relative_to_project_root(tmp_path):
    cfg = PipelineConfig(data_root="data", runs_root=str(tmp_path))
    assert cfg.dataset_dir("auto") == ROOT / "data" / "auto"
    assert cfg.run_dir == tmp_path / "demo"
