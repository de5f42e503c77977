"""Typed parameters of the annotate-and-train pipeline, validated before any stage runs.

The stage sections are derived from the library's settings dataclasses, the one definition
of each setting: `train:` takes TrainConfig's fields (but the run wiring: data, out,
ray_address, name), `annotate:` AnnotateConfig's plus the pipeline's own (images, dataset
name, mixing weight), `evaluate:` EvalConfig's plus the datasets to score. Defaults, bounds
and help texts come from there; a bad value fails with the library's own message.
`PipelineConfig.from_yaml(path)` reads a file the user edits (flows/configs/*.yaml); an
unknown key, a wrong type or a bad value fails before any stage as one ConfigError line naming
the file and each field (`train.stepz: unknown field ...`), not a pydantic traceback. Relative
paths are taken from the project root (flows/paths.py); `data_root` and `runs_root` may be
fsspec URLs (s3://bucket/x), and `storage_options` (fsspec options for them: keys, endpoint)
is a pydantic Secret: it shows as '**********' in the config's repr and dumps. The flows get
locations (`run_dir`, `dataset_dir`, `locate`): shards.storage.Locations that carry these
options to the storage calls and show, serialize and get recorded by Prefect as their URL only.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, ClassVar, Optional

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Secret,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from annotation_engine.quality.config import EngineEvalConfig
from annotation_engine.review.config import ReviewConfig
from annotation_engine.run_config import AnnotateConfig
from common.errors import MissingInputError, UniLSegError
from common.settings import default_of, field_types
from flows.paths import resolve
from shards.converters import converter_names
from shards.sample_photos import SAMPLE_PHOTOS_SOURCE
from shards.storage import Location
from unilseg.eval.config import EvalConfig
from unilseg.train_config import RUN_WIRING, TrainConfig

SYNTH_FORMAT = "synth-shapes"  # a labeled set generated on the fly (shards.synth), then converted


class ConfigError(UniLSegError):
    """A pipeline config that does not validate; the message names the file and every bad field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _SettingsSection(_Strict):
    """A section whose fields mirror a settings dataclass; the dataclass checks the values."""

    settings_cls: ClassVar[type]

    @model_validator(mode="after")
    def _check_with_library(self):
        names = {f.name for f in dataclasses.fields(self.settings_cls)}
        self.settings_cls(**{k: getattr(self, k) for k in type(self).model_fields if k in names})
        return self

    def settings(self) -> dict[str, Any]:
        """The values that belong to the settings dataclass (to pass to the library)."""
        names = {f.name for f in dataclasses.fields(self.settings_cls)}
        return {k: v for k, v in self.model_dump().items() if k in names}


def settings_section(model_name: str, cls: type, exclude: tuple[str, ...] = (), **extra: Any) -> type[_SettingsSection]:
    """A pydantic model with one field per field of the dataclass `cls` (same type, default and
    help) but `exclude`, plus `extra` fields ((type, Field) pairs)."""
    types_ = field_types(cls)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        default = default_of(f)
        fields[f.name] = (
            types_[f.name],
            Field(... if default is dataclasses.MISSING else default, description=f.metadata.get("help")),
        )
    model = create_model(model_name, __base__=_SettingsSection, **extra, **fields)
    model.settings_cls = cls
    model.__doc__ = f"Pipeline section mirroring {cls.__module__}.{cls.__name__}."
    return model


TrainStage = settings_section("TrainStage", TrainConfig, exclude=RUN_WIRING)
AnnotateStage = settings_section(
    "AnnotateStage",
    AnnotateConfig,
    exclude=("ray_address",),
    images=(
        str,
        Field(
            SAMPLE_PHOTOS_SOURCE,
            description=f"folder, glob or fsspec URL; `{SAMPLE_PHOTOS_SOURCE}` = scikit-image's bundled photos",
        ),
    ),
    name=(str, Field("auto", description="dataset directory name under the data root")),
    weight=(float, Field(1.0, gt=0, description="mixing weight of the annotated data in training")),
)
EvaluateStage = settings_section(
    "EvaluateStage",
    EvalConfig,
    datasets=(
        Optional[list[str]],
        Field(None, description="dataset names to evaluate (default: every labeled set that has the split)"),
    ),
)

