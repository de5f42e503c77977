"""`annotate` flow: unlabeled images -> the annotation engine in Ray actors -> shards.

Incremental by construction: images whose (sha256, engine version) are already in the
dataset are skipped, so the scheduled re-annotation deployment only pays for new images or
for an engine whose config changed.
"""

from __future__ import annotations

from typing import Any, Optional

from prefect import flow, get_run_logger, task

from annotation_engine.driver import annotate_images
from flows.artifacts import ProgressArtifact, summarize_dataset
from flows.config import AnnotateStage
from flows.paths import resolve
from shards import storage
from shards.sample_photos import SAMPLE_PHOTOS_SOURCE, export_sample_photos
from shards.storage import Location


@task(name="prepare-sample-photos")
def prepare_sample_photos(out: str | Location) -> str | Location:
    """scikit-image's bundled photos as a folder (the demo's unlabeled images; a local path or URL)."""
    export_sample_photos(out)
    return out


# Ray connection hiccups and actor-pool start-up are the transient failures here; the
# driver skips what it already wrote, so a retry only redoes the unfinished images.
@task(name="annotate-images", retries=2, retry_delay_seconds=10)
def annotate_images_task(images: str | Location, out: str | Location, settings: dict[str, Any]) -> dict[str, Any]:
    summary = annotate_images(images, out, progress=False, on_progress=ProgressArtifact(storage.name(out)), **settings)
    return storage.urls_only(summary)


@flow(name="annotate", log_prints=True)
def annotate(
    stage: AnnotateStage,
    out: str | Location,
    ray_address: Optional[str] = None,
    preview_dir: str | Location | None = None,
) -> dict[str, Any]:
    """Annotates every new image of the stage's `images` into the dataset OUT.

    Args:
        stage: images, engine, actors, ... (flows.config.AnnotateStage).
        out: dataset directory (shards go to OUT/<split>); a local path or URL (a Location
            carries its storage options).
        ray_address: Ray cluster; default UNILSEG_RAY_ADDRESS or a local Ray.
        preview_dir: where to write preview sheets (default OUT/previews).
    """
    log = get_run_logger()
    out_loc = resolve(out)
    name = storage.name(out_loc)
    images = stage.images
    if images == SAMPLE_PHOTOS_SOURCE:
        images = prepare_sample_photos(storage.join(storage.parent(out_loc), "sources", SAMPLE_PHOTOS_SOURCE))
    summary = annotate_images_task(resolve(images), out_loc, {**stage.settings(), "ray_address": ray_address})
    log.info(
        "annotated %s: %d written, %d skipped (already done), %d quarantined; engine %s",
        name,
        summary["written"],
        summary["skipped"],
        summary["quarantined"],
        summary["engine_version"],
    )
    summary_doc = summarize_dataset(name, out_loc, preview_dir or storage.join(out_loc, "previews"))
    return {
        "dataset": str(out_loc),
        "split": stage.split,
        "written": summary["written"],
        "skipped": summary["skipped"],
        "quarantined": summary["quarantined"],
        "engine_version": summary["engine_version"],
        "previews": summary_doc["previews"],
    }
