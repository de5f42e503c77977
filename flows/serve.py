"""Serves the deployments (one long-running process, started by `unilseg stack up`):

    annotate-and-train/demo     flows/configs/demo.yaml, read at run time
    annotate-and-train/default  flows/configs/default.yaml, read at run time
    reannotate/nightly          cron-scheduled annotation of new images (or of all images
                                again when the engine config changed)
    review-import/default       hourly (and by hand): the review project's finished reviews ->
                                the reviewed version of the annotated split (default.yaml's
                                `review:` section; without one it does nothing)

Needs PREFECT_API_URL (from .state/stack.env) so that it registers with the local server rather than a
throwaway ephemeral API.
"""

from __future__ import annotations

import os

from prefect import serve

from flows.pipeline import DEFAULT_CONFIG, DEMO_CONFIG, annotate_and_train, reannotate
from flows.review import review_import

# 03:00 every night; UNILSEG_REANNOTATE_CRON overrides it (standard 5-field cron).
REANNOTATE_CRON = os.environ.get("UNILSEG_REANNOTATE_CRON", "0 3 * * *")
# every hour at :17; UNILSEG_REVIEW_IMPORT_CRON overrides it.
REVIEW_IMPORT_CRON = os.environ.get("UNILSEG_REVIEW_IMPORT_CRON", "17 * * * *")


def deployments(demo_config: str = DEMO_CONFIG) -> list:
    """The four deployments, ready for prefect.serve."""
    return [
        annotate_and_train.to_deployment(
            name="demo",
            parameters={"config_path": demo_config},
            description="The demo: synthetic set, sample photos, tiny model",
        ),
        annotate_and_train.to_deployment(
            name="default", parameters={"config_path": DEFAULT_CONFIG}, description=f"Parameters from {DEFAULT_CONFIG}"
        ),
        reannotate.to_deployment(
            name="nightly",
            cron=REANNOTATE_CRON,
            parameters={"config_path": DEFAULT_CONFIG},
            description="Annotate new images; everything again when the engine changed",
        ),
        review_import.to_deployment(
            name="default",
            cron=REVIEW_IMPORT_CRON,
            parameters={"config_path": DEFAULT_CONFIG},
            description="Finished reviews in Label Studio -> the reviewed version of the annotated split",
        ),
    ]


if __name__ == "__main__":
    # Schedules stay active while the stack is down, so `prefect deployment ls` keeps showing them.
    serve(*deployments(), pause_on_shutdown=False)
