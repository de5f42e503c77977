"""Typed parameters of the annotate-and-train pipeline, validated before any stage runs.

The defaults are the demo: the synthetic referring set as the labeled data, scikit-image's
bundled photos through the weight-free engine, the tiny model, evaluation on the synthetic
val split. `PipelineConfig.from_yaml(path)` reads the same fields from a file the user edits
(flows/configs/default.yaml); unknown keys fail loudly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

ROOT = Path(__file__).resolve().parents[1]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabeledSet(_Strict):
    """A labeled dataset to convert into shards (DATA_ROOT/name/split)."""

    name: str = Field(description="dataset directory name under the data root")
    format: str = Field(description="converter name (`unilseg convert --help`), or `synth-shapes` to generate")
    src: Optional[str] = Field(None, description="source folder as downloaded (synth: where to generate)")
    splits: list[str] = Field(default_factory=lambda: ["train"], description="splits to convert")
    images: Optional[str] = Field(None, description="image folder for formats whose images live apart")
    options: dict[str, Any] = Field(default_factory=dict, description="converter options")
    weight: float = Field(1.0, gt=0, description="mixing weight of its train split in training")
    synth_images: int = Field(1000, ge=1, description="synth-shapes only: number of images")

    @field_validator("format")
    @classmethod
    def _known_format(cls, v: str) -> str:
        from shards.converters import converter_names

        if v != "synth-shapes" and v not in converter_names():
            raise ValueError(f"unknown format {v!r}; known: synth-shapes, {', '.join(converter_names())}")
        return v


class AnnotateStage(_Strict):
    """Unlabeled images through the annotation engine."""

    images: str = Field("sample-photos", description="folder, glob or fsspec URL; `sample-photos` = "
                                                     "scikit-image's bundled photos")
    name: str = Field("auto", description="dataset directory name under the data root")
    engine: str = Field("weightfree", description="engine preset name or a YAML config path")
    actors: int = Field(1, ge=1, description="Ray actors running the engine")
    gpus_per_actor: float = Field(0.0, ge=0)
    weight: float = Field(0.1, gt=0, description="mixing weight of the annotated data in training")


class TrainStage(_Strict):
    """Ray Train of the UniLSeg model on every train split above."""

    preset: str = "unilseg-tiny"
    steps: int = Field(1000, ge=1, description="optimizer steps (the schedule's length; time_limit_s may stop sooner)")
    batch_size: int = Field(16, ge=2, description="global batch (BatchNorm needs >= 2)")
    lr: float = Field(1e-3, gt=0)
    workers: int = Field(2, ge=1, description="Ray Train workers (DDP ranks)")
    gpus: bool = False
    init: Optional[str] = Field(None, description="checkpoint to fine-tune from (ours or UniLSeg-20)")
    time_limit_s: Optional[float] = Field(210.0, gt=0, description="stop after this many seconds of training (the "
                                                                  "cosine follows the clock); None: run all steps")


class EvaluateStage(_Strict):
    """Evaluation of the trained checkpoint."""

    datasets: Optional[list[str]] = Field(None, description="dataset names to evaluate (default: every "
                                                            "labeled set that has the split)")
    split: str = "val"
    limit: Optional[int] = Field(None, ge=1, description="targets per dataset at most")


class PipelineConfig(_Strict):
    """Everything one annotate-and-train run needs; the defaults are the demo."""

    run_name: str = Field("demo", pattern=r"^[A-Za-z0-9_-]+$")
    data_root: str = Field("data", description="where datasets are written (relative: to the project root)")
    runs_root: str = Field("runs", description="where runs (checkpoints, reports, stage markers) go")
    ray_address: Optional[str] = Field(None, description="Ray cluster; default: UNILSEG_RAY_ADDRESS or local")
    annotate: Optional[AnnotateStage] = Field(default_factory=AnnotateStage)
    labeled: list[LabeledSet] = Field(default_factory=lambda: [LabeledSet(
        name="synth-shapes", format="synth-shapes", src="data/sources/synth-shapes", splits=["train", "val"],
        synth_images=1500)])
    train: TrainStage = Field(default_factory=TrainStage)
    evaluate: EvaluateStage = Field(default_factory=EvaluateStage)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "PipelineConfig":
        """Reads a YAML file of these fields (missing fields keep the demo defaults)."""
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f) or {}
        if not isinstance(doc, dict):
            raise ValueError(f"{path}: expected a mapping of pipeline fields, got {type(doc).__name__}")
        return cls.model_validate(doc)

    def path(self, p: str) -> Path:
        """A configured path, relative paths taken from the project root."""
        q = Path(p)
        return q if q.is_absolute() else ROOT / q

    @property
    def run_dir(self) -> Path:
        return self.path(self.runs_root) / self.run_name

    def dataset_dir(self, name: str) -> Path:
        return self.path(self.data_root) / name
