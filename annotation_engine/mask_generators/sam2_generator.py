"""SAM 2.1 (Hiera backbones) automatic mask generation as a mask generator.

``sam2`` builds one of the ``sam2`` package's SAM 2.1 configs (hiera_t / s / b+ / l)
through the package's own Hydra builder and loads a checkpoint of Meta's release with
``torch.load(weights_only=True)`` (strict). ``sam2-tiny`` is a small randomly initialised
SAM 2.1 built by the same builder with overrides (image size 256, a 5-block Hiera of
width 24), for tests and CPU smoke runs. Masks come from ``SAM2AutomaticMaskGenerator``
as it is, with the same scores as ``sam`` (predicted_iou, stability_score).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from annotation_engine.engine_config import path_identity
from annotation_engine.mask_generators import Proposal
from annotation_engine.registry import MASK_GENERATORS

CONFIGS = ("sam2.1_hiera_t", "sam2.1_hiera_s", "sam2.1_hiera_b+", "sam2.1_hiera_l")
# Hydra overrides of sam2.1_hiera_t for the tiny test model: 256 px input, Hiera of width
# 24 with stages [1, 1, 2, 1], the video-memory modules one layer deep (unused on images)
TINY_OVERRIDES = [
    "++model.image_size=256",
    "++model.image_encoder.trunk.embed_dim=24",
    "++model.image_encoder.trunk.num_heads=1",
    "++model.image_encoder.trunk.stages=[1,1,2,1]",
    "++model.image_encoder.trunk.global_att_blocks=[3]",
    "++model.image_encoder.neck.backbone_channel_list=[192,96,48,24]",
    "++model.memory_attention.num_layers=1",
    "++model.memory_attention.layer.dim_feedforward=256",
    "++model.memory_encoder.fuser.num_layers=1",
]


def load_sam2(
    config: str, checkpoint: str | None, device: str = "cpu", overrides: list[str] | None = None, seed: int = 0
):
    """A SAM2Base of a SAM 2.1 config, with the checkpoint's weights (strict), in eval mode.

    Args:
        config (str): one of CONFIGS.
        checkpoint (str | None): .pt of Meta's release ({"model": state_dict}); None keeps
            the random initialisation (seeded).
        device (str): torch device.
        overrides (list[str] | None): extra Hydra overrides (the tiny model's).
        seed (int): seed of the random initialisation.

    Raises:
        KeyError: an unknown config.
        FileNotFoundError: the checkpoint path does not exist.
    """
    import torch
    from sam2.build_sam import build_sam2

    if config not in CONFIGS:
        raise KeyError(f"unknown SAM 2.1 config {config!r}; known: {', '.join(CONFIGS)}")
    if checkpoint is not None and not os.path.exists(checkpoint):
        raise FileNotFoundError(f"SAM 2 checkpoint {checkpoint} does not exist")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # the package's builder; its own loader is bypassed so that we load strictly here
        model = build_sam2(
            f"configs/sam2.1/{config}.yaml", ckpt_path=None, device="cpu", hydra_overrides_extra=list(overrides or [])
        )
    if checkpoint is not None:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"] if "model" in state else state, strict=True)
    return model.to(device).eval()


@MASK_GENERATORS.register("sam2")
class Sam2Generator:
    """The sam2 package's SAM2AutomaticMaskGenerator with its parameters exposed.

    Args:
        config (str): SAM 2.1 config: sam2.1_hiera_t, _s, _b+ or _l.
        checkpoint (str | None): .pt of Meta's release matching the config (None: random
            weights, for tests only).
        points_per_side, points_per_batch, pred_iou_thresh, stability_score_thresh,
        stability_score_offset, box_nms_thresh, crop_n_layers, crop_nms_thresh,
        crop_overlap_ratio, crop_n_points_downscale_factor, min_mask_region_area: as for
            ``sam`` (SAM 2's defaults: pred_iou_thresh 0.8).
        use_m2m (bool): SAM 2's one-step refinement of each mask with its own logits.
        device (str): torch device.
    """

    _overrides: list[str] = []

    def __init__(
        self,
        config: str = "sam2.1_hiera_l",
        checkpoint: str | None = None,
        points_per_side: int = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.8,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        min_mask_region_area: int = 0,
        use_m2m: bool = False,
        device: str = "cpu",
    ):
        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

        if checkpoint is None and not self._overrides:
            raise ValueError(
                f"SAM 2 {config} needs a checkpoint path (e.g. {config}.pt from Meta's SAM 2.1 "
                "release); sam2-tiny is the random test model"
            )
        self.config, self.checkpoint = config, checkpoint
        self.model = load_sam2(config, checkpoint, device, self._overrides)
        self.amg = SAM2AutomaticMaskGenerator(
            self.model,
            points_per_side=points_per_side,
            points_per_batch=points_per_batch,
            pred_iou_thresh=pred_iou_thresh,
            stability_score_thresh=stability_score_thresh,
            stability_score_offset=stability_score_offset,
            box_nms_thresh=box_nms_thresh,
            crop_n_layers=crop_n_layers,
            crop_nms_thresh=crop_nms_thresh,
            crop_overlap_ratio=crop_overlap_ratio,
            crop_n_points_downscale_factor=crop_n_points_downscale_factor,
            min_mask_region_area=min_mask_region_area,
            use_m2m=use_m2m,
            output_mode="binary_mask",
        )
        # SAM2ImagePredictor assumes 1024 px inputs for its feature-map sizes; derive them
        # from the model (the same values at 1024, right ones for the tiny model's 256)
        s = self.model.image_size
        self.amg.predictor._bb_feat_sizes = [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]

    def identity(self) -> dict[str, str]:
        from importlib.metadata import version

        weights = f":{path_identity(self.checkpoint)}" if self.checkpoint else ":random-seed0"
        tiny = "-tiny" if self._overrides else ""
        return {
            "generator": "sam2",
            "generator_model": f"{self.config}{tiny}{weights}",
            "generator_version": f"sam2-{version('sam2')}",
        }

    def generate(self, rgb: np.ndarray) -> list[Proposal]:
        """(H, W, 3) uint8 RGB -> proposals with predicted_iou and stability_score."""
        import torch

        with torch.inference_mode():
            records = self.amg.generate(rgb)
        return [
            Proposal(
                r["segmentation"].astype(bool),
                {"predicted_iou": float(r["predicted_iou"]), "stability_score": float(r["stability_score"])},
            )
            for r in records
        ]


@MASK_GENERATORS.register("sam2-tiny")
class TinySam2Generator(Sam2Generator):
    """The tiny random SAM 2.1 (tests, CPU smoke runs); same parameters as ``sam2`` minus the model."""

    _overrides = TINY_OVERRIDES

    def __init__(self, checkpoint: str | None = None, **kw: Any):
        super().__init__(config="sam2.1_hiera_t", checkpoint=checkpoint, **kw)
