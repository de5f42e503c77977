"""`train` flow: Ray Train of the UniLSeg model on a mix of shard datasets."""

from __future__ import annotations

from typing import Any, Optional

from prefect import flow, get_run_logger, task


# A lost worker is handled inside Ray Train (FailureConfig, resume from the latest
# checkpoint); a retry here covers a lost connection to the cluster and resumes the same way.
@task(name="ray-train", retries=1, retry_delay_seconds=10)
def train_task(preset: str, data: list[tuple[str, float]], out: str, steps: int, batch_size: int, lr: float,
               workers: int, gpus: bool, init: Optional[str], ray_address: Optional[str],
               time_limit_s: Optional[float] = None) -> dict[str, Any]:
    from unilseg.train import TrainConfig, run_training

    cfg = TrainConfig(preset=preset, data=[(p, w) for p, w in data], out=out, steps=steps, batch_size=batch_size,
                      lr=lr, workers=workers, gpus=gpus, init=init, ray_address=ray_address, time_limit_s=time_limit_s)
    result = run_training(cfg)
    return {"checkpoint": str(result["checkpoint"]), "step": int(result["step"]),
            "metrics": {k: float(v) for k, v in (result.get("metrics") or {}).items()
                        if isinstance(v, (int, float))}}


@flow(name="train", log_prints=True)
def train(data: list[tuple[str, float]], out: str, preset: str = "unilseg-tiny", steps: int = 300,
          batch_size: int = 16, lr: float = 1e-3, workers: int = 1, gpus: bool = False, init: Optional[str] = None,
          ray_address: Optional[str] = None, time_limit_s: Optional[float] = None) -> dict[str, Any]:
    """Trains PRESET on DATA (dataset or split dirs with mixing weights) into the run dir OUT.

    Resumes from OUT's latest checkpoint; a finished run returns at once. With `time_limit_s`
    training stops after that many seconds (the learning-rate schedule follows the clock).
    """
    log = get_run_logger()
    result = train_task(preset, data, out, steps, batch_size, lr, workers, gpus, init, ray_address, time_limit_s)
    log.info("trained %s to step %d: %s (%s)", preset, result["step"], result["checkpoint"], result["metrics"])
    return result