RUN_MODEL = "run"  # evaluate_engine.grounding: the run's own trained checkpoint
EvaluateEngineStage = settings_section(
    "EvaluateEngineStage",
    EngineEvalConfig,
    exclude=("ray_address",),
    dataset=(str, Field(description="the labeled set (its `name`) whose split the engine is scored on")),
    engine=(
        Optional[str],
        Field(None, description="preset name or engine YAML [default: the annotate section's engine]"),
    ),
    grounding=(
        Optional[str],
        Field(
            RUN_MODEL,
            description=f"`{RUN_MODEL}`: the run's trained model reads the generated expressions back (the stage "
            "runs after training); a checkpoint path/URL; null: MiniLM similarity (runs after conversion)",
        ),
    ),
)


ReviewStage = settings_section(
    "ReviewStage",
    ReviewConfig,
    project=(str, Field(description="Label Studio project the annotated split's targets go to")),
    out_split=(
        str,
        Field(
            "reviewed",
            pattern=r"^[A-Za-z0-9_-]+$",
            description="the reviewed version: DATA/<annotate.name>/<out_split>",
        ),
    ),
    weight=(
        float,
        Field(1.0, gt=0, description="mixing weight of the reviewed version in training (in place of annotate's)"),
    ),
)


class LabeledSet(_Strict):
    """A labeled dataset to convert into shards (DATA_ROOT/name/split)."""

    name: str = Field(description="dataset directory name under the data root")
    format: str = Field(description=f"converter name (`unilseg convert --help`), or `{SYNTH_FORMAT}` to generate")
    src: Optional[str] = Field(None, description="source folder as downloaded (synth: where to generate)")
    splits: list[str] = Field(default_factory=lambda: ["train"], description="splits to convert")
    images: Optional[str] = Field(None, description="image folder for formats whose images live apart")
    options: dict[str, Any] = Field(default_factory=dict, description="converter options")
    weight: float = Field(1.0, gt=0, description="mixing weight of its train split in training")
    synth_images: int = Field(1000, ge=1, description=f"{SYNTH_FORMAT} only: number of images")
    synth_seed: int = Field(
        0,
        ge=0,
        description=f"{SYNTH_FORMAT} only: the generator's seed (another seed: other "
        "images from the same distribution, e.g. a held-out test set)",
    )

    @field_validator("format")
    @classmethod
    def _known_format(cls, v: str) -> str:
        if v != SYNTH_FORMAT and v not in converter_names():
            raise ValueError(f"unknown format {v!r}; known: {SYNTH_FORMAT}, {', '.join(converter_names())}")
        return v


