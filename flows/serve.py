"""Serves the deployments (one long-running process, started by `unilseg stack up`):

    annotate-and-train/demo     flows/configs/demo.yaml, read at run time
    annotate-and-train/default  flows/configs/default.yaml, read at run time
    reannotate/nightly          cron-scheduled annotation of new images (or of all images
                                again when the engine config changed)

Needs PREFECT_API_URL (from .state/stack.env) so that it registers with the local server rather than a
throwaway ephemeral API.
"""

from __future__ import annotations

import os

from prefect import serve

from flows.pipeline import DEFAULT_CONFIG, DEMO_CONFIG, annotate_and_train, reannotate

# 03:00 every night; UNILSEG_REANNOTATE_CRON overrides it (standard 5-field cron).
REANNOTATE_CRON = os.environ.get("UNILSEG_REANNOTATE_CRON", "0 3 * * *")


def deployments(demo_config: str = DEMO_CONFIG) -> list:
    """The three deployments, ready for prefect.serve."""
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
    ]


if __name__ == "__main__":
    # Schedules stay active while the stack is down, so `prefect deployment ls` keeps showing them.
    serve(*deployments(), pause_on_shutdown=False)
