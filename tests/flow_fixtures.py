"""A tiny pipeline config for flow tests: 48 synthetic images, two small photos, a few steps."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from flows.config import AnnotateStage, EvaluateStage, LabeledSet, PipelineConfig, TrainStage
from shards.sample_photos import load_sample_photo


def tiny_photos(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("coffee", "chelsea"):
        img = Image.fromarray(load_sample_photo(name))
        img.thumbnail((160, 160))
        img.save(folder / f"{name}.jpg", quality=92)
    return folder


def tiny_config(root: Path, run_name: str = "t") -> PipelineConfig:
    return PipelineConfig(
        run_name=run_name,
        data_root=str(root / "data"),
        runs_root=str(root / "runs"),
        annotate=AnnotateStage(images=str(tiny_photos(root / "photos")), name="auto", engine="weightfree"),
        labeled=[
            LabeledSet(
                name="synth",
                format="synth-shapes",
                src=str(root / "src" / "synth"),
                splits=["train", "val"],
                synth_images=48,
            )
        ],
        train=TrainStage(steps=3, batch_size=4, workers=1),
        evaluate=EvaluateStage(split="val", limit=8),
    )
