"""`train` flow: Ray Train of the UniLSeg model on a mix of shard datasets."""

from __future__ import annotations

from typing import Any, Optional

from prefect import flow, get_run_logger, task

from flows.artifacts import publish_image
from flows.config import TrainStage
from flows.stages import retry_unless_user_error
from shards import storage
from shards.storage import Location
from unilseg.train import run_training
from unilseg.train_config import TrainConfig


# A lost worker is handled inside Ray Train (FailureConfig, resume from the latest
# checkpoint); a retry here covers a lost connection to the cluster and resumes the same way.
@task(name="ray-train", retries=1, retry_delay_seconds=10, retry_condition_fn=retry_unless_user_error)
def train_task(
    data: list[tuple[str | Location, float]],
    out: str | Location,
    settings: dict[str, Any],
    ray_address: Optional[str],
) -> dict[str, Any]:
    log = get_run_logger()  # one line per logged step, from the driver (Ray's own output stays off)
    result = run_training(
        TrainConfig(data=data, out=out, ray_address=ray_address, **settings),
        echo=log.info,
    )
    return {
        "checkpoint": str(result["checkpoint"]),
        "step": int(result["step"]),
        "loss_curve": storage.urls_only(result.get("loss_curve")),
        "metrics": {k: float(v) for k, v in (result.get("metrics") or {}).items() if isinstance(v, (int, float))},
    }


@flow(name="train", log_prints=True)
def train(
    data: list[tuple[str | Location, float]],
    out: str | Location,
    stage: TrainStage,
    ray_address: Optional[str] = None,
) -> dict[str, Any]:
    """Trains on DATA (dataset or split dirs with mixing weights) into the run dir OUT (local
    paths or URLs; Locations carry their storage options).

    Resumes from OUT's latest checkpoint; a finished run returns at once.
    """
    log = get_run_logger()
    settings = stage.settings()
    if settings.get("init"):  # a checkpoint to start from is reached with the run's storage options
        settings["init"] = storage.like(out, settings["init"])
    result = train_task(data, out, settings, ray_address)
    log.info(
        "trained %s to step %d: %s (%s)",
        stage.preset or "the default preset",
        result["step"],
        result["checkpoint"],
        result["metrics"],
    )
    if result.get("loss_curve"):  # published as the stage finishes, not at the end of the pipeline
        publish_image(
            f"loss-{storage.name(out)}",
            storage.like(out, result["loss_curve"]),
            f"Training loss of {out}",
            f"loss = bce + dice (+ auxiliary decoder losses) at step {result['step']}",
        )
    return result
