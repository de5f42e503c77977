"""`train` flow: Ray Train of the UniLSeg model on a mix of shard datasets."""

from __future__ import annotations

from typing import Any, Optional

from prefect import flow, get_run_logger, task

from flows.config import StorageOptions, TrainStage, unmask
from unilseg.train import run_training
from unilseg.train_config import TrainConfig


# A lost worker is handled inside Ray Train (FailureConfig, resume from the latest
# checkpoint); a retry here covers a lost connection to the cluster and resumes the same way.
@task(name="ray-train", retries=1, retry_delay_seconds=10)
def train_task(data: list[tuple[str, float]], out: str, settings: dict[str, Any],
               ray_address: Optional[str], storage_options: Optional[StorageOptions] = None) -> dict[str, Any]:
    result = run_training(TrainConfig(data=data, out=out, ray_address=ray_address, **settings),
                          storage_options=unmask(storage_options))
    return {"checkpoint": str(result["checkpoint"]), "step": int(result["step"]),
            "metrics": {k: float(v) for k, v in (result.get("metrics") or {}).items()
                        if isinstance(v, (int, float))}}


@flow(name="train", log_prints=True)
def train(data: list[tuple[str, float]], out: str, stage: TrainStage,
          ray_address: Optional[str] = None, storage_options: Optional[StorageOptions] = None) -> dict[str, Any]:
    """Trains on DATA (dataset or split dirs with mixing weights) into the run dir OUT (local
    paths or URLs; storage_options are masked in Prefect).

    Resumes from OUT's latest checkpoint; a finished run returns at once.
    """
    log = get_run_logger()
    result = train_task(data, out, stage.settings(), ray_address, storage_options)
    log.info("trained %s to step %d: %s (%s)", stage.preset or "the default preset", result["step"],
             result["checkpoint"], result["metrics"])
    return result
