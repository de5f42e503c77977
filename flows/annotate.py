"""`annotate` flow: unlabeled images -> the annotation engine in Ray actors -> shards.

Incremental by construction: images whose (sha256, engine version) are already in the
dataset are skipped, so the scheduled re-annotation deployment only pays for new images or
for an engine whose config changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from prefect import flow, get_run_logger, task

from flows.artifacts import summarize_dataset
from flows.config import ROOT


@task(name="prepare-sample-photos")
def prepare_sample_photos(out: str) -> str:
    """scikit-image's bundled photos as a folder (the demo's unlabeled images)."""
    from shards.sample_photos import export_sample_photos

    export_sample_photos(out)
    return out


# Ray connection hiccups and actor-pool start-up are the transient failures here; the
# driver skips what it already wrote, so a retry only redoes the unfinished images.
@task(name="annotate-images", retries=2, retry_delay_seconds=10)
def annotate_images_task(images: str, out: str, engine: str, actors: int, gpus_per_actor: float,
                         ray_address: Optional[str]) -> dict[str, Any]:
    from annotation_engine.run import annotate_images

    return annotate_images(images, out, engine=engine, actors=actors, gpus_per_actor=gpus_per_actor,
                           ray_address=ray_address, progress=False)


@flow(name="annotate", log_prints=True)
def annotate(images: str = "sample-photos", out: str = "data/auto", engine: str = "weightfree", actors: int = 1,
             gpus_per_actor: float = 0.0, ray_address: Optional[str] = None,
             preview_dir: Optional[str] = None) -> dict[str, Any]:
    """Annotates every new image under IMAGES into the dataset OUT.

    Args:
        images: folder, glob or fsspec URL; `sample-photos` = scikit-image's bundled photos.
        out: dataset directory (shards go to OUT/train).
        engine: engine preset name or YAML path.
        actors: Ray actors running the engine.
        gpus_per_actor: GPUs per actor (0 on CPU).
        ray_address: Ray cluster; default UNILSEG_RAY_ADDRESS or a local Ray.
        preview_dir: where to write preview sheets (default OUT/previews).
    """
    log = get_run_logger()
    out_path = Path(out) if Path(out).is_absolute() else ROOT / out
    if images == "sample-photos":
        images = prepare_sample_photos(str(out_path.parent / "sources" / "sample-photos"))
    summary = annotate_images_task(images, str(out_path), engine, actors, gpus_per_actor, ray_address)
    log.info("annotated %s: %d written, %d skipped (already done), %d quarantined; engine %s",
             out_path.name, summary["written"], summary["skipped"], summary["quarantined"],
             summary["engine_version"])
    summary_doc = summarize_dataset(out_path.name, str(out_path), preview_dir or str(out_path / "previews"))
    return {"dataset": str(out_path), "written": summary["written"], "skipped": summary["skipped"],
            "quarantined": summary["quarantined"], "engine_version": summary["engine_version"],
            "previews": summary_doc["previews"]}