class PipelineConfig(_Strict):
    """Everything one annotate-and-train run needs (flows/configs/ has the demo and a template)."""

    run_name: str = Field("default", pattern=r"^[A-Za-z0-9_-]+$")
    data_root: str = Field("data", description="where datasets are written (relative: to the project root)")
    runs_root: str = Field("runs", description="where runs (checkpoints, reports, stage markers) go")
    ray_address: Optional[str] = Field(None, description="Ray cluster; default: UNILSEG_RAY_ADDRESS or local")
    storage_options: Secret[dict[str, Any]] = Field(
        default_factory=lambda: Secret({}),
        description="fsspec options for data_root/runs_root URLs (key, secret, endpoint_url, ...; default: the "
        "AWS credential chain and AWS_ENDPOINT_URL); masked in Prefect, never logged or written",
    )
    annotate: Optional[AnnotateStage] = Field(default_factory=AnnotateStage)  # type: ignore[valid-type]
    labeled: list[LabeledSet] = Field(default_factory=list)
    train: TrainStage = Field(default_factory=TrainStage)  # type: ignore[valid-type]
    evaluate: EvaluateStage = Field(default_factory=EvaluateStage)  # type: ignore[valid-type]
    evaluate_engine: Optional[EvaluateEngineStage] = None  # type: ignore[valid-type]
    review: Optional[ReviewStage] = None  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _review_needs_annotation(self):
        if self.review is not None and self.annotate is None:
            raise ValueError("review: reviews the annotated split: the config needs an `annotate` section")
        return self

    @model_validator(mode="after")
    def _engine_eval_scores_a_labeled_set(self):
        e = self.evaluate_engine
        if e is None:
            return self
        sets = {s.name: s for s in self.labeled}
        if e.dataset not in sets:
            raise ValueError(f"evaluate_engine.dataset: {e.dataset!r} is no labeled set (labeled: {list(sets)})")
        if e.split not in sets[e.dataset].splits:
            splits = sets[e.dataset].splits
            raise ValueError(f"evaluate_engine.split: {e.dataset} converts no {e.split!r} split (it has {splits})")
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> PipelineConfig:
        """Reads a YAML file of these fields (missing fields keep their defaults).

        Raises:
            MissingInputError: no such file.
            ConfigError: not YAML, not a mapping, or fields that do not validate (all named).
        """
        if not Path(path).is_file():
            raise MissingInputError(f"pipeline config {path} does not exist")
        try:
            with open(path, encoding="utf-8") as f:
                doc = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"{path}: expected a mapping of pipeline fields, got {type(doc).__name__}")
        return cls.validated(doc, str(path))

    @classmethod
    def validated(cls, doc: dict[str, Any], source: str) -> PipelineConfig:
        """model_validate, with every error in one line naming `source` (a file) and the field."""
        try:
            return cls.model_validate(doc)
        except ValidationError as e:
            raise ConfigError(f"{source}: " + "; ".join(_describe(err) for err in e.errors())) from None

    def locate(self, loc: str | Path) -> Location:
        """A location of this run's storage (relative: from the project root) with the
        config's storage options: how the flows reach data_root, runs_root and what the
        stages recorded under them."""
        return Location(resolve(loc), self.storage_options.get_secret_value())

    @property
    def data_location(self) -> Location:
        """DATA_ROOT, with the storage options."""
        return self.locate(self.data_root)

    @property
    def run_dir(self) -> Location:
        """RUNS_ROOT/<run_name>, with the storage options."""
        return self.locate(self.runs_root) / self.run_name

    def dataset_dir(self, name: str) -> Location:
        """DATA_ROOT/<name>, with the storage options."""
        return self.data_location / name

    def reviewed_split(self) -> Optional[Location]:
        """DATA_ROOT/<annotate.name>/<review.out_split>: where the reviewed version goes (None
        without a review section)."""
        if self.review is None or self.annotate is None:
            return None
        return self.dataset_dir(self.annotate.name) / self.review.out_split


def _describe(err: dict[str, Any]) -> str:
    """One pydantic error as "section.field: what is wrong"."""
    loc = ".".join(f"[{x}]" if isinstance(x, int) else str(x) for x in err["loc"]).replace(".[", "[")
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        known = _known_fields(err["loc"][:-1])
        return f"{loc}: unknown field" + (f" (known: {', '.join(known)})" if known else "")
    if err["type"] == "value_error":  # our own checks: the library's message names the setting
        return f"{loc}: {msg.removeprefix('Value error, ')}" if loc else msg.removeprefix("Value error, ")
    return f"{loc}: {msg} (got {err.get('input')!r})"


def _known_fields(loc: tuple) -> list[str]:
    """The field names of the model at `loc` in PipelineConfig ([] when it cannot be told)."""
    model: Any = PipelineConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        tp = field.annotation
        for arg in (tp, *typing.get_args(tp), *[a for t in typing.get_args(tp) for a in typing.get_args(t)]):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                model = arg
                break
        else:
            return []
    return sorted(getattr(model, "model_fields", {}))
