"""flows/config.py: pipeline parameters derived from the library's settings, YAML loading, loud
failures; and the one-source rule: CLI options, flow sections and YAML agree with the library."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import click
import pydantic
import pytest
import yaml

from annotation_engine.quality.config import EngineEvalConfig
from annotation_engine.run_config import AnnotateConfig
from cli import main
from cli.options import cli_fields, option_name
from common.settings import default_of
from flows.config import (
    AnnotateStage,
    ConfigError,
    EvaluateEngineStage,
    EvaluateStage,
    LabeledSet,
    PipelineConfig,
    TrainStage,
)
from flows.paths import PROJECT_ROOT
from flows.pipeline import DEFAULT_CONFIG, DEMO_CONFIG
from unilseg.eval.config import EvalConfig
from unilseg.train_config import RUN_WIRING, TrainConfig

SECTIONS = [
    ("train", TrainConfig, TrainStage, "train"),
    ("annotate", AnnotateConfig, AnnotateStage, "annotate"),
    ("evaluate", EvalConfig, EvaluateStage, "eval"),
]


def _defaults(cls) -> dict:
    return {f.name: default_of(f) for f in dataclasses.fields(cls)}


@pytest.mark.parametrize(
    "section, cls, stage, command",
    SECTIONS + [("evaluate_engine", EngineEvalConfig, EvaluateEngineStage, "eval-engine")],
)
def test_cli_options_are_the_library_settings(section, cls, stage, command):
    params = {p.name: p for p in main.commands[command].params if isinstance(p, click.Option)}
    for f in cli_fields(cls):
        opt = params[f.name]
        assert option_name(f) in opt.opts or any(o.startswith(option_name(f) + "/") for o in opt.opts)
        assert opt.default == default_of(f), f.name
        assert opt.help == f.metadata["help"]


@pytest.mark.parametrize("section, cls, stage, command", SECTIONS)
def test_flow_sections_are_the_library_settings(section, cls, stage, command):
    expected = {k: v for k, v in _defaults(cls).items() if k not in RUN_WIRING + ("ray_address",)}
    assert stage().settings() == expected


def test_default_yaml_restates_library_defaults_only():
    doc = yaml.safe_load((PROJECT_ROOT / DEFAULT_CONFIG).read_text())
    for section, cls, stage, _ in SECTIONS:
        defaults = {**_defaults(cls), **{k: f.default for k, f in stage.model_fields.items()}}
        for key, value in doc[section].items():
            assert value == defaults[key], f"{DEFAULT_CONFIG} {section}.{key}: {value!r} != default {defaults[key]!r}"
    assert PipelineConfig.from_yaml(PROJECT_ROOT / DEFAULT_CONFIG).annotate is not None


def test_demo_yaml_is_valid():
    cfg = PipelineConfig.from_yaml(PROJECT_ROOT / DEMO_CONFIG)
    assert cfg.run_name == "demo" and cfg.labeled[0].format == "synth-shapes"


def test_the_demo_scores_a_held_out_set_after_a_fixed_number_of_steps():
    """The demo's headline comes from sets nothing trained on or was tuned on (another seed of
    the generator), under both text protocols, after a step count rather than a time budget."""
    cfg = PipelineConfig.from_yaml(PROJECT_ROOT / DEMO_CONFIG)
    sets = {s.name: s for s in cfg.labeled}
    scored = [sets[name] for name in cfg.evaluate.datasets]
    trained = [s for s in cfg.labeled if "train" in s.splits]
    assert scored and trained and all("train" not in s.splits for s in scored)
    assert {s.synth_seed for s in scored}.isdisjoint({s.synth_seed for s in trained})
    assert cfg.train.time_limit_s is None and cfg.evaluate.texts == "all"


def test_unknown_key_or_wrong_type_is_one_line_naming_file_and_field(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("run_name: x\ntrain:\n  stepz: 3\n  workers: many\nlabeled:\n  - {name: a, format: sod, splitz: 1}\n")
    with pytest.raises(ConfigError) as err:
        PipelineConfig.from_yaml(p)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{p}: ")
    assert "train.stepz: unknown field (known: augment, aux_weight, batch_size" in msg
    assert "train.workers: Input should be a valid integer" in msg and "(got 'many')" in msg
    assert "labeled[0].splitz: unknown field (known: format, images, name, options, splits" in msg
    p.write_text("train: {steps: 0}\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: train: TrainConfig\.steps must be >= 1, got 0"):
        PipelineConfig.from_yaml(p)
    p.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        PipelineConfig.from_yaml(p)


def test_pipeline_module_refuses_a_bad_config_before_any_stage(tmp_path):
    """`python -m flows.pipeline my.yaml` with a bad field: one line on stderr, exit 1, no server, no run dir."""
    import subprocess
    import sys

    p = tmp_path / "my.yaml"
    p.write_text(f"run_name: x\nruns_root: {tmp_path / 'runs'}\ntrain:\n  stepz: 3\n")
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    res = subprocess.run(
        [sys.executable, "-m", "flows.pipeline", str(p)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=PROJECT_ROOT,
    )
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.strip().splitlines() == [
        f"Error: {p}: train.stepz: unknown field (known: " + res.stderr.split("(known: ", 1)[1].strip()
    ]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "prefect" / "unilseg-local-server.json").exists()


def test_unknown_format_fails_up_front():
    with pytest.raises(pydantic.ValidationError, match="unknown format 'refcocoo'"):
        LabeledSet(name="x", format="refcocoo", src="/x")


def test_bad_values_fail_with_the_library_message():
    with pytest.raises(pydantic.ValidationError):
        PipelineConfig(run_name="has space")
    with pytest.raises(pydantic.ValidationError, match="at least 2 per worker"):
        PipelineConfig.model_validate({"train": {"batch_size": 4, "workers": 4}})
    with pytest.raises(pydantic.ValidationError, match="must be >= 1"):
        PipelineConfig.model_validate({"annotate": {"actors": 0}})
    with pytest.raises(pydantic.ValidationError, match="must be one of"):
        PipelineConfig.model_validate({"evaluate": {"texts": "some"}})


def test_not_a_mapping(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        PipelineConfig.from_yaml(p)


def test_paths_relative_to_project_root(tmp_path):
    cfg = PipelineConfig(data_root="data", runs_root=str(tmp_path), run_name="demo")
    assert Path(cfg.dataset_dir("auto")) == PROJECT_ROOT / "data" / "auto"
    assert Path(cfg.run_dir) == tmp_path / "demo"


def test_engine_evaluation_section_names_a_converted_labeled_split(tmp_path):
    """evaluate_engine: scores the engine on a labeled set's split; a set or split the run does not
    convert is one line naming the field, before any stage runs."""
    base = "labeled:\n  - {name: s, format: synth-shapes, splits: [train, val]}\n"
    p = tmp_path / "c.yaml"
    p.write_text(base + "evaluate_engine: {dataset: s, split: val, limit: 5}\n")
    e = PipelineConfig.from_yaml(p).evaluate_engine
    assert (e.dataset, e.split, e.limit, e.grounding, e.engine) == ("s", "val", 5, "run", None)
    expected = {k: v for k, v in _defaults(EngineEvalConfig).items() if k != "ray_address"}
    assert e.settings() == {**expected, "limit": 5}  # the library's settings: one definition
    for section, message in [
        ("{dataset: nope}", "evaluate_engine.dataset: 'nope' is no labeled set"),
        ("{dataset: s, split: test}", "evaluate_engine.split: s converts no 'test' split"),
        ("{dataset: s, limitt: 3}", "evaluate_engine.limitt: unknown field"),
        ("{dataset: s, limit: 0}", "limit"),
    ]:
        p.write_text(base + f"evaluate_engine: {section}\n")
        with pytest.raises(ConfigError, match="^" + str(p)) as e:
            PipelineConfig.from_yaml(p)
        assert message in str(e.value) and "\n" not in str(e.value)
    assert PipelineConfig.validated({}, "x").evaluate_engine is None  # no section, no stage


def test_the_demo_scores_its_engine_with_its_own_model_on_held_out_images():
    cfg = PipelineConfig.from_yaml(PROJECT_ROOT / DEMO_CONFIG)
    e = cfg.evaluate_engine
    assert e.grounding == "run" and e.engine is None and cfg.annotate.engine == "weightfree"
    assert e.dataset in cfg.evaluate.datasets and e.split == "val" and e.limit


def test_review_section_and_export_options_are_review_config(tmp_path):
    """review: the export stage's rule comes from ReviewConfig (as `unilseg review export`'s
    options do); it needs an annotate section; the reviewed version's place follows from both."""
    from annotation_engine.review.config import ReviewConfig
    from flows.config import ReviewStage

    params = {p.name: p for p in main.commands["review"].commands["export"].params if isinstance(p, click.Option)}
    for f in cli_fields(ReviewConfig):
        assert params[f.name].default == default_of(f) and params[f.name].help == f.metadata["help"]
    assert set(ReviewStage.model_fields) == {f.name for f in dataclasses.fields(ReviewConfig)} | {
        "project",
        "out_split",
        "weight",
    }
    cfg = PipelineConfig.validated({"review": {"project": "p", "by": "contrast", "lowest": 5}}, "x")
    assert cfg.reviewed_split() == cfg.dataset_dir("auto") / "reviewed" and cfg.review.weight == 1.0
    for doc, msg in [
        ({"review": {"project": "p"}}, "x: review: say which targets to review"),
        ({"annotate": None, "review": {"project": "p", "sample": 3}}, "needs an `annotate` section"),
    ]:
        with pytest.raises(ConfigError, match=msg):
            PipelineConfig.validated(doc, "x")
    assert PipelineConfig.from_yaml(PROJECT_ROOT / DEFAULT_CONFIG).review is None  # commented out there
