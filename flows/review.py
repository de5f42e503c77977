"""The review loop's flows: `review` (a stage of annotate-and-train: the least certain targets of
the annotated split go to a Label Studio project) and `review-import` (a deployment, on a schedule
and by hand: the finished reviews become the reviewed version, DATA/<annotate.name>/<out_split>,
which the next annotate-and-train run trains on with the section's weight).

Label Studio is found through LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY (the stack gives them to
the process serving the deployments; `unilseg stack up` writes them to .state/stack.env).
"""

from __future__ import annotations

from typing import Any, Optional

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact

from annotation_engine.review.config import ReviewConfig
from annotation_engine.review.export import export_for_review, import_reviews
from flows.config import ReviewStage
from flows.stages import retry_unless_user_error
from shards import storage
from shards.storage import Location


@task(name="review-export", retries=2, retry_delay_seconds=10, retry_condition_fn=retry_unless_user_error)
def export_task(split: str | Location, stage: ReviewStage) -> dict[str, Any]:
    return export_for_review(split, stage.project, ReviewConfig(**stage.settings()))


@flow(name="review", log_prints=True)
def review(split: str | Location, stage: ReviewStage) -> dict[str, Any]:
    """Puts the split's least certain targets (the stage's rule) into the stage's Label Studio
    project; publishes the project's link. Targets already in the project are not added again."""
    log = get_run_logger()
    r = export_task(split, stage)
    log.info("review: %s targets chosen, %s added to %s: %s", r["picked"], r["added"], r["project"], r["url"])
    create_link_artifact(
        key=f"review-{_slug(stage.project)}", link=r["url"], description=f"Label Studio project {stage.project}"
    )
    return r


@task(name="review-import-split", retries=2, retry_delay_seconds=10, retry_condition_fn=retry_unless_user_error)
def import_task(split: str | Location, out: str | Location, project: str) -> dict[str, Any]:
    return storage.urls_only(import_reviews(project, split, out))


@flow(name="review-import", log_prints=True)
def review_import(config_path: Optional[str] = None) -> dict[str, Any]:
    """Reads the finished reviews of the config's review project and writes the reviewed version
    of the annotated split; a run with no new review changes nothing."""
    from flows.pipeline import DEFAULT_CONFIG, load_config  # the pipeline imports this module

    log = get_run_logger()
    cfg = load_config(None, config_path or DEFAULT_CONFIG)
    if cfg.review is None:
        log.info("%s has no `review` section: nothing to import", config_path or DEFAULT_CONFIG)
        return {}
    split = cfg.dataset_dir(cfg.annotate.name) / cfg.annotate.split
    r = import_task(split, cfg.reviewed_split(), cfg.review.project)
    for p in r["problems"]:
        log.warning("review-import: %s (left out)", p)
    log.info("review-import: %s", {k: v for k, v in r.items() if k != "problems"})
    return r


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") or "project"
