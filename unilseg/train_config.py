"""The settings of a training run: the one definition the CLI, the flows and YAML derive from.

    from unilseg.train import run_training
    from unilseg.train_config import TrainConfig
    run_training(TrainConfig(data=[("data/synth", 1.0)], out="runs/tiny", workers=2, steps=2000))

Every field is declared once with its default, help text and bounds (common.settings):
`unilseg train --help` lists them, the pipeline YAML's `train:` section accepts them (but
the run wiring: data, out, ray_address, name), and bad values fail here, before Ray starts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from common.settings import SettingsError, check_settings, from_dict, setting
from shards import storage


@dataclass
class TrainConfig:
    """One training run."""

    preset: str | None = setting(
        None, "model preset name or JSON path [default: the config saved in --init, else the default preset]"
    )
    data: list = setting(help="(dataset or split dir, mixing weight) pairs", factory=list, cli=False)
    out: str = setting("runs/train", "run directory: checkpoints, metrics, Ray Train state", cli=False)
    workers: int = setting(1, "Ray Train workers (DDP ranks)", min=1)
    gpus: bool = setting(False, "one GPU per worker (nccl) instead of CPU (gloo)")
    steps: int = setting(1000, "optimizer steps in total (a resumed run continues to this count)", min=1)
    batch_size: int = setting(16, "global batch; each worker takes batch_size / workers (>= 2: BatchNorm)", min=2)
    lr: float = setting(1e-3, "peak AdamW learning rate", min=0)
    weight_decay: float = setting(0.01, "AdamW weight decay", min=0)
    warmup_steps: int = setting(50, "linear warm-up steps", min=0)
    min_lr_ratio: float = setting(0.05, "the cosine decays to lr * min_lr_ratio at the last step", min=0, max=1)
    grad_clip: float = setting(1.0, "max gradient norm (0 = no clipping)", min=0)
    aux_weight: float = setting(0.5, "weight of the auxiliary decoder-layer losses", min=0)
    bce_weight: float = setting(1.0, "weight of binary cross-entropy in every mask loss", min=0)
    dice_weight: float = setting(1.0, "weight of the Dice loss in every mask loss", min=0)
    checkpoint_every: int = setting(200, "steps between checkpoints (the last step is always saved)", min=1)
    log_every: int = setting(10, "steps between metric reports", min=1)
    keep_checkpoints: int = setting(2, "step checkpoints kept in RUN/checkpoints and by Ray", min=1)
    init: str | None = setting(
        None,
        "checkpoint to start from when RUN has none (ours, or the released "
        "UniLSeg20_no_finetune.pth with --preset unilseg-swin-b)",
    )
    seed: int = setting(0, "seed of weights, data order and augmentation")
    num_loader_workers: int = setting(1, "DataLoader processes per Ray worker", min=0, cli="--loader-workers")
    augment: dict | None = setting(
        help="unilseg.data.AugmentConfig fields; None = letterbox only", factory=dict, cli=False
    )
    shuffle_buffer: int = setting(256, "targets held for shuffling per reader", min=1)
    max_skipped_fraction: float = setting(
        0.01,
        "broken targets (an image or RLE that does not decode, a mask of "
        "another size) a worker may skip, as a fraction of the targets it read "
        "(of at least 1000): more stop training with an error",
        min=0,
        max=1,
    )
    threads_per_worker: int = setting(1, "torch threads per Ray worker", min=1)
    niceness: int | None = setting(
        None, "OS priority of the workers [default: the caller's; Ray would start them at 15]", min=-20, max=19
    )
    max_failures: int = setting(2, "worker-group restarts allowed (each resumes from the last checkpoint)", min=0)
    ray_address: str | None = setting(
        None, "Ray cluster address [default: UNILSEG_RAY_ADDRESS or a private local Ray on 127.0.0.1]"
    )
    name: str = setting("train", "Ray Train run name (its state lives in RUN/<name>)", cli=False)
    time_limit_s: float | None = setting(
        None,
        "training-time budget in seconds: stop and save when it is used (the cosine then follows the clock)",
        min=0,
    )

    def __post_init__(self) -> None:
        check_settings(self)
        self.data = [(storage.normalize(p), float(w)) for p, w in self.data]
        if self.batch_size % self.workers or self.batch_size // self.workers < 2:
            raise SettingsError(
                f"batch_size {self.batch_size} must be a multiple of workers {self.workers} with "
                "at least 2 per worker (BatchNorm in the head needs batch >= 2)"
            )
        if self.augment is not None:
            from unilseg.data.augment import AugmentConfig  # checks the augmentation fields now, not in a worker

            from_dict(AugmentConfig, self.augment, "TrainConfig.augment")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of ``asdict``; an unknown key fails and is named."""
        return from_dict(cls, d)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Fields that wire a run into its surroundings rather than shape the training; the pipeline
# YAML sets them from its own structure (data roots, run names).
RUN_WIRING = ("data", "out", "ray_address", "name")
